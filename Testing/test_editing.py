"""Editing the AI's proposal, on real MRML nodes (slicer-core, trame-slicer's editor, no browser): the AI's result
kept beside the edited ROI's, undo / redo of edits, the brush in mm, the proposal outlined (also drawn over the copy
after undo / redo, in a rendered slice view), the view that stays put when the editor opens, the hand-drawn ROI named
after the lesion kind."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest
import vtk
from vtk.util.numpy_support import vtk_to_numpy

pytest.importorskip("trame_slicer")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from trame_slicer.segmentation import ModificationMode  # noqa: E402

from smartimaging.reading import COMPARISON, table_rows  # noqa: E402
from smartimaging.segmentation_nodes import (  # noqa: E402
    PROPOSAL_COLOR,
    UNDO_STATES,
    brush_sizes,
    keep_proposal_on_top,
    lesion_mm,
    proposal_display,
    show_proposal,
)
from smartimaging.web.editor_panel import bring_into_view  # noqa: E402

MAMMO = "MammoRadiomics"


@pytest.fixture(scope="module")
def station():
    """The station's page state and callbacks, without a browser (one per test module: it holds trame's server)."""
    from smartimaging.web.app import ReadingStation

    return ReadingStation()


def _open(station, module: str, *steps: str) -> None:
    """Open a module with its first sample case and run the station's steps ("_segment", "_compute", ...)."""
    station.state.si_module = module
    station._on_module_changed(module)

    async def run():
        await station._load_sample(lambda *_: None)
        for step in steps:
            await getattr(station, step)(lambda *_: None)

    asyncio.run(run())


def _pixels(flow) -> int:
    return int(flow.segment_summary().split(": ")[1].split()[0])


def _erase_disc(station, radius_mm: float = 1.5) -> None:
    """Erase a disc at the lesion point, as the Erase effect does (trame-slicer's modifier, onto its undo stack)."""
    station.slicer_app.segmentation_editor.active_segment_modifier.modification_mode = ModificationMode.Remove
    _apply_disc(station, radius_mm)


def _apply_disc(station, radius_mm: float) -> None:
    flow = station.flow
    ras = [0.0, 0.0, 0.0]
    flow.point_node.GetNthControlPointPositionWorld(0, ras)
    disc = vtk.vtkSphereSource()
    disc.SetRadius(radius_mm)
    disc.SetThetaResolution(32)
    disc.SetPhiResolution(32)
    disc.Update()
    points = vtk.vtkPoints()
    points.InsertNextPoint(ras)
    station.slicer_app.segmentation_editor.active_segment_modifier.apply_glyph(disc.GetOutput(), points)


def test_the_ai_result_is_kept_beside_the_edited_one(station):
    _open(station, MAMMO, "_segment", "_compute")
    flow = station.flow
    ai = flow.result
    assert flow.ai_result is ai and ai.comparison == [] and ["ROI", "AI"] in ai.rows
    assert station.state.si_compare[MAMMO] == []  # nothing to compare yet

    before = _pixels(flow)
    _erase_disc(station)
    assert 0 < _pixels(flow) < before
    asyncio.run(station._compute(lambda *_: None))
    edited = flow.result
    assert edited is not ai and flow.ai_result is ai  # the edited ROI's result no longer replaces the AI's
    assert ["ROI", "reader edited"] in edited.rows and ["ROI", "AI"] in ai.rows
    assert edited.comparison == [[COMPARISON[0], ai.headline], [COMPARISON[1], edited.headline]]
    _, rows = table_rows(edited.table_node)
    assert rows[-2:] == edited.comparison  # in the result table too (the desktop module shows that one)
    assert station.state.si_compare[MAMMO] == edited.comparison
    assert station.state.si_rows[MAMMO][-2:] == edited.comparison  # also the page table's last rows, as the README says

    asyncio.run(station._draw_by_hand(lambda *_: None))  # another ROI: no AI result to compare with
    assert flow.ai_result is None and flow.result is None


def test_undo_and_redo_restore_the_edits_and_survive_compute(station):
    _open(station, MAMMO, "_segment")
    flow, panel = station.flow, station.editor_panel
    stack = station.slicer_app.segmentation_editor.undo_stack
    proposed = _pixels(flow)
    assert not stack.can_undo()
    _erase_disc(station)
    erased = _pixels(flow)
    assert erased < proposed and stack.can_undo()
    asyncio.run(station._compute(lambda *_: None))
    assert stack.can_undo()  # compute keeps the history (it re-showed the case and reset the editor)
    panel.undo()
    assert _pixels(flow) == proposed and station.state.si_segments[MAMMO] == f"Breast mass: {proposed} pixels"
    assert flow.roi_source == "AI" and flow.result_is_stale
    panel.redo()
    assert _pixels(flow) == erased and not flow.result_is_stale
    asyncio.run(station._segment(lambda *_: None))  # a new proposal: a fresh history
    assert not stack.can_undo()


def test_the_brush_is_in_mm_scaled_to_the_pixels_and_the_lesion(station):
    _open(station, MAMMO, "_segment")
    sizes = brush_sizes(station.flow.primary, lesion_mm(station.flow.segmentation))
    assert (sizes.minimum, sizes.step, sizes.default, sizes.maximum) == (0.2, 0.1, 2.5, 20.0)  # 0.2 mm pixels
    assert sizes.describe(2.5) == "2.5 mm (12.5 pixels)" and sizes.describe(0.2) == "0.2 mm (1 pixel)"
    paint = station.editor_panel._paint.data
    assert paint.brush_diameter_mode.name == "Absolute"
    assert paint.brush_diameter_slider.value == 2.5 and paint.brush_diameter_slider.max_value == 20.0
    assert station.state.si_brush == "2.5 mm (12.5 pixels)"
    paint.brush_diameter_slider.value = 4.0
    station.editor_panel._on_brush_changed()  # the page's slider change (no page here: called as trame does)
    assert station.state.si_brush == "4.0 mm (20 pixels)"

    scene = station.slicer_app.scene
    bone = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    bone.SetSpacing(2.4, 2.4, 1.0)
    sizes = brush_sizes(bone, 20.0)  # a bone scan's metastasis
    assert (sizes.minimum, sizes.step, sizes.default) == (2.4, 1.2, 4.8)  # a quarter lesion, on half-pixel steps
    assert sizes.describe(sizes.default) == "4.8 mm (2 pixels)"
    bone.SetSpacing(2.26, 2.26, 1.0)  # the GE scan: 5.5 mm is 2.4 pixels, not "2 pixels" (U2)
    assert brush_sizes(bone, 20.0).describe(5.5) == "5.5 mm (2.4 pixels)"
    calcification = brush_sizes(station.flow.primary, 2.0)
    assert calcification.default == 0.5 and calcification.default < sizes.default
    scene.RemoveNode(bone)


def test_the_ai_proposal_is_a_green_outline_that_the_switch_shows(station):
    _open(station, MAMMO, "_segment")
    flow = station.flow
    display = proposal_display(flow.ai_segmentation)
    assert not flow.ai_segmentation.GetDisplayNode().GetVisibility()  # the proposal's own display stays hidden
    assert station.state.si_has_proposal and station.state.si_show_proposal
    assert display.GetVisibility() and display.GetVisibility2DOutline() and not display.GetVisibility2DFill()
    segment_id = flow.ai_segmentation.GetSegmentation().GetNthSegmentID(0)
    assert display.GetSegmentOverrideColor(segment_id) == pytest.approx(PROPOSAL_COLOR)
    assert flow.segmentation.GetDisplayNode().GetVisibility2DFill()  # the reader's copy stays filled
    station.editor_panel._on_show_proposal(False)  # the switch (no page here: called as trame does)
    assert not display.GetVisibility()
    station.editor_panel._on_show_proposal(True)
    assert display.GetVisibility()
    show_proposal(flow.ai_segmentation, False)
    assert not display.GetVisibility()


def _green_pixels(view) -> int:
    """Pixels of the AI proposal's green outline in a slice view, rendered as the station's page gets it."""
    view.render_window().Render()
    capture = vtk.vtkWindowToImageFilter()
    capture.SetInput(view.render_window())
    capture.ReadFrontBufferOff()
    capture.Update()
    image = capture.GetOutput()
    width, height, _ = image.GetDimensions()
    rgb = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(np.count_nonzero((g > 120) & (g > r + 40) & (g > b + 40)))


def _lesion_view(station):
    """The first view, 40 mm wide around the lesion point: the 10 mm mass large in it (the next `_open` fits the
    image again)."""
    view = station.slicer_app.view_manager.get_view("Red")
    slice_node = view.get_view_node()
    ras = [0.0, 0.0, 0.0]
    station.flow.point_node.GetNthControlPointPositionWorld(0, ras)
    slice_node.SetFieldOfView(40.0, 40.0, 1.0)
    slice_node.JumpSliceByCentering(*ras)
    return view


def test_the_ai_outline_stays_drawn_over_the_filled_copy_after_undo_and_redo(station):
    _open(station, MAMMO, "_segment")
    flow, panel, scene = station.flow, station.editor_panel, station.slicer_app.scene
    view = _lesion_view(station)
    outlined = _green_pixels(view)
    assert outlined > 100  # about 170 at the view's 300 x 300 pixels
    ai_labelmap = flow.ai_segmentation.GetSegmentation().GetNthSegment(0).GetRepresentation("Binary labelmap")
    ai_voxels = np.count_nonzero(vtk_to_numpy(ai_labelmap.GetPointData().GetScalars()))
    display_nodes = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationDisplayNode")
    _erase_disc(station)
    for step in (panel.undo, panel.redo, panel.undo, panel.redo, panel.redo, panel.undo):  # a redo too many, too
        step()
        assert _green_pixels(view) >= 0.9 * outlined, f"the copy's fill hides the AI outline after {step.__name__}"
    display = proposal_display(flow.ai_segmentation)
    assert display.GetVisibility() and display.GetVisibility2DOutline() and not display.GetVisibility2DFill()
    segment_id = flow.ai_segmentation.GetSegmentation().GetNthSegmentID(0)
    assert display.GetSegmentOverrideColor(segment_id) == pytest.approx(PROPOSAL_COLOR)
    copy_display = flow.segmentation.GetDisplayNode()
    assert copy_display.GetVisibility() and copy_display.GetVisibility2DFill()  # the reader's copy stays filled
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationDisplayNode") == display_nodes  # none swapped in
    ai_labelmap = flow.ai_segmentation.GetSegmentation().GetNthSegment(0).GetRepresentation("Binary labelmap")
    assert np.count_nonzero(vtk_to_numpy(ai_labelmap.GetPointData().GetScalars())) == ai_voxels  # the AI's ROI stays
    panel._on_show_proposal(False)  # the switch still hides it
    assert _green_pixels(view) == 0
    panel._on_show_proposal(True)


def test_the_desktop_editors_undo_and_redo_keep_the_ai_outline_over_the_copy(station):
    """Slicer's own Segment Editor logic, whose Undo and Redo the desktop widget calls, on the station's scene; the
    check that `keep_proposal_on_top` leaves for later (a qt.QTimer on the desktop) runs after each."""
    import slicer

    _open(station, MAMMO, "_segment")
    flow, scene = station.flow, station.slicer_app.scene
    view = _lesion_view(station)
    outlined = _green_pixels(view)
    logic = slicer.vtkSlicerSegmentEditorLogic()
    logic.SetMRMLScene(scene)
    editor_node = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    logic.SetSegmentEditorNode(editor_node)
    logic.SetSegmentationHistory(slicer.vtkSegmentationHistory())
    logic.SetMaximumNumberOfUndoStates(UNDO_STATES)
    logic.SetSegmentationNode(flow.segmentation)
    logic.SetSourceVolumeNode(flow.primary)
    later = []
    for _ in range(2):  # the module shows the same case twice: one watch
        keep_proposal_on_top(flow.segmentation, later.append)
    assert logic.SaveStateForUndo()
    _erase_disc(station, 3.0)
    while later:
        later.pop()()
    for step in (logic.Undo, logic.Redo, logic.Undo):
        step()
        assert len(later) == 1
        later.pop()()
        assert _green_pixels(view) >= 0.9 * outlined, f"the copy's fill hides the AI outline after {step.__name__}"
    scene.RemoveNode(editor_node)


def _xy_to_ras(node) -> list[float]:
    matrix = node.GetXYToRAS()
    return [matrix.GetElement(r, c) for r in range(3) for c in range(4)]


def test_the_view_does_not_move_when_the_editor_opens(station):
    _open(station, MAMMO)
    views = station.slicer_app.view_manager.get_slice_views()
    before = [value for view in views for value in _xy_to_ras(view.get_view_node())]
    asyncio.run(station._segment(lambda *_: None))
    assert [value for view in views for value in _xy_to_ras(view.get_view_node())] == pytest.approx(before)
    asyncio.run(station._draw_by_hand(lambda *_: None))
    assert [value for view in views for value in _xy_to_ras(view.get_view_node())] == pytest.approx(before)


def test_a_point_off_screen_is_brought_into_view(station):
    import slicer

    node = slicer.vtkMRMLSliceNode()
    node.SetOrientationToAxial()
    node.SetDimensions(200, 100, 1)
    node.SetFieldOfView(200.0, 100.0, 1.0)
    node.UpdateMatrices()
    start = _xy_to_ras(node)
    bring_into_view(node, (30.0, -20.0, 0.0))  # inside the 200 x 100 mm field around the origin: no pan
    assert _xy_to_ras(node) == pytest.approx(start)
    bring_into_view(node, (300.0, 10.0, 5.0))  # outside: centred on it
    centre = node.GetXYToRAS().MultiplyPoint((100.0, 50.0, 0.0, 1.0))
    assert centre[:3] == pytest.approx((300.0, 10.0, 5.0))


def test_a_hand_drawn_roi_is_named_after_the_kind_chosen(station):
    from smartimaging.segments import BREAST_MASS

    _open(station, MAMMO)
    flow = station.flow
    station._on_kind_changed("calcification")
    asyncio.run(station._draw_by_hand(lambda *_: None))
    assert flow.segment_summary() == "Breast calcification: 0 pixels"
    _paint_disc(station)
    painted = _pixels(flow)
    station._on_kind_changed("mass")  # the reader says it is a mass after all
    segment = flow.segmentation.GetSegmentation().GetNthSegment(0)
    assert flow.kind == "mass" and flow.segment_summary() == f"Breast mass: {painted} pixels"  # the voxels stay
    assert segment.GetColor() == pytest.approx(BREAST_MASS.color) and "Mass" in segment.GetTerminology()
    assert flow.segmentation.GetName().endswith(" drawn mass") and flow.roi_source == "drawn by the reader"
    asyncio.run(station._compute(lambda *_: None))
    assert ["ROI pixels", str(painted)] in flow.result.rows and flow.result.headline.startswith("Rad-score ")
    assert "mass Rad-score" in flow.result.table_node.GetName()


def _paint_disc(station, radius_mm: float = 2.0) -> None:
    """Paint a disc at the lesion point, as the Paint effect does."""
    modifier = station.slicer_app.segmentation_editor.active_segment_modifier
    modifier.modification_mode = ModificationMode.Add
    _apply_disc(station, radius_mm)


def test_an_roi_edited_before_any_compute_still_gets_the_ai_rois_result(station):
    _open(station, MAMMO, "_segment")
    flow, scene = station.flow, station.slicer_app.scene
    tables = scene.GetNumberOfNodesByClass("vtkMRMLTableNode")
    _erase_disc(station)
    asyncio.run(station._compute(lambda *_: None))
    ai, edited = flow.ai_result, flow.result
    assert ai is not None and ai.roi_source == "AI" and ["ROI", "AI"] in ai.rows and ai.table_node is None
    assert ["ROI", "reader edited"] in edited.rows
    assert edited.comparison == [[COMPARISON[0], ai.headline], [COMPARISON[1], edited.headline]]
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == tables + 1  # the AI's table did not stay
    pixels = [int(row[1]) for result in (ai, edited) for row in result.rows if row[0] == "ROI pixels"]
    assert pixels[0] > pixels[1]  # each from its own ROI
