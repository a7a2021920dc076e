"""Knowing when not to answer, over HTTP to the real `serve` of the digits svm that
`tests.support.serving` trains once per session: the out-of-distribution flag
on every answer, prediction sets and abstention with coverage=, and tta=."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from scipy.stats import betabinom

from smvision.core.artifacts import read_metadata
from smvision.model import tta
from tests.support.photos import encode, grey_photo, photo
from tests.support.serving import ServerPool, invoke, model_input, offline_probabilities

COLOUR_PHOTOS = ("china", "flower", "astronaut", "coffee", "chelsea", "rocket")
GREY_PHOTOS = ("camera", "coins", "moon", "page")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(120.0)) as http:
        yield http


def held_out_digits(job_dir: Path) -> list[Path]:
    """The job's test channel: digits the model never trained on."""
    return sorted((job_dir / "opt" / "ml" / "input" / "data" / "test").rglob("*.png"))


def photographs(seed: int, crops: int = 80) -> list[bytes]:
    """Photographs that are not digits: scikit-learn's and scikit-image's, whole, and
    crops of them at random places and sizes (JPEG and PNG)."""
    rng = np.random.default_rng(seed)
    pictures = [photo(n) for n in COLOUR_PHOTOS] + [grey_photo(n) for n in GREY_PHOTOS]
    bodies = [encode(p, ".jpg") for p in pictures]
    for _ in range(crops):
        picture = pictures[rng.integers(len(pictures))]
        side = int(rng.integers(24, min(picture.shape[:2])))
        top = int(rng.integers(0, picture.shape[0] - side + 1))
        left = int(rng.integers(0, picture.shape[1] - side + 1))
        crop = np.ascontiguousarray(picture[top : top + side, left : left + side])
        bodies.append(encode(crop, ".png" if rng.random() < 0.5 else ".jpg"))
    return bodies


def answer(client: httpx.Client, server: object, body: bytes, attributes: str = "") -> dict:  # type: ignore[type-arg]
    headers = {"X-Amzn-SageMaker-Custom-Attributes": attributes} if attributes else {}
    response = invoke(client, server, body, "application/x-image", headers)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    prediction: dict = response.json()["predictions"][0]  # type: ignore[type-arg]
    return prediction


def test_photos_that_are_not_digits_are_flagged_and_digits_are_not(
    servers: ServerPool, client: httpx.Client
) -> None:
    """At least 90% of photographs flagged out_of_distribution, at most 5% of the 360 test
    digits. The threshold is the k-th of 359 validation scores for a 1% false alarm rate
    (k = ceil(360 * 0.99) = 357), so the digits flagged are beta-binomial (360, 3, 357):
    more than 5% of them with probability 9.3e-5 (asserted below)."""
    seed = int(np.random.SeedSequence().generate_state(1)[0])
    print(f"seed {seed}")
    server = servers("svm")
    job_dir = servers.jobs("svm")
    validation = len(
        list((job_dir / "opt" / "ml" / "input" / "data" / "validation").rglob("*.png"))
    )
    digits = held_out_digits(job_dir)
    rank = math.ceil((validation + 1) * 0.99 - 1e-9)
    law = betabinom(len(digits), validation + 1 - rank, rank)
    assert law.sf(math.floor(0.05 * len(digits))) < 1e-4
    digit_flags = [answer(client, server, p.read_bytes())["out_of_distribution"] for p in digits]
    photo_flags = [answer(client, server, b)["out_of_distribution"] for b in photographs(seed)]
    assert all(isinstance(flag, bool) for flag in digit_flags + photo_flags)
    print(f"flagged: {np.mean(photo_flags):.1%} of photos, {np.mean(digit_flags):.1%} of digits")
    assert np.mean(photo_flags) >= 0.9
    assert np.mean(digit_flags) <= 0.05


def test_coverage_answers_a_prediction_set_and_abstains_when_it_is_not_one_class(
    servers: ServerPool, client: httpx.Client
) -> None:
    server = servers("svm")
    digits = held_out_digits(servers.jobs("svm"))
    plain = answer(client, server, digits[0].read_bytes())
    assert "prediction_set" not in plain and plain["label"] == plain["predicted_label"]
    answers = [answer(client, server, p.read_bytes(), "coverage=0.99") for p in digits[:40]]
    answers.append(answer(client, server, encode(photo("china"), ".jpg"), "coverage=0.3"))
    for found in answers:
        assert found["coverage"] in (0.99, 0.3)
        assert found["abstained"] == (len(found["prediction_set"]) != 1)
        if found["abstained"]:
            assert found["label"] is None and found["predicted_label"] is None
        else:
            assert found["prediction_set"] == [found["label"]]
    assert not all(a["abstained"] for a in answers[:40])
    wide = answer(client, server, digits[0].read_bytes(), "coverage=0.999,max_set_size=10")
    assert not wide["abstained"] and wide["label"] in wide["prediction_set"]
    csv = invoke(
        client,
        server,
        encode(photo("china"), ".jpg"),
        "application/x-image",
        {"Accept": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "coverage=0.01"},
    )
    assert csv.status_code == 200 and csv.text.startswith(",")  # abstained: no label
    for attributes, word in (
        ("coverage=1.5", "coverage"),
        ("tta=rotate", "tta"),
        ("max_set_size=0", "max_set_size"),
    ):
        refused = invoke(
            client,
            server,
            digits[0].read_bytes(),
            "image/png",
            {"X-Amzn-SageMaker-Custom-Attributes": attributes},
        )
        assert refused.status_code == 400 and word in refused.json()["error"], refused.text


def test_tta_averages_the_views_of_each_image(servers: ServerPool, client: httpx.Client) -> None:
    """tta=flip answers the mean of the model's probabilities for the image and its mirror
    image; tta=crops for the four corners and the centre at 90%."""
    server = servers("svm")
    job_dir = servers.jobs("svm")
    body = held_out_digits(job_dir)[3].read_bytes()
    prepared = model_input(job_dir).from_file(body, "digit.png")
    class_names = read_metadata(job_dir / "opt" / "ml" / "model")["class_names"]
    flipped = answer(client, server, body, "tta=flip")["probabilities"]
    expected = offline_probabilities(job_dir, [prepared, prepared[:, ::-1].copy()]).mean(axis=0)
    assert [flipped[c] for c in class_names] == pytest.approx(expected.tolist(), abs=1e-5)
    cropped = answer(client, server, body, "tta=crops")["probabilities"]
    views = offline_probabilities(job_dir, tta.views(prepared, "crops"))
    assert len(views) == 5
    assert [cropped[c] for c in class_names] == pytest.approx(views.mean(axis=0).tolist(), abs=1e-5)
