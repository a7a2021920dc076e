"""The README and the documentation site against the code, so that each fact stays in one
place and stays true.

The README's algorithm table must say what `smvision.schema.specs` says; every
Troubleshooting sentence must be one the code writes; the boto3 snippet must classify an
image against the real server; every path and module named in code must exist, and every
relative link lead to a file; the architecture page must name every package and
tests/README.md every test file; the import contracts must hold. The command lines are
checked in test_commands.py, the generated reference pages in test_reference_pages.py and
the site's build in test_site.py.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.awsrequest import AWSPreparedRequest

from smvision.schema import specs
from tests.support.serving import ServerPool

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
TESTS_README = ROOT / "tests" / "README.md"
TROUBLESHOOTING = DOCS / "reference" / "troubleshooting.md"
ARCHITECTURE = DOCS / "design" / "architecture.md"
PLACEHOLDER = "…"
README_LIMIT_BYTES = 12 * 1024
# Where the sentences a user meets are written.
MESSAGE_SOURCES = (
    "src/**/*.py",
    "launch/**/*.py",
    "scripts/*",
    "docker/*",
    "Makefile",
    "tests/container/conftest.py",
)
# The top folders of the repository a path in code may start with; build/ and /opt/ml are
# what jobs write, not files of the repository.
REPOSITORY_FOLDERS: tuple[str, ...] = ("src/", "launch/", "tests/", "scripts/", "docs/")
REPOSITORY_FOLDERS += ("bench/", "docker/", "requirements/", ".ci/")


def pages() -> list[Path]:
    """Every Markdown page a person reads: the README, tests/README.md and the site's own
    pages (bench/'s are written by make bench and checked by the site's build)."""
    site = sorted(p for p in DOCS.rglob("*.md") if "bench" not in p.relative_to(DOCS).parts)
    return [README, TESTS_README, *site]


def snippet(text: str, name: str) -> str:
    """What the README holds between its `--8<-- [start:NAME]` and `[end:NAME]` markers."""
    return text.split(f"--8<-- [start:{name}] -->\n", 1)[1].split("<!-- --8<-- [end:", 1)[0]


def table_rows(markdown: str) -> Iterator[list[str]]:
    """The cells of each body row of the Markdown tables in `markdown`."""
    for line in markdown.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            yield [cell.strip() for cell in line.strip("|").split(" | ")]


def code_spans(text: str) -> list[str]:
    """Inline code, and code outside fenced blocks only."""
    return re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))


# The README -----------------------------------------------------------------------------


def test_the_algorithm_table_says_what_the_specs_say() -> None:
    rows = [row for row in table_rows(snippet(README.read_text(), "algorithms"))]
    assert rows[0][0] == "algorithm"
    assert [(row[0].strip("`"), row[1]) for row in rows[1:]] == [
        (spec.name, spec.summary) for spec in specs.BUILT_IN
    ]


def nav_pages() -> list[str]:
    """The pages of mkdocs.yml's nav, as paths under docs/."""
    config = (ROOT / "mkdocs.yml").read_text()
    nav = config.split("\nnav:\n", 1)[1]
    return re.findall(r":\s+(\S+\.md)\s*$", nav, re.M)


def test_the_readme_is_a_front_door_with_a_map_of_every_page() -> None:
    text = README.read_text()
    assert len(text.encode()) <= README_LIMIT_BYTES
    linked = set(re.findall(r"\]\(([^)#\s]+)", text))
    assert len(nav_pages()) >= 20
    for page in nav_pages():
        if page.startswith("bench/"):
            assert page in linked, page
        elif page != "index.md" and page != "development/tests.md":
            assert f"docs/{page}" in linked, f"the README's map lacks docs/{page}"
    assert "tests/README.md" in linked  # what development/tests.md shows


# Troubleshooting -------------------------------------------------------------------------


def troubleshooting_quotes() -> list[str]:
    return [
        quote
        for row in table_rows(TROUBLESHOOTING.read_text())
        for quote in re.findall(r"`([^`]+)`", row[0])
        if row[0] != "the message starts with"
    ]


def message_sources() -> str:
    files = {path for pattern in MESSAGE_SOURCES for path in ROOT.glob(pattern)}
    return "\n".join(path.read_text() for path in sorted(files) if path.is_file())


def test_troubleshooting_covers_many_messages() -> None:
    assert len(troubleshooting_quotes()) >= 100


@pytest.mark.parametrize(
    "quote", troubleshooting_quotes(), ids=lambda quote: quote.replace(PLACEHOLDER, "...")
)
def test_every_troubleshooting_sentence_is_one_the_code_writes(quote: str) -> None:
    # In the code the placeholders are f-string fields or %s; within one source line.
    pattern = ".*?".join(re.escape(part) for part in quote.split(PLACEHOLDER))
    assert re.search(pattern, message_sources()), f"no message in the code reads {quote!r}"


# Links, paths and modules ----------------------------------------------------------------


@pytest.mark.parametrize("document", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files(document: Path) -> None:
    text = document.read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [
        link for link in links if "://" not in link and not (document.parent / link).exists()
    ]
    assert not missing, f"{document.name} links to {missing}"


def named_paths(document: Path) -> list[str]:
    """Code spans that name a file or folder of the repository (placeholders such as NAME
    or JOBDIR and patterns left out)."""
    found = []
    for span in code_spans(document.read_text()):
        words = span.split()
        if len(words) != 1 or not re.fullmatch(r"[\w./-]+", span) or "/" not in span:
            continue
        parts = span.strip("/").split("/")
        if any(part.split(".")[0].isupper() or part in ("...", "..") for part in parts):
            continue
        relative = document.parent == TESTS_README.parent and span.split("/")[0] in TIERS
        if span.startswith(REPOSITORY_FOLDERS) or relative or span in TOP_FILES:
            found.append(span)
    return found


TIERS = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir()}
TOP_FILES = {"mkdocs.yml", "Makefile", "Dockerfile", ".importlinter"}


@pytest.mark.parametrize("document", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_named_in_code_exists(document: Path) -> None:
    base = ROOT / "tests" if document == TESTS_README else ROOT
    missing = [
        span
        for span in named_paths(document)
        if not (ROOT / span).exists() and not (base / span).exists()
    ]
    assert not missing, f"{document.relative_to(ROOT)} names {missing}, which do not exist"


def test_paths_are_found_in_the_pages() -> None:
    named = [path for document in pages() for path in named_paths(document)]
    assert len(named) >= 100
    assert "src/smvision/schema/specs.py" in named


def top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def module_problem(dotted: str) -> str | None:
    """None when `package.module[.name]` or `package.module:name` names what exists."""
    modules, _, attribute = dotted.partition(":")
    parts = modules.split(".")
    base = ROOT / "src" if parts[0] == "smvision" else ROOT
    for cut in range(len(parts), 0, -1):
        folder = base.joinpath(*parts[:cut])
        source = folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")
        if source.is_file():
            rest = parts[cut:] + ([attribute] if attribute else [])
            if len(rest) > 1:
                return f"no module {'.'.join(parts[: cut + 1])}"
            if rest and rest[0] not in top_level_names(source):
                return f"{'.'.join(parts[:cut])} defines no {rest[0]}"
            return None
    return "no such module"


def named_modules(document: Path) -> list[str]:
    return [
        span
        for span in code_spans(document.read_text())
        if re.fullmatch(r"(smvision|launch)(\.\w+)+(:\w+)?", span)
        and not re.search(r"\.(txt|py|md|json|toml|yml|sh|png)$", span)
    ]


@pytest.mark.parametrize("document", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_named_in_code_exists(document: Path) -> None:
    problems = {span: module_problem(span) for span in named_modules(document)}
    wrong = {span: problem for span, problem in problems.items() if problem}
    assert not wrong, f"{document.relative_to(ROOT)}: {wrong}"


def test_modules_are_found_and_a_stale_one_is_caught() -> None:
    named = [m for document in pages() for m in named_modules(document)]
    assert "smvision.data.images.decode_image" in named and len(named) >= 20
    assert module_problem("smvision.images.decode_image") == "no module smvision.images"
    assert module_problem("smvision.nowhere") == "smvision defines no nowhere"
    assert module_problem("smvision.data.images.decode") == "smvision.data.images defines no decode"


# The architecture and the tests' map -----------------------------------------------------


def test_the_architecture_names_every_package_once() -> None:
    rows = table_rows(ARCHITECTURE.read_text().split("## The packages", 1)[1].split("\n## ")[0])
    listed = [row[0].strip("`") for row in rows if row[0] != "package"]
    packages = [
        f"{path.parent.relative_to(ROOT)}/"
        for root in (ROOT / "src" / "smvision", ROOT / "launch")
        for path in sorted(root.glob("*/__init__.py"))
    ]
    assert sorted(listed) == sorted(packages)


def test_the_tests_readme_lists_every_test_file() -> None:
    text = TESTS_README.read_text()
    test_files = sorted((ROOT / "tests").rglob("test_*.py"))
    assert len(test_files) >= 50
    unlisted = [
        str(path.relative_to(ROOT / "tests"))
        for path in test_files
        if f"`{path.relative_to(ROOT / 'tests')}`" not in text
    ]
    assert not unlisted, f"tests/README.md does not list {unlisted}"
    for tier in TIERS - {"__pycache__"}:
        assert f"| `{tier}/` |" in text, f"tests/README.md has no row for {tier}/"


# Policies and the import contracts -------------------------------------------------------


@pytest.mark.parametrize("policy", sorted((DOCS / "iam").glob("*.json")), ids=lambda p: p.name)
def test_the_iam_documents_are_policies(policy: Path) -> None:
    document = json.loads(policy.read_text())
    assert document["Version"] == "2012-10-17"
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "Action" in statement and ("Resource" in statement or "Principal" in statement)


def test_the_import_contracts_hold() -> None:
    """The layering of .importlinter: arrows only downwards, no cycles, launch/ light."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    completed = subprocess.run(
        [str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "0 broken" in completed.stdout


# The boto3 snippet -----------------------------------------------------------------------


def readme_python_snippet() -> str:
    block = snippet(README.read_text(), "invoke-endpoint")
    return block.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_endpoints_guide_shows_the_readmes_snippet() -> None:
    guide = (DOCS / "guides" / "endpoints.md").read_text()
    assert '```python\n--8<-- "README.md:invoke-endpoint"\n```' in guide
    assert "invoke_endpoint" in readme_python_snippet()


def test_the_invoke_endpoint_snippet_classifies_an_image(
    servers: ServerPool,
    digits: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's boto3 code against the real server: SageMaker's front end maps
    /endpoints/NAME/invocations to the container's /invocations; a hook does that here."""
    server = servers("svm")
    image = sorted((digits / "test" / "7").glob("*.png"))[0].read_bytes()
    (tmp_path / "digit.png").write_bytes(image)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.url)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    custom_attributes: list[str | bytes] = []

    def to_the_container(request: AWSPreparedRequest, **_: object) -> None:
        assert request.url == f"{server.url}/endpoints/digits/invocations"
        request.url = f"{server.url}/invocations"
        custom_attributes.append(request.headers["X-Amzn-SageMaker-Custom-Attributes"])

    boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("before-send.sagemaker-runtime.InvokeEndpoint", to_the_container)

    exec(compile(readme_python_snippet(), "README.md", "exec"), {})

    printed = capsys.readouterr().out.strip()
    direct = httpx.post(
        f"{server.url}/invocations", content=image, headers={"Content-Type": "image/png"}
    ).json()["predictions"][0]
    label, probability, rest = printed.split(" ", 2)
    assert label == direct["label"]
    assert float(probability) == pytest.approx(direct["probability"])
    assert len(ast.literal_eval(rest)) == 3  # top_k=3 reached the server
    assert custom_attributes == [b"top_k=3"]
