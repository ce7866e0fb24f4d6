"""Train and evaluate a module's classifier on a worklist's cohort: the reader's saved cases
(`<cohort>/smartimaging/<Module>/manifest.csv`, written by :class:`smartimaging.worklist.Worklist`) become a model in
`<cohort>/smartimaging/<Module>/models/<name>/`, offered beside the demo weights by the module's Model selector.
GUI-free; the station runs it in the worker (jobs `cohort-train`, `cohort-evaluate`).

Mammography (the seed study's workflow): pyradiomics features of the corrected ROIs (`mammo.features`), then the
paper's pipeline for the lesion kind (`method="preset"`) or the FAE search with its nested-CV estimate
(`method="search"`), patient-grouped cross-validation on the train and val rows. The test rows (about 15 % of the
patients, `worklist.stable_split`: a patient never changes split as cases are added) are held out for
`evaluate_model`: AUC with DeLong 95 % CI, SEN/SPE/ACC at the card's Youden cutoff with counts, Dice of the AI's
proposals against the reader's corrections, and the ROC curve.

Training needs at least MIN_TRAINING_PER_CLASS patients of each class among the train and val rows (the smallest
cross-validation: 3 patient-grouped folds of at least one patient of each class, and nested CV inside them);
evaluation needs at least one case of each class among the test rows (an AUC compares the two). A model is written
in a hidden scratch folder beside the others and renamed at the end: a refusal, an error or a cancel leaves no
model folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import CancelledError, InputError, ModelError
from .io import atomic_files, atomic_output_dir
from .manifest import read_manifest, write_manifest
from .models.registry import MAX_CARD_BYTES, check_model_name, read_json_limited, sha256_of

MODELS_FOLDER = "models"
MIN_TRAINING_PER_CLASS = 5
METHODS = {"preset": "the paper's pipeline", "search": "FAE search with nested cross-validation"}
PATH_COLUMNS = ("image", "mask", "ai_mask")
TRAINABLE = ("MammoRadiomics",)  # modules whose classifier trains from a worklist
CANCELLED = "Cancelled: no model was written"

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    """The progress callback of a run without one."""


def _never() -> bool:
    return False


def models_folder(out_folder: str | os.PathLike) -> Path:
    """Where a worklist's trained models live (`out_folder`: the worklist's `<cohort>/smartimaging/<Module>`)."""
    return Path(out_folder) / MODELS_FOLDER


def model_card_path(out_folder: str | os.PathLike, name: str) -> Path:
    check_model_name(name)
    return models_folder(out_folder) / name / f"{name}.json"


def _checker(should_stop: Callable[[], bool] | None) -> Callable[[], None]:
    def check() -> None:
        if (should_stop or _never)():
            raise CancelledError(CANCELLED)
    return check


def _check_module(module: str) -> None:
    if module not in TRAINABLE:
        raise InputError(f"{module} has no classifier that trains from a worklist (trainable: {', '.join(TRAINABLE)})")


# ---- the cohort's rows ------------------------------------------------------------------------------------------

def _cohort_rows(out_folder: Path, kind: str | None) -> tuple[object, list[dict], str]:
    """The worklist manifest, its rows of one lesion kind (`kind`, or the only kind it holds) and that kind."""
    path = out_folder / "manifest.csv"
    if not path.is_file():
        raise InputError("No case of this worklist is done yet: save cases with their pathology (benign or "
                         "malignant) first; training reads the cases marked done")
    manifest = read_manifest(path, required=("patient_id", "image", "mask", "label", "split", "kind"))
    kinds = sorted({row["kind"] for row in manifest.rows})
    if kind is None:
        if len(kinds) > 1:
            raise InputError(f"The cohort holds {' and '.join(kinds)} lesions: a classifier is trained for one kind; "
                             "choose the lesion kind, then train")
        kind = kinds[0]
    rows = [row for row in manifest.rows if row["kind"] == kind]
    if not rows:
        raise InputError(f"No {kind} case of this worklist is done yet; the cohort holds {', '.join(kinds)} cases")
    return manifest, rows, kind


def _class_counts(rows: list[dict]) -> tuple[int, int]:
    """Patients with a benign (0) and a malignant (1) lesion among `rows`."""
    patients = [{row["patient_id"] for row in rows if row["label"] == str(label)} for label in (0, 1)]
    return len(patients[0]), len(patients[1])


def _too_few(what: str, kind: str, counts: tuple[int, int], needed: int, where: str, more: str) -> InputError:
    return InputError(f"Too few cases to {what}: it needs at least {needed} benign and {needed} malignant {kind} "
                      f"cases {where}; this cohort has {counts[0]} benign and {counts[1]} malignant. {more}")


def _relative_rows(manifest, rows: list[dict], folder: Path) -> list[dict]:
    """`rows` with their file paths relative to `folder` (a manifest written there reads the same files)."""
    return [{key: os.path.relpath(manifest.resolve(value), folder) if key in PATH_COLUMNS and value else value
             for key, value in row.items()} for row in rows]


def _extract(manifest, rows: list[dict], folder: Path, progress: Progress, start: float, span: float,
             check: Callable[[], None]) -> tuple[Path, list[dict]]:
    """pyradiomics features of `rows` into `folder`/features.csv (their manifest beside it); the failed rows."""
    from .mammo.features import extract_cohort

    write_manifest(folder / "cases.csv", _relative_rows(manifest, rows, folder))

    def on_row(done: int, total: int) -> None:
        check()
        progress(start + span * done / total, f"radiomics features of {done} of {total} cases")

    progress(start, f"radiomics features of {len(rows)} cases")
    features = folder / "features.csv"
    _, failures = extract_cohort(folder / "cases.csv", features, n_jobs=1, show_progress=False, on_row=on_row)
    return features, failures


# ---- training ---------------------------------------------------------------------------------------------------

def train_from_worklist(out_folder: str | os.PathLike, module: str, name: str, seed: int = 0,
                        progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                        method: str = "preset", kind: str | None = None, search_space: dict | None = None) -> Path:
    """Train `module`'s classifier on the worklist's done cases (train and val rows) into
    `<out_folder>/models/<name>/`; returns its card. `should_stop()` true cancels (CancelledError), leaving nothing;
    `search_space` narrows the search (`mammo.search.search`'s arguments)."""
    _check_module(module)
    check_model_name(name)
    if method not in METHODS:
        raise InputError(f"Training method {method!r}: choose {' or '.join(METHODS)}")
    out_folder, progress, check = Path(out_folder), progress or _no_progress, _checker(should_stop)
    target = models_folder(out_folder) / name
    if target.exists():
        raise InputError(f"This cohort already has a model named {name}; choose another name")
    manifest, rows, kind = _cohort_rows(out_folder, kind)
    training = [row for row in rows if row["split"] in ("train", "val")]
    counts = _class_counts(training)
    where = "among the training cases (the train and val splits, about 85 % of the patients)"
    more = "Save more cases as done (with their pathology), then train again."
    if min(counts) < MIN_TRAINING_PER_CLASS:
        raise _too_few("train a classifier", kind, counts, MIN_TRAINING_PER_CLASS, where, more)
    target.parent.mkdir(parents=True, exist_ok=True)
    from .mammo.classify import read_features, train_from_features

    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=target.parent))
    try:
        features, failures = _extract(manifest, training, scratch, progress, 0.0, 0.6, check)
        extracted, _ = read_features(features)
        counts = _class_counts(extracted)
        if min(counts) < MIN_TRAINING_PER_CLASS:
            raise _too_few("train a classifier", kind, counts, MIN_TRAINING_PER_CLASS,
                           f"whose features could be computed ({len(failures)} failed: see "
                           "features.failures.csv)", more)
        check()
        folds = 5 if min(counts) >= 2 * 5 else 3  # nested CV: each outer training fold keeps `folds` per class
        progress(0.65, f"fitting {METHODS[method]} ({folds}-fold patient-grouped CV"
                       + (", several minutes)" if method == "search" else ")"))
        card_path = train_from_features(features, scratch, name, kind if method == "preset" else None,
                                        search_space, split=None, folds=folds, seed=seed, validation_split=None,
                                        outer_folds=folds)
        check()
        progress(0.95, "writing the model card")
        _describe(card_path, out_folder, module, kind, method, seed, counts, failures)
        check()
        try:
            os.rename(scratch, target)
        except OSError as exc:
            raise InputError(f"A model named {name} appeared in this cohort meanwhile; choose another name") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    progress(1.0, f"model {name} trained")
    return target / card_path.name


def _describe(card_path: Path, out_folder: Path, module: str, kind: str, method: str, seed: int,
              counts: tuple[int, int], failures: list[dict]) -> None:
    """Record in the card what it was trained on (this cohort's manifest: path, sha256, cases per class), how
    (command, method, seed), and its intended use."""
    cohort = out_folder.parent.parent
    manifest = out_folder / "manifest.csv"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    command = (f"python -m smartimaging.worker cohort-train --output-dir {out_folder} --module {module} "
               f"--name {card['id']} --kind {kind} --method {method} --seed {seed}")
    card["module"], card["lesion_kind"] = module, kind
    card["training"].update(method=method, command=command, data={
        "description": f"the reader-corrected {kind} ROIs of the cohort {cohort.name} (train and val splits)",
        "cohort": cohort.name, "manifest": manifest.relative_to(cohort).as_posix(),
        "manifest_sha256": sha256_of(manifest), "train_cases": counts[0] + counts[1], "benign": counts[0],
        "malignant": counts[1], "failed_cases": len(failures)})
    card["intended_use"] = (f"Research use: trained on the cohort {cohort.name}; check its held-out numbers "
                            "(Evaluate) before relying on it. Not for clinical use.")
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


# ---- evaluation -------------------------------------------------------------------------------------------------

def evaluate_model(out_folder: str | os.PathLike, module: str, name: str, progress: Progress | None = None,
                   should_stop: Callable[[], bool] | None = None) -> dict:
    """The paper's table of a cohort's model on the worklist's held-out test rows, written to
    `models/<name>/evaluation/` (evaluation.json, scores.csv, roc.png) and returned; the card records the test
    metrics. A cancel leaves the previous evaluation, if any."""
    _check_module(module)
    out_folder, progress, check = Path(out_folder), progress or _no_progress, _checker(should_stop)
    card_path = model_card_path(out_folder, name)
    if not card_path.is_file():
        raise InputError(f"This cohort has no model named {name}; train it first")
    from .mammo.classify import read_features
    from .mammo.predict import check_radiomics_settings
    from .mammo.scorer import load_classifier

    classifier = load_classifier(card_path)  # checksums and the skops allow-list, as for a prediction
    check_radiomics_settings(card_path, trained=classifier.checked["radiomics"])
    card = classifier.card
    kind = card.get("lesion_kind")
    manifest, rows, kind = _cohort_rows(out_folder, kind if isinstance(kind, str) else None)
    test = [row for row in rows if row["split"] == "test"]
    counts = _class_counts(test)
    if min(counts) < 1:
        raise _too_few("evaluate", kind, counts, 1, "among the held-out test cases (about 15 % of the patients, "
                       "chosen by patient)", "Save more cases as done, then evaluate again.")
    trained_on, _ = read_features(card_path.parent / "features.csv")
    shared = {row["patient_id"] for row in trained_on} & {row["patient_id"] for row in test}
    if shared:
        raise InputError(f"{len(shared)} test patient(s) were among the model's training cases (the manifest's split "
                         "column was changed): their numbers would not be held out. Train a new model")
    with atomic_output_dir(card_path.parent / "evaluation", one_result=False) as scratch:
        features, failures = _extract(manifest, test, scratch, progress, 0.0, 0.8, check)
        extracted, _ = read_features(features)
        y = np.array([int(row["label"]) for row in extracted])
        if len(set(y.tolist())) < 2:
            raise _too_few("evaluate", kind, _class_counts(extracted), 1, "among the test cases whose features "
                           f"could be computed ({len(failures)} failed)", "Save more cases as done.")
        progress(0.85, "scoring the held-out cases")
        try:
            X = np.array([[float(row[name_]) for name_ in classifier.feature_names] for row in extracted])
        except KeyError as exc:
            raise ModelError(f"The model {name} needs the feature {exc.args[0]}, which the cohort's features lack; "
                             "train it again") from None
        scores = classifier.scores(X)
        report = _report(card, kind, extracted, y, scores, classifier.checked["cutoff"], rows, manifest.path,
                         failures)
        check()
        _write_evaluation(scratch, report, extracted, y, scores, name)
    card = {**card, "metrics": {**card.get("metrics", {}), "test": {
        key: report[key] for key in ("data", "auc", "metrics", "cutoff", "manifest_sha256")}}}
    with atomic_files(card_path) as (temporary,):
        temporary.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    progress(1.0, f"model {name} evaluated on {len(y)} held-out cases")
    return report


def _report(card: dict, kind: str, rows: list[dict], y: np.ndarray, scores: np.ndarray, cutoff: float,
            cohort_rows: list[dict], manifest: Path, failures: list[dict]) -> dict:
    from .evaluation import auc_with_ci, binary_metrics

    auc = auc_with_ci(y, scores)
    metrics = binary_metrics(y, (scores >= cutoff).astype(int))
    honest = (card.get("metrics") or {}).get("honest_auc")
    dice = _dice_summary(cohort_rows)
    benign, malignant = int((y == 0).sum()), int((y == 1).sum())
    sha = sha256_of(manifest)
    trained_sha = ((card.get("training") or {}).get("data") or {}).get("manifest_sha256")
    report = {"model": card["id"], "kind": kind, "cases": len(y), "benign": benign, "malignant": malignant,
              "data": f"the {len(y)} held-out test cases ({benign} benign, {malignant} malignant) of "
                      f"{manifest.name}", "cutoff": cutoff, "auc": auc.__dict__, "metrics": metrics.as_dict(),
              "training_estimate": honest, "dice": dice, "manifest_sha256": sha,
              "cases_added_since_training": sha != trained_sha, "failed_cases": len(failures)}
    table = [["Test cases", f"{benign} benign, {malignant} malignant (held out, never used in training)"],
             ["AUC (95 % CI, DeLong)", f"{auc.auc:.3f} ({auc.ci_low:.3f}–{auc.ci_high:.3f})"],
             ["Cutoff (Youden, training)", f"{cutoff:.3f}"]]
    for label, key in (("Sensitivity", "sensitivity"), ("Specificity", "specificity"), ("Accuracy", "accuracy")):
        value = getattr(metrics, key)
        table.append([label, f"{100 * value.value:.1f} % ({value.numerator}/{value.denominator})"])
    if isinstance(honest, dict) and "auc" in honest:
        what = "Nested-CV AUC (training, search)" if "nested" in str(honest.get("method")) else \
            "Cross-validated AUC (training, paper pipeline)"
        table.append([what, f"{honest['auc']:.3f} ± {honest.get('sd', 0.0):.3f} ({honest.get('folds')} folds)"])
    table.append(["Dice AI vs corrected", f"mean {dice['mean']:.3f}, median {dice['median']:.3f} "
                  f"({dice['cases']} cases with an AI proposal)" if dice["cases"] else
                  "no saved case had an AI proposal"])
    report["table"] = table
    return report


def _dice_summary(rows: list[dict]) -> dict:
    """Mean and median Dice between the AI's proposal and the reader's corrected ROI over the cohort's saved cases
    (the manifest's `dice_ai_vs_corrected`); how many the reader changed."""
    values = []
    for row in rows:
        with contextlib.suppress(ValueError):
            value = float(row.get("dice_ai_vs_corrected") or "nan")
            if np.isfinite(value):
                values.append(value)
    if not values:
        return {"cases": 0, "mean": None, "median": None, "corrected": 0}
    return {"cases": len(values), "mean": float(np.mean(values)), "median": float(statistics.median(values)),
            "corrected": sum(value < 1.0 for value in values)}


def _write_evaluation(folder: Path, report: dict, rows: list[dict], y: np.ndarray, scores: np.ndarray,
                      name: str) -> None:
    import csv

    from .evaluation import plot_roc

    (folder / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    with open(folder / "scores.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case_id", "label", "rad_score", "prediction"])
        writer.writerows([row.get("case_id", row["patient_id"]), int(label), f"{score:.6f}",
                          int(score >= report["cutoff"])] for row, label, score in zip(rows, y, scores, strict=True))
    plot_roc({name: (y, scores)}, folder / "roc.png", f"{name}: held-out test cases")


# ---- the models a module can use --------------------------------------------------------------------------------

def cohort_models(out_folder: str | os.PathLike, module: str, kind: str | None = None) -> list[Path]:
    """The cards of the models trained in a worklist's cohort for `module` (and the lesion kind), by name; a
    folder without a readable card of that module is skipped (a scratch folder, another tool's)."""
    folder = models_folder(out_folder)
    if not folder.is_dir():
        return []
    cards = []
    for entry in sorted(folder.iterdir()):
        path = entry / f"{entry.name}.json"
        if entry.name.startswith(".") or not path.is_file():
            continue
        try:
            card = read_json_limited(path, MAX_CARD_BYTES, "Model card")
        except ModelError:
            continue
        if card.get("module") == module and (kind is None or card.get("lesion_kind") == kind):
            cards.append(path)
    return cards


def card_summary(card_path: str | os.PathLike) -> list[list[str]]:
    """A model card as [what, value] rows for the Model selector: id, trained on, cases, metrics, intended use."""
    card = read_json_limited(Path(card_path), MAX_CARD_BYTES, "Model card")
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    domain = card.get("training_domain") if isinstance(card.get("training_domain"), dict) else {}
    trained_on = str(data.get("description") or domain.get("data") or "not recorded")
    if "benign" in data and "malignant" in data:
        trained_on += f": {data['benign']} benign, {data['malignant']} malignant"
    rows = [["Model", f"{card.get('id')} {card.get('version', '')}".strip()], ["Trained on", trained_on]]
    honest = metrics.get("honest_auc")
    if isinstance(honest, dict) and isinstance(honest.get("auc"), float):
        rows.append(["Training estimate", f"AUC {honest['auc']:.3f} ± {float(honest.get('sd') or 0):.3f} "
                                          f"({honest.get('method', '')})"])
    test = metrics.get("test")
    if isinstance(test, dict) and isinstance(test.get("auc"), dict):
        auc = test["auc"]
        rows.append(["Held-out test", f"AUC {auc['auc']:.3f} (95 % CI {auc['ci_low']:.3f}–{auc['ci_high']:.3f}) "
                                      f"on {test.get('data', '')}"])
    rows.append(["Intended use", str(card.get("intended_use", "not recorded"))])
    return rows
