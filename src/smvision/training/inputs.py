"""What a job trains on: its channels listed, labelled, split, sharded and decoded.

`load_data` reads the train, validation and test channels (a directory, or a Pipe-mode
FIFO; channels.py), turns their labels into class names (a set of them per image for a
multi-label job), holds out validation when there is no validation channel, gives this
worker its shard of train, and decodes every image once, into memory or, past the
memory budget, into a cache file on the training volume (memory.py).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from smvision.core.contract import Contract
from smvision.data import channels, dataset, memory_budget
from smvision.data.dataset import DataError, Dataset, Sample, Storage
from smvision.schema import specs
from smvision.schema.hyperparameters import Hyperparameters
from smvision.training import distributed

log = logging.getLogger(__name__)

DATA_CHANNELS = ("train", "validation", "test")


@dataclass
class JobData:
    """This worker's decoded data sets; `class_names` as the model will name its outputs."""

    class_names: list[str]
    channels: int
    train: Dataset
    validation: Dataset | None
    test: Dataset | None
    train_total: int
    # What this host's train images were decoded from (their sizes as stored).
    train_samples: list[Sample]
    image_size: int
    # How image_size was chosen, for metadata.json.
    image_size_reason: str
    # Images per class (per label, for multi-label) in all of train, before any is skipped.
    train_class_counts: dict[str, int]
    multi_label: bool = False
    storage: Storage = Storage()
    # What validation and test were decoded from (the data report reads their sizes).
    validation_samples: list[Sample] = field(default_factory=list)
    test_samples: list[Sample] = field(default_factory=list)


@dataclass
class ChannelSamples:
    """The job's labelled images before decoding; `split`: validation was held out of train.

    `class_ids` are the labels as the channels spell them; `class_names` what the model
    calls them (a manifest's metadata may name class ids)."""

    class_ids: list[str]
    class_names: list[str]
    train: list[Sample]
    validation: list[Sample]
    test: list[Sample]
    split: bool


def load_data(
    contract: Contract,
    hp: Hyperparameters,
    cluster: distributed.Cluster,
    budget: int | None = None,
) -> JobData:
    """List, split, shard and decode the channels this job was given.

    `budget`: the bytes decoded images may take in memory (None: no limit)."""
    samples = list_samples(contract, hp)
    image_channels = _channels(hp, samples.train)
    size, size_reason = _image_size(hp, samples.train)
    limit = hp.real("max_corrupt_fraction")
    multi_label = hp.flag("multi_label")
    # Each worker decodes only its shard of train; validation is small and every worker
    # holds all of it (the training loop evaluates its own slice, the chief reports it all).
    own_train = dataset.shard(samples.train, cluster.worker_index, cluster.worker_count)
    if not own_train:
        raise DataError(
            f"Channel 'train' has {len(samples.train)} images for {cluster.worker_count} hosts, "
            f"so host {cluster.current_host} has none to train on; give the job at least one "
            "train image per host, or fewer instances."
        )
    own_test = samples.test if cluster.is_chief else []
    count = len(own_train) + len(samples.validation) + len(own_test)
    storage = Storage()
    if budget is not None:
        decoded = count * size * size * image_channels
        storage = memory_budget.plan_storage(
            decoded, budget, _cache_allowed(hp), contract.scratch_dir
        )
    started = time.perf_counter()

    def decode(part: list[Sample], channel: str, check: bool = True) -> Dataset:
        return dataset.load(
            part,
            samples.class_ids,
            size,
            image_channels,
            channel,
            limit if check else None,
            scaled_jpeg=hp.flag("scaled_jpeg_decode"),
            multi_label=multi_label,
            storage=storage,
            max_pixels=int(hp.real("max_image_megapixels") * 1_000_000),
        )

    # A held-out part is still the train channel: its unreadable files are judged as one.
    train = decode(own_train, "train", check=not samples.split)
    validation = decode(samples.validation, "validation", check=not samples.split)
    if samples.split:
        dataset.check_corrupt(
            train.skipped + validation.skipped,
            len(own_train) + len(samples.validation),
            "train",
            limit,
            train.too_large + validation.too_large,
        )
    test = decode(own_test, "test") if own_test else None
    log.info(
        "Loaded %d train, %d validation, %d test images as %dx%dx%d (%s) in %.1f s; %s: %s",
        len(train),
        len(validation),
        len(test or []),
        size,
        size,
        image_channels,
        {"memory": "in memory", "cache": "cached on disk", "stream": "decoded as read"}[
            storage.kind
        ],
        time.perf_counter() - started,
        "labels" if multi_label else "classes",
        ", ".join(samples.class_names),
    )
    return JobData(
        samples.class_names,
        image_channels,
        train,
        validation if samples.validation else None,
        test,
        len(samples.train),
        own_train,
        size,
        size_reason,
        _class_counts(samples),
        multi_label,
        storage,
        list(samples.validation),
        list(own_test),
    )


def _cache_allowed(hp: Hyperparameters) -> bool:
    return bool(hp.values.get("decoded_cache", True))


def list_samples(contract: Contract, hp: Hyperparameters) -> ChannelSamples:
    """Every channel's labelled images; validation from its channel, else held out of train."""
    available = contract.available_channels()
    if "train" not in available:
        raise DataError(
            f"Channel 'train' is missing: expected it at {contract.channel_dir('train')}. "
            "Give the job a 'train' input (class sub-folders, .lst, .rec or .npz files, or an "
            "augmented manifest in Pipe mode)."
        )
    listings = {c: channels.list_job_channel(contract, c) for c in DATA_CHANNELS if c in available}
    multi_label = hp.flag("multi_label")
    decoded = dataset.decode_labels(
        {name: listing.samples for name, listing in listings.items()},
        multi_label,
        _label_format(contract, hp),
    )
    train = decoded["train"]
    class_ids = dataset.class_names_of(train, multi_label=multi_label)
    for channel in ("validation", "test"):
        dataset.check_known_classes(decoded.get(channel, []), class_ids, channel)
    names = {k: v for listing in listings.values() for k, v in listing.class_names.items()}
    validation, test = decoded.get("validation", []), decoded.get("test", [])
    fraction = hp.real("validation_fraction")
    split = "validation" not in available and fraction > 0
    if split:
        train, validation = dataset.stratified_split(train, fraction, hp.integer("seed"))
        log.info(
            "No validation channel: held out %d of %d train images (validation_fraction=%s, "
            "stratified).",
            len(validation),
            len(validation) + len(train),
            fraction,
        )
    return ChannelSamples(
        class_ids, display_names(class_ids, names), train, validation, test, split
    )


def _label_format(contract: Contract, hp: Hyperparameters) -> str:
    """The label_format hyperparameter; when auto, the train channel's ContentType's."""
    chosen = hp.text("label_format")
    if chosen != "auto":
        return chosen
    config = contract.channel_inputs().get("train")
    return (config.label_format if config else None) or "auto"


def display_names(class_ids: list[str], names: dict[str, str]) -> list[str]:
    """Class ids as the manifest's metadata names them; the ids when unnamed or ambiguous."""
    shown = [names.get(class_id, class_id) for class_id in class_ids]
    if len(set(shown)) != len(shown):
        log.warning(
            "The manifest's metadata gives two classes the same name; the model names its "
            "classes by id instead: %s",
            ", ".join(class_ids),
        )
        return list(class_ids)
    return shown


def _image_size(hp: Hyperparameters, train_samples: list[Sample]) -> tuple[int, str]:
    """The image_size hyperparameter, or for "auto" the size the training images call for."""
    if hp.values["image_size"] != "auto":
        return hp.integer("image_size"), "hyperparameter image_size"
    if "deep" in str(hp.values.get("features", "")).split("+"):
        # ImageNet features are worth what they are at the backbone's own input: on one
        # two-class photo set, svm on deep features scored 0.797 at 64 px and 0.941 at 224.
        size = specs.IMAGENET_IMAGE_SIZE
        reason = (
            f"image_size auto with features=deep: the ResNet50 backbone's native input, {size} px"
        )
        log.info("%s.", reason)
        return size, reason
    side = dataset.median_side(train_samples)
    size = hp.spec.auto_image_size(side or hp.spec.auto_image_size_range[1])
    low, high = hp.spec.auto_image_size_range
    reason = (
        f"image_size auto: the training images' median longer side is {side} px; rounded up "
        f"to a multiple of 8 within {low}-{high} px: {size}"
    )
    log.info("%s.", reason)
    return size, reason


def _channels(hp: Hyperparameters, train_samples: list[Sample]) -> int:
    if hp.spec.channels != "auto":
        return hp.spec.channels
    grayscale = hp.auto_flag("grayscale")
    if grayscale is None:
        grayscale = dataset.all_grey(train_samples)
    return 1 if grayscale else 3


def _class_counts(samples: ChannelSamples) -> dict[str, int]:
    """Train images per class name (a multi-label image counts once for each of its labels)."""
    counts = Counter(class_id for s in samples.train for class_id in set(s.labels))
    return {
        name: counts[class_id] for class_id, name in zip(samples.class_ids, samples.class_names)
    }
