"""Training and evaluating a module's classifier on a worklist's cohort (cohort_training, worker jobs
cohort-train / cohort-evaluate), and the mammography flow computing with the model chosen in the Model selector."""

import csv
import json
import shutil
import time

import numpy as np
import pytest
import SimpleITK as sitk

from smartimaging.cohort_training import (
    MIN_TRAINING_PER_CLASS,
    card_summary,
    cohort_models,
    evaluate_model,
    model_choices,
    models_folder,
    train_from_worklist,
)
from smartimaging.errors import CancelledError, InputError, ModelError
from smartimaging.evaluation import auc_with_ci
from smartimaging.mammo.cohort import write_mammo_phantom_cohort
from smartimaging.mammo.features import load_mask
from smartimaging.mammo.images import load_mammogram
from smartimaging.manifest import read_manifest
from smartimaging.models.registry import models_dir, sha256_of
from smartimaging.segments import MAMMO_SEGMENTS
from smartimaging.worker import WorkerProcess
from smartimaging.worklist import Worklist

MAMMO = "MammoRadiomics"
SEED = 5  # its 20 phantoms: 13 patients in the train and val splits (7 benign, 6 malignant), 7 in test (3, 4)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def save_cases(cohort, count=None, proposals=4):
    """The reader's work on a phantom cohort's worklist: the answer-key masks saved as the corrected ROIs, with
    their pathology; the first `proposals` cases first get an AI proposal that missed the lesion's left part."""
    worklist = Worklist(cohort, MAMMO)
    segment = MAMMO_SEGMENTS["mass"]
    for index, case in enumerate(worklist.cases[:count]):
        mammogram = load_mammogram(case.inputs["mammogram"], float(case.given["pixel_mm"]))
        key = load_mask(case.key_mask, mammogram)[None].astype(np.uint8)
        if index < proposals:
            ai = key.copy()
            columns = np.nonzero(key[0].any(axis=0))[0]
            ai[:, :, : columns[len(columns) // 3]] = 0
            worklist.save_proposal(case.case_id, ai * segment.label, mammogram.image, (segment,),
                                   {"id": "mammo-mass-unet-demo"})
        worklist.save(case.case_id, {"kind": "mass", "pathology": case.key_label}, key * segment.label,
                      mammogram.image, (segment,), edit_seconds=3.0)
    return worklist


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantoms")
    write_mammo_phantom_cohort(folder, 20, seed=SEED, kind="mass")
    return folder


@pytest.fixture(scope="module")
def saved(phantoms, tmp_path_factory):
    """The 20-case phantom worklist, every case saved as done."""
    cohort = tmp_path_factory.mktemp("saved") / "cohort"
    shutil.copytree(phantoms, cohort)
    return save_cases(cohort)


@pytest.fixture(scope="module")
def trained(saved):
    progress = []
    card = train_from_worklist(saved.out, MAMMO, "mammo-mass-site", seed=3,
                               progress=lambda f, m: progress.append((f, m)))
    return card, progress


def _rows(worklist, split=None):
    rows = read_manifest(worklist.manifest_path).rows
    return [row for row in rows if split is None or row["split"] in split]


def test_the_card_says_what_the_model_was_trained_on(saved, trained):
    card_path, progress = trained
    assert card_path == models_folder(saved.out) / "mammo-mass-site" / "mammo-mass-site.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    training = _rows(saved, ("train", "val"))
    data = card["training"]["data"]
    assert data["manifest"] == "smartimaging/MammoRadiomics/manifest.csv"
    assert data["manifest_sha256"] == sha256_of(saved.manifest_path)
    assert data["cases_per_class"] == {"benign": sum(r["label"] == "0" for r in training),
                                       "malignant": sum(r["label"] == "1" for r in training)} == {"benign": 7,
                                                                                                  "malignant": 6}
    assert data["cohort"] == "cohort" and "cohort" in data["description"]
    assert card["module"] == MAMMO and card["lesion_kind"] == "mass" and card["training"]["seed"] == 3
    assert "--seed 3" in card["training"]["command"] and "--method preset" in card["training"]["command"]
    assert card["pipeline"]["classifier"] == "rf"  # the paper's mass pipeline
    assert 0 <= card["metrics"]["honest_auc"]["auc"] <= 1 and card["metrics"]["honest_auc"]["folds"] == 3
    assert "Not for clinical use" in card["intended_use"]
    assert data["phantom"] and "of the synthetic phantom cohort cohort" in data["description"]  # its marker file
    assert card["intended_use"].startswith("Demo: trained on synthetic phantoms")
    features = read_manifest(card_path.parent / "features.csv").rows
    assert sorted(r["patient_id"] for r in features) == sorted(r["patient_id"] for r in training)
    assert [f for f, _ in progress] == sorted(f for f, _ in progress) and progress[-1][0] == 1.0
    assert any("radiomics features of 13 of 13 cases" in m for _, m in progress)
    assert dict(card_summary(card_path))["Trained on"].endswith("(train and val splits): 7 benign, 6 malignant")
    assert cohort_models(saved.out, MAMMO, "mass") == [card_path]
    assert cohort_models(saved.out, MAMMO, "calcification") == []
    demo, *trained_here = model_choices(MAMMO, saved.out, "mass")
    assert demo[0] == "mammo-mass-classifier-demo (demo weights)" and demo[1].is_file() and demo[2]
    assert ("mammo-mass-site (trained on this cohort)", card_path, False) in trained_here
    assert [title for title, _, _ in model_choices(MAMMO, None, "calcification")] == [
        "mammo-calcification-classifier-demo (demo weights)"]
    assert [row[0] for row in card_summary(card_path)] == ["Model", "Trained on", "Training estimate",
                                                           "Intended use"]


def test_evaluation_on_the_held_out_test_cases(saved, trained):
    card_path, _ = trained
    report = evaluate_model(saved.out, MAMMO, "mammo-mass-site")
    test = _rows(saved, ("test",))
    assert (report["negative"], report["positive"]) == (3, 4) == (sum(r["label"] == "0" for r in test),
                                                                  sum(r["label"] == "1" for r in test))
    folder = card_path.parent / "evaluation"
    with open(folder / "scores.csv", encoding="utf-8", newline="") as f:
        scores = list(csv.DictReader(f))
    assert sorted(r["case_id"] for r in scores) == sorted(r["case_id"] for r in test)
    y = np.array([int(r["label"]) for r in scores])
    s = np.array([float(r["score"]) for r in scores])
    expected = auc_with_ci(y, s)
    assert report["auc"]["auc"] == pytest.approx(expected.auc, abs=1e-6)
    assert report["auc"]["ci_low"] == pytest.approx(expected.ci_low, abs=1e-6)
    cutoff = json.loads(card_path.read_text(encoding="utf-8"))["cutoff"]["value"]
    assert report["cutoff"] == cutoff
    positives = int(np.sum((s >= cutoff) & (y == 1)))
    sensitivity = report["metrics"]["sensitivity"]
    assert (sensitivity["numerator"], sensitivity["denominator"]) == (positives, 4)
    table = dict(report["table"])
    assert table["Sensitivity"].endswith(f"({positives}/4)")
    assert table["AUC (95 % CI, DeLong)"].startswith(f"{expected.auc:.3f} (")
    assert "Cross-validated AUC (training, paper pipeline)" in table
    assert report["phantom"] and table["Test cases"].endswith("SYNTHETIC PHANTOMS: demo numbers")
    dice = [float(r["dice_ai_vs_corrected"]) for r in _rows(saved) if r["dice_ai_vs_corrected"]]
    assert len(dice) == 4 and report["dice"]["mean"] == pytest.approx(np.mean(dice))
    assert report["dice"]["median"] == pytest.approx(np.median(dice)) and report["dice"]["corrected"] == 4
    assert (folder / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    assert card["metrics"]["test"]["auc"] == report["auc"]
    assert card_summary(card_path)[3][0] == "Held-out test"


def test_a_tampered_model_is_refused(saved, trained):
    card_path, _ = trained
    files = json.loads(card_path.read_text(encoding="utf-8"))["files"]
    target = card_path.parent / files.get("plain", files["pipeline"])  # the file a prediction loads
    original = target.read_bytes()
    try:
        target.write_bytes(original + b"\0")
        with pytest.raises(ModelError, match="does not match the checksum"):
            evaluate_model(saved.out, MAMMO, "mammo-mass-site")
    finally:
        target.write_bytes(original)


def test_the_search_records_its_nested_cv_estimate(saved):
    space = {"normalisers": ("zscore",), "reducers": ("pcc",), "selectors": ("anova",), "n_features": (3, 5)}
    read = saved.manifest_path.read_bytes()

    def save_a_case_meanwhile(fraction: float, message: str) -> None:  # the manifest changes after it was read
        if fraction > 0.5 and saved.manifest_path.read_bytes() == read:
            saved.manifest_path.write_bytes(read + b"\n")

    try:
        card_path = train_from_worklist(saved.out, MAMMO, "mammo-mass-search", method="search", search_space=space,
                                        progress=save_a_case_meanwhile)
        assert saved.manifest_path.read_bytes() != read  # changed while training ...
    finally:
        saved.manifest_path.write_bytes(read)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    assert card["training"]["data"]["manifest_sha256"] == sha256_of(saved.manifest_path)  # ... the card: as read
    # 6 or 7 patients of a class: no calibrated SVM (its 5 inner folds need 5 of each class in every inner fold)
    assert {row["classifier"] for row in card["training"]["search_table"]} == {"lr", "rf"}
    honest = card["metrics"]["honest_auc"]
    assert honest["method"].startswith("nested CV: 3 patient-grouped outer folds") and len(honest["outer_folds"]) >= 2
    table = dict(evaluate_model(saved.out, MAMMO, "mammo-mass-search")["table"])
    assert table["Nested-CV AUC (training, search)"].startswith(f"{honest['auc']:.3f} ± ")
    with pytest.raises(InputError, match="already has a model named mammo-mass-search"):
        train_from_worklist(saved.out, MAMMO, "mammo-mass-search")


@pytest.mark.parametrize("module", [MAMMO, "DCESynthesis"])
def test_any_entry_at_the_model_name_is_refused_before_training(tmp_path, module):
    """A dangling link at the model's name (or any entry) is refused before anything is read or trained (the final
    rename would fail after the whole training); the link is left as it was."""
    link = models_folder(tmp_path) / "taken"
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path / "nowhere")
    progress = []
    with pytest.raises(InputError, match="already has a model named taken; choose another name"):
        train_from_worklist(tmp_path, module, "taken", progress=lambda fraction, message: progress.append(message))
    assert progress == [] and link.is_symlink() and sorted(p.name for p in link.parent.iterdir()) == ["taken"]


@pytest.mark.parametrize("field, value, message", [
    ("id", "mammo-mass-classifier-demo", "names the model 'mammo-mass-classifier-demo', not 'copy' as its folder"),
    ("module", "BreastLVI", "is of the module 'BreastLVI', not MammoRadiomics"),
    ("metrics", [], r"damaged \(metrics is not a set of values\)"),
    ("metrics", {"honest_auc": {"auc": "abc"}}, r"damaged \(metrics.honest_auc.auc is 'abc', not a number; expected 0 "
                                                r"to 1\)"),
    ("metrics", {"honest_auc": {"auc": 5}}, r"damaged \(metrics.honest_auc.auc is 5; expected 0 to 1\)"),
    ("metrics", {"honest_auc": {"auc": 0.8, "sd": -3}}, r"damaged \(metrics.honest_auc.sd is -3; expected 0 to 1\)"),
    ("training", "x", r"damaged \(training is not a set of values\)")])
def test_a_renamed_or_damaged_card_is_refused_before_anything_is_written(saved, trained, field, value, message):
    card_path, _ = trained
    folder = card_path.parent.parent / "copy"
    shutil.copytree(card_path.parent, folder, ignore=shutil.ignore_patterns("evaluation"))
    try:
        card = {**json.loads(card_path.read_text(encoding="utf-8")), "id": "copy"}
        card[field] = value
        (folder / card_path.name).unlink()
        (folder / "copy.json").write_text(json.dumps(card), encoding="utf-8")
        with pytest.raises(ModelError, match=message):
            evaluate_model(saved.out, MAMMO, "copy")
        assert not (folder / "evaluation").exists()
        assert json.loads((folder / "copy.json").read_text(encoding="utf-8")) == card
        assert ((folder / "copy.json") in cohort_models(saved.out, MAMMO)) == (field not in ("id", "module"))
    finally:
        shutil.rmtree(folder)


def test_a_cohort_too_small_is_refused_in_plain_words(phantoms, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(phantoms, cohort)
    with pytest.raises(InputError, match="No case of this worklist is done yet"):
        train_from_worklist(cohort / "smartimaging" / MAMMO, MAMMO, "too-early")
    worklist = save_cases(cohort, count=8, proposals=0)
    with pytest.raises(InputError, match=rf"at least {MIN_TRAINING_PER_CLASS} benign and "
                                         rf"{MIN_TRAINING_PER_CLASS} malignant cases among the training "
                                         r"cases .*; this cohort has \d benign and \d malignant cases"):
        train_from_worklist(worklist.out, MAMMO, "too-small")
    assert not models_folder(worklist.out).exists()  # refused before any model folder was made


def test_cancel_leaves_no_model(saved):
    messages = []

    def stop() -> bool:
        return any(m.startswith("fitting") for m in messages)

    with pytest.raises(CancelledError):
        train_from_worklist(saved.out, MAMMO, "cancelled", progress=lambda f, m: messages.append(m),
                            should_stop=stop)
    assert not any(p.name.startswith((".cancelled", "cancelled")) for p in models_folder(saved.out).iterdir())


def test_worker_jobs_train_evaluate_and_cancel(saved):
    out = str(saved.out)
    worker = WorkerProcess("cohort-train", ["--output-dir", out, "--module", MAMMO, "--name", "by-worker"])
    seen: list[dict] = []
    while not any(e["event"] == "progress" and e["message"].startswith("radiomics features of 2 ") for e in seen):
        assert worker.process.poll() is None, (seen, worker.stderr)
        seen += worker.poll()
        time.sleep(0.05)
    worker.cancel()
    worker.wait(timeout=30)
    assert not any(p.name.startswith((".by-worker", "by-worker")) for p in models_folder(saved.out).iterdir())

    events = WorkerProcess("cohort-evaluate", ["--output-dir", out, "--module", MAMMO, "--name", "nothing"]).wait(60)
    assert events[-1]["event"] == "error" and "no model named nothing" in events[-1]["message"]
    events = WorkerProcess("cohort-evaluate", ["--output-dir", out, "--module", MAMMO, "--name",
                                               "mammo-mass-site"]).wait(300)
    assert [e["event"] for e in events][-1] == "result" and any(e["event"] == "progress" for e in events)
    assert events[-1]["evaluation"]["cases"] == 7


def _painted_flow(scene, case):
    """A mammography flow on the case's image, its answer-key mask painted as the reader's ROI; and the image."""
    from smartimaging.mammo.flow import MammoFlow
    from smartimaging.mrml import sitk_to_volume_node
    from smartimaging.segmentation_nodes import segmentation_from_labels

    mammogram = load_mammogram(case.inputs["mammogram"], float(case.given["pixel_mm"]))
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "phantom")
    sitk_to_volume_node(mammogram.image, volume)
    labels = load_mask(case.key_mask, mammogram)[None].astype(np.uint8)
    flow = MammoFlow(scene)
    flow.select({"mammogram": volume})
    flow.draw_by_hand()
    painted = segmentation_from_labels(scene, volume, labels, flow.drawn_segments, "painted", "edited")
    flow.segmentation.GetSegmentation().DeepCopy(painted.GetSegmentation())
    return flow, mammogram


def test_the_flow_computes_with_the_selected_model(scene, saved, trained):
    card_path, _ = trained
    flow, mammogram = _painted_flow(scene, saved.cases[0])
    demo = dict(flow.run(flow.compute()).rows)
    assert demo["Classifier"].startswith("mammo-mass-classifier-demo ")
    flow.classifier_card = card_path
    result = flow.run(flow.compute())
    rows = dict(result.rows)
    assert rows["Classifier"] == "mammo-mass-site 1.0.0"
    expected = json.loads(card_path.read_text(encoding="utf-8"))["cutoff"]["value"]
    assert rows["Cutoff (Youden, training)"] == f"{expected:.3f}"
    card = next(e for e in result.explanations if e["key"] == "card mammo-mass-site")
    assert any("cohort" in line for line in card["text"])  # the card read from the cohort, not the models folder
    flow.set_kind("calcification")
    with pytest.raises(InputError, match="trained on mass lesions, not on calcification"):
        flow.run(flow.compute())
    assert sitk.GetArrayFromImage(mammogram.image).shape[0] == 1


def test_a_demo_classifier_of_another_kind_is_refused(scene, phantoms):
    """A demo card records no lesion kind: its id names it (mammo-<kind>-classifier-demo)."""
    flow, _ = _painted_flow(scene, Worklist(phantoms, MAMMO).cases[0])  # a mass
    flow.classifier_card = models_dir() / "mammo-calcification-classifier-demo.json"
    with pytest.raises(InputError, match="mammo-calcification-classifier-demo was trained on calcification lesions, "
                                         "not on mass lesions"):
        flow.run(flow.compute())


@pytest.mark.parametrize(("metrics", "row", "text"), [
    ({"honest_auc": {"auc": 0.8, "sd": "abc"}}, "Training estimate", "honest_auc.sd is 'abc', not a number; expected 0 "
                                                                     "to 1"),
    ({"honest_auc": [0.8]}, "Training estimate", "honest_auc is [0.8], not a set of values"),
    ({"honest_auc": {"auc": 5}}, "Training estimate", "honest_auc.auc is 5; expected 0 to 1"),
    ({"honest_auc": {"auc": 10**400}}, "Training estimate", "honest_auc.auc is inf; expected 0 to 1"),
    ({"auc_metastasis": float("nan")}, "Training estimate", "metrics.auc_metastasis is nan; expected 0 to 1"),
    ({"auc_metastasis": float("inf")}, "Training estimate", "metrics.auc_metastasis is inf; expected 0 to 1"),
    ({"test": {"auc": {"auc": "x", "ci_low": 0.5, "ci_high": 0.9}}}, "Held-out test",
     "test.auc.auc is 'x', not a number; expected 0 to 1"),
    ({"test": {"auc": {"auc": 0.7, "ci_high": 0.9}}}, "Held-out test", "test.auc.ci_low is missing"),
    ({"test": {"auc": {"auc": 0.7, "ci_low": 0.5, "ci_high": True}}}, "Held-out test",
     "test.auc.ci_high is True, not a number; expected 0 to 1"),
])
def test_a_damaged_card_is_summarised_saying_what_is_damaged(tmp_path, metrics, row, text):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"id": "mass-site-2", "version": "1.0.0", "metrics": metrics}), encoding="utf-8")
    summary = dict(card_summary(card))
    assert summary["Model"] == "mass-site-2 1.0.0" and summary[row] == f"damaged card: {text}"


# ---- the bone-scan classifier ---------------------------------------------------------------------------------------

BONESCAN = "BoneScanBSTBI"
BONESCAN_SEED = 1  # its 20 phantoms: enough of both classes in train+val, val and test


def save_bone_scans(worklist, cases, proposals=0):
    """Bone-scan cases saved with their answer-key label map as the corrected ROI; the first `proposals` first
    proposed with the bladder missed."""
    from smartimaging.bonescan.views import load_bone_scan
    from smartimaging.segments import BONESCAN_SEGMENTS

    for index, case in enumerate(cases):
        reference = load_bone_scan([case.inputs["scan"]]).images[0]
        key = sitk.GetArrayFromImage(sitk.ReadImage(str(case.key_mask))).astype(np.uint8)
        if not key.any():
            continue  # no metastasis and no bladder: the worklist takes no empty ROI
        if index < proposals:
            worklist.save_proposal(case.case_id, np.where(key == 2, 0, key), reference, BONESCAN_SEGMENTS,
                                   {"id": "bonescan-unet-demo"})
        worklist.save(case.case_id, {"metastasis": case.key_label}, key, reference, BONESCAN_SEGMENTS)


@pytest.fixture(scope="module")
def bonescan_saved(tmp_path_factory):
    """A 20-case bone-scan phantom worklist, every case saved."""
    from smartimaging.bonescan.cohort import write_phantom_cohort

    cohort = tmp_path_factory.mktemp("bonescan") / "cohort"
    write_phantom_cohort(cohort, 20, seed=BONESCAN_SEED)
    worklist = Worklist(cohort, BONESCAN)
    save_bone_scans(worklist, worklist.cases, proposals=4)
    return worklist


@pytest.fixture(scope="module")
def bonescan_trained(bonescan_saved):
    events = []
    card = train_from_worklist(bonescan_saved.out, BONESCAN, "site", seed=2, epochs=1,
                               progress=lambda f, m: events.append(m))
    return card, events


def test_the_bone_scan_classifier_trains_and_evaluates_on_the_cohort(bonescan_saved, bonescan_trained):
    card_path, events = bonescan_trained
    assert card_path == models_folder(bonescan_saved.out) / "site" / "bonescan-resnet34-site.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    data = card["training"]["data"]
    training, test = _rows(bonescan_saved, ("train", "val")), _rows(bonescan_saved, ("test",))
    assert data["cases_per_class"] == {"without metastasis": sum(r["label"] == "0" for r in training),
                                       "with metastasis": sum(r["label"] == "1" for r in training)}
    assert data["manifest_sha256"] == sha256_of(bonescan_saved.manifest_path)
    assert card["training"]["epochs_run"] == 1 and card["module"] == BONESCAN
    assert "--epochs 1" in card["training"]["command"] and "--seed 2" in card["training"]["command"]
    assert any(m.startswith("epoch 1 of 1: validation AUC") for m in events)
    assert cohort_models(bonescan_saved.out, BONESCAN) == [card_path]
    assert cohort_models(bonescan_saved.out, MAMMO) == []

    report = evaluate_model(bonescan_saved.out, BONESCAN, "site")
    assert (report["negative"], report["positive"]) == (sum(r["label"] == "0" for r in test),
                                                        sum(r["label"] == "1" for r in test))
    details = json.loads((card_path.parent / "evaluation" / "details" / "evaluation.json").read_text())
    assert [model["id"] for model in details["models"]] == ["bonescan-resnet34-site", "bonescan-unet-demo"]
    assert report["auc"]["auc"] == pytest.approx(details["auc_metastasis"]["auc"])
    assert report["cutoff"] == pytest.approx(details["threshold"])
    table = dict(report["table"])
    assert table["Test cases"].startswith(f"{report['negative']} cases without metastasis and "
                                          f"{report['positive']} with metastasis")
    assert "Validation AUC (training, metastasis crops)" in table
    assert table["Dice AI vs corrected"].endswith("(4 cases with an AI proposal)")
    assert "Dice lesion (AI segmenter vs corrected, test)" in table


def test_a_bone_scan_cohort_too_small_is_refused(bonescan_saved, tmp_path):
    few = Worklist(bonescan_saved.folder, BONESCAN, out=tmp_path / "few")
    save_bone_scans(few, bonescan_saved.cases[:6])
    with pytest.raises(InputError, match=r"at least 5 cases without metastasis and 5 with metastasis among the "
                                         r"training cases .*; this cohort has \d cases without"):
        train_from_worklist(few.out, BONESCAN, "few")
    assert not models_folder(few.out).exists()


def test_the_bone_scan_flow_segments_with_the_selected_classifier(scene, bonescan_saved, bonescan_trained):
    from smartimaging.bonescan.flow import BoneScanFlow

    card_path, _ = bonescan_trained
    flow = BoneScanFlow(scene, device="cpu")
    flow.load("scan", bonescan_saved.cases[0].inputs["scan"])
    flow.classifier_card = card_path
    flow.run(flow.segment())
    result = flow.run(flow.compute())
    assert dict(result.rows)["Classifier"] == "bonescan-resnet34-site 1.0.0"
    card = next(e for e in result.explanations if e["key"] == "card bonescan-resnet34-site")
    assert any("cohort" in line for line in card["text"])  # read from the cohort's models folder
