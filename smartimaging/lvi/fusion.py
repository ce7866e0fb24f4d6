"""Late fusion of sequences and clinical covariates (beyond the paper): a logistic regression on the models' case
probabilities (as logits) and manifest covariates (age, size, ...), fitted on the training cases.

The fitted fusion is a small JSON card (means, scales, coefficients, intercept, cutoff): transparent and never
pickled. Its cutoff is the Youden point of out-of-fold training predictions (5 patient-grouped folds); in each fold the
whole pipeline (standardisation + regression) is fitted on the other folds' patients only, so neither the scaler nor
the regression has seen the predictions the cutoff is tuned on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .. import __version__
from ..domain import summarise
from ..errors import InputError, ModelError
from ..evaluation import auc_with_ci, binary_metrics, youden_cutoff
from ..io import atomic_output_dir, write_json
from ..models.registry import MAX_CARD_BYTES, read_json_limited
from .cohort import case_inputs, check_both_classes
from .predict import _settings, load_lvi_model
from .train import case_probabilities

EPSILON = 1e-4
MAX_FUSION_INPUTS = 32  # models and covariates of one fusion


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


def _design(manifest, model_ids, covariates, split, directory) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """[model logits..., covariates...] per case, labels, patient ids, and the models' ids."""
    columns, labels, patients, ids = [], None, None, []
    for model_id in model_ids:
        model = load_lvi_model(model_id, directory)
        card = model.card
        ids.append(card["id"])
        cases = case_inputs(manifest, card["inputs"]["sequence"], split, card["inputs"]["dimensions"],
                            _settings(card))
        check_both_classes(cases, split, "fitting the fusion" if split == "train" else "validating the fusion")
        columns.append(_logit(case_probabilities(model.network, cases, next(model.network.parameters()).device)))
        labels = np.array([case["label"] for case in cases])
        patients = [case["patient_id"] for case in cases]
        rows = [case["row"] for case in cases]
    for name in covariates:
        try:
            columns.append(np.array([float(row[name]) for row in rows]))
        except (KeyError, ValueError) as exc:
            raise InputError(f"The manifest needs a numeric '{name}' column for every case") from exc
        if not np.all(np.isfinite(columns[-1])):
            raise InputError(f"The manifest's '{name}' column holds NaN or infinity; give a number for every case")
    return np.stack(columns, axis=1), labels, patients, ids


FUSION_FOLDS = 5


def fusion_pipeline(seed: int = 0) -> Pipeline:
    """The whole fusion: standardisation of the inputs, then a logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(random_state=seed))


def out_of_fold_probabilities(X: np.ndarray, y: np.ndarray, patients: list[str], seed: int = 0) -> np.ndarray:
    """Each case scored by a fusion pipeline fitted (scaler included) on the other folds' patients only."""
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


def fit_fusion(manifest: str | os.PathLike, model_ids: list[str], covariates: list[str], out_dir, model_id: str,
               directory=None, seed: int = 0) -> Path:
    X, y, patients, ids = _design(manifest, model_ids, covariates, "train", directory)
    out_of_fold = out_of_fold_probabilities(X, y, patients, seed)
    pipeline = fusion_pipeline(seed).fit(X, y)
    scaler, regression = pipeline[0], pipeline[-1]
    fusion = {"inputs": [*ids, *covariates], "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
              "coefficients": regression.coef_[0].tolist(), "intercept": float(regression.intercept_[0]),
              "cutoff": youden_cutoff(y, out_of_fold)}
    card = {"id": model_id, "version": "1.0.0", "task": "lvi-fusion", "smartimaging_version": __version__,
            "fusion": fusion, "inputs_explained": "model entries: logit of the model's case probability; others: "
                                                  "manifest covariates as given",
            "training": {"manifest": Path(manifest).name, "cases": len(y), "seed": seed,
                         "cutoff_from": f"out-of-fold predictions, {FUSION_FOLDS} patient-grouped folds, scaler and "
                                        "regression fitted inside each fold"},
            "intended_use": ("DEMO WEIGHTS trained on synthetic phantoms; not for clinical use." if "demo" in model_id
                             else "Research use; validate on your own data before any clinical use.")}
    if covariates:
        columns = X[:, len(ids):]
        card["training_domain"] = summarise([dict(zip(covariates, map(float, row), strict=True)) for row in columns],
                                            f"covariates of the {len(y)} 'train' cases of {Path(manifest).name}")
    X_val, y_val, _, _ = _design(manifest, model_ids, covariates, "val", directory)
    scores = apply_fusion(fusion, X_val)
    card["metrics"] = {"validation": {"auc": auc_with_ci(y_val, scores).__dict__, "at_cutoff": binary_metrics(
        y_val, (scores >= fusion["cutoff"]).astype(int)).as_dict()}}
    with atomic_output_dir(out_dir) as scratch:
        write_json(scratch / f"{model_id}.json", card, undefined_as_null=True)
    return Path(out_dir) / f"{model_id}.json"


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
    row = [_logit(np.array(probabilities[name])) if name in probabilities else float(covariates[name])
           for name in fusion["inputs"]]
    return float(apply_fusion(fusion, np.array([row], float))[0])
