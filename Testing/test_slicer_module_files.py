"""The Slicer module files follow the scripted-module template and agree with each other (no Slicer app here:
checked from the source and the .ui XML), and the terminology file matches the segment codes."""

import ast
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from smartimaging.segments import BONESCAN_SEGMENTS, MAMMO_SEGMENTS, TERMINOLOGY_CONTEXT, TERMINOLOGY_FILE

REPO = Path(__file__).resolve().parents[1]
MODULES = ["BoneScanBSTBI", "MammoRadiomics", "DCESynthesis", "BreastLVI"]


def _module(name):
    source = (REPO / name / f"{name}.py").read_text(encoding="utf-8")
    return source, ast.parse(source)


@pytest.mark.parametrize("name", MODULES)
def test_template_classes_exist(name):
    _, tree = _module(name)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for suffix, base in [("", "ScriptedLoadableModule"), ("Widget", "ScriptedLoadableModuleWidget"),
                         ("Logic", "ScriptedLoadableModuleLogic"), ("Test", "ScriptedLoadableModuleTest"),
                         ("ParameterNode", None)]:
        assert name + suffix in classes, f"{name}{suffix} missing"
        if base:
            assert base in [b.id for b in classes[name + suffix].bases if isinstance(b, ast.Name)]
    decorators = [d.id for d in classes[name + "ParameterNode"].decorator_list if isinstance(d, ast.Name)]
    assert decorators == ["parameterNodeWrapper"]


@pytest.mark.parametrize("name", MODULES)
def test_ui_parameter_names_and_widget_references_match(name):
    source, tree = _module(name)
    ui = ET.parse(REPO / name / "Resources" / "UI" / f"{name}.ui").getroot()
    widgets = {w.get("name") for w in ui.iter("widget")}
    bound = {p.find("string").text for p in ui.iter("property") if p.get("name") == "SlicerParameterName"}
    parameter_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name + "ParameterNode")
    fields = {n.target.id for n in parameter_class.body if isinstance(n, ast.AnnAssign)}
    assert bound <= fields, f"unbound parameter names in .ui: {bound - fields}"
    referenced = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                  and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"}
    assert referenced <= widgets, f"widgets used in code but absent from the .ui: {referenced - widgets}"
    assert (REPO / name / "Resources" / "Icons" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name", MODULES)
def test_apply_actions_use_try_with_error_display(name):
    _, tree = _module(name)
    widget = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name + "Widget")
    for method in widget.body:
        if isinstance(method, ast.FunctionDef) and method.name in ("onSegmentButton", "onComputeButton",
                                                                  "onCompareButton", "onClassifyButton",
                                                                  "onBatchButton", "onSynthesizeButton",
                                                                  "onShowButton", "onPredictButton",
                                                                  "onDrawButton"):
            assert "tryWithErrorDisplay" in ast.unparse(method), method.name


# qMRMLSegmentEditorWidget methods the modules call, as declared in Slicer's
# Modules/Loadable/Segmentations/Widgets/qMRMLSegmentEditorWidget.h (setActiveEffectByName and setCurrentSegmentID
# since Slicer 4.x; setSourceVolumeNode since 5.2, which renamed setMasterVolumeNode; the undo and shortcut methods
# and effectByName as in Slicer 5.12's header).
SEGMENT_EDITOR_METHODS = {"setMRMLSegmentEditorNode", "setSegmentationNode", "setSourceVolumeNode",
                          "setCurrentSegmentID", "setActiveEffectByName", "setMaximumNumberOfUndoStates",
                          "effectByName", "installKeyboardShortcuts", "uninstallKeyboardShortcuts"}


@pytest.mark.parametrize("name", ["BoneScanBSTBI", "MammoRadiomics", "BreastLVI"])
def test_the_roi_can_always_be_drawn_by_hand(name):
    """A "Draw ROI by hand" button next to Segment, wrapped in tryWithErrorDisplay, whose Logic has the module's
    flow create the empty coded segments (Flow.draw_by_hand, tested on a real scene in test_reading_flows), and
    Paint opened on them through smartimaging.desktop.start_painting."""
    source, tree = _module(name)
    ui = ET.parse(REPO / name / "Resources" / "UI" / f"{name}.ui").getroot()
    button = next(w for w in ui.iter("widget") if w.get("name") == "drawButton")
    texts = {p.get("name"): p.find("string").text for p in button.iter("property")}
    assert texts["text"] == "Draw ROI by hand" and "Paint" in texts["toolTip"]
    assert 'self.ui.drawButton.connect("clicked(bool)", self.onDrawButton)' in source
    logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name + "Logic")
    draw = next(m for m in logic.body if isinstance(m, ast.FunctionDef) and m.name == "drawByHand")
    assert "draw_by_hand" in _calls(draw)
    widget = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name + "Widget")
    on_draw = next(m for m in widget.body if isinstance(m, ast.FunctionDef) and m.name == "onDrawButton")
    assert "start_painting(self.ui.segmentEditorWidget" in ast.unparse(on_draw)
    desktop = ast.parse((REPO / "smartimaging" / "desktop.py").read_text(encoding="utf-8"))
    painting = next(n for n in desktop.body if isinstance(n, ast.FunctionDef) and n.name == "start_painting")
    assert "setActiveEffectByName('Paint')" in ast.unparse(painting)
    editing = next(n for n in desktop.body if isinstance(n, ast.FunctionDef) and n.name == "edit_in")
    called = {node.func.attr for tree_ in (tree, painting, editing) for node in ast.walk(tree_)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and "segment_editor_widget"
              in ast.unparse(node.func.value).replace("segmentEditorWidget", "segment_editor_widget").split(".")[-1]}
    assert {"setCurrentSegmentID", "setActiveEffectByName"} <= called <= SEGMENT_EDITOR_METHODS, called


def _calls(tree) -> set[str]:
    """Names of the functions and methods called in a syntax tree."""
    return {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            for node in ast.walk(tree) if isinstance(node, ast.Call)}


@pytest.mark.parametrize("name", MODULES)
def test_the_domain_check_is_shown_under_the_compute_button(name):
    source, _ = _module(name)
    ui = ET.parse(REPO / name / "Resources" / "UI" / f"{name}.ui").getroot()
    assert "domainLabel" in {w.get("name") for w in ui.iter("widget")}
    assert source.count("show_domain(self.ui.domainLabel, ") == 1


@pytest.mark.parametrize("name", MODULES)
def test_widgets_bind_controls_to_the_flow_and_share_one_step_runner(name):
    """No widget runs a worker or a timer of its own (the helpers that drifted apart are gone): long steps go
    through smartimaging.desktop.WidgetSteps, whose runner ends a step in try/finally and whose cancel stops the
    worker; the Logic holds the module's reading flow, the one the station drives."""
    source, tree = _module(name)
    assert "WidgetSteps(" in source and "self._steps.cancel()" in source and "self._steps.abandon()" in source
    for gone in ("WorkerProcess", "QTimer", "onPollWorker", "_stopWorker", "removeScratchFolder", "dispatch("):
        assert gone not in source, gone
    logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name + "Logic")
    init = next(m for m in logic.body if isinstance(m, ast.FunctionDef) and m.name == "__init__")
    assert any(call.endswith("Flow") for call in _calls(init)) and "worker_python" in _calls(init)


def test_extension_cmake_lists_every_module():
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    for name in MODULES:
        assert f"add_subdirectory({name})" in cmake
        assert "WITH_GENERIC_TESTS" in (REPO / name / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "EXTENSION_DEPENDS" in cmake and "PyTorch" in cmake


def test_terminology_file_matches_segment_codes():
    document = json.loads(TERMINOLOGY_FILE.read_text(encoding="utf-8"))
    assert document["SegmentationCategoryTypeContextName"] == TERMINOLOGY_CONTEXT
    types = {(c["CodeValue"], t["CodeValue"]) for c in document["SegmentationCodes"]["Category"] for t in c["Type"]}
    for spec in (*BONESCAN_SEGMENTS, *MAMMO_SEGMENTS.values()):
        assert (spec.category.value, spec.type.value) in types
