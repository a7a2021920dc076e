"""The README and docs/ against the code, so that each fact stays in one place.

The algorithm table must say what the algorithm table in `smvision.schema.specs` says; every
Troubleshooting sentence must be one the code writes; the boto3 snippet must classify an
image against the real server; the layout's names must exist and its arrows must hold;
links must lead to files.
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

from scripts import hyperparameter_table
from smvision.schema import specs
from tests.support.serving_fixtures import ServerPool, servers, serving_jobs

__all__ = ["servers", "serving_jobs"]  # session fixtures used below

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PLACEHOLDER = "…"
# Where the sentences a user meets are written.
MESSAGE_SOURCES = (
    "src/**/*.py",
    "launch/**/*.py",
    "scripts/*",
    "docker/*",
    "Makefile",
    "tests/container/conftest.py",
)


def section(text: str, heading: str) -> str:
    """The body of a Markdown section, up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n") + len(heading) + 1
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", text[start:], re.M)]
    return text[start : start + ends[0]] if ends else text[start:]


def table_rows(markdown: str) -> Iterator[list[str]]:
    """The cells of each body row of the Markdown tables in `markdown`."""
    for line in markdown.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            yield [cell.strip() for cell in line.strip("|").split(" | ")]


def test_the_algorithm_table_says_what_the_specs_say() -> None:
    intro = README.read_text().split("\n## ", 1)[0]
    rows = [row for row in table_rows(intro) if row[0] != "algorithm"]
    assert [(row[0].strip("`"), row[1]) for row in rows] == [
        (spec.name, spec.summary) for spec in specs.BUILT_IN
    ]


def troubleshooting_quotes() -> list[str]:
    body = section(README.read_text(), "## Troubleshooting")
    return [
        quote
        for row in table_rows(body)
        for quote in re.findall(r"`([^`]+)`", row[0])
        if row[0] != "the message starts with"
    ]


def message_sources() -> str:
    files = {path for pattern in MESSAGE_SOURCES for path in ROOT.glob(pattern)}
    return "\n".join(path.read_text() for path in sorted(files) if path.is_file())


def test_troubleshooting_covers_many_messages() -> None:
    assert len(troubleshooting_quotes()) >= 40


@pytest.mark.parametrize(
    "quote", troubleshooting_quotes(), ids=lambda quote: quote.replace(PLACEHOLDER, "...")
)
def test_every_troubleshooting_sentence_is_one_the_code_writes(quote: str) -> None:
    # In the code the placeholders are f-string fields or %s; within one source line.
    pattern = ".*?".join(re.escape(part) for part in quote.split(PLACEHOLDER))
    assert re.search(pattern, message_sources()), f"no message in the code reads {quote!r}"


def markdown_files() -> list[Path]:
    return [README, ROOT / "tests" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("document", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files(document: Path) -> None:
    text = document.read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [
        link for link in links if "://" not in link and not (document.parent / link).exists()
    ]
    assert not missing, f"{document.name} links to {missing}"


def test_in_page_links_name_headings() -> None:
    text = README.read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", text, re.M)
    }
    used = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert used <= anchors, sorted(used - anchors)


@pytest.mark.parametrize(
    "policy", sorted((ROOT / "docs" / "iam").glob("*.json")), ids=lambda p: p.name
)
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


def test_the_hyperparameter_table_is_the_schema() -> None:
    assert hyperparameter_table.table() in section(README.read_text(), "### Hyperparameters")


def readme_python_snippet() -> str:
    body = section(README.read_text(), "### Calling the endpoint from your application")
    return body.split("```python\n", 1)[1].split("```", 1)[0]


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
