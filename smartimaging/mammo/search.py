"""FAE-style radiomics model search, leakage-free: normaliser → reducer → selector → classifier, every step fitted
inside patient-grouped cross-validation folds; best by CV AUC (optionally the one-standard-error rule); the
cutoff is the Youden point of the out-of-fold predictions of the training data only.

The search picks the best of its candidates by the same CV it reports, so that CV AUC is optimistic; `nested_cv`
gives the honest estimate: outer patient-grouped folds around the whole search (every candidate refitted and the
best selected inside each outer training fold, scored on the outer test fold only). A preset involves no selection,
so its CV AUC is already honest.

The configurations are independent: `n_jobs` runs them in parallel processes (joblib), each with single-threaded BLAS
in whichever process runs it, so the table and the choice are identical for any `n_jobs`.

Presets reproduce the paper's two pipelines: masses z-score → PCA → RFE (9) → random forest; calcifications
min-max → PCA → Kruskal–Wallis (13) → XGBoost.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
from sklearn.feature_selection import RFE, SelectKBest, VarianceThreshold, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from ..errors import InputError
from ..evaluation import youden_cutoff


class MeanNormaliser(BaseEstimator, TransformerMixin):
    """(x − mean) / (max − min), FAE's "mean" normalisation."""

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        self.mean_, span = X.mean(axis=0), X.max(axis=0) - X.min(axis=0)
        self.span_ = np.where(span > 0, span, 1.0)
        return self

    def transform(self, X):
        return (np.asarray(X, dtype=float) - self.mean_) / self.span_


class PearsonFilter(BaseEstimator, TransformerMixin):
    """Drops a feature when its |Pearson r| with an already kept feature exceeds `threshold`."""

    def __init__(self, threshold: float = 0.99):
        self.threshold = threshold

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.nan_to_num(np.abs(np.corrcoef(X, rowvar=False)), nan=0.0)
        kept: list[int] = []
        for column in range(X.shape[1]):
            if all(r[column, other] <= self.threshold for other in kept):
                kept.append(column)
        self.kept_ = np.array(kept)
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float)[:, self.kept_]


def kruskal_wallis_scores(X, y):
    """Kruskal–Wallis H and p-value per feature (score function for SelectKBest)."""
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    groups = [X[y == label] for label in np.unique(y)]
    scores, p_values = [], []
    for column in range(X.shape[1]):
        try:
            h, p = stats.kruskal(*(g[:, column] for g in groups))
        except ValueError:  # all values identical
            h, p = 0.0, 1.0
        scores.append(h)
        p_values.append(p)
    return np.array(scores), np.array(p_values)


class ReliefSelector(BaseEstimator, TransformerMixin):
    """ReliefF for two classes: features that separate nearest misses from nearest hits score high."""

    def __init__(self, n_features: int = 10, n_neighbors: int = 10):
        self.n_features, self.n_neighbors = n_features, n_neighbors

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=float), np.asarray(y)
        span = X.max(axis=0) - X.min(axis=0)
        Xs = (X - X.min(axis=0)) / np.where(span > 0, span, 1.0)
        distances = np.abs(Xs[:, None, :] - Xs[None, :, :]).sum(axis=2)
        np.fill_diagonal(distances, np.inf)
        weights = np.zeros(X.shape[1])
        for i in range(len(X)):
            for same, sign in ((True, -1.0), (False, 1.0)):
                candidates = np.flatnonzero((y == y[i]) == same)
                candidates = candidates[candidates != i]
                nearest = candidates[np.argsort(distances[i, candidates])[: self.n_neighbors]]
                if nearest.size:
                    weights += sign * np.abs(Xs[nearest] - Xs[i]).mean(axis=0)
        self.scores_ = weights / len(X)
        self.kept_ = np.sort(np.argsort(-self.scores_)[: self.n_features])
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float)[:, self.kept_]


NORMALISERS = {"none": lambda: "passthrough", "minmax": MinMaxScaler, "zscore": StandardScaler,
               "mean": MeanNormaliser}
REDUCERS = {"none": lambda: "passthrough", "pca": PCA, "pcc": PearsonFilter}


def _selector(name: str, k: int, seed: int):
    if name == "anova":
        return SelectKBest(f_classif, k=k)
    if name == "kw":
        return SelectKBest(kruskal_wallis_scores, k=k)
    if name == "rfe":
        return RFE(SVC(kernel="linear"), n_features_to_select=k)
    if name == "relief":
        return ReliefSelector(n_features=k)
    raise ValueError(f"unknown selector {name!r}")


def _classifier(name: str, seed: int):
    if name == "svm":  # Platt scaling fitted on 5-fold decision values (SVC(probability=True) is deprecated)
        return CalibratedClassifierCV(SVC(kernel="linear"), method="sigmoid", ensemble=False)
    if name == "lr":
        return LogisticRegression(max_iter=5000)
    if name == "lda":
        return LinearDiscriminantAnalysis()
    if name == "rf":
        return RandomForestClassifier(n_estimators=200, random_state=seed)
    if name == "adaboost":
        return AdaBoostClassifier(random_state=seed)
    if name == "nb":
        return GaussianNB()
    if name == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=200, max_depth=3, learning_rate=0.1, random_state=seed, n_jobs=1,
                             eval_metric="logloss")
    raise ValueError(f"unknown classifier {name!r}")


SELECTORS = ("anova", "kw", "rfe", "relief")
CLASSIFIERS = ("svm", "lr", "lda", "rf", "xgboost", "adaboost", "nb")
PRESETS = {
    "mass": {"normaliser": "zscore", "reducer": "pca", "selector": "rfe", "n_features": 9, "classifier": "rf"},
    "calcification": {"normaliser": "minmax", "reducer": "pca", "selector": "kw", "n_features": 13,
                      "classifier": "xgboost"},
}


def build_pipeline(normaliser: str, reducer: str, selector: str, n_features: int, classifier: str,
                   seed: int = 0) -> Pipeline:
    return Pipeline([("drop_constant", VarianceThreshold(0.0)),
                     ("normaliser", NORMALISERS[normaliser]()), ("reducer", REDUCERS[reducer]()),
                     ("selector", _selector(selector, n_features, seed)),
                     ("classifier", _classifier(classifier, seed))])


def out_of_fold_scores(config: dict, X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5,
                       seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold malignancy scores and per-fold AUCs; every step is fitted on the training folds only."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores, fold_aucs = np.zeros(len(y)), []
    for train, test in splitter.split(X, y, groups):
        pipeline = build_pipeline(**config, seed=seed).fit(X[train], y[train])
        scores[test] = pipeline.predict_proba(X[test])[:, 1]
        if len(np.unique(y[test])) == 2:
            fold_aucs.append(roc_auc_score(y[test], scores[test]))
    return scores, fold_aucs


@dataclass
class SearchResult:
    best: dict
    table: list[dict] = field(default_factory=list)  # one row per configuration: config, cv_auc, cv_sd


def _cv_row(config: dict, X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> dict:
    """One configuration's mean CV AUC and its standard error, computed with single-threaded BLAS (the same
    arithmetic in this process and in a worker)."""
    with threadpool_limits(limits=1):
        _, aucs = out_of_fold_scores(config, X, y, groups, folds, seed)
    return {**config, "cv_auc": float(np.mean(aucs)),
            "cv_se": float(np.std(aucs, ddof=1) / np.sqrt(len(aucs))) if len(aucs) > 1 else 0.0}


def search(X, y, groups, normalisers=("minmax", "zscore"), reducers=("pca", "pcc"), selectors=("anova", "kw"),
           n_features=range(5, 16, 2), classifiers=("svm", "lr", "rf"), folds: int = 5, seed: int = 0,
           one_standard_error: bool = False, n_jobs: int = 1) -> SearchResult:
    """Grid search by patient-grouped CV AUC; with the one-SE rule the simplest (fewest features) configuration
    within one standard error of the best is chosen. `n_jobs` processes (-1: all cores) share the configurations."""
    X, y, groups = np.asarray(X, dtype=float), np.asarray(y).astype(int), np.asarray(groups)
    if len(np.unique(y)) != 2:
        raise InputError("The training data must contain benign and malignant cases")
    configs = [{"normaliser": normaliser, "reducer": reducer, "selector": selector, "n_features": int(k),
                "classifier": classifier}
               for normaliser, reducer, selector, k, classifier in itertools.product(normalisers, reducers, selectors,
                                                                                     n_features, classifiers)]
    table = Parallel(n_jobs=n_jobs)(delayed(_cv_row)(config, X, y, groups, folds, seed) for config in configs)
    best = max(table, key=lambda row: row["cv_auc"])
    if one_standard_error:
        eligible = [row for row in table if row["cv_auc"] >= best["cv_auc"] - best["cv_se"]]
        best = min(eligible, key=lambda row: (row["n_features"], -row["cv_auc"]))
    return SearchResult({k: best[k] for k in ("normaliser", "reducer", "selector", "n_features", "classifier")},
                        table)


def nested_cv(X, y, groups, outer_folds: int = 5, folds: int = 5, seed: int = 0, one_standard_error: bool = False,
              n_jobs: int = 1, **space) -> dict:
    """Honest AUC of the whole search: per outer patient-grouped fold, `search` (with its own `folds`-fold CV) on the
    outer training patients, the selected pipeline refitted on them and scored on the outer test patients.
    Returns {"auc", "sd" (over outer folds), "outer_folds": [{"auc", "cases", "selected", "inner_cv_auc"}, ...]}.
    `n_jobs` is the search's."""
    X, y, groups = np.asarray(X, dtype=float), np.asarray(y).astype(int), np.asarray(groups)
    splitter = StratifiedGroupKFold(n_splits=outer_folds, shuffle=True, random_state=seed)
    results = []
    for train, test in splitter.split(X, y, groups):
        if len(np.unique(y[test])) < 2:
            continue  # an outer test fold of one class has no AUC (StratifiedGroupKFold avoids it when it can)
        fewest = min(len(set(groups[train][y[train] == label])) for label in (0, 1))
        if fewest < folds:
            raise InputError(f"Nested cross-validation: an outer training fold holds only {fewest} patients of one "
                             f"class, too few for {folds} inner folds; give fewer --folds or --outer-folds, or add "
                             "cases")
        found = search(X[train], y[train], groups[train], folds=folds, seed=seed,
                       one_standard_error=one_standard_error, n_jobs=n_jobs, **space)
        pipeline = build_pipeline(**found.best, seed=seed).fit(X[train], y[train])
        scores = pipeline.predict_proba(X[test])[:, 1]
        inner = next(row["cv_auc"] for row in found.table if all(row[k] == v for k, v in found.best.items()))
        results.append({"auc": float(roc_auc_score(y[test], scores)), "cases": int(len(test)),
                        "selected": found.best, "inner_cv_auc": inner})
    if not results:
        raise InputError("Nested cross-validation: no outer test fold holds both classes; add cases")
    aucs = [row["auc"] for row in results]
    return {"auc": float(np.mean(aucs)), "sd": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
            "outer_folds": results}


@dataclass
class FittedModel:
    pipeline: Pipeline
    config: dict
    feature_names: list[str]
    cutoff: float
    cv_auc: float
    training_scores: np.ndarray
    cv_fold_aucs: list[float] = field(default_factory=list)

    def scores(self, X) -> np.ndarray:
        return self.pipeline.predict_proba(np.asarray(X, dtype=float))[:, 1]

    def reference(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(columns kept by the constant-feature filter, the normaliser's training reference of each: mean or
        mid-range) for the contributions, or None without a normaliser."""
        normaliser = self.pipeline.named_steps["normaliser"]
        if isinstance(normaliser, StandardScaler | MeanNormaliser):
            reference = normaliser.mean_
        elif isinstance(normaliser, MinMaxScaler):
            reference = normaliser.data_min_ + normaliser.data_range_ / 2
        else:
            return None
        return self.pipeline.named_steps["drop_constant"].get_support(indices=True), reference

    def selected_inputs(self) -> list[str]:
        """Names of what the selector kept: original features, or principal components after PCA."""
        selector = self.pipeline.named_steps["selector"]
        kept = selector.get_support(indices=True) if hasattr(selector, "get_support") else selector.kept_
        reducer = self.pipeline.named_steps["reducer"]
        if isinstance(reducer, PCA):
            return [f"PC{i + 1}" for i in kept]
        names = [self.feature_names[i] for i in self.pipeline.named_steps["drop_constant"].get_support(indices=True)]
        if isinstance(reducer, PearsonFilter):
            names = [names[i] for i in reducer.kept_]
        return [names[i] for i in kept]


def fit_final(config: dict, X, y, groups, feature_names: list[str], folds: int = 5, seed: int = 0) -> FittedModel:
    """Cutoff from out-of-fold training predictions (Youden), then the pipeline refitted on all training data."""
    X, y = np.asarray(X, dtype=float), np.asarray(y).astype(int)
    scores, aucs = out_of_fold_scores(config, X, y, np.asarray(groups), folds, seed)
    pipeline = build_pipeline(**config, seed=seed).fit(X, y)
    return FittedModel(pipeline, dict(config), list(feature_names), youden_cutoff(y, scores), float(np.mean(aucs)),
                       scores, [float(auc) for auc in aucs])
