"""The station's worklist (one per module tab): a cohort folder read case by case with `worklist_scene`.

The reader opens a folder (a path on the station's own machine) or a 20-case phantom worklist (written once into the
user's data folder, `phantom_folder`, and opened again from there after a restart), sees one row per case
(status, Dice AI-vs-corrected, labels) with counts and a status filter, and moves with a click on a row, Previous /
Next or Alt+P / Alt+N (Next and Previous keep to the filtered status). A case opens in the module's views as a sample
case does, with the reader's saved ROI restored; a Segment on it keeps the AI's proposal ("AI proposed"). The reader
fills the module's labels and saves (or saves and goes on); a save over another window's later save is refused with
the core's message and a "Save anyway". Moving away from unsaved edits (ROI or labels) asks first: Save, Discard or
Stay. A folder is read in a worker thread under the station's progress bar (the station keeps answering); every
refusal or failure, opening or saving, is one plain line in the section (an unexpected one also in the log). The
worklist's state lives in the server's state, so a reloaded page shows it as it was; a restarted station
resumes where the reader stopped when the folder is opened again (`Worklist.resume_case`). A mammogram file that
stores no pixel size (a loose PNG or JPEG) opens only once the reader typed its pixel size in the section (kept in
the case record: asked once); until then the views are empty and nothing can be computed or saved on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from trame.widgets import client, html
from trame.widgets import vuetify3 as v3
from trame_server.utils.asynchronous import create_task

from ..bonescan.cohort import write_phantom_cohort
from ..dce.cohort import write_dce_phantom_cohort
from ..errors import SmartImagingError
from ..lvi.cohort import write_lvi_phantom_cohort
from ..mammo.cohort import write_mammo_phantom_cohort
from ..segmentation_nodes import raise_proposal
from ..worklist import CORRECTED, DONE, NEW, PROPOSED, SPECS, STATUSES, ConflictError, PixelSizeNeededError, Worklist
from ..worklist_scene import WorklistReading

PHANTOM_CASES = 20
PHANTOM_SEED = 16
# A module's own seed where PHANTOM_SEED's phantoms would not carry the whole loop once the reader saved them all:
# with seed 16 BreastLVI's test split (`worklist.stable_split`, by patient) holds LVI-positive patients only, so
# Evaluate refused. Seed 3's 20 (the cohort of Testing/test_lvi_worklist_training.py): train and val 8 without LVI
# and 7 with (val 2 and 2), test 2 and 3. Testing/test_phantom_worklists.py checks every module against the trainers'
# minima. The folder's name carries the seed (`phantom_folder`).
PHANTOM_SEEDS = {"BreastLVI": 3}
DATA_DIR_VARIABLE = "SMARTIMAGING_DATA_DIR"  # the user's SmartImaging data folder, instead of the platform's
PHANTOM_WRITERS = {"MammoRadiomics": write_mammo_phantom_cohort, "BreastLVI": write_lvi_phantom_cohort,
                   "BoneScanBSTBI": write_phantom_cohort, "DCESynthesis": write_dce_phantom_cohort}
STATUS_COLOURS = {NEW: "grey", PROPOSED: "info", CORRECTED: "warning", DONE: "success"}
ALL = "all"  # the filter that shows every case
NEXT, PREVIOUS = "si_wl_next", "si_wl_previous"  # the page's triggers for the keys
NEXT_KEY, PREVIOUS_KEY = "Alt+N", "Alt+P"
MODULE = "si_module"
LABELS = f"si_wl_labels[{MODULE}]"  # each click sends the labels the page shows (their own update may come later)
FILTER = f"si_wl_filter[{MODULE}]"  # and Previous / Next the filter the page shows (the same reason)
TEACHING_BLOCKS = "si_busy || !!si_teach_active?.[si_module]"  # a student's unchecked outline would be discarded
TEACHING = ("Press Check (or close the teaching set) first: opening a worklist case now would discard the student's "
            "outline")
NOTE_SHOWN = 24  # characters of the note in the table
UNEXPECTED = "an unexpected error (the station's log has the details)"
logger = logging.getLogger(__name__)

# Alt+N / Alt+P move to the next / previous case: keys the editor (Ctrl+Z / Ctrl+Y) and the browser leave free; not
# while a text field has the focus (there the keys may type a character).
KEYS_SCRIPT = f"""
window.addEventListener("keydown", (event) => {{
  if (!event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
  const target = event.target;
  if (target && (target.isContentEditable || target.tagName === "TEXTAREA"
                 || (target.tagName === "INPUT" && !target.readOnly))) return;
  const trigger = event.code === "KeyN" ? "{NEXT}" : event.code === "KeyP" ? "{PREVIOUS}" : null;
  if (!trigger) return;
  if (trame.state.get("si_teach_active")?.[trame.state.get("si_module")]) return;  // a student's outline
  event.preventDefault();
  const module = trame.state.get("si_module");
  trame.trigger(trigger, [trame.state.get("si_wl_labels")[module], trame.state.get("si_wl_filter")[module]]);
}});
"""


def data_folder() -> Path:
    """The user's persistent SmartImaging data folder: $SMARTIMAGING_DATA_DIR, else the platform's place for a
    user's application data (as platformdirs' user_data_dir): %LOCALAPPDATA%\\smartimaging on Windows,
    ~/Library/Application Support/smartimaging on macOS, $XDG_DATA_HOME/smartimaging or ~/.local/share/smartimaging
    elsewhere."""
    if os.environ.get(DATA_DIR_VARIABLE):
        return Path(os.environ[DATA_DIR_VARIABLE]).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "smartimaging"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "smartimaging"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "smartimaging"


def phantom_seed(module: str) -> int:
    """The seed of the module's phantom worklist."""
    return PHANTOM_SEEDS.get(module, PHANTOM_SEED)


def phantom_folder(module: str, kind: str | None = None) -> Path:
    """Where the station keeps a module's phantom worklist (one per mammography lesion kind): it outlives the
    station, so a restarted station reopens it and resumes. A module with its own seed (PHANTOM_SEEDS) names it
    ("BreastLVI-seed-3"): a folder of other phantoms written before (seed 16's) is never reopened as this one, nor
    rewritten (the reader's work in it stays there)."""
    name = f"{module}-{kind}" if kind else module
    return data_folder() / "phantom-worklists" / (f"{name}-seed-{PHANTOM_SEEDS[module]}" if module in PHANTOM_SEEDS
                                                  else name)


def write_phantoms(module: str, folder: Path, **options) -> None:
    """Write the module's phantom cohort into `folder` whole or not at all (into a temporary sibling, then renamed):
    a station stopped midway leaves no half cohort; when another station made it first, theirs is kept. Something
    else already at `folder` (a folder without manifest.csv, a file, a link) is refused before anything is written,
    naming it (SmartImagingError)."""
    _check_not_in_the_way(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        PHANTOM_WRITERS[module](partial, PHANTOM_CASES, phantom_seed(module), **options)
        try:
            os.rename(partial, folder)
        except OSError:
            if not (folder / "manifest.csv").is_file():
                _check_not_in_the_way(folder)  # put there while the phantoms were written
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _check_not_in_the_way(folder: Path) -> None:
    """Refuse a `folder` that is there but is no phantom worklist: the reader is told to move it away."""
    if os.path.lexists(folder) and not (folder / "manifest.csv").is_file():
        what = ("a link" if folder.is_symlink() else "a folder without manifest.csv" if folder.is_dir()
                else "a file")
        raise SmartImagingError(f"The phantom worklist could not be written: {folder} is already there and is "
                                f"{what}, not a phantom worklist. Remove or rename it, then press Phantom worklist "
                                "again.")


def _expanded(text: str) -> Path:
    """The typed path with `~` expanded (an unknown user's `~name`: as typed, then refused as no folder)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def _reason(exc: OSError, named: Path | None = None) -> str:
    """A system error in plain words: its reason and the file it concerns (unless the message names it already)."""
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(named) else ""
    return (exc.strerror or type(exc).__name__) + where


def _by_module(name: str) -> str:
    return f"{name}[{MODULE}]"


def _assign(name: str, value: str) -> str:
    """A page expression that sets the open module's entry of the state dictionary `name` (a new dictionary, which
    the page sends to the server)."""
    return f"{name} = {{...{name}, [{MODULE}]: {value}}}"


def _label_text(labels: dict) -> str:
    """The labels in the table: the choices, then the note's start (all of it in the row's tooltip)."""
    parts = [str(value) for name, value in labels.items() if name != "note" and value]
    note = str(labels.get("note") or "")
    if note:
        parts.append(f"“{note[:NOTE_SHOWN]}…”" if len(note) > NOTE_SHOWN else f"“{note}”")
    return " · ".join(parts)


class WorklistPanel:
    """State, page and callbacks of the Worklist section, on the station `station`."""

    def __init__(self, station):
        self.station = station
        self.state = state = station.state
        modules = list(station.flows)
        self._readings: dict[str, WorklistReading] = {}
        self._shown: dict[str, tuple] = {}  # module -> (volume node, AI node) of the open case as last saved or kept
        self._saved: dict[str, tuple] = {}  # module -> (ROI fingerprint, labels) as last opened or saved
        self._pending: dict[str, Callable[[], None]] = {}  # module -> the move that waits for Save / Discard / Stay
        self._given_pixel: dict[str, tuple[str, str]] = {}  # module -> (case, pixel size) the reader last gave
        state.si_wl_fields = {m: [{"name": f.name, "title": f.title + (" *" if f.required else ""),
                                   "choices": list(f.choices)} for f in SPECS[m].fields] for m in modules}
        state.si_wl_starred = {m: any(f.required for f in SPECS[m].fields) for m in modules}  # "*" fields: the note
        state.si_wl_roi = {m: SPECS[m].mask_column is not None for m in modules}  # an ROI: the Dice column
        state.si_wl_folder = dict.fromkeys(modules, "")  # the folder field
        state.si_wl_open = dict.fromkeys(modules, "")  # the open worklist's folder
        state.si_wl_rows = {m: [] for m in modules}
        state.si_wl_counts = {m: [] for m in modules}  # [{status, count, colour}]
        state.si_wl_filter = dict.fromkeys(modules, ALL)
        state.si_wl_case = dict.fromkeys(modules, "")  # the case in the views ("" : none of the worklist)
        state.si_wl_labels = {m: {} for m in modules}
        state.si_wl_error = dict.fromkeys(modules, "")
        state.si_wl_info = dict.fromkeys(modules, "")
        state.si_wl_conflict = dict.fromkeys(modules, "")
        state.si_wl_ask = dict.fromkeys(modules, "")  # what is unsaved, while the page asks Save / Discard / Stay
        state.si_wl_skipped = dict.fromkeys(modules, "")
        state.si_wl_pixel = dict.fromkeys(modules, "")  # the case that waits for its pixel size
        state.si_wl_pixel_message = dict.fromkeys(modules, "")
        state.si_wl_pixel_mm = dict.fromkeys(modules, "")  # the pixel size field
        state.change("si_steps_done")(self._on_step_done)
        station.server.trigger(NEXT)(lambda labels=None, shown=None: self.on_step(1, labels, shown))
        station.server.trigger(PREVIOUS)(lambda labels=None, shown=None: self.on_step(-1, labels, shown))

    # ---- page ---------------------------------------------------------------------------------------------------

    def build(self) -> None:
        """The Worklist section ("4. Worklist"), after the result: save the case and move on."""
        client.Script(KEYS_SCRIPT)
        client.ClientStateChange(value="si_wl_case", change="setTimeout(() => document.querySelector("
                                 "'.si-wl-current')?.scrollIntoView({ block: 'nearest' }), 300)")  # in the table
        client.ClientStateChange(value="si_wl_error", change="setTimeout(() => document.querySelector("
                                 "'#si-wl-error')?.scrollIntoView({ block: 'nearest' }), 100)")  # a refused Save too
        v3.VDivider(classes="my-3")
        html.Div("4. Worklist", classes="text-subtitle-1 mb-1")
        with html.Div(classes="d-flex align-center ga-2"):
            v3.VTextField(model_value=(_by_module("si_wl_folder"),), label="Cohort folder (on this machine)",
                          update_modelValue=_assign("si_wl_folder", "$event"), density="compact", hide_details=True,
                          disabled=("si_busy",), id="si-wl-folder")
            v3.VBtn("Open", click=(self.on_open, f"[{_by_module('si_wl_folder')}, {LABELS}]"), disabled=("si_busy",),
                    variant="tonal", color="primary", id="si-wl-open-folder")
        v3.VBtn("Phantom worklist", click=(self.on_phantom, f"[{LABELS}]"), disabled=("si_busy",), variant="text",
                size="small", prepend_icon="mdi-folder-plus-outline", classes="mt-1", id="si-wl-phantom",
                title=f"Open this module's {PHANTOM_CASES}-case phantom cohort, written once into your SmartImaging "
                      "data folder (kept across restarts)")
        v3.VAlert(v_if=(_by_module("si_wl_error"),), text=(_by_module("si_wl_error"),), type="error",
                  variant="tonal", density="compact", classes="mt-1", id="si-wl-error")
        with v3.VAlert(v_if=(_by_module("si_wl_pixel"),), type="warning", variant="tonal", density="compact",
                       classes="mt-1", id="si-wl-pixel"):
            html.Div("{{ si_wl_pixel_message[si_module] }}")
            with html.Div(classes="d-flex align-center ga-2 mt-1"):
                v3.VTextField(model_value=(_by_module("si_wl_pixel_mm"),), label="Pixel size (mm)",
                              update_modelValue=_assign("si_wl_pixel_mm", "$event"), density="compact",
                              hide_details=True, disabled=("si_busy",), id="si-wl-pixel-mm", style="max-width: 160px;")
                v3.VBtn("Open the case", click=(self.on_pixel_size, f"[{_by_module('si_wl_pixel_mm')}]"),
                        disabled=("si_busy",), size="small", color="warning", id="si-wl-pixel-open",
                        title="Keep this pixel size with the case (asked once) and open it")
        with html.Div(v_if=(_by_module("si_wl_open"),), id="si-worklist"):
            self._table()
            self._labels()
        self._dialog()
        v3.VDivider(classes="my-3")

    def _table(self) -> None:
        html.Div("{{ si_wl_rows[si_module].length }} cases in {{ si_wl_open[si_module] }}",
                 classes="text-caption mt-1 text-truncate", id="si-wl-path", title=(_by_module("si_wl_open"),))
        html.Div("Not read: {{ si_wl_skipped[si_module] }}", v_if=(_by_module("si_wl_skipped"),),
                 classes="text-caption text-warning")
        with v3.VChipGroup(model_value=(_by_module("si_wl_filter"),), id="si-wl-filter", column=True,
                           update_modelValue=_assign("si_wl_filter", f"$event || '{ALL}'")):
            v3.VChip("All {{ si_wl_rows[si_module].length }}", value=ALL, size="small", filter=True,
                     variant="outlined")
            v3.VChip("{{ item.status }} {{ item.count }}", v_for=("item in si_wl_counts[si_module]",),
                     key="item.status", value=("item.status",), color=("item.colour",), size="small", filter=True,
                     variant="outlined", title="Show only the cases with this status")
        rows = (f"si_wl_rows[si_module].filter(r => si_wl_filter[si_module] === '{ALL}' "
                "|| r.status === si_wl_filter[si_module])")
        with v3.VTable(density="compact", fixed_header=True, id="si-wl-table", hover=True,
                       height=(f"{rows}.length > 7 ? '250px' : undefined",)):
            with html.Thead(), html.Tr():
                for title in ("Case", "Status", "Dice", "Labels"):
                    html.Th(title, style="padding: 0 6px;",
                            **({"v_if": ("si_wl_roi[si_module]",)} if title == "Dice" else {}))
            with html.Tbody():
                with html.Tr(v_for=(f"row in {rows}",), key="row.case", click=(self.on_row, f"[row.case, {LABELS}]"),
                             style="cursor: pointer;", classes=(
                                 "row.case === si_wl_case[si_module] ? 'bg-blue-grey-darken-3 si-wl-current' : ''",),
                             title="Open this case"):
                    html.Td("{{ row.name }}", style="padding: 0 6px; font-size: 13px;",
                            title=("'Case ' + row.case",))  # the study's path: on this screen only
                    with html.Td(style="padding: 0 6px;"):
                        v3.VChip("{{ row.status }}", color=("row.colour",), size="x-small", label=True,
                                 variant="flat")
                    html.Td("{{ row.dice === null ? '–' : row.dice.toFixed(2) }}", style="padding: 0 6px;",
                            title="Dice of the AI's proposal with the reader's corrected ROI",
                            v_if=("si_wl_roi[si_module]",))
                    html.Td("{{ row.labels }}", style="padding: 0 6px; font-size: 13px;", title=("row.note",))
                with html.Tr(v_if=(f"!{rows}.length",)):
                    html.Td("No case has this status", colspan=("si_wl_roi[si_module] ? 4 : 3",),
                            classes="text-caption")
        with html.Div(classes="d-flex align-center ga-2 mt-2"):
            v3.VBtn("Previous", click=(self.on_step, f"[-1, {LABELS}, {FILTER}]"), disabled=(TEACHING_BLOCKS,),
                    size="small", variant="tonal", prepend_icon="mdi-chevron-left", id="si-wl-previous",
                    title=f"The previous case (among those shown) ({PREVIOUS_KEY})")
            v3.VBtn("Next", click=(self.on_step, f"[1, {LABELS}, {FILTER}]"), disabled=(TEACHING_BLOCKS,), size="small",
                    variant="tonal", append_icon="mdi-chevron-right", id="si-wl-next",
                    title=f"The next case (among those shown) ({NEXT_KEY})")
            html.Span("Case {{ si_wl_rows[si_module].find(r => r.case === si_wl_case[si_module])?.name "
                      "|| si_wl_case[si_module] }}", v_if=(_by_module("si_wl_case"),),
                      classes="text-body-2 ml-1", id="si-wl-case")
        html.Div("{{ si_wl_info[si_module] }}", v_if=(_by_module("si_wl_info"),), classes="text-body-2 mt-1",
                 id="si-wl-info")

    def _labels(self) -> None:
        with html.Div(v_if=(_by_module("si_wl_case"),), id="si-wl-labels", classes="mt-2"):
            with html.Template(v_for=("field in si_wl_fields[si_module]",), key="field.name"):
                v3.VSelect(v_if=("field.name === 'kind' && si_kinds[si_module].length",), v_model=("si_kind",),
                           items=("si_kinds[si_module]",), label=("field.title",), density="compact",
                           hide_details=True, classes="mt-2", disabled=("si_busy",))
                v3.VSelect(v_if=("field.name !== 'kind' && field.choices.length",), items=("field.choices",),
                           label=("field.title",),
                           model_value=("si_wl_labels[si_module][field.name] || null",),
                           update_modelValue=_assign("si_wl_labels", "{...si_wl_labels[si_module], "
                                                                     "[field.name]: $event || ''}"),
                           density="compact", hide_details=True, classes="mt-2", clearable=True,
                           disabled=("si_busy",), id=("'si-wl-label-' + field.name",))
                v3.VTextField(v_if=("!field.choices.length",), label=("field.title",),
                              model_value=("si_wl_labels[si_module][field.name]",),
                              update_modelValue=_assign("si_wl_labels", "{...si_wl_labels[si_module], "
                                                                        "[field.name]: $event}"),
                              density="compact", hide_details=True, classes="mt-2", disabled=("si_busy",),
                              id=("'si-wl-label-' + field.name",))
            html.Div("* needed for “done”; a case saved without them is “corrected”.",
                     v_if=("si_wl_starred[si_module]",), classes="text-caption mt-1")
            with html.Div(classes="d-flex align-center ga-2 mt-2"):
                v3.VBtn("Save", click=(self.on_save, f"[{LABELS}]"), disabled=("si_busy",), color="success",
                        size="small", prepend_icon="mdi-content-save", id="si-wl-save",
                        title="Save the ROI as it is now and the labels into the cohort folder")
                v3.VBtn("Save and next", click=(self.on_save_and_next, f"[{LABELS}]"), disabled=("si_busy",),
                        color="success", variant="tonal", size="small", id="si-wl-save-next",
                        title=f"Save, then open the next case (among those shown) ({NEXT_KEY} moves without saving)")
            with v3.VAlert(v_if=(_by_module("si_wl_conflict"),), type="warning", variant="tonal", density="compact",
                           classes="mt-2", id="si-wl-conflict"):
                html.Div("{{ si_wl_conflict[si_module] }}")
                v3.VBtn("Save anyway", click=(self.on_save, f"[{LABELS}, true]"), disabled=("si_busy",), size="small",
                        color="warning", classes="mt-1", id="si-wl-save-anyway")

    def _dialog(self) -> None:
        with v3.VDialog(model_value=(f"!!{_by_module('si_wl_ask')}",), persistent=True, max_width=440),\
                v3.VCard(id="si-wl-ask"):
            v3.VCardTitle("Unsaved edits")
            v3.VCardText("Case {{ si_wl_case[si_module] }} has unsaved edits ({{ si_wl_ask[si_module] }}). Save "
                         "them before moving on?")
            with v3.VCardActions():
                v3.VSpacer()
                v3.VBtn("Save", click=(self.on_answer, f"['save', {LABELS}]"), color="success")
                v3.VBtn("Discard", click=(self.on_answer, f"['discard', {LABELS}]"), color="error")
                v3.VBtn("Stay", click=(self.on_answer, f"['stay', {LABELS}]"))

    # ---- callbacks ----------------------------------------------------------------------------------------------

    def on_open(self, folder, labels=None) -> None:
        module = self.state.si_module
        self._take_labels(module, labels)
        text = str(folder or "").strip()
        if self.state.si_busy:
            return
        if not text:
            self._set("si_wl_error", module, "Type the path of a cohort folder on this machine, then press Open")
            return
        self.when_saved(module, lambda: create_task(self.station._run(
            lambda progress: self._open_folder(progress, module, text), module)))

    def on_phantom(self, labels=None) -> None:
        module = self.state.si_module
        self._take_labels(module, labels)
        if self.state.si_busy:
            return
        self.when_saved(module, lambda: create_task(self.station._run(
            lambda progress: self._phantom(progress, module), module)))

    def on_pixel_size(self, text) -> None:
        """The pixel size typed for the case that waits for one: kept in its record, then the case opens."""
        module = self.state.si_module
        reading, case_id = self._readings.get(module), self.state.si_wl_pixel[module]
        if reading is None or not case_id or self.state.si_busy:
            return
        self._set("si_wl_error", module, "")
        try:
            reading.worklist.set_pixel_size(case_id, str(text or ""))
        except SmartImagingError as exc:
            self._set("si_wl_error", module, str(exc))
            return
        except OSError as exc:
            self._set("si_wl_error", module, f"The pixel size of case {case_id} was not kept: {_reason(exc)}")
            return
        self._given_pixel[module] = (case_id, reading.worklist.pixel_size(case_id))
        self._start_open(module, case_id)

    def on_row(self, case_id, labels=None) -> None:
        module = self.state.si_module
        self._take_labels(module, labels)
        reading = self._readings.get(module)
        if reading is None or self.state.si_busy or case_id == self.state.si_wl_case[module] or self._teaching(module):
            return
        self.when_saved(module, lambda: self._start_open(module, case_id))

    def on_step(self, step: int, labels=None, shown=None) -> None:
        """Previous (-1) or next (1) case among those the filter shows (`shown`: the filter the page showed at the
        click); where the reader stopped when the views show no case of the worklist."""
        module = self.state.si_module
        self._take_labels(module, labels)
        if shown == ALL or shown in STATUSES:
            self._set("si_wl_filter", module, shown)
        reading = self._readings.get(module)
        if reading is None or self.state.si_busy or self.state.si_wl_ask[module] or step not in (-1, 1) \
                or self._teaching(module):
            return
        status = self.state.si_wl_filter[module]
        status = None if status == ALL else status
        current = self.state.si_wl_case[module]
        target = reading.worklist.neighbour(current, step, status) if current else reading.worklist.resume_case()
        if target is None:
            where = "last" if step > 0 else "first"
            self._set("si_wl_info", module, f"Case {current} is the {where} case"
                      + (f" with the status “{status}”" if status else "") + " of the worklist")
            return
        self.when_saved(module, lambda: self._start_open(module, target))

    def on_save(self, labels=None, force: bool = False) -> None:
        module = self.state.si_module
        self._take_labels(module, labels)
        self._save(module, force is True)

    def on_save_and_next(self, labels=None) -> None:
        module = self.state.si_module
        self._take_labels(module, labels)
        if self._save(module):
            self.on_step(1)

    def on_answer(self, answer: str, labels=None) -> None:
        """The reader's answer to "Unsaved edits": save then move, move, or stay."""
        module = self.state.si_module
        self._take_labels(module, labels)
        move = self._pending.pop(module, None)
        self._set("si_wl_ask", module, "")
        if move is None or answer == "stay" or (answer == "save" and not self._save(module)):
            return
        move()

    def _teaching(self, module: str) -> bool:
        """Whether a student's teaching case is open and not yet checked (moving would discard the outline); says
        so on the page."""
        if not (self.state.si_teach_active or {}).get(module):
            return False
        self._set("si_wl_info", module, TEACHING)
        return True

    def _take_labels(self, module: str, labels) -> None:
        """The labels the page showed at the click (the module's fields only), as the state's."""
        if isinstance(labels, dict):
            names = [f.name for f in SPECS[module].fields]
            self._set("si_wl_labels", module, {name: str(labels.get(name) or "") for name in names})

    # ---- opening ------------------------------------------------------------------------------------------------

    def when_saved(self, module: str, move: Callable[[], None]) -> None:
        """Move now (to another case of the worklist, or another case: a sample), or ask first when the open case
        has unsaved edits."""
        unsaved = self._unsaved(module)
        if not unsaved:
            move()
            return
        self._pending[module] = move
        self._set("si_wl_ask", module, " and ".join(unsaved))

    async def _open_folder(self, progress, module: str, text: str) -> None:
        """Read the cases of the folder `text` in a worker thread and open where the reader stopped; refused or
        failed: one plain line under the field (the core's message; a system error's reason), the open worklist
        kept."""
        self._set("si_wl_error", module, "")
        folder = _expanded(text)
        progress(0.1, f"Worklist: reading the cases in {folder}")
        try:
            reading = await asyncio.to_thread(WorklistReading, self.station.flows[module], folder)
        except SmartImagingError as exc:
            self._set("si_wl_error", module, str(exc))
            return
        except OSError as exc:
            self._set("si_wl_error", module, f"The folder {folder} could not be read: {_reason(exc, folder)}")
            return
        except Exception:
            logger.exception("opening the worklist %s failed", folder)
            self._set("si_wl_error", module, f"The folder {folder} was not opened: {UNEXPECTED}")
            return
        self._readings[module] = reading
        self._shown.pop(module, None)
        self._given_pixel.pop(module, None)
        for name, value in (("si_wl_folder", str(folder)), ("si_wl_open", str(reading.worklist.folder)),
                            ("si_wl_case", ""), ("si_wl_info", ""), ("si_wl_conflict", ""), ("si_wl_filter", ALL),
                            ("si_wl_skipped", "; ".join(reading.worklist.skipped))):
            self._set(name, module, value)
        self._publish_rows(module)
        self._start_open(module, None)

    async def _phantom(self, progress, module: str) -> None:
        """Open the module's phantom worklist, written first when the user's data folder has none."""
        flow = self.station.flows[module]
        options = {"kind": flow.kind} if module == "MammoRadiomics" else {}  # one kind: a classifier trains on it
        folder = phantom_folder(module, options.get("kind"))
        if not (folder / "manifest.csv").is_file():
            progress(0, f"Phantom worklist: writing {PHANTOM_CASES} phantom cases of {flow.title} into {folder}")
            try:
                await asyncio.to_thread(write_phantoms, module, folder, **options)
            except OSError as exc:
                self._set("si_wl_error", module, f"The phantom worklist could not be written into {folder}: "
                                                 f"{_reason(exc, folder)}")
                return
            except SmartImagingError as exc:  # something else in its place
                self._set("si_wl_error", module, str(exc))
                return
        await self._open_folder(progress, module, str(folder))

    def _start_open(self, module: str, case_id: str | None) -> None:
        create_task(self.station._run(lambda progress: self._open_case(progress, module, case_id), module))

    async def _open_case(self, progress, module: str, case_id: str | None) -> None:
        """Open a case (None: where the reader stopped) in the module's views as a sample case is loaded."""
        station, flow, reading = self.station, self.station.flows[module], self._readings[module]
        progress(0.2, f"Worklist: opening case {case_id or reading.worklist.resume_case()}")
        station.slicer_app.segmentation_editor.clear()  # before the previous case's nodes leave the scene
        self._shown.pop(module, None)
        self._set("si_wl_case", module, "")
        self._set("si_wl_conflict", module, "")
        self._set("si_wl_pixel", module, "")
        try:
            case = reading.open_case(case_id)
        except PixelSizeNeededError as exc:  # not loaded at 1 mm: the section asks for the pixel size
            station._set_case(module, "", [])
            station._case_loaded(flow, None, False)  # the station's pixel-size field: no earlier image's size
            station._show(flow, fit=True)
            given = self._given_pixel.get(module)  # offered, never applied unasked: sources may differ
            self._set("si_wl_pixel_message", module, str(exc) + (
                f" The field holds the size you gave case {given[0]} ({given[1]} mm): check that it is this "
                "image's, then Open the case." if given else ""))
            self._set("si_wl_pixel_mm", module, given[1] if given else "")
            self._set("si_wl_pixel", module, exc.case_id)
            return
        except BaseException:
            station._set_case(module, "", [])
            station._show(flow, fit=True)
            raise
        station._release_uploads(module, flow.roles[0])
        shown = f" · {case.display_name}" if case.display_name else ""  # as the table names it, on this screen only
        station._set_case(module, f"Worklist case {case.case_id}{shown}", flow.notes())
        station._case_loaded(flow, None, False)
        if flow.kinds:
            self.state.si_kind = flow.kind
        station._show(flow, fit=True)
        if flow.ai_segmentation is not None and flow.segmentation is not None:
            raise_proposal(flow.ai_segmentation)  # the restored copy's fill came last: the AI's outline over it again
        saved = reading.labels()
        self._set("si_wl_labels", module, {f.name: saved.get(f.name, "") for f in reading.worklist.spec.fields})
        self._set("si_wl_case", module, case.case_id)
        self._set("si_wl_info", module, "")
        self._keep_as_saved(module)
        self._publish_rows(module)

    # ---- saving -------------------------------------------------------------------------------------------------

    def _save(self, module: str, force: bool = False) -> bool:
        """Save the open case; False (the reason on the page) when it was not saved."""
        reading = self._reading_of_views(module)
        self._set("si_wl_error", module, "")
        if reading is None:
            self._set("si_wl_error", module, "Open a case of the worklist first (the views show another case)")
            return False
        try:
            record = reading.save(self._page_labels(module), force=force)
        except ConflictError as exc:
            self._set("si_wl_conflict", module, str(exc))
            self._publish_rows(module)  # the other window's save, as the table should show it
            return False
        except SmartImagingError as exc:
            self._set("si_wl_error", module, str(exc))
            return False
        except OSError as exc:
            self._set("si_wl_error", module, f"Case {reading.case.case_id} was not saved: {_reason(exc)}")
            return False
        except Exception:
            logger.exception("saving case %s failed", reading.case.case_id)
            self._set("si_wl_error", module, f"Case {reading.case.case_id} was not saved: {UNEXPECTED}")
            return False
        self._set("si_wl_conflict", module, "")
        dice = record.get("dice_ai_vs_corrected")
        self._set("si_wl_info", module, f"Saved case {reading.case.case_id}: {record['status']}"
                  + (f" (Dice AI-vs-corrected {dice:.2f})" if dice is not None else "")
                  + ("; fill the labels marked * to make it done" if record["status"] == CORRECTED else ""))
        self._keep_as_saved(module)
        self._publish_rows(module)
        return True

    def _page_labels(self, module: str) -> dict[str, str]:
        """The labels on the page (the lesion kind: the tab's own field)."""
        labels = {name: str(value or "").strip() for name, value in (self.state.si_wl_labels[module] or {}).items()}
        flow = self.station.flows[module]
        if flow.kinds and "kind" in labels:
            labels["kind"] = flow.kind
        return {name: value for name, value in labels.items() if value}

    def _keep_as_saved(self, module: str) -> None:
        """The open case's ROI and labels as they are now are its saved state (unsaved edits are told from it)."""
        flow = self.station.flows[module]
        self._shown[module] = (flow.primary, flow.ai_segmentation)
        self._saved[module] = (flow.segmentation_fingerprint(), self._page_labels(module))

    def _unsaved(self, module: str) -> list[str]:
        """What the reader changed in the open case since it was opened or saved: "the ROI", "the labels"."""
        if self._reading_of_views(module) is None:
            return []
        fingerprint, labels = self._saved[module]
        flow = self.station.flows[module]
        return [what for what, changed in (("the ROI", flow.segmentation_fingerprint() != fingerprint),
                                           ("the labels", self._page_labels(module) != labels)) if changed]

    def worklist(self, module: str) -> Worklist | None:
        """The module's open worklist, or None."""
        reading = self._readings.get(module)
        return reading.worklist if reading is not None else None

    def _reading_of_views(self, module: str) -> WorklistReading | None:
        """The module's worklist reading when its views show the open case (not a sample or upload loaded since)."""
        reading = self._readings.get(module)
        shown = self._shown.get(module)
        if reading is None or reading.case is None or shown is None:
            return None
        return reading if self.station.flows[module].primary is shown[0] else None

    def _on_step_done(self, **_kwargs) -> None:
        """After every step: a new AI proposal on the open case is kept ("AI proposed"); a case loaded otherwise (a
        sample, an upload) ends the worklist case in that tab, so nothing is saved into the wrong case."""
        for module, reading in self._readings.items():
            shown = self._shown.get(module)
            if reading.case is None or shown is None:
                continue
            flow = self.station.flows[module]
            if flow.primary is not shown[0]:
                reading.case = None
                self._shown.pop(module)
                self._set("si_wl_case", module, "")
                self._set("si_wl_info", module, "The views show another case: open a worklist case to go on")
            elif flow.ai_segmentation is not None and flow.ai_segmentation is not shown[1]:
                try:
                    record = reading.keep_proposal()
                except SmartImagingError as exc:
                    self._set("si_wl_error", module, f"The AI's proposal was not kept: {exc}")
                    continue
                except OSError as exc:
                    self._set("si_wl_error", module, f"The AI's proposal was not kept: {_reason(exc)}")
                    continue
                except Exception:
                    logger.exception("keeping the AI's proposal of case %s failed", reading.case.case_id)
                    self._set("si_wl_error", module, f"The AI's proposal was not kept: {UNEXPECTED}")
                    continue
                fingerprint, labels = self._saved[module]
                if record["status"] == PROPOSED:  # a corrected case keeps its saved ROI: the new proposal is unsaved
                    fingerprint = flow.segmentation_fingerprint()
                self._shown[module], self._saved[module] = (flow.primary, flow.ai_segmentation), (fingerprint, labels)
                self._set("si_wl_info", module, f"Case {reading.case.case_id}: the AI's proposal is kept "
                                                f"({record['status']})")
                self._publish_rows(module)

    # ---- state --------------------------------------------------------------------------------------------------

    def _publish_rows(self, module: str) -> None:
        reading = self._readings[module]
        rows = [{"case": row["case"], "name": row["name"], "status": row["status"],
                 "colour": STATUS_COLOURS.get(row["status"], "grey"),
                 "dice": row["dice"], "labels": _label_text(row["labels"]), "note": row["labels"].get("note", "")}
                for row in reading.worklist.rows()]
        counts = {status: sum(row["status"] == status for row in rows) for status in STATUSES}
        self._set("si_wl_rows", module, rows)
        self._set("si_wl_counts", module, [{"status": status, "count": count, "colour": STATUS_COLOURS[status]}
                                           for status, count in counts.items()])

    def _set(self, name: str, module: str, value) -> None:
        self.state[name] = {**self.state[name], module: value}
