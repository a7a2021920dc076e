"""What svm and rf share: image features into a scikit-learn pipeline, saved with joblib."""

from __future__ import annotations

import pickle
import warnings
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import joblib
import numpy as np
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline

from smvision.algorithms import features
from smvision.algorithms.base import (
    CLASSICAL_MODEL_FILE,
    Algorithm,
    History,
    NotConvertibleError,
    RunContext,
)
from smvision.algorithms.features import FeatureSettings
from smvision.algorithms.features import columns as layout
from smvision.algorithms.features.backbones import BackboneRecord
from smvision.core.artifacts import ModelFileError
from smvision.data import images, memory_budget
from smvision.data.dataset import Dataset
from smvision.model.evaluation import binary_cross_entropy
from smvision.model.parent import ParentModel
from smvision.schema.hyperparameters import Hyperparameters

if TYPE_CHECKING:
    from smvision.algorithms.features.deep import Backbone

MODEL_FILE = CLASSICAL_MODEL_FILE
# What joblib raises on a file it cannot unpickle: cut short (EOFError, with no message),
# corrupt, or written by another scikit-learn whose classes differ.
_UNREADABLE = (
    EOFError,
    pickle.UnpicklingError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
)
CV_SCORES = {"accuracy": "accuracy", "macro_f1": "f1_macro"}
# Images decoded at a time while features are extracted.
FEATURE_CHUNK = 512
# The ONNX opsets of the compiled pipeline: ONNX Runtime 1.17 and later run both.
ONNX_OPSETS = {"": 17, "ai.onnx.ml": 3}


def training_scores(proba: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and loss on the training data (subset accuracy and binary cross-entropy
    for a multi-label 0/1 matrix)."""
    if labels.ndim == 2:
        return {
            "accuracy": float(accuracy_score(labels.astype(bool), proba >= 0.5)),
            "loss": binary_cross_entropy(proba, labels),
        }
    classes = list(range(proba.shape[1]))
    return {
        "accuracy": float(accuracy_score(labels, proba.argmax(axis=1))),
        "loss": float(log_loss(labels, proba, labels=classes)),
    }


def smallest_class(labels: np.ndarray) -> tuple[int, int]:
    """The images of the smallest class and its index; for a multi-label 0/1 matrix, the
    fewer of a label's images with and without it, over the labels that vary (one-vs-rest
    fits a classifier only for those)."""
    if labels.ndim == 1:
        counts = np.bincount(labels)
        present = np.flatnonzero(counts)
        which = int(present[np.argmin(counts[present])])
        return int(counts[which]), which
    positives = labels.sum(axis=0).astype(np.int64)
    sides = np.minimum(positives, len(labels) - positives)
    varying = np.flatnonzero(sides)
    if not len(varying):
        return len(labels), 0
    which = int(varying[np.argmin(sides[varying])])
    return int(sides[which]), which


def usable_folds(smallest: int, needed: int, most: int) -> list[int]:
    """The fold counts (2 to `most`) of a stratified k-fold split in which the test part of
    every fold holds an image of each class and the training part at least `needed` of
    each, when the smallest class has `smallest` images. Each fold's test part takes
    ceil(n / k) of a class of n at most, so its training part keeps n - ceil(n / k)."""
    return [k for k in range(2, min(most, smallest) + 1) if smallest - -(-smallest // k) >= needed]


def class_weight(hp: Hyperparameters) -> str | None:
    """scikit-learn's class_weight for the `class_weight` hyperparameter."""
    return None if hp.text("class_weight") == "none" else hp.text("class_weight")


class ClassicalAlgorithm(Algorithm):
    """Features (`features` hyperparameter) -> a scikit-learn pipeline -> probabilities."""

    # The estimator that ends the pipeline `build_pipeline` makes, which `load` checks.
    ESTIMATOR: ClassVar[type]

    def __init__(
        self,
        image_size: int,
        channels: int,
        class_count: int,
        settings: FeatureSettings | None = None,
        pipeline: Pipeline | None = None,
        backbone: Backbone | None = None,
    ) -> None:
        super().__init__(image_size, channels, class_count)
        self.settings = settings or FeatureSettings(("hog",))
        self.pipeline = pipeline
        self.backbone = backbone
        # serve's compiled copy of the backbone, in place of the Keras one, and its record.
        self.compiled_backbone: Callable[[np.ndarray], np.ndarray] | None = None
        self.backbone_record: BackboneRecord | None = None
        self.cross_validation: dict[str, Any] | None = None
        # Features -> probabilities in place of pipeline.predict_proba, where a subclass has
        # a faster equal form (svm: platt.py).
        self.probabilities: Callable[[np.ndarray], np.ndarray] | None = None

    @abstractmethod
    def build_pipeline(self, hp: Hyperparameters, labels: np.ndarray | None = None) -> Pipeline:
        """An unfitted pipeline from features to class probabilities, for fitting on
        `labels` when given (a pipeline may depend on how many images each class has)."""

    def fit(
        self, train: Dataset, validation: Dataset | None, hp: Hyperparameters, run: RunContext
    ) -> History:
        self.settings = FeatureSettings.from_hyperparameters(hp)
        if "deep" in self.settings.kinds:
            from smvision.algorithms.features.deep import Backbone

            self.backbone = Backbone.for_training(self.image_size, hp, run)
        x = self.extract_features(train, run)
        run.info(f"Extracted {x.shape[1]} '{self.settings.spec}' features from {len(x)} images.")
        if hp.integer("cv_folds"):
            self.cross_validation = self._cross_validate(x, train, validation, hp, run)
        if run.parent is not None:
            self.pipeline = self.fit_continuing(run.parent, x, train.labels, hp, run)
        else:
            self.pipeline = self.new_pipeline(hp, train.labels).fit(x, train.labels)
        classes = list(self.pipeline.classes_)
        if classes != list(range(self.class_count)):
            raise RuntimeError(
                f"pipeline learnt classes {classes}, expected 0..{self.class_count - 1}"
            )
        proba = self.pipeline.predict_proba(x)
        for name, value in training_scores(proba, train.labels).items():
            run.metric(f"train:{name}", value)
        return {}

    def new_pipeline(self, hp: Hyperparameters, labels: np.ndarray | None = None) -> Pipeline:
        """The algorithm's pipeline; for multi-label, one classifier per label (one-vs-rest)."""
        pipeline = self.build_pipeline(hp, labels)
        if hp.flag("multi_label"):
            name, estimator = pipeline.steps[-1]
            pipeline.steps[-1] = (name, OneVsRestClassifier(estimator))
        return pipeline

    def fit_continuing(
        self,
        parent: ParentModel,
        x: np.ndarray,
        y: np.ndarray,
        hp: Hyperparameters,
        run: RunContext,
    ) -> Pipeline:
        """A pipeline fitted on this job's data, continuing `parent` where the algorithm can;
        this one cannot, and says so."""
        run.info(
            f"{hp.algorithm} cannot add to a fitted model: it refits on this job's data. The "
            f"model channel's model (sha256 {parent.digest[:12]}) is recorded as the parent."
        )
        return self.new_pipeline(hp, y).fit(x, y)

    def extract_features(self, dataset: Dataset, run: RunContext) -> np.ndarray:
        """Features of every image, a chunk of images at a time; the feature matrix must fit
        the memory budget (the images need not)."""
        chunks = dataset.chunks(FEATURE_CHUNK)
        first = self.extract(next(chunks))
        needed = len(dataset) * first.shape[1] * first.itemsize
        if run.memory_budget is not None:
            memory_budget.require_fits(
                f"The {first.shape[1]} '{self.settings.spec}' features of {len(dataset)} images",
                needed,
                run.memory_budget,
                "Lower image_size, use fewer feature kinds, raise data_memory_mb on a larger "
                "instance, or train cnn, which streams its images from disk.",
            )
        x = np.empty((len(dataset), first.shape[1]), dtype=first.dtype)
        x[: len(first)] = first
        start = len(first)
        for chunk in chunks:
            x[start : start + len(chunk)] = self.extract(chunk)
            start += len(chunk)
        return x

    def _cross_validate(
        self,
        x: np.ndarray,
        train: Dataset,
        validation: Dataset | None,
        hp: Hyperparameters,
        run: RunContext,
    ) -> dict[str, Any]:
        """Stratified k-fold on train plus validation; each fold fits a fresh pipeline."""
        folds = hp.integer("cv_folds")
        labels = train.labels
        if validation is not None:
            x = np.concatenate([x, self.extract_features(validation, run)])
            labels = np.concatenate([labels, validation.labels])
        splitter = StratifiedKFold(folds, shuffle=True, random_state=hp.integer("seed"))
        # The pipeline of the fold whose training part has the fewest images of a class
        # (the svm calibrates on as many folds as that class has images), cloned for each.
        fold_labels = [labels[part] for part, _ in splitter.split(x, labels)]
        fewest = min(fold_labels, key=lambda y: smallest_class(y)[0])
        scores = cross_validate(
            self.build_pipeline(hp, fewest),
            x,
            labels,
            cv=splitter,
            scoring=CV_SCORES,
            error_score="raise",
        )
        result: dict[str, Any] = {"folds": folds, "images": int(len(labels))}
        for measure in CV_SCORES:
            per_fold = [float(v) for v in scores[f"test_{measure}"]]
            result[measure] = {
                "mean": float(np.mean(per_fold)),
                "std": float(np.std(per_fold)),
                "per_fold": per_fold,
            }
            run.metric(f"cv:{measure}_mean", result[measure]["mean"])
            run.metric(f"cv:{measure}_std", result[measure]["std"])
        run.info(
            f"{folds}-fold cross-validation on {len(labels)} images: accuracy "
            f"{result['accuracy']['mean']:.4f} +/- {result['accuracy']['std']:.4f}, macro F1 "
            f"{result['macro_f1']['mean']:.4f} +/- {result['macro_f1']['std']:.4f}"
        )
        return result

    def extract(self, prepared: np.ndarray) -> np.ndarray:
        """Features of prepared images, in training and in serving alike."""
        return features.extract(
            prepared, self.settings, backbone=self.compiled_backbone or self.backbone
        )

    def features_of(self, batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        prepared = np.stack([images.prepare(i, self.image_size, self.channels) for i in batch])
        return self.extract(prepared)

    def predict_proba(self, batch: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError("predict_proba() before fit() or load().")
        predict = self.probabilities or self.pipeline.predict_proba
        result: np.ndarray = predict(self.features_of(batch))
        return result.astype(np.float32)

    def to_onnx(self) -> tuple[bytes, dict[str, Any]]:
        """The fitted pipeline, feature rows (float32) -> probabilities, as an ONNX model
        (skl2onnx), and its input record: the feature settings that serve extracts with
        before running it on ONNX Runtime.

        Raises NotConvertibleError for features=deep, whose backbone runs on TensorFlow."""
        if self.pipeline is None:
            raise RuntimeError("to_onnx() before fit() or load().")
        if self.backbone is not None:
            raise NotConvertibleError(
                "features=deep runs a ResNet50 backbone on TensorFlow before the "
                f"{type(self).__name__}; only the handcrafted features run without it"
            )
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        width = int(self.pipeline.n_features_in_)
        if getattr(self.pipeline.steps[-1][1], "method", None) == "temperature":
            raise NotConvertibleError(
                "skl2onnx has no converter for temperature scaling, the calibration of an svm "
                "trained on 5 or fewer images in a class"
            )
        try:
            with warnings.catch_warnings():
                # skl2onnx reads SVC.probA_/probB_, which scikit-learn 1.9 deprecates (unused
                # here: the probabilities come from the calibrators).
                warnings.filterwarnings("ignore", "Attribute `prob[AB]_`", FutureWarning)
                proto = to_onnx(
                    self.pipeline,
                    initial_types=[("features", FloatTensorType([None, width]))],
                    options={"zipmap": False},
                    target_opset=ONNX_OPSETS,
                )
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
            raise NotConvertibleError(f"skl2onnx cannot convert the pipeline: {error}") from error
        model_input = {"dtype": "float32", "shape": [None, width]}
        return proto.SerializeToString(), model_input | {"features": self.settings.as_dict()}

    def columns(self) -> list[layout.Column]:
        """What each feature column is, in column order."""
        return layout.columns(self.settings, self.image_size, self.channels)

    def feature_importances(self) -> np.ndarray | None:
        """One importance per feature column, for models that have them."""
        return None

    def report(self) -> dict[str, Any]:
        return {"cross_validation": self.cross_validation} if self.cross_validation else {}

    def save(self, model_dir: Path) -> None:
        state: dict[str, Any] = {
            "pipeline": self.pipeline,
            "image_size": self.image_size,
            "channels": self.channels,
            "class_count": self.class_count,
            "features": self.settings.as_dict(),
            "backbone": self.backbone.record.as_dict() if self.backbone else None,
        }
        if self.backbone is not None:
            self.backbone.save(model_dir)
        joblib.dump(state, model_dir / MODEL_FILE)

    @classmethod
    def load(cls, model_dir: Path) -> ClassicalAlgorithm:
        return cls.load_with(model_dir)

    @classmethod
    def load_with(
        cls, model_dir: Path, backbone: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> ClassicalAlgorithm:
        """What `save` wrote; ModelFileError (naming the file) when model.joblib cannot be
        read or holds another algorithm's pipeline. With `backbone`, a features=deep model
        computes its deep features with it (serve's compiled copy of the network) and never
        loads the Keras one, nor TensorFlow."""
        path = model_dir / MODEL_FILE
        try:
            state = joblib.load(path)
        except _UNREADABLE as error:
            reason = str(error) or "the file ends before the model does"
            raise ModelFileError(
                f"{path.name} cannot be read ({type(error).__name__}: {reason}): it is "
                "truncated, corrupt or not written by smvision's train; copy the whole "
                "model.tar.gz again."
            ) from error
        if not (isinstance(state, dict) and isinstance(state.get("pipeline"), Pipeline)):
            raise ModelFileError(
                f"{path.name} holds a {type(state).__name__}, not the model state smvision's "
                "train writes; copy the whole model.tar.gz again."
            )
        cls.check_estimator(state["pipeline"], path)
        if "features" in state:
            settings = FeatureSettings.from_dict(state["features"])
        else:  # a model saved before the feature settings: its spec and the defaults
            settings = FeatureSettings.parse(state["feature_spec"])
        network: Backbone | None = None
        if state.get("backbone") is not None and backbone is None:
            from smvision.algorithms.features import deep

            deep.use_one_thread()
            record = BackboneRecord.from_dict(state["backbone"])
            network = deep.Backbone.load(model_dir, state["image_size"], record)
        algorithm = cls(
            state["image_size"],
            state["channels"],
            state["class_count"],
            settings,
            state["pipeline"],
            network,
        )
        if backbone is not None and state.get("backbone") is not None:
            algorithm.compiled_backbone = backbone
            algorithm.backbone_record = BackboneRecord.from_dict(state["backbone"])
        algorithm.for_serving()
        return algorithm

    @classmethod
    def check_estimator(cls, pipeline: Pipeline, path: Path) -> None:
        """ModelFileError unless the pipeline ends in the estimator this class builds (each
        of a multi-label model's labels in one)."""
        final = pipeline[-1]
        found = final.estimator if isinstance(final, OneVsRestClassifier) else final
        if not isinstance(found, cls.ESTIMATOR):
            raise ModelFileError(
                f"{path.name} holds a {type(found).__name__} pipeline, not the "
                f"{cls.ESTIMATOR.__name__} that {cls.__name__} saves: metadata.json names "
                "another algorithm than the model file holds; copy the model.tar.gz that "
                "train wrote, metadata.json and all."
            )

    def for_serving(self) -> None:
        """Single-threaded prediction: the server runs one worker per core."""

    def preprocessing(self) -> dict[str, object]:
        steps = super().preprocessing() | {"features": self.settings.as_dict()}
        record = self.backbone.record if self.backbone is not None else self.backbone_record
        if record is not None:
            steps["backbone"] = record.as_dict()
        return steps
