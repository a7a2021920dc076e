"""The built-in algorithms' data formats: .rec (File and Pipe mode), augmented manifests in
Pipe mode through a real FIFO, .lst label columns, and unreadable records.

Every channel is written from real images (scikit-learn's digits, scikit-image's LFW
faces) by `smvision.local.samples`, which follows im2rec's and Ground Truth's layouts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from smvision.core import contract
from smvision.data import channels, dataset, recordio
from smvision.data.dataset import DataError
from smvision.data.recordio import ImageRecord
from smvision.local.job_dir import PipeChannel, lay_out_job, start_pipes
from smvision.local.samples import digit_traits_set, digits_set, export, faces_set
from tests.support.training_jobs import TrainJob


@pytest.fixture(scope="session")
def sample_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """digits as .rec and .lst, faces as manifests, digit traits (multi-label) as .lst."""
    root = tmp_path_factory.mktemp("formats")
    written = {
        "digits-rec": (digits_set(), "rec"),
        "digits-lst": (digits_set(), "lst"),
        "faces-manifest": (faces_set(), "manifest"),
        "traits-lst": (digit_traits_set(), "lst"),
        "traits-manifest": (digit_traits_set(), "manifest"),
    }
    for name, (labelled, file_format) in written.items():
        export(labelled, root / name, file_format)
    return {name: root / name for name in written}


def test_rec_files_list_their_header_labels_and_decode_their_images(
    sample_sets: dict[str, Path],
) -> None:
    samples = dataset.list_channel(sample_sets["digits-rec"] / "test", "test")
    as_lst = dataset.list_channel(sample_sets["digits-lst"] / "test", "test")
    assert len(samples) == len(as_lst) == 360
    assert samples[0].source == "test.rec#0" and samples[0].offset == 0
    assert [s.label for s in samples] == [s.label for s in as_lst]
    names = dataset.class_names_of(samples)
    from_rec = dataset.load(samples, names, 8, 1, "test", 0.0)
    from_png = dataset.load(as_lst, names, 8, 1, "test", 0.0)
    np.testing.assert_array_equal(from_rec.all_images(), from_png.all_images())
    np.testing.assert_array_equal(from_rec.labels, from_png.labels)


def test_a_record_that_does_not_decode_counts_like_a_bad_file(tmp_path: Path) -> None:
    pictures = digits_set().pixels
    good = [
        recordio.pack_image(ImageRecord((float(i % 2),), _png(pictures[i]), id=i))
        for i in range(20)
    ]
    broken = recordio.pack_image(ImageRecord((1.0,), _png(pictures[20])[:30], id=20))
    with (tmp_path / "train.rec").open("wb") as stream:
        for payload in [*good, broken]:
            recordio.write_record(stream, payload)
    samples = dataset.list_channel(tmp_path, "train")
    loaded = dataset.load(samples, ["0", "1"], 8, 1, "train", 0.05)
    assert len(loaded) == 20 and loaded.skipped[0][0] == "train.rec#20"
    with pytest.raises(DataError, match=r"1 unreadable images of 21 .*train.rec#20"):
        dataset.load(samples, ["0", "1"], 8, 1, "train", 0.01)


def test_a_truncated_rec_file_is_refused_with_its_name(tmp_path: Path) -> None:
    recordio.write_image_records(tmp_path / "cut.rec", [ImageRecord((0.0,), b"x" * 400)])
    (tmp_path / "cut.rec").write_bytes((tmp_path / "cut.rec").read_bytes()[:-100])
    with pytest.raises(DataError, match="cut.rec: the last record runs past the end"):
        dataset.list_channel(tmp_path, "train")


def test_lst_label_columns_are_multi_hot_labels(sample_sets: dict[str, Path]) -> None:
    listed = dataset.list_channel(sample_sets["traits-lst"] / "test", "test")
    assert listed[0].values == (1.0, 1.0, 0.0)  # digit 2: even and prime
    with pytest.raises(DataError, match=r"has 3 labels \(\[1, 1, 0\]\).*set multi_label=true"):
        dataset.decode_labels({"train": listed}, multi_label=False)
    decoded = dataset.decode_labels({"train": listed}, multi_label=True)["train"]
    assert decoded[0].labels == ("0", "1")
    assert dataset.class_names_of(decoded, multi_label=True) == ["0", "1", "2"]
    matrix = dataset.label_array(decoded, ["0", "1", "2"], multi_label=True)
    np.testing.assert_array_equal(matrix[0], [1, 1, 0])
    # The same rows read as class ids name other classes.
    as_ids = dataset.decode_labels({"train": listed}, True, "class-id")["train"]
    assert as_ids[0].labels == ("1", "0")


def test_npz_rows_of_zeros_and_ones_are_multi_label(tmp_path: Path) -> None:
    traits = digit_traits_set()
    y = np.array([[name in labels for name in traits.class_names] for labels in traits.labels[:30]])
    np.savez(tmp_path / "traits.npz", x=traits.pixels[:30], y=y.astype(np.uint8))
    decoded = dataset.decode_labels({"train": dataset.list_channel(tmp_path, "train")}, True)[
        "train"
    ]
    assert [list(s.labels) for s in decoded[:3]] == [
        [str(i) for i, bit in enumerate(row) if bit] for row in y[:3]
    ]


def pipe_job(tmp_path: Path, manifest: Path, names: tuple[str, ...]) -> contract.Contract:
    job = lay_out_job(
        tmp_path / "job",
        {"train": manifest},
        {"algorithm": "svm"},
        pipes={"train": PipeChannel(manifest, names)},
    )
    start_pipes(job, {"train": PipeChannel(manifest, names)})
    return job


def test_a_manifest_channel_streams_through_a_fifo_with_its_class_names(
    sample_sets: dict[str, Path], tmp_path: Path
) -> None:
    manifest = sample_sets["traits-manifest"] / "validation" / "validation.manifest"
    job = pipe_job(tmp_path, manifest, ("source-ref", "class", "class-metadata"))
    assert job.channel_inputs()["train"].mode == "Pipe"
    assert job.available_channels() == ["train"]
    listing = channels.list_job_channel(job, "train")
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(listing.samples) == len(lines) == 359
    assert [list(s.values) for s in listing.samples[:5]] == [line["class"] for line in lines[:5]]
    assert listing.class_names == {"0": "even", "1": "prime", "2": "large"}
    image = listing.samples[7].read_bytes()
    assert image == (manifest.parent / lines[7]["source-ref"]).read_bytes()


def test_a_manifest_line_whose_image_is_broken_is_skipped_within_the_limit(
    sample_sets: dict[str, Path], tmp_path: Path
) -> None:
    source = sample_sets["faces-manifest"] / "test"
    shutil.copytree(source, tmp_path / "faces")
    manifest = tmp_path / "faces" / "test.manifest"
    first = json.loads(manifest.read_text().splitlines()[0])
    broken = tmp_path / "faces" / first["source-ref"]
    broken.write_bytes(broken.read_bytes()[:40])
    job = pipe_job(tmp_path, manifest, ("source-ref", "class"))
    samples = channels.list_job_channel(job, "train").samples
    loaded = dataset.load(samples, ["0", "1"], 16, 1, "train", 0.05)
    assert len(loaded) == 39 and loaded.skipped[0][0] == "train line 1"


def _png(pixels: np.ndarray) -> bytes:
    import cv2

    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return bytes(encoded.tobytes())


# Whole jobs ---------------------------------------------------------------------------------


def test_svm_trains_on_rec_files_in_file_and_pipe_mode(
    train_job: TrainJob, sample_sets: dict[str, Path]
) -> None:
    digits = sample_sets["digits-rec"]
    job = train_job(
        "svm",
        {
            "train": digits / "train",
            "validation": digits / "validation",
            "test": sample_sets["digits-lst"] / "test",
        },
        {"image_size": "16"},
        pipes=["validation"],
    )
    assert job.returncode == 0, job.output[-3000:]
    assert "Pipe-mode channel 'validation': 359 images" in job.output
    assert job.metadata["class_names"] == [str(d) for d in range(10)]
    inputs = json.loads((job.ml / "input" / "config" / "inputdataconfig.json").read_text())
    assert inputs["validation"]["TrainingInputMode"] == "Pipe"
    assert inputs["train"]["TrainingInputMode"] == "File"
    assert job.evaluation["test"]["accuracy"] > 0.9
    assert job.evaluation["validation"]["count"] == 359


def test_svm_trains_on_a_ground_truth_manifest_in_pipe_mode(
    train_job: TrainJob, sample_sets: dict[str, Path]
) -> None:
    faces = sample_sets["faces-manifest"]
    job = train_job(
        "svm",
        {},
        {"image_size": "24", "eval_metric": "auc"},
        manifests={
            "train": faces / "train" / "train.manifest",
            "test": faces / "test" / "test.manifest",
        },
        attribute_names=("source-ref", "class", "class-metadata"),
    )
    assert job.returncode == 0, job.output[-3000:]
    assert job.metadata["class_names"] == ["face", "nonface"]
    test = job.evaluation["test"]
    assert test["positive_class"] == "nonface" and test["auc"] > 0.9
    assert {"test:auc", "test:pr_auc", "test:precision", "validation:auc"} <= set(job.metrics())
    assert (job.ml / "output" / "data" / "roc_pr_curves.png").stat().st_size > 10_000


def test_inputdataconfig_gives_each_channel_its_mode_wrapper_and_label_format(
    tmp_path: Path,
) -> None:
    job = contract.load({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    job.config_dir.mkdir(parents=True)
    job.input_data_config_file.write_text(
        json.dumps(
            {
                "train": {
                    "TrainingInputMode": "Pipe",
                    "RecordWrapperType": "RecordIO",
                    "ContentType": "application/x-recordio; label-format=class-id",
                },
                "test": {"TrainingInputMode": "FastFile", "RecordWrapperType": "None"},
            }
        )
    )
    inputs = job.channel_inputs()
    assert (inputs["train"].mode, inputs["train"].record_wrapper) == ("Pipe", "RecordIO")
    assert inputs["train"].label_format == "class-id"
    assert (inputs["test"].mode, inputs["test"].record_wrapper) == ("FastFile", None)
    assert inputs["test"].label_format is None
    assert job.pipe_path("train", 3) == job.data_dir / "train_3"
    job.input_data_config_file.write_text(json.dumps({"train": {"TrainingInputMode": "Stream"}}))
    with pytest.raises(contract.ContractError, match="TrainingInputMode 'Stream'"):
        job.channel_inputs()
