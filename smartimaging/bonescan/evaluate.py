"""The paper's evaluation on a manifest: SEN/SPE/ACC/PPV/NPV with counts overall and by age group, AUC with DeLong
CIs for metastasis and bladder, Dice for lesions and bladder, and time per case (file -> BSTBI)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..evaluation import auc_with_ci, binary_metrics, dice, mean_sd, plot_roc
from ..io import atomic_output_dir, write_json
from ..manifest import binary_label, read_manifest
from .cohort import read_masks
from .pipeline import BLADDER, CLASSIFIER_ID, LESION, PAPER_THRESHOLD, BoneScanModels, analyse
from .views import load_bone_scan

AGE_GROUPS = (("<50", 0, 50), (">=50 and <70", 50, 70), (">=70", 70, 200))


def _case_dice(predicted: dict, truth: dict, label: int) -> float | None:
    """Dice over both views of a case; None when the case has no such structure in the ground truth."""
    p = np.concatenate([(predicted[v] == label).ravel() for v in truth])
    t = np.concatenate([(truth[v] == label).ravel() for v in truth])
    return dice(p, t) if t.any() else None


def _group_table(cases: list[dict], threshold: float) -> dict:
    predictions = [c["metastasis_probability"] >= threshold for c in cases]
    metrics = binary_metrics([c["label"] for c in cases], predictions).as_dict()
    lesion = [c["dice_lesion"] for c in cases if c["dice_lesion"] is not None]
    bladder = [c["dice_bladder"] for c in cases if c["dice_bladder"] is not None]
    return {"n": len(cases), **metrics, "dice_lesion": mean_sd(lesion), "dice_bladder": mean_sd(bladder)}


def _format_row(name: str, table: dict) -> str:
    def cell(key):
        m = table[key]
        return f"{100 * m['value']:.1f}% ({m['numerator']}/{m['denominator']})" if m["denominator"] else "n/a"
    dl, db = table["dice_lesion"], table["dice_bladder"]
    return (f"{name:<14} {table['n']:>4}  " + "  ".join(f"{cell(k):>18}" for k in
                                                       ("sensitivity", "specificity", "accuracy", "ppv", "npv"))
            + f"  {dl[0]:.3f}±{dl[1]:.3f}  {db[0]:.3f}±{db[1]:.3f}")


def _truth(row: dict, manifest_name: str) -> dict:
    """Age, metastasis label and bladder label (when given) of a manifest row, checked."""
    age = None
    if row.get("age"):
        try:
            age = float(row["age"])
        except ValueError:
            age = float("nan")
        if not 0 <= age < 150:
            raise InputError(f"{manifest_name}: patient {row['patient_id']} has age {row['age']!r}; give the age in "
                             "years or leave the cell empty")
    return {"age": age, "label": binary_label(row, manifest_name),
            "bladder": binary_label(row, manifest_name, "bladder") if row.get("bladder") else None}


def evaluate_manifest(manifest_path, out_dir, split: str = "test", device: str = "auto", models_dir=None,
                      classifier: str = CLASSIFIER_ID) -> str:
    """Run the models on the manifest rows of `split` and write evaluation.json, cases.csv, table.txt, roc.png;
    `classifier`: the classifier's id in the models folder, or a card's path (a model trained on a cohort)."""
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask", "label"))
    rows = manifest.rows if split == "all" else manifest.subset(split)
    if not rows:
        raise InputError(f"The manifest has no rows with split '{split}'")
    truths = [_truth(row, Path(manifest_path).name) for row in rows]  # a bad cell is refused before the models run
    models = BoneScanModels.load(classifier, directory=models_dir, device=device)
    cases = []
    for row, known in zip(rows, truths, strict=True):
        started = time.perf_counter()
        study = load_bone_scan(manifest.paths(row, "image"))
        result = analyse(study, models)
        seconds = time.perf_counter() - started
        truth = read_masks(study, manifest.paths(row, "mask"))
        cases.append({
            "patient_id": row["patient_id"], **known,
            "metastasis_probability": result.metastasis_probability,
            "bladder_probability": result.bladder_probability, "bstbi": result.bstbi["mean"],
            "dice_lesion": _case_dice(result.labelmaps, truth, LESION),
            "dice_bladder": _case_dice(result.labelmaps, truth, BLADDER), "seconds": seconds,
        })
    threshold = models.case_threshold
    report = {"manifest": str(manifest_path), "split": split, "threshold": threshold, "models": models.provenance,
              "device": str(models.device), "overall": _group_table(cases, threshold), "age_groups": {},
              "overall_at_paper_threshold": _group_table(cases, PAPER_THRESHOLD)}
    for name, low, high in AGE_GROUPS:
        group = [c for c in cases if c["age"] is not None and low <= c["age"] < high]
        if group:
            report["age_groups"][name] = _group_table(group, threshold)
    auc_lines = []
    curves = {}
    for key, column in (("metastasis", "label"), ("bladder", "bladder")):
        pairs = [(c[column], c[f"{key}_probability"]) for c in cases if c[column] is not None]
        if pairs and 0 < sum(p[0] for p in pairs) < len(pairs):
            y, s = zip(*pairs, strict=True)
            auc = auc_with_ci(y, s)
            report[f"auc_{key}"] = auc.__dict__
            auc_lines.append(f"AUC {key}: {auc.as_text()}")
            curves[key] = (np.array(y), np.array(s))
    report["seconds_per_case"] = mean_sd(c["seconds"] for c in cases)
    header = (f"{'group':<14} {'n':>4}  " + "  ".join(f"{h:>18}" for h in ("SEN", "SPE", "ACC", "PPV", "NPV"))
              + "  Dice lesion   Dice bladder")
    lines = [f"Bone-scan evaluation on {len(cases)} cases ({split} split of {Path(manifest_path).name}), "
             f"case cutoff {threshold:.3f} (from the classifier card)", header,
             _format_row("overall", report["overall"])]
    lines += [_format_row(name, table) for name, table in report["age_groups"].items()]
    lines.append(_format_row(f"overall @{PAPER_THRESHOLD}", report["overall_at_paper_threshold"]))
    lines += auc_lines
    mean, sd = report["seconds_per_case"]
    lines.append(f"time per case (file -> BSTBI, {report['device']}): {mean:.3f} ± {sd:.3f} s")
    text = "\n".join(lines)
    with atomic_output_dir(out_dir) as scratch:
        write_json(scratch / "evaluation.json", report, undefined_as_null=True)
        (scratch / "table.txt").write_text(text + "\n", encoding="utf-8")
        with open(scratch / "cases.csv", "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(cases[0]))
            writer.writeheader()
            writer.writerows(cases)
        if curves:
            plot_roc(curves, scratch / "roc.png", "Bone scan: metastasis and bladder")
    return text
