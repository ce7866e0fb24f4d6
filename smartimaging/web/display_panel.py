"""The station's display controls (`smartimaging.display` in the page): window/level presets, invert and reset, the
left-drag window/level of the slice views, the caption and edge letters drawn in every view, mammograms hung as
radiologists hang them, and the header panel (what the file records, no patient identifiers); a long header value
or caption is cut with "…" to the panel's width, its full text on hover."""

from __future__ import annotations

import slicer
import vtk
from trame.widgets import html
from trame.widgets import vuetify3 as v3

from .. import display

ELLIPSIS = "white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 100%;"  # long text: "…"


class DisplayPanel:
    """Builds the "Display" section of the left panel and keeps the views' display current; `show(flow)` after the
    station shows a flow's views."""

    def __init__(self, station, view_keys: dict[str, str]):
        """`view_keys`: the `display.view_captions` key of each view tag of the station's two- and four-view
        layouts (a one-view layout shows the PRIMARY caption)."""
        self.station, self.view_keys = station, view_keys
        self._presets: dict[tuple, list[display.Preset]] = {}  # (node ID, image MTime) -> presets
        self._styled: set[tuple] = set()  # volumes given their modality's default preset
        self._annotations: dict[str, vtk.vtkCornerAnnotation] = {}  # view tag -> its caption
        self._captions: dict[str, tuple] = {}  # module -> (what its views show, their captions)
        self._observed: set[str] = set()
        state = station.state
        state.si_display_presets = []  # [{name, detail}] of the shown image
        state.si_display_preset = ""  # the preset in use ("" after a drag or a change by hand)
        state.si_display_invert = False
        state.si_display_wl = ""
        state.si_display_captions = []  # one line per view, as drawn in the views
        state.si_display_header = []  # [label, value] rows
        state.change("si_display_invert")(self._on_invert)
        interaction = self._interaction_node()
        interaction.AddObserver(slicer.vtkMRMLInteractionNode.InteractionModeChangedEvent, self._drag_adjusts_window)
        self._drag_adjusts_window()

    # ---- page ---------------------------------------------------------------------------------------------------

    def build(self) -> None:
        html.Div("Display", classes="text-subtitle-1 mt-4 mb-1")
        with html.Div(classes="d-flex flex-wrap ga-1", id="si-display-presets"):
            v3.VBtn("{{ preset.name }}", v_for=("preset in si_display_presets",), key=("preset.name",),
                    title=("preset.detail",), size="small", click=(self.on_preset, "[preset.name]"),
                    variant=("si_display_preset === preset.name ? 'flat' : 'tonal'",),
                    color=("si_display_preset === preset.name ? 'primary' : undefined",))
        with html.Div(classes="d-flex align-center ga-2"):
            v3.VSwitch(v_model=("si_display_invert",), label="Invert", density="compact", hide_details=True,
                       color="primary", id="si-display-invert", disabled=("!si_display_presets.length",))
            v3.VBtn("Reset display", click=self.on_reset, size="small", variant="text", id="si-display-reset",
                    prepend_icon="mdi-restore", disabled=("!si_display_presets.length",))
            html.Span("{{ si_display_wl }}", classes="text-caption", id="si-display-wl")
        html.Div("Left-drag in a view: window (left/right) and level (up/down).", classes="text-caption")
        with html.Div(id="si-display-captions", classes="text-caption"):
            html.Div("{{ caption }}", v_for=("caption in si_display_captions",), title=("caption",), style=ELLIPSIS)
        with html.Div(v_if=("si_display_header.length",), id="si-display-header",
                      classes="d-flex flex-wrap text-caption mt-1", style="column-gap: 12px;"):
            with html.Span(v_for=("row in si_display_header",), title=("row[0] + ': ' + row[1]",), style=ELLIPSIS):
                html.Span("{{ row[0] }}: ", classes="text-medium-emphasis")
                html.Span("{{ row[1] }}")

    # ---- callbacks ----------------------------------------------------------------------------------------------

    def on_preset(self, name: str) -> None:
        for node in self._volumes(self.station.flow):
            preset = next((p for p in self._presets_of(node) if p.name == name), None)
            if preset is not None:
                display.apply_preset(node.GetDisplayNode(), preset)
        self._publish_window(self.station.flow)

    def on_reset(self) -> None:
        """Each shown volume back to its modality's default preset, views fitted to the image."""
        flow = self.station.flow
        for node in self._volumes(flow):
            display.apply_preset(node.GetDisplayNode(), self._presets_of(node)[0])
        self.station.on_reset_views()

    def _on_invert(self, si_display_invert, **_kwargs) -> None:
        for node in self._volumes(self.station.flow):
            if bool(node.GetDisplayNode().GetInvertDisplayScalarRange()) != bool(si_display_invert):
                node.GetDisplayNode().SetInvertDisplayScalarRange(bool(si_display_invert))

    def _interaction_node(self):
        return self.station.slicer_app.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")

    def _drag_adjusts_window(self, *_args) -> None:
        """Left-drag adjusts the window/level (Slicer's AdjustWindowLevel mouse mode) whenever no point is being
        placed; the Segment Editor's effects take the drag first."""
        interaction = self._interaction_node()
        if interaction.GetCurrentInteractionMode() == slicer.vtkMRMLInteractionNode.ViewTransform:
            interaction.SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.AdjustWindowLevel)

    # ---- views --------------------------------------------------------------------------------------------------

    def show(self, flow) -> None:
        """Default preset on volumes shown for the first time, captions and hanging in the views, the page's
        display state."""
        for node in self._volumes(flow):
            key = (node.GetID(), node.GetImageData().GetMTime())
            if key not in self._styled:
                self._styled.add(key)
                display.apply_preset(node.GetDisplayNode(), self._presets_of(node)[0])
            if node.GetID() not in self._observed:
                self._observed.add(node.GetID())
                node.GetDisplayNode().AddObserver(vtk.vtkCommand.ModifiedEvent, lambda *_: self._window_changed())
        shown = (flow.layout, tuple((node.GetID(), node.GetImageData().GetMTime()) for node in self._volumes(flow)))
        if self._captions.get(flow.module, (None,))[0] != shown:  # a mammogram's hanging reads all its pixels
            self._captions[flow.module] = (shown, display.view_captions(flow))
        captions = self._captions[flow.module][1]
        for view in self.station.slicer_app.view_manager.get_slice_views():
            tag = view.get_singleton_tag()
            display.drag_adjusts_background_only(
                view.get_displayable_manager_by_class("vtkMRMLScalarBarDisplayableManager"))
            self._caption(view, captions.get(display.PRIMARY if flow.layout == "axial" else self.view_keys.get(tag)))
        self.station.state.si_display_captions = [" · ".join(part for part in (c.title, c.note) if part)
                                                  for c in captions.values()]
        primary = flow.primary
        self.station.state.si_display_header = ([list(row) for row in display.header_rows(primary)]
                                                if primary is not None else [])
        self._publish_window(flow)

    def lettered(self, view) -> list[str]:
        """The edges of a view that carry an orientation letter ("left", "right", "top", "bottom"), and "caption" once
        per line of its caption (upper right)."""
        annotation = self._annotations.get(view.get_singleton_tag())
        if annotation is None:
            return []
        caption = (annotation.GetText(display.UPPER_RIGHT) or "").strip()
        return [*(edge for position, edge in display.EDGE_POSITIONS.items()
                  if (annotation.GetText(position) or "").strip()), *["caption"] * len(caption.splitlines())]

    def _caption(self, view, caption) -> None:
        """Draw a caption and its edge letters in a slice view; hang it (mirror) as the caption says."""
        view_node = view.get_view_node()
        orientation = view_node.GetOrientation()
        display.hang(view_node, caption is not None and caption.mirrored)
        if view_node.GetOrientation() != orientation:
            view.fit_view_to_content()  # the mirrored image centred in its view again
        annotation = self._annotations.get(view.get_singleton_tag())
        if annotation is None:
            annotation = self._annotations[view.get_singleton_tag()] = display.caption_annotation()
            view.first_renderer().AddViewProp(annotation)
        display.draw_caption(annotation, caption, view_node)
        view.schedule_render()

    def _volumes(self, flow) -> list:
        """The volumes the views show as their background (the flow's first volume, or the side-by-side views')."""
        if flow.layout == "side-by-side":
            return [node for node in flow.view_volumes.values() if node is not None]
        return [flow.primary] if flow.primary is not None else []

    def _presets_of(self, node) -> list[display.Preset]:
        key = (node.GetID(), node.GetImageData().GetMTime())
        if key not in self._presets:
            flow = self.station.flow
            self._presets[key] = display.presets(display.MODALITY.get(flow.module, ""),
                                                 slicer.util.arrayFromVolume(node),
                                                 display.read_header(display.source_of(node)))
        return self._presets[key]

    def _window_changed(self) -> None:
        with self.station.state:
            self._publish_window(self.station.flow)

    def _publish_window(self, flow) -> None:
        """The primary volume's window/level, invert and matching preset on the page."""
        state = self.station.state
        volumes = self._volumes(flow)
        if not volumes:
            state.si_display_presets, state.si_display_preset, state.si_display_wl = [], "", ""
            return
        node = flow.primary if flow.primary in volumes else volumes[0]
        shown, presets = node.GetDisplayNode(), self._presets_of(node)
        state.si_display_presets = [{"name": p.name, "detail": p.detail} for p in presets]
        state.si_display_wl = display.window_level_text(shown)
        state.si_display_invert = bool(shown.GetInvertDisplayScalarRange())
        state.si_display_preset = next((p.name for p in presets if _matches(shown, p)), "")


def _matches(display_node, preset: display.Preset) -> bool:
    if bool(display_node.GetInvertDisplayScalarRange()) != preset.invert:
        return False
    if preset.window is None:
        return bool(display_node.GetAutoWindowLevel())
    tolerance = 1e-3 * max(abs(preset.level), preset.window)
    return (not display_node.GetAutoWindowLevel() and abs(display_node.GetWindow() - preset.window) < tolerance
            and abs(display_node.GetLevel() - preset.level) < tolerance)
