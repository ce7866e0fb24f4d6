"""BreastLVI's classifier trained and evaluated on a worklist's cohort (cohort_training with lvi.worklist_training),
GUI-free: a 20-case LVI phantom worklist saved with the answer-key VOIs as the corrections trains the paper's network
(the card records the cohort, the network, the command and the seed), Evaluate measures it on the held-out test rows
(the same numbers as `lvi evaluate` on those rows), the Model selector lists it beside the demo weights, and the LVI
flow's Compute runs the chosen network alone on its sequence and names it. Too few cases and a val split without
both classes are refused before a model folder is made (a cancel: test_desktop_training, through the worker)."""

import csv
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from smartimaging.cohort_training import (
    card_summary,
    cohort_models,
    evaluate_model,
    model_choices,
    models_folder,
    train_from_worklist,
)
from smartimaging.errors import InputError, ModelError
from smartimaging.evaluation import auc_with_ci
from smartimaging.io import read_series_or_volume
from smartimaging.lvi.cohort import write_lvi_phantom_cohort
from smartimaging.lvi.evaluate import evaluate_models
from smartimaging.lvi.worklist_training import choice_arguments, choices
from smartimaging.manifest import read_manifest, write_manifest
from smartimaging.segments import BREAST_MASS
from smartimaging.worklist import Worklist

LVI = "BreastLVI"
SEED = 3  # its 20 phantoms: train 6 without LVI and 5 with, val 2 and 2, test 2 and 3
NAME = "lvi-site"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def save_lvi_cases(worklist: Worklist, cases, proposals: int = 4) -> Worklist:
    """The reader's work: each case saved as done with its answer-key VOI as the correction and its LVI status; the
    first `proposals` first get an AI proposal that missed the lesion's lower slices (Dice below 1)."""
    for index, case in enumerate(cases):
        dce = read_series_or_volume(case.inputs["DCE"])
        key = (sitk.GetArrayFromImage(sitk.ReadImage(str(case.key_mask))) > 0).astype(np.uint8)
        if index < proposals:
            ai = key.copy()
            ai[: ai.shape[0] // 2] = 0
            worklist.save_proposal(case.case_id, ai, dce, (BREAST_MASS,), {"id": "lvi-lesion-unet-demo"})
        worklist.save(case.case_id, {"lvi": case.key_label}, key * BREAST_MASS.label, dce, (BREAST_MASS,),
                      edit_seconds=2.0)
    return worklist


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Worklist:
    folder = tmp_path_factory.mktemp("lvi-training") / "cohort"
    write_lvi_phantom_cohort(folder, 20, seed=SEED)
    worklist = Worklist(folder, LVI)
    return save_lvi_cases(worklist, worklist.cases)


@pytest.fixture(scope="module")
def trained(saved):
    progress = []
    card = train_from_worklist(saved.out, LVI, NAME, seed=1, epochs=1, progress=lambda f, m: progress.append((f, m)))
    return card, progress


@pytest.fixture(scope="module")
def evaluated(saved, trained) -> dict:
    return evaluate_model(saved.out, LVI, NAME)


def _rows(worklist: Worklist, splits=None) -> list[dict]:
    return [row for row in read_manifest(worklist.manifest_path, ("patient_id",)).rows
            if splits is None or row["split"] in splits]


def test_the_card_records_the_cohort_the_network_and_the_command(saved, trained):
    card_path, progress = trained
    assert card_path == models_folder(saved.out) / NAME / f"{NAME}.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    training = _rows(saved, ("train", "val"))
    assert card["id"] == NAME and card["module"] == LVI and card["task"] == "lvi"
    assert card["inputs"]["sequence"] == "DCE" and card["inputs"]["dimensions"] == 3
    assert card["architecture"]["name"] == "resnet10_3d_convpool" and card["architecture"]["widen_factor"] == 1.0
    config = card["training"]["config"]
    assert (config["epochs"], config["batch_size"], config["learning_rate"], config["seed"]) == (1, 8, 1e-3, 1)
    assert card["training"]["train_cases"] == sum(r["split"] == "train" for r in training)
    assert card["training"]["val_cases"] == sum(r["split"] == "val" for r in training)
    data = card["training"]["data"]
    assert data["cases_per_class"] == {"without LVI": sum(r["label"] == "0" for r in training),
                                       "with LVI": sum(r["label"] == "1" for r in training)} == {"without LVI": 8,
                                                                                                 "with LVI": 7}
    assert data["phantom"] and data["manifest"] == "smartimaging/BreastLVI/manifest.csv"
    assert data["description"].startswith("the reader-corrected lesion VOIs (ResNet10 3D on the DCE) of the "
                                          "synthetic phantom cohort cohort")
    assert card["training"]["command"].endswith(f"--module {LVI} --name {NAME} --network resnet10-3d --sequence DCE "
                                                "--epochs 1 --seed 1")
    assert card["intended_use"].startswith("Demo: trained on synthetic phantoms")
    history = card["training"]["history"]
    assert [m for _, m in progress if m.startswith("epoch ")] == [f"epoch 1 of 1: validation AUC "
                                                                   f"{history[0]['val_auc']:.3f}"]
    assert [f for f, _ in progress] == sorted(f for f, _ in progress) and progress[-1][0] == 1.0
    assert cohort_models(saved.out, LVI) == [card_path] and cohort_models(saved.out, "MammoRadiomics") == []
    assert [(title, demo) for title, _, demo in model_choices(LVI, saved.out)] == [
        ("lvi-dce-resnet10-3d-demo + lvi-t2-resnet10-3d-demo (demo weights)", True),
        (f"{NAME} (trained on this cohort)", False)]
    summary = dict(card_summary(card_path))
    assert summary["Trained on"].endswith("(train and val splits): 8 without LVI, 7 with LVI")
    auc = card["metrics"]["validation"]["auc"]["auc"]
    assert summary["Training estimate"] == f"validation AUC {auc:.3f} (the 4 'val' cases, best epoch)"


def test_evaluation_on_the_held_out_test_rows(saved, trained, evaluated, tmp_path):
    card_path, _ = trained
    report = evaluated
    test = _rows(saved, ("test",))
    assert (report["negative"], report["positive"]) == (2, 3) == (sum(r["label"] == "0" for r in test),
                                                                  sum(r["label"] == "1" for r in test))
    folder = card_path.parent / "evaluation"
    with open(folder / "scores.csv", encoding="utf-8", newline="") as f:
        scores = list(csv.DictReader(f))
    assert [r["case_id"] for r in scores] == [r["case_id"] for r in test]
    y, s = np.array([int(r["label"]) for r in scores]), np.array([float(r["score"]) for r in scores])
    expected = auc_with_ci(y, s)
    assert report["auc"]["auc"] == pytest.approx(expected.auc) and report["auc"]["ci_low"] == pytest.approx(
        expected.ci_low)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    assert report["cutoff"] == card["outputs"]["cutoff"]
    positives = int(np.sum((s >= report["cutoff"]) & (y == 1)))
    table = dict(report["table"])
    assert table["Sensitivity"].endswith(f"({positives}/3)") and table["Specificity"].endswith("/2)")
    assert table["Test cases"].startswith("2 cases without LVI and 3 with LVI (held out")
    assert table["Test cases"].endswith("SYNTHETIC PHANTOMS: demo numbers")
    assert table["Network"] == f"ResNet10 3D on the DCE ({NAME})"
    dice = [float(r["dice_ai_vs_corrected"]) for r in _rows(saved) if r["dice_ai_vs_corrected"]]
    assert len(dice) == 4 and report["dice"]["mean"] == pytest.approx(np.mean(dice)) and max(dice) < 1
    assert (folder / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert card["metrics"]["test"]["auc"] == report["auc"]
    assert dict(card_summary(card_path))["Held-out test"].startswith(f"AUC {expected.auc:.3f} (95 % CI ")
    # `lvi evaluate` on the worklist manifest's test rows (the corrected VOIs) gives the same probabilities
    evaluate_models(saved.manifest_path, [str(card_path)], tmp_path / "table1", "test")
    table1 = json.loads((tmp_path / "table1" / "evaluation.json").read_text(encoding="utf-8"))["models"][0]
    assert [p["probability"] for p in table1["scores"]] == pytest.approx(s.tolist(), abs=1e-6)


def test_the_flow_computes_with_the_chosen_network_alone_and_names_it(saved, trained, evaluated):
    from smartimaging.lvi.flow import LVIFlow
    from smartimaging.mrml import create_headless_scene
    from smartimaging.worklist_scene import WorklistReading

    card_path, _ = trained
    with open(card_path.parent / "evaluation" / "scores.csv", encoding="utf-8", newline="") as f:
        first = next(csv.DictReader(f))  # a held-out case and Evaluate's score of it
    flow = LVIFlow(create_headless_scene(), "cpu")
    WorklistReading(flow, saved.folder).open_case(first["case_id"])  # the saved case: its corrected VOI restored
    demo = flow.run(flow.compute())
    assert [row[0] for row in demo.rows][:3] == ["DCE", "T2", "fused"]
    flow.classifier_card = card_path
    result = flow.run(flow.compute())
    rows = result.rows
    assert rows[0][:2] == ["DCE", "resnet10-3d"] and rows[0][5] == f"{NAME} 1.0.0"
    assert float(rows[0][2]) == pytest.approx(float(first["score"]), abs=1e-3)  # the score Evaluate gave it
    assert result.headline.endswith(f"; ResNet10 3D on the DCE, model {NAME})")
    # one network ran alone: no "fused" row, and the explanations speak of its LVI probability, not a fusion
    assert "fused" not in [row[0] for row in rows] and "fused" in [row[0] for row in demo.rows]
    cutoff = next(e for e in result.explanations if e["key"] == "cutoff")
    assert cutoff["title"].startswith(f"LVI probability {float(rows[0][2]):.3f} · cutoff {float(rows[0][3]):.3f}")
    assert not any("fused" in str(e).lower() for e in result.explanations)
    assert next(e for e in demo.explanations if e["key"] == "cutoff")["title"].startswith("Fused LVI probability")
    card = next(e for e in result.explanations if e["key"] == f"card {NAME}")
    assert any("cohort" in line for line in card["text"])  # the card read from the cohort, not the models folder
    flow.select({"T2": flow.volumes["T2"]}, None, flow.segmentation)
    with pytest.raises(InputError, match=f"The chosen model {NAME} \\(ResNet10 3D on the DCE\\) reads the DCE"):
        flow.run(flow.compute())


def test_too_few_cases_or_a_val_split_without_both_classes_are_refused(saved, tmp_path):
    few = save_lvi_cases(Worklist(saved.folder, LVI, out=tmp_path / "few"), saved.cases[:8], proposals=0)
    with pytest.raises(InputError, match=r"at least 5 cases without LVI and 5 with LVI among the training cases "
                                         r".*; this cohort has \d cases without LVI and \d with LVI"):
        train_from_worklist(few.out, LVI, "few")
    assert not models_folder(few.out).exists()
    val_negative = {r["case_id"] for r in _rows(saved, ("val",)) if r["label"] == "0"}
    no_val_negative = save_lvi_cases(Worklist(saved.folder, LVI, out=tmp_path / "val"),
                                     [c for c in saved.cases if c.case_id not in val_negative], proposals=0)
    with pytest.raises(InputError, match="one LVI-negative and one LVI-positive case in the val split .*; it has 0 "
                                         "LVI-negative and 2 LVI-positive"):
        train_from_worklist(no_val_negative.out, LVI, "no-val")
    assert not models_folder(no_val_negative.out).exists()
    with pytest.raises(InputError, match="Network 'resnet50'"):
        choice_arguments("resnet50:DCE")
    assert [value for value, _ in choices()][:3] == ["resnet10-3d:DCE", "resnet10-2d:DCE", "vanilla2d:DCE"]
    assert choice_arguments("vanilla2d:T2") == ["--network", "vanilla2d", "--sequence", "T2"]



def _copy_model(trained, name: str, edit) -> None:
    """The trained model copied as `name` (its card's id too), `edit(card)` applied to the copy's card."""
    card_path, _ = trained
    folder = card_path.parent.parent / name
    shutil.copytree(card_path.parent, folder, ignore=shutil.ignore_patterns("evaluation"))
    (folder / card_path.name).unlink()
    card = {**json.loads(card_path.read_text(encoding="utf-8")), "id": name}
    edit(card)
    (folder / f"{name}.json").write_text(json.dumps(card), encoding="utf-8")


def test_a_damaged_card_is_read_as_untrusted(saved, trained):
    """A card's validation metric edited by hand shows as damaged in the evaluation table and in the Model
    selector's card (one reader of it: the same words); a network name outside
    the paper's three, or not the one its architecture builds, refuses the model before anything is written."""
    damaged = {"valid-str": (lambda c: c["metrics"].__setitem__("validation", "x"),
                             "metrics.validation is 'x', not a set of values"),
               "auc-str": (lambda c: c["metrics"]["validation"]["auc"].__setitem__("auc", "abc"),
                           "metrics.validation.auc.auc is 'abc', not a number; expected 0 to 1"),
               "auc-above-1": (lambda c: c["metrics"]["validation"]["auc"].__setitem__("auc", 1.5),
                               "metrics.validation.auc.auc is 1.5; expected 0 to 1")}
    for name, (edit, why) in damaged.items():
        _copy_model(trained, name, edit)
        table = dict(evaluate_model(saved.out, LVI, name)["table"])
        assert table["Validation AUC (training, val split, best epoch)"] == f"damaged card: {why}"
        assert table["Network"] == f"ResNet10 3D on the DCE ({name})"
        card_path = trained[0].parent.parent / name / f"{name}.json"
        assert dict(card_summary(card_path))["Training estimate"] == f"damaged card: {why}"
    refused = {"resnet50": "training.model is 'resnet50'; expected one of 'vanilla2d', 'resnet10-2d', 'resnet10-3d'",
               "vanilla2d": "training.model is 'vanilla2d' but the architecture is a 3D resnet10_3d_convpool"}
    for network, message in refused.items():
        name = f"model-{network}"
        _copy_model(trained, name, lambda c, network=network: c["training"].__setitem__("model", network))
        with pytest.raises(ModelError, match=message):
            evaluate_model(saved.out, LVI, name)
        assert not (models_folder(saved.out) / name / "evaluation").exists()


def test_cases_without_the_sequence_are_left_out_and_counted(saved, tmp_path):
    """A done case saved without its FS-T2WI is left out of T2 training and evaluation and counted (the card, the
    refusals, the table); an empty corrected VOI is refused naming its patient."""
    cohort = tmp_path / "cohort"
    shutil.copytree(saved.folder, cohort, ignore=shutil.ignore_patterns("models"))
    out = cohort / "smartimaging" / LVI
    rows = read_manifest(out / "manifest.csv", ("patient_id",)).rows
    train_row = next(row for row in rows if row["split"] == "train" and row["label"] == "0")
    test_row = next(row for row in rows if row["split"] == "test" and row["label"] == "1")
    for row in (train_row, test_row):
        row["t2"] = ""
    write_manifest(out / "manifest.csv", rows)
    card_path = train_from_worklist(out, LVI, "t2", epochs=1, network="vanilla2d", sequence="T2")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    assert card["training"]["cases_without_sequence"] == 1
    assert card["training"]["data"]["cases_per_class"] == {"without LVI": 7, "with LVI": 7}
    assert "(VanillaCNN 2D on the FS-T2WI) (1 done case without its FS-T2WI left out) of the" in \
        card["training"]["data"]["description"]
    assert train_row["patient_id"] not in {row["patient_id"] for row in read_manifest(
        card_path.parent / "cases.csv", ("patient_id",)).rows}
    report = evaluate_model(out, LVI, "t2")
    assert (report["negative"], report["positive"]) == (2, 2)
    assert dict(report["table"])["Left out"] == "1 done case without its FS-T2WI left out"
    # the DCE model keeps every case; too few with the sequence: the refusal counts the ones left out
    for row in rows:
        if row["split"] in ("train", "val") and row["label"] == "1":
            row["t2"] = ""
    write_manifest(out / "manifest.csv", rows)
    with pytest.raises(InputError, match=r"this cohort has 7 cases without LVI and 0 with LVI \(8 done cases without "
                                         r"their FS-T2WI left out\)"):
        train_from_worklist(out, LVI, "t2-few", epochs=1, network="vanilla2d", sequence="T2")
    negative = next(row for row in rows if row["split"] == "test" and row["label"] == "0")
    voi = out / negative["voi"]
    image = sitk.ReadImage(str(voi))
    empty = sitk.GetImageFromArray(sitk.GetArrayFromImage(image) * 0)
    empty.CopyInformation(image)
    for key in image.GetMetaDataKeys():
        empty.SetMetaData(key, image.GetMetaData(key))
    sitk.WriteImage(empty, str(voi), True)
    before = (card_path.parent / "evaluation" / "evaluation.json").read_bytes()
    with pytest.raises(InputError, match=f"Patient {negative['patient_id']}: The lesion VOI is empty"):
        evaluate_model(out, LVI, "t2")
    assert (card_path.parent / "evaluation" / "evaluation.json").read_bytes() == before
