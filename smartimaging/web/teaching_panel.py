"""The station's Teaching section: a student reads a teaching set (a cohort folder whose cases carry an answer key, or
a phantom set written on the spot) in the open module's tab, drawing each lesion and making the call with the AI's
proposal and the key out of the scene; Check scores the outline and the call against the key (`teaching`), shows the
student's, the key's and the AI's outlines together (on a volume, on the slice where the student's outline and the key
are seen together, which the page names), and adds the case to the session's score sheet (CSV download). A bone scan
is checked spot by spot (`teaching.check_spots`): the student outlines the hot spots they believe are metastases, or
none, and Check is on without a drawing; the page says the key's spots found and missed, the false positives (where
a negative key leaves Dice undefined), the AI's call, and shows the outlines on the whole anterior and posterior
views; a button per spot (missed, found, not in the key) zooms both views to it, "Whole body" back.

While a teaching case is open its tab's Segment is disabled (it would show the AI's proposal), and so is the compute
until Check (its score would tell the AI's call); after Check the student's outline is locked (no longer an editable
segmentation) and Draw ROI by hand is disabled until the next case. `si_teach_active[module]` is true while a teaching
case is open in that tab and not yet checked (the student's drawing would be lost by opening another case). A
mammogram that stores no pixel size (a hand-made set of PNG files without a pixel_mm column) is not opened until the
section is given one (for the whole set when no image of it has one; `TeachingSet.set_pixel_size`); meanwhile the
views and the station's pixel-size field are empty. The teaching itself is `teaching_session`'s (GUI-free)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from trame.widgets import client, html
from trame.widgets import vuetify3 as v3
from trame_server.utils.asynchronous import create_task

from ..bonescan.sites import SITE_NOTE
from ..errors import InputError, SmartImagingError
from ..mrml import ijk_to_ras_matrix
from ..teaching import ScoreSheet
from ..teaching_scene import (
    OUTLINES,
    TEACHABLE,
    has_drawing,
    ras_bounds,
    segmentations_shown,
    slice_centre_ras,
)
from ..teaching_session import CSV_NAME, SHEET_COLUMNS, TeachingSession
from ..wording import counted
from ..worklist import PixelSizeNeededError

CSV_TRIGGER = "si_teach_csv"
NO_BLOCKS = {"segment": False, "draw": False, "compute": False}
ZOOM = 3.0  # after Check the views show the outlines' box this many times over, centred
SPOT_FIELD_MM = 160.0  # a bone scan's spot shown: the height of the views around it
MAX_SPOT_BUTTONS = 40  # the spot buttons a checked bone scan shows (an extensive one has more spots)
# A case opened or checked scrolls the left panel to the teaching case: its hint, the call and the result in sight
SHOW_CASE_SCRIPT = """
window.smartimagingShowTeachingCase = function () {
  setTimeout(() => document.getElementById("si-teach-case")?.scrollIntoView({ block: "start" }), 300);
};
"""
STUDENT_HINT = ("Student mode: the AI's proposal and the answer key are hidden until you press Check. Press “Draw ROI "
                "by hand”, paint the lesion in the Segment Editor, make your call, then press Check.")
SPOT_HINT = ("Student mode: the AI's proposal and the answer key are hidden until you press Check. Press “Draw ROI by "
             "hand” and paint, on both views, the hot spots you believe are metastases (none if you see none; the "
             "bladder is no metastasis), make your call, then press Check.")


class TeachingPanel:
    """Binds the Teaching section to the station; teaching sets' scratch folders and phantom sets go to `folder` (the
    session's scratch)."""

    def __init__(self, station, folder: Path):
        self.station, self.folder = station, folder
        self._sessions: dict[str, TeachingSession] = {}  # module -> its teaching session (scratch: folder/module)
        self._module = ""  # the module the set is read in
        self._spots: list = []  # the checked bone scan's spots behind the page's spot buttons
        state = station.state
        state.si_teach_folder = ""
        state.si_teach_module = ""
        state.si_teach_title = ""  # the set: its folder and how many cases
        state.si_teach_left_out = ""
        state.si_teach_notice = ""  # a new set's score sheet replaced one with rows
        state.si_teach_case = ""  # "Case 1 of 3: P0001"
        state.si_teach_open = False  # a teaching case is open in its tab
        state.si_teach_pixel = ""  # what the section asks while the case waits for its pixel size
        state.si_teach_pixel_mm = ""  # the pixel size field
        state.si_teach_has_next = state.si_teach_has_previous = False
        state.si_teach_choices = []
        state.si_teach_lesion_wise = False  # the set is checked spot by spot (bone scans): Check needs no drawing
        state.si_teach_columns = list(SHEET_COLUMNS)
        state.si_teach_call_title = ""
        state.si_teach_call = None
        state.si_teach_drawn = False  # the student's outline has a pixel
        state.si_teach_checked = False
        state.si_teach_result = None  # the checked case's numbers and sentences
        state.si_teach_spots = []  # a checked bone scan's spots: [{text, icon}], each a button that zooms to it
        state.si_teach_spots_left_out = ""  # how many spots have no button
        state.si_teach_scene = []  # the scene's segmentations and whether the views show them (`segmentations_shown`)
        state.si_teach_legend = []  # the outlines shown, with their colours
        state.si_teach_rows = []
        state.si_teach_summary = ""
        state.si_teach_replaced = ""  # a case checked again: its row was replaced
        state.si_teach_error = ""
        state.si_teach_shown = 0  # counts the cases opened and checked: each one scrolls the panel to it
        state.si_teach_teachable = list(TEACHABLE)
        state.si_teach_blocks = {module: dict(NO_BLOCKS) for module in station.flows}
        state.si_teach_active = dict.fromkeys(station.flows, False)  # a case open in the tab and not yet checked
        state.change("si_module")(self._on_module)
        state.change("si_case")(self._on_case)
        state.change("si_segments")(self._on_segments)
        station.server.trigger(CSV_TRIGGER)(self.score_sheet_csv)

    # ---- page ---------------------------------------------------------------------------------------------------

    def build(self) -> None:
        client.Script(SHOW_CASE_SCRIPT)
        client.ClientStateChange(value="si_teach_shown", change="window.smartimagingShowTeachingCase()")
        with html.Div(id="si-teaching", classes="mt-4"):
            html.Div("Teaching", classes="text-subtitle-1 mb-1")
            with html.Div(v_if=("!si_teach_teachable.includes(si_module)",), classes="text-caption"):
                html.Span("Teaching checks an outline against an answer key: open the Mammography, the Breast LVI "
                          "or the Bone scan tab.")
            with html.Div(v_if=("si_teach_teachable.includes(si_module)",)):
                with html.Div(classes="d-flex align-center ga-2"):
                    v3.VTextField(v_model=("si_teach_folder",), label="Teaching set folder (a cohort with masks "
                                  "and labels)", density="compact", hide_details=True, disabled=("si_busy",),
                                  id="si-teach-folder")
                    v3.VBtn("Open set", click=self.on_open_set, disabled=("si_busy || !si_teach_folder",),
                            variant="tonal", size="small")
                with html.Div(classes="d-flex align-center flex-wrap ga-2 mt-2"):
                    v3.VBtn("Phantom teaching set", click=self.on_phantom_set, disabled=("si_busy",),
                            variant="tonal", size="small", prepend_icon="mdi-school",
                            title="Write phantom cases of this module with their ground truth and open them")
                    v3.VBtn("Close set", v_if=("si_teach_module === si_module",), click=self.on_close_set,
                            disabled=("si_busy",), variant="text", size="small")
                v3.VAlert(v_if=("si_teach_error",), text=("si_teach_error",), type="error", variant="tonal",
                          density="compact", classes="mt-2", id="si-teach-error")
                with html.Div(v_if=("si_teach_module === si_module",), classes="mt-2"):
                    self._case_part()
                    self._result_part()
                    self._sheet_part()

    def _case_part(self) -> None:
        html.Div("{{ si_teach_title }}", classes="text-body-2", id="si-teach-title")
        html.Div("{{ si_teach_left_out }}", v_if=("si_teach_left_out",), classes="text-caption text-warning",
                 id="si-teach-left-out")
        html.Div("{{ si_teach_notice }}", v_if=("si_teach_notice",), classes="text-caption", id="si-teach-notice")
        with html.Div(classes="d-flex align-center ga-2 mt-1"):
            html.Div("{{ si_teach_case }}", classes="text-body-2 font-weight-bold", id="si-teach-case")
            v3.VSpacer()
            v3.VBtn("Previous", click=lambda: self.on_step(-1), size="small", variant="text",
                    disabled=("si_busy || !si_teach_has_previous",), prepend_icon="mdi-chevron-left")
            v3.VBtn("Next", click=lambda: self.on_step(1), size="small", variant="tonal",
                    disabled=("si_busy || !si_teach_has_next",), append_icon="mdi-chevron-right")
        with v3.VAlert(v_if=("si_teach_pixel",), type="warning", variant="tonal", density="compact", classes="mt-1",
                       id="si-teach-pixel"):
            html.Div("{{ si_teach_pixel }}")
            with html.Div(classes="d-flex align-center ga-2 mt-1"):
                v3.VTextField(v_model=("si_teach_pixel_mm",), label="Pixel size (mm)", density="compact",
                              hide_details=True, disabled=("si_busy",), id="si-teach-pixel-mm",
                              style="max-width: 160px;")
                v3.VBtn("Open the case", click=(self.on_pixel_size, "[si_teach_pixel_mm]"), disabled=("si_busy",),
                        size="small", color="warning", id="si-teach-pixel-open",
                        title="Keep this pixel size for this session and open the case")
        html.Div(STUDENT_HINT, v_if=("si_teach_open && !si_teach_checked && !si_teach_lesion_wise",),
                 classes="text-caption mt-1", id="si-teach-hint")
        html.Div(SPOT_HINT, v_if=("si_teach_open && !si_teach_checked && si_teach_lesion_wise",),
                 classes="text-caption mt-1", id="si-teach-spot-hint")
        with html.Div(v_if=("si_teach_open",), classes="d-flex align-center ga-2 mt-2"):
            v3.VSelect(v_model=("si_teach_call",), items=("si_teach_choices",), label=("si_teach_call_title",),
                       density="compact", hide_details=True, clearable=True, id="si-teach-call",
                       disabled=("si_busy || si_teach_checked",))
            v3.VBtn("Check", click=(self.on_check, "[si_teach_call]"), color="primary", id="si-teach-check",
                    disabled=("si_busy || !(si_teach_drawn || si_teach_lesion_wise) || si_teach_checked",),
                    prepend_icon="mdi-check-bold")
        html.Div("Draw the lesion first: Check is enabled once your outline has a pixel.",
                 v_if=("si_teach_open && !si_teach_drawn && !si_teach_checked && !si_teach_lesion_wise",),
                 classes="text-caption")

    def _result_part(self) -> None:
        with html.Div(v_if=("si_teach_checked && si_teach_result",), id="si-teach-result", classes="mt-2"):
            with html.Div(classes="d-flex flex-wrap ga-3 mb-1", id="si-teach-legend"):
                with html.Div(v_for=("item in si_teach_legend",), classes="d-flex align-center text-body-2"):
                    html.Span(style=("{ display: 'inline-block', width: '26px', marginRight: '6px', "
                                     "borderTop: '3px solid ' + item.color }",))
                    html.Span("{{ item.title }}")
            html.Div("{{ si_teach_result.key_summary }}", v_if=("si_teach_result.key_summary",),
                     classes="text-body-2", id="si-teach-key")
            with html.Div(v_if=("si_teach_result.student_dice",), classes="text-h6", id="si-teach-dice"):
                html.Span("Dice with the key: you ")
                html.Span("{{ si_teach_result.student_dice }}", id="si-teach-dice-student")
                html.Span(" · AI ", v_if=("si_teach_result.ai_dice",))
                html.Span("{{ si_teach_result.ai_dice }}", v_if=("si_teach_result.ai_dice",), id="si-teach-dice-ai")
            html.Div("{{ si_teach_result.no_dice }}", v_if=("si_teach_result.no_dice",), classes="text-h6",
                     id="si-teach-no-dice")
            with html.Div(classes="d-flex align-center ga-2", id="si-teach-call-result"):
                v3.VChip("{{ si_teach_result.call }}", size="small", label=True, variant="flat",
                         color=("si_teach_result.call === 'right' ? 'success' : "
                                "si_teach_result.call === 'wrong' ? 'error' : 'grey'",))
                html.Span("{{ si_teach_result.call_summary }}", classes="text-body-2")
            html.Div("{{ si_teach_result.student }}", classes="text-body-2 mt-1", id="si-teach-student")
            html.Div("{{ si_teach_result.ai }}", v_if=("si_teach_result.ai",), classes="text-body-2",
                     id="si-teach-ai")
            html.Div("{{ si_teach_result.ai_call }}", v_if=("si_teach_result.ai_call",), classes="text-body-2",
                     id="si-teach-ai-call")
            with html.Div(v_if=("si_teach_spots.length",), classes="d-flex align-center flex-wrap ga-1 mt-1",
                          id="si-teach-spots"):
                html.Span("Show a spot:", classes="text-caption mr-1")
                v3.VChip("{{ spot.text }}", v_for=("(spot, index) in si_teach_spots",), key=("index",),
                         size="small", label=True, variant="outlined", prepend_icon=("spot.icon",),
                         click=(self.on_show_spot, "[index]"), disabled=("si_busy",))
                v3.VBtn("Whole body", click=self.on_whole_body, size="small", variant="text",
                        prepend_icon="mdi-fit-to-page-outline", disabled=("si_busy",), id="si-teach-whole-body")
            html.Div("{{ si_teach_spots_left_out }}", v_if=("si_teach_spots_left_out",), classes="text-caption",
                     id="si-teach-spots-left-out")
            html.Div(SITE_NOTE.split(" Right and left")[0], v_if=("si_teach_spots.length",),
                     classes="text-caption", id="si-teach-site-note")
            html.Div("{{ si_teach_result.ai_source }}", classes="text-caption mt-1", id="si-teach-ai-source")
            html.Div("{{ si_teach_result.view }}", v_if=("si_teach_result.view",), classes="text-caption",
                     id="si-teach-view")
            html.Div("Your outline is locked; press Next for the next case.", v_if=("si_teach_has_next",),
                     classes="text-caption")
            html.Div("Your outline is locked. That was the set's last case: the score sheet is below.",
                     v_if=("!si_teach_has_next",), classes="text-caption")

    def _sheet_part(self) -> None:
        with html.Div(v_if=("si_teach_rows.length",), classes="mt-3", id="si-teach-sheet"):
            html.Div("Score sheet (this session)", classes="text-subtitle-2")
            html.Div("{{ si_teach_summary }}", classes="text-body-2", id="si-teach-summary")
            with v3.VTable(density="compact", id="si-teach-table"):
                with html.Thead(), html.Tr():
                    html.Th("{{ column }}", v_for=("column in si_teach_columns",), style="padding: 0 4px;")
                with html.Tbody(), html.Tr(v_for=("row in si_teach_rows",)):
                    html.Td("{{ cell }}", v_for=("cell in row",), style="font-size: 13px; padding: 0 4px;")
            html.Div("One row per case: checking a case again replaces its row. Time: from opening the case to "
                     "Check.", classes="text-caption")
            html.Div("{{ si_teach_replaced }}", v_if=("si_teach_replaced",), classes="text-caption text-warning",
                     id="si-teach-replaced")
            v3.VBtn("Score sheet (CSV)", id="si-teach-download", size="small", variant="tonal", classes="mt-1",
                    prepend_icon="mdi-download", disabled=("si_busy",),
                    click=f"trigger('{CSV_TRIGGER}').then((file) => file && "
                          "utils.download(file.name, file.content, file.type))")

    # ---- callbacks ----------------------------------------------------------------------------------------------

    def on_open_set(self) -> None:
        folder = Path(str(self.station.state.si_teach_folder).strip()).expanduser()
        self._start(lambda progress: self._open_set(progress, folder))

    def on_phantom_set(self) -> None:
        self._start(self._phantom_set)

    def on_close_set(self) -> None:
        self._close()

    def on_step(self, step: int) -> None:
        self._start(lambda progress: self._open_case(progress, self.session.index + step if self.session else -1))

    def on_pixel_size(self, text=None) -> None:
        """The pixel size typed for the case that waits for one (sent with the click: the field's own update may come
        later): kept for the session, then the case opens."""
        self._start(lambda progress: self._give_pixel_size(progress, "" if text is None else str(text)))

    def on_check(self, call=None) -> None:
        """Check with the call the page shows (sent with the click: the field's own update may come later)."""
        self._start(lambda progress: self._check(progress, call if isinstance(call, str) and call else None))

    def _start(self, step) -> None:
        """Run a step of the open tab with the station's progress bar; a refusal shows in this section."""
        module = self.station.state.si_module

        async def run(progress) -> None:
            self.station.state.si_teach_error = ""
            try:
                await step(progress)
            except SmartImagingError as exc:
                with self.station.state:
                    self.station.state.si_teach_error = str(exc)

        create_task(self.station._run(run, module))

    # ---- steps --------------------------------------------------------------------------------------------------

    @property
    def session(self) -> TeachingSession | None:
        """The session whose teaching set is open (None: no set open)."""
        session = self._sessions.get(self._module)
        return session if session is not None and session.set is not None else None

    def _session_of(self, module: str) -> TeachingSession:
        if module not in self._sessions:
            self._sessions[module] = TeachingSession(self.station.flows[module], self.folder / module)
        return self._sessions[module]

    async def _phantom_set(self, progress) -> None:
        module = self.station.state.si_module
        progress(0.1, f"Teaching: writing a phantom set of {module}")
        folder = await asyncio.to_thread(self._session_of(module).phantom_set)
        self.station.state.si_teach_folder = str(folder)
        await self._open_set(progress, folder)

    async def _open_set(self, progress, folder: Path) -> None:
        module = self.station.state.si_module
        progress(0.2, f"Teaching: reading the set {folder.name}")
        session = self._session_of(module)
        checked = len(self.session.sheet.rows) if self.session else 0  # the set open before, in this tab or another
        session.open_set(folder)  # refused: the set open before stays
        if self._module != module:
            self._close()
        self.station.state.si_teach_notice = (
            f"A new score sheet: the previous set's ({counted(checked, 'case')} checked) is no longer offered; "
            "download a score sheet before opening another set." if checked else "")
        self._module = module
        teaching = session.set
        state = self.station.state
        state.si_teach_module = module
        state.si_teach_title = f"Teaching set {folder.name}: {len(teaching.cases)} cases with an answer key"
        state.si_teach_left_out = teaching.left_out
        state.si_teach_choices = list(teaching.choices)
        state.si_teach_call_title = f"Your call: {teaching.label_field.title}"
        state.si_teach_lesion_wise = teaching.lesion_wise
        state.si_teach_columns = session.columns
        self._publish_sheet()
        await self._open_case(progress, 0)

    async def _open_case(self, progress, index: int, pixel_size: str | None = None) -> None:
        """Open the set's `index`-th case (`pixel_size`: first give the pixel size it waits for)."""
        session, station = self.session, self.station
        if session is None or not 0 <= index < len(session.set.cases):
            raise InputError("No such case in the teaching set")
        flow = station.flows[self._module]
        progress(0.4, f"Teaching: opening case {index + 1} of {len(session.set.cases)}")
        station.slicer_app.segmentation_editor.clear()  # before the previous case's nodes leave the scene
        state = station.state
        try:  # a pixel size refused: the question stays, with the reason
            session.give_pixel_size(pixel_size) if pixel_size is not None else session.open_case(index)
        except PixelSizeNeededError:  # not read at 1 mm: the section asks for the pixel size (views emptied)
            self._show_case_line()
            state.si_teach_pixel, state.si_teach_pixel_mm = session.set.pixel_size_request(index), ""
            state.si_teach_result = None
            self._set_open(False)
            station._set_case(self._module, "", [])
            station._case_loaded(flow, None, False)  # the station's pixel-size field: no earlier image's size
            station._show(flow, fit=True)
            self._publish_scene()
            state.si_teach_shown += 1  # the question in sight
            return
        state.si_teach_pixel = ""
        self._show_case_line()
        station._release_uploads(self._module, flow.roles[0])
        if flow.kinds:
            state.si_kind = flow.kind
        state.si_teach_call = None
        state.si_teach_checked, state.si_teach_result, state.si_teach_replaced = False, None, ""
        self._set_open(True)
        station._set_case(self._module, f"Teaching case {session.case_place}", flow.notes())
        station._case_loaded(flow, None, False)
        station._show(flow, fit=True)
        self._publish_scene()
        state.si_teach_shown += 1

    def _show_case_line(self) -> None:
        session, state = self.session, self.station.state
        state.si_teach_case = session.case_title
        state.si_teach_has_previous, state.si_teach_has_next = session.has_previous, session.has_next

    async def _give_pixel_size(self, progress, text: str) -> None:
        session = self.session
        if session is None or not self.station.state.si_teach_pixel:
            raise InputError("No teaching case waits for its pixel size")
        await self._open_case(progress, session.index, text)

    async def _check(self, progress, call: str | None) -> None:
        session, station = self.session, self.station
        if session is None:
            raise InputError("Open a case of the teaching set first")
        flow = station.flows[self._module]
        checked = await station._drive(session.check(call, progress, station.slicer_app.segmentation_editor.clear))
        result, score = checked.result, checked.score
        state = station.state
        state.si_teach_result = {
            "student_dice": score.cells()[1], "ai_dice": score.cells()[2], "call": result.call,
            "call_summary": result.call_summary or "", "ai_source": checked.ai_source,
            "view": checked.shown.text if checked.shown else "", **checked.sentences()}
        state.si_teach_replaced = checked.replaced_text
        state.si_teach_checked = True
        self._set_open(True)
        self._publish_sheet()
        if checked.views is not None:  # the whole anterior and posterior views: spots anywhere in the skeleton
            station._show(flow, fit=True)
            buttons, left_out = _spot_buttons(result.student_spots)
            self._spots = [spot for spot, _ in buttons]
            state.si_teach_spots = [button for _, button in buttons]
            state.si_teach_spots_left_out = (f"{counted(left_out, 'more spot')} without a button (at most "
                                             f"{MAX_SPOT_BUTTONS}); the sentences above count every spot."
                                             if left_out else "")
        else:
            station._show(flow)
            masks = checked.masks.values()
            self._zoom_to(ras_bounds(masks, flow.primary),
                          slice_centre_ras(masks, flow.primary, checked.shown.index if checked.shown else None))
        self._publish_scene()
        state.si_teach_shown += 1

    def on_show_spot(self, index) -> None:
        """Zoom the two frame views to the checked case's `index`-th spot button: SPOT_FIELD_MM high, centred on the
        spot in its view and on the same body part seen from the other side (the column mirrored) in the other
        (Slicer 5.12 vtkMRMLSliceNode GetFieldOfView, SetFieldOfView, JumpSliceByCentering)."""
        if not isinstance(index, int) or not 0 <= index < len(self._spots) or \
                self.station.state.si_module != self._module:
            return
        spot, views = self._spots[index], self.session.checked.views
        volume = self.station.flows[self._module].primary
        columns = volume.GetImageData().GetDimensions()[0]
        to_ras = ijk_to_ras_matrix(volume)
        for frame, view in enumerate(self.station.frame_views()[:len(views)]):
            column = spot.col if views[frame] == spot.view else columns - 1 - spot.col
            node = view.get_view_node()
            x, y, z = node.GetFieldOfView()
            node.SetFieldOfView(x * SPOT_FIELD_MM / y, SPOT_FIELD_MM, z)
            node.JumpSliceByCentering(*(to_ras @ [column, spot.row, frame, 1.0])[:3])

    def on_whole_body(self) -> None:
        """Both frame views fitted to the whole body again."""
        if self.station.state.si_module == self._module:
            self.station._show(self.station.flows[self._module], fit=True)

    def _zoom_to(self, bounds: list[float], centre: list[float]) -> None:
        """Centre the slice views on a RAS point (mm), showing a box (RAS bounds, mm) ZOOM times over (Slicer 5.12
        vtkMRMLSliceNode GetSliceToRAS, GetFieldOfView, SetFieldOfView, JumpSliceByCentering)."""
        for view in self.station.slicer_app.view_manager.get_slice_views():
            node = view.get_view_node()
            to_ras = node.GetSliceToRAS()
            extent = [sum(abs(to_ras.GetElement(axis, column)) * (bounds[2 * axis + 1] - bounds[2 * axis])
                          for axis in range(3)) for column in (0, 1)]
            x, y, z = node.GetFieldOfView()
            scale = ZOOM * max(extent[0] / x, extent[1] / y)
            node.SetFieldOfView(x * scale, y * scale, z)
            node.JumpSliceByCentering(*centre)

    # ---- the scene and the page ---------------------------------------------------------------------------------

    def _set_open(self, open_: bool) -> None:
        """Whether a teaching case is open in its tab: what the tab's step buttons may do."""
        state = self.station.state
        state.si_teach_open = open_
        if not open_ or not state.si_teach_checked:  # no checked case: no spot to show
            self._spots, state.si_teach_spots, state.si_teach_spots_left_out = [], [], ""
        if not open_:
            state.si_teach_checked = state.si_teach_drawn = False
        checked = bool(state.si_teach_checked)
        blocks = {module: dict(NO_BLOCKS) for module in self.station.flows}
        if open_ and self.session is not None:
            blocks[self._module] = self.session.blocks()
        state.si_teach_blocks = blocks
        state.si_teach_active = {module: open_ and not checked and module == self._module
                                 for module in self.station.flows}

    def _close(self) -> None:
        """Leave the teaching set: its outlines leave the scene, the tab's buttons are free again; the case line of
        an image still shown says that its set is closed."""
        session = self.session
        if session is not None:
            if session.is_open:
                flow = session.flow
                self.station._set_case(self._module, f"{session.set.cases[session.index].case_id} (its teaching set "
                                       "is closed)", flow.notes())
            session.close()
        state = self.station.state
        state.si_teach_module = state.si_teach_title = state.si_teach_left_out = state.si_teach_case = ""
        state.si_teach_notice = ""
        state.si_teach_pixel = ""
        state.si_teach_result = None
        self._set_open(False)
        self._publish_scene()

    def _publish_scene(self) -> None:
        """What the views can show: every segmentation and whether it is shown, and the legend of the outlines."""
        shown = segmentations_shown(self.station.slicer_app.scene)
        visible = {entry["outline"] for entry in shown if entry["visible"]}
        self.station.state.si_teach_scene = shown
        self.station.state.si_teach_legend = [{"title": o.title, "color": o.hex} for o in OUTLINES
                                              if o.name in visible]

    def _publish_sheet(self) -> None:
        state, session = self.station.state, self.session
        state.si_teach_rows = session.sheet_rows()
        state.si_teach_summary = session.sheet.summary().text

    def _on_module(self, si_module, **_kwargs) -> None:
        """The outlines show in the teaching set's tab only."""
        if self.session is not None:
            self.session.show_outlines(si_module == self._module)
        self._publish_scene()

    def _on_case(self, **_kwargs) -> None:
        """Another image replaced the teaching case in its tab (a sample or an upload): the case is no longer open."""
        if self.session is None or not self.session.replaced():
            return
        state = self.station.state
        state.si_teach_case = ("The teaching case was replaced by another image: press Previous or Next to go on "
                               "with the set.")
        state.si_teach_result = None
        self._set_open(False)
        self._publish_scene()

    def _on_segments(self, **_kwargs) -> None:
        """The student drew (or erased): Check is enabled while the outline has a pixel."""
        if self.session is None or not self.session.is_open:
            return
        flow = self.station.flows[self._module]
        self.station.state.si_teach_drawn = flow.segmentation is not None and has_drawing(flow.segmentation)
        self._publish_scene()

    def score_sheet_csv(self) -> dict:
        """The session's score sheet as a CSV file for the page to save."""
        session = self._sessions.get(self._module)
        sheet = session.sheet if session is not None else ScoreSheet()
        return {"name": CSV_NAME, "type": "text/csv", "content": sheet.to_csv_text()}


def _spot_buttons(findings) -> tuple[list[tuple[object, dict]], int]:
    """The student's spots of a lesion-wise check as (spot, page button), at most MAX_SPOT_BUTTONS, and how many are
    left out: the key's spots missed, then found, then the student's spots not in the key (the false positives keep
    at least a quarter of the buttons), each named by its site and view, its kind told by an icon (the outlines'
    colours mean whose outline)."""
    kinds = (("missed", "mdi-close-circle-outline", findings.missed),
             ("found", "mdi-check-circle-outline", findings.found),
             ("not in the key", "mdi-alert-circle-outline", findings.false_positives))
    buttons = [[(spot, {"text": f"{what}: {spot.where or 'spot'}, {spot.view}", "icon": icon}) for spot in spots]
               for what, icon, spots in kinds]
    kept_false = min(len(buttons[2]), max(MAX_SPOT_BUTTONS // 4, MAX_SPOT_BUTTONS - len(buttons[0]) - len(buttons[1])))
    shown = (buttons[0] + buttons[1])[:MAX_SPOT_BUTTONS - kept_false] + buttons[2][:kept_false]
    return shown, sum(map(len, buttons)) - len(shown)
