"""The yardstick for the cnn input pipeline: Keras `model.fit` on one in-memory uint8 array.

    python -m bench.model_fit TRAIN_DIR --image-size 32 --batch-size 64 --epochs 3 [--augment]

The same network (`CNNAlgorithm.build_model`), optimizer, batch size and seed as
`smvision.local train`, fed the channel's images decoded up front into one float32
array; prints the images/s of each epoch as JSON. With --augment, the job's augmentation
layers (the default ranges) run as the model's first layers, as Keras' guides place them.
It runs in its own process, as the training job does, so neither inherits the other's
TensorFlow state.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def epoch_speeds(
    train_dir: Path, image_size: int, batch_size: int, epochs: int, augment: bool = False
) -> list[float]:
    """images/s of every epoch of model.fit (the first one includes tracing)."""
    import keras

    from smvision.algorithms.augmentation import augmenter
    from smvision.algorithms.cnn import CNNAlgorithm
    from smvision.data import dataset
    from smvision.schema import hyperparameters

    samples = dataset.list_channel(train_dir, "train")
    names = dataset.class_names_of(samples)
    train = dataset.load(samples, names, image_size, 1, "train", 0.0)
    hp = hyperparameters.parse(
        {
            "algorithm": "cnn",
            "image_size": str(image_size),
            "batch_size": str(batch_size),
            "augment": str(augment),
        }
    )
    keras.utils.set_random_seed(hp.integer("seed"))
    model = CNNAlgorithm(image_size, 1, len(names)).build_model(hp, None)  # type: ignore[arg-type]
    layers = augmenter(hp, image_size)
    if layers is not None:  # active in fit, inactive in predict: Keras' training flag
        inputs = keras.Input(model.input_shape[1:])
        model = keras.Model(inputs, model(layers(inputs)))
    model.compile(
        optimizer=keras.optimizers.Adam(hp.real("learning_rate")),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    pixels = train.all_images().astype("float32")
    speeds: list[float] = []

    class Timer(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            speeds.append(len(pixels) / (time.perf_counter() - self.started))

    model.fit(
        pixels,
        train.labels,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[Timer()],
    )
    return speeds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("train_dir", type=Path)
    parser.add_argument("--image-size", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--augment", action="store_true")
    args = parser.parse_args(argv)
    speeds = epoch_speeds(
        args.train_dir, args.image_size, args.batch_size, args.epochs, args.augment
    )
    print(json.dumps({"images_per_second": speeds}))


if __name__ == "__main__":
    main()
