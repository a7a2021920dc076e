"""artifacts.py: reading back what `train` wrote, with errors that survive `python -O`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from smvision.core import contract
from smvision.core.artifacts import read_metadata
from smvision.serving.settings import ModelDirectoryError, settings_from

NOT_AN_OBJECT = json.dumps(["svm", ["0", "1"]])


@pytest.mark.parametrize(
    "content, kind",
    [(["svm", ["0", "1"]], "list"), ("svm", "string"), (None, "null")],
)
def test_metadata_that_is_not_a_json_object_is_refused(
    tmp_path: Path, content: object, kind: str
) -> None:
    (tmp_path / "metadata.json").write_text(json.dumps(content))
    with pytest.raises(
        ValueError, match=f"metadata.json holds a JSON {kind}, not the object smvision's train"
    ):
        read_metadata(tmp_path)


def test_the_check_survives_python_dash_o(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text(NOT_AN_OBJECT)
    code = (
        "import sys; from pathlib import Path; from smvision.core.artifacts import read_metadata\n"
        "try:\n"
        "    read_metadata(Path(sys.argv[1]))\n"
        "except ValueError as error:\n"
        "    print('refused:', error)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-O", "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("refused:"), completed.stdout + completed.stderr


def test_serve_refuses_such_a_model_directory_before_starting(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "metadata.json").write_text(NOT_AN_OBJECT)
    with pytest.raises(ModelDirectoryError, match="holds a JSON list"):
        settings_from(contract.load({"SAGEMAKER_BASE_DIR": str(tmp_path)}))
