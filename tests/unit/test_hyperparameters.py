"""The hyperparameter schema: casting SageMaker's strings, defaults, errors, tuning ranges."""

import re

import pytest

from smvision.schema import hyperparameters, specs
from smvision.schema.hyperparameters import HyperparameterError, parse

ALGORITHMS = specs.names()


def test_every_algorithm_has_a_schema_and_a_table_entry() -> None:
    assert ALGORITHMS == ("svm", "rf", "cnn", "resnet50")
    for name in ALGORITHMS:
        params = hyperparameters.schema(name)
        assert {"image_size", "grayscale", "validation_fraction", "seed"} <= set(params)
        assert params["image_size"].default == specs.get(name).image_size


def test_strings_are_cast_once_with_the_schema() -> None:
    hp = parse(
        {
            "algorithm": "svm",
            "C": "5.0",
            "kernel": "LINEAR",
            "image_size": "32",
            "features": "color+hog",
            "seed": "7",
        }
    )
    assert hp.real("C") == 5.0
    assert hp.text("kernel") == "linear"
    assert hp.integer("image_size") == 32
    assert hp.text("features") == "hog+color"
    assert hp.integer("seed") == 7


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("0", False),
    ],
)
def test_booleans_accept_true_false_1_0_in_any_case(raw: str, expected: bool) -> None:
    assert parse({"algorithm": "cnn", "augment": raw}).flag("augment") is expected


def test_auto_keywords() -> None:
    hp = parse({"algorithm": "resnet50"})
    assert hp.auto_flag("mixed_precision") is None
    assert parse({"algorithm": "cnn", "grayscale": "TRUE"}).auto_flag("grayscale") is True
    assert parse({"algorithm": "svm", "gamma": "auto"}).values["gamma"] == "auto"
    assert parse({"algorithm": "svm", "gamma": "0.01"}).values["gamma"] == 0.01


def test_defaults_differ_per_algorithm() -> None:
    assert parse({"algorithm": "resnet50"}).integer("image_size") == 224
    for name in ("svm", "rf", "cnn"):
        assert parse({"algorithm": name}).values["image_size"] == "auto"
    assert parse({"algorithm": "cnn"}).integer("epochs") == 30


def test_platform_keys_are_ignored_and_unknown_keys_reported() -> None:
    hp = parse(
        {
            "algorithm": "svm",
            "_tuning_objective_metric": "validation:accuracy",
            "sagemaker_region": '"us-east-1"',
            "sagemaker_job_name": "x",
            "epochs": "3",
        }
    )
    assert hp.ignored == ("epochs",)
    assert "_tuning_objective_metric" not in hp.values


def test_strict_mode_rejects_unknown_keys_with_a_suggestion() -> None:
    with pytest.raises(
        HyperparameterError, match="'epoch' is not used by algorithm 'cnn'. Did you mean 'epochs'"
    ):
        parse({"algorithm": "cnn", "epoch": "3"}, strict=True)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (
            {"algorithm": "svm", "C": "abc"},
            "Hyperparameter 'C' has value 'abc'; use a number >= 1e-06",
        ),
        ({"algorithm": "svm", "C": "-1"}, "'C' has value '-1'"),
        ({"algorithm": "svm", "C": "nan"}, "'C' has value 'nan'"),
        (
            {"algorithm": "cnn", "epochs": "2.5"},
            "'epochs' has value '2.5'; use a whole number >= 1",
        ),
        (
            {"algorithm": "cnn", "augment": "yes"},
            "'augment' has value 'yes'; use true or false (also 1 or 0)",
        ),
        ({"algorithm": "cnn", "optimizer": "adagrad"}, "use one of adam, adamw, sgd, rmsprop"),
        (
            {"algorithm": "svm", "features": "sift"},
            "'features' has value 'sift'; use one or more of hog, color, pixels",
        ),
        (
            {"algorithm": "rf", "validation_fraction": "0.9"},
            "'validation_fraction' has value '0.9'",
        ),
        ({"algorithm": "svm", "image_size": "60"}, "use a multiple of 8"),
        ({"algorithm": "cnn", "image_size": "8"}, "use 16 or more"),
        ({"algorithm": "svm", "image_size": "8"}, "16-pixel blocks"),
        ({"algorithm": "resnet50", "image_size": "16"}, "resnet50 needs at least 32 pixels"),
        (
            {"algorithm": "xgboost"},
            "'algorithm' has value 'xgboost'; use one of svm, rf, cnn, resnet50",
        ),
        ({}, "'algorithm' is missing"),
        (
            {"algorithm": "svm", "features": "hog+edges", "canny_low": "200"},
            "'canny_low' (200) is not below 'canny_high' (150)",
        ),
        ({"algorithm": "rf", "features": "gabor", "gabor_kernel_size": "20"}, "use an odd number"),
        ({"algorithm": "svm", "cv_folds": "1"}, "cross-validation needs at least 2 folds"),
        (
            {"algorithm": "rf", "image_size": "auto", "features": "edges", "canny_high": "20"},
            "'canny_low' (50) is not below 'canny_high' (20)",
        ),
        (
            {"algorithm": "svm", "features": "color+deep", "image_size": "24"},
            "features=deep runs ResNet50",
        ),
        (
            {"algorithm": "rf", "features": "gabor", "image_size": "8", "feature_grid": "9"},
            "more cells per side than the 8 pixels",
        ),
        ({"algorithm": "rf", "class_weight": "auto"}, "use one of none, balanced"),
        ({"algorithm": "cnn", "label_smoothing": "0.7"}, "'label_smoothing' has value '0.7'"),
        ({"algorithm": "resnet50", "rotation_range": "-5"}, "'rotation_range' has value '-5'"),
    ],
)
def test_bad_values_name_the_key_the_value_and_the_fix(raw: dict[str, str], fragment: str) -> None:
    with pytest.raises(HyperparameterError) as error:
        parse(raw)
    assert fragment in str(error.value)


def test_tuning_ranges_lie_within_the_bounds_they_tune() -> None:
    for algorithm in ALGORITHMS:
        ranges = hyperparameters.tuning_ranges(algorithm)
        assert ranges, algorithm
        params = hyperparameters.schema(algorithm)
        for name, tuning in ranges.items():
            if tuning.kind == "categorical":
                for value in tuning.values:
                    params[name].parse(value)
            else:
                params[name].parse(str(tuning.low))
                params[name].parse(str(tuning.high))


def test_as_strings_round_trips() -> None:
    hp = parse({"algorithm": "cnn", "augment": "False", "learning_rate": "1e-3"})
    strings = hp.as_strings()
    assert strings["augment"] == "false"
    assert parse(strings).values == hp.values


def test_a_comparisons_hyperparameters_go_to_each_algorithm_that_takes_them() -> None:
    split = hyperparameters.split_per_algorithm(
        ["epochs=5", "image_size=32", "svm:C=10", "cnn:epochs=8", "C=2"], ["svm", "rf", "cnn"]
    )

    assert split == {
        "svm": {"image_size": "32", "C": "10"},
        "rf": {"image_size": "32"},
        "cnn": {"epochs": "8", "image_size": "32"},
    }


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("epoch=5", "none of svm, cnn takes 'epoch'. Did you mean 'epochs'?"),
        ("rf:n_estimators=5", "names algorithm 'rf', which is not compared here"),
        (
            "svm:epochs=5",
            "--hp 'svm:epochs=5': Hyperparameter 'epochs' is not used by algorithm 'svm'",
        ),
        ("svm:=3", "is not KEY=VALUE or ALGORITHM:KEY=VALUE"),
        ("algorithm=rf", "'algorithm' is not a hyperparameter a comparison may set"),
    ],
)
def test_a_comparisons_bad_hyperparameter_is_named(pair: str, expected: str) -> None:
    with pytest.raises(hyperparameters.HyperparameterError, match=re.escape(expected)):
        hyperparameters.split_per_algorithm([pair], ["svm", "cnn"])


@pytest.mark.parametrize(
    "algorithm, side, size",
    [
        ("svm", 8, 32),  # the 8x8 digits: up to what HOG needs to see a shape
        ("svm", 28, 32),  # MNIST-sized digits: no further upscaling
        ("rf", 33, 40),  # a multiple of the 8-pixel HOG cell
        ("cnn", 64, 64),
        ("cnn", 500, 64),  # photos: today's fixed size
        ("resnet50", 25, 224),  # ImageNet weights want 224
    ],
)
def test_auto_image_size_follows_the_images_within_the_algorithms_range(
    algorithm: str, side: int, size: int
) -> None:
    assert specs.get(algorithm).auto_image_size(side) == size


def test_image_size_auto_parses_and_a_bad_word_names_it() -> None:
    assert parse({"algorithm": "svm", "image_size": "AUTO"}).values["image_size"] == "auto"
    assert parse({"algorithm": "svm", "image_size": "48"}).integer("image_size") == 48
    with pytest.raises(HyperparameterError, match="'image_size' has value 'big'.* or auto"):
        parse({"algorithm": "svm", "image_size": "big"})


def test_the_features_settings_and_the_training_choices_are_in_the_schema() -> None:
    classical = {
        "gabor_orientations": 4,
        "gabor_scales": 2,
        "gabor_kernel_size": 21,
        "feature_grid": 4,
        "canny_low": 50,
        "canny_high": 150,
        "weights": "imagenet",
        "cv_folds": 0,
        "class_weight": "none",
    }
    keras = {
        "rotation_range": 15.0,
        "width_shift_range": 0.1,
        "height_shift_range": 0.1,
        "zoom_range": 0.1,
        "horizontal_flip": False,
        "random_crop": 0.0,
        "contrast_range": 0.15,
        "label_smoothing": 0.0,
    }
    for algorithm, expected in (("svm", classical), ("rf", classical), ("cnn", keras)):
        values = parse({"algorithm": algorithm}).values
        assert {name: values[name] for name in expected} == expected, algorithm
    assert parse({"algorithm": "resnet50"}).values["random_crop"] == 0.0
    assert parse({"algorithm": "svm", "features": "deep+hog"}).text("features") == "hog+deep"
    # A tuning job searches class_weight by default; each kind's settings on request (--range).
    ranges = hyperparameters.tuning_ranges("rf")
    assert "class_weight" in ranges and not {"gabor_scales", "canny_low"} & set(ranges)
    assert "label_smoothing" in hyperparameters.tuning_ranges("cnn")
