"""Every command line the documentation shows, through the parser that will read it.

The lines of every ```sh block in the README, tests/README.md and docs/ are parsed by
their program's own parser: `python -m launch` by launch.cli.build_parser(), `python -m
smvision.local` by smvision.local.cli.build_parser(), the image's `monitor` and `gate` by
theirs, the other modules' and scripts' argparse parsers through their main() (stopped
once they have parsed: nothing runs), `make TARGET VAR=...` by make itself (`make -n`)
and the Makefile's variables, `mkdocs` by its click commands. Programs no parser here can
read are listed in EXEMPT with the reason. Inline code that names a command with options
(`python -m launch deploy --serverless`, `invoke --async`) has each option checked
against that command's parser.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.reference_pages import parse_with_main, subcommands

ROOT = Path(__file__).resolve().parents[2]
PYTHONS = {"python", "python3", "python3.11", ".venv/bin/python"}
# Programs whose command lines no parser in this repository can read, and why.
EXEMPT = {
    "docker": "Docker's own CLI; the image tests (tests/container) run these lines' "
    "equivalents with podman",
    "aws": "the AWS CLI; its S3 and IAM calls are the user's own setup",
    "curl": "curl posting an image; tests/server/test_serve.py makes the same request",
    "apt-get": "Debian's package manager; scripts/podman.sh ensure runs it",
    "docker/build_and_push.sh": "a shell script without a parser; tests/launch/test_image.py "
    "runs it against a moto server",
    "eval": "evaluates scripts/podman.sh env, whose line is checked on its own",
}
# `make VAR=value`: the variables the Makefile reads from its command line.
MAKE_VARIABLE = re.compile(r"^([A-Z_][A-Z0-9_]*) \?=", re.M)


def documents() -> list[Path]:
    return [
        ROOT / "README.md",
        ROOT / "tests" / "README.md",
        *sorted(p for p in (ROOT / "docs").rglob("*.md") if "bench" not in p.parts),
    ]


@dataclass(frozen=True)
class Line:
    document: Path
    number: int
    text: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.number}: {self.text}"


def shell_lines(document: Path) -> Iterator[Line]:
    """The command lines of a document's sh blocks, continuations joined, with the
    commands inside $(...) as lines of their own."""
    in_block, pending, start = False, "", 0
    for number, raw in enumerate(document.read_text().splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            in_block = stripped in ("```sh", "```bash")
            continue
        if not in_block:
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = (pending + stripped).strip()
        pending = ""
        if text and not text.startswith("#"):
            for inner in re.findall(r"\$\(([^()]+)\)", text):
                yield Line(document, start, inner.strip())
            yield Line(document, start, text)


def all_lines() -> list[Line]:
    return [line for document in documents() for line in shell_lines(document)]


def words(text: str) -> list[str]:
    """The words of one command, environment assignments and a trailing & left out; a
    command substitution stands as one word (its command is a line of its own)."""
    tokens = shlex.split(re.sub(r"\$\([^()]+\)", "SUBSTITUTED", text), comments=True)
    while tokens and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tokens[0]):
        tokens.pop(0)
    if tokens and tokens[-1] == "&":
        tokens.pop()
    return tokens


class ParseFailed(AssertionError):
    pass


def argparse_parse(parse: Callable[[], object]) -> None:
    """Run a parse; argparse's exit on a bad line becomes a failure with its message."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parse()
    except SystemExit as exit_:
        raise ParseFailed(errors.getvalue().strip() or f"exit {exit_.code}") from None


def main_of(module: str) -> Callable[..., object]:
    imported = __import__(module, fromlist=["main"])
    return imported.main  # type: ignore[no-any-return]


def parse_python_module(module: str, args: list[str]) -> str:
    """`python -m MODULE ARGS`: MODULE's own parser on ARGS."""
    if module == "launch":
        from launch import cli

        argparse_parse(lambda: cli.build_parser().parse_args(args))
    elif module == "smvision.local":
        from smvision.local import cli as local_cli

        argparse_parse(lambda: local_cli.build_parser().parse_args(args))
    elif module == "scripts.hyperparameter_table":
        if args:
            raise ParseFailed("scripts.hyperparameter_table takes no arguments")
    elif module in (
        "smvision.local.samples",
        "smvision.comparison",
        "scripts.imagenet_weights",
        "scripts.reference_pages",
        "scripts.data_report_example",
        "bench",
    ):
        target = f"{module}.__main__" if module in ("smvision.comparison", "bench") else module
        argparse_parse(lambda: parse_with_main(main_of(target), args))
    elif module == "pytest":
        missing = [a for a in args if "/" in a and not (ROOT / a.split("::")[0]).exists()]
        if missing:
            raise ParseFailed(f"pytest is given {missing}, which do not exist")
        return "pytest (its paths checked)"
    else:
        raise ParseFailed(f"no parser known for python -m {module}: add it to this test")
    return f"python -m {module}"


def parse_make(args: list[str]) -> str:
    makefile = (ROOT / "Makefile").read_text()
    known = set(MAKE_VARIABLE.findall(makefile))
    assignments = [a.split("=", 1)[0] for a in args if "=" in a]
    unknown = [name for name in assignments if name not in known]
    if unknown:
        raise ParseFailed(f"the Makefile reads no variable {unknown}; it reads {sorted(known)}")
    targets = [a for a in args if "=" not in a]
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise ParseFailed(done.stderr.strip())
    return "make"


def parse_mkdocs(args: list[str]) -> str:
    import click
    from mkdocs.__main__ import cli

    if not args:
        raise ParseFailed("mkdocs without a command")
    name, *rest = args  # mkdocs takes no options before its command
    try:
        context = click.Context(cli, info_name="mkdocs")
        command = cli.get_command(context, name)
        if command is None:
            raise ParseFailed(f"mkdocs has no command {name}")
        command.make_context(name, rest, parent=context)
    except click.UsageError as error:
        raise ParseFailed(str(error)) from None
    return "mkdocs"


def parse_podman_script(args: list[str]) -> str:
    script = (ROOT / "scripts" / "podman.sh").read_text()
    dispatch = script[script.index('case "$command" in') :]
    commands = set(re.findall(r"^\s+([a-z]+)\)", dispatch, re.M))
    if not args or args[0] not in commands:
        raise ParseFailed(f"scripts/podman.sh takes one of {sorted(commands)}, not {args[:1]}")
    return "scripts/podman.sh"


def parse(text: str) -> str:
    """Parse one command line; what parsed it, or 'exempt: program'."""
    tokens = words(text)
    if not tokens:
        return "assignment"
    program, args = tokens[0], tokens[1:]
    if program in ("export",):
        if all("=" in a for a in args):
            return "assignment"
        raise ParseFailed(f"export of {args}")
    if program in EXEMPT:
        return f"exempt: {program}"
    if program in PYTHONS:
        if args[:1] == ["-m"]:
            return parse_python_module(args[1], args[2:])
        if args and args[0] == "scripts/measure_serving.py":
            argparse_parse(lambda: parse_with_main(main_of("scripts.measure_serving"), args[1:]))
            return "scripts/measure_serving.py"
        raise ParseFailed(f"no parser known for python {args[:1]}")
    if program == "make":
        return parse_make(args)
    if program in ("mkdocs", ".venv/bin/mkdocs"):
        return parse_mkdocs(args)
    if program == "scripts/podman.sh":
        return parse_podman_script(args)
    if program == "serve":
        if args:
            raise ParseFailed("serve takes no arguments")
        return "serve"
    if program in ("monitor", "gate"):
        module = "smvision.monitor.main" if program == "monitor" else "smvision.monitor.gate"
        argparse_parse(lambda: __import__(module, fromlist=["x"]).build_parser().parse_args(args))
        return program
    raise ParseFailed(f"no parser known for {program!r}: parse it here, or exempt it with why")


LINES = all_lines()


@pytest.mark.parametrize("line", LINES, ids=str)
def test_every_command_line_parses(line: Line) -> None:
    try:
        parse(line.text)
    except ParseFailed as failure:
        pytest.fail(f"{line}\n{failure}")


def test_the_parsers_see_most_lines_and_every_exemption_is_used() -> None:
    kinds = [parse(line.text) for line in LINES]
    parsed = [k for k in kinds if k != "assignment" and not k.startswith("exempt")]
    assert len(parsed) >= 50, kinds
    assert {k for k in kinds if k.startswith("python -m launch")}, kinds
    assert {k.split(": ", 1)[1] for k in kinds if k.startswith("exempt")} == set(EXEMPT)


# Inline code: a command with options, checked option by option -----------------------

LAUNCH_PREFIXES = ("python -m launch ", ".venv/bin/python -m launch ", "launch ")
LOCAL_PREFIXES = ("python -m smvision.local ", ".venv/bin/python -m smvision.local ")


def launch_parser() -> argparse.ArgumentParser:
    from launch import cli

    return cli.build_parser()


def local_parser() -> argparse.ArgumentParser:
    from smvision.local import cli as local_cli

    return local_cli.build_parser()


def unknown_options(parser: argparse.ArgumentParser, tokens: list[str]) -> list[str] | None:
    """The --options among tokens that the (sub)command they name does not take; None when
    the tokens name no command of this parser."""
    position = 0
    while position < len(tokens) and tokens[position] in subcommands(parser):
        parser = subcommands(parser)[tokens[position]]
        position += 1
    if position == 0 and subcommands(parser):
        return None
    options = [t.split("=", 1)[0] for t in tokens[position:] if t.startswith("--")]
    return [o for o in options if o not in parser._option_string_actions]


COMPLETE = {"make", "scripts/podman.sh", "mkdocs", ".venv/bin/mkdocs", *EXEMPT}


def inline_commands() -> list[tuple[Path, str]]:
    """Inline code that is a command: a program of ours, or a command name with options."""
    found = []
    for document in documents():
        text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
        # Troubleshooting's first column quotes messages, not commands.
        if document.name == "troubleshooting.md":
            text = re.sub(r"^\| `[^|]*\|", "|", text, flags=re.M)
        for span in re.findall(r"`([^`\n]+)`", text):
            try:
                first = words(span)[:1]
            except ValueError:
                continue
            if " --" in span or (first and (first[0] in COMPLETE or first[0] in PYTHONS)):
                found.append((document, span))
    return found


def check_inline(span: str) -> str | None:
    """None when the span parses: a whole command line of a program other than the two
    CLIs parses in full; for `python -m launch` and `python -m smvision.local`, which the
    text names with some options only, every option must be one the command takes."""
    try:
        tokens = words(span.replace("…", "X"))
    except ValueError:
        return None
    for prefix in LAUNCH_PREFIXES + LOCAL_PREFIXES:
        if span.startswith(prefix):
            parser = launch_parser() if prefix in LAUNCH_PREFIXES else local_parser()
            rest = tokens[len(prefix.split()) :]
            if not rest or rest[0].isupper() or rest[0] in ("...", "X"):
                return None  # the program itself: `python -m launch COMMAND`
            unknown = unknown_options(parser, rest)
            if unknown is None:
                return f"names no command of {prefix.strip()}"
            return f"takes no {unknown}" if unknown else None
    if tokens and (tokens[0] in COMPLETE or tokens[0] in PYTHONS):
        if len(tokens) == 1 and tokens[0] != "make" or tokens[0] in PYTHONS and len(tokens) <= 3:
            return None  # the program itself: `scripts/podman.sh`, `python -m bench`
        try:
            parse(" ".join(shlex.quote(t) for t in tokens))
        except ParseFailed as failure:
            return str(failure)
        return None
    # A bare command with options (`deploy --serverless`): any command of that name.
    results = [unknown_options(p, tokens) for p in (launch_parser(), local_parser())]
    named = [r for r in results if r is not None]
    if not named:
        return None  # not a command of ours (a docker option, a hyperparameter)
    return None if any(not r for r in named) else f"takes no {min(named, key=len)}"


INLINE = inline_commands()


@pytest.mark.parametrize(("document", "span"), INLINE, ids=[f"{d.name}: {s}" for d, s in INLINE])
def test_every_option_named_in_the_text_exists(document: Path, span: str) -> None:
    problem = check_inline(span)
    assert problem is None, f"{document.relative_to(ROOT)}: `{span}` {problem}"


def test_inline_commands_are_found() -> None:
    spans = [span for _, span in INLINE]
    assert len(spans) >= 60, spans
    assert any(span.startswith("make ") for span in spans), spans
