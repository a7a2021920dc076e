"""Request decoding, response encoding, micro-batching and server settings: no HTTP, no server.

The serving tests (tests/server/test_serve.py) cover the same paths through the real server;
these pin down the details, one function at a time, on real images and a real model.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import queue
import threading
import tracemalloc
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smvision.core import contract
from smvision.core.machine import available_cores
from smvision.core.media import ACCEPT_TYPES, CONTENT_TYPES, CSV, JSON, JSON_LINES
from smvision.data import dataset as data
from smvision.data import images
from smvision.data.bodies import (
    InputError,
    UnsupportedContentTypeError,
    check_content_type,
    decode_request,
    read_npy,
)
from smvision.serving.batcher import BatcherStoppedError, MicroBatcher
from smvision.serving.codecs import (
    UnsupportedAcceptError,
    choose_accept,
    encode_predictions,
    parse_top_k,
)
from smvision.serving.inference import MAX_BATCH_IMAGES, Predictor, Request
from smvision.serving.main import Worker, gunicorn_options
from smvision.serving.settings import (
    GRACEFUL_SHUTDOWN_S,
    ModelDirectoryError,
    inference_threads,
    settings_from,
)
from tests.support.gated_algorithm import (
    BATCH_LOG,
    PREDICT_GATE,
    FailsOnBlackError,
    GatedSVM,
    batch_sizes,
    let_through,
    make_gate,
    waiter_at,
)
from tests.support.photos import encode, grey_photo, photo
from tests.support.serving import JobDirs, npy

# Content-Type, Accept, custom attributes ------------------------------------------------------


def test_content_types_ignore_case_and_parameters() -> None:
    assert check_content_type("Image/PNG") == "image/png"
    assert check_content_type("application/json; charset=utf-8") == JSON
    assert set(CONTENT_TYPES) >= {"image/jpeg", "image/webp", "application/x-npy", JSON_LINES}


@pytest.mark.parametrize(
    "header, shown",
    [
        pytest.param("text/plain", "'text/plain'", id="text/plain"),
        pytest.param(None, "missing", id="no header"),
        pytest.param("", "missing", id="empty header"),
    ],
)
def test_an_unsupported_content_type_names_it_and_lists_the_supported_ones(
    header: str | None, shown: str
) -> None:
    with pytest.raises(UnsupportedContentTypeError) as error:
        check_content_type(header)
    assert f"Content-Type {shown} is not supported" in str(error.value)
    assert ", ".join(CONTENT_TYPES) in str(error.value)


@pytest.mark.parametrize(
    "header, chosen",
    [
        (None, JSON),
        ("", JSON),
        ("application/json", JSON),
        ("Application/JSONLines", JSON_LINES),
        ("text/csv; charset=utf-8", CSV),
        ("*/*", JSON),
        ("text/*", CSV),
        ("text/html, application/xhtml+xml, */*;q=0.8", JSON),
        ("application/json;q=0.5, text/csv", CSV),
        ("text/csv;q=0.2, application/jsonlines;q=0.9", JSON_LINES),
    ],
)
def test_accept_picks_the_most_preferred_type_we_write(header: str | None, chosen: str) -> None:
    assert choose_accept(header) == chosen


@pytest.mark.parametrize(
    "header", ["application/xml", "text/html, image/png", "application/json;q=0"]
)
def test_an_accept_we_cannot_answer_lists_what_we_can(header: str) -> None:
    with pytest.raises(UnsupportedAcceptError) as error:
        choose_accept(header)
    assert header in str(error.value) and ", ".join(ACCEPT_TYPES) in str(error.value)


@pytest.mark.parametrize(
    "attributes, top_k",
    [
        (None, None),
        ("", None),
        ("top_k=3", 3),
        ("trace=xyz, top_k=1", 1),
        ("a=1;TOP_K= 5", 5),
        ("k=2", None),
    ],
)
def test_top_k_comes_from_the_custom_attributes(attributes: str | None, top_k: int | None) -> None:
    assert parse_top_k(attributes) == top_k


@pytest.mark.parametrize("attributes", ["top_k=0", "top_k=-2", "top_k=three", "top_k=2.5"])
def test_a_bad_top_k_is_refused_with_its_value(attributes: str) -> None:
    with pytest.raises(InputError, match="top_k=.*whole number >= 1"):
        parse_top_k(attributes)


# Decoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type, suffix",
    [
        ("image/png", ".png"),
        ("image/jpeg", ".jpg"),
        ("image/bmp", ".bmp"),
        ("image/tiff", ".tiff"),
        ("image/webp", ".webp"),
        ("application/x-image", ".png"),
    ],
)
def test_image_bodies_decode_exactly_as_training_decodes_files(
    content_type: str, suffix: str
) -> None:
    data = encode(photo("chelsea"), suffix)
    [decoded] = decode_request(data, content_type)
    np.testing.assert_array_equal(decoded, images.decode_image(data))


def test_npy_bodies_of_every_accepted_shape_and_dtype() -> None:
    china, camera = photo("china"), grey_photo("camera")
    [grey] = decode_request(npy(camera), "application/x-npy")
    np.testing.assert_array_equal(grey, camera[:, :, np.newaxis])
    [colour] = decode_request(npy(np.asfortranarray(china)), "application/x-npy")
    np.testing.assert_array_equal(colour, china)
    [scaled] = decode_request(npy(china / 255.0), "application/x-npy")
    np.testing.assert_array_equal(scaled, images.from_array(china / 255.0))
    [deep] = decode_request(npy(camera.astype(np.uint16) * 257), "application/x-npy")
    np.testing.assert_array_equal(deep, camera[:, :, np.newaxis])
    crops = np.stack([china[:100, :100], china[100:200, :100], china[200:300, :100]])
    batch = decode_request(npy(crops), "application/x-npy")
    assert len(batch) == 3
    np.testing.assert_array_equal(np.stack(batch), crops)


def test_an_npy_header_must_agree_with_the_bytes_after_it() -> None:
    body = npy(grey_photo("camera"))
    with pytest.raises(
        InputError, match=r"declares shape \(512, 512\) of uint8 \(262144 bytes\) but 262044"
    ):
        read_npy(body[:-100])
    with pytest.raises(InputError, match="262145 bytes follow"):
        read_npy(body + b"\0")


def test_an_npy_header_that_declares_a_huge_array_is_refused_before_allocating() -> None:
    stream = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": (10**9, 10**9, 3)}
    np.lib.format.write_array_header_1_0(stream, header)
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    try:
        with pytest.raises(InputError, match="truncated or corrupt"):
            decode_request(stream.getvalue() + b"\0" * 16, "application/x-npy")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes allocated"


@pytest.mark.parametrize(
    "array, words",
    [
        pytest.param(np.zeros((0, 8, 8, 1), np.uint8), "holds no images", id="no images"),
        pytest.param(np.zeros((8, 8, 5), np.uint8), "N x H x W x 1", id="5 channels"),
        pytest.param(
            np.zeros((2, 2, 2, 2, 2), np.uint8),
            "send H x W, H x W x C or N x H x W x C",
            id="5 dimensions",
        ),
        pytest.param(np.zeros((4,), np.uint8), "shape (4,)", id="1 dimension"),
        pytest.param(np.array(["a", "b"]), "dtype <U1", id="strings"),
        pytest.param(np.zeros((4, 4), np.complex64), "dtype complex64", id="complex"),
    ],
)
def test_npy_arrays_we_cannot_use_are_refused_with_their_shape_or_dtype(
    array: np.ndarray, words: str
) -> None:
    with pytest.raises((InputError, images.ImageError)) as error:
        decode_request(npy(array), "application/x-npy")
    assert words in str(error.value)


def test_json_instances_mix_base64_files_and_pixel_lists_in_order() -> None:
    png, jpeg = encode(photo("coffee"), ".png"), encode(photo("china"), ".jpg")
    pixels = grey_photo("coins")[:20, :30]
    floats = photo("astronaut")[:10, :12] / 255.0
    body = json.dumps(
        {
            "instances": [
                {"b64": base64.b64encode(png).decode()},
                pixels.tolist(),
                {"b64": base64.b64encode(jpeg).decode()},
                floats.tolist(),
            ]
        }
    ).encode()
    decoded = decode_request(body, JSON)
    expected = [
        images.decode_image(png),
        images.from_array(pixels),
        images.decode_image(jpeg),
        images.from_array(floats),
    ]
    for got, want in zip(decoded, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    lines = b"\n".join(json.dumps(i).encode() for i in json.loads(body)["instances"]) + b"\n\n"
    for got, want in zip(decode_request(lines, JSON_LINES), expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "content_type, body, words",
    [
        pytest.param(JSON, b"", "The body is not valid JSON", id="empty body"),
        pytest.param(JSON, b"[1, 2]", '{"instances": [...]}', id="a list, not an object"),
        pytest.param(
            JSON, b'{"instances": {"b64": ""}}', '{"instances": [...]}', id="instances not a list"
        ),
        pytest.param(
            JSON,
            b'{"instances": [{"image": "abc"}]}',
            "Instance 0 is an object without a string 'b64'",
            id="object without b64",
        ),
        pytest.param(
            JSON,
            b'{"instances": [[[0, 1]], {"b64": "not base64!"}]}',
            "Instance 1 has a 'b64' value that is not base64",
            id="bad base64",
        ),
        pytest.param(JSON, b'{"instances": [{"b64": ""}]}', "Instance 0 is empty", id="empty b64"),
        pytest.param(
            JSON,
            b'{"instances": [[[true, false]]]}',
            "Instance 0 holds bool values",
            id="boolean pixels",
        ),
        pytest.param(
            JSON,
            b'{"instances": [[[1, 2], [3, 4]], [[300, 2]]]}',
            "Instance 1 has dtype int64",
            id="pixel over 255",
        ),
        pytest.param(JSON, b'{"instances": [[[0.5, NaN]]]}', "NaN", id="NaN pixel"),
        pytest.param(JSON, b'{"instances": ["abc"]}', 'Instance 0 is "abc"', id="string instance"),
        pytest.param(JSON_LINES, b"\n\n", "holds no lines", id="no lines"),
        pytest.param(
            JSON_LINES, b"[[0, 1]]\n{oops}\n", "Line 2 is not valid JSON", id="bad second line"
        ),
    ],
)
def test_json_bodies_we_cannot_use_name_the_instance_or_line(
    content_type: str, body: bytes, words: str
) -> None:
    with pytest.raises((InputError, images.ImageError)) as error:
        decode_request(body, content_type)
    assert words in str(error.value)


# Encoding -------------------------------------------------------------------------------------

NAMES = ["cat", "dog", "fish, striped"]
PROBABILITIES = np.array([[0.1, 0.7, 0.2], [0.05, 0.15, 0.8]], dtype=np.float32)


def test_json_predictions_hold_label_probability_and_every_class() -> None:
    document = json.loads(encode_predictions(PROBABILITIES, NAMES, JSON, None))
    first, second = document["predictions"]
    assert first["label"] == "dog" and first["probability"] == float(np.float32(0.7))
    assert list(first["probabilities"]) == NAMES
    assert second["label"] == "fish, striped"
    assert second["probabilities"]["cat"] == float(np.float32(0.05))
    assert [p["predicted_label"] for p in document["predictions"]] == ["dog", "fish, striped"]
    assert "predicted_label" not in document and "probability" not in document


def test_one_image_is_also_answered_flat_at_the_top_as_model_monitor_reads_it() -> None:
    document = json.loads(encode_predictions(PROBABILITIES[1:], NAMES, JSON, 1))
    assert document["predicted_label"] == "fish, striped"
    assert document["probability"] == float(np.float32(0.8))
    [prediction] = document["predictions"]  # what existing clients read is unchanged
    assert prediction["label"] == prediction["predicted_label"] == "fish, striped"
    line = json.loads(encode_predictions(PROBABILITIES[1:], NAMES, JSON_LINES, None))
    assert (
        line["predicted_label"] == "fish, striped"
        and line["probability"] == document["probability"]
    )


def test_top_k_keeps_the_k_most_likely_classes_most_likely_first() -> None:
    document = json.loads(encode_predictions(PROBABILITIES, NAMES, JSON, 2))
    assert list(document["predictions"][0]["probabilities"]) == ["dog", "fish, striped"]
    assert list(document["predictions"][1]["probabilities"]) == ["fish, striped", "dog"]


def test_jsonlines_and_csv_hold_one_line_per_image() -> None:
    lines = encode_predictions(PROBABILITIES, NAMES, JSON_LINES, 1).decode().splitlines()
    assert [json.loads(line)["probabilities"] for line in lines] == [
        {"dog": float(np.float32(0.7))},
        {"fish, striped": float(np.float32(0.8))},
    ]
    rows = list(
        csv.reader(io.StringIO(encode_predictions(PROBABILITIES, NAMES, CSV, None).decode()))
    )
    assert rows == [
        ["dog", repr(float(np.float32(0.7)))],
        ["fish, striped", repr(float(np.float32(0.8)))],
    ]


# Predictor: a real model ----------------------------------------------------------------------


@pytest.mark.slow
def assert_same_predictions(answer: bytes, expected: bytes, tolerance: float = 1e-6) -> None:
    """Two JSON or JSON Lines answers: the same labels, probabilities within `tolerance`."""
    got = [json.loads(line) for line in answer.splitlines()]
    want = [json.loads(line) for line in expected.splitlines()]
    rows = [g.get("predictions", [g]) for g in got], [w.get("predictions", [w]) for w in want]
    for mine, theirs in zip(*rows, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert (
                a["label"] == b["label"] and a["probabilities"].keys() == b["probabilities"].keys()
            )
            for name, value in a["probabilities"].items():
                assert value == pytest.approx(b["probabilities"][name], abs=tolerance)


def test_a_batch_of_requests_is_answered_request_by_request(serving_jobs: JobDirs) -> None:
    model_dir = serving_jobs("svm") / "opt" / "ml" / "model"
    predictor = Predictor.load(model_dir)
    digits = sorted((model_dir.parent / "input" / "data" / "test").rglob("*.png"))
    good_png = Request(digits[0].read_bytes(), "image/png")
    as_csv = Request(digits[50].read_bytes(), "image/png", CSV, None)
    truncated = Request(digits[100].read_bytes()[:-30], "image/png")
    several = Request(
        npy(np.stack([images.decode_image(d.read_bytes()) for d in digits[200:205]])),
        "application/x-npy",
        JSON_LINES,
        2,
    )
    not_json = Request(b"{", JSON)
    answers = list(predictor.respond([good_png, truncated, several, not_json, as_csv]))

    assert isinstance(answers[1], images.ImageError) and "truncated" in str(answers[1])
    assert isinstance(answers[3], InputError)
    # Alone, each gets the same answer: ONNX Runtime's SVM kernels sum a batch of 7 images in
    # another order than one image, so probabilities may differ in float32's last bits.
    for request, answer in zip([good_png, several], [answers[0], answers[2]]):
        [alone] = predictor.respond([request])
        assert isinstance(answer, bytes) and isinstance(alone, bytes)
        assert_same_predictions(answer, alone)
    assert [len(json.loads(line)["probabilities"]) for line in answers[2].splitlines()] == [2] * 5  # type: ignore[union-attr]
    [[label, probability]] = csv.reader(io.StringIO(answers[4].decode()))  # type: ignore[union-attr]
    as_csv_expected = predictor.algorithm.predict_proba([images.decode_image(as_csv.body)])[0]
    assert label == predictor.class_names[int(np.argmax(as_csv_expected))]
    assert float(probability) == pytest.approx(float(as_csv_expected.max()), abs=1e-6)
    single = json.loads(answers[0])["predictions"][0]  # type: ignore[arg-type]
    proba = predictor.algorithm.predict_proba([images.decode_image(good_png.body)])[0]
    assert single["probability"] == pytest.approx(float(proba.max()), abs=1e-6)


@pytest.mark.slow
def test_the_warm_up_request_is_a_png_the_model_answers(serving_jobs: JobDirs) -> None:
    predictor = Predictor.load(serving_jobs("svm") / "opt" / "ml" / "model")
    request = predictor.warm_up_request()
    assert request.body[:4] == b"\x89PNG" and request.content_type == "image/png"
    assert images.probe(request.body)[:2] == (predictor.algorithm.image_size,) * 2
    [answer] = list(predictor.respond([request]))
    assert isinstance(answer, bytes), answer
    # The answer is the model's for the image the request holds.
    expected = predictor.algorithm.predict_proba([images.decode_image(request.body)])[0]
    prediction = json.loads(answer)["predictions"][0]
    assert prediction["label"] == predictor.class_names[int(np.argmax(expected))]
    assert prediction["probability"] == pytest.approx(float(expected.max()), abs=1e-6)


def gated_predictor(
    serving_jobs: JobDirs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[Predictor, list[bytes]]:
    """The digits svm as GatedSVM (raises on an all-black image, logs its batch sizes to
    tmp_path/batches.log), and some digit PNGs it never trained on."""
    model_dir = serving_jobs("svm") / "opt" / "ml" / "model"
    monkeypatch.setenv(BATCH_LOG, str(tmp_path / "batches.log"))
    predictor = Predictor(GatedSVM.load(model_dir), CLASS_NAMES)
    test = sorted((model_dir.parent / "input" / "data" / "test").rglob("*.png"))
    return predictor, [path.read_bytes() for path in test[:120]]


CLASS_NAMES = [str(d) for d in range(10)]
BLACK = encode(np.zeros((16, 16), np.uint8), ".png")


@pytest.mark.slow
def test_a_request_the_model_raises_on_fails_alone_and_the_batch_gets_its_answers(
    serving_jobs: JobDirs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    predictor, digits = gated_predictor(serving_jobs, monkeypatch, tmp_path)
    good, also_good = Request(digits[0], "image/png"), Request(digits[60], "image/png", CSV)
    black = Request(BLACK, "image/png")

    answers = list(predictor.respond([good, black, also_good]))

    assert isinstance(answers[1], FailsOnBlackError)
    assert [answers[0]] == list(predictor.respond([good]))
    assert [answers[2]] == list(predictor.respond([also_good]))
    # One call for the whole batch, which raised; then one per request.
    assert batch_sizes(tmp_path / "batches.log")[:4] == [3, 1, 1, 1]


@pytest.mark.slow
def test_predictions_hold_at_most_32_images_and_a_larger_request_is_predicted_alone(
    serving_jobs: JobDirs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    predictor, digits = gated_predictor(serving_jobs, monkeypatch, tmp_path)
    decoded = [images.decode_image(data) for data in digits[:100]]
    hundred = Request(npy(np.stack(decoded)), "application/x-npy")
    one, two, three = (Request(digits[i], "image/png") for i in (100, 101, 102))

    answers = list(predictor.respond([one, two, hundred, three]))

    assert isinstance(answers[2], bytes), answers[2]
    got = [p["probabilities"] for p in json.loads(answers[2])["predictions"]]
    expected = predictor.algorithm.predict_proba(decoded)
    np.testing.assert_allclose([[row[n] for n in CLASS_NAMES] for row in got], expected, atol=1e-6)
    for request, answer in zip([one, two, three], [answers[0], answers[1], answers[3]]):
        assert [answer] == list(predictor.respond([request]))
    slices = batch_sizes(tmp_path / "batches.log")[:6]
    assert slices == [2] + [MAX_BATCH_IMAGES] * 3 + [100 - 3 * MAX_BATCH_IMAGES, 1]


@pytest.mark.slow
def test_decoding_runs_on_at_most_the_threads_it_was_given(
    serving_jobs: JobDirs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    algorithm = gated_predictor(serving_jobs, monkeypatch, tmp_path)[0].algorithm
    predictor = Predictor(algorithm, CLASS_NAMES, threads=3)
    flat = encode(np.full((1000, 1000), 200, np.uint8), ".png")

    before = set(threading.enumerate())
    answers = list(predictor.respond([Request(flat, "image/png")] * 12))

    # Twelve answers, all the same: one image sent twelve times.
    assert len(answers) == 12 and isinstance(answers[0], bytes), answers[0]
    assert answers == [answers[0]] * 12
    # The threads this predictor started (another test's pool may still be alive).
    decoders = [t for t in set(threading.enumerate()) - before if t.name.startswith("decode")]
    assert 1 <= len(decoders) <= predictor.threads == 3, decoders


# MicroBatcher ---------------------------------------------------------------------------------


class RecordingSquares:
    """Squares numbers, records each batch; the first batch waits until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        self.started.set()
        self.release.wait(timeout=10)
        return [ValueError(f"{n} is negative") if n < 0 else n * n for n in items]


def test_requests_that_arrive_while_the_thread_is_busy_form_the_next_batch() -> None:
    work = RecordingSquares()
    batcher: MicroBatcher[int, int] = MicroBatcher(work, max_batch=4)
    batcher.start()
    first = batcher.submit(1)
    assert work.started.wait(timeout=10)
    rest = [batcher.submit(n) for n in range(2, 12)]
    work.release.set()
    assert first.result(timeout=10) == 1
    assert [f.result(timeout=10) for f in rest] == [n * n for n in range(2, 12)]
    assert work.batches == [[1], [2, 3, 4, 5], [6, 7, 8, 9], [10, 11]]
    batcher.stop(timeout=10)


def test_an_item_that_fails_fails_alone() -> None:
    work = RecordingSquares()
    work.release.set()
    batcher: MicroBatcher[int, int] = MicroBatcher(work, max_batch=8)
    batcher.start()
    futures = [batcher.submit(n) for n in (3, -1, 4)]
    assert futures[0].result(timeout=10) == 9 and futures[2].result(timeout=10) == 16
    with pytest.raises(ValueError, match="-1 is negative"):
        futures[1].result(timeout=10)
    batcher.stop(timeout=10)


def test_a_batch_that_raises_fails_its_items_and_the_thread_goes_on() -> None:
    def explode_on_seven(items: Sequence[int]) -> list[int | Exception]:
        if 7 in items:
            raise RuntimeError("seven")
        return list(items)

    batcher: MicroBatcher[int, int] = MicroBatcher(explode_on_seven, max_batch=1)
    batcher.start()
    with pytest.raises(RuntimeError, match="seven"):
        batcher.submit(7).result(timeout=10)
    assert batcher.submit(8).result(timeout=10) == 8
    batcher.stop(timeout=10)


def test_cancelled_items_are_skipped_and_stop_finishes_the_queue() -> None:
    work = RecordingSquares()
    batcher: MicroBatcher[int, int] = MicroBatcher(work, max_batch=8)
    batcher.start()
    busy = batcher.submit(1)
    assert work.started.wait(timeout=10)
    abandoned, kept = batcher.submit(2), batcher.submit(3)
    assert abandoned.cancel()
    stopper = threading.Thread(target=batcher.stop, args=(10,))
    stopper.start()
    work.release.set()
    stopper.join(timeout=10)
    assert busy.result(timeout=1) == 1 and kept.result(timeout=1) == 9
    with pytest.raises(CancelledError):
        abandoned.result(timeout=1)
    assert work.batches == [[1], [3]]
    with pytest.raises(BatcherStoppedError):
        batcher.submit(4)


def test_each_caller_is_answered_as_soon_as_its_result_is_yielded() -> None:
    second_may_go = threading.Event()

    def squares(items: Sequence[int]) -> Iterator[int]:
        for n in items:
            if n == 2:
                assert second_may_go.wait(timeout=10)
            yield n * n

    batcher: MicroBatcher[int, int] = MicroBatcher(squares, max_batch=8)
    first, second = batcher.submit(1), batcher.submit(2)  # queued before start: one batch
    batcher.start()
    assert first.result(timeout=10) == 1
    assert not second.done()
    second_may_go.set()
    assert second.result(timeout=10) == 4
    batcher.stop(timeout=10)


def test_a_batch_that_raises_midway_fails_only_the_items_not_yet_answered() -> None:
    def first_only(items: Sequence[int]) -> Iterator[int]:
        yield items[0]
        raise RuntimeError("midway")

    batcher: MicroBatcher[int, int] = MicroBatcher(first_only, max_batch=8)
    futures = [batcher.submit(n) for n in (1, 2, 3)]
    batcher.start()
    assert futures[0].result(timeout=10) == 1
    for future in futures[1:]:
        with pytest.raises(RuntimeError, match="midway"):
            future.result(timeout=10)
    batcher.stop(timeout=10)


def test_with_two_threads_a_batch_starts_while_the_other_is_still_running() -> None:
    held, release = threading.Event(), threading.Event()

    def squares(items: Sequence[int]) -> list[int]:
        if 1 in items:
            held.set()
            assert release.wait(timeout=10)
        return [n * n for n in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(squares, max_batch=8, threads=2)
    batcher.start()
    first = batcher.submit(1)
    assert held.wait(timeout=10)  # one thread is inside the first batch, and stays there
    later = [batcher.submit(n) for n in (2, 3)]
    assert [f.result(timeout=10) for f in later] == [4, 9]  # the other thread answered them
    assert not first.done()
    release.set()
    assert first.result(timeout=10) == 1
    batcher.stop(timeout=10)
    with pytest.raises(BatcherStoppedError):
        batcher.submit(4)
    assert not [t for t in threading.enumerate() if t.name.startswith("inference_")]


@pytest.mark.slow
def test_a_prediction_waits_for_the_one_under_way_and_both_are_answered(
    serving_jobs: JobDirs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two threads in respond() at once (the batcher's two): the model predicts one batch
    at a time. GatedSVM holds a white image at its gate, inside the first prediction."""
    predictor, digits = gated_predictor(serving_jobs, monkeypatch, tmp_path)
    gate = make_gate(tmp_path / "predict-gate")
    monkeypatch.setenv(PREDICT_GATE, str(gate))
    white = Request(encode(np.full((32, 32), 255, np.uint8), ".png"), "image/png")
    answers: dict[str, list[bytes | Exception]] = {}

    def respond(name: str, request: Request) -> None:
        answers[name] = list(predictor.respond([request]))

    first = threading.Thread(target=respond, args=("white", white))
    first.start()
    waiting = waiter_at(gate)  # the first prediction is under way, held at the gate
    second = threading.Thread(target=respond, args=("digit", Request(digits[0], "image/png")))
    second.start()
    second.join(timeout=1.0)
    assert second.is_alive() and "digit" not in answers  # it waits for the model
    assert batch_sizes(tmp_path / "batches.log") == [1]  # and has not begun predicting
    let_through(waiting)
    first.join(timeout=60)
    second.join(timeout=60)
    assert all(isinstance(answer, bytes) for answer in answers["white"] + answers["digit"])
    assert batch_sizes(tmp_path / "batches.log") == [1, 1]


class StopBeforePut(queue.SimpleQueue[Any]):
    """A batcher's queue that, once armed, runs stop() between submit's check and its put:
    the race of a request that arrives while the server shuts down, made certain."""

    def __init__(self) -> None:
        self.batcher: MicroBatcher[int, int] | None = None
        self.stopped_before_put = False

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if self.batcher is not None and item is not None:
            batcher, self.batcher = self.batcher, None
            batcher.stop(timeout=10)  # queues the sentinel and waits for the thread's end
            self.stopped_before_put = True
        super().put(item, block, timeout)


def test_an_item_queued_after_stop_is_answered_at_once() -> None:
    racing = StopBeforePut()
    batcher: MicroBatcher[int, int] = MicroBatcher(
        lambda items: list(items), max_batch=8, waiting=racing
    )
    batcher.start()
    assert batcher.submit(1).result(timeout=10) == 1

    racing.batcher = batcher  # armed: the next submit's put runs stop() first
    late = batcher.submit(2)

    assert racing.stopped_before_put
    with pytest.raises(BatcherStoppedError, match="shutting down"):
        late.result(timeout=10)
    with pytest.raises(BatcherStoppedError, match="shutting down"):
        batcher.submit(3)  # and once stopped, a submit is refused at once


# Server settings ------------------------------------------------------------------------------


def write_metadata(
    base: Path, metadata: dict[str, Any], environ: dict[str, str] | None = None
) -> contract.Contract:
    model_dir = base / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "metadata.json").write_text(json.dumps({"class_names": ["a", "b"], **metadata}))
    return contract.load({"SAGEMAKER_BASE_DIR": str(base), **(environ or {})})


@pytest.mark.parametrize(
    "algorithm, workers", [("svm", None), ("rf", None), ("cnn", 1), ("resnet50", 1)]
)
def test_default_workers_one_per_core_for_scikit_learn_one_for_tensorflow(
    tmp_path: Path, algorithm: str, workers: int | None
) -> None:
    settings = settings_from(write_metadata(tmp_path, {"algorithm": algorithm}))
    assert settings.workers == (workers or available_cores())
    assert (
        settings.port == 8080
        and settings.timeout_s == 60
        and settings.max_payload_bytes == 6 * 2**20
    )


def test_the_environment_overrides_the_defaults(tmp_path: Path) -> None:
    write_metadata(tmp_path, {"algorithm": "cnn"})
    settings = settings_from(
        contract.load(
            {
                "SAGEMAKER_BASE_DIR": str(tmp_path),
                "SAGEMAKER_BIND_TO_PORT": "9090",
                "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
                "SAGEMAKER_MODEL_SERVER_TIMEOUT": "120",
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20",
            }
        )
    )
    assert (settings.port, settings.workers, settings.timeout_s, settings.max_payload_mb) == (
        9090,
        3,
        120,
        20,
    )
    options = gunicorn_options(settings)
    assert options["bind"] == ["0.0.0.0:9090"] and options["workers"] == 3
    assert options["worker_class"] is Worker and options["timeout"] == 120
    assert options["graceful_timeout"] == GRACEFUL_SHUTDOWN_S < 30


@pytest.mark.parametrize(
    "algorithm, environ, cores, workers, threads",
    [
        pytest.param("svm", {}, 96, 96, 1, id="svm on 96 cores: a worker per core"),
        pytest.param("rf", {}, 2, 2, 1, id="rf on 2 cores"),
        pytest.param("cnn", {}, 96, 1, 96, id="cnn on 96 cores: one worker"),
        pytest.param("cnn", {}, 1, 1, 1, id="cnn on 1 core"),
        pytest.param("svm", {"SAGEMAKER_MODEL_SERVER_WORKERS": "4"}, 96, 4, 24, id="4 of 96"),
        pytest.param("svm", {"SAGEMAKER_MODEL_SERVER_WORKERS": "5"}, 2, 5, 1, id="5 on 2 cores"),
    ],
)
def test_the_threads_of_all_workers_together_stay_within_the_cores(
    tmp_path: Path,
    algorithm: str,
    environ: dict[str, str],
    cores: int,
    workers: int,
    threads: int,
) -> None:
    settings = settings_from(write_metadata(tmp_path, {"algorithm": algorithm}, environ), cores)
    assert (settings.workers, settings.threads_per_worker) == (workers, threads)
    assert settings.workers * settings.threads_per_worker <= max(cores, settings.workers)
    # Decoding overlaps prediction only in a worker with two cores of its own or more.
    overlapping = inference_threads(settings.threads_per_worker)
    assert overlapping == (2 if settings.threads_per_worker >= 2 else 1)


@pytest.mark.parametrize(
    "metadata, words",
    [
        pytest.param(None, "metadata.json is missing", id="missing"),
        pytest.param("{not json", "metadata.json is not readable JSON", id="not JSON"),
        pytest.param(["svm"], "cannot be served: metadata.json holds a JSON list", id="a list"),
        pytest.param(
            {"algorithm": "xgboost", "class_names": ["a"]},
            "Hyperparameter 'algorithm' has value 'xgboost'",
            id="unknown algorithm",
        ),
        pytest.param(
            {"class_names": ["a"]}, "Hyperparameter 'algorithm' is missing", id="no algorithm"
        ),
        pytest.param({"algorithm": "svm"}, "has class_names null", id="no class names"),
        pytest.param(
            {"algorithm": "svm", "class_names": "cat,dog"},
            'has class_names "cat,dog"; it must be the list of class names',
            id="class names not a list",
        ),
        pytest.param(
            {"algorithm": "svm", "class_names": []}, "has class_names []", id="no classes"
        ),
    ],
)
def test_a_model_directory_we_cannot_serve_is_refused_before_starting(
    tmp_path: Path, metadata: object, words: str
) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    if isinstance(metadata, str):
        (model_dir / "metadata.json").write_text(metadata)
    elif metadata is not None:
        (model_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelDirectoryError) as error:
        settings_from(contract.load({"SAGEMAKER_BASE_DIR": str(tmp_path)}))
    assert words in str(error.value) and str(model_dir) in str(error.value)


@pytest.mark.slow
@pytest.mark.parametrize("photo_name", ["china", "chelsea"])
def test_serving_decodes_a_jpeg_to_the_pixels_training_decoded_it_to(
    serving_jobs: JobDirs, tmp_path: Path, photo_name: str
) -> None:
    model_dir = serving_jobs("svm") / "opt" / "ml" / "model"
    predictor = Predictor.load(model_dir)
    metadata = json.loads((model_dir / contract.METADATA_FILE).read_text())
    assert metadata["scaled_jpeg_decode"] is True and predictor.model_input.scaled_jpeg
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    jpeg = encode(photo(photo_name), ".jpg")
    (tmp_path / "a" / "photo.jpg").write_bytes(jpeg)
    (tmp_path / "b" / "photo.jpg").write_bytes(jpeg)
    trained = data.load(
        data.list_channel(tmp_path, "train"),
        ["a", "b"],
        metadata["image_size"],
        metadata["channels"],
        "train",
        0.0,
        scaled_jpeg=metadata["scaled_jpeg_decode"],
    )
    # What serving answers for the JPEG is the model's answer for the pixels training decoded.
    [answer] = predictor.respond([Request(jpeg, "image/jpeg")])
    assert isinstance(answer, bytes), answer
    served = json.loads(answer)["predictions"][0]["probabilities"]
    served_row = np.array([served[name] for name in predictor.class_names])
    as_trained = predictor.algorithm.predict_proba([trained.all_images()[0]])[0]
    np.testing.assert_array_equal(served_row, as_trained.astype(np.float32))
    # A large JPEG took the reduced path (a 32-pixel model: 1/8 of china, 1/4 of chelsea):
    # decoded in full, the same photo gives other pixels and another answer.
    full = images.ModelInput(metadata["image_size"], metadata["channels"]).from_file(jpeg)
    assert not np.array_equal(full, trained.all_images()[0])
    as_full = predictor.algorithm.predict_proba([full])[0]
    assert np.abs(served_row - as_full).max() > 1e-4
