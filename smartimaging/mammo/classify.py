"""`mammo train` and `mammo evaluate` on a features CSV (from `mammo extract`)."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

from ..errors import InputError
from ..evaluation import auc_with_ci, binary_metrics, plot_roc
from ..io import atomic_output_dir
from ..models.registry import check_model_name
from .domain import classifier_training_domain
from .features import settings_sidecar
from .persistence import load_radiomics_model, save_radiomics_model
from .scorer import read_radiomics_card
from .search import PRESETS, fit_final, nested_cv, search

READER_MALIGNANT = {"4b", "4c", "5", "6"}
READER_BENIGN = {"1", "2", "3", "4a"}


def _read_rows(path: Path) -> list[dict]:
    """Every row of a features CSV, refused with the row number when it is truncated, damaged or not numeric."""
    if not path.is_file():
        raise InputError(f"Features file not found: {path}")
    redo = "write it again with `smartimaging mammo extract`"
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path.name} is not a readable features CSV (damaged or not text); {redo}") from exc
    for number, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise InputError(f"Row {number} of {path.name} has {'more' if None in row else 'fewer'} cells than the "
                             f"header: the file is truncated or damaged; {redo}")
        label = row.get("label", "").strip()
        if "label" in row and label not in ("0", "1"):
            raise InputError(f"The label column must hold 0 (benign) and 1 (malignant); row {number} of {path.name} "
                             f"has {label!r}")
        for name in (c for c in row if c.startswith("original_")):
            try:
                value = float(row[name])
            except ValueError:
                raise InputError(f"Row {number} of {path.name} has {row[name]!r} for {name}, not a number: the file "
                                 f"is damaged; {redo}") from None
            if not np.isfinite(value):
                raise InputError(f"Row {number} of {path.name} has no valid value for {name} ({row[name]}); "
                                 "remove the row or correct its ROI and extract again")
    return rows


def _select(rows: list[dict], path: Path, split: str | None) -> list[dict]:
    if split:
        if rows and "split" not in rows[0]:
            raise InputError(f"{path.name} has no 'split' column; cannot select the '{split}' rows")
        rows = [r for r in rows if r.get("split") == split]
    if not rows:
        raise InputError(f"{path.name} has no rows" + (f" with split '{split}'" if split else ""))
    return rows


def read_features(path: str | os.PathLike, split: str | None = None) -> tuple[list[dict], list[str]]:
    """Rows (optionally of one split) and the feature column names of a features CSV."""
    path = Path(path)
    rows = _select(_read_rows(path), path, split)
    names = [c for c in rows[0] if c.startswith("original_")]
    if "label" not in rows[0] or not names:
        raise InputError(f"{path.name} needs a 'label' column and feature columns (original_...)")
    return rows, names


def check_both_classes(y: np.ndarray, what: str) -> None:
    """Refuse labels of one class only: AUC, cutoffs and classifiers need benign and malignant cases."""
    if len(np.unique(y)) < 2:
        kind = "malignant" if y[0] else "benign"
        raise InputError(f"{what} needs both classes (0 benign, 1 malignant); all {len(y)} rows are {kind}")


def check_folds(y: np.ndarray, groups: np.ndarray, folds: int) -> None:
    """Refuse cross-validation with fewer than two folds, or more folds than patients of either class."""
    if folds < 2:
        raise InputError(f"Cross-validation needs at least 2 folds; got --folds {folds}")
    patients = min(len(set(groups[y == label])) for label in (0, 1))
    if patients < folds:
        raise InputError(f"{folds}-fold cross-validation needs at least {folds} patients of each class; the smaller "
                         f"class has {patients}. Add cases or give fewer --folds (at least 2)")


def _matrix(rows: list[dict], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of rows checked by `read_features`."""
    missing = [n for n in names if n not in rows[0]]
    if missing:
        raise InputError(f"The features file lacks {len(missing)} feature(s) the model needs, e.g. {missing[0]}")
    return np.array([[float(row[n]) for n in names] for row in rows]), np.array([int(row["label"]) for row in rows])


def train_from_features(features_csv, out_dir, model_id: str, preset: str | None = None, search_space=None,
                        one_standard_error: bool = False, split: str | None = "train", folds: int = 5,
                        seed: int = 0, validation_split: str | None = "val",
                        warn: Callable[[str], None] | None = None, outer_folds: int = 5, n_jobs: int = 1) -> Path:
    """Search (or take a preset), fit on the `split` rows, and record the `validation_split` rows' metrics at the
    training cutoff in the card when the file has such rows. When those rows hold one class only, their AUC is
    undefined: the card records why (`metrics.validation.undefined`) and `warn` (default: a 'warning:' line on
    stderr) says so; the model is still written.

    `metrics.honest_auc` is the training data's unbiased AUC estimate: for a search, nested CV with `outer_folds`
    patient-grouped outer folds around the whole search (the selected pipeline's own CV AUC, `metrics.cv_auc`, is
    optimistic: it chose the pipeline); for a preset, its plain CV (nothing was selected). `n_jobs` processes (-1: all
    cores) run the search's configurations; the result does not depend on it."""
    check_model_name(model_id)
    rows, names = read_features(features_csv, split)
    X, y = _matrix(rows, names)
    check_both_classes(y, "Training")
    groups = np.array([row["patient_id"] for row in rows])
    check_folds(y, groups, folds)
    if preset:
        config, table = PRESETS[preset], []
    else:
        if outer_folds < 2:
            raise InputError(f"Nested cross-validation needs at least 2 outer folds; got --outer-folds {outer_folds}")
        check_folds(y, groups, outer_folds)
        result = search(X, y, groups, folds=folds, seed=seed, one_standard_error=one_standard_error,
                        n_jobs=n_jobs, **(search_space or {}))
        config, table = result.best, result.table
        nested = nested_cv(X, y, groups, outer_folds, folds, seed, one_standard_error, n_jobs,
                           **(search_space or {}))
    model = fit_final(config, X, y, groups, names, folds, seed)
    aucs = model.cv_fold_aucs
    own_cv = {"auc": model.cv_auc, "sd": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0, "folds": folds}
    if preset:
        honest = {**own_cv, "method": f"{folds}-fold patient-grouped CV of the preset pipeline",
                  "why": "the preset is fixed in advance (nothing selected on these data), so its CV AUC is "
                         "already an unbiased estimate"}
    else:
        honest = {"auc": nested["auc"], "sd": nested["sd"], "folds": outer_folds,
                  "method": f"nested CV: {outer_folds} patient-grouped outer folds around the whole search "
                            f"({len(table)} pipelines, each refitted and the best selected by {folds}-fold CV "
                            "inside every outer training fold)",
                  "why": f"the selected pipeline's own CV AUC ({model.cv_auc:.3f}) is optimistic: the search chose "
                         "it by that same CV",
                  "outer_folds": nested["outer_folds"]}
    spacings = {row.get("pixel_mm") for row in rows}
    card = {"task": "mammo-classifier", "training": {"features": Path(features_csv).name, "split": split,
                                                     "pixel_spacing_mm": float(spacings.pop()) if len(spacings) == 1
                                                     and None not in spacings and "" not in spacings else None,
                                                     "cases": len(rows), "malignant": int(y.sum()),
                                                     "folds": folds, "seed": seed, "preset": preset,
                                                     "one_standard_error": one_standard_error,
                                                     "search_table": table},
            "metrics": {"honest_auc": honest, "cv": own_cv},
            "intended_use": ("DEMO WEIGHTS trained on synthetic phantoms; not for clinical use." if "demo" in model_id
                             else "Research use; validate on your own data before any clinical use.")}
    sidecar = settings_sidecar(features_csv)
    if sidecar.is_file():
        card["radiomics"] = json.loads(sidecar.read_text(encoding="utf-8"))
    card["training_domain"] = classifier_training_domain(
        rows, f"radiomics features of the {len(rows)} training rows of {Path(features_csv).name}",
        card["training"]["pixel_spacing_mm"])
    held_out = [row for row in _read_rows(Path(features_csv))
                if validation_split and row.get("split") == validation_split]
    if held_out:
        X_val, y_val = _matrix(held_out, names)
        scores = model.scores(X_val)
        data = f"the {len(held_out)} '{validation_split}' rows of {Path(features_csv).name} (never used for fitting)"
        if len(set(y_val.tolist())) == 2:
            card["metrics"]["validation"] = {
                "data": data, "auc": auc_with_ci(y_val, scores).__dict__,
                "metrics": binary_metrics(y_val, (scores >= model.cutoff).astype(int)).as_dict()}
        else:  # an AUC needs both classes: the model is still written, without validation metrics
            kind = "malignant" if y_val[0] == 1 else "benign"
            reason = (f"the '{validation_split}' rows of {Path(features_csv).name} are all {kind} "
                      f"({len(held_out)} rows): the validation AUC is undefined and was not computed; add cases of "
                      "both classes to that split to validate the model")
            card["metrics"]["validation"] = {"data": data, "auc": None, "undefined": reason}
            (warn or _print_warning)(reason)
    return save_radiomics_model(model, out_dir, model_id, card)


def _print_warning(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def reader_labels(values: list[str]) -> np.ndarray:
    """BI-RADS 2-4a -> benign (0), 4b-5 -> malignant (1)."""
    labels = []
    for value in values:
        key = value.strip().lower()
        if key in READER_MALIGNANT:
            labels.append(1)
        elif key in READER_BENIGN:
            labels.append(0)
        else:
            raise InputError(f"Unknown BI-RADS category {value!r}")
    return np.array(labels)


def mcnemar(truth: np.ndarray, first: np.ndarray, second: np.ndarray) -> dict:
    """McNemar test on the correctness of two paired readers: exact binomial and chi-square with continuity."""
    a_right, b_right = first == truth, second == truth
    only_a, only_b = int(np.sum(a_right & ~b_right)), int(np.sum(~a_right & b_right))
    discordant = only_a + only_b
    exact = stats.binomtest(only_a, discordant).pvalue if discordant else 1.0
    chi2 = (abs(only_a - only_b) - 1) ** 2 / discordant if discordant else 0.0
    return {"model_only_correct": only_a, "reader_only_correct": only_b, "p_exact": float(exact),
            "chi2": float(chi2), "p_chi2": float(stats.chi2.sf(chi2, 1))}


def evaluate_features(card_path, features_csv, out_dir, split: str | None = "test", reader_column: str = "birads"
                      ) -> str:
    model = load_radiomics_model(card_path)
    checked = read_radiomics_card(card_path)
    model.cutoff = checked["cutoff"]
    rows, _ = read_features(features_csv, split)
    X, y = _matrix(rows, model.feature_names)
    check_both_classes(y, "Evaluation")
    scores = model.scores(X)
    predictions = (scores >= model.cutoff).astype(int)
    auc = auc_with_ci(y, scores)
    metrics = binary_metrics(y, predictions)
    report = {"model": Path(card_path).stem, "cases": len(rows), "cutoff": model.cutoff, "auc": auc.__dict__,
              "metrics": metrics.as_dict(), "pipeline": model.config, "selected_inputs": model.selected_inputs(),
              "training_estimate": checked["honest_auc"]}
    lines = [f"{report['model']} on {len(rows)} lesions ({split or 'all'}), cutoff {model.cutoff:.3f} "
             "(from training)", f"AUC {auc.as_text()}"]
    honest = checked["honest_auc"]
    lines.append(f"Honest training estimate: AUC {honest['auc']:.3f} ± {honest['sd']:.3f} ({honest['method']})"
                 if honest else "Honest training estimate: not recorded in the card (trained before nested CV); "
                 "retrain to record it")
    lines += [f"{name.upper():<4} {getattr(metrics, name).as_text()}" for name in
              ("accuracy", "sensitivity", "specificity", "ppv", "npv")]
    called = np.array([bool(row.get(reader_column, "").strip()) for row in rows])  # a worklist leaves it blank
    if called.any():
        reader = reader_labels([row[reader_column] for row, has in zip(rows, called, strict=True) if has])
        reader_metrics = binary_metrics(y[called], reader)
        report["reader"] = {"metrics": reader_metrics.as_dict(), "cases": int(called.sum()),
                            "mcnemar": mcnemar(y[called], predictions[called], reader)}
        on = "" if called.all() else f", on the {int(called.sum())} of {len(rows)} lesions with a BI-RADS category"
        lines.append(f"Reader (BI-RADS 4b-5 malignant{on}): ACC {reader_metrics.accuracy.as_text()}, "
                     f"SEN {reader_metrics.sensitivity.as_text()}, SPE {reader_metrics.specificity.as_text()}")
        lines.append(f"McNemar model vs reader: p = {report['reader']['mcnemar']['p_exact']:.3f} (exact), "
                     f"{report['reader']['mcnemar']['p_chi2']:.3f} (chi-square)")
    text = "\n".join(lines)
    with atomic_output_dir(out_dir, one_result=False) as scratch:  # a folder of models
        (scratch / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (scratch / "table.txt").write_text(text + "\n", encoding="utf-8")
        (scratch / "selected_features.json").write_text(json.dumps(model.selected_inputs(), indent=2) + "\n",
                                                        encoding="utf-8")
        with open(scratch / "scores.csv", "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["patient_id", "label", "rad_score", "prediction"])
            writer.writerows([r["patient_id"], int(t), f"{s:.6f}", int(p)]
                             for r, t, s, p in zip(rows, y, scores, predictions, strict=True))
        plot_roc({"model": (y, scores)}, scratch / "roc.png", f"{report['model']}")
    return text
