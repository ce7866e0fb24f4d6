"""Desktop parity with the station for the bone scan's lesion list and follow-up and BreastLVI's Grad-CAM controls.
The GUI-free code the desktop widgets call runs here on real MRML (slicer-core): the lesion rows are the station's
review, a rejection by click reaches BSTBI through the module's "Exclude lesions" text, earlier studies are checked
as `bonescan trend` checks them, the trend is a plot chart node, the Grad-CAM legend is Slicer's colour legend of
the map. The widgets themselves never run here: their source is checked to call that code and only Slicer 5.12 /
Qt / CTK APIs found in Slicer's own scripted modules."""

from __future__ import annotations

import ast
import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import slicer

from smartimaging.bonescan.flow import BoneScanFlow
from smartimaging.bonescan.followup import StudyPoint, trend_lines
from smartimaging.bonescan.lesions import review
from smartimaging.bonescan.reading_nodes import (
    CURRENT_LABEL,
    LESION_COLUMNS,
    TREND_COLUMNS,
    FollowUp,
    current_point,
    exclude_text,
    lesion_rows,
    table_point,
    trend_chart,
    view_lines,
)
from smartimaging.bonescan.views import load_bone_scan, write_nm_dicom
from smartimaging.errors import InputError
from smartimaging.heat_legend import DEFAULT_OPACITY_PERCENT, LEGEND_TITLE, foreground_opacity, show_heat_legend
from smartimaging.phantoms.bonescan import make_bone_scan_phantom
from smartimaging.reading import heat_map_colours, style_heat_map
from smartimaging.segmentation_nodes import segmentation_from_labels
from smartimaging.segments import BONESCAN_SEGMENTS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def phantom_scan(tmp_path_factory):
    """The station's "Phantom with 5 metastases" (seed 2) as NM DICOM, and its ground-truth label maps."""
    phantom = make_bone_scan_phantom(2)
    path = tmp_path_factory.mktemp("phantom") / "scan.dcm"
    write_nm_dicom(path, phantom.views, phantom.patient_id, phantom.age)
    return phantom, load_bone_scan([path])


@pytest.fixture
def computed(scene, phantom_scan):
    """A bone-scan flow with BSTBI computed from the phantom's true lesions (5 per view)."""
    phantom, study = phantom_scan
    flow = BoneScanFlow(scene)
    volume = flow.load("scan", study.paths[0])
    truth = np.stack([phantom.masks["anterior"], phantom.masks["posterior"]])
    flow.select({"scan": volume}, segmentation=segmentation_from_labels(scene, volume, truth, BONESCAN_SEGMENTS,
                                                                        "reader", "edited"))
    flow.run(flow.compute())
    return flow


def test_the_desktop_lesion_list_is_the_stations_and_a_click_rejects_through_the_exclude_field(computed):
    flow = computed
    record = flow.result_record
    rows = lesion_rows(record)
    listed = [lesion for group in review(record)["views"] for lesion in group["lesions"]]  # the station's list
    assert [row["id"] for row in rows] == [lesion["id"] for lesion in listed] == list(range(1, 11))
    assert all(len(row["cells"]) == len(LESION_COLUMNS) - 1 and row["accepted"] for row in rows)
    assert [row["cells"][1] for row in rows] == ["anterior view"] * 5 + ["posterior view"] * 5
    assert rows[0]["cells"][2:] == [listed[0][key] for key in ("site", "position", "area", "uptake", "match")]
    assert view_lines(record)[:2] == ["Anterior view: 5 of 5 lesions accepted", "Posterior view: 5 of 5 lesions "
                                                                                 "accepted"]
    before = record["bstbi"]["mean"]

    flow.toggle_lesion(2)  # what the desktop's Logic.toggleLesion does, then the field the module reads back
    text = exclude_text(flow.exclude)
    assert text == "2"
    flow.set_exclude(text)
    flow.run(flow.compute())
    record = flow.result_record
    assert not next(row for row in lesion_rows(record) if row["id"] == 2)["accepted"]
    assert view_lines(record)[0] == "Anterior view: 4 of 5 lesions accepted"
    assert record["bstbi"]["mean"] < before
    assert exclude_text([5, 2]) == "2, 5" and exclude_text([]) == ""


def test_followup_takes_this_sessions_results_and_folders_and_refuses_what_trend_refuses(computed):
    flow = computed
    current = current_point(flow)
    assert current.label == CURRENT_LABEL and current.bstbi == flow.result_record["bstbi"]["mean"]
    assert current.acquisition["views"] == 2 and current.acquisition["grid"] == [1024, 256]  # a whole-body view
    from_table = table_point(flow.result.table_node)  # a result table of the scene, read as a result.json
    assert from_table.bstbi == current.bstbi and from_table.label == flow.result.table_node.GetName()
    followup = FollowUp()
    with pytest.raises(InputError, match="are the same study"):
        followup.add(current_point(flow, "this scan, computed earlier"), current)  # its own result again
    with pytest.raises(InputError, match="acquired differently"):
        followup.add(StudyPoint("other camera", 0.1, acquisition={"grid": [512, 256]}), current)
    with pytest.raises(InputError, match="Compute BSTBI of this study first"):
        followup.trend(None)
    followup.add(StudyPoint("2024 scan", 0.05), current)
    assert followup.lines() == ["1. 2024 scan · date unknown · BSTBI 0.050"]
    result = followup.trend(current)
    assert [s["label"] for s in result["studies"]] == ["2024 scan", CURRENT_LABEL]
    assert trend_lines(result)[-1].startswith(f"change from the previous study: 0.050 -> {current.bstbi:.3f}")
    followup.remove(0)
    assert followup.earlier == []
    with pytest.raises(InputError, match="is not a BSTBI result table"):
        table_point(flow.scene.AddNewNodeByClass("vtkMRMLTableNode", "some table"))


def _column(table_node, name):
    column = table_node.GetTable().GetColumnByName(name)
    return [column.GetValue(i) for i in range(column.GetNumberOfTuples())]


def test_the_trend_is_a_plot_chart_in_days_when_every_date_is_known_else_by_study(scene):
    followup = FollowUp()
    current = StudyPoint(CURRENT_LABEL, 0.30, date(2025, 3, 1))
    followup.add(StudyPoint("baseline", 0.10, date(2024, 9, 15)), current)
    followup.add(StudyPoint("interim", 0.20, date(2024, 12, 1), outside_domain=True, rejected=2), current)
    assert followup.lines()[1] == "2. interim · 2024-12-01 · BSTBI 0.200 · 2 lesions rejected by the reader"
    assert trend_lines(followup.trend(current))[-1].endswith(
        "; caution: the earlier study had 2 lesions rejected by the reader, this one none: part of the change is the "
        "reader's")
    chart = trend_chart(scene, followup.trend(current))
    series = chart.GetNthPlotSeriesNode(0)
    table = series.GetTableNode()
    assert chart.GetNumberOfPlotSeriesNodes() == 1 and series.GetXColumnName() == TREND_COLUMNS[1]
    assert series.GetYColumnName() == "BSTBI" and series.GetPlotType() == series.PlotTypeScatter
    assert _column(table, TREND_COLUMNS[1]) == [0.0, 77.0, 167.0]  # days from 2024-09-15
    assert _column(table, "BSTBI") == pytest.approx([0.10, 0.20, 0.30])
    assert _column(table, "Label")[1] == ("interim (outside the models' training data) (2 lesions rejected by the "
                                          "reader)")
    assert chart.GetXAxisTitle() == TREND_COLUMNS[1] and chart.GetYAxisTitle() == "BSTBI"

    undated = FollowUp()
    undated.add(StudyPoint("first", 0.4), None)
    again = trend_chart(scene, undated.trend(StudyPoint(CURRENT_LABEL, 0.1)), chart)  # updated in place
    assert again is chart and chart.GetNthPlotSeriesNode(0).GetTableNode() is table
    assert series.GetXColumnName() == "Study" and _column(table, "Study") == [1.0, 2.0]
    assert all(math.isnan(value) for value in _column(table, TREND_COLUMNS[1]))
    assert "a study date is unknown" in chart.GetTitle()
    assert scene.GetNumberOfNodesByClass("vtkMRMLPlotChartNode") == 1


def test_the_grad_cam_legend_is_slicers_colour_legend_of_the_map_and_follows_the_switch(scene):
    heat = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Grad-CAM")
    slicer.util.updateVolumeFromArray(heat, np.linspace(0, 1, 4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8))
    style_heat_map(heat)
    legend = show_heat_legend(heat)
    assert legend.IsA("vtkMRMLColorLegendDisplayNode") and legend.GetVisibility()
    assert legend.GetPrimaryDisplayNode() is heat.GetDisplayNode()  # its colours: the map's own table and window
    assert heat.GetDisplayNode().GetWindowLevelMin() == 0.0 and heat.GetDisplayNode().GetWindowLevelMax() == 1.0
    assert heat_map_colours(heat, [0.0, 1.0]) != heat_map_colours(heat, [1.0, 0.0])  # a real ramp behind it
    assert legend.GetTitleText() == LEGEND_TITLE and "0.2" in LEGEND_TITLE
    assert show_heat_legend(heat, False) is legend and not legend.GetVisibility()  # reused, hidden with the map
    assert foreground_opacity(True, DEFAULT_OPACITY_PERCENT) == 0.4 and foreground_opacity(False, 80) == 0.0
    assert foreground_opacity(True, 150) == 1.0


# ---- the widgets' source ------------------------------------------------------------------------------------------

def _tree(path: str) -> ast.Module:
    return ast.parse((REPO / path).read_text(encoding="utf-8"))


def _method(tree: ast.Module, class_name: str, name: str) -> ast.FunctionDef:
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    return next(m for m in cls.body if isinstance(m, ast.FunctionDef) and m.name == name)


def _calls(tree) -> set[str]:
    return {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            for node in ast.walk(tree) if isinstance(node, ast.Call)}


def test_the_bone_scan_widget_binds_the_list_and_the_follow_up_to_the_shared_code():
    tree = _tree("BoneScanBSTBI/BoneScanBSTBI.py")
    setup = _method(tree, "BoneScanBSTBIWidget", "setup")
    assert {"LesionReviewSection", "FollowUpSection"} <= _calls(setup)
    for name in ("onToggleLesion", "onAddBaselineResult", "onAddResultFolder", "onShowTrend"):
        assert "tryWithErrorDisplay" in ast.unparse(_method(tree, "BoneScanBSTBIWidget", name)), name
    assert {"toggle_lesion", "exclude_text", "computeBSTBI"} <= _calls(_method(tree, "BoneScanBSTBILogic",
                                                                               "toggleLesion"))
    assert "current_point" in _calls(_method(tree, "BoneScanBSTBILogic", "computeBSTBI"))
    assert {"read_result", "table_point", "add"} <= _calls(_method(tree, "BoneScanBSTBILogic", "addEarlierStudy"))
    trend = _method(tree, "BoneScanBSTBILogic", "showTrend")
    assert {"trend", "trend_chart", "trend_lines", "ShowChartInLayout"} <= _calls(trend)
    # Slicer 5.12: Modules/Loadable/Plots/Logic/vtkSlicerPlotsLogic.h ShowChartInLayout, as
    # Docs/developer_guide/script_repository/plots.md calls it
    assert "slicer.modules.plots.logic().ShowChartInLayout(self.trendChart)" in ast.unparse(trend)
    shown = ast.unparse(_method(tree, "BoneScanBSTBIWidget", "_showComputed"))
    assert "self._lesions.show(self.logic.flow.result_record)" in shown


def test_the_lvi_widget_binds_the_grad_cam_switch_opacity_and_legend_to_the_shared_code():
    tree = _tree("BreastLVI/BreastLVI.py")
    assert "HeatMapSection" in _calls(_method(tree, "BreastLVIWidget", "setup"))
    heat = _method(tree, "BreastLVILogic", "showHeatMap")
    assert {"show_heat_legend", "foreground_opacity", "setSliceViewerLayers"} <= _calls(heat)
    assert "foregroundOpacity=" in ast.unparse(heat)  # Slicer 5.12 Base/Python/slicer/util.py setSliceViewerLayers
    assert "DEFAULT_OPACITY_PERCENT" in ast.unparse(_method(tree, "BreastLVILogic", "showResult"))
    legend = ast.unparse(next(n for n in _tree("smartimaging/heat_legend.py").body
                              if isinstance(n, ast.FunctionDef) and n.name == "show_heat_legend"))
    # Slicer 5.12 Modules/Loadable/Colors/Logic/vtkSlicerColorLogic.h (static; the colour legend since Slicer 5.0)
    assert {"GetColorLegendDisplayNode", "AddDefaultColorLegendDisplayNode"} <= _calls(ast.parse(legend))


def test_the_dce_widget_binds_the_enhancing_regions_to_the_shared_scene_code():
    tree = _tree("DCESynthesis/DCESynthesis.py")
    assert "DCERegionsSection" in _calls(_method(tree, "DCESynthesisWidget", "setup"))
    assert {"showRegions", "regionLegend"} <= _calls(_method(tree, "DCESynthesisWidget", "onShowButton"))
    for method, called in (("showRegions", "show_regions"), ("goToRegion", "go_to_region"),
                           ("regionLegend", "region_legend")):
        assert called in _calls(_method(tree, "DCESynthesisLogic", method)), method
    assert "self.flow.regions" in ast.unparse(_method(tree, "DCESynthesisLogic", "showSideBySide"))


# The Qt / CTK classes and methods desktop_sections.py uses, each as a Slicer 5.12 scripted module uses it.
KNOWN_QT = {
    "ctkCollapsibleButton": "Modules/Scripted/CropVolumeSequence/CropVolumeSequence.py",
    "QFormLayout": "Modules/Scripted/CropVolumeSequence/CropVolumeSequence.py",
    "addRow": "Applications/SlicerApp/Testing/Python/RSNAVisTutorialTest.py",
    "ctkSliderWidget": "Applications/SlicerApp/Testing/Python/RSNAVisTutorialTest.py",
    "QTableWidget": "Modules/Scripted/DICOMLib/DICOMBrowser.py", "QTableWidgetItem": "DICOMBrowser.py",
    "setColumnCount": "DICOMBrowser.py", "setHorizontalHeaderLabels": "DICOMBrowser.py",
    "clearContents": "DICOMBrowser.py", "setRowCount": "DICOMBrowser.py", "insertRow": "DICOMBrowser.py",
    "setItem": "DICOMBrowser.py", "setCheckState": "DICOMBrowser.py", "setFlags": "DICOMBrowser.py",
    "flags": "DICOMBrowser.py", "Qt": "DICOMBrowser.py (qt.Qt.Checked, qt.Qt.ItemIsEditable)",
    "column": "QTableWidgetItem (Qt)", "row": "QTableWidgetItem (Qt)",
    "blockSignals": "Modules/Scripted/DICOM/DICOM.py", "QLabel": "DICOM.py", "QPushButton": "DICOM.py",
    "QCheckBox": "DICOM.py", "connect": "every scripted module (signal by its C++ signature)",
    "QListWidget": "Modules/Scripted/DICOMLib/DICOMRecentActivityWidget.py", "addItem": "same", "clear": "QListWidget",
    "QFileDialog": "Modules/Scripted/ExtensionWizard/ExtensionWizard.py",
    "getExistingDirectory": "ExtensionWizard.py", "addWidget": "the scripted module template",
}


def test_the_desktop_sections_use_only_qt_and_ctk_apis_of_slicers_own_modules():
    tree = _tree("smartimaging/desktop_sections.py")
    qt_names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name) and node.value.id in ("qt", "ctk")}
    methods = {node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
               and isinstance(node.func, ast.Attribute) and not (isinstance(node.func.value, ast.Name)
                                                                 and node.func.value.id in ("qt", "ctk"))}
    methods -= {"append", "_on_add_folder", "_on_toggle", "join"}  # Python's and the section's own
    assert qt_names - {"Checked", "Unchecked", "ItemIsEditable"} <= set(KNOWN_QT), qt_names - set(KNOWN_QT)
    assert methods <= set(KNOWN_QT), methods - set(KNOWN_QT)
    assert {"lesion_rows", "view_lines"} <= _calls(tree)  # the rows come from the shared review
