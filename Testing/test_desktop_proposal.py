"""The desktop modules' Proposal network section (smartimaging.desktop_proposal) on real MRML (slicer-core): the
GUI-free session over an 8-case phantom mammography worklist lists the demo U-Net, fine-tunes it for one epoch
through the real `finetune-segmenter` worker job, shows Dice before → after on the held-out cases as the new card
records them (labelled phantom from the cohort's marker), chooses the new network, and the module's flow segments with
it (the kept proposal's record names it); one whose Dice fell is not chosen; a cancelled fine-tuning leaves no model
folder. From the source: MammoRadiomics, BreastLVI and BoneScanBSTBI wire the
section, and the section uses only Qt / CTK / Slicer APIs found in Slicer 5.12's own code."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import numpy as np
import pytest

from smartimaging.bonescan.flow import BoneScanFlow
from smartimaging.dce.flow import DCEFlow
from smartimaging.desktop_proposal import CANCELLED, MAX_EPOCHS, ProposalSession
from smartimaging.desktop_worklist import WorklistSession
from smartimaging.errors import CancelledError, InputError
from smartimaging.lvi.flow import LVIFlow
from smartimaging.mammo.cohort import write_mammo_phantom_cohort
from smartimaging.mammo.flow import MammoFlow
from smartimaging.models.registry import models_dir, sha256_of
from smartimaging.mrml import create_headless_scene, ijk_to_ras_matrix
from smartimaging.proposal_networks import proposal_card_path, proposal_folder, proposal_summary

REPO = Path(__file__).resolve().parents[1]
NAME = "mass-unet-ft-1"
DEMO = "mammo-mass-unet-demo"
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> ProposalSession:
    """An 8-case phantom mammography worklist, every case saved as done (3 train, 2 val, 3 test), opened in the
    module's worklist, and its Proposal network section."""
    from test_cohort_training import save_cases

    cohort = tmp_path_factory.mktemp("desktop-proposal") / "cohort"
    write_mammo_phantom_cohort(cohort, 8, seed=5, kind="mass")
    save_cases(cohort)
    worklist = WorklistSession(MammoFlow(create_headless_scene(), "cpu"))
    worklist.open_folder(cohort)
    return ProposalSession(worklist)


@pytest.fixture(scope="module")
def finetuned(session):
    """One epoch from the demo U-Net through the real worker job, polled as the section's timer polls it."""
    assert session.titles == [f"{DEMO} (demo weights)"] and session.name == NAME
    assert session.phantom  # the phantom cohort's marker: the reader cannot un-phantom it
    messages = []
    step = session.finetune(session.name, 1, progress=lambda fraction, message: messages.append((fraction, message)))
    return session.flow.run(step), messages


def test_without_an_open_worklist_the_demo_unet_is_listed_and_fine_tune_says_what_to_do():
    proposal = ProposalSession(WorklistSession(MammoFlow(create_headless_scene())))
    assert proposal.titles == [f"{DEMO} (demo weights)"] and proposal.chosen == 0 and proposal.name == NAME
    assert proposal.card_lines()[0].startswith(f"Model: {DEMO} ")
    assert any(line.startswith("Dice: 0.944 on 40 fresh") for line in proposal.card_lines())
    with pytest.raises(InputError, match="Open the cohort's worklist first"):
        proposal.finetune(NAME)
    with pytest.raises(InputError, match="DCESynthesis has no proposal network"):
        ProposalSession(WorklistSession(DCEFlow(create_headless_scene())))


def test_the_lvi_and_bone_scan_sessions_list_their_demo_unets():
    lvi = ProposalSession(WorklistSession(LVIFlow(create_headless_scene())))
    bonescan = ProposalSession(WorklistSession(BoneScanFlow(create_headless_scene())))
    assert lvi.titles == ["lvi-lesion-unet-demo (demo weights)"] and lvi.name == "lvi-unet-ft-1"
    assert bonescan.titles == ["bonescan-unet-demo (demo weights)"] and bonescan.name == "bonescan-unet-ft-1"


def test_fine_tune_shows_dice_before_and_after_and_chooses_the_new_network(session, finetuned):
    lines, messages = finetuned
    card = proposal_card_path(session.out_folder, NAME)
    metrics = json.loads(card.read_text(encoding="utf-8"))["metrics"]
    assert metrics["dice_after"] >= metrics["dice_before"]  # else it is not chosen (next test)
    assert lines == [f"Fine-tuned: {NAME} (chosen for Segment)",
                     f"Dice before → after: {metrics['dice_before']:.3f} → {metrics['dice_after']:.3f} "
                     "(PHANTOM numbers)",
                     "Measured on: 3 held-out mammograms ('test' split)"]
    assert metrics["phantom"] and metrics["fine_tuned_from"]["id"] == DEMO
    assert metrics["fine_tuned_from"]["sha256"] == sha256_of(models_dir() / f"{DEMO}.safetensors")
    fractions = [fraction for fraction, _ in messages]
    assert messages[0] == (0.0, "starting") and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert session.titles == [f"{DEMO} (demo weights)", f"{NAME} (fine-tuned on this cohort)"]
    assert session.chosen == 1 and session.flow.segmenter_card == card
    worklist = session.worklist.reading.worklist  # remembered as a reader's choice: the worklist reopens with it
    assert worklist.chosen_card("segmenter_card", "mass", session.choices) == card
    assert session.card_lines() == [f"{what}: {value}" for what, value in proposal_summary(card)]
    assert (f"Dice before → after: {metrics['dice_before']:.3f} → {metrics['dice_after']:.3f} on 3 held-out "
            "mammograms ('test' split)") in session.card_lines()
    assert session.name == "mass-unet-ft-2"  # the next free name


def test_a_fine_tuned_network_whose_dice_fell_is_not_chosen(session, finetuned, tmp_path):
    """The job's result says Dice fell on the held-out cases: the current network stays chosen, and the lines say
    so (the step's generator given the worker's result event)."""
    chosen_card = session.flow.segmenter_card
    step = session._finetune(tmp_path / "worse", [])
    assert next(step).name == "finetune-segmenter"
    with pytest.raises(StopIteration) as over:
        step.send({"card": str(tmp_path / "worse" / "worse.json"), "dice_before": 0.968, "dice_after": 0.966, "n": 5,
                   "split": "test", "phantom": True})
    assert over.value.value == [
        "Fine-tuned: worse", "Dice before → after: 0.968 → 0.966 (PHANTOM numbers)",
        "Measured on: 5 held-out mammograms ('test' split)",
        "Not chosen: Dice fell 0.968 → 0.966 on the held-out cases: the current network stays chosen; choose it "
        "yourself if you want it"]
    assert session.flow.segmenter_card == chosen_card and session.chosen == 1


def test_segment_uses_the_chosen_network_and_the_kept_proposal_names_it(session, finetuned):
    worklist, flow = session.worklist, session.flow
    worklist.open(worklist.reading.worklist.cases[0].case_id)
    z, y, x = np.nonzero(worklist.reading.answer_key())
    ras = ijk_to_ras_matrix(flow.primary) @ [x.mean(), y.mean(), z.mean(), 1.0]
    flow.ensure_point_node().AddControlPoint(*ras[:3])
    flow.run(flow.segment())
    card = proposal_card_path(session.out_folder, NAME)
    assert worklist.keep_proposal()["model"] == {"id": NAME, "version": "1.0.0",
                                                 "sha256": sha256_of(card.with_suffix(".safetensors"))}
    session.select(0)  # the demo U-Net again
    assert flow.segmenter_card is None
    flow.run(flow.segment())
    assert worklist.keep_proposal()["model"]["id"] == DEMO
    session.select(1)


def test_the_list_follows_the_lesion_kind(session, finetuned):
    assert not session.update("mass")  # nothing changed: the list and the choice stay
    assert session.chosen == 1
    assert session.update("calcification")  # another kind: its demo U-Net only, chosen
    assert session.titles == ["mammo-calcification-unet-demo (demo weights)"]
    assert session.flow.segmenter_card is None and session.name == "calcification-unet-ft-1"
    session.update("mass")  # the network the reader chose for masses in this worklist
    assert session.chosen == 1 and session.name == "mass-unet-ft-2"
    session.select(1)
    with pytest.raises(InputError, match="No network number 5"):
        session.select(5)


def test_a_cancelled_fine_tune_leaves_no_model_folder(session, finetuned):
    name = session.name
    messages = []
    step = session.finetune(name, MAX_EPOCHS, progress=lambda _fraction, message: messages.append(message))
    with pytest.raises(InputError, match="Wait until the running fine-tuning is over"):
        session.finetune("another")
    deadline = time.monotonic() + 60
    while not any(message.startswith(f"fine-tuning for {MAX_EPOCHS} epochs") for message in messages):
        assert not step.poll(), messages
        assert time.monotonic() < deadline, messages
        time.sleep(0.05)
    partial = proposal_card_path(session.out_folder, name).with_suffix(".safetensors")
    partial.parent.mkdir()
    partial.write_bytes(b"\0" * 64)  # as a job stopped while it saves its weights leaves them
    assert session.cancel()
    with pytest.raises(CancelledError, match=CANCELLED):
        session.flow.run(step)
    assert sorted(path.name for path in proposal_folder(session.out_folder).iterdir()) == [NAME]
    assert session.titles[1:] == [f"{NAME} (fine-tuned on this cohort)"] and session.chosen == 1
    assert not session.cancel()  # nothing runs now


def test_an_abandoned_fine_tune_stops_its_worker_and_leaves_no_model_folder(session, finetuned):
    """The module goes away (its section's `abandon`) while the job runs."""
    step = session.finetune(session.name, MAX_EPOCHS)
    assert not step.poll()
    worker = step.worker
    proposal_card_path(session.out_folder, session.name).parent.mkdir()
    step.abandon()
    assert worker.process.poll() is not None and step.over
    assert sorted(path.name for path in proposal_folder(session.out_folder).iterdir()) == [NAME]


def test_bad_names_epochs_and_too_few_cases_are_refused_before_a_worker_starts(session, finetuned, tmp_path):
    with pytest.raises(InputError, match=f"already has a proposal network named {NAME}"):
        session.finetune(NAME)
    with pytest.raises(InputError, match="must be a plain name"):
        session.finetune("../outside")
    with pytest.raises(InputError, match=f"Epochs 0: give a whole number from 1 to {MAX_EPOCHS}"):
        session.finetune("another", 0)
    session.update("calcification")
    with pytest.raises(InputError, match="has 0 train, 0 val and 0 test calcification cases done"):
        session.finetune("calcification-unet-ft-1")
    session.update("mass")
    assert session.step.over and not (proposal_folder(session.out_folder) / "another").exists()


# ---- the modules' source ------------------------------------------------------------------------------------------

WIRED = {"MammoRadiomics": "self._proposal.update(p.lesionKind if p else self.logic.flow.kind)",
         "BreastLVI": "self._proposal.update()", "BoneScanBSTBI": "self._proposal.update()"}


def _method(tree, class_name, method):
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method)


@pytest.mark.parametrize("name", sorted(WIRED))
def test_each_module_adds_the_proposal_section_under_its_worklist(name):
    tree = ast.parse((REPO / name / f"{name}.py").read_text(encoding="utf-8"))
    setup = ast.unparse(_method(tree, f"{name}Widget", "setup"))
    assert "self._proposal = ProposalSection(self.layout, self._worklist)" in setup
    above = "TrainingSection(" if "TrainingSection(" in setup else "WorklistSection("
    assert setup.index("WorklistSection(") <= setup.index(above) < setup.index("ProposalSection(") < setup.index(
        "self.initializeParameterNode()")
    assert "self._proposal = None" in ast.unparse(_method(tree, f"{name}Widget", "__init__"))
    assert WIRED[name] in ast.unparse(_method(tree, f"{name}Widget", "_updateButtonStates"))
    assert "self._proposal.abandon()" in ast.unparse(_method(tree, f"{name}Widget", "cleanup"))


# The Qt / CTK / Slicer names desktop_proposal.py's section uses, each where Slicer 5.12's own code uses it.
KNOWN_QT = {
    "QComboBox": "Modules/Scripted/ExtensionWizard/ExtensionWizardLib/CreateComponentDialog.py",
    "clear": "CreateComponentDialog.py", "addItems": "CreateComponentDialog.py",
    "currentIndex": "CreateComponentDialog.py", "blockSignals": "Modules/Scripted/DICOM/DICOM.py",
    "QLineEdit": "Modules/Scripted/DICOMLib/DICOMSendDialog.py", "text": "DICOMSendDialog.py",
    "QSpinBox": "Base/Python/slicer/parameterNodeWrapper/guiCreation.py",
    "setRange": "Base/Python/slicer/parameterNodeWrapper/guiConnectors.py", "value": "guiConnectors.py",
    "QCheckBox": "Modules/Scripted/DICOMPatcher/DICOMPatcher.py", "checked": "DICOMPatcher.py",
    "QHBoxLayout": "Modules/Scripted/CropVolumeSequence/CropVolumeSequence.py", "addWidget": "CropVolumeSequence.py",
    "addRow": "CropVolumeSequence.py", "enabled": "CropVolumeSequence.py",
    "collapsed": "Modules/Scripted/Endoscopy/Endoscopy.py (ctk.ctkCollapsibleButton)",
    "QPushButton": "Modules/Scripted/DICOM/DICOM.py", "QProgressBar": "DICOMSendDialog.py",
    "connect": "every scripted module (signal by its C++ signature)",
    "tryWithErrorDisplay": "Base/Python/slicer/util.py",
}


def test_the_proposal_section_uses_only_qt_ctk_and_slicer_apis_of_slicers_own_code():
    tree = ast.parse((REPO / "smartimaging" / "desktop_proposal.py").read_text(encoding="utf-8"))
    section = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ProposalSection")
    qt_names = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name) and node.value.id in ("qt", "ctk")}
    widgets = ("network", "card", "name", "epochs", "phantom", "buttons", "progress_bar", "message", "section")
    widget_names = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Attribute) and node.value.attr in widgets
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    calls = {node.func.attr for node in ast.walk(section) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and not (isinstance(node.func.value, ast.Name)
                                                               and node.func.value.id in ("qt", "ctk", "self"))}
    own = {"finetune", "select", "card_lines", "update", "start", "cancel", "abandon", "progress", "join", "strip",
           "util"}
    slicer_util = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                   and isinstance(node.value, ast.Attribute) and node.value.attr == "util"}
    assert qt_names <= set(KNOWN_QT), qt_names - set(KNOWN_QT)
    session_attributes = {"session", "steps", "titles", "chosen", "out_folder", "name", "busy"}
    assert widget_names - session_attributes <= set(KNOWN_QT), widget_names - session_attributes - set(KNOWN_QT)
    assert calls - own - slicer_util <= set(KNOWN_QT), calls - own - slicer_util - set(KNOWN_QT)
    assert slicer_util <= set(KNOWN_QT), slicer_util - set(KNOWN_QT)
    assert "currentIndexChanged(int)" in ast.unparse(section) and "clicked(bool)" in ast.unparse(section)
