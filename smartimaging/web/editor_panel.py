"""The station's Segment Editor panel, in the right drawer, which is always there so that the views never change size
when the editor opens: the AI's proposal shown as an outline over the reader's filled copy (a switch), undo / redo
(buttons, Ctrl+Z, Ctrl+Y or Ctrl+Shift+Z), the brush diameter in mm with its value, zoom buttons; trame-slicer's
editor below it, without its 3D controls (the station has no 3D view). The numbers and decisions are
`segmentation_nodes`' (shared with the desktop modules)."""

from __future__ import annotations

from trame.widgets import client, html
from trame.widgets import vuetify3 as v3
from trame_server.utils.typed_state import TypedState
from trame_slicer.app.ui import PaintEffectState, SegmentEditorState, SegmentEditorUI, SegmentEditState
from trame_slicer.app.ui.control_button import ControlButton
from trame_slicer.app.ui.slider import Slider
from trame_slicer.segmentation import BrushDiameterMode, SegmentationEffectErase, SegmentationEffectPaint

from ..segmentation_nodes import UNDO_STATES, BrushSizes, brush_sizes, lesion_mm, raise_proposal, show_proposal

UNDO, REDO = "si_undo", "si_redo"  # the page's triggers for the keyboard shortcuts
BRUSH_EFFECTS = ", ".join(f"'{effect.get_effect_name()}'" for effect in (SegmentationEffectPaint,
                                                                          SegmentationEffectErase))

# Ctrl+Z undoes the last edit, Ctrl+Y or Ctrl+Shift+Z redoes it (Cmd on macOS), unless a text field has the focus
# (there the keys edit the text).
KEYS_SCRIPT = f"""
window.addEventListener("keydown", (event) => {{
  if (!(event.ctrlKey || event.metaKey) || event.altKey) return;
  const target = event.target;
  if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
  const key = event.key.toLowerCase();
  const trigger = key === "z" ? (event.shiftKey ? "{REDO}" : "{UNDO}") : key === "y" ? "{REDO}" : null;
  if (!trigger) return;
  event.preventDefault();
  trame.trigger(trigger);
}});
"""


class EditorPanel:
    """The right drawer's content and what it does to the scene: `build()` inside the drawer, `show(flow)` whenever
    the station shows a flow's case (a new ROI gets its brush sizes and a fresh undo history)."""

    def __init__(self, station):
        self.station = station
        self.state = station.state
        self.editor = station.slicer_app.segmentation_editor
        self.editor.undo_stack.set_undo_limit(UNDO_STATES)  # trame-slicer keeps 5
        self._editor_names = TypedState(self.state, SegmentEditorState).name
        self._paint = TypedState(self.state, PaintEffectState)
        self._segment_edit = TypedState(self.state, SegmentEditState)
        self._brush: BrushSizes | None = None
        self._lesion_mm = 0.0  # the lesion scale the brush was sized for
        self.state.si_show_proposal = True  # the AI's proposal outlined over the reader's copy
        self.state.si_has_proposal = False
        self.state.si_brush = ""  # the brush diameter in mm and pixels
        self.state.change("si_show_proposal")(self._on_show_proposal)
        self.state.change(self._paint.name.brush_diameter_slider.value)(self._on_brush_changed)
        station.server.trigger(UNDO)(self.undo)
        station.server.trigger(REDO)(self.redo)

    def build(self) -> SegmentEditorUI:
        """The panel, inside the drawer; trame-slicer's editor UI, which the station binds to its logic."""
        client.Script(KEYS_SCRIPT)
        with html.Div(classes="pa-2", id="si-editor-panel"):
            html.Div("Segment Editor: the edited copy is what compute uses; the AI's proposal stays unchanged.",
                     classes="text-caption")
            html.Div("No ROI yet: press Segment, or “Draw ROI by hand” to draw it yourself.",
                     v_if=("!si_has_segmentation[si_module] && !si_teach_blocks[si_module].draw",),
                     classes="text-body-2 mt-2", id="si-no-roi")
            html.Div("Teaching: your outline was checked and is locked; the views show it with the key's and the "
                     "AI's.", v_if=("si_teach_blocks[si_module].draw",), classes="text-body-2 mt-2",
                     id="si-teach-locked")
            with html.Div(v_if=("si_has_segmentation[si_module]",), classes="d-flex align-center flex-wrap ga-1 mt-1"):
                v3.VBtn("Undo", click=self.undo, disabled=(f"!{self._editor_names.can_undo}",), size="small",
                        variant="tonal", prepend_icon="mdi-undo", title="Undo the last edit (Ctrl+Z)")
                v3.VBtn("Redo", click=self.redo, disabled=(f"!{self._editor_names.can_redo}",), size="small",
                        variant="tonal", prepend_icon="mdi-redo", title="Redo (Ctrl+Y or Ctrl+Shift+Z)")
                v3.VSwitch(v_model=("si_show_proposal",), v_if=("si_has_proposal",), label="AI proposal (green)",
                           color="success", density="compact", hide_details=True, classes="ml-2",
                           id="si-show-proposal", title="The AI's proposal as a green outline over your copy")
            with html.Div(classes="d-flex align-center ga-1 mt-1"):
                v3.VBtn(icon="mdi-magnify-plus-outline", click=lambda: self.zoom(True), size="small",
                        variant="text", title="Zoom in (or Ctrl + mouse wheel)", id="si-zoom-in")
                v3.VBtn(icon="mdi-magnify-minus-outline", click=lambda: self.zoom(False), size="small",
                        variant="text", title="Zoom out (or Ctrl + mouse wheel)", id="si-zoom-out")
                html.Span("Zoom: these buttons or Ctrl + mouse wheel; pan: middle-drag; “Reset views” fits the "
                          "image.", classes="text-caption")
            html.Div("Brush diameter: {{ si_brush }}", id="si-brush", classes="text-body-2 mt-1",
                     v_if=(f"si_brush && [{BRUSH_EFFECTS}].includes({self._editor_names.active_effect_name})",))
        editor_ui = SegmentEditorUI()
        _remove_3d_controls(editor_ui)
        return editor_ui

    def show(self, flow) -> None:
        """The editor on the flow's segmentation (unchanged if it is already the one being edited, so that its undo
        history and effect stay); only this flow's AI proposal shown, as the switch says."""
        for other in self.station.flows.values():
            if other.ai_segmentation is not None:
                show_proposal(other.ai_segmentation, other is flow and bool(self.state.si_show_proposal))
        self.state.si_has_proposal = flow.ai_segmentation is not None and flow.segmentation is not None
        if flow.segmentation is None:
            self.editor.clear()  # no effect stays active on another module's or a removed segmentation
            return
        # a bone scan's frames are its two views, 1 slice apart: a sphere brush would paint the other view too
        self._paint.data.use_sphere_brush = flow.layout != "frames"
        lesion = lesion_mm(flow.segmentation)
        active = self.editor.active_segmentation_node
        if active is None or active.GetID() != flow.segmentation.GetID():
            self.editor.set_active_segmentation(flow.segmentation, flow.primary)  # a fresh undo history
        else:
            self._show_segment_names()
            if lesion == self._lesion_mm:
                return  # the reader's brush stays
        self._lesion_mm = lesion
        self._set_brush(brush_sizes(flow.primary, lesion))

    def _show_segment_names(self) -> None:
        """The editor's segment list and name field with the segments' names now (a kind change renames them)."""
        self.editor.segmentation_modified()
        properties = self.editor.get_segment_properties(self.editor.get_active_segment_id())
        if properties is not None:
            edited = self._segment_edit.data.segment_state
            edited.name, edited.color = properties.name, properties.color_hex

    def _set_brush(self, sizes: BrushSizes) -> None:
        """Paint and Erase in mm, with this image's range and default diameter."""
        self._brush = sizes
        paint = self._paint.data
        paint.brush_diameter_mode = BrushDiameterMode.Absolute
        slider = paint.brush_diameter_slider
        slider.min_value, slider.max_value, slider.step = sizes.minimum, sizes.maximum, sizes.step
        slider.value = sizes.default
        self.state.si_brush = sizes.describe(sizes.default)

    def _on_brush_changed(self, **_kwargs) -> None:
        if self._brush is not None:
            self.state.si_brush = self._brush.describe(self._paint.data.brush_diameter_slider.value)

    def _on_show_proposal(self, si_show_proposal, **_kwargs) -> None:
        ai_node = self.station.flow.ai_segmentation
        if ai_node is not None:
            show_proposal(ai_node, bool(si_show_proposal))

    def undo(self) -> None:
        self.editor.undo_stack.undo()
        self._raise_proposal()

    def redo(self) -> None:
        self.editor.undo_stack.redo()
        self._raise_proposal()

    def _raise_proposal(self) -> None:
        """The AI's outline drawn over the copy again: the undo or redo gave the copy's fill new actors, drawn last
        (`raise_proposal`)."""
        ai_node = self.station.flow.ai_segmentation
        if ai_node is not None:
            raise_proposal(ai_node)

    def zoom(self, zoom_in: bool) -> None:
        """Zoom every slice view in (or out) by trame-slicer's step."""
        for view in self.station.slicer_app.view_manager.get_slice_views():
            view.zoom_in() if zoom_in else view.zoom_out()


def comparison_table() -> None:
    """The AI-vs-edited rows of the result (`Result.comparison`), under its headline."""
    with v3.VTable(density="compact", v_if=("si_compare[si_module].length",), id="si-compare", classes=(
            "'mt-1' + (si_stale[si_module] ? ' text-disabled' : '')",)):
        with html.Tbody(), html.Tr(v_for=("row in si_compare[si_module]",)):
            html.Td("{{ row[0] }}", classes="text-body-2")
            html.Td("{{ row[1] }}", classes="text-body-2 font-weight-bold")


def bring_into_view(slice_node, ras) -> None:
    """Show the slice through a point (RAS mm); pan to it only when it lies outside the view, so that the image does
    not move under the reader's hand when the editor opens."""
    slice_node.JumpSliceByOffsetting(*ras)  # Slicer 5.12 vtkMRMLSliceNode: the slice offset only
    to_xy = slice_node.GetXYToRAS().NewInstance()
    to_xy.DeepCopy(slice_node.GetXYToRAS())
    to_xy.Invert()
    x, y = to_xy.MultiplyPoint((*ras, 1.0))[:2]
    width, height = slice_node.GetDimensions()[:2]
    if not (0 <= x <= width and 0 <= y <= height):
        slice_node.JumpSliceByCentering(*ras)


def _remove_3d_controls(element) -> None:
    """Drop the editor's "Toggle 3D" button and 3D opacity slider: the station shows no 3D view."""
    for child in list(getattr(element, "children", ())):
        if isinstance(child, ControlButton | Slider) and "mdi-video-3d" in child.html:
            element.children.remove(child)
        else:
            _remove_3d_controls(child)
