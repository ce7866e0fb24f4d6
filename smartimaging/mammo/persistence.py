"""Saving and loading fitted radiomics models without pickle: the scikit-learn pipeline as skops, an XGBoost
classifier as XGBoost JSON, and a card with sha256 of both. Loading verifies the checksums and trusts only
scikit-learn, numpy and SmartImaging types; anything else in the file is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.pipeline import Pipeline

from .. import __version__
from ..errors import ModelError
from ..models.registry import sha256_of
from .search import FittedModel

TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "smartimaging.mammo.search.", "builtins.")


def save_radiomics_model(model: FittedModel, directory: str | os.PathLike, model_id: str, card: dict) -> Path:
    """Write `<id>.skops` (+ `<id>.xgboost.json`) and the card `<id>.json`; returns the card path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pipeline, files = model.pipeline, {}
    classifier = pipeline.named_steps["classifier"]
    if type(classifier).__module__.startswith("xgboost"):
        booster_path = directory / f"{model_id}.xgboost.json"
        classifier.save_model(str(booster_path))
        files["xgboost"] = booster_path.name
        pipeline = Pipeline(pipeline.steps[:-1])
    pipeline_path = directory / f"{model_id}.skops"
    sio.dump(pipeline, pipeline_path)
    files["pipeline"] = pipeline_path.name
    card = {**card, "id": model_id, "version": card.get("version", "1.0.0"), "smartimaging_version": __version__,
            "task": card.get("task", "mammo-classifier"), "pipeline": model.config,
            "features": model.feature_names, "selected_inputs": model.selected_inputs(),
            "cutoff": {"value": model.cutoff, "method": "Youden index of out-of-fold training predictions"},
            "metrics": {**card.get("metrics", {}), "cv_auc": model.cv_auc},
            "files": files, "sha256": {name: sha256_of(directory / name) for name in files.values()}}
    card_path = directory / f"{model_id}.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card_path


def load_radiomics_model(card_path: str | os.PathLike) -> FittedModel:
    """Verify checksums and types, then rebuild the fitted pipeline."""
    card_path = Path(card_path)
    if not card_path.is_file():
        raise ModelError(f"Model card not found: {card_path}")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    for name in card["files"].values():
        path = card_path.with_name(name)
        if not path.is_file():
            raise ModelError(f"The model file {name} is missing")
        if sha256_of(path) != card["sha256"][name]:
            raise ModelError(f"The model file {name} does not match the checksum in its card: it was modified or "
                             "damaged. Refusing to use it.")
    pipeline_path = card_path.with_name(card["files"]["pipeline"])
    untrusted = sio.get_untrusted_types(file=pipeline_path)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ModelError(f"The model file {pipeline_path.name} contains types that are not allowed: {refused}")
    pipeline = sio.load(pipeline_path, trusted=untrusted)
    if "xgboost" in card["files"]:
        from xgboost import XGBClassifier

        classifier = XGBClassifier()
        classifier.load_model(str(card_path.with_name(card["files"]["xgboost"])))
        pipeline = Pipeline([*pipeline.steps, ("classifier", classifier)])
    return FittedModel(pipeline, card["pipeline"], card["features"], float(card["cutoff"]["value"]),
                       float(card["metrics"]["cv_auc"]), np.array([]))
