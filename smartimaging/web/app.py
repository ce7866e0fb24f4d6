"""`smartimaging app`: the browser reading station on trame-slicer.

Single-user mode: one server process holds one MRML scene; every browser tab connected to it shows and edits that
same scene. Run one station per reader (a different --port each).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import slicer
import vtk
from trame.app import TrameApp
from trame.ui.html import DivLayout
from trame.ui.vuetify3 import VAppLayout
from trame.widgets import client, html
from trame.widgets import vuetify3 as v3
from trame_server.utils.asynchronous import create_task
from trame_slicer import module as trame_slicer_module
from trame_slicer.app.logic import SegmentEditorLogic
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories
from trame_slicer.segmentation import SegmentationEffectPaint
from trame_slicer.views import Layout, LayoutDirection, SliceLayer, ViewLayoutDefinition, ViewProps, ViewType

from .. import __version__
from ..bonescan.flow import BoneScanFlow
from ..dce.flow import DCEFlow
from ..errors import CancelledError, InputError, SmartImagingError
from ..explain import plain_domain
from ..lvi.flow import LVIFlow
from ..mammo.flow import MammoFlow, parse_pixel_mm
from ..mammo.images import PIXEL_SIZE_HINTS
from ..reading import is_warning_row, style_heat_map
from ..result_nodes import DOMAIN_ROW
from ..wording import counted
from .bonescan_panel import BoneScanPanel
from .cases import UPLOAD_CHUNK_BYTES, Upload, UploadLimits, sample_cases, write_ahead
from .dce_regions_panel import DCERegionsPanel
from .display_panel import DisplayPanel
from .downloads_panel import DownloadsPanel
from .editor_panel import EditorPanel, bring_into_view, comparison_table
from .explain_panel import DOUBTFUL, GREYED
from .explain_panel import build as build_explanations
from .explain_panel import init_state as init_explanations
from .explain_panel import publish as publish_explanations
from .heatmap_panel import HeatMapPanel
from .pixel_field import PixelSizeField
from .proposal_panel import ProposalPanel
from .teaching_panel import TeachingPanel
from .training_panel import TrainingPanel
from .view_fit import FitWhenSized
from .view_gutter import slice_view_gutter
from .worklist_panel import WorklistPanel

logger = logging.getLogger(__name__)

FLOWS = {flow.module: flow for flow in (BoneScanFlow, MammoFlow, LVIFlow, DCEFlow)}  # the modules' reading flows
FIRST_MODULE = next(iter(FLOWS))  # the tab open at start
OPEN_MODULE = "si_open_module"  # a tab's click: the module it opens
VIEWS_TEMPLATE = "si_views"  # the template of the views' grid
SWITCHING_STYLE = "si_switching ? 'pointer-events: none; opacity: 0.7;' : ''"  # a tab clicked, not yet opened
FRAME_VIEWS = ("BoneScanFrame1", "BoneScanFrame2")  # view tags name state variables: no hyphens
SIDE_BY_SIDE_TAGS = {"DCE-T1": "DceT1", "DCE-Synthetic": "DceSynthetic", "DCE-Real": "DceReal",
                     "DCE-MIP": "DceMip", "DCE": "LviDce", "FS-T2WI": "LviT2"}  # the flow's views -> the station's
LINKED_TAGS = ("DceT1", "DceSynthetic", "DceReal", "LviDce", "LviT2")  # side-by-side views that move together
PAIRS = {("DCE-T1", "DCE-Real"): "t1-dce", ("DCE", "FS-T2WI"): "dce-t2"}  # two-view side-by-side layouts
SCROLLED_ROWS = 15  # a result table of more rows scrolls inside a fixed height (fixed header); shorter ones grow
LONG_WORD = 12  # a longer word in the result table may wrap after its hyphens (a model card id)
SHOWN_REASONS = 5  # the domain verdict's first reasons on the page; all of them in the tooltip
DOMAIN_CHIPS = {"inside": ("Inside training data", "success"), "outside": ("Outside training data", "error"),
                "unknown": ("Training data not checked", "grey")}
UPLOAD_STALL_S = 60  # an upload with no chunk for this long (tab closed, network lost) is dropped
UPLOAD_TRIGGERS = {"begin": "si_upload_begin", "chunk": "si_upload_chunk", "end": "si_upload_end"}

# A new result scrolls the left panel to it: the score, its warnings and its domain verdict are seen without
# scrolling, however long the case notes above them are.
SHOW_RESULT_SCRIPT = """
window.smartimagingShowResult = function () {
  setTimeout(() => document.getElementById("si-result")?.scrollIntoView({ block: "start" }), 300);
};
"""

# Sends the files chosen in a file input: names and sizes first (the server refuses an over-limit upload before any
# content is read), then each file in slices of UPLOAD_CHUNK_BYTES, one message each, so neither the browser nor the
# server holds a whole file; stops at the first chunk the server refuses. The input is emptied afterwards, so choosing
# the same files again (after a refusal) uploads them again.
UPLOAD_SCRIPT = f"""
window.smartimagingUpload = async function (input) {{
  const triggers = {json.dumps(UPLOAD_TRIGGERS)};
  const files = Array.from(input.files || []);
  if (!files.length) return;
  try {{
    const manifest = files.map((file) => ({{ name: file.name, size: file.size }}));
    const upload = await trame.trigger(triggers.begin, [manifest]);
    if (upload === null) return;
    try {{
      for (let index = 0; index < files.length; index++) {{
        for (let offset = 0; offset < files[index].size; offset += {UPLOAD_CHUNK_BYTES}) {{
          const data = new DataView(await files[index].slice(offset, offset + {UPLOAD_CHUNK_BYTES}).arrayBuffer());
          if (!(await trame.trigger(triggers.chunk, [upload, index, offset, data]))) return;
        }}
      }}
    }} catch (error) {{
      await trame.trigger(triggers.end, [upload, String(error)]);
      return;
    }}
    await trame.trigger(triggers.end, [upload, ""]);
  }} finally {{
    input.value = "";
  }}
}};
"""


def _slice_view(tag: str, label: str, color: str, group: int = 0) -> ViewLayoutDefinition:
    """An axial slice view; linked views follow each other within their view group only."""
    return ViewLayoutDefinition(tag, ViewType.SLICE_VIEW, ViewProps(label=label, orientation="Axial", color=color,
                                                                    group=group))


LAYOUTS = {  # by Flow.layout
    "axial": Layout(LayoutDirection.Vertical, [ViewLayoutDefinition.axial_view()]),
    "frames": Layout(LayoutDirection.Horizontal, [_slice_view(FRAME_VIEWS[0], "1", "#F34A33"),
                                                  _slice_view(FRAME_VIEWS[1], "2", "#6DAD4A")]),
    "side-by-side": Layout(LayoutDirection.Vertical, [
        Layout(LayoutDirection.Horizontal, [_slice_view("DceT1", "T1", "#E17012"),
                                            _slice_view("DceSynthetic", "Synthetic DCE", "#4A90D9")]),
        Layout(LayoutDirection.Horizontal, [_slice_view("DceReal", "Real DCE", "#30A070"),
                                            _slice_view("DceMip", "Subtraction MIP", "#A050C0", group=1)])]),
    "t1-dce": Layout(LayoutDirection.Horizontal, [_slice_view("DceT1", "T1", "#E17012"),
                                                  _slice_view("DceReal", "Real DCE", "#30A070")]),
    "dce-t2": Layout(LayoutDirection.Horizontal, [_slice_view("LviDce", "DCE", "#E17012", group=2),
                                                  _slice_view("LviT2", "FS-T2WI", "#4A90D9", group=2)]),
}


def station_layout(flow) -> str:
    """The station's layout (LAYOUTS) for a flow's: a side-by-side flow with two volumes gets two views."""
    shown = tuple(view for view, volume in flow.view_volumes.items() if volume is not None)
    return PAIRS.get(shown, flow.layout) if flow.layout == "side-by-side" else flow.layout


class ReadingStation(TrameApp):
    """The page and its callbacks; all image work goes through `flows` (the modules' MRML adapters)."""

    def __init__(self, server=None, device: str = "cpu", models_dir: str | None = None,
                 upload_limits: UploadLimits | None = None):
        super().__init__(server, client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.slicer_app = SlicerApp()
        register_rca_factories(self.slicer_app.view_manager, self.server, slice_view_ui_f=slice_view_gutter)  # no 3D
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        self.layout_manager.register_layout_dict(LAYOUTS)
        self.editor_logic = SegmentEditorLogic(self.server, self.slicer_app)
        self.editor_panel = EditorPanel(self)
        self.heatmap_panel = HeatMapPanel(self)
        self.dce_regions_panel = DCERegionsPanel(self, SIDE_BY_SIDE_TAGS)  # enhancing regions outlined
        self.flows = {module: flow(self.slicer_app.scene, device, models_dir) for module, flow in FLOWS.items()}
        self.flows[MammoFlow.module].pixel_hint = PIXEL_SIZE_HINTS["station"]  # its warnings point to this page
        self.cases = sample_cases()
        self._scratch = tempfile.TemporaryDirectory(prefix="smartimaging-station-")
        self.upload_limits = upload_limits or UploadLimits()
        self._upload: Upload | None = None  # the upload being received
        self._upload_ids = itertools.count(1)
        self._upload_id = 0
        self._upload_module = FIRST_MODULE  # the module the upload being received is for
        self._case_uploads: dict[str, dict[str, Path]] = {m: {} for m in FLOWS}  # module -> role -> upload folder
        self._loaded_sample: dict[str, str | None] = dict.fromkeys(FLOWS)  # the sample case of each tab (not uploads)
        self.pixel_field = PixelSizeField()  # "Pixel size mm": the loaded mammogram's, or the reader's typed value
        self._observed: set[str] = set()
        self._view_fit = FitWhenSized(lambda view: self.display.lettered(view))  # views clear of their letters
        self._previous_point: list[float] | None = None  # the lesion point before the reader placed a new one
        self._init_state()
        self.worklist_panel = WorklistPanel(self)
        self.training_panel = TrainingPanel(self)  # the Model selector; Train / Evaluate on the worklist's cohort
        self.proposal_panel = ProposalPanel(self)  # the network Segment uses; fine-tuning on the worklist's cohort
        self.downloads_panel = DownloadsPanel(self, Path(self._scratch.name) / "downloads")
        self.teaching_panel = TeachingPanel(self, Path(self._scratch.name) / "teaching")  # student mode, score sheet
        self.display = DisplayPanel(self, {**{tag: f"frame {index}" for index, tag in enumerate(FRAME_VIEWS)},
                                           **{tag: view for view, tag in SIDE_BY_SIDE_TAGS.items()}})
        self._build_ui()
        self.layout_manager.set_layout("frames")
        self.server.controller.on_server_ready.add(self._warm_up)

    def _warm_up(self, **_kwargs) -> None:
        """Import torch and the in-process segmenters in the background, so the first Segment does not wait; show
        the first bone-scan sample case; write the other modules' first cases ahead."""
        create_task(asyncio.to_thread(_import_network_code))
        self._preload()
        create_task(asyncio.to_thread(write_ahead, self.cases, Path(self._scratch.name)))

    @property
    def flow(self):
        return self.flows[self.state.si_module]

    def _init_state(self) -> None:
        state = self.state
        state.trame__title = "SmartImaging reading station"
        state.si_module = FIRST_MODULE
        state.si_switching = None  # the page's own: the tab clicked until the server opened it
        state.client_only("si_switching")
        state.si_samples = {m: [c.name for c in cases] for m, cases in self.cases.items()}
        state.si_sample = self.cases[FIRST_MODULE][0].name
        state.si_roles = {m: [{"value": r, "title": f.role_labels[r]} for r in f.roles] for m, f in FLOWS.items()}
        state.si_role = FLOWS[FIRST_MODULE].roles[0]
        state.si_compute_label = {m: f.compute_label for m, f in FLOWS.items()}
        state.si_needs_segment = {m: f.needs_segment for m, f in FLOWS.items()}
        state.si_places_point = {m: f.places_point for m, f in FLOWS.items()}
        state.si_kinds = {m: list(f.kinds) for m, f in FLOWS.items()}
        state.si_takes_pixel_size = {m: f.takes_pixel_size for m, f in FLOWS.items()}
        state.si_kind = "mass"
        state.si_pixel_mm = ""
        state.si_busy = False
        state.si_steps_done = 0
        state.si_results_shown = 0  # counts computed results: each one scrolls the panel to it
        state.si_cancellable = False
        state.si_progress = 0
        state.si_message = ""
        state.si_errors = {m: "" for m in FLOWS}  # each module's last refusal, shown in that module only
        state.si_upload_key = 0  # a new value empties the file input (it re-renders)
        state.si_case = {m: "" for m in FLOWS}
        state.si_has_segmentation = {m: False for m in FLOWS}
        state.si_segments = {m: "" for m in FLOWS}
        state.si_stale = {m: False for m in FLOWS}
        state.si_roi_source = {m: "" for m in FLOWS}  # of the segmentation being edited
        state.si_result_roi_source = {m: "" for m in FLOWS}  # of the segmentation the result was computed from
        state.si_domain = {m: None for m in FLOWS}  # the result's domain check {verdict, reasons, text}
        state.si_domain_chips = {v: {"text": text, "color": color} for v, (text, color) in DOMAIN_CHIPS.items()}
        state.si_draw_hints = {m: f.draw_hint for m, f in FLOWS.items()}
        state.si_offer_draw = {m: False for m in FLOWS}  # Segment failed: the error points to Draw ROI by hand
        state.si_headline = {m: "" for m in FLOWS}
        state.si_warnings = {m: [] for m in FLOWS}
        state.si_columns = {m: [] for m in FLOWS}
        state.si_rows = {m: [] for m in FLOWS}
        state.si_notes = {m: [] for m in FLOWS}
        state.si_layout = {m: "axial" for m in FLOWS}  # the station's layout (LAYOUTS) of each module's case
        state.si_placing = False
        state.si_view_free = {}  # view tag -> pixels kept free along each edge by the last fit (view_fit)
        state.si_compare = {m: [] for m in FLOWS}  # the result's AI-vs-edited rows
        init_explanations(state, FLOWS)
        state.change("si_module")(self._on_module_changed)
        state.change("si_kind")(self._on_kind_changed)

    # ---- page ---------------------------------------------------------------------------------------------------

    def _build_ui(self) -> None:
        for name, handler in zip(UPLOAD_TRIGGERS.values(), (self._on_upload_begin, self._on_upload_chunk,
                                                            self._on_upload_end), strict=True):
            self.server.trigger(name)(handler)
        with VAppLayout(self.server, full_height=True) as self.ui:
            self.ui.root.theme = "dark"
            client.Script(UPLOAD_SCRIPT)
            client.Script(SHOW_RESULT_SCRIPT)
            client.ClientStateChange(value="si_results_shown", change="window.smartimagingShowResult()")
            client.ClientStateChange(value="si_module",  # the clicked tab opened: the page takes clicks again
                                     change="si_switching = si_module === si_switching ? null : si_switching")
            self.server.trigger(OPEN_MODULE)(self.on_open_module)
            with v3.VAppBar(density="compact"):
                v3.VToolbarTitle("SmartImaging reading station", classes="flex-grow-0 mr-4")
                # Each click tells the server which tab; only the server sets si_module (the page's echo of an older
                # click would undo a later one). Until it has, the clicked tab is shown selected (si_switching, the
                # page's own) and the panels and views take no click: they still show the module left.
                with v3.VTabs(model_value=("si_switching || si_module",), update_modelValue="null",
                              density="compact", disabled=("si_busy",)):
                    for module, flow in FLOWS.items():
                        v3.VTab(flow.title, value=module,
                                click=f"si_switching = si_switching || '{module}' !== si_module ? '{module}' : null; "
                                      f"trigger('{OPEN_MODULE}', ['{module}'])")
                v3.VSpacer()
                v3.VChip("Demo weights, not for clinical use", color="warning", size="small", classes="mr-2")
                html.Span(f"v{__version__}", classes="text-caption mr-3")
            with (v3.VNavigationDrawer(width=440, permanent=True, location="left"),
                  html.Div(classes="pa-3", style=(SWITCHING_STYLE,))):
                self._case_panel()  # the reading of one case first, top to bottom as the work goes
                self.display.build()
                self._step_panel()
                self._result_panel()
                self.worklist_panel.build()  # then the cohort: save and move on, teach, learn from the corrections
                self.teaching_panel.build()
                self.training_panel.build()
                self.proposal_panel.build()
                self.training_panel.build_training()
            with v3.VNavigationDrawer(width=340, permanent=True, location="right",  # views keep their size
                                      v_if=("si_needs_segment[si_module]",)), html.Div(style=(SWITCHING_STYLE,)):
                self.editor_ui = self.editor_panel.build()  # (DCE synthesis has no ROI)
                self.editor_logic.set_ui(self.editor_ui)
            with v3.VMain(), html.Div(style=(f"'height: calc(100vh - 48px); display: flex; ' + ({SWITCHING_STYLE})",)):
                client.ServerTemplate(name=VIEWS_TEMPLATE)
        # The views' grid is a template of its own: another layout (a module opened, a result's views) replaces only
        # it; in the page's template the whole page would be built again (the keyboard focus and open menus lost).
        with DivLayout(self.server, template_name=VIEWS_TEMPLATE, connect_parent=False,
                       style="height: 100%; width: 100%; display: flex;") as self.views_ui:
            self.layout_manager.initialize_layout_grid(self.views_ui)

    def _case_panel(self) -> None:
        html.Div("1. Case", classes="text-subtitle-1 mb-1")
        with html.Div(classes="d-flex align-center"):
            v3.VSelect(v_model=("si_sample",), items=("si_samples[si_module]",), label="Sample case",
                       density="compact", hide_details=True, disabled=("si_busy",))
            v3.VBtn("Load sample", click=self.on_load_sample, disabled=("si_busy || !si_sample",), classes="ml-2",
                    color="primary", variant="tonal")
        with html.Div(classes="d-flex align-center mt-2"):
            v3.VSelect(v_model=("si_role",), items=("si_roles[si_module]",), label="Upload as",
                       density="compact", hide_details=True, disabled=("si_busy",))
        v3.VFileInput(
            label="Upload image file(s): one file, or all files of one DICOM series",
            multiple=True, density="compact", hide_details=True, classes="mt-2", disabled=("si_busy",),
            id="si-upload", change="window.smartimagingUpload($event.target)", key=("si_upload_key",))
        with html.Div(v_if=("si_kinds[si_module].length || si_takes_pixel_size[si_module]",), classes="d-flex mt-2"):
            v3.VSelect(v_model=("si_kind",), items=("si_kinds[si_module]",), label="Lesion kind",
                       v_if=("si_kinds[si_module].length",), density="compact", hide_details=True,
                       disabled=("si_busy",))
            v3.VTextField(v_model=("si_pixel_mm",), label="Pixel size mm (PNG/PGM)", density="compact",
                          v_if=("si_takes_pixel_size[si_module]",), hide_details=True, classes="ml-2",
                          disabled=("si_busy",), input=self.pixel_field.typed)  # typed: the reader's value
        html.Div("{{ si_case[si_module] || 'No case loaded' }}", classes="text-body-2 mt-2", id="si-case")
        with html.Div(v_for=("note in si_notes[si_module]",), classes="text-caption"):
            html.Span("{{ note }}")

    def _step_panel(self) -> None:
        html.Div("2. Segment, edit, compute", classes="text-subtitle-1 mt-4 mb-1")
        with html.Div(classes="d-flex flex-wrap ga-2"):
            v3.VBtn("Place lesion point", v_if=("si_places_point[si_module]",),
                    click=self.on_place_point, disabled=("si_busy || !si_case[si_module]",),
                    color=("si_placing ? 'warning' : undefined",), variant="tonal")
            v3.VBtn("Segment", v_if=("si_needs_segment[si_module]",), click=self.on_segment,
                    disabled=("si_busy || !si_case[si_module] || si_teach_blocks[si_module].segment",), color="primary")
            v3.VBtn("Draw ROI by hand", v_if=("si_needs_segment[si_module]",), click=self.on_draw_by_hand,
                    disabled=("si_busy || !si_case[si_module] || si_teach_blocks[si_module].draw",), variant="tonal",
                    prepend_icon="mdi-pencil")
            v3.VBtn("{{ si_compute_label[si_module] }}", click=self.on_compute, color="success",
                    disabled=("si_busy || !si_case[si_module] || si_teach_blocks[si_module].compute || "
                              "(si_needs_segment[si_module] && !si_has_segmentation[si_module])",))
            v3.VBtn("Reset views", click=self.on_reset_views, disabled=("si_busy",), variant="text",
                    prepend_icon="mdi-fit-to-screen-outline")
            v3.VBtn("Cancel", v_if=("si_cancellable",), click=self.on_cancel, color="error", variant="tonal")
        with html.Div(v_if=("si_placing",), classes="text-caption mt-1"):
            html.Span("Click on the lesion in the view to place the point.")
        v3.VProgressLinear(v_if=("si_busy",), model_value=("si_progress",), height=6, classes="mt-3",
                           color="primary", indeterminate=("si_progress === 0",))
        html.Div("{{ si_message }}", v_if=("si_busy",), classes="text-caption", id="si-progress")
        html.Span("{{ si_steps_done }}", id="si-steps-done", style="display: none;")
        with v3.VAlert(v_if=("si_errors[si_module]",), type="error", density="compact", classes="mt-2", id="si-error"):
            html.Div("{{ si_errors[si_module] }}")
            html.Div("Way forward: press “Draw ROI by hand” and draw it yourself in the Segment Editor.",
                     v_if=("si_offer_draw[si_module]",), classes="mt-1 font-weight-bold", id="si-draw-offer")

    def _result_panel(self) -> None:
        html.Div("{{ si_segments[si_module] }}", v_if=("si_segments[si_module]",), classes="text-body-2 mt-2",
                 id="si-segments")
        html.Div("ROI: {{ si_roi_source[si_module] }}", v_if=("si_roi_source[si_module]",), classes="text-body-2",
                 id="si-roi-source")
        v3.VAlert(v_if=("si_roi_source[si_module].startsWith('classical')",), type="info", variant="tonal",
                  density="compact", classes="mt-1", id="si-classical-note",
                  text="The AI found no lesion at the point; this ROI is a classical proposal (region growing from "
                       "the point). Check and correct it in the Segment Editor, or press “Draw ROI by hand”.")
        html.Div("{{ si_draw_hints[si_module] }}", v_if=("si_roi_source[si_module] === 'drawn by the reader'",),
                 classes="text-caption", id="si-draw-hint")
        html.Div("3. Result", classes="text-subtitle-1 mt-4 mb-1", id="si-result")
        v3.VAlert(v_if=("si_stale[si_module]",), text="The segmentation was edited after this result: compute again.",
                  type="warning", variant="tonal", density="compact", classes="mb-2", id="si-stale")
        with v3.VAlert(v_if=("si_warnings[si_module].length",), type="warning", density="compact", classes="mb-2",
                       id="si-warnings", title="Warning about this result"):
            html.Div("{{ warning }}", v_for=("warning in si_warnings[si_module]",), classes="text-body-2 mt-1")
        with html.Div(classes="d-flex align-center flex-wrap ga-2"):
            html.Div("{{ si_headline[si_module] }}", id="si-headline", classes=(
                "'text-h6' + (si_stale[si_module] ? ' text-disabled text-decoration-line-through' : '') + "
                "(si_domain[si_module]?.verdict === 'outside' ? ' text-disabled' : '')",))
            v3.VChip("{{ si_domain_chips[si_domain[si_module].verdict].text }}", v_if=("si_domain[si_module]",),
                     color=("si_domain_chips[si_domain[si_module].verdict].color",), size="small",
                     variant="flat", label=True, id="si-domain-chip",
                     prepend_icon=("si_domain[si_module].verdict === 'inside' ? 'mdi-check-circle' : "
                                   "'mdi-alert-circle'",))
        with v3.VAlert(v_if=("si_domain[si_module] && si_domain[si_module].verdict !== 'inside'",),
                       type=("si_domain[si_module].verdict === 'outside' ? 'error' : 'info'",), variant="tonal",
                       density="compact", classes="mt-1", id="si-domain"):
            html.Div("This image is unlike the images the model was trained on: the score is greyed and may be "
                     "meaningless here. Why:", v_if=("si_domain[si_module].verdict === 'outside'",),
                     classes="font-weight-bold")
            html.Div("Not checked against the model's training data: nothing tells whether this image resembles "
                     "the images the model learned from. Why:", v_if=("si_domain[si_module].verdict === 'unknown'",),
                     classes="font-weight-bold")
            html.Div("{{ reason }}", v_for=("(reason, index) in (si_domain[si_module].reasons.length ? "
                                            f"si_domain[si_module].reasons.slice(0, {SHOWN_REASONS}) : "
                                            "[si_domain[si_module].text])",),
                     classes="text-body-2", title=("(si_domain[si_module].raw || [])[index] || ''",))  # raw names
            html.Div("and {{ si_domain[si_module].more }} (hover)",
                     v_if=("si_domain[si_module].more",), classes="text-body-2",
                     title=("si_domain[si_module].reasons.join('\\n')",), id="si-domain-more")
        build_explanations()  # the result's warnings (borderline, disagreement...) and "Explain this result"
        comparison_table()
        html.Div("Domain check: {{ si_domain[si_module].text }}",
                 v_if=("si_domain[si_module]?.verdict === 'inside'",), classes="text-body-2", id="si-domain-text")
        html.Div("ROI of this result: {{ si_result_roi_source[si_module] }}",
                 v_if=("si_headline[si_module] && si_result_roi_source[si_module]",), classes="text-body-2",
                 id="si-result-roi-source")
        html.Div("Views: T1 | synthetic DCE (top), real DCE | synthetic subtraction MIP (bottom); the first three "
                 "scroll, zoom and pan together.",
                 v_if=("si_layout[si_module] === 'side-by-side'",), classes="text-caption")
        html.Div("No real DCE was loaded: the real DCE view (bottom left) stays empty and nothing measures how "
                 "close the synthetic DCE is to the truth.", classes="text-caption text-warning",
                 v_if=("si_layout[si_module] === 'side-by-side' && si_headline[si_module].includes('no real DCE')",))
        with v3.VTable(density="compact", v_if=("si_rows[si_module].length",), id="si-result-table",
                       height=(f"si_rows[si_module].length > {SCROLLED_ROWS} ? '360px' : undefined",),
                       fixed_header=True, classes=("si_stale[si_module] ? 'text-disabled' : ''",)):
            with html.Thead(), html.Tr():
                html.Th("{{ column }}", v_for=("column in si_columns[si_module]",), style="padding: 0 4px;")
            with html.Tbody(), html.Tr(v_for=("(row, rowIndex) in si_rows[si_module]",), classes=(
                    f"{DOUBTFUL} && si_row_scores[si_module][rowIndex] ? '{GREYED}' : ''",)):
                # Every column fits the panel: a cell wraps at spaces, and a long identifier also after its hyphens
                # ("lvi-dce-⏎resnet10-3d-demo"), never elsewhere inside a word; the full text is also the cell's
                # tooltip, a plain feature name's tooltip its pyradiomics name.
                with html.Td(v_for=("(cell, cellIndex) in row",), style="font-size: 13px; padding: 0 4px;",
                             title=("!cellIndex && si_row_titles[si_module][rowIndex] || cell",)):
                    with html.Template(v_for=("(word, index) in String(cell).split(' ')",)):
                        with html.Template(v_for=(f"(piece, at) in (word.length > {LONG_WORD} ? word.split(/(?<=-)/) "
                                                  ": [word])",)):
                            html.Wbr(v_if=("at",))
                            html.Span("{{ piece }}", style="white-space: nowrap;")
                        html.Span("{{ ' ' }}", v_if=("index < String(cell).split(' ').length - 1",))
        self.downloads_panel.build()  # the current result's report and CSV
        self.heatmap_panel.build()
        self.dce_regions_panel.build()
        self.bonescan_panel = BoneScanPanel(self)  # the bone scan's lesion list and follow-up
        self.bonescan_panel.build()

    # ---- callbacks ----------------------------------------------------------------------------------------------

    def on_open_module(self, module: str) -> None:
        """A module's tab clicked: it opens (a click that reached the server while a step runs too: the step's
        views then stay this tab's)."""
        if module in self.flows:
            self.state.si_module = module

    def on_load_sample(self) -> None:
        self.worklist_panel.when_saved(self.state.si_module, lambda: create_task(self._run(self._load_sample)))

    def on_segment(self) -> None:
        self._start(self._segment)

    def on_draw_by_hand(self) -> None:
        self._start(self._draw_by_hand)

    def on_compute(self) -> None:
        self._start(self._compute)

    def _start(self, step) -> None:
        """Run a step of the open module: it stays that module's step when the tab changes before it starts."""
        module = self.state.si_module
        create_task(self._run(lambda progress: step(progress, module), module))

    def on_reset_views(self) -> None:
        self._show(self.flow, fit=True)

    def on_cancel(self) -> None:
        if self._upload is not None:
            self._drop_upload("Upload cancelled: nothing was loaded")
        else:
            self.flow.cancel()

    def on_place_point(self) -> None:
        flow = self.flow
        node = flow.ensure_point_node()
        self._previous_point = None
        if flow.has_point:
            self._previous_point = [0.0, 0.0, 0.0]
            node.GetNthControlPointPositionWorld(node.GetNumberOfControlPoints() - 1, self._previous_point)
        node.RemoveAllControlPoints()
        if f"point {node.GetID()}" not in self._observed:
            node.AddObserver(node.PointPositionDefinedEvent, self._on_point_placed)
            self._observed.add(f"point {node.GetID()}")
        self.slicer_app.markups_logic.place_node(node)
        self.state.si_placing = True

    def _on_point_placed(self, *_args) -> None:
        """A point off the image is refused at once and the previous point (the sample's, or the reader's last) is
        kept, so that Segment still works."""
        self.slicer_app.markups_logic.disable_place_mode()
        flow, module = self.flow, self.state.si_module
        node = flow.point_node
        if node is None or not node.GetNumberOfControlPoints():
            return
        placed = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(node.GetNumberOfControlPoints() - 1, placed)
        refused = not flow.point_on_image(placed)
        node.SetNthControlPointLabel(node.GetNumberOfControlPoints() - 1, "lesion")  # not the node's own name
        if refused:
            node.RemoveAllControlPoints()
            if self._previous_point is not None:
                node.AddControlPointWorld(vtk.vtkVector3d(*self._previous_point), "lesion")
        with self.state:
            self.state.si_placing = False
            self._set_error(module, "The point lies outside the image and was not kept: place it on the lesion"
                            if refused else "")

    def _on_module_changed(self, si_module, **_kwargs) -> None:
        flow = self.flows[si_module]  # the field shows the tab's loaded sample, none for an upload
        self.state.si_sample = self.cases[si_module][0].name if flow.primary is None else self._loaded_sample[si_module]
        self.state.si_role = FLOWS[si_module].roles[0]
        self._show(self.flows[si_module], fit=True)
        self._preload()

    def _preload(self) -> None:
        """A module opened for the first time loads its worker models in the background and shows its first
        sample case."""
        self.flow.warm_up()
        if self.flow.primary is None and not self.state.si_busy:
            module = self.state.si_module  # the tab may change before the step starts: it loads this module's case
            create_task(self._run(lambda progress: self._load_sample(progress, module), module))

    def _on_kind_changed(self, si_kind, **_kwargs) -> None:
        for flow in self.flows.values():
            if si_kind in flow.kinds:
                flow.set_kind(si_kind)
        self.editor_panel.show(self.flow)  # the ROI's new name in the editor
        self._publish(self.flow)  # and in the segment sizes

    # ---- uploads ------------------------------------------------------------------------------------------------

    def _on_upload_begin(self, manifest) -> int | None:
        """Check the declared names and sizes; the id the page sends its chunks with, or None when refused."""
        module = self.state.si_module
        if self.state.si_busy and self._upload is None:
            self._set_error(module, "Wait until the running step is over, then upload again")
            self._clear_upload_field()
            return None
        self._drop_upload()  # an unfinished upload (a closed or reloaded tab) gives way
        try:
            self._upload = Upload(Path(self._scratch.name), manifest, self.upload_limits)
        except InputError as exc:
            self._set_error(module, str(exc))
            self._clear_upload_field()
            return None
        except OSError as exc:
            self._set_error(module, f"The upload could not be saved: {exc}")
            self._clear_upload_field()
            return None
        self._upload_module = module
        self._upload_id = next(self._upload_ids)
        self.state.si_busy = self.state.si_cancellable = True
        self.state.si_progress = 0
        self._set_error(module, "")
        self.state.si_message = self._upload.status()
        asyncio.get_running_loop().call_later(UPLOAD_STALL_S, self._check_upload_stalled, self._upload_id)
        return self._upload_id

    def _on_upload_chunk(self, upload_id, index, offset, data) -> bool:
        """Write one chunk to disk; False stops the page's upload (refused, or replaced by a newer one)."""
        if self._upload is None or upload_id != self._upload_id:
            return False
        try:
            self._upload.write(index, offset, data)
        except (InputError, OSError) as exc:
            self._drop_upload(str(exc) if isinstance(exc, InputError) else f"The upload could not be saved: {exc}")
            return False
        self.state.si_progress = round(100 * self._upload.fraction)
        self.state.si_message = self._upload.status(index)
        return True

    def _on_upload_end(self, upload_id, message: str) -> None:
        """Every file arrived (or the browser failed, `message`): load them as a step of its own, so that its
        progress reaches the page."""
        if self._upload is None or upload_id != self._upload_id:
            return
        upload, self._upload = self._upload, None
        self.state.si_cancellable = False
        try:
            if message:
                raise InputError(f"The upload failed in the browser: {message}")
            paths = upload.finish()
        except InputError as exc:
            upload.discard()
            self.state.si_busy = False
            self._set_error(self._upload_module, str(exc))
            self._clear_upload_field()
            return
        self._clear_upload_field()  # the case line tells what was loaded, the error what was refused
        create_task(self._run(lambda progress: self._load_upload(upload.folder, paths, progress)))

    def _check_upload_stalled(self, upload_id: int) -> None:
        if self._upload is None or upload_id != self._upload_id:
            return
        idle = time.monotonic() - self._upload.last_chunk
        if idle < UPLOAD_STALL_S:
            asyncio.get_running_loop().call_later(UPLOAD_STALL_S - idle, self._check_upload_stalled, upload_id)
            return
        with self.state:
            self._drop_upload(f"The upload stopped: nothing arrived for {UPLOAD_STALL_S} s (tab closed or "
                              "connection lost); upload again")

    def _drop_upload(self, message: str = "") -> None:
        """Delete the upload being received, if any; `message` tells the reader why."""
        if self._upload is None:
            return
        self._upload.discard()
        self._upload = None
        self.state.si_busy = self.state.si_cancellable = False
        if message:  # stopped (not replaced by a newer upload, whose files the field now shows)
            self._clear_upload_field()
            self._set_error(self._upload_module, message)

    def _clear_upload_field(self) -> None:
        """Empty the page's file input (re-rendered): a refused or loaded upload leaves no file name in it that
        would read as "this file is loaded"."""
        self.state.si_upload_key += 1

    def _set_error(self, module: str, message: str) -> None:
        """Show `message` (or nothing) as the error of `module`, in that module's panel only."""
        self.state.si_errors = {**self.state.si_errors, module: message}

    def _release_uploads(self, module: str, role: str) -> None:
        """Delete the uploaded files of the images that left the module's case after `role` was loaded: all of them
        for a new case (the module's first role), else the previous image of `role`."""
        uploads = self._case_uploads[module]
        for old_role in [r for r in uploads if role == FLOWS[module].roles[0] or r == role]:
            shutil.rmtree(uploads.pop(old_role), ignore_errors=True)

    async def _run(self, step, module: str | None = None) -> None:
        """Run a step of `module` (the open one by default) with the page's progress bar, showing a clear message for
        bad input."""
        flow = self.flows[module] if module else self.flow
        with self.state:
            self.state.si_busy, self.state.si_progress = True, 0
            self.state.si_message = "starting"
            self._set_error(flow.module, "")  # a new attempt: the module's previous refusal is over
            self.state.si_offer_draw = {**self.state.si_offer_draw, flow.module: False}

        def progress(fraction: float, message: str) -> None:
            with self.state:
                self.state.si_progress = round(100 * fraction)
                self.state.si_message = message
                self.state.si_cancellable = flow.worker is not None

        try:
            await step(progress)
        except (SmartImagingError, CancelledError) as exc:
            with self.state:
                self._set_error(flow.module, str(exc))
        except Exception as exc:  # an unexpected failure must reach the reader, not only the log
            logger.exception("step failed")
            with self.state:
                self._set_error(flow.module, f"Unexpected error ({type(exc).__name__}): {exc}")
        finally:
            with self.state:
                self.state.si_busy = self.state.si_cancellable = False
                self.state.si_steps_done += 1
                self._publish(flow)

    async def _load_sample(self, progress, module: str | None = None) -> None:
        """Load the chosen sample case of the open module, or the first case of `module`."""
        case = (next(c for c in self.cases[self.state.si_module] if c.name == self.state.si_sample) if module is None
                else self.cases[module][0])
        module = case.module
        progress(0.1, f"Load sample: writing the files of {case.name}")
        files = case.write(case.folder(Path(self._scratch.name)))
        flow = self.flows[module]
        typed = self.pixel_field.reader_value(self.state.si_pixel_mm) if flow.takes_pixel_size else ""
        pixel_mm = files.pixel_mm if files.pixel_mm is not None else parse_pixel_mm(typed)  # the reader's, if none
        flow.set_case_options(files.kind, pixel_mm)
        if flow.kinds:
            self.state.si_kind = flow.kind
        self.slicer_app.segmentation_editor.clear()  # before the previous case's nodes leave the scene
        for index, (role, path) in enumerate(files.volumes.items()):
            progress(0.3 + 0.6 * index / len(files.volumes),
                     f"Load sample: reading the {role} image ({index + 1} of {len(files.volumes)})")
            flow.load(role, path, case.name if len(files.volumes) == 1 else f"{case.name} {role}")  # not "scan scan"
        self._release_uploads(module, flow.roles[0])
        if files.point_lps is not None:
            flow.set_point_lps(files.point_lps)
        self._set_case(module, f"{case.name}: {case.description}", [*files.notes, *flow.notes()])
        self._case_loaded(flow, case.name, files.pixel_mm is None and bool(typed))
        self._show(flow, fit=True)

    async def _load_upload(self, folder: Path, paths: list[Path], progress) -> None:
        """Load uploaded files as the image of the chosen role; refused files are deleted at once."""
        module, flow = self.state.si_module, self.flow
        role = self.state.si_role
        try:
            if len(paths) > 1 and not flow.reads_series:
                raise InputError(f"{flow.title} reads one image file; {len(paths)} files were uploaded")
            progress(0.5, f"Upload: reading the {role} image ({counted(len(paths), 'file')})")
            typed = self.pixel_field.reader_value(self.state.si_pixel_mm) if flow.takes_pixel_size else ""
            if flow.takes_pixel_size:
                flow.set_pixel_size(typed)
            source = paths[0] if len(paths) == 1 else folder
            try:
                image = flow.read(role, source)  # a refused file leaves the scene and the editor as they were
            except InputError as exc:  # the reader sees the names they chose, not the station's folders
                raise InputError(str(exc).replace(f"{folder}{os.sep}", "").replace(
                    f"folder {folder}", f"upload ({len(paths)} files)").replace(str(folder), "the upload")) from exc
            if role == flow.roles[0]:
                self.slicer_app.segmentation_editor.clear()  # before the previous case's nodes leave the scene
            flow.load(role, source, paths[0].stem if len(paths) == 1 else f"{paths[0].stem} series", image)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._release_uploads(module, role)
        self._case_uploads[module][role] = folder
        if role == flow.roles[0]:
            self._set_case(module, f"Uploaded: {', '.join(p.name for p in paths[:3])}"
                           + (f" and {len(paths) - 3} more" if len(paths) > 3 else ""), flow.notes())
            self._case_loaded(flow, None, bool(typed))
        else:
            self._set_case(module, self.state.si_case[module] + f" · {role}: {source.name}", flow.notes())
        self._show(flow, fit=True)

    def _case_loaded(self, flow, sample: str | None, pixel_by_reader: bool) -> None:
        """A new case in `flow`'s tab: its sample case (None: an upload) and its pixel size in the page's fields (none
        while the tab shows no image: a worklist case waiting for its pixel size shows no earlier image's)."""
        self._loaded_sample[flow.module] = sample
        if flow.module == self.state.si_module:
            self.state.si_sample = sample
        if flow.takes_pixel_size:
            shown = flow.mammogram if flow.primary is not None else None
            self.state.si_pixel_mm = self.pixel_field.loaded(shown, pixel_by_reader)

    def _set_case(self, module: str, description: str, notes: list[str]) -> None:
        self.state.si_case = {**self.state.si_case, module: description}
        self.state.si_notes = {**self.state.si_notes, module: notes}

    @staticmethod
    async def _drive(step):
        """Poll a flow's step between other server work until it is over; its value (or its error)."""
        while not step.poll():
            await asyncio.sleep(0.01 if step.worker is not None else 0)
        return step.value

    async def _segment(self, progress, module: str | None = None) -> None:
        flow = self.flows[module] if module else self.flow
        try:
            await self._drive(flow.segment(progress))
        except SmartImagingError:  # the AI (and its classical fallback) found nothing or failed: never a dead end
            self.state.si_offer_draw = {**self.state.si_offer_draw, flow.module: True}
            raise
        self._show(flow)
        self._centre_on_point(flow)

    async def _draw_by_hand(self, progress, module: str | None = None) -> None:
        """An empty ROI in the Segment Editor, Paint selected: the reader draws, compute uses it."""
        flow = self.flows[module] if module else self.flow
        flow.draw_by_hand()
        self._show(flow)
        self._centre_on_point(flow)
        if flow is self.flow:
            self.slicer_app.segmentation_editor.set_active_effect_type(SegmentationEffectPaint)

    def _centre_on_point(self, flow) -> None:
        """Slice views through the lesion point, panned to it only when it is outside the view (the open tab's flow
        only)."""
        if flow is not self.flow or flow.point_node is None or flow.point_node.GetNumberOfControlPoints() == 0:
            return
        ras = [0.0, 0.0, 0.0]
        flow.point_node.GetNthControlPointPositionWorld(flow.point_node.GetNumberOfControlPoints() - 1, ras)
        for view in self.slicer_app.view_manager.get_slice_views():
            bring_into_view(view.get_view_node(), ras)

    async def _compute(self, progress, module: str | None = None) -> None:
        flow = self.flows[module] if module else self.flow
        layout = station_layout(flow)
        await self._drive(flow.compute(progress))
        self._show(flow, fit=station_layout(flow) != layout)  # new views (synthetic DCE): fitted
        self.state.si_results_shown += 1

    # ---- display ------------------------------------------------------------------------------------------------

    def _publish(self, flow) -> None:
        """Copy a flow's state to the page."""
        module = flow.module
        state = self.state
        state.si_has_segmentation = {**state.si_has_segmentation, module: flow.segmentation is not None}
        state.si_layout = {**state.si_layout, module: station_layout(flow)}
        state.si_segments = {**state.si_segments, module: flow.segment_summary()}
        state.si_stale = {**state.si_stale, module: flow.result_is_stale}
        state.si_roi_source = {**state.si_roi_source, module: flow.roi_source or ""}
        result = flow.result
        state.si_headline = {**state.si_headline, module: result.headline if result else ""}
        state.si_result_roi_source = {**state.si_result_roi_source,
                                      module: (result.roi_source or "") if result else ""}
        state.si_domain = {**state.si_domain, module: _domain_on_page(result.domain) if result else None}
        state.si_warnings = {**state.si_warnings, module: list(result.warnings) if result else []}
        state.si_columns = {**state.si_columns, module: result.columns if result else []}
        state.si_compare = {**state.si_compare, module: result.comparison if result else []}
        rows = [row for row in result.rows if not is_warning_row(row) and row[0] != DOMAIN_ROW
                ] if result else []  # those two: with the headline; the AI-vs-edited rows: there and last here
        state.si_rows = {**state.si_rows, module: publish_explanations(state, module, result, rows)}
        self.downloads_panel.publish(flow)

    def _show(self, flow, fit: bool = False) -> None:
        """Layout, volumes and overlays of the active flow; other flows' segmentations and points hidden; `fit`
        resets the views to the whole image (a new case or another module). A flow whose tab is no longer open (a
        step that ended after a tab switch) only has its state published: the views stay the open tab's, the last
        switch wins."""
        if flow is not self.flow:
            self._publish(flow)
            return
        for other in self.flows.values():
            for node in (other.segmentation, other.point_node):
                if node is not None and node.GetDisplayNode() is not None:
                    node.GetDisplayNode().SetVisibility(other is flow)
        layout = station_layout(flow)
        volumes = ({SIDE_BY_SIDE_TAGS[view]: volume for view, volume in flow.view_volumes.items()}
                   if flow.layout == "side-by-side" else dict.fromkeys(FRAME_VIEWS, flow.primary) if layout == "frames"
                   else {})
        self.layout_manager.set_layout(layout)
        view_manager = self.slicer_app.view_manager
        overlay = flow.overlay
        if overlay is not None:
            style_heat_map(overlay)
        heat_views = []
        for view in view_manager.get_slice_views():
            background = volumes.get(view.get_singleton_tag(), flow.primary)
            view.set_background_volume_id(background.GetID() if background is not None else None)
            over = overlay if background is flow.primary else None  # a map on the image it was computed on
            view.set_layer_volume_id(SliceLayer.Foreground, over.GetID() if over is not None else None)
            view.set_foreground_opacity(0.0)
            if over is not None:
                heat_views.append(view)
        self.heatmap_panel.show(flow, heat_views)
        self.dce_regions_panel.show(flow)
        self.editor_panel.show(flow)
        if flow.segmentation is not None:
            self._observe_edits(flow)
        self.display.show(flow)
        if fit:  # after the display drew the views' letters: each image is fitted clear of them and of the slider
            self._view_fit.fit(view_manager.get_slice_views())
            self.state.si_view_free = dict(self._view_fit.free)  # where the image lies in each view (tests, tools)
        self._link_views(flow.layout == "side-by-side")
        if fit and layout == "frames" and flow.primary is not None:
            self._show_bone_scan_frames(flow.primary)
        self._publish(flow)

    def _observe_edits(self, flow) -> None:
        """Keep the page's segment sizes current while the reader edits."""
        segmentation = flow.segmentation.GetSegmentation()
        if flow.segmentation.GetID() in self._observed:
            return
        self._observed.add(flow.segmentation.GetID())

        def update(*_args) -> None:
            with self.state:
                self.state.si_segments = {**self.state.si_segments, flow.module: flow.segment_summary()}
                self.state.si_stale = {**self.state.si_stale, flow.module: flow.result_is_stale}
                self.state.si_roi_source = {**self.state.si_roi_source, flow.module: flow.roi_source or ""}

        for event in (slicer.vtkSegmentation.SourceRepresentationModified, slicer.vtkSegmentation.SegmentAdded,
                      slicer.vtkSegmentation.SegmentRemoved):
            segmentation.AddObserver(event, update)

    def _link_views(self, linked: bool) -> None:
        """Scrolling, zooming or panning one of the T1 / synthetic / real DCE views moves the other two (Slicer's
        linked slice control); the one-slice MIP stays put."""
        composites = self.slicer_app.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
        for index in range(composites.GetNumberOfItems()):
            composite = composites.GetItemAsObject(index)
            if composite.GetLayoutName() in LINKED_TAGS:
                composite.SetLinkedControl(linked)

    def frame_views(self) -> list:
        """The bone-scan frame views, the first frame's (anterior) first."""
        return [self.slicer_app.view_manager.get_view(tag) for tag in FRAME_VIEWS]

    def _show_bone_scan_frames(self, volume_node) -> None:
        """First and second frame (anterior, posterior) side by side."""
        dims = volume_node.GetImageData().GetDimensions()
        for frame, tag in enumerate(FRAME_VIEWS):
            view = self.slicer_app.view_manager.get_view(tag)
            k = min(frame, dims[2] - 1)
            matrix = vtk.vtkMatrix4x4()
            volume_node.GetIJKToRASMatrix(matrix)
            ras = matrix.MultiplyPoint(((dims[0] - 1) / 2, (dims[1] - 1) / 2, k, 1.0))
            view.set_slice_value(ras[2])


def _domain_on_page(domain) -> dict | None:
    """`plain_domain` of a result's domain check, with "more": how many reasons the page leaves to the tooltip."""
    plain = plain_domain(domain)
    if not plain:
        return plain
    hidden = len(plain["reasons"]) - SHOWN_REASONS
    return {**plain, "more": counted(hidden, "more reason") if hidden > 0 else ""}


def _import_network_code() -> None:
    import importlib

    for module in ("torch", "smartimaging.mammo.segment", "smartimaging.mammo.predict", "smartimaging.lvi.segment"):
        importlib.import_module(module)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_app(host: str = "127.0.0.1", port: int = 8080, timeout: int = 0, open_browser: bool = True,
            device: str = "cpu", models_dir: str | None = None) -> int:
    """Serve the station until Ctrl+C (or `timeout` seconds after the last browser tab closed, when > 0). Upload
    limits: UploadLimits' defaults, or the $SMARTIMAGING_UPLOAD_MAX_FILE_MB / _TOTAL_MB environment variables."""
    upload_limits = UploadLimits.from_environment()
    if not _is_loopback(host):
        print(f"WARNING: serving on {host}: anyone who can reach this machine on port {port} can view and upload "
              "images. There is no login and no encryption; use it only on a trusted network.", file=sys.stderr)
    print("Single-user mode: every browser tab connected to this station shows the same scene.", file=sys.stderr)
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # offscreen, no X server needed
    station = ReadingStation(device=device, models_dir=models_dir, upload_limits=upload_limits)
    sys.argv = sys.argv[:1]  # trame parses sys.argv again; the options are passed explicitly below
    station.server.start(host=host, port=port, timeout=timeout, open_browser=open_browser)
    return 0
