"""The radiomics model search gives the same table and the same choice in one process and in two."""

from __future__ import annotations

import numpy as np

from smartimaging.mammo.search import nested_cv, search

SPACE = {"normalisers": ("minmax", "zscore"), "reducers": ("pca", "pcc"), "selectors": ("anova", "kw"),
         "n_features": (3, 5), "classifiers": ("svm", "lr", "nb")}


def _cohort(seed: int = 4, patients: int = 36, features: int = 12):
    """Two lesions for some patients; a weak signal in three features, so configurations differ in CV AUC."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(patients), rng.integers(1, 3, patients))
    y = np.array([g % 2 for g in groups])
    X = rng.normal(size=(len(y), features))
    X[:, :3] += 0.8 * y[:, None] + rng.normal(scale=0.5, size=(len(y), 3))
    X[:, 5] = X[:, 0] * 2 + rng.normal(scale=0.01, size=len(y))  # near-duplicate: the Pearson filter drops it
    return X, y, groups.astype(str)


def test_search_and_nested_cv_identical_for_one_and_two_processes():
    X, y, groups = _cohort()
    serial = search(X, y, groups, n_jobs=1, **SPACE)
    parallel = search(X, y, groups, n_jobs=2, **SPACE)
    assert len(serial.table) == 48 and len({row["cv_auc"] for row in serial.table}) > 5
    assert parallel.table == serial.table  # same order, bit-identical AUCs and standard errors
    assert parallel.best == serial.best
    space = {**SPACE, "classifiers": ("lr",), "n_features": (3,)}
    assert nested_cv(X, y, groups, outer_folds=3, folds=3, n_jobs=2, **space) == \
        nested_cv(X, y, groups, outer_folds=3, folds=3, n_jobs=1, **space)
