"""The DCESynthesis Pix2Pix fine-tuned and evaluated on a worklist's cohort (dce.worklist_training through
cohort_training): GUI-free train -> evaluate -> choose -> synthesize on a 5-case DCE phantom worklist (3 train, 1 val,
1 test patient), the desktop Model section's session through the real worker jobs (train, evaluate, choose, cancel),
the station's Model section on a trame state, and the refusals (too few cases, a cancel leaves no model folder)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from smartimaging.cohort_training import (
    CANCELLED,
    card_summary,
    evaluate_model,
    model_card_path,
    model_choices,
    models_folder,
    train_from_worklist,
)
from smartimaging.dce import worklist_training
from smartimaging.dce.cohort import write_dce_phantom_cohort
from smartimaging.dce.flow import DCEFlow
from smartimaging.dce.metrics import slice_metrics
from smartimaging.dce.scene import RESULT
from smartimaging.dce.synthesis import DCESynthesizer
from smartimaging.dce.volumes import load_mr_volume, normalise, to_unit
from smartimaging.dce.worklist_training import DEFAULT_EPOCHS, FIGURE, demo_card
from smartimaging.desktop_training import TrainingSession
from smartimaging.desktop_worklist import WorklistSession
from smartimaging.errors import CancelledError, InputError, ModelError
from smartimaging.explain import card_explanation
from smartimaging.manifest import read_manifest
from smartimaging.models.registry import sha256_of
from smartimaging.mrml import create_headless_scene, get_json_attribute
from smartimaging.worklist import Worklist

DCE = "DCESynthesis"
SEED = 6  # 5 phantoms, splits by patient: test, train, train, val, train
NAME = "dce-site"
PNG = b"\x89PNG\r\n\x1a\n"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dce-phantoms") / "cohort"
    write_dce_phantom_cohort(folder, 5, seed=SEED)
    return folder


def saved_worklist(phantoms: Path, folder: Path, count: int | None = None) -> Worklist:
    """A copy of the phantom cohort whose first `count` cases the reader saved as done (T1 and real DCE)."""
    shutil.copytree(phantoms, folder)
    worklist = Worklist(folder, DCE)
    for case in worklist.cases[:count]:
        worklist.save(case.case_id, {"note": "read"})
    return worklist


@pytest.fixture(scope="module")
def cohort(phantoms, tmp_path_factory) -> Worklist:
    return saved_worklist(phantoms, tmp_path_factory.mktemp("saved") / "cohort")


@pytest.fixture(scope="module")
def trained(cohort):
    progress = []
    card = train_from_worklist(cohort.out, DCE, NAME, seed=3, progress=lambda f, m: progress.append((f, m)),
                               epochs=1)
    return card, progress


@pytest.fixture(scope="module")
def evaluated(cohort, trained) -> dict:
    return evaluate_model(cohort.out, DCE, NAME)


def _rows(worklist: Worklist, *splits: str) -> list[dict]:
    return [row for row in read_manifest(worklist.manifest_path, ("patient_id", "split")).rows
            if row["split"] in splits]


def test_the_fine_tuned_card_says_what_it_was_trained_on_and_from_what(cohort, trained):
    card_path, progress = trained
    assert card_path == models_folder(cohort.out) / NAME / f"{NAME}.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    demo = json.loads(demo_card().read_text(encoding="utf-8"))
    assert card["module"] == DCE and card["task"] == "dce-synthesis"
    assert card["architecture"] == demo["architecture"] and card["training_domain"] == demo["training_domain"]
    assert card["training"]["fine_tuned_from"] == {"id": "dce-pix2pix-demo", "version": demo["version"],
                                                   "sha256": demo["weights_sha256"]}
    assert card["weights_sha256"] == sha256_of(card_path.parent / f"{NAME}.safetensors") != demo["weights_sha256"]
    data = card["training"]["data"]
    assert (data["train_cases"], data["val_cases"]) == (3, 1) == (len(_rows(cohort, "train")),
                                                                  len(_rows(cohort, "val")))
    assert data["manifest"] == "smartimaging/DCESynthesis/manifest.csv"
    assert data["manifest_sha256"] == sha256_of(cohort.manifest_path) and data["phantom"]
    assert "--epochs 1 --seed 3" in card["training"]["command"] and card["training"]["seed"] == 3
    assert card["training"]["learning_rate"] == pytest.approx(2e-5)
    assert card["intended_use"].startswith("Demo: fine-tuned on synthetic phantoms")
    validation = card["metrics"]["validation"]
    assert 0 < validation["ssim_before"] < 1 and 0 < validation["ssim"] < 1 and validation["slices"] == 24
    trained_on = read_manifest(card_path.parent / "cases.csv", ("patient_id", "t1", "dce")).rows
    assert sorted(r["patient_id"] for r in trained_on) == sorted(r["patient_id"] for r in _rows(cohort, "train",
                                                                                                 "val"))
    assert [f for f, _ in progress] == sorted(f for f, _ in progress) and progress[-1] == (1.0, f"model {NAME} "
                                                                                              "trained")
    assert any(m.startswith("epoch 1 of 1: validation SSIM") for _, m in progress)
    summary = dict(card_summary(card_path))
    assert summary["Fine-tuned from"].endswith("a site's few cases cannot train a Pix2Pix from scratch")
    assert summary["Trained on"].startswith("the T1 / real DCE pairs of the synthetic phantom cohort cohort")
    assert summary["Validation"].startswith(f"SSIM {validation['ssim_before']:.3f} → {validation['ssim']:.3f}")
    assert [(t, demo_) for t, _, demo_ in model_choices(DCE, cohort.out)] == [
        ("dce-pix2pix-demo (demo weights)", True), (f"{NAME} (trained on this cohort)", False)]


def test_evaluation_shows_the_demo_and_the_new_generator_on_the_test_case(cohort, trained, evaluated):
    card_path, report = trained[0], evaluated
    (test,) = _rows(cohort, "test")
    t1 = normalise(sitk.GetArrayFromImage(load_mr_volume(cohort.out / test["t1"], "T1")))
    real = to_unit(normalise(sitk.GetArrayFromImage(load_mr_volume(cohort.out / test["dce"], "DCE"))))
    for key, synthesizer in (("before", DCESynthesizer.load()), ("after", DCESynthesizer.load(None, "auto",
                                                                                               str(card_path)))):
        expected = np.mean([m["ssim"] for m in slice_metrics(to_unit(synthesizer.synthesize_normalised(t1)), real)])
        assert report["summary"][key]["per_slice"]["ssim"]["mean"] == pytest.approx(expected, abs=1e-6)
    before, after = (report["summary"][key]["per_slice"]["ssim"] for key in ("before", "after"))
    table = dict(report["table"])
    assert table["Test cases"] == ("1 volume (24 slices) of 1 patient, held out, never used in training; SYNTHETIC "
                                   "PHANTOMS: demo numbers")
    assert table["Generators (before → after)"] == (f"dce-pix2pix-demo 1.0.0 (demo) → {NAME} 1.0.0 (fine-tuned on "
                                                    "this cohort)")
    assert table["SSIM per slice (mean ± SD)"] == (f"{before['mean']:.3f} ± {before['sd']:.3f} → "
                                                   f"{after['mean']:.3f} ± {after['sd']:.3f}")
    assert table["SSIM change per volume (after − before)"] == f"{after['mean'] - before['mean']:+.3f} (one volume: " \
                                                              "no CI)"
    assert {"PSNR per slice (dB)", "MAE per volume", "MSE per volume", "Pearson r per volume",
            "Enhancing regions faint on the synthetic DCE", "Contrast synthetic / real (mean of the regions)",
            "Validation SSIM (val split, chose the epoch)", "Paper (patients, its own model)"} <= set(table)
    folder = card_path.parent / "evaluation"
    assert report["figure"] == FIGURE and (folder / FIGURE).read_bytes()[:8] == PNG
    assert report["figure_case"] == test["patient_id"] and 1 <= report["figure_slice"] <= 24
    assert json.loads((folder / "evaluation.json").read_text(encoding="utf-8"))["table"] == report["table"]
    metrics = json.loads(card_path.read_text(encoding="utf-8"))["metrics"]["test"]
    assert metrics["after"]["ssim"] == after["mean"] and metrics["before"]["model"] == "dce-pix2pix-demo 1.0.0"
    assert dict(card_summary(card_path))["Held-out test"].startswith(
        f"SSIM {before['mean']:.3f} → {after['mean']:.3f}, MAE ")


def test_the_chosen_generator_synthesizes_and_the_result_names_it(cohort, trained, evaluated):
    card_path = trained[0]
    (test,) = _rows(cohort, "test")
    flow = DCEFlow(create_headless_scene())
    flow.generator_card = card_path  # the Model selector's choice
    flow.load("T1", cohort.out / test["t1"])
    flow.load("DCE", cohort.out / test["dce"])
    rows = dict(flow.run(flow.compute()).rows)
    assert rows["Model"] == f"{NAME} 1.0.0"
    model = get_json_attribute(flow.result.table_node, RESULT)["model"]
    assert model["card"] == str(card_path.resolve())  # Explain this result reads the cohort's card
    explained = card_explanation(model)
    assert explained["title"].startswith(f"Model card: {NAME} 1.0.0 (fine-tuned on the cohort ")  # not "demo weights"
    assert explained["title"].endswith(": synthetic phantoms, not for clinical use)")
    assert any(line.startswith("Intended use: Demo: fine-tuned on synthetic phantoms") for line in explained["text"])
    assert float(rows["SSIM (mean of slices)"]) == pytest.approx(evaluated["per_volume"]["after"][0]["ssim_mean"],
                                                                  abs=1e-3)
    flow.generator_card = None  # the demo again
    assert dict(flow.run(flow.compute()).rows)["Model"].startswith("dce-pix2pix-demo ")


def test_too_few_cases_and_a_cancel_leave_no_model(phantoms, tmp_path):
    few = saved_worklist(phantoms, tmp_path / "few", count=3)  # test, train, train: no val case, 2 train cases
    with pytest.raises(InputError, match=r"Too few cases to fine-tune the DCE generator: it needs at least 3 cases "
                                         r"with a T1 and a real DCE in the train split and 1 in the val split .*this "
                                         r"cohort has 2 and 0\. Save more cases"):
        train_from_worklist(few.out, DCE, "too-few")
    with pytest.raises(InputError, match="This cohort has no model named missing"):
        evaluate_model(few.out, DCE, "missing")
    with pytest.raises(InputError, match="takes 1 to 50 epochs; got 51"):
        train_from_worklist(few.out, DCE, "too-long", epochs=51)
    assert not models_folder(few.out).exists()

    stop = []
    full = saved_worklist(phantoms, tmp_path / "full")
    with pytest.raises(CancelledError, match=CANCELLED):
        train_from_worklist(full.out, DCE, "cancelled", epochs=3, should_stop=lambda: bool(stop),
                            progress=lambda f, m: stop.append(1) if m.startswith("epoch 1 ") else None)
    assert list(models_folder(full.out).iterdir()) == []  # no model, no scratch folder


def test_train_cases_without_a_slice_of_body_are_refused_naming_them(phantoms, tmp_path):
    """Train T1s all air but one bright voxel a slice (no slice kept): refused with the train cases named, before
    the start model is measured, and no model folder nor scratch left (the data loader failed on 0 slices before)."""
    worklist = saved_worklist(phantoms, tmp_path / "cohort")
    train = _rows(worklist, "train")
    for row in train:
        path = worklist.out / row["t1"]
        image = sitk.ReadImage(str(path))
        voxels = sitk.GetArrayFromImage(image)
        air = np.full_like(voxels, voxels.min())
        air[:, 0, 0] = voxels.max()
        body_less = sitk.GetImageFromArray(air)
        body_less.CopyInformation(image)
        sitk.WriteImage(body_less, str(path))
    progress = []
    names = ", ".join(row["patient_id"] for row in train)
    with pytest.raises(InputError, match=rf"No slice of the train cases \({names}\) shows enough body to fine-tune "
                                         r"on \(at least 5% of a T1 slice brighter than air\)"):
        train_from_worklist(worklist.out, DCE, "air", epochs=1, progress=lambda f, m: progress.append(m))
    assert len(train) == 3 and not any(message.startswith("start model") for message in progress)
    assert list(models_folder(worklist.out).iterdir()) == []


def test_mixed_image_sizes_train_the_card_records_the_manifest_read_and_a_cohort_too_large_is_refused(
        phantoms, tmp_path, monkeypatch):
    worklist = saved_worklist(phantoms, tmp_path / "cohort")
    smaller = _rows(worklist, "train")[0]  # a train case of a smaller scanner matrix (a cohort mixes 512² and 448²)
    for column in ("t1", "dce"):
        path = worklist.out / smaller[column]
        image = sitk.ReadImage(str(path))
        sitk.WriteImage(image[:-20, 8:, :], str(path))  # 20 columns and 8 rows fewer
    read = worklist.manifest_path.read_bytes()

    def save_a_case_meanwhile(fraction: float, message: str) -> None:  # the manifest changes after it was read
        if message.startswith("epoch 1 "):
            worklist.manifest_path.write_bytes(read + b"\n")

    card = json.loads(train_from_worklist(worklist.out, DCE, "mixed", epochs=1,
                                          progress=save_a_case_meanwhile).read_text(encoding="utf-8"))
    data = card["training"]["data"]
    assert data["train_cases"] == 3 and data["train_slices"] > 0
    assert data["manifest_sha256"] == hashlib.sha256(read).hexdigest() != sha256_of(worklist.manifest_path)

    monkeypatch.setattr(worklist_training, "MAX_FINE_TUNE_VOXELS", 10**6)  # less than the phantoms' 4 volumes
    with pytest.raises(InputError, match=r"too large to fine-tune on in memory: those read so far hold \d+ million "
                                         r"voxels; fine-tuning holds at most 1 million \(8 bytes each"):
        train_from_worklist(worklist.out, DCE, "large", epochs=1)
    assert sorted(path.name for path in models_folder(worklist.out).iterdir()) == ["mixed"]


def test_a_damaged_card_is_refused_before_anything_is_written(cohort, trained):
    card_path = trained[0]
    folder = card_path.parent.parent / "damaged"
    shutil.copytree(card_path.parent, folder, ignore=shutil.ignore_patterns("evaluation"))
    try:
        card = {**json.loads(card_path.read_text(encoding="utf-8")), "id": "damaged"}
        card["metrics"]["validation"]["ssim_before"] = "abc"
        (folder / card_path.name).unlink()
        (folder / "damaged.json").write_text(json.dumps(card), encoding="utf-8")
        with pytest.raises(ModelError, match=r"damaged \(metrics.validation.ssim_before is 'abc', not a number; "
                                                 r"expected -1 to 1\)"):
            evaluate_model(cohort.out, DCE, "damaged")
        assert not (folder / "evaluation").exists()
        assert json.loads((folder / "damaged.json").read_text(encoding="utf-8")) == card
    finally:
        shutil.rmtree(folder)


# ---- the desktop Model section's session, through the worker jobs ----------------------------------------------

def test_the_desktop_session_trains_evaluates_chooses_and_cancels(cohort, trained):
    worklist = WorklistSession(DCEFlow(create_headless_scene()))
    worklist.open_folder(cohort.folder)
    session = TrainingSession(worklist)
    assert session.card_attribute == "generator_card" and session.name == "site-cohort-1"
    assert session.titles == ["dce-pix2pix-demo (demo weights)", f"{NAME} (trained on this cohort)"]
    messages = []
    outcome = session.flow.run(session.train("desk", progress=lambda f, m: messages.append(m)))
    assert outcome.headline.startswith("Model desk trained on the T1 / real DCE pairs of the synthetic phantom "
                                       "cohort cohort")
    assert any(m.startswith(f"epoch {DEFAULT_EPOCHS} of {DEFAULT_EPOCHS}: validation SSIM ") for m in messages)
    assert session.titles[2] == "desk (trained on this cohort)" and session.chosen == 0

    outcome = session.flow.run(session.evaluate("desk"))
    card = model_card_path(cohort.out, DCE, "desk")
    assert outcome.headline == "Model desk on the cohort's 1 held-out test cases:"
    assert outcome.rows == json.loads((card.parent / "evaluation" / "evaluation.json").read_text())["table"]
    assert outcome.roc == card.parent / "evaluation" / FIGURE and outcome.roc.read_bytes()[:8] == PNG

    session.select(2)
    assert session.flow.generator_card == card and session.card_lines()[0] == "Model: desk 1.0.0"
    assert any(line.startswith("Held-out test: SSIM ") for line in session.card_lines())

    messages.clear()
    step = session.train("cancelled", progress=lambda f, m: messages.append(m))
    while not any(m.startswith("epoch 1 of") for m in messages):
        assert not step.poll(), messages
        time.sleep(0.05)
    assert session.cancel()
    with pytest.raises(CancelledError, match=CANCELLED):
        session.flow.run(step)
    assert sorted(p.name for p in models_folder(cohort.out).iterdir()) == [NAME, "desk"]


def test_the_dce_module_adds_the_model_section_under_its_worklist():
    import ast

    source = (Path(__file__).resolve().parents[1] / "DCESynthesis" / "DCESynthesis.py").read_text(encoding="utf-8")
    widget = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "DCESynthesisWidget")
    methods = {n.name: ast.unparse(n) for n in widget.body if isinstance(n, ast.FunctionDef)}
    setup = methods["setup"]
    assert setup.index("WorklistSection(") < setup.index("self._training = TrainingSection(self.layout, "
                                                         "self._worklist)") < setup.index("initializeParameterNode")
    assert "self._training.update()" in methods["_updateButtonStates"]
    assert "self._training.abandon()" in methods["cleanup"]


# ---- the station's Model section ----------------------------------------------------------------------------------

def test_the_station_selector_chooses_the_generator_and_shows_the_evaluation(cohort, trained, evaluated):
    pytest.importorskip("trame_slicer")
    from trame.app import get_server

    from smartimaging.web.training_panel import TrainingPanel

    card_path, report = trained[0], evaluated
    state = get_server("dce-training-panel-test", client_type="vue3").state
    state.update({"si_module": DCE, "si_wl_open": {DCE: str(cohort.folder)}})
    flow = DCEFlow(create_headless_scene())
    panel = TrainingPanel(SimpleNamespace(state=state, flows={DCE: flow},
                                          worklist_panel=SimpleNamespace(worklist={}.get)))
    assert state.si_tr_modules == [DCE] and state.si_tr_name[DCE] == "site-cohort-1"
    assert [item["title"] for item in state.si_tr_models[DCE]][:2] == [
        "dce-pix2pix-demo (demo weights)", f"{NAME} (trained on this cohort)"]
    panel.on_select(DCE, str(card_path))
    assert flow.generator_card == card_path and state.si_tr_card[DCE] == card_summary(card_path)
    panel._evaluated(DCE, NAME, report, cohort.out)
    assert state.si_tr_table[DCE] == report["table"]
    figure = card_path.parent / "evaluation" / FIGURE
    assert state.si_tr_roc[DCE] == "data:image/png;base64," + base64.b64encode(figure.read_bytes()).decode()
    panel.on_select(DCE, "")
    assert flow.generator_card is None
