"""Bad-input cases: model cards whose fields (not covered by the weights' checksum) were edited in a --models-dir.

Each case copies the bundled demo model, edits one field of its card and runs the command on it: the card is refused
in one line naming the card and the field, before any network is built.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from badinput import BadInput
from cases_models import _copy_models, _predict_mass
from cases_mri import _lvi_case, _t1

CARDS = "Model cards"


def _edit(models: Path, model_id: str, path: str, value) -> None:
    """Set the dotted field `path` of a copied card (None removes it)."""
    card = models / f"{model_id}.json"
    record = json.loads(card.read_text(encoding="utf-8"))
    *parents, last = path.split(".")
    target = record
    for key in parents:
        target = target[key]
    if value is None:
        target.pop(last)
    else:
        target[last] = value
    card.write_text(json.dumps(record), encoding="utf-8")


def _mammo_spacing_nan(folder: Path) -> list[str]:
    models = _copy_models(folder, "mammo-")
    _edit(models, "mammo-mass-classifier-demo", "training.pixel_spacing_mm", float("nan"))
    return _predict_mass(folder, models)


def _lvi(path: str, value, model_id: str = "lvi-dce-resnet10-3d-demo"):
    def build(folder: Path) -> list[str]:
        models = _copy_models(folder, model_id)
        _edit(models, model_id, path, value)
        dce_path, voi_path = _lvi_case(folder)
        return ["lvi", "predict", "--dce", str(dce_path), "--voi", str(voi_path), "--models", model_id,
                "--models-dir", str(models), "--out", str(folder / "out")]
    return build


def _dce_depth(folder: Path) -> list[str]:
    models = _copy_models(folder, "dce-pix2pix-demo")
    _edit(models, "dce-pix2pix-demo", "architecture.depth", 200_000)
    return [*_t1(folder, (4, 32, 32)), "--models-dir", str(models)]


def _mammo_train_one_class_val(folder: Path) -> list[str]:
    names = [f"original_firstorder_F{i}" for i in range(8)]
    rng = np.random.default_rng(2)
    labels = [("0", "train"), ("1", "train")] * 6 + [("1", "val")] * 3
    path = folder / "features.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patient_id", "label", "split", *names])
        writer.writerows([f"P{i}", label, split, *(f"{v:.6g}" for v in rng.normal(size=len(names)))]
                         for i, (label, split) in enumerate(labels))
    return ["mammo", "train", "--features", str(path), "--split", "train", "--name", "mine", "--preset", "mass",
            "--out", str(folder / "out")]


CASES = [
    BadInput(CARDS, "mammo predict: classifier card training.pixel_spacing_mm NaN (a NaN cutoff: see Model files)",
             _mammo_spacing_nan, "training.pixel_spacing_mm is nan"),
    BadInput(CARDS, "lvi predict: card outputs.cutoff NaN", _lvi("outputs.cutoff", float("nan")),
             "outputs.cutoff is nan"),
    BadInput(CARDS, "lvi predict: card without its 'training' block", _lvi("training", None),
             "training.model is missing"),
    BadInput(CARDS, "lvi predict: inputs.dimensions 2 on a 3D network", _lvi("inputs.dimensions", 2),
             "inputs.dimensions is 2 but the resnet10_3d_convpool network is 3D"),
    BadInput(CARDS, "lvi predict: inputs.preprocessing.margin_mm 1e7", _lvi("inputs.preprocessing.margin_mm", 1e7),
             "inputs.preprocessing.margin_mm is 1e+07; expected 0 to 100 mm"),
    BadInput(CARDS, "lvi predict: inputs.preprocessing.size_3d [1024, 2048, 2048]",
             _lvi("inputs.preprocessing.size_3d", [1024, 2048, 2048]),
             "inputs.preprocessing.size_3d[0] is 1024; expected 1 to 512"),
    BadInput(CARDS, "dce synthesize: generator card architecture.depth 200000", _dce_depth,
             "architecture.depth is 200000; expected 5 to 10"),
    BadInput(CARDS, "mammo train: every 'val' row of one class (the model is still written)",
             _mammo_train_one_class_val, "the validation AUC is undefined", exit_code=0),
]
