"""The radiomics classifier that a prediction uses: its card read and checked once, and its plain-array form
(numpy only, `plain.py`) when the card names one, else the skops pipeline (scikit-learn).

Scoring a lesion through the plain form keeps scikit-learn, skops and XGBoost out of `mammo predict`, the station
and its worker; training and `mammo evaluate` use the skops pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..models.nets import CardFieldError, card_field, card_number, card_text, checked_card
from ..models.registry import (
    MAX_CARD_BYTES,
    check_card_id,
    file_in_model_folder,
    read_json_limited,
    verified_model_file,
)


def check_radiomics_card(card: dict) -> dict:
    """The fields of a radiomics classifier card that `mammo predict` / `mammo evaluate` use, none covered by a
    checksum: `cutoff.value` in [0, 1], `training.pixel_spacing_mm` a positive number up to 10 mm or absent/null,
    `radiomics.settings` an object, id/version/sha256 for the provenance, and `metrics.honest_auc` (AUC and SD in
    [0, 1], a method text) or absent/null. Returns them:
    {"cutoff", "pixel_spacing_mm", "radiomics", "provenance", "honest_auc"}."""
    cutoff = card_number(card_field(card, "cutoff.value"), "cutoff.value", 0.0, 1.0)
    spacing = card_field(card, "training.pixel_spacing_mm", None)
    if spacing is not None:
        spacing = card_number(spacing, "training.pixel_spacing_mm", 0.0, 10.0, " mm", low_open=True)
    radiomics = card_field(card, "radiomics", None)
    if radiomics is not None and not isinstance(card_field(card, "radiomics.settings"), dict):
        raise CardFieldError(f"radiomics.settings is {card['radiomics']['settings']!r}; expected an object of "
                             "pyradiomics settings")
    sha256 = card_field(card, "sha256")
    if not isinstance(sha256, dict) or not all(isinstance(v, str) for v in sha256.values()):
        raise CardFieldError("sha256 is not an object of file checksums")
    provenance = {"id": card_text(card_field(card, "id"), "id", 128),
                  "version": card_text(card_field(card, "version"), "version", 64), "sha256": sha256}
    honest = card_field(card, "metrics.honest_auc", None)
    if honest is not None:
        honest = {"auc": card_number(card_field(card, "metrics.honest_auc.auc"), "metrics.honest_auc.auc", 0.0, 1.0),
                  "sd": card_number(card_field(card, "metrics.honest_auc.sd"), "metrics.honest_auc.sd", 0.0, 1.0),
                  "method": card_text(card_field(card, "metrics.honest_auc.method"), "metrics.honest_auc.method",
                                      400)}
    return {"cutoff": cutoff, "pixel_spacing_mm": spacing, "radiomics": radiomics, "provenance": provenance,
            "honest_auc": honest}


def read_radiomics_card(card_path: str | os.PathLike) -> dict:
    """A radiomics classifier card read once (size-limited) and checked by :func:`check_radiomics_card`."""
    card_path = Path(card_path)
    card = read_json_limited(card_path, MAX_CARD_BYTES, "Model card")
    return checked_card(card_path.name, check_radiomics_card, card)


@dataclass
class Classifier:
    """What a prediction needs of a radiomics classifier."""

    scores: Callable[[np.ndarray], np.ndarray]  # rows of features (in `feature_names` order) -> malignancy score
    feature_names: list[str]
    reference: tuple[np.ndarray, np.ndarray] | None  # (feature columns, training reference value of each)
    checked: dict  # `check_radiomics_card`'s fields
    card: dict  # the whole card as read


def load_classifier(card_path: str | os.PathLike) -> Classifier:
    """The card's plain-array form when it names one (checksummed file, checked arrays), else its skops pipeline."""
    card_path = Path(card_path)
    card = read_json_limited(card_path, MAX_CARD_BYTES, "Model card")
    check_card_id(card, card_path)
    checked = checked_card(card_path.name, check_radiomics_card, card)
    files = card.get("files")
    if not isinstance(files, dict):
        raise ModelError(f"The model card {card_path.name} names no model files; the card was edited or damaged.")
    for name in files.values():  # every file the card names stays beside it, even those this prediction skips
        file_in_model_folder(card_path, name)
    plain_name = files.get("plain")
    if plain_name is None:
        from .persistence import load_radiomics_model

        model = load_radiomics_model(card_path)
        return Classifier(_valid(model.scores, card_path.name), model.feature_names, model.reference(), checked,
                          card)
    from .plain import PlainModel

    model = PlainModel.load(verified_model_file(card_path, plain_name, checked["provenance"]["sha256"]))
    names = card.get("features")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names) and len(names) == model.n_features):
        raise ModelError(f"The model card {card_path.name} lists {len(names) if isinstance(names, list) else 'no'} "
                         f"features but its model takes {model.n_features}; the card was edited or damaged.")
    return Classifier(_valid(model.scores, card_path.name), names, model.reference(), checked, card)


def _valid(scores_of: Callable[[np.ndarray], np.ndarray], card_name: str) -> Callable[[np.ndarray], np.ndarray]:
    """`scores_of`, refusing any score that is not a probability (a tampered model can give NaN or 3.1 for a
    lesion that its load-time probe did not reach)."""
    def scores(X: np.ndarray) -> np.ndarray:
        values = np.asarray(scores_of(X), dtype=float)
        if not np.all(np.isfinite(values) & (values >= 0) & (values <= 1)):
            raise ModelError(f"The classifier of {card_name} gives no valid score for this lesion (NaN or outside "
                             "0-1): its model file is damaged. Refusing to use it.")
        return values

    return scores
