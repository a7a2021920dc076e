"""The hook the sagemaker-training toolkit calls (SAGEMAKER_TRAINING_MODULE).

`train` (the toolkit's console script) imports this module and calls `main`, the way
the SageMaker framework containers plug in. It hands the toolkit our own script, so the
toolkit does what it does for any user script: reads /opt/ml/input/config, exports the
SM_* variables, passes every hyperparameter as `--name value`, streams the output, and
reports the exit status (our script writes /opt/ml/output/failure first; the toolkit
keeps an existing failure file).
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from types import FrameType

from smvision.core import contract as contract_module
from smvision.core.artifacts import write_message

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


class StoppedBeforeTheScript(RuntimeError):
    """A stop signal before train.py started (or after it ended): nothing to pass it to."""


def pass_stop_signals_on() -> None:
    """SIGTERM and SIGINT go on to train.py, and the toolkit waits for it to end.

    SageMaker stops a job (StopTrainingJob) with SIGTERM to the container's first process,
    this one. Left to itself, the toolkit would end at once on SIGTERM, and on Ctrl-C
    report success (KeyboardInterrupt is no Exception, and its `finally` exits 0); either
    way train.py would run on with nobody waiting for it. Passed on, the signal makes
    train.py write its failure sentence and exit non-zero, which the toolkit reports as it
    reports any failure, keeping that sentence.
    """
    import psutil

    def forward(signum: int, _frame: FrameType | None) -> None:
        children = psutil.Process().children()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signum)
        if not children:
            name = signal.Signals(signum).name
            message = f"The job was stopped by {name} before its training script ran."
            write_message(contract_module.load().failure_file, message)
            raise StoppedBeforeTheScript(message)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)


def main() -> None:
    from sagemaker_training import entry_point, environment

    pass_stop_signals_on()
    configure_toolkit()
    env = environment.Environment()
    entry_point.run(
        uri=str(ENTRY_SCRIPT_DIR),
        user_entry_point=ENTRY_SCRIPT,
        args=env.to_cmd_args(),
        env_vars=env.to_env_vars(),
    )
