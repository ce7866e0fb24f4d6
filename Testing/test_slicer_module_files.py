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
# since Slicer 4.x; setSourceVolumeNode since 5.2, which renamed setMasterVolumeNode).
SEGMENT_EDITOR_METHODS = {"setMRMLSegmentEditorNode", "setSegmentationNode", "setSourceVolumeNode",
                          "setCurrentSegmentID", "setActiveEffectByName"}


@pytest.mark.parametrize("name", ["BoneScanBSTBI", "MammoRadiomics", "BreastLVI"])
def test_the_roi_can_always_be_drawn_by_hand(name):
    """A "Draw ROI by hand" button next to Segment, wrapped in tryWithErrorDisplay, whose Logic creates the empty
    coded segments through smartimaging.segmentation_nodes.drawn_segmentation, and Paint opened on them."""
    source, tree = _module(name)
    ui = ET.parse(REPO / name / "Resources" / "UI" / f"{name}.ui").getroot()
    button = next(w for w in ui.iter("widget") if w.get("name") == "drawButton")
    texts = {p.get("name"): p.find("string").text for p in button.iter("property")}
    assert texts["text"] == "Draw ROI by hand" and "Paint" in texts["toolTip"]
    assert 'self.ui.drawButton.connect("clicked(bool)", self.onDrawButton)' in source
    logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name + "Logic")
    draw = next(m for m in logic.body if isinstance(m, ast.FunctionDef) and m.name == "drawByHand")
    assert "drawn_segmentation(slicer.mrmlScene" in ast.unparse(draw)
    assert 'setActiveEffectByName("Paint")' in source
    called = {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
              and isinstance(node.func, ast.Attribute) and "segmentEditorWidget" in ast.unparse(node.func.value)
              .split(".")[-1]}
    assert {"setCurrentSegmentID", "setActiveEffectByName"} <= called <= SEGMENT_EDITOR_METHODS, called


@pytest.mark.parametrize("name", MODULES)
def test_the_domain_check_is_shown_under_the_compute_button(name):
    source, _ = _module(name)
    ui = ET.parse(REPO / name / "Resources" / "UI" / f"{name}.ui").getroot()
    assert "domainLabel" in {w.get("name") for w in ui.iter("widget")}
    assert "domain_check(" in source and source.count("self._showDomain(") == 1


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
