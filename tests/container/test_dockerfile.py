"""The Dockerfile against the code it packages (no engine needed; the built image's own
configuration is checked in test_image.py)."""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from smvision.core import contract

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for keyword, arguments in self.instructions:
            if keyword == "ENV":
                for word in shlex.split(arguments):
                    name, _, value = word.partition("=")
                    found[name] = value
        return found

    def keywords(self) -> list[str]:
        return [keyword for keyword, _ in self.instructions]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuations joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, arguments = pending.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
        pending = ""
    return found


def stages() -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    parsed: list[Stage] = []
    for keyword, arguments in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = arguments.split()
            parsed.append(Stage(words[0], words[2] if len(words) == 3 else None))
        elif not parsed and keyword == "ARG":
            name, _, default = arguments.partition("=")
            global_args[name] = default
        else:
            parsed[-1].instructions.append((keyword, arguments))
    return global_args, parsed


def test_the_training_module_is_the_contract_s() -> None:
    final = stages()[1][-1]
    assert final.env()[contract.TRAINING_MODULE_ENV] == contract.TRAINING_MODULE


def test_final_stage_runs_train_by_default_and_lets_train_and_serve_be_commands() -> None:
    final = stages()[1][-1]
    assert "ENTRYPOINT" not in final.keywords()
    commands = [arguments for keyword, arguments in final.instructions if keyword == "CMD"]
    assert commands == ['["train"]']
    assert final.env()["PYTHONUNBUFFERED"] == "1"
    labels = [
        word
        for keyword, arguments in final.instructions
        if keyword == "LABEL"
        for word in shlex.split(arguments)
    ]
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in labels
    assert "com.amazonaws.sagemaker.capabilities.multi-models=true" in labels


def test_serve_writes_no_bytecode_and_keras_settings_are_made_at_build_time() -> None:
    """What a read-only root file system needs (the image test runs serve that way)."""
    final = stages()[1][-1]
    assert final.env()["PYTHONDONTWRITEBYTECODE"] == "1"
    runs = " ".join(arguments for keyword, arguments in final.instructions if keyword == "RUN")
    assert "python -c 'import keras' && test -f \"$KERAS_HOME/keras.json\"" in runs
    assert "python -c 'import matplotlib.font_manager'" in runs


def test_base_image_defaults_to_slim_python_3_11_and_every_stage_uses_it() -> None:
    global_args, parsed = stages()
    assert re.fullmatch(r"python:3\.11-slim-\w+", global_args["BASE_IMAGE"])
    names = {stage.name for stage in parsed}
    for stage in parsed:
        assert stage.base == "${BASE_IMAGE}" or stage.base in names, stage.base


def test_resnet50_weights_build_argument_matches_the_error_message_and_keras_home() -> None:
    final = stages()[1][-1]
    args = [
        arguments.partition("=") for keyword, arguments in final.instructions if keyword == "ARG"
    ]
    assert ("RESNET50_WEIGHTS", "=", "none") in args
    resnet50 = importlib.util.find_spec("smvision.algorithms.resnet50")
    assert resnet50 is not None and resnet50.origin is not None
    assert "RESNET50_WEIGHTS=imagenet" in Path(resnet50.origin).read_text()
    assert final.env()["KERAS_HOME"].startswith("/opt/smvision/")


def test_no_compiler_is_installed_in_the_final_stage() -> None:
    final = stages()[1][-1]
    runs = " ".join(arguments for keyword, arguments in final.instructions if keyword == "RUN")
    assert "apt-get" not in runs and "gcc" not in runs
    assert "--only-binary :all:" in runs
