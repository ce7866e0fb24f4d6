"""Late fusion of sequences and clinical covariates (beyond the paper): a logistic regression on the models' case
probabilities (as logits) and manifest covariates (age, size, ...), fitted on the training cases
(`lvi.fusion_training`).

The fitted fusion is a small JSON card (means, scales, coefficients, intercept, cutoff): transparent and never
pickled. Its cutoff is the Youden point of out-of-fold training predictions (5 patient-grouped folds); in each fold the
whole pipeline (standardisation + regression) is fitted on the other folds' patients only, so neither the scaler nor
the regression has seen the predictions the cutoff is tuned on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError, ModelError
from ..models.registry import MAX_CARD_BYTES, read_json_limited

if TYPE_CHECKING:  # scikit-learn (~1 s to import) only where a fusion is fitted; `lvi predict` applies it with numpy
    from sklearn.pipeline import Pipeline

EPSILON = 1e-4
MAX_FUSION_INPUTS = 32  # models and covariates of one fusion


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


FUSION_FOLDS = 5


def fusion_pipeline(seed: int = 0) -> Pipeline:
    """The whole fusion: standardisation of the inputs, then a logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(random_state=seed))


def out_of_fold_probabilities(X: np.ndarray, y: np.ndarray, patients: list[str], seed: int = 0) -> np.ndarray:
    """Each case scored by a fusion pipeline fitted (scaler included) on the other folds' patients only."""
    from sklearn.model_selection import GroupKFold

    if len(set(patients)) < FUSION_FOLDS:
        raise InputError(f"The fusion's out-of-fold cutoff needs at least {FUSION_FOLDS} patients in the 'train' "
                         f"split; it has {len(set(patients))}. Add training cases")
    out_of_fold = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=FUSION_FOLDS).split(X, y, patients):
        if len(np.unique(y[train])) < 2:
            raise InputError("A cross-validation fold of the 'train' split holds one class only; add LVI-positive "
                             "and LVI-negative training cases")
        out_of_fold[test] = fusion_pipeline(seed).fit(X[train], y[train]).predict_proba(X[test])[:, 1]
    return out_of_fold


def apply_fusion(fusion: dict, X: np.ndarray) -> np.ndarray:
    """Fused probabilities for rows of [model logits..., covariates...] in the order of `fusion['inputs']`."""
    Z = (np.asarray(X, float) - np.array(fusion["mean"])) / np.array(fusion["scale"])
    return 1 / (1 + np.exp(-(Z @ np.array(fusion["coefficients"]) + fusion["intercept"])))


def read_fusion(path: str | os.PathLike) -> dict:
    path = Path(path)
    card = read_json_limited(path, MAX_CARD_BYTES, "Fusion card")
    if not isinstance(card, dict) or card.get("task") != "lvi-fusion":
        raise ModelError(f"{path.name} is not a BreastLVI fusion card")
    fusion = card.get("fusion")
    try:
        sizes = {len(fusion[key]) for key in ("inputs", "mean", "scale", "coefficients")}
        numbers = np.array([*fusion["mean"], *fusion["scale"], *fusion["coefficients"], fusion["intercept"],
                            fusion["cutoff"]], float)
    except (TypeError, KeyError, ValueError) as exc:
        raise ModelError(f"{path.name} is damaged: its fusion lacks inputs, means, scales, coefficients, intercept "
                         "or cutoff; fit it again with `lvi fuse`") from exc
    if len(sizes) != 1 or not np.all(np.isfinite(numbers)) or not all(isinstance(n, str) for n in fusion["inputs"]):
        raise ModelError(f"{path.name} is damaged (inconsistent or non-numeric fusion values); fit it again with "
                         "`lvi fuse`")
    if not fusion["inputs"] or len(fusion["inputs"]) > MAX_FUSION_INPUTS or len(set(fusion["inputs"])) != len(
            fusion["inputs"]):
        raise ModelError(f"{path.name} is damaged: fusion.inputs holds {len(fusion['inputs'])} names (or repeats "
                         f"one); expected 1 to {MAX_FUSION_INPUTS} distinct models and covariates. Fit it again with "
                         "`lvi fuse`")
    if not np.all(np.array(fusion["scale"], float) > 0) or not 0 <= float(fusion["cutoff"]) <= 1:
        raise ModelError(f"{path.name} is damaged: fusion.scale must be positive and fusion.cutoff 0 to 1 (it is "
                         f"{float(fusion['cutoff']):g}). Fit it again with `lvi fuse`")
    return card


def fused_probability(fusion: dict, probabilities: dict[str, float], covariates: dict[str, float]) -> float:
    """The fusion of one case, from the probabilities of its models (by id) and its covariates."""
    missing = [name for name in fusion["inputs"] if name not in probabilities and name not in covariates]
    if missing:
        raise InputError(f"The fusion needs {', '.join(missing)} (give the models' sequences and the covariates)")
    row = [logit(np.array(probabilities[name])) if name in probabilities else float(covariates[name])
           for name in fusion["inputs"]]
    return float(apply_fusion(fusion, np.array([row], float))[0])
