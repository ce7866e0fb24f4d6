"""`lvi evaluate`: the paper's Table 1 (ACC / SEN / SPE / AUC with counts and 95 % CIs at each model's training
cutoff) for every trained sequence × model card given."""

from __future__ import annotations

import os

import numpy as np

from ..evaluation import auc_with_ci, binary_metrics
from ..io import atomic_output_dir, write_json
from .cohort import case_inputs, check_both_classes
from .predict import load_lvi_model
from .preprocess import Preprocessing
from .train import case_probabilities


def evaluate_models(manifest: str | os.PathLike, cards: list[str], out_dir: str | os.PathLike,
                    split: str | None = "test", device: str = "cpu") -> str:
    rows, lines = [], [f"{'sequence':<9}{'model':<13}{'cases':>6}  {'ACC':<36}{'SEN':<36}{'SPE':<36}AUC"]
    for card_path in cards:
        model = load_lvi_model(card_path, device=device)
        card = model.card
        settings = Preprocessing(**{key: tuple(value) if isinstance(value, list) else value
                                    for key, value in card["inputs"]["preprocessing"].items()
                                    if key in Preprocessing.__dataclass_fields__})
        cases = case_inputs(manifest, card["inputs"]["sequence"], split, card["inputs"]["dimensions"], settings)
        check_both_classes(cases, split, "the AUC")
        labels = np.array([case["label"] for case in cases])
        scores = case_probabilities(model.network, cases, next(model.network.parameters()).device)
        metrics = binary_metrics(labels, (scores >= card["outputs"]["cutoff"]).astype(int))
        auc = auc_with_ci(labels, scores)
        rows.append({"model": model.provenance, "sequence": card["inputs"]["sequence"],
                     "network": card["training"]["model"], "cases": len(cases), "auc": auc.__dict__,
                     "metrics": metrics.as_dict(), "cutoff": card["outputs"]["cutoff"],
                     "scores": [{"patient_id": c["patient_id"], "label": c["label"], "probability": float(s)}
                                for c, s in zip(cases, scores, strict=True)]})
        lines.append(f"{card['inputs']['sequence']:<9}{card['training']['model']:<13}{len(cases):>6}  "
                     f"{metrics.accuracy.as_text():<36}{metrics.sensitivity.as_text():<36}"
                     f"{metrics.specificity.as_text():<36}{auc.as_text()}")
    lines.append("paper (patients, validation, ACC/SEN/SPE/AUC): DCE ResNet10-3D 0.80/0.80/0.73/0.80; "
                 "T2 ResNet10-3D 0.74/0.62/0.80/0.69")
    text = "\n".join(lines)
    with atomic_output_dir(out_dir) as scratch:
        write_json(scratch / "evaluation.json", {"split": split or "all", "models": rows}, undefined_as_null=True)
        (scratch / "table1.txt").write_text(text + "\n", encoding="utf-8")
    return text
