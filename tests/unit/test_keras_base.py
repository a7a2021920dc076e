"""keras_base: what a Keras fit leaves behind in the process when it fails."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from smvision.data import images
from smvision.data.dataset import Dataset
from smvision.local.samples import digits_images
from smvision.schema import hyperparameters
from smvision.training import distributed
from smvision.training.main import JobRun

keras = pytest.importorskip("keras")


@pytest.fixture
def float32_policy() -> Iterator[None]:
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def tiny_digits(count: int, size: int, channels: int) -> Dataset:
    pixels, labels = digits_images()
    prepared = np.stack([images.prepare(p[:, :, None], size, channels) for p in pixels[:count]])
    return Dataset(prepared, labels[:count].astype(np.int32), [f"#{i}" for i in range(count)])


def test_a_failed_fit_restores_the_global_precision_policy(
    tmp_path: Path, float32_policy: None
) -> None:
    from smvision.algorithms.resnet50 import ResNet50Algorithm, WeightsError

    # Starting weights that do not fit: fit fails while it builds the model.
    (tmp_path / "pretrained").mkdir()
    (tmp_path / "pretrained" / "wrong.h5").write_bytes(b"not hdf5")
    train = tiny_digits(16, 32, channels=3)
    hp = hyperparameters.parse(
        {
            "algorithm": "resnet50",
            "image_size": "32",
            "weights": "none",
            "epochs": "1",
            "fine_tune_epochs": "0",
            "batch_size": "16",
            "augment": "false",
            "mixed_precision": "true",  # forces float16 compute, also on a CPU
        },
        strict=True,
    )
    cluster = distributed.Cluster(("algo-1",), "algo-1", 0, 1, 0)
    run = JobRun(tmp_path / "checkpoints", cluster, len(train), tmp_path / "pretrained")
    algorithm = ResNet50Algorithm(32, 3, 10)
    with pytest.raises(WeightsError, match="wrong.h5 does not fit ResNet50"):
        algorithm.fit(train, None, hp, run)
    assert keras.mixed_precision.global_policy().name == "float32"


def test_early_stopping_waits_until_batch_norm_statistics_have_settled(
    tmp_path: Path, float32_policy: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    import tensorflow as tf

    from smvision.algorithms.checkpoints import Checkpoints, LoopState
    from smvision.algorithms.cnn import CNNAlgorithm
    from smvision.algorithms.keras_base import TrainingLoop

    hp = hyperparameters.parse(
        {
            "algorithm": "cnn",
            "image_size": "16",
            "early_stopping_patience": "1",
            "early_stopping_warmup_steps": "9",
        },
        strict=True,
    )
    cluster = distributed.Cluster(("algo-1",), "algo-1", 0, 1, 0)
    run = JobRun(tmp_path / "checkpoints", cluster, 100, None)
    algorithm = CNNAlgorithm(16, 1, 10)
    algorithm.model = algorithm.build_model(hp, run)
    checkpoints = Checkpoints(tmp_path / "checkpoints", "fp", writer=True)
    # Three steps an epoch: epochs 1 and 2 (6 steps) are inside the warm-up, epoch 3 is not.
    loop = TrainingLoop(algorithm, tf.distribute.get_strategy(), hp, run, checkpoints, 32, 3, False)
    state = LoopState("fp")

    def epoch(validation_loss: float) -> bool:
        state.history.setdefault("validation:loss", []).append(validation_loss)
        return loop.judge_epoch(state, {"validation:loss": validation_loss})

    assert not epoch(1.0)
    assert not epoch(2.5)  # worse, but inside the warm-up: neither judged nor remembered
    assert (state.stopped_early, state.best_loss) == (False, None)
    assert epoch(0.8)  # the best: its weights are kept as the best (Checkpoints.save)
    assert (state.best_loss, state.best_epoch) == (0.8, 3)
    assert not epoch(0.9)
    assert (state.stopped_early, state.best_loss) == (True, 0.8)
    assert "Early stopping: validation loss has not improved for 1 epochs (best 0.8000)." in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("best_epoch", "said"), [(3, True), (4, False), (None, False)], ids=["head", "fine", "none"]
)
def test_one_line_says_when_fine_tuning_did_not_beat_the_head(
    best_epoch: int | None, said: bool
) -> None:
    """Three head epochs, then fine-tuning: when the best validation loss is still the
    head's, the restored weights are the head's, and one line says so."""
    from smvision.algorithms.checkpoints import LoopState
    from smvision.algorithms.keras_base import Phase, _say_when_the_last_phase_did_not_help

    lines: list[str] = []

    class Run:
        def info(self, message: str) -> None:
            lines.append(message)

    state = LoopState("x", best_loss=0.0421, best_epoch=best_epoch)
    ran = [(Phase("head", 3, 1e-3), 0), (Phase("fine-tune", 2, 1e-5), 3)]
    _say_when_the_last_phase_did_not_help(ran, state, Run())  # type: ignore[arg-type]
    expected = (
        "Phase 'fine-tune' did not improve the validation loss (best 0.0421, epoch 3, in "
        "phase 'head'): the model keeps the weights of phase 'head'."
    )
    assert lines == ([expected] if said else [])
    _say_when_the_last_phase_did_not_help(ran[:1], state, Run())  # type: ignore[arg-type]
    assert len(lines) == int(said)
