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

Bone scan: the crop classifier network (`bonescan.train`) on the train rows' corrected label maps, its epoch and
case cutoff chosen on the val rows; evaluated on the test rows by `bonescan evaluate` with this classifier and the
demo segmenter (the same table, and the segmenter's Dice against the corrections).

Breast MRI LVI (`lvi.worklist_training`): one of the paper's networks on one sequence (`network`, `sequence`), the
paper's schedule on the train rows' corrected VOIs, the epoch chosen by the val rows' AUC; evaluated on the test rows.

DCE synthesis (`dce.worklist_training`, GENERATORS): the demo Pix2Pix fine-tuned on the train rows' T1 / real DCE
pairs, the epoch chosen by the val rows' SSIM; evaluated beside the demo generator on the test rows (SSIM, PSNR, MAE,
MSE, Pearson r, the enhancing regions' contrast), with one slice of each instead of a ROC curve.

Training needs at least MIN_TRAINING_PER_CLASS patients of each class among the train and val rows (the smallest
cross-validation: 3 patient-grouped folds of at least one patient of each class, and nested CV inside them);
evaluation needs at least one case of each class among the test rows (an AUC compares the two). A model is written
in a hidden scratch folder beside the others and renamed at the end: a refusal, an error or a cancel leaves no
model folder. `model_choices` is what a Model selector offers (the demo classifier and the cohort's models).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import CancelledError, InputError, ModelError
from .io import atomic_files, atomic_output_dir, new_model_folder
from .manifest import is_phantom_cohort, read_manifest, write_manifest
from .models.nets import section_number
from .models.registry import MAX_CARD_BYTES, check_model_name, read_json_limited
from .models.registry import models_dir as default_models_dir
from .wording import counted

MODELS_FOLDER = "models"
MIN_TRAINING_PER_CLASS = 5
METHODS = {"preset": "the paper's pipeline", "search": "FAE search with nested cross-validation"}
PATH_COLUMNS = ("image", "mask", "ai_mask", "dce", "t2", "voi", "ai_voi")
CLASSES = {"MammoRadiomics": ("benign", "malignant"),  # the modules whose classifier trains from a worklist, and
           "BoneScanBSTBI": ("without metastasis", "with metastasis"),  # the names of their labels 0 and 1
           "BreastLVI": ("without LVI", "with LVI")}
GENERATORS = ("DCESynthesis",)  # the modules whose model is an image generator (`dce.worklist_training`): no classes
TRAINABLE = (*CLASSES, *GENERATORS)
BONESCAN_EPOCHS = 30
SMALL_COHORT_CLASSIFIERS = ("lr", "rf")  # the search's classifiers below 10 cases of a class (no calibrated SVM)
CANCELLED = "Cancelled: no model was written"

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    """The progress callback of a run without one."""


def _never() -> bool:
    return False


def models_folder(out_folder: str | os.PathLike) -> Path:
    """Where a worklist's trained models live (`out_folder`: the worklist's `<cohort>/smartimaging/<Module>`)."""
    return Path(out_folder) / MODELS_FOLDER


def model_id(module: str, name: str) -> str:
    """The id of a cohort's model `name` (the bone-scan classifier's ids name its architecture)."""
    from .bonescan.pipeline import CLASSIFIER_ID

    check_model_name(name)
    return CLASSIFIER_ID.replace("-demo", f"-{name}") if module == "BoneScanBSTBI" else name


def model_card_path(out_folder: str | os.PathLike, module: str, name: str) -> Path:
    return models_folder(out_folder) / name / f"{model_id(module, name)}.json"


def _checker(should_stop: Callable[[], bool] | None) -> Callable[[], None]:
    def check() -> None:
        if (should_stop or _never)():
            raise CancelledError(CANCELLED)
    return check


def card_attribute(module: str) -> str:
    """The attribute of the module's reading flow that the Model selector's card goes to."""
    return "generator_card" if module in GENERATORS else "classifier_card"


def _check_module(module: str) -> None:
    if module not in TRAINABLE:
        raise InputError(f"{module} has no classifier that trains from a worklist (trainable: {', '.join(TRAINABLE)})")


# ---- the cohort's rows ------------------------------------------------------------------------------------------

def _cohort_rows(out_folder: Path, module: str, kind: str | None) -> tuple[object, list[dict], str | None]:
    """The worklist manifest and its rows of the model's kind: mammography's lesion kind (`kind`, or the only kind
    it holds; returned), the bone scan's all (kind None)."""
    path = out_folder / "manifest.csv"
    if not path.is_file():
        raise InputError(f"No case of this worklist is done yet: save cases with their label "
                         f"({' or '.join(CLASSES[module])}) first; training reads the cases marked done")
    if module != "MammoRadiomics":
        images = ("voi",) if module == "BreastLVI" else ("image", "mask")  # LVI: its sequence's column is checked later
        manifest = read_manifest(path, required=("patient_id", *images, "label", "split"))
        return manifest, manifest.rows, None
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
    """Patients with label 0 and with label 1 among `rows`."""
    patients = [{row["patient_id"] for row in rows if row["label"] == str(label)} for label in (0, 1)]
    return len(patients[0]), len(patients[1])


def _cases(module: str, counts: tuple[int, int]) -> str:
    """"7 benign and 6 malignant cases", "1 benign and 1 malignant case", "7 cases without metastasis and 6 with
    metastasis", "1 case without LVI and 0 with LVI"."""
    names = CLASSES[module]
    return f"{counts[0]} {names[0]} and {counted(counts[1], f'{names[1]} case')}" if module == "MammoRadiomics" \
        else f"{counted(counts[0], 'case')} {names[0]} and {counts[1]} {names[1]}"


def _too_few(module: str, what: str, counts: tuple[int, int], needed: int, where: str, more: str,
             note: str = "") -> InputError:
    return InputError(f"Too few cases to {what}: it needs at least {_cases(module, (needed, needed))} {where}; "
                      f"this cohort has {_cases(module, counts)}{note}. {more}")


def _relative_rows(manifest, rows: list[dict], folder: Path) -> list[dict]:
    """`rows` with their file paths relative to `folder` (a manifest written there reads the same files)."""
    return [{key: os.path.relpath(manifest.resolve(value), folder) if key in PATH_COLUMNS and value else value
             for key, value in row.items()} for row in rows]


def _extract(folder: Path, progress: Progress, start: float, span: float, check: Callable[[], None]
             ) -> tuple[Path, list[dict]]:
    """pyradiomics features of the cases of `folder`/cases.csv into `folder`/features.csv; the failed rows."""
    from .mammo.features import extract_cohort

    def on_row(done: int, total: int) -> None:
        check()
        progress(start + span * done / total, f"radiomics features of {done} of {total} cases")

    progress(start, "radiomics features of the cases")
    features = folder / "features.csv"
    _, failures = extract_cohort(folder / "cases.csv", features, n_jobs=1, show_progress=False, on_row=on_row)
    return features, failures


# ---- training ---------------------------------------------------------------------------------------------------

def train_from_worklist(out_folder: str | os.PathLike, module: str, name: str, seed: int = 0,
                        progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                        method: str = "preset", kind: str | None = None, search_space: dict | None = None,
                        epochs: int | None = None, network: str | None = None, sequence: str | None = None) -> Path:
    """Train `module`'s classifier on the worklist's done cases (train and val rows) into
    `<out_folder>/models/<name>/`; returns its card. `should_stop()` true cancels (CancelledError), leaving nothing.
    Mammography: `method` (the paper's preset for the lesion kind, or the search, `search_space` narrowing it);
    the bone scan: the classifier network trained for `epochs` (the val rows choose the epoch and the cutoff);
    breast MRI LVI: the paper's `network` on `sequence` for `epochs` (the val rows choose the epoch)."""
    _check_module(module)
    check_model_name(name)
    if method not in METHODS:
        raise InputError(f"Training method {method!r}: choose {' or '.join(METHODS)}")
    out_folder, progress, check = Path(out_folder), progress or _no_progress, _checker(should_stop)
    target = models_folder(out_folder) / name
    if os.path.lexists(target):  # a dangling link too: the final rename would fail after training
        raise InputError(f"This cohort already has a model named {name}; choose another name")
    if module in GENERATORS:
        from .dce.worklist_training import train_generator

        return train_generator(out_folder, target, seed, epochs, progress, check)
    manifest, rows, kind = _cohort_rows(out_folder, module, kind)
    training, left_out, note = [row for row in rows if row["split"] in ("train", "val")], 0, ""
    if module == "BreastLVI":  # the training cases without the chosen sequence are left out and counted
        from .lvi.worklist_training import (
            DEFAULT_NETWORK,
            DEFAULT_SEQUENCE,
            EPOCHS,
            left_out_note,
            train,
            with_sequence,
        )

        sequence = sequence or DEFAULT_SEQUENCE
        training, left_out = with_sequence(training, sequence)
        note = left_out_note(left_out, sequence)
    check_can_train(module, training, note)
    counts = _class_counts(training)
    with new_model_folder(target) as scratch:
        write_manifest(scratch / "cases.csv", _relative_rows(manifest, training, scratch))
        if module == "MammoRadiomics":
            card_path, counts, failed = _train_mammo(scratch, name, seed, method, kind, search_space, progress,
                                                     check)
        elif module == "BreastLVI":
            card_path, failed = train(scratch, name, seed, epochs or EPOCHS, network or DEFAULT_NETWORK, sequence,
                                      progress, check, left_out), 0
        else:
            card_path, failed = _train_bonescan(scratch, name, seed, epochs or BONESCAN_EPOCHS, progress, check), 0
        check()
        progress(0.97, "writing the model card")
        _describe(card_path, out_folder, manifest.sha256, module, name, kind, method if kind else None, seed,
                  counts, failed)
        check()
    progress(1.0, f"model {name} trained")
    return target / card_path.name


def check_can_train(module: str, rows: list[dict], note: str = "") -> None:
    """Refuse (InputError saying what is missing) a worklist cohort's done rows, of one lesion kind, that cannot
    train `module`'s classifier: MIN_TRAINING_PER_CLASS patients of each class in the train and val splits; the bone
    scan and LVI also need val rows (LVI: of both classes). `note` follows the counts (the cases left out)."""
    training = [row for row in rows if row["split"] in ("train", "val")]
    counts = _class_counts(training)
    more = "Save more cases as done (with their label), then train again."
    if min(counts) < MIN_TRAINING_PER_CLASS:
        raise _too_few(module, "train a classifier", counts, MIN_TRAINING_PER_CLASS, "among the training cases (the "
                       "train and val splits, about 85 % of the patients)", more, note)
    if module == "BoneScanBSTBI" and not any(row["split"] == "val" for row in training):
        raise InputError("Training the bone-scan classifier needs cases in the val split (about 15 % of the "
                         f"patients; they choose the epoch and the cutoff); none of the {len(training)} is. {more}")
    if module == "BreastLVI":
        from .lvi.worklist_training import check_splits

        check_splits(training, more, note)


def _train_mammo(scratch: Path, name: str, seed: int, method: str, kind: str, search_space: dict | None,
                 progress: Progress, check: Callable[[], None]) -> tuple[Path, tuple[int, int], int]:
    """Radiomics of the cases' corrected ROIs, then the preset or the search (patient-grouped CV) on them."""
    from .mammo.classify import read_features, train_from_features

    features, failures = _extract(scratch, progress, 0.0, 0.6, check)
    extracted, _ = read_features(features)
    counts = _class_counts(extracted)
    if min(counts) < MIN_TRAINING_PER_CLASS:
        raise _too_few("MammoRadiomics", "train a classifier", counts, MIN_TRAINING_PER_CLASS,
                       f"whose features could be computed ({len(failures)} failed: see features.failures.csv)",
                       "Correct those cases' ROIs or save more cases, then train again.")
    check()
    folds = 5 if min(counts) >= 2 * 5 else 3  # nested CV: each outer training fold keeps `folds` per class
    space = dict(search_space or {})
    if folds == 3:  # the SVM's Platt calibration (5 folds inside) needs 5 cases of each class in every inner fold
        space.setdefault("classifiers", SMALL_COHORT_CLASSIFIERS)
    progress(0.65, f"fitting {METHODS[method]} ({folds}-fold patient-grouped CV"
                   + (", several minutes)" if method == "search" else ")"))
    card = train_from_features(features, scratch, name, kind if method == "preset" else None, space,
                               split=None, folds=folds, seed=seed, validation_split=None, outer_folds=folds)
    return card, counts, len(failures)


def _train_bonescan(scratch: Path, name: str, seed: int, epochs: int, progress: Progress,
                    check: Callable[[], None]) -> Path:
    """The bone-scan crop classifier (ResNet34) trained on the train rows' corrected label maps, its epoch and
    case cutoff chosen on the val rows."""
    from .bonescan.train import train_bonescan
    from .training import TrainConfig

    def on_epoch(event: dict) -> None:
        check()
        if event.get("step") == "epoch":
            progress(0.05 + 0.9 * event["fraction"], f"epoch {event['epoch']} of {epochs}: validation AUC "
                                                     f"(metastasis crops) {event.get('auc_metastasis', 0.0):.3f}")

    progress(0.02, "reading the studies and their corrected ROIs")
    config = TrainConfig(epochs=epochs, seed=seed, amp=False, show_progress=False)
    return train_bonescan(scratch / "cases.csv", scratch, ("classifier",), config, progress=on_epoch,
                          model_suffix=name)[0]


def _describe(card_path: Path, out_folder: Path, manifest_sha256: str, module: str, name: str, kind: str | None,
              method: str | None, seed: int, counts: tuple[int, int], failed: int) -> None:
    """Record in the card what it was trained on (this cohort's manifest: path, the sha256 of the bytes its rows
    were read from, cases per class), how (command, method, seed), and its intended use."""
    cohort = out_folder.parent.parent
    manifest = out_folder / "manifest.csv"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    what, options = f"{kind} ROIs", f" --kind {kind} --method {method}"
    if module == "BreastLVI":
        from .lvi.worklist_training import describe

        what, options = describe(card)
    elif not kind:
        what, options = "bone-scan label maps", f" --epochs {card['training'].get('epochs')}"
    command = (f"python -m smartimaging.worker cohort-train --output-dir {out_folder} --module {module} --name {name}"
               + f"{options} --seed {seed}")
    card["module"] = module
    if kind:
        card["lesion_kind"] = kind
    phantom = is_phantom_cohort(cohort)
    card["training"].update(method=method or "network", command=command, data={
        "description": (f"the reader-corrected {what} of the {'synthetic phantom ' if phantom else ''}cohort "
                        f"{cohort.name} (train and val splits)"), "phantom": phantom,
        "cohort": cohort.name, "manifest": manifest.relative_to(cohort).as_posix(),
        "manifest_sha256": manifest_sha256, "train_cases": counts[0] + counts[1],
        "cases_per_class": dict(zip(CLASSES[module], counts, strict=True)), "failed_cases": failed})
    card["intended_use"] = (f"Demo: trained on synthetic phantoms (the cohort {cohort.name}); its numbers are "
                            "phantom numbers. Not for clinical use." if phantom else
                            f"Research use: trained on the cohort {cohort.name}; check its held-out numbers "
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
    card_path = model_card_path(out_folder, module, name)
    if not card_path.is_file():
        raise InputError(f"This cohort has no model named {name}; train it first")
    card = checked_card(card_path, module, name)
    if module in GENERATORS:
        from .dce.worklist_training import evaluate_generator

        return evaluate_generator(out_folder, card_path, progress, check)
    kind = card.get("lesion_kind")
    manifest, rows, kind = _cohort_rows(out_folder, module, kind if isinstance(kind, str) else None)
    test, note = [row for row in rows if row["split"] == "test"], ""
    if module == "BreastLVI":  # the test cases without the model's sequence are left out and counted
        from .lvi.worklist_training import left_out_note, with_sequence

        sequence = card.get("inputs").get("sequence") if isinstance(card.get("inputs"), dict) else None
        test, left_out = with_sequence(test, sequence)
        note = left_out_note(left_out, sequence)
    check_can_evaluate(module, test, note)
    trained_on = read_manifest(card_path.parent / "cases.csv", ("patient_id",)).rows
    shared = {row["patient_id"] for row in trained_on} & {row["patient_id"] for row in test}
    if shared:
        raise InputError(f"{len(shared)} test patient(s) were among the model's training cases (the manifest's split "
                         "column was changed): their numbers would not be held out. Train a new model")
    with atomic_output_dir(card_path.parent / "evaluation", one_result=False) as scratch:
        write_manifest(scratch / "cases.csv", _relative_rows(manifest, test, scratch))
        if module == "BreastLVI":
            from .lvi.worklist_training import evaluate
        else:
            evaluate = _evaluate_mammo if module == "MammoRadiomics" else _evaluate_bonescan
        y, scores, cutoff, card, extra, failed = evaluate(card_path, scratch, progress, check)
        extra += [["Left out", note.strip(" ()")]] if note else []
        if len(set(y.tolist())) < 2:
            raise _too_few(module, "evaluate", (int((y == 0).sum()), int((y == 1).sum())), 1, "among the test "
                           f"cases that could be read ({failed} failed)", "Save more cases as done.")
        report = _report(module, card, y, scores, cutoff, rows, manifest, failed, extra)
        card = {**card, "metrics": {**checked_card(card_path, module, name, card).get("metrics", {}), "test": {
            key: report[key] for key in ("data", "auc", "metrics", "cutoff", "manifest_sha256")}}}
        check()
        _write_evaluation(scratch, report, y, scores, name)
    with atomic_files(card_path) as (temporary,):
        temporary.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    progress(1.0, f"model {name} evaluated on {len(y)} held-out cases")
    return report


def check_can_evaluate(module: str, rows: list[dict], note: str = "") -> None:
    """Refuse (InputError) a worklist cohort's done rows, of one lesion kind, whose test split lacks a class: the
    test AUC compares the two. `note` follows the counts (the cases left out)."""
    counts = _class_counts([row for row in rows if row["split"] == "test"])
    if min(counts) < 1:
        raise _too_few(module, "evaluate", counts, 1, "among the held-out test cases (about 15 % of the patients, "
                       "chosen by patient)", "Save more cases as done, then evaluate again.", note)


def checked_card(card_path: Path, module: str, name: str, card: dict | None = None) -> dict:
    """A cohort model's card (read from `card_path` unless given) as untrusted input, before anything is written:
    its id must be the one its folder `name` gives (a card renamed or edited by hand would pass for another model,
    or for the demo), its module `module`, and what an evaluation reads of it must be of its kind; ModelError
    saying what is wrong."""
    card = read_json_limited(card_path, MAX_CARD_BYTES, "Model card") if card is None else card
    expected = model_id(module, name)
    if card.get("id") != expected:
        raise ModelError(f"The model card {card_path.name} names the model {str(card.get('id'))[:64]!r}, not "
                         f"{expected!r} as its folder does (a card copied or edited by hand). Refusing to use it; "
                         "train the model again")
    if card.get("module") != module:
        raise ModelError(f"The model card {card_path.name} is of the module {str(card.get('module'))[:64]!r}, not "
                         f"{module} (a card copied or edited by hand). Refusing to use it; train the model again")
    try:
        for key in ("metrics", "training"):
            if not isinstance(card.get(key, {}), dict):
                raise ValueError(f"{key} is not a set of values")
        if not isinstance(card.get("training", {}).get("data", {}), dict):
            raise ValueError("training.data is not a set of values")
        honest = card.get("metrics", {}).get("honest_auc")
        if honest is not None:
            section_number(honest, "auc", "metrics.honest_auc", 0, 1)
            section_number(honest, "sd", "metrics.honest_auc", 0, 1, 0.0)
    except ValueError as exc:
        raise ModelError(f"The model card {card_path.name} is damaged ({exc}). Refusing to use it; train the model "
                         "again") from None
    return card


def _evaluate_mammo(card_path: Path, scratch: Path, progress: Progress, check: Callable[[], None]):
    """Rad-scores of the test cases' corrected ROIs by the classifier, loaded as a prediction loads it (checksums,
    the skops allow-list)."""
    from .mammo.classify import read_features
    from .mammo.predict import check_radiomics_settings
    from .mammo.scorer import load_classifier

    classifier = load_classifier(card_path)
    check_radiomics_settings(card_path, trained=classifier.checked["radiomics"])
    features, failures = _extract(scratch, progress, 0.0, 0.8, check)
    extracted, _ = read_features(features)
    progress(0.85, "scoring the held-out cases")
    try:
        X = np.array([[float(row[feature]) for feature in classifier.feature_names] for row in extracted])
    except KeyError as exc:
        raise ModelError(f"The model {card_path.stem} needs the feature {exc.args[0]}, which the cohort's features "
                         "lack; train it again") from None
    y = np.array([int(row["label"]) for row in extracted])
    return y, classifier.scores(X), classifier.checked["cutoff"], classifier.card, [], len(failures)


def _evaluate_bonescan(card_path: Path, scratch: Path, progress: Progress, check: Callable[[], None]):
    """The networks (this classifier, the demo segmenter) on the test studies: `bonescan evaluate`'s tables, kept
    in `details/`; the case's metastasis probability is its score."""
    from .bonescan.evaluate import evaluate_manifest

    progress(0.1, "running the networks on the held-out studies")
    check()
    evaluate_manifest(scratch / "cases.csv", scratch / "details", split="all", classifier=str(card_path))
    report = json.loads((scratch / "details" / "evaluation.json").read_text(encoding="utf-8"))
    with open(scratch / "details" / "cases.csv", encoding="utf-8", newline="") as f:
        cases = list(csv.DictReader(f))
    lesion = report["overall"]["dice_lesion"]
    extra = [["Dice lesion (AI segmenter vs corrected, test)", f"{lesion[0]:.3f} ± {lesion[1]:.3f}"]]
    card = read_json_limited(card_path, MAX_CARD_BYTES, "Model card")
    return (np.array([int(row["label"]) for row in cases]),
            np.array([float(row["metastasis_probability"]) for row in cases]), float(report["threshold"]), card,
            extra, 0)


def _report(module: str, card: dict, y: np.ndarray, scores: np.ndarray, cutoff: float, cohort_rows: list[dict],
            cohort, failed: int, extra: list[list[str]]) -> dict:
    """The evaluation's report and table; `cohort`: the worklist manifest that was read (its sha256 is of the
    bytes read: a case saved since training shows as cases_added_since_training)."""
    from .evaluation import auc_with_ci, binary_metrics

    auc = auc_with_ci(y, scores)
    metrics = binary_metrics(y, (scores >= cutoff).astype(int))
    negative, positive = int((y == 0).sum()), int((y == 1).sum())
    cases = _cases(module, (negative, positive))
    manifest, sha = cohort.path, cohort.sha256
    trained_sha = ((card.get("training") or {}).get("data") or {}).get("manifest_sha256")
    dice = _dice_summary(cohort_rows)
    metrics_of_card = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    phantom = is_phantom_cohort(manifest.parent.parent.parent)  # <cohort>/smartimaging/<Module>/manifest.csv
    report = {"model": card["id"], "module": module, "cases": len(y), "negative": negative, "positive": positive,
              "data": f"the {len(y)} held-out test cases ({cases}) of {manifest.name}", "cutoff": cutoff,
              "auc": auc.__dict__, "metrics": metrics.as_dict(), "training_estimate": metrics_of_card.get("honest_auc"),
              "dice": dice, "manifest_sha256": sha, "cases_added_since_training": sha != trained_sha,
              "failed_cases": failed, "phantom": phantom}
    table = [["Test cases", f"{cases} (held out, never used in training)"
              + ("; SYNTHETIC PHANTOMS: demo numbers" if phantom else "")],
             ["AUC (95 % CI, DeLong)", f"{auc.auc:.3f} ({auc.ci_low:.3f}–{auc.ci_high:.3f})"],
             ["Cutoff (Youden, training)", f"{cutoff:.3f}"]]
    for label, key in (("Sensitivity", "sensitivity"), ("Specificity", "specificity"), ("Accuracy", "accuracy")):
        value = getattr(metrics, key)
        table.append([label, f"{100 * value.value:.1f} % ({value.numerator}/{value.denominator})"])
    honest = metrics_of_card.get("honest_auc")
    if isinstance(honest, dict) and "auc" in honest:
        what = "Nested-CV AUC (training, search)" if "nested" in str(honest.get("method")) else \
            "Cross-validated AUC (training, paper pipeline)"
        table.append([what, f"{honest['auc']:.3f} ± {honest.get('sd', 0.0):.3f} ({honest.get('folds')} folds)"])
    elif isinstance(metrics_of_card.get("auc_metastasis"), float):
        table.append(["Validation AUC (training, metastasis crops)", f"{metrics_of_card['auc_metastasis']:.3f}"])
    table.append(["Dice AI vs corrected", f"mean {dice['mean']:.3f}, median {dice['median']:.3f} "
                  f"({dice['cases']} cases with an AI proposal)" if dice["cases"] else
                  "no saved case had an AI proposal"])
    report["table"] = table + extra
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


def _write_evaluation(folder: Path, report: dict, y: np.ndarray, scores: np.ndarray, name: str) -> None:
    from .evaluation import plot_roc

    rows = read_manifest(folder / "cases.csv", ("patient_id",)).rows
    (folder / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    with open(folder / "scores.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case_id", "label", "score", "prediction"])
        writer.writerows([row.get("case_id", row["patient_id"]), int(label), f"{score:.6f}",
                          int(score >= report["cutoff"])] for row, label, score in zip(rows, y, scores, strict=True))
    plot_roc({name: (y, scores)}, folder / "roc.png", f"{name}: held-out test cases"
             + (" (phantoms: demo numbers)" if report.get("phantom") else ""))


# ---- the models a module can use --------------------------------------------------------------------------------

def demo_classifier(module: str, kind: str | None = None) -> str:
    """The id of the module's demo classifier (mammography: of the lesion kind)."""
    _check_module(module)
    if module == "MammoRadiomics":
        from .mammo.predict import CLASSIFIER_IDS

        return CLASSIFIER_IDS[kind or "mass"]
    if module == "BreastLVI":
        from .lvi.predict import DEFAULT_MODELS

        return DEFAULT_MODELS[0]  # its card stands for the DCE and T2 demo networks that Compute fuses
    if module in GENERATORS:
        from .dce.synthesis import MODEL_ID

        return MODEL_ID
    from .bonescan.pipeline import CLASSIFIER_ID

    return CLASSIFIER_ID


def model_choices(module: str, out_folder: str | os.PathLike | None, kind: str | None = None,
                  directory: str | os.PathLike | None = None) -> list[tuple[str, Path, bool]]:
    """What a Model selector offers, for either GUI: (title, card, is the demo) of the module's demo classifier (in
    `directory`, default the models folder) and of the models trained in the worklist's cohort (`out_folder`, None
    when no worklist is open) for the lesion `kind`."""
    demo = demo_classifier(module, kind)
    title = demo
    if module == "BreastLVI":
        from .lvi.worklist_training import DEMO_TITLE

        title = DEMO_TITLE
    choices = [(f"{title} (demo weights)", Path(directory or default_models_dir()) / f"{demo}.json", True)]
    cards = cohort_models(out_folder, module, kind) if out_folder is not None else []
    return choices + [(f"{card.parent.name} (trained on this cohort)", card, False) for card in cards]


def cohort_models(out_folder: str | os.PathLike, module: str, kind: str | None = None) -> list[Path]:
    """The cards of the models trained in a worklist's cohort for `module` (and the lesion kind), by name; a
    folder without a readable card of that module is skipped (a scratch folder, another tool's), as is a card whose
    id is not the one its folder gives (a copy that would pass for another model or the demo)."""
    folder = models_folder(out_folder)
    if not folder.is_dir():
        return []
    cards = []
    for entry in sorted(folder.iterdir()):
        try:
            path = entry / f"{model_id(module, entry.name)}.json"
            card = read_json_limited(path, MAX_CARD_BYTES, "Model card")
        except (InputError, ModelError):  # a scratch folder (".name.partial-..."), another tool's
            continue
        if card.get("module") == module and card.get("id") == model_id(module, entry.name) and (
                kind is None or card.get("lesion_kind") == kind):
            cards.append(path)
    return cards


def _metric_row(what: str, text: Callable[[], str]) -> list[str]:
    """A card summary's row [what, text()], or [what, "damaged card: why"] when the card's value is damaged."""
    try:
        return [what, text()]
    except ValueError as exc:
        return [what, f"damaged card: {exc}"]


def card_summary(card_path: str | os.PathLike) -> list[list[str]]:
    """A model card as [what, value] rows for the Model selector: id, trained on, cases, metrics, intended use; a
    damaged metric shows as "damaged card: <why>" in its row (ModelError only when the card cannot be read)."""
    card = read_json_limited(Path(card_path), MAX_CARD_BYTES, "Model card")
    if card.get("task") == "dce-synthesis":
        from .dce.worklist_training import card_rows

        return card_rows(card)
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    domain = card.get("training_domain") if isinstance(card.get("training_domain"), dict) else {}
    trained_on = str(data.get("description") or domain.get("data") or "not recorded")
    if isinstance(data.get("cases_per_class"), dict):
        trained_on += ": " + ", ".join(f"{count} {name}" for name, count in data["cases_per_class"].items())
    rows = [["Model", f"{card.get('id')} {card.get('version', '')}".strip()], ["Trained on", trained_on]]
    honest, test = metrics.get("honest_auc"), metrics.get("test")
    if honest is not None:
        rows.append(_metric_row("Training estimate", lambda: (
            f"AUC {section_number(honest, 'auc', 'honest_auc', 0, 1):.3f} ± "
            f"{section_number(honest, 'sd', 'honest_auc', 0, 1, 0.0):.3f} "
            f"({honest.get('method', '')})")))
    elif "auc_metastasis" in metrics:
        rows.append(_metric_row("Training estimate", lambda: (
            f"validation AUC {section_number(metrics, 'auc_metastasis', 'metrics', 0, 1):.3f} "
            "(metastasis crops, the val split)")))
    elif "validation" in metrics:  # BreastLVI networks: the val cases' AUC at the chosen epoch
        from .lvi.worklist_training import validation_auc

        rows.append(_metric_row("Training estimate", lambda: (
            f"validation AUC {validation_auc(card):.3f} ({metrics['validation'].get('data', 'the val cases')}, "
            "best epoch)")))
    if test is not None and (not isinstance(test, dict) or "auc" in test):
        auc, where = (test.get("auc"), "test.auc") if isinstance(test, dict) else (test, "test")
        rows.append(_metric_row("Held-out test", lambda: (
            f"AUC {section_number(auc, 'auc', where, 0, 1):.3f} "
            f"(95 % CI {section_number(auc, 'ci_low', where, 0, 1):.3f}–"
            f"{section_number(auc, 'ci_high', where, 0, 1):.3f}) on {test.get('data', '')}")))
    rows.append(["Intended use", str(card.get("intended_use", "not recorded"))])
    return rows
