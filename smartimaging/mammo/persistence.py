"""Saving and loading fitted radiomics models without pickle: the scikit-learn pipeline as skops, an XGBoost
classifier as XGBoost JSON, the plain-array form for prediction (`plain.py`), and a card with sha256 of all.

A model folder is untrusted input. Loading checks, before anything is built: the card's file names stay inside the
card's folder, the files' sizes (from the file system and the zip directory) are within limits, their sha256 match
the card, and every node of the skops file is one of the exact (node kind, type) pairs that our own pipelines
contain (`ALLOWED_SKOPS_NODES`, derived from fitting every component of `search.py`; a test keeps it complete).
Nothing is trusted by prefix. The arrays that compiled code indexes without checking (decision-tree nodes, SVM
support vectors) are checked after loading, and the pipeline must give a finite score for a probe case: a tampered
array could otherwise crash the process or give a meaningless Rad-score.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.pipeline import Pipeline

from .. import __version__
from ..errors import ModelError
from ..io import atomic_files
from ..models.registry import (
    MAX_CARD_BYTES,
    MAX_MODEL_FILE_BYTES,
    check_card_id,
    file_in_model_folder,
    read_json_limited,
    sha256_of,
    verified_model_file,
)
from .plain import plain_model_of
from .search import FittedModel

ALLOWED_SKOPS_NODES = frozenset({
    ("DictNode", "builtins.dict"), ("ListNode", "builtins.list"), ("TupleNode", "builtins.tuple"),
    ("JsonNode", "builtins.str"), ("TypeNode", "builtins.str"),
    ("NdArrayNode", "numpy.ndarray"), ("NdArrayNode", "numpy.float64"), ("NdArrayNode", "numpy.int64"),
    ("FunctionNode", "sklearn.feature_selection._univariate_selection.f_classif"),
    ("FunctionNode", "smartimaging.mammo.search.kruskal_wallis_scores"),
    ("ObjectNode", "sklearn.pipeline.Pipeline"),
    ("ObjectNode", "sklearn.feature_selection._variance_threshold.VarianceThreshold"),
    ("ObjectNode", "sklearn.preprocessing._data.MinMaxScaler"),
    ("ObjectNode", "sklearn.preprocessing._data.StandardScaler"),
    ("ObjectNode", "smartimaging.mammo.search.MeanNormaliser"),
    ("ObjectNode", "sklearn.decomposition._pca.PCA"),
    ("ObjectNode", "smartimaging.mammo.search.PearsonFilter"),
    ("ObjectNode", "sklearn.feature_selection._univariate_selection.SelectKBest"),
    ("ObjectNode", "sklearn.feature_selection._rfe.RFE"),
    ("ObjectNode", "smartimaging.mammo.search.ReliefSelector"),
    ("ObjectNode", "sklearn.svm._classes.SVC"),
    ("ObjectNode", "sklearn.calibration.CalibratedClassifierCV"),
    ("ObjectNode", "sklearn.calibration._CalibratedClassifier"),
    ("ObjectNode", "sklearn.calibration._SigmoidCalibration"),
    ("ObjectNode", "sklearn.linear_model._logistic.LogisticRegression"),
    ("ObjectNode", "sklearn.discriminant_analysis.LinearDiscriminantAnalysis"),
    ("ObjectNode", "sklearn.ensemble._forest.RandomForestClassifier"),
    ("ObjectNode", "sklearn.ensemble._weight_boosting.AdaBoostClassifier"),
    ("ObjectNode", "sklearn.tree._classes.DecisionTreeClassifier"),
    ("TreeNode", "sklearn.tree._tree.Tree"),
    ("ObjectNode", "sklearn.naive_bayes.GaussianNB"),
})


def save_radiomics_model(model: FittedModel, directory: str | os.PathLike, model_id: str, card: dict) -> Path:
    """Write `<id>.skops` (+ `<id>.xgboost.json`, + `<id>.plain.safetensors` when the pipeline has a plain form)
    and the card `<id>.json` together (a full disk leaves none of them half written); returns the card path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pipeline, classifier = model.pipeline, model.pipeline.named_steps["classifier"]
    with_booster = type(classifier).__module__.startswith("xgboost")
    plain = plain_model_of(pipeline)  # scored without scikit-learn at prediction; None: skops (and XGBoost) only
    files = {"pipeline": f"{model_id}.skops", **({"xgboost": f"{model_id}.xgboost.json"} if with_booster else {}),
             **({"plain": f"{model_id}.plain.safetensors"} if plain else {})}
    card_path = directory / f"{model_id}.json"
    targets = [directory / name for name in files.values()]
    with atomic_files(*targets, card_path) as temporary:
        written = dict(zip(files.values(), temporary, strict=False))
        if plain:
            plain.save(written[files["plain"]])
        if with_booster:
            classifier.save_model(str(written[files["xgboost"]]))
            pipeline = Pipeline(pipeline.steps[:-1])
        sio.dump(pipeline, written[files["pipeline"]])
        card = {**card, "id": model_id, "version": card.get("version", "1.0.0"),
                "smartimaging_version": __version__, "task": card.get("task", "mammo-classifier"),
                "pipeline": model.config, "features": model.feature_names,
                "selected_inputs": model.selected_inputs(),
                "cutoff": {"value": model.cutoff, "method": "Youden index of out-of-fold training predictions"},
                "metrics": {**card.get("metrics", {}), "cv_auc": model.cv_auc},
                "files": files, "sha256": {name: sha256_of(path) for name, path in written.items()}}
        temporary[-1].write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card_path


def skops_nodes(path: Path) -> set[tuple[str, str]]:
    """Every (node kind, module.type) pair in a skops file's schema, read without building anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            if unpacked > MAX_MODEL_FILE_BYTES:
                raise ModelError(f"The model file {path.name} unpacks to {unpacked / 2**20:.0f} MB; the limit is "
                                 f"{MAX_MODEL_FILE_BYTES // 2**20} MB. Refusing to use it.")
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, RecursionError, OSError) as exc:
        raise ModelError(f"The model file {path.name} is not a readable skops file (damaged or not a model)") from exc
    found: set[tuple[str, str]] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if "__class__" in node or "__loader__" in node:
                found.add((str(node.get("__loader__")), f"{node.get('__module__')}.{node.get('__class__')}"))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def _estimators(root) -> list:
    """Every estimator inside a fitted pipeline (steps, fitted sub-estimators, ensemble members)."""
    found, pending = [], [root]
    while pending:
        item = pending.pop()
        if isinstance(item, list | tuple):
            pending.extend(item)
            continue
        if not hasattr(item, "get_params"):
            if hasattr(item, "calibrators"):  # a calibrated classifier's member: its own fitted SVC
                pending.append(item.estimator)
            continue
        found.append(item)
        if isinstance(item, Pipeline):
            pending.extend(step for _, step in item.steps)
        for name in ("estimator_", "estimators_", "calibrated_classifiers_"):
            pending.append(getattr(item, name, None))
    return found


def _check_tree(estimator, where: str) -> None:
    """Node arrays consistent: children after their parent (no cycles) and inside the tree, features in range."""
    tree = estimator.tree_
    n, columns = tree.node_count, estimator.n_features_in_
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    inner = np.flatnonzero(left != -1)
    ok = (len(left) == len(right) == len(feature) == len(tree.threshold) == tree.value.shape[0] == n > 0
          and tree.n_features == columns and np.array_equal(left == -1, right == -1)
          and np.all((left[inner] > inner) & (left[inner] < n) & (right[inner] > inner) & (right[inner] < n))
          and np.all((feature[inner] >= 0) & (feature[inner] < columns))
          and np.all(np.isfinite(tree.threshold[inner])) and np.all(np.isfinite(tree.value)))
    if not ok:
        raise ModelError(f"The model file {where} holds a damaged decision tree (node indices out of range). "
                         "Refusing to use it.")


def _check_svm(svm, where: str) -> None:
    """Support-vector counts, vectors and coefficients of one shape, all finite."""
    n_support, vectors = np.asarray(svm._n_support), svm.support_vectors_
    ok = (n_support.ndim == 1 and np.all(n_support >= 0)
          and int(n_support.sum()) == vectors.shape[0] == len(svm.support_)
          and vectors.shape[1] == svm.n_features_in_
          and svm.dual_coef_.shape == (len(n_support) - 1, vectors.shape[0])
          and np.all(np.isfinite(vectors)) and np.all(np.isfinite(svm.dual_coef_)))
    if not ok:
        raise ModelError(f"The model file {where} holds a damaged support-vector machine (inconsistent arrays). "
                         "Refusing to use it.")


def check_fitted_pipeline(pipeline: Pipeline, n_features: int, where: str) -> None:
    """Refuse tampered arrays that compiled code trusts, then require a finite score for a probe case."""
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    for estimator in _estimators(pipeline):
        if isinstance(estimator, DecisionTreeClassifier) and hasattr(estimator, "tree_"):  # not the template
            _check_tree(estimator, where)
        elif isinstance(estimator, SVC) and hasattr(estimator, "support_vectors_"):
            _check_svm(estimator, where)
    try:
        probe = pipeline.predict_proba(np.zeros((1, n_features)))
    except Exception as exc:  # numpy / scikit-learn raise many types on inconsistent fitted arrays
        raise ModelError(f"The model file {where} does not compute a score ({exc.__class__.__name__}); it is "
                         "damaged. Refusing to use it.") from exc
    if probe.shape != (1, 2) or not np.all(np.isfinite(probe)):
        raise ModelError(f"The model file {where} gives no valid score (NaN or wrong shape); it is damaged. "
                         "Refusing to use it.")


def load_radiomics_model(card_path: str | os.PathLike) -> FittedModel:
    """Verify file names, sizes, checksums and the exact types in the skops file, then rebuild the pipeline."""
    card_path = Path(card_path)
    card = read_json_limited(card_path, MAX_CARD_BYTES, "Model card")
    check_card_id(card, card_path)
    try:
        files, checksums = dict(card["files"]), dict(card["sha256"])
        pipeline_name = files["pipeline"]
        config, features = dict(card["pipeline"]), [str(name) for name in card["features"]]
        cutoff, cv_auc = float(card["cutoff"]["value"]), float(card["metrics"]["cv_auc"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"The model card {card_path.name} is incomplete or malformed ({exc.__class__.__name__}: "
                         f"{exc})") from exc
    for name in files.values():
        verified_model_file(card_path, name, checksums)
    pipeline_path = file_in_model_folder(card_path, pipeline_name)
    refused = {name for _, name in skops_nodes(pipeline_path) - ALLOWED_SKOPS_NODES}
    if refused:
        raise ModelError(f"The model file {pipeline_path.name} contains types that SmartImaging never saves "
                         f"({', '.join(sorted(refused)[:5])}); it may run code when loaded. Refusing to use it.")
    try:
        untrusted = sio.get_untrusted_types(file=pipeline_path)
        if set(untrusted) - {name for _, name in ALLOWED_SKOPS_NODES}:
            raise ModelError(f"The model file {pipeline_path.name} contains types that SmartImaging never saves "
                             f"({', '.join(sorted(untrusted)[:5])}); it may run code when loaded. Refusing to use it.")
        pipeline = sio.load(pipeline_path, trusted=untrusted)
    except ModelError:
        raise
    except Exception as exc:  # skops raises many types on inconsistent content; the types were checked above
        raise ModelError(f"The model file {pipeline_path.name} could not be loaded ({exc.__class__.__name__})") from exc
    if not isinstance(pipeline, Pipeline):
        raise ModelError(f"The model file {pipeline_path.name} does not hold a scikit-learn pipeline")
    if "xgboost" in files:
        from xgboost import XGBClassifier
        from xgboost.core import XGBoostError

        classifier = XGBClassifier()
        try:
            classifier.load_model(str(file_in_model_folder(card_path, files["xgboost"])))
        except (XGBoostError, ValueError) as exc:
            raise ModelError(f"The XGBoost file {files['xgboost']} is damaged or not an XGBoost model") from exc
        pipeline = Pipeline([*pipeline.steps, ("classifier", classifier)])
    if not (math.isfinite(cutoff) and 0 <= cutoff <= 1):
        raise ModelError(f"The model card {card_path.name} gives the cutoff {cutoff!r}; a cutoff lies between 0 and "
                         "1. The card was edited or damaged.")
    check_fitted_pipeline(pipeline, len(features), pipeline_path.name)
    return FittedModel(pipeline, config, features, cutoff, cv_auc, np.array([]))
