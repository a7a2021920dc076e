"""Training speed: the cnn input pipeline against model.fit on an in-memory array, and
feature extraction against scikit-image's HOG, on one core and on two.

Every comparison is measured side by side in the same run, alternating.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench import training_runs
from bench.common import Figure

# No validation: the epoch's time is the training loop fed by the pipeline. Measured with
# augmentation off and on (model.fit gets the same). 32 pixels (the default is 64) keep the
# network's share of each step small, which exposes the pipeline's own cost more, not less.
CNN_HPS = {
    "image_size": "32",
    "batch_size": "64",
    "epochs": "3",
    "augment": "false",
    "validation_fraction": "0",
}
CNN_ROUNDS = 2
_EPOCH_SPEED = re.compile(r"train [0-9.]+s \(([0-9.]+) images/s\)")
HOG_REPEATS = 5


def cnn_pipeline(
    digits: Path, work: Path, rounds: int = CNN_ROUNDS, augment: bool = False
) -> dict[str, Figure]:
    """Epoch images/s of `smvision.local train` (PNG files) vs model.fit, alternating.

    With `augment`, both apply the same augmentation layers (the default ranges): ours in
    the tf.data pipeline, model.fit's as the model's first layers. The first epoch of
    each run traces the graph and is left out of both."""
    tag, what = ("cnn_aug", ", augmentation on") if augment else ("cnn", "")
    ours = Figure(f"cnn: smvision.local train from PNG files{what} (epochs 2+)", "images/s")
    fit = Figure(f"cnn: model.fit on one in-memory array{what} (epochs 2+)", "images/s")
    ratio = Figure(f"cnn pipeline efficiency{what}: ours / model.fit (per round)", "ratio")
    epochs = int(CNN_HPS["epochs"])
    hps = CNN_HPS | {"augment": str(augment).lower()}
    for index in range(rounds):
        output, _ = training_runs.train(
            "cnn", {"train": digits / "train"}, work / f"{tag}-{index}", hps
        )
        ours_round = [float(s) for s in _EPOCH_SPEED.findall(output)][1:]
        fit_round = _model_fit_speeds(digits / "train", epochs, augment)[1:]
        ours.values += ours_round
        fit.values += fit_round
        ratio.values.append(float(np.median(ours_round) / np.median(fit_round)))
    return {f"{tag}_ours": ours, f"{tag}_fit": fit, f"{tag}_ratio": ratio}


def _model_fit_speeds(train_dir: Path, epochs: int, augment: bool) -> list[float]:
    command = [
        sys.executable,
        "-m",
        "bench.model_fit",
        str(train_dir),
        "--image-size",
        CNN_HPS["image_size"],
        "--batch-size",
        CNN_HPS["batch_size"],
        "--epochs",
        str(epochs),
    ] + (["--augment"] if augment else [])
    completed = subprocess.run(
        command, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench.model_fit failed:\n{completed.stderr[-4000:]}")
    speeds: list[float] = json.loads(completed.stdout.strip().splitlines()[-1])["images_per_second"]
    return speeds


def feature_extraction(digits: Path, repeats: int = HOG_REPEATS) -> dict[str, Figure]:
    """HOG images/s: algorithms.features (OpenCV, 1 and 2 threads) vs skimage.feature.hog."""
    from skimage.feature import hog

    from smvision.algorithms import features
    from smvision.data import dataset as data

    samples = data.list_channel(digits / "train", "train")
    names = data.class_names_of(samples)
    batch = data.load(samples, names, 64, 1, "train", 0.0).all_images()
    batch = np.concatenate([batch, batch])  # 2,156 images of 64x64, the svm default size
    ours_one = Figure("HOG: smvision.algorithms.features, 1 thread", "images/s")
    ours_two = Figure("HOG: smvision.algorithms.features, 2 threads", "images/s")
    reference = Figure("HOG: skimage.feature.hog, same cells/blocks/bins", "images/s")
    speed_up = Figure("HOG speed-up: smvision (1 thread) / skimage", "ratio")
    scaling = Figure("HOG scaling: 2 threads / 1 thread", "ratio")
    features.extract(batch[:128], "hog", workers=2)  # first-call costs out of the way
    for _ in range(repeats):
        for figure, workers in ((ours_one, 1), (ours_two, 2)):
            started = time.perf_counter()
            features.extract(batch, "hog", workers=workers)
            figure.values.append(len(batch) / (time.perf_counter() - started))
        started = time.perf_counter()
        for image in batch:
            hog(
                image[:, :, 0],
                orientations=9,
                pixels_per_cell=(8, 8),
                cells_per_block=(2, 2),
                block_norm="L2-Hys",
            )
        reference.values.append(len(batch) / (time.perf_counter() - started))
        speed_up.values.append(ours_one.values[-1] / reference.values[-1])
        scaling.values.append(ours_two.values[-1] / ours_one.values[-1])
    return {
        "hog_one": ours_one,
        "hog_two": ours_two,
        "hog_skimage": reference,
        "hog_vs_skimage": speed_up,
        "hog_scaling": scaling,
    }


FEATURE_COST_REPEATS = 3
DEEP_LARGE_SIZE = 224


def feature_costs(repeats: int = FEATURE_COST_REPEATS) -> dict[str, Figure]:
    """Milliseconds per image of each feature kind alone, on patches of real RGB photos.

    The per-image kinds on one thread (a job spreads them over every core); deep in its
    batches of 64 on TensorFlow's own threads, at 64 pixels (the svm default) and at 224
    (ImageNet's size, where ImageNet weights work best), with random weights: the cost is
    the same whatever the weights."""
    from smvision.algorithms import features
    from smvision.algorithms.features import FeatureSettings
    from smvision.algorithms.features.deep import Backbone
    from smvision.data import images
    from smvision.schema import hyperparameters
    from smvision.schema.params import FEATURE_KINDS

    patches = _photo_patches()
    batch = np.stack([images.prepare(p, 64, 3) for p in patches])
    large = np.stack([images.prepare(p, DEEP_LARGE_SIZE, 3) for p in patches[:64]])
    defaults = hyperparameters.parse({"algorithm": "svm"})  # the default settings of each kind
    settings = {
        f"features={kind}": replace(FeatureSettings.from_hyperparameters(defaults), kinds=(kind,))
        for kind in FEATURE_KINDS
    }
    backbones = {
        size: Backbone.build(size, None, "none", 0, lambda _: None)
        for size in (64, DEEP_LARGE_SIZE)
    }
    runs: list[tuple[str, np.ndarray, FeatureSettings, Backbone | None]] = [
        (f"{name}, 64x64, 1 thread", batch, s, None)
        for name, s in settings.items()
        if "deep" not in s.kinds
    ]
    runs += [
        (f"features=deep, {size}x{size}, TensorFlow threads", data, settings["features=deep"], bb)
        for (size, bb), data in zip(backbones.items(), (batch, large))
    ]
    found = {name: Figure(name, "ms per image") for name, *_ in runs}
    for _, data, chosen, backbone in runs:  # first calls: tracing, pools, caches
        features.extract(data[:64], chosen, workers=1, backbone=backbone)
    for _ in range(repeats):
        for name, data, chosen, backbone in runs:
            started = time.perf_counter()
            features.extract(data, chosen, workers=1, backbone=backbone)
            found[name].values.append(1000 * (time.perf_counter() - started) / len(data))
    return {f"feature cost/{name}": figure for name, figure in found.items()}


def _photo_patches(count: int = 300, side: int = 96) -> list[np.ndarray]:
    """Random crops of scikit-learn's two sample photographs (china, flower), RGB."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    patches = []
    for index in range(count):
        photo = photos[index % len(photos)]
        y = int(rng.integers(0, photo.shape[0] - side))
        x = int(rng.integers(0, photo.shape[1] - side))
        patches.append(photo[y : y + side, x : x + side])
    return patches


# Photographs, not 8x8 scans: decoding a JPEG costs what it costs in real data sets.
PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket")
PHOTO_CROPS = 150
PHOTO_CROP = (240, 320)
STREAMING_HPS = {
    "image_size": "64",
    "batch_size": "64",
    "epochs": "3",
    "augment": "false",
    "validation_fraction": "0",
}
STREAMING_MODES = {
    "memory": {},
    "cache": {"data_memory_mb": "0"},
    "decoded as read": {"data_memory_mb": "0", "decoded_cache": "false"},
}


def photo_crops(root: Path, seed: int = 0) -> Path:
    """PHOTO_CROPS random 320x240 JPEG crops of each of four scikit-image photographs, a
    class per photograph, in class folders."""
    import cv2
    from skimage import data as skimage_data

    rng = np.random.default_rng(seed)
    for name in PHOTO_NAMES:
        photo = np.ascontiguousarray(getattr(skimage_data, name)())
        folder = root / name
        folder.mkdir(parents=True)
        height, width = PHOTO_CROP
        for index in range(PHOTO_CROPS):
            y = int(rng.integers(0, photo.shape[0] - height + 1))
            x = int(rng.integers(0, photo.shape[1] - width + 1))
            crop = cv2.cvtColor(photo[y : y + height, x : x + width], cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(folder / f"{name}-{index:03d}.jpg"), crop)
    return root


def cnn_streaming(work: Path, rounds: int = CNN_ROUNDS) -> dict[str, Figure]:
    """Epoch images/s of cnn with its decoded images in memory, in the decoded cache
    (data_memory_mb=0) and decoded as read (decoded_cache=false), alternating; 600 JPEG
    photographs at 64 pixels. The first epoch of each run traces and is left out."""
    photos = photo_crops(work / "photos")
    figures = {
        mode: Figure(f"cnn, 600 JPEG photos, decoded images {mode} (epochs 2+)", "images/s")
        for mode in STREAMING_MODES
    }
    for index in range(rounds):
        for mode, extra in STREAMING_MODES.items():
            job = work / f"cnn-streaming-{index}-{mode.replace(' ', '-')}"
            output, _ = training_runs.train("cnn", {"train": photos}, job, STREAMING_HPS | extra)
            figures[mode].values += [float(s) for s in _EPOCH_SPEED.findall(output)][1:]
    ratios = {
        f"stream_{key}_ratio": Figure(f"cnn streaming efficiency: {mode} / memory", "ratio")
        for key, mode in (("cache", "cache"), ("decode", "decoded as read"))
    }
    memory = float(np.median(figures["memory"].values))
    ratios["stream_cache_ratio"].values.append(float(np.median(figures["cache"].values)) / memory)
    ratios["stream_decode_ratio"].values.append(
        float(np.median(figures["decoded as read"].values)) / memory
    )
    return {
        "stream_memory": figures["memory"],
        "stream_cache": figures["cache"],
        "stream_decode": figures["decoded as read"],
        **ratios,
    }
