"""Fitted radiomics pipelines as plain arrays, scored with numpy alone.

`mammo predict`, the station and its warm worker score a lesion without importing scikit-learn, skops or XGBoost
(about 1 s of a 3 s command). `plain_model_of` turns a fitted pipeline into steps (names in a JSON list) and arrays;
`save_radiomics_model` writes them to `<id>.plain.safetensors` (the steps in its metadata) beside the skops file,
only when they score the pipeline's probe rows as the pipeline does. Pipelines with a step that has no plain form
(AdaBoost, whitened PCA) keep only the skops file.

The file is untrusted: its header is checked before anything is allocated, then every step's arrays for shape,
index range and finiteness, and trees for children after their parent (no cycles).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import save_file

from ..errors import ModelError
from ..models.registry import safetensors_shapes

# step name -> the arrays it needs
STEP_ARRAYS = {
    "select": ("columns",),
    "subtract_divide": ("subtract", "divide"),
    "multiply_add": ("multiply", "add"),
    "project": ("components", "mean"),
    "logistic": ("coef", "intercept"),
    "gaussian_nb": ("means", "variances", "priors"),
    "trees": ("roots", "feature", "threshold", "left", "right", "value", "base"),
}
MAX_STEPS = 16
MAX_FEATURES = 100_000  # the radiomics models take 102; bounds the probe row allocated before the card is compared
MAX_TREE_DEPTH = 64  # scikit-learn trees on a few hundred lesions stay far below; XGBoost's are 3 deep


class NoPlainFormError(Exception):
    """A pipeline step that has no plain form; the model is kept as skops only."""


def _step(name: str, **arrays) -> tuple[dict, dict]:
    return {"step": name}, {key: np.ascontiguousarray(value) for key, value in arrays.items()}


def _stacked(trees) -> dict:
    """One node array per field for trees given as (feature, threshold, left, right, value) with their own node
    numbers (-1: no child): children renumbered after the trees before them, `roots` the first node of each."""
    roots, parts, offset = [], [], 0
    for feature, threshold, left, right, value in trees:
        inner = left != -1
        parts.append((feature, threshold, np.where(inner, left + offset, -1), np.where(inner, right + offset, -1),
                      value))
        roots.append(offset)
        offset += len(left)
    feature, threshold, left, right, value = (np.concatenate(column) for column in zip(*parts, strict=True))
    return {"roots": np.array(roots, np.int64), "feature": feature, "threshold": threshold, "left": left,
            "right": right, "value": value}


def _trees_of_forest(estimators) -> dict:
    """Stacked node arrays of sklearn trees; a leaf's value is its fraction of the positive class."""
    def fields(tree):
        value = tree.value[:, 0, :]
        return (tree.feature.astype(np.int64), tree.threshold.astype(np.float64), tree.children_left.astype(np.int64),
                tree.children_right.astype(np.int64), value[:, 1] / value.sum(axis=1))

    return _stacked(fields(estimator.tree_) for estimator in estimators)


def _trees_of_booster(classifier) -> dict:
    """Stacked node arrays of an XGBoost binary:logistic booster; a leaf's value is its margin."""
    model = json.loads(classifier.get_booster().save_raw("json"))["learner"]
    if model["objective"]["name"] != "binary:logistic" or model["gradient_booster"]["name"] != "gbtree":
        raise NoPlainFormError("an XGBoost objective other than binary:logistic")
    base_score = float(json.loads(model["learner_model_param"]["base_score"])[0])

    def fields(tree):
        if any(tree["split_type"]):
            raise NoPlainFormError("categorical XGBoost splits")
        left = np.array(tree["left_children"], np.int64)
        inner = left != -1
        conditions = np.array(tree["split_conditions"], np.float32).astype(np.float64)
        return (np.where(inner, np.array(tree["split_indices"], np.int64), 0), np.where(inner, conditions, 0.0),
                left, np.array(tree["right_children"], np.int64), np.where(inner, 0.0, conditions))

    return {**_stacked(fields(tree) for tree in model["gradient_booster"]["model"]["trees"]),
            "base": np.array([math.log(base_score / (1 - base_score))])}


def _classifier_step(classifier) -> tuple[dict, dict]:
    kind = type(classifier).__name__
    if list(getattr(classifier, "classes_", [])) != [0, 1]:
        raise NoPlainFormError("a classifier not fitted on the labels 0 and 1")
    if kind in ("LogisticRegression", "LinearDiscriminantAnalysis"):
        return _step("logistic", coef=classifier.coef_[0].astype(np.float64),
                     intercept=np.asarray(classifier.intercept_, np.float64).reshape(1))
    if kind == "CalibratedClassifierCV":  # a linear SVM, Platt-scaled: expit(-(a * decision + b))
        member = classifier.calibrated_classifiers_[0]
        svm, (calibrator,) = member.estimator, member.calibrators
        if (len(classifier.calibrated_classifiers_) != 1 or type(svm).__name__ != "SVC" or svm.kernel != "linear"
                or type(calibrator).__name__ != "_SigmoidCalibration"):
            raise NoPlainFormError("a calibrated classifier other than one sigmoid-scaled linear SVM")
        return _step("logistic", coef=-calibrator.a_ * svm.coef_[0].astype(np.float64),
                     intercept=np.array([-(calibrator.a_ * svm.intercept_[0] + calibrator.b_)], np.float64))
    if kind == "GaussianNB":
        return _step("gaussian_nb", means=classifier.theta_, variances=classifier.var_, priors=classifier.class_prior_)
    if kind in ("RandomForestClassifier", "DecisionTreeClassifier"):
        members = classifier.estimators_ if kind == "RandomForestClassifier" else [classifier]
        header, arrays = _step("trees", **_trees_of_forest(members), base=np.zeros(1))
        return {**header, "compare": "<=", "combine": "mean"}, arrays
    if kind == "XGBClassifier":
        header, arrays = _step("trees", **_trees_of_booster(classifier))
        return {**header, "compare": "<", "combine": "logistic_sum"}, arrays
    raise NoPlainFormError(kind)


def plain_form(steps: list) -> tuple[list[dict], dict[str, np.ndarray], np.ndarray | None]:
    """(step list, arrays named '<index>.<array>', the normaliser's reference values of the kept features or None)
    for the steps of a fitted pipeline; NoPlainFormError when a step has none."""
    names, arrays, reference = [], {}, None
    for _, step in steps:
        if step is None or step == "passthrough":
            continue
        kind = type(step).__name__
        if kind in ("VarianceThreshold", "SelectKBest", "RFE"):
            header, found = _step("select", columns=step.get_support(indices=True).astype(np.int64))
        elif kind in ("PearsonFilter", "ReliefSelector"):
            header, found = _step("select", columns=np.asarray(step.kept_, np.int64))
        elif kind in ("StandardScaler", "MeanNormaliser"):
            divide = step.scale_ if kind == "StandardScaler" else step.span_
            if step.mean_ is None or divide is None:
                raise NoPlainFormError("a scaler without centring or scaling")
            header, found = _step("subtract_divide", subtract=step.mean_, divide=divide)
            reference = step.mean_
        elif kind == "MinMaxScaler":
            if step.clip:
                raise NoPlainFormError("a clipping min-max scaler")
            header, found = _step("multiply_add", multiply=step.scale_, add=step.min_)
            reference = step.data_min_ + step.data_range_ / 2
        elif kind == "PCA":
            if step.whiten:
                raise NoPlainFormError("whitened PCA")
            header, found = _step("project", components=step.components_, mean=step.mean_)
        else:
            header, found = _classifier_step(step)
        names.append(header)
        arrays.update({f"{len(names) - 1}.{key}": value for key, value in found.items()})
    return names, arrays, reference


def probe_rows(pipeline, count: int = 256, seed: int = 0) -> np.ndarray:
    """Rows around the training data (the normaliser's statistics) for comparing a plain form with its pipeline."""
    rng = np.random.default_rng(seed)
    kept = pipeline.steps[0][1].get_support(indices=True)
    normaliser = pipeline.named_steps.get("normaliser")
    if hasattr(normaliser, "mean_"):
        centre, spread = normaliser.mean_, getattr(normaliser, "scale_", getattr(normaliser, "span_", None))
    elif hasattr(normaliser, "data_min_"):
        centre, spread = normaliser.data_min_ + normaliser.data_range_ / 2, normaliser.data_range_ / 2
    else:
        centre, spread = np.zeros(len(kept)), np.ones(len(kept))
    rows = np.zeros((count, pipeline.n_features_in_))
    rows[:, kept] = centre + spread * rng.normal(0, 1.2, (count, len(kept)))
    return rows


def plain_model_of(pipeline, tolerance: float = 1e-6) -> PlainModel | None:
    """The pipeline's plain form when it has one that scores the probe rows as the pipeline does (within
    `tolerance`: XGBoost computes in float32); None otherwise."""
    try:
        steps, arrays, reference = plain_form(pipeline.steps)
    except NoPlainFormError:
        return None
    if reference is not None:
        arrays["reference"] = np.ascontiguousarray(reference, np.float64)
    model = PlainModel(steps, arrays, pipeline.n_features_in_)
    rows = probe_rows(pipeline)
    return model if np.allclose(model.scores(rows), pipeline.predict_proba(rows)[:, 1], rtol=0, atol=tolerance) \
        else None


class PlainModel:
    """A fitted pipeline's steps applied with numpy: `scores` is the pipeline's predict_proba[:, 1]."""

    def __init__(self, steps: list[dict], arrays: dict[str, np.ndarray], n_features: int):
        self.steps, self.arrays, self.n_features = steps, arrays, n_features

    @classmethod
    def load(cls, path: Path) -> PlainModel:
        """Read and check a plain form (header sizes first; then every step's arrays)."""
        from safetensors import safe_open

        shapes = safetensors_shapes(path)
        damaged = f"The model file {path.name} is damaged (inconsistent plain-array model). Refusing to use it."
        try:
            with safe_open(str(path), framework="np") as f:
                metadata = f.metadata() or {}
                arrays = {name: f.get_tensor(name) for name in shapes}
            steps, n_features = json.loads(metadata["steps"]), int(metadata["n_features"])
        except (SafetensorError, KeyError, ValueError, TypeError, RecursionError) as exc:
            raise ModelError(damaged) from exc
        model = cls(steps, arrays, n_features)
        try:
            model._check()
        except (KeyError, TypeError, ValueError, AssertionError, IndexError) as exc:
            raise ModelError(damaged) from exc
        return model

    def save(self, path: Path) -> None:
        metadata = {"steps": json.dumps(self.steps), "n_features": str(self.n_features)}
        save_file(self.arrays, str(path), metadata=metadata)

    def _get(self, index: int, name: str) -> np.ndarray:
        return self.arrays[f"{index}.{name}"]

    def _check(self) -> None:
        """Shapes chain from step to step, indices in range, numbers finite, trees acyclic and at most
        MAX_TREE_DEPTH deep, the reference one value per kept feature; a probe score lies in [0, 1]."""
        assert isinstance(self.steps, list) and 0 < len(self.steps) <= MAX_STEPS and 0 < self.n_features <= MAX_FEATURES
        width = self.n_features
        for index, step in enumerate(self.steps):
            name = step["step"]
            arrays = {key: self._get(index, key) for key in STEP_ARRAYS[name]}
            assert all(a.dtype.kind in "fi" and (a.dtype.kind == "i" or np.all(np.isfinite(a)))
                       for a in arrays.values())
            if name == "select":
                columns = arrays["columns"]
                assert columns.ndim == 1 and columns.dtype == np.int64 and np.all((columns >= 0) & (columns < width))
                width = len(columns)
            elif name in ("subtract_divide", "multiply_add"):
                assert all(a.shape == (width,) for a in arrays.values())
                assert name != "subtract_divide" or np.all(arrays["divide"] != 0)
            elif name == "project":
                assert arrays["components"].ndim == 2 and arrays["components"].shape[1] == width
                assert arrays["mean"].shape == (width,)
                width = arrays["components"].shape[0]
            else:
                assert index == len(self.steps) - 1, "the classifier is the last step"
                self._check_classifier(name, step, arrays, width)
            assert width > 0
        assert self.steps[-1]["step"] in ("logistic", "gaussian_nb", "trees")
        if "reference" in self.arrays:
            reference = self.arrays["reference"]
            assert self.steps[0]["step"] == "select" and reference.shape == self._get(0, "columns").shape
            assert reference.dtype.kind == "f" and np.all(np.isfinite(reference))
        probe = self.scores(np.zeros((1, self.n_features)))
        assert probe.shape == (1,) and np.all(np.isfinite(probe) & (probe >= 0) & (probe <= 1))

    @staticmethod
    def _check_classifier(name: str, step: dict, arrays: dict, width: int) -> None:
        if name == "logistic":
            assert arrays["coef"].shape == (width,) and arrays["intercept"].shape == (1,)
        elif name == "gaussian_nb":
            assert arrays["means"].shape == arrays["variances"].shape == (2, width)
            assert np.all(arrays["variances"] > 0) and arrays["priors"].shape == (2,)
            assert np.all(arrays["priors"] > 0)
        else:
            assert step["compare"] in ("<=", "<") and step["combine"] in ("mean", "logistic_sum")
            nodes = len(arrays["feature"])
            assert all(arrays[key].shape == (nodes,) for key in ("threshold", "left", "right", "value"))
            assert arrays["base"].shape == (1,) and arrays["roots"].ndim == 1 and len(arrays["roots"]) > 0
            left, right, feature = arrays["left"], arrays["right"], arrays["feature"]
            inner = np.flatnonzero(left != -1)
            assert np.array_equal(left == -1, right == -1)
            assert np.all((left[inner] > inner) & (left[inner] < nodes) & (right[inner] > inner)
                          & (right[inner] < nodes))
            assert np.all((feature[inner] >= 0) & (feature[inner] < width))
            assert np.all((arrays["roots"] >= 0) & (arrays["roots"] < nodes))
            assert step["combine"] != "mean" or np.all((arrays["value"] >= 0) & (arrays["value"] <= 1))
            level = np.unique(arrays["roots"])
            for _ in range(MAX_TREE_DEPTH + 1):  # level by level: a deeper tree (a chain) is refused
                level = level[left[level] != -1]
                if not len(level):
                    break
                level = np.unique(np.concatenate([left[level], right[level]]))  # shared children: once
            assert not len(level), "a tree deeper than MAX_TREE_DEPTH"

    def scores(self, X) -> np.ndarray:
        """Malignancy probability per row of features (the pipeline's predict_proba[:, 1])."""
        X = np.array(X, dtype=np.float64)
        for index, step in enumerate(self.steps):
            name, get = step["step"], (lambda key, i=index: self._get(i, key))
            if name == "select":
                X = X[:, get("columns")]
            elif name == "subtract_divide":
                X = (X - get("subtract")) / get("divide")
            elif name == "multiply_add":
                X = X * get("multiply") + get("add")
            elif name == "project":
                X = X @ get("components").T - get("mean")[None] @ get("components").T
            elif name == "logistic":
                return _expit(X @ get("coef") + get("intercept")[0])
            elif name == "gaussian_nb":
                means, variances = get("means"), get("variances")
                joint = np.log(get("priors")) - 0.5 * np.sum(np.log(2.0 * np.pi * variances), axis=1) \
                    - 0.5 * np.sum((X[:, None, :] - means) ** 2 / variances, axis=2)
                return np.exp(joint[:, 1] - np.logaddexp(joint[:, 0], joint[:, 1]))
            else:
                return self._trees(step, get, X)
        raise ModelError("The plain-array model has no classifier step")

    @staticmethod
    def _trees(step: dict, get, X: np.ndarray) -> np.ndarray:
        """Every tree walked for every row at once (features as float32, as scikit-learn and XGBoost read them)."""
        X = X.astype(np.float32).astype(np.float64)
        feature, threshold, left, right = get("feature"), get("threshold"), get("left"), get("right")
        nodes = np.broadcast_to(get("roots"), (len(X), len(get("roots")))).copy()
        rows = np.arange(len(X))[:, None]
        while True:
            inner = left[nodes] != -1
            if not inner.any():
                break
            values = X[rows, np.where(inner, feature[nodes], 0)]
            go_left = values <= threshold[nodes] if step["compare"] == "<=" else values < threshold[nodes]
            nodes = np.where(inner, np.where(go_left, left[nodes], right[nodes]), nodes)
        leaves = get("value")[nodes]
        if step["combine"] == "mean":
            return leaves.mean(axis=1)
        return _expit(get("base")[0] + leaves.sum(axis=1))

    def reference(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(columns kept by the first selection, the normaliser's reference value of each) for the contributions
        (a feature set to its training reference), or None without a normaliser."""
        if "reference" not in self.arrays or self.steps[0]["step"] != "select":
            return None
        return self._get(0, "columns"), self.arrays["reference"]


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
