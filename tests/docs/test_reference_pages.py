"""The generated parts of the reference pages are what scripts/reference_pages.py writes
from the code today: the hyperparameters, the environment variables, the metrics, the
launchers' settings, every command's --help, the layers of .importlinter."""

from __future__ import annotations

import pytest

from scripts import reference_pages

PAGES = sorted({page for page, _ in reference_pages.GENERATORS.values()})


@pytest.mark.parametrize("name", sorted(reference_pages.GENERATORS))
def test_each_generated_region_is_what_the_code_says(name: str) -> None:
    page, generate = reference_pages.GENERATORS[name]
    text = (reference_pages.DOCS / page).read_text()
    start, stop = reference_pages.region(text, name)
    assert text[start:stop].strip("\n") == generate().strip("\n"), (
        f"docs/{page} is out of date: run python -m scripts.reference_pages"
    )


def test_the_script_checks_and_rewrites_the_pages(capsys: pytest.CaptureFixture[str]) -> None:
    assert reference_pages.main(["--check"]) == 0
    assert capsys.readouterr().out.startswith("0 pages differ")
    for page in PAGES:
        text = (reference_pages.DOCS / page).read_text()
        assert reference_pages.rendered(page, text) == text


def test_a_stale_region_is_found() -> None:
    page, _ = reference_pages.GENERATORS["metrics"]
    text = (reference_pages.DOCS / page).read_text()
    start, stop = reference_pages.region(text, "metrics")
    stale = text[:start] + "| `accuracy` | every model |\n" + text[stop:]
    assert reference_pages.rendered(page, stale) == text


def test_every_variable_the_code_names_is_described() -> None:
    described = {variable.name for variable in reference_pages.variables()}
    named = set(reference_pages.spelled_in())
    assert named <= described, f"describe {sorted(named - described)} in variables()"
    assert described <= named, f"no file names {sorted(described - named)} any more"
    assert {"SAGEMAKER_BIND_TO_PORT", "SMVISION_SERVE_FORMAT", "SMVISION_REGION"} <= named


def test_every_command_of_both_clis_has_its_help_on_the_page() -> None:
    page = (reference_pages.DOCS / "reference" / "cli-help.md").read_text()
    for top in reference_pages.user_parsers():
        for parser in reference_pages.all_parsers(top):
            assert f"## `{parser.prog}`\n" in page
    assert "## `python -m launch pipeline create`" in page
