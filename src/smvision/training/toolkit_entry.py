"""The hook the sagemaker-training toolkit calls (SAGEMAKER_TRAINING_MODULE).

`train` (the toolkit's console script) imports this module and calls `main`, the way
the SageMaker framework containers plug in. It hands the toolkit our own script, so the
toolkit does what it does for any user script: reads /opt/ml/input/config, exports the
SM_* variables, passes every hyperparameter as `--name value`, streams the output, and
reports the exit status (our script writes /opt/ml/output/failure first; the toolkit
keeps an existing failure file).
"""

from __future__ import annotations

from pathlib import Path

ENTRY_SCRIPT_DIR = Path(__file__).parent / "entry_script"
ENTRY_SCRIPT = "train.py"


def configure_toolkit() -> None:
    """Spare the toolkit's own process a TensorFlow import.

    On every job the toolkit imports TensorFlow in its own process only to learn the names
    of TensorFlow's exceptions, by which it classifies a failed script's stderr: seconds of
    start-up and about 600 MB held for the whole job, svm and rf included. train.py writes
    its own failure sentence to /opt/ml/output/failure, which the toolkit keeps, so the
    toolkit's default classification is all it needs.
    """
    from sagemaker_training import process

    def default_exception_classes() -> list[type[Exception]]:
        return [process.DEFAULT_ERROR_CLASS]

    process.get_tensorflow_exception_classes = default_exception_classes


def main() -> None:
    from sagemaker_training import entry_point, environment

    configure_toolkit()
    env = environment.Environment()
    entry_point.run(
        uri=str(ENTRY_SCRIPT_DIR),
        user_entry_point=ENTRY_SCRIPT,
        args=env.to_cmd_args(),
        env_vars=env.to_env_vars(),
    )
