"""checkpoints.py: what a restarted Keras job resumes from, on a tiny model that trains nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smvision.algorithms.checkpoints import BEST_WEIGHTS_FILE, STATE_FILE, Checkpoints, LoopState

keras = pytest.importorskip("keras")


def tiny_model(seed: int) -> Any:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])


def built_optimizer(model: Any, step_value: float) -> Any:
    """An Adam optimizer whose every variable holds `step_value` (as if it had trained)."""
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    for variable in optimizer.variables:
        variable.assign(np.full(variable.shape, step_value, dtype=variable.dtype))
    return optimizer


def state_after(epochs: int, fingerprint: str = "fp-1") -> LoopState:
    return LoopState(
        fingerprint,
        phase=0,
        epoch_in_phase=epochs,
        history={"train:loss": [1.0 / (e + 1) for e in range(epochs)]},
        best_loss=0.25,
        bad_epochs=1,
    )


def same_weights(first: Any, second: Any) -> bool:
    return all(
        np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights(), strict=True)
    )


def test_a_restarted_job_gets_back_state_weights_and_optimizer(tmp_path: Path) -> None:
    model, state = tiny_model(1), state_after(3)
    optimizer = built_optimizer(model, 0.5)
    Checkpoints(tmp_path, "fp-1", writer=True).save(model, optimizer, state)

    restarted = Checkpoints(tmp_path, "fp-1", writer=True)
    assert restarted.restore_state() == state
    fresh_model = tiny_model(2)
    fresh_optimizer = built_optimizer(fresh_model, 0.0)
    assert not same_weights(model, fresh_model)
    restarted.restore_weights(fresh_model, fresh_optimizer)
    assert same_weights(model, fresh_model)
    for saved, restored in zip(optimizer.variables, fresh_optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(restored))


def test_nothing_saved_starts_afresh(tmp_path: Path) -> None:
    checkpoints = Checkpoints(tmp_path / "empty", "fp-1", writer=True)
    assert checkpoints.restore_state() == LoopState("fp-1")
    with pytest.raises(RuntimeError, match="without a checkpoint"):
        checkpoints.restore_weights(tiny_model(1), None)


def test_a_checkpoint_of_another_job_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = tiny_model(1)
    Checkpoints(tmp_path, "other-hyperparameters", writer=True).save(
        model, built_optimizer(model, 0.5), state_after(2, "other-hyperparameters")
    )
    with caplog.at_level(logging.WARNING):
        state = Checkpoints(tmp_path, "fp-1", writer=True).restore_state()
    assert state == LoopState("fp-1")
    assert "belongs to a job with other hyperparameters or data" in caplog.text


def test_a_state_whose_files_are_missing_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # S3 may hand back state.json without the epoch files it names (uploads are not ordered).
    model = tiny_model(1)
    Checkpoints(tmp_path, "fp-1", writer=True).save(
        model, built_optimizer(model, 0.5), state_after(2)
    )
    (tmp_path / "epoch-0002.weights.h5").unlink()
    with caplog.at_level(logging.WARNING):
        assert Checkpoints(tmp_path, "fp-1", writer=True).restore_state() == LoopState("fp-1")
    assert "epoch-0002.weights.h5, which are missing" in caplog.text


def test_older_epochs_are_removed_once_the_new_state_names_the_new_files(tmp_path: Path) -> None:
    model = tiny_model(1)
    checkpoints = Checkpoints(tmp_path, "fp-1", writer=True)
    for epochs in (1, 2, 3):
        checkpoints.save(model, built_optimizer(model, float(epochs)), state_after(epochs))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch-0003.optimizer.npz",
        "epoch-0003.weights.h5",
        STATE_FILE,
    ]
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert (saved["weights"], saved["optimizer"]) == (
        "epoch-0003.weights.h5",
        "epoch-0003.optimizer.npz",
    )


def test_a_state_write_that_fails_leaves_the_last_epoch_whole(tmp_path: Path) -> None:
    model = tiny_model(1)
    checkpoints = Checkpoints(tmp_path, "fp-1", writer=True)
    checkpoints.save(model, built_optimizer(model, 1.0), state_after(1))
    # The next state cannot be written (its temporary path is taken by a directory): the
    # epoch-2 files are written, but state.json must still name epoch 1, which must remain.
    (tmp_path / f".{STATE_FILE}.tmp").mkdir()
    with pytest.raises(IsADirectoryError):
        checkpoints.save(tiny_model(2), built_optimizer(model, 2.0), state_after(2))
    restarted = Checkpoints(tmp_path, "fp-1", writer=True)
    assert restarted.restore_state() == state_after(1)
    fresh = tiny_model(3)
    restarted.restore_weights(fresh, built_optimizer(fresh, 0.0))
    assert same_weights(model, fresh)


def test_an_epoch_kept_as_the_best_is_linked_not_written_again(tmp_path: Path) -> None:
    best, later = tiny_model(1), tiny_model(2)
    checkpoints = Checkpoints(tmp_path, "fp-1", writer=True)
    checkpoints.save(best, built_optimizer(best, 1.0), state_after(1), best=True)
    checkpoints.save(later, built_optimizer(later, 1.0), state_after(2))
    assert (tmp_path / BEST_WEIGHTS_FILE).stat().st_nlink == 1  # epoch 1's file is gone
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    fresh = tiny_model(3)
    checkpoints.restore_best(fresh)
    assert same_weights(best, fresh) and not same_weights(later, fresh)


def test_only_the_writer_writes(tmp_path: Path) -> None:
    model = tiny_model(1)
    reader = Checkpoints(tmp_path / "worker-2", "fp-1", writer=False)
    reader.save(model, built_optimizer(model, 1.0), state_after(1))
    reader.save_best(model)
    assert not (tmp_path / "worker-2").exists()


def test_best_weights_round_trip(tmp_path: Path) -> None:
    best, later = tiny_model(1), tiny_model(2)
    checkpoints = Checkpoints(tmp_path, "fp-1", writer=True)
    assert not checkpoints.has_best()
    checkpoints.save_best(best)
    assert checkpoints.has_best() and (tmp_path / BEST_WEIGHTS_FILE).is_file()
    assert [p.name for p in tmp_path.iterdir()] == [BEST_WEIGHTS_FILE]  # no temporary left
    checkpoints.restore_best(later)
    assert same_weights(best, later)
