"""`lvi fuse`: the out-of-fold predictions behind the fusion's cutoff come from a pipeline (scaler + regression)
fitted inside each patient-grouped fold, never from a scaler that saw the held-out fold."""

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from smartimaging.lvi.fusion import FUSION_FOLDS, out_of_fold_probabilities


def _cohort(seed=3, n=60):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    patients = [f"P{i // 2}" for i in range(n)]  # two lesions per patient
    logits = rng.normal(y * 1.5, 1.0)
    age = rng.normal(55, 12, n) + np.where(np.arange(n) < n // 2, 0, 25)  # a shift the scaler must not leak
    return np.stack([logits, age], axis=1), y, patients


def _refit_fold_by_fold(X, y, patients, scaler_on_all: bool):
    out = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=FUSION_FOLDS).split(X, y, patients):
        fitted_on = X if scaler_on_all else X[train]
        mean, scale = fitted_on.mean(axis=0), fitted_on.std(axis=0)
        regression = LogisticRegression(random_state=0).fit((X[train] - mean) / scale, y[train])
        out[test] = regression.predict_proba((X[test] - mean) / scale)[:, 1]
    return out


def test_out_of_fold_fusion_fits_the_scaler_inside_each_fold():
    X, y, patients = _cohort()
    reported = out_of_fold_probabilities(X, y, patients)
    np.testing.assert_allclose(reported, _refit_fold_by_fold(X, y, patients, scaler_on_all=False), atol=1e-8)
    leaky = _refit_fold_by_fold(X, y, patients, scaler_on_all=True)
    assert np.abs(reported - leaky).max() > 1e-3  # the leaky version is measurably different on this cohort

