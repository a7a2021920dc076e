"""features: every kind's rows, threads, the column layout, and training = serving."""

from pathlib import Path

import numpy as np
import pytest

from smvision.algorithms import features
from smvision.algorithms.features import FeatureSettings
from smvision.algorithms.features import columns as layout
from smvision.algorithms.rf import RandomForestAlgorithm
from smvision.data import dataset, images
from smvision.data.bodies import decode_request
from smvision.training.explain import importance
from tests.support.photos import encode, photo

ALL_PER_IMAGE = "hog+color+pixels+gabor+edges"


def _batch(count: int, size: int = 64) -> np.ndarray:
    photos = [photo(n) for n in ("china", "flower", "astronaut", "coffee", "chelsea")]
    crops = [
        p[i % 50 : i % 50 + 300, i % 70 : i % 70 + 300] for i, p in enumerate(photos * (count // 5))
    ]
    return np.stack([images.prepare(c, size, 3) for c in crops])


def test_feature_lengths_and_their_column_names() -> None:
    batch = _batch(5)
    expected = {
        "hog": 1764,  # 7x7 blocks x 4 cells x 9 bins
        "color": 128,
        "pixels": 256,
        "gabor": 4 * 2 * 4 * 4 * 2,  # orientations x scales x 4x4 cells x (mean, energy)
        "edges": 4 * 4 + 8,  # density cells, orientation bins
    }
    for kind, width in expected.items():
        assert features.extract(batch, kind).shape == (5, width), kind
        assert len(layout.columns(FeatureSettings((kind,)), 64, 3)) == width, kind
    joined = features.extract(batch, ALL_PER_IMAGE)
    assert joined.shape == (5, sum(expected.values()))
    assert np.isfinite(joined).all()
    grey = features.extract(batch[:, :, :, :1], "color+gabor")
    assert grey.shape == (5, 32 + 256)


def test_gabor_settings_change_the_bank() -> None:
    settings = FeatureSettings(("gabor",), gabor_orientations=6, gabor_scales=3, feature_grid=2)
    assert features.extract(_batch(5), settings).shape == (5, 6 * 3 * 2 * 2 * 2)


def test_threads_give_identical_features() -> None:
    batch = _batch(200)
    np.testing.assert_array_equal(
        features.extract(batch, ALL_PER_IMAGE, workers=1),
        features.extract(batch, ALL_PER_IMAGE, workers=4),
    )


def test_colour_histogram_separates_photos() -> None:
    batch = _batch(5)
    colour = features.extract(batch, "color")
    np.testing.assert_allclose(colour.sum(axis=1), 1.0, rtol=1e-5)
    assert np.abs(colour[0] - colour[1]).sum() > 0.2


def _stripes(period: int, vertical: bool, size: int = 64) -> np.ndarray:
    wave = (np.sin(2 * np.pi * np.arange(size) / period) > 0).astype(np.uint8) * 255
    image = np.tile(wave, (size, 1)) if vertical else np.tile(wave[:, None], (1, size))
    return image[:, :, None]


def test_gabor_answers_most_to_stripes_of_its_orientation() -> None:
    settings = FeatureSettings(("gabor",), gabor_orientations=4, gabor_scales=1, feature_grid=1)
    columns = layout.columns(settings, 64, 1)
    for vertical, strongest in ((True, "orientation 0 deg energy"), (False, "90 deg energy")):
        row = features.extract(_stripes(10, vertical)[None], settings)[0]
        energies = {c.name: v for c, v in zip(columns, row, strict=True) if "energy" in c.name}
        assert strongest in max(energies, key=energies.__getitem__)
    flat = np.full((1, 64, 64, 1), 128, dtype=np.uint8)
    np.testing.assert_allclose(features.extract(flat, settings), 0.0, atol=1e-6)


def test_edges_see_where_an_edge_is_and_which_way_it_runs() -> None:
    settings = FeatureSettings(("edges",), feature_grid=4)
    blank = np.zeros((1, 64, 64, 1), dtype=np.uint8)
    np.testing.assert_array_equal(features.extract(blank, settings), 0.0)
    step = blank.copy()
    step[0, :, 40:] = 255  # one vertical edge, in the third column of cells
    row = features.extract(step, settings)[0]
    density = row[:16].reshape(4, 4)
    assert (density[:, 2] > 0).all() and density[:, [0, 1, 3]].sum() == 0
    histogram = row[16:]
    assert histogram.sum() == pytest.approx(1.0)
    assert histogram[0] == pytest.approx(1.0)  # the gradient runs across: 0-22.5 degrees


@pytest.mark.parametrize("kind", ["hog", "pixels", "gabor", "edges"])
def test_each_column_is_placed_where_it_looks(kind: str) -> None:
    """A bright square in one spot: the columns it changes, drawn back onto the image by
    their places (as feature_importance.png draws importances), are hottest on that spot."""
    settings = FeatureSettings((kind,))
    columns = layout.columns(settings, 64, 1)
    plain = np.zeros((1, 64, 64, 1), dtype=np.uint8)
    for top, left in ((18, 42), (50, 10)):
        marked = plain.copy()
        marked[0, top : top + 5, left : left + 5] = 255
        change = np.abs(features.extract(marked, settings) - features.extract(plain, settings))[0]
        heat = importance.heat_map(change, columns, 64)
        y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
        cell = 16 if kind in ("gabor", "edges") else 8  # the 4x4 grid; HOG cells, pixels
        assert abs(y - (top + 2)) < cell and abs(x - (left + 2)) < cell, (kind, y, x, top, left)


def test_hog_column_names_follow_opencvs_block_and_cell_order() -> None:
    """OpenCV walks blocks, and the cells in a block, column by column."""
    columns = layout.columns(FeatureSettings(("hog",)), 32, 1)
    assert columns[0].name.startswith("hog cell (row 0, col 0) 0-20 deg, block (row 0, col 0)")
    assert columns[9].name.startswith("hog cell (row 1, col 0)")  # second cell: below
    assert columns[18].name.startswith("hog cell (row 0, col 1)")
    assert columns[36].name.endswith("block (row 1, col 0)")  # second block: below
    image = np.zeros((1, 32, 32, 1), dtype=np.uint8)
    image[0, 27:29, 12] = 255  # a dot in the middle of cell (row 3, col 1)
    row = features.extract(image, "hog")[0]
    by_cell: dict[str, float] = {}
    for column, value in zip(columns, row, strict=True):
        cell = column.name.split(")")[0]
        by_cell[cell] = by_cell.get(cell, 0.0) + float(value)
    assert max(by_cell, key=by_cell.__getitem__) == "hog cell (row 3, col 1"


def test_features_are_identical_in_training_and_serving(digits: Path, tmp_path: Path) -> None:
    """The same file through the training loader and through the request decoder: PNG
    digits, and large JPEG photos (which both paths decode at a reduced scale)."""
    settings = FeatureSettings(tuple(ALL_PER_IMAGE.split("+")), feature_grid=3, canny_low=30)
    for name in ("china", "flower", "coffee", "astronaut"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        (tmp_path / "photos" / name / f"{name}.jpg").write_bytes(encode(photo(name), ".jpg"))
    for channel, content_type, channels in (
        (digits / "test", "image/png", 1),
        (tmp_path / "photos", "image/jpeg", 3),
    ):
        samples = dataset.list_channel(channel, "test")
        names = dataset.class_names_of(samples)
        model = RandomForestAlgorithm(64, channels, len(names), settings)
        trained_on = dataset.load(samples, names, 64, channels, "test", 0.0, scaled_jpeg=True)
        training = model.extract(trained_on.all_images())
        model_input = images.ModelInput(64, channels, scaled_jpeg=True)  # as serve builds it
        for row in sorted({0, 2, len(samples) - 1}):
            path = samples[row].path
            assert path is not None
            decoded = decode_request(path.read_bytes(), content_type, model_input)
            np.testing.assert_array_equal(model.features_of(decoded)[0], training[row])


def test_a_model_saved_before_the_feature_settings_still_loads(tmp_path: Path) -> None:
    """model.joblib as the previous release wrote it: the spec string alone."""
    import joblib
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    batch = _batch(10, size=32)
    labels = np.arange(10) % 2
    pipeline = Pipeline([("forest", RandomForestClassifier(n_estimators=3, random_state=0))])
    pipeline.fit(features.extract(batch, "hog+color"), labels)
    state = {"pipeline": pipeline, "image_size": 32, "channels": 3, "class_count": 2}
    joblib.dump(state | {"feature_spec": "hog+color"}, tmp_path / "model.joblib")
    model = RandomForestAlgorithm.load(tmp_path)
    assert model.settings == FeatureSettings(("hog", "color"))
    np.testing.assert_array_equal(
        model.predict_proba(batch), pipeline.predict_proba(model.extract(batch)).astype(np.float32)
    )
