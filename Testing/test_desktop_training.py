"""The desktop modules' Model section (smartimaging.desktop_training) on real MRML (slicer-core): the GUI-free session
over a phantom mammography worklist trains a classifier through the real worker job, evaluates it (the paper's table
and the ROC curve), lists it in the Model selector beside the demo weights with its card, and the module's flow
computes with the chosen model, which the worklist reopens with; a cancelled Train leaves no model. From the source:
MammoRadiomics and BoneScanBSTBI wire the section, and the section uses only Qt / CTK / Slicer APIs found in Slicer
5.12's own code."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import numpy as np
import pytest

from smartimaging.bonescan.flow import BoneScanFlow
from smartimaging.cohort_training import CANCELLED, card_summary, model_card_path, models_folder
from smartimaging.desktop_training import TrainingSession
from smartimaging.desktop_worklist import WorklistSession
from smartimaging.errors import CancelledError, InputError
from smartimaging.lvi.flow import LVIFlow
from smartimaging.mammo.cohort import write_mammo_phantom_cohort
from smartimaging.mammo.features import load_mask
from smartimaging.mammo.flow import MammoFlow
from smartimaging.mammo.images import load_mammogram
from smartimaging.manifest import read_manifest
from smartimaging.mrml import create_headless_scene
from smartimaging.reading import JobError
from smartimaging.segments import MAMMO_SEGMENTS
from smartimaging.worklist import Worklist

REPO = Path(__file__).resolve().parents[1]
MAMMO = "MammoRadiomics"
SEED = 5  # 20 phantoms: 13 patients in the train and val splits (7 benign, 6 malignant), 7 in test (3 and 4)
NAME = "mass-site"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def save_with_key_masks(cohort: Path, proposals: int = 4) -> Worklist:
    """The reader's work: every case saved as done with its answer-key mask as the corrected ROI and its pathology;
    the first `proposals` cases first get an AI proposal that missed the lesion's lower half (Dice below 1)."""
    worklist = Worklist(cohort, MAMMO)
    segment = MAMMO_SEGMENTS["mass"]
    for index, case in enumerate(worklist.cases):
        mammogram = load_mammogram(case.inputs["mammogram"], float(case.given["pixel_mm"]))
        key = load_mask(case.key_mask, mammogram)[None].astype(np.uint8)
        if index < proposals:
            ai = key.copy()
            rows = np.nonzero(key[0].any(axis=1))[0]
            ai[:, rows[len(rows) // 2]:, :] = 0
            worklist.save_proposal(case.case_id, ai * segment.label, mammogram.image, (segment,),
                                   {"id": "mammo-mass-unet-demo"})
        worklist.save(case.case_id, {"kind": "mass", "pathology": case.key_label}, key * segment.label,
                      mammogram.image, (segment,), edit_seconds=2.0)
    return worklist


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Worklist:
    folder = tmp_path_factory.mktemp("desktop-training") / "cohort"
    write_mammo_phantom_cohort(folder, 20, seed=SEED, kind="mass")
    return save_with_key_masks(folder)


@pytest.fixture(scope="module")
def session(cohort) -> TrainingSession:
    """The module's worklist opened on the cohort, and its Model section."""
    worklist = WorklistSession(MammoFlow(create_headless_scene()))
    worklist.open_folder(cohort.folder)
    return TrainingSession(worklist)


@pytest.fixture(scope="module")
def trained(session):
    """Train through the real `cohort-train` worker job, polled as the section's timer polls it."""
    messages = []
    step = session.train(NAME, "preset", progress=lambda fraction, message: messages.append((fraction, message)))
    outcome = session.flow.run(step)
    return outcome, messages


def test_without_an_open_worklist_only_the_demo_model_is_listed_and_train_says_what_to_do():
    training = TrainingSession(WorklistSession(MammoFlow(create_headless_scene())))
    assert training.titles == ["mammo-mass-classifier-demo (demo weights)"] and training.chosen == 0
    assert training.card_lines()[0].startswith("Model: mammo-mass-classifier-demo ")
    with pytest.raises(InputError, match="Open the cohort's worklist first"):
        training.train(NAME)


def test_train_through_the_worker_lists_the_model_with_its_card(cohort, session, trained):
    outcome, messages = trained
    card = models_folder(cohort.out) / NAME / f"{NAME}.json"
    assert card.is_file()
    assert outcome.headline.startswith(f"Model {NAME} trained on the reader-corrected mass ROIs of the synthetic "
                                       "phantom cohort cohort")
    assert "7 benign, 6 malignant" in outcome.headline and outcome.rows == [] and outcome.roc is None
    fractions = [fraction for fraction, _ in messages]
    assert messages[0] == (0.0, "starting") and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(message == "radiomics features of 13 of 13 cases" for _, message in messages)
    assert session.titles == ["mammo-mass-classifier-demo (demo weights)", f"{NAME} (trained on this cohort)"]
    assert session.flow.classifier_card is None and session.chosen == 0  # training does not choose it
    trained_card = json.loads(card.read_text(encoding="utf-8"))
    assert trained_card["training"]["data"]["cases_per_class"] == {"benign": 7, "malignant": 6}
    assert "--method preset" in trained_card["training"]["command"]


def test_evaluate_shows_the_papers_table_and_the_roc_curve(cohort, session, trained):
    outcome = session.flow.run(session.evaluate(NAME))
    card = model_card_path(cohort.out, MAMMO, NAME)
    report = json.loads((card.parent / "evaluation" / "evaluation.json").read_text(encoding="utf-8"))
    assert outcome.headline == f"Model {NAME} on the cohort's 7 held-out test cases:"
    assert outcome.rows == report["table"]
    table = dict(outcome.rows)
    assert table["Test cases"].startswith("3 benign and 4 malignant cases")
    auc = report["auc"]
    assert table["AUC (95 % CI, DeLong)"] == f"{auc['auc']:.3f} ({auc['ci_low']:.3f}–{auc['ci_high']:.3f})"
    sensitivity = report["metrics"]["sensitivity"]
    assert table["Sensitivity"].endswith(f"({sensitivity['numerator']}/4)")
    assert table["Specificity"].endswith("/3)") and table["Accuracy"].endswith("/7)")
    honest = json.loads(card.read_text(encoding="utf-8"))["metrics"]["honest_auc"]
    assert table["Cross-validated AUC (training, paper pipeline)"].startswith(f"{honest['auc']:.3f} ± ")
    dice = [float(row["dice_ai_vs_corrected"]) for row in read_manifest(cohort.manifest_path).rows
            if row["dice_ai_vs_corrected"]]
    assert len(dice) == 4 and max(dice) < 1
    assert table["Dice AI vs corrected"].startswith(f"mean {np.mean(dice):.3f}, median {np.median(dice):.3f}")
    assert outcome.roc == card.parent / "evaluation" / "roc.png"
    assert outcome.roc.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(JobError, match="no model named missing"):
        session.flow.run(session.evaluate("missing"))


def test_the_chosen_model_is_the_flows_and_its_result_names_it(cohort, session, trained):
    card = model_card_path(cohort.out, MAMMO, NAME)
    session.select(1)
    assert session.flow.classifier_card == card and session.chosen == 1
    assert session.card_lines() == [f"{what}: {value}" for what, value in card_summary(card)]
    assert session.card_lines()[0] == f"Model: {NAME} 1.0.0"
    flow = session.flow
    test_case = next(row["case_id"] for row in read_manifest(cohort.manifest_path).rows if row["split"] == "test")
    session.worklist.open(test_case)  # the saved case: its corrected ROI restored in the scene
    assert flow.segmentation is not None
    rows = dict(flow.run(flow.compute()).rows)
    assert rows["Classifier"] == f"{NAME} 1.0.0"
    cutoff = json.loads(card.read_text(encoding="utf-8"))["cutoff"]["value"]
    assert rows["Cutoff (Youden, training)"] == f"{cutoff:.3f}"

    assert not session.update("mass")  # nothing changed: the list and the choice stay
    assert session.update("calcification")  # another lesion kind: its demo classifier only, chosen
    assert session.titles == ["mammo-calcification-classifier-demo (demo weights)"]
    assert flow.classifier_card is None
    session.update("mass")
    assert session.chosen == 1 and flow.classifier_card == card  # the model the reader chose for masses here
    reopened = WorklistSession(MammoFlow(create_headless_scene()))  # the module restarted, the worklist reopened
    reopened.open_folder(cohort.folder)
    assert TrainingSession(reopened).chosen == 1 and reopened.flow.classifier_card == card
    session.select(0)  # the demo again, remembered too
    assert TrainingSession(reopened).chosen == 0 and json.loads((cohort.out / "worklist.json").read_text(
        encoding="utf-8"))["models"] == {}
    flow.set_kind("mass")
    assert dict(flow.run(flow.compute()).rows)["Classifier"].startswith("mammo-mass-classifier-demo ")
    with pytest.raises(InputError, match="No model number 5"):
        session.select(5)
    state = cohort.out / "worklist.json"
    kept = state.read_bytes()
    state.unlink()
    state.mkdir()  # the folder changed since the worklist opened: the model is chosen, with a note
    try:
        session.select(1)
        assert flow.classifier_card == card and session.card_lines()[-1] == (
            f"Note: chosen for now, not remembered for the next opening: Is a directory ({cohort.out})")
    finally:
        state.rmdir()
        state.write_bytes(kept)
    session.select(0)


def test_a_cancelled_train_leaves_no_model(cohort, session, trained):
    messages = []
    step = session.train("cancelled", progress=lambda _fraction, message: messages.append(message))
    with pytest.raises(InputError, match="Wait until the running Train or Evaluate is over"):
        session.evaluate(NAME)
    while not any(message.startswith("radiomics features of 2 ") for message in messages):
        assert not step.poll(), messages
        time.sleep(0.05)
    assert session.cancel()
    with pytest.raises(CancelledError, match=CANCELLED):
        session.flow.run(step)
    assert sorted(path.name for path in models_folder(cohort.out).iterdir()) == [NAME]  # no scratch left either
    assert session.titles[1:] == [f"{NAME} (trained on this cohort)"]
    assert not session.cancel()  # nothing runs now


def test_bad_names_and_methods_are_refused_before_a_worker_starts(session, trained):
    with pytest.raises(InputError, match="must be a plain name"):
        session.train("../outside")
    with pytest.raises(InputError, match="Training method 'best'"):
        session.train("another", "best")
    assert session.step.over


def test_the_bone_scan_session_lists_its_demo_classifier(tmp_path):
    training = TrainingSession(WorklistSession(BoneScanFlow(create_headless_scene())))
    assert training.titles == ["bonescan-resnet34-demo (demo weights)"] and training.name == "site-cohort-1"


# ---- BreastLVI ----------------------------------------------------------------------------------------------------

LVI = "BreastLVI"


@pytest.fixture(scope="module")
def lvi_session(tmp_path_factory) -> TrainingSession:
    """A 20-case LVI phantom worklist saved with its answer-key VOIs (test_lvi_worklist_training), open in the LVI
    flow, and its Model section."""
    from test_lvi_worklist_training import SEED as LVI_SEED
    from test_lvi_worklist_training import save_lvi_cases

    from smartimaging.lvi.cohort import write_lvi_phantom_cohort

    folder = tmp_path_factory.mktemp("desktop-lvi") / "cohort"
    write_lvi_phantom_cohort(folder, 20, seed=LVI_SEED)
    saved = Worklist(folder, LVI)
    save_lvi_cases(saved, saved.cases)
    worklist = WorklistSession(LVIFlow(create_headless_scene()))
    worklist.open_folder(folder)
    return TrainingSession(worklist)


def test_lvi_train_runs_the_chosen_network_in_the_worker_and_a_cancel_leaves_no_model(lvi_session):
    assert lvi_session.titles == ["lvi-dce-resnet10-3d-demo + lvi-t2-resnet10-3d-demo (demo weights)"]
    assert lvi_session.card_lines()[0].startswith("Model: lvi-dce-resnet10-3d-demo ")
    messages = []
    step = lvi_session.train("lvi-cancelled", progress=lambda _fraction, message: messages.append(message),
                             network="vanilla2d:T2")
    while not any(message.startswith("epoch 1 of 30: validation AUC") for message in messages):
        assert not step.poll(), messages
        time.sleep(0.05)
    assert "reading the cases' FS-T2WI boxes around the corrected VOIs" in messages  # the chosen sequence
    assert lvi_session.cancel()
    with pytest.raises(CancelledError, match=CANCELLED):
        lvi_session.flow.run(step)
    out = lvi_session.out_folder
    assert not models_folder(out).exists() or not any(models_folder(out).iterdir())
    with pytest.raises(InputError, match="Network 'resnet50'"):
        lvi_session.train("lvi-other", network="resnet50:DCE")


def test_lvi_model_evaluated_in_the_worker_chosen_and_computed_with(lvi_session):
    from smartimaging.cohort_training import train_from_worklist

    out = lvi_session.out_folder
    card = train_from_worklist(out, LVI, "lvi-site", epochs=1, network="vanilla2d", sequence="T2")
    lvi_session.refresh()
    assert lvi_session.titles[1:] == ["lvi-site (trained on this cohort)"]
    outcome = lvi_session.flow.run(lvi_session.evaluate("lvi-site"))
    report = json.loads((card.parent / "evaluation" / "evaluation.json").read_text(encoding="utf-8"))
    assert outcome.headline == "Model lvi-site on the cohort's 5 held-out test cases:"
    assert outcome.rows == report["table"] and outcome.roc == card.parent / "evaluation" / "roc.png"
    assert dict(outcome.rows)["Network"] == "VanillaCNN 2D on the FS-T2WI (lvi-site)"
    lvi_session.select(1)
    assert lvi_session.flow.classifier_card == card
    assert lvi_session.card_lines() == [f"{what}: {value}" for what, value in card_summary(card)]
    flow = lvi_session.flow
    manifest = lvi_session.worklist.reading.worklist.manifest_path
    lvi_session.worklist.open(next(row["case_id"] for row in read_manifest(manifest, ("patient_id",)).rows
                                   if row["split"] == "test"))
    result = flow.run(flow.compute())
    assert result.rows[0][:2] == ["T2", "vanilla2d"] and "fused" not in [row[0] for row in result.rows]  # alone
    assert result.rows[0][5] == "lvi-site 1.0.0" and "VanillaCNN 2D on the FS-T2WI, model lvi-site" in result.headline


# ---- the modules' source ------------------------------------------------------------------------------------------

WIRED = {"MammoRadiomics": "self._training.update(p.lesionKind if p else self.logic.flow.kind)",
         "BoneScanBSTBI": "self._training.update()", "BreastLVI": "self._training.update()"}


def _method(tree, class_name, method):
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method)


@pytest.mark.parametrize("name", sorted(WIRED))
def test_each_module_adds_the_model_section_under_its_worklist(name):
    tree = ast.parse((REPO / name / f"{name}.py").read_text(encoding="utf-8"))
    setup = ast.unparse(_method(tree, f"{name}Widget", "setup"))
    assert "self._training = TrainingSection(self.layout, self._worklist)" in setup
    assert setup.index("WorklistSection(") < setup.index("TrainingSection(") < setup.index(
        "self.initializeParameterNode()")
    assert WIRED[name] in ast.unparse(_method(tree, f"{name}Widget", "_updateButtonStates"))
    assert "self._training.abandon()" in ast.unparse(_method(tree, f"{name}Widget", "cleanup"))


# The Qt / CTK / Slicer names desktop_training.py's section uses, each where Slicer 5.12's own code uses it.
KNOWN_QT = {
    "QComboBox": "Modules/Scripted/ExtensionWizard/ExtensionWizardLib/CreateComponentDialog.py",
    "clear": "CreateComponentDialog.py", "addItems": "CreateComponentDialog.py",
    "currentIndex": "CreateComponentDialog.py", "blockSignals": "Modules/Scripted/DICOM/DICOM.py",
    "QLineEdit": "Modules/Scripted/DICOMLib/DICOMSendDialog.py", "text": "DICOMSendDialog.py",
    "QHBoxLayout": "Modules/Scripted/CropVolumeSequence/CropVolumeSequence.py", "addWidget": "CropVolumeSequence.py",
    "addRow": "CropVolumeSequence.py", "enabled": "CropVolumeSequence.py",
    "collapsed": "Modules/Scripted/Endoscopy/Endoscopy.py (ctk.ctkCollapsibleButton)",
    "QPushButton": "Modules/Scripted/DICOM/DICOM.py", "QProgressBar": "DICOMSendDialog.py",
    "QTableWidget": "Modules/Scripted/DICOMLib/DICOMBrowser.py", "QTableWidgetItem": "DICOMBrowser.py",
    "setColumnCount": "DICOMBrowser.py", "setHorizontalHeaderLabels": "DICOMBrowser.py",
    "horizontalHeader": "DICOMBrowser.py", "setSectionResizeMode": "DICOMBrowser.py",
    "QHeaderView": "DICOMBrowser.py (ResizeToContents, Stretch)", "clearContents": "DICOMBrowser.py",
    "setRowCount": "DICOMBrowser.py", "insertRow": "DICOMBrowser.py", "setItem": "DICOMBrowser.py",
    "setFlags": "DICOMBrowser.py", "flags": "DICOMBrowser.py", "Qt": "DICOMBrowser.py, DataProbe.py",
    "QLabel": "Docs/developer_guide/script_repository/plots.md", "QPixmap": "plots.md, DataProbe.py",
    "setPixmap": "plots.md", "scaled": "Modules/Scripted/DataProbe/DataProbe.py",
    "QSize": "Modules/Scripted/ExtensionWizard/ExtensionWizard.py",
    "connect": "every scripted module (signal by its C++ signature)",
    "tryWithErrorDisplay": "Base/Python/slicer/util.py",
}
QT_VALUES = {"ItemIsEditable": "DICOMBrowser.py", "ResizeToContents": "DICOMBrowser.py", "Stretch": "DICOMBrowser.py",
             "KeepAspectRatio": "DataProbe.py", "SmoothTransformation": "Base/QTGUI/qSlicerExtensionsLocalWidget.cxx"}


def test_the_model_section_uses_only_qt_ctk_and_slicer_apis_of_slicers_own_code():
    tree = ast.parse((REPO / "smartimaging" / "desktop_training.py").read_text(encoding="utf-8"))
    section = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TrainingSection")
    qt_names = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name) and node.value.id in ("qt", "ctk")}
    qt_values = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                 and isinstance(node.value, ast.Attribute) and node.value.attr in ("Qt", "QHeaderView")}
    widgets = ("model", "card", "name", "method", "network", "buttons", "progress_bar", "message", "table", "roc",
               "section")
    widget_names = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Attribute) and node.value.attr in widgets
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    calls = {node.func.attr for node in ast.walk(section) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and not (isinstance(node.func.value, ast.Name)
                                                               and node.func.value.id in ("qt", "ctk", "self"))}
    own = {"train", "evaluate", "select", "card_lines", "update", "start", "cancel", "abandon", "progress", "join",
           "values", "strip", "util", "items"}
    slicer_util = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                   and isinstance(node.value, ast.Attribute) and node.value.attr == "util"}
    assert qt_names <= set(KNOWN_QT), qt_names - set(KNOWN_QT)
    assert qt_values <= set(QT_VALUES), qt_values - set(QT_VALUES)
    session_attributes = {"session", "steps", "titles", "chosen", "module", "out_folder", "name", "busy"}
    assert widget_names - session_attributes <= set(KNOWN_QT), widget_names - session_attributes - set(KNOWN_QT)
    assert calls - own - slicer_util <= set(KNOWN_QT), calls - own - slicer_util - set(KNOWN_QT)
    assert slicer_util <= set(KNOWN_QT), slicer_util - set(KNOWN_QT)
    assert "currentIndexChanged(int)" in ast.unparse(section) and "clicked(bool)" in ast.unparse(section)
