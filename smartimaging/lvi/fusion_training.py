"""Fitting the late fusion (`lvi fuse`): the models' case probabilities on a manifest's 'train' rows and its
covariates, the fusion pipeline of `lvi.fusion` fitted on them, its cutoff from out-of-fold predictions, validated on
the 'val' rows and written as a JSON card."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import __version__
from ..domain import summarise
from ..errors import InputError
from ..evaluation import auc_with_ci, binary_metrics, youden_cutoff
from ..io import atomic_output_dir, write_json
from .cohort import case_inputs, check_both_classes
from .fusion import FUSION_FOLDS, apply_fusion, fusion_pipeline, logit, out_of_fold_probabilities
from .predict import _settings, load_lvi_model
from .train import case_probabilities


def design_matrix(manifest, model_ids, covariates, split,
                  directory) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """[model logits..., covariates...] per case, labels, patient ids, and the models' ids."""
    columns, labels, patients, ids = [], None, None, []
    for model_id in model_ids:
        model = load_lvi_model(model_id, directory)
        card = model.card
        ids.append(card["id"])
        cases = case_inputs(manifest, card["inputs"]["sequence"], split, card["inputs"]["dimensions"],
                            _settings(card))
        check_both_classes(cases, split, "fitting the fusion" if split == "train" else "validating the fusion")
        columns.append(logit(case_probabilities(model.network, cases, next(model.network.parameters()).device)))
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


def fit_fusion(manifest: str | os.PathLike, model_ids: list[str], covariates: list[str], out_dir, model_id: str,
               directory=None, seed: int = 0) -> Path:
    X, y, patients, ids = design_matrix(manifest, model_ids, covariates, "train", directory)
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
    X_val, y_val, _, _ = design_matrix(manifest, model_ids, covariates, "val", directory)
    scores = apply_fusion(fusion, X_val)
    card["metrics"] = {"validation": {"auc": auc_with_ci(y_val, scores).__dict__, "at_cutoff": binary_metrics(
        y_val, (scores >= fusion["cutoff"]).astype(int)).as_dict()}}
    with atomic_output_dir(out_dir, one_result=False) as scratch:  # a folder of models
        write_json(scratch / f"{model_id}.json", card, undefined_as_null=True)
    return Path(out_dir) / f"{model_id}.json"
