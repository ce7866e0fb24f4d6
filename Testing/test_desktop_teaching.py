"""The desktop modules' Teaching section (smartimaging.desktop_teaching), read from the source (desktop Slicer cannot
run here; its logic is the GUI-free TeachingSession, tested on real MRML in test_teaching_session.py and through the
station in test_web_teaching.py): the three teachable modules add it after their Proposal network section, stop it
with the module, and keep Segment, Draw ROI by hand and the compute disabled as the section's `update()` says; the
section uses only Qt / CTK / Slicer APIs found in Slicer 5.12's own code."""

from __future__ import annotations

import ast

import pytest
from test_desktop_proposal import REPO, _method

COMPUTE = {"MammoRadiomics": "classifyButton", "BreastLVI": "predictButton", "BoneScanBSTBI": "computeButton"}


@pytest.mark.parametrize("name", sorted(COMPUTE))
def test_each_teachable_module_adds_the_teaching_section_and_obeys_its_blocks(name):
    tree = ast.parse((REPO / name / f"{name}.py").read_text(encoding="utf-8"))
    setup = ast.unparse(_method(tree, f"{name}Widget", "setup"))
    assert ("self._teaching = TeachingSection(self.layout, self.logic.flow, lambda: self._parameterNode, "
            "self._showSegmentation, self._updateButtonStates)") in setup
    assert setup.index("ProposalSection(") < setup.index("TeachingSection(") < setup.index(
        "self.initializeParameterNode()")
    assert "self._teaching = None" in ast.unparse(_method(tree, f"{name}Widget", "__init__"))
    assert "self._teaching.abandon()" in ast.unparse(_method(tree, f"{name}Widget", "cleanup"))
    states = ast.unparse(_method(tree, f"{name}Widget", "_updateButtonStates"))
    for button, block in (("segmentButton", "segment"), ("drawButton", "draw"), (COMPUTE[name], "compute")):
        assert f"self.ui.{button}.enabled = self.ui.{button}.enabled and (not blocks['{block}'])" in states
    assert states.index("blocks = self._teaching.update()") > max(states.index(f"self.ui.{b}.enabled =")
                                                                 for b in ("segmentButton", COMPUTE[name]))


def test_dce_synthesis_has_no_teaching_section():
    assert "TeachingSection" not in (REPO / "DCESynthesis" / "DCESynthesis.py").read_text(encoding="utf-8")


# The Qt / CTK / Slicer names desktop_teaching.py's section uses, each where Slicer 5.12's own code uses it.
KNOWN_QT = {
    "ctkPathLineEdit": "Modules/Scripted/DICOMPatcher/DICOMPatcher.py", "Dirs": "DICOMPatcher.py",
    "filters": "DICOMPatcher.py", "settingKey": "DICOMPatcher.py",
    "currentPath": "DICOMPatcher.py (set), Applications/SlicerApp/Testing/Python/ScenePerformance.py (read)",
    "temporaryPath": "DICOMPatcher.py (slicer.app.temporaryPath)",
    "QComboBox": "Modules/Scripted/DICOMLib/DICOMSendDialog.py", "QLineEdit": "DICOMSendDialog.py",
    "addItems": "DICOMSendDialog.py", "currentText": "DICOMSendDialog.py", "text": "DICOMSendDialog.py",
    "setCurrentText": "DICOMSendDialog.py",
    "clear": "Modules/Scripted/ExtensionWizard/ExtensionWizardLib/CreateComponentDialog.py",
    "QHBoxLayout": "Modules/Scripted/CropVolumeSequence/CropVolumeSequence.py", "addWidget": "CropVolumeSequence.py",
    "addRow": "CropVolumeSequence.py", "enabled": "CropVolumeSequence.py",
    "collapsed": "Modules/Scripted/Endoscopy/Endoscopy.py (ctk.ctkCollapsibleButton)",
    "QPushButton": "Modules/Scripted/DICOM/DICOM.py", "QProgressBar": "DICOMSendDialog.py",
    "QTableWidget": "Modules/Scripted/DICOMLib/DICOMBrowser.py", "QTableWidgetItem": "DICOMBrowser.py",
    "setColumnCount": "DICOMBrowser.py", "setHorizontalHeaderLabels": "DICOMBrowser.py",
    "clearContents": "DICOMBrowser.py", "setRowCount": "DICOMBrowser.py", "insertRow": "DICOMBrowser.py",
    "setItem": "DICOMBrowser.py", "setFlags": "DICOMBrowser.py", "flags": "DICOMBrowser.py",
    "Qt": "DICOMBrowser.py (qt.Qt.ItemIsEditable)", "ItemIsEditable": "DICOMBrowser.py",
    "QFileDialog": "Base/QTApp/qSlicerMainWindow.cxx", "getExistingDirectory": "Base/QTApp/qSlicerMainWindow.cxx, "
    "Applications/SlicerApp/Testing/Python/JRC2013VisTest.py",
    "connect": "every scripted module (signal by its C++ signature)",
    "tryWithErrorDisplay": "Base/Python/slicer/util.py", "showStatusMessage": "Base/Python/slicer/util.py",
}


def test_the_teaching_section_uses_only_qt_ctk_and_slicer_apis_of_slicers_own_code():
    tree = ast.parse((REPO / "smartimaging" / "desktop_teaching.py").read_text(encoding="utf-8"))
    section = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TeachingSection")
    qt_names = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                and isinstance(node.value, (ast.Name, ast.Attribute))
                and getattr(node.value, "id", getattr(node.value, "attr", None)) in ("qt", "ctk", "Qt", "QFileDialog",
                                                                                     "ctkPathLineEdit")}
    widgets = ("folder", "title", "case", "pixel_size", "hint", "call", "progress_bar", "result", "table", "summary",
               "section")
    widget_names = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Attribute) and node.value.attr in widgets
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    button_names = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Subscript) and ast.unparse(node.value).startswith("self.buttons[")}
    calls = {node.func.attr for node in ast.walk(section) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and not (isinstance(node.func.value, ast.Name)
                                                               and node.func.value.id in ("qt", "ctk", "self"))}
    own = {"open_set", "phantom_set", "open_case", "give_pixel_size", "pixel_size_request", "check", "save_sheet",
           "blocks", "replaced", "sheet_rows", "summary", "lines", "start", "abandon", "progress", "join",
           "items", "mkdtemp"}  # the session's, WidgetSteps', the standard library's
    slicer_names = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Attribute) and node.value.attr in ("util", "app")
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "slicer"}
    assert qt_names <= set(KNOWN_QT), qt_names - set(KNOWN_QT)
    assert widget_names <= set(KNOWN_QT), widget_names - set(KNOWN_QT)
    assert button_names <= set(KNOWN_QT), button_names - set(KNOWN_QT)
    assert calls - own - slicer_names <= set(KNOWN_QT), calls - own - slicer_names - set(KNOWN_QT)
    assert slicer_names <= set(KNOWN_QT), slicer_names - set(KNOWN_QT)
    assert "clicked(bool)" in ast.unparse(section)
