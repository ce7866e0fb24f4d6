"""The station's Model section: the module's Model selector (the demo classifier and the models trained in the open
worklist's cohort, with the chosen model's card), and Train / Evaluate on that cohort (`cohort_training`, in a
worker process of its own: progress, Cancel, nothing left behind by a cancel).

The cohort is the worklist open in the module's tab (the Worklist section's `si_wl_open`): its saved cases train
the model into `<cohort>/smartimaging/<Module>/models/<name>/`. Evaluate shows the paper's table on the held-out
test cases and the ROC curve in the page. The chosen model is the one the module's Compute uses; its card goes to
the flow, which loads it through the same checks as the demo one (checksums, the skops allow-list). The selector
offers only the lesion kind's models, chooses only a model it offers, and only once its card was read, so the card on
the page is the one Compute uses (a damaged metric shows as such; a card that cannot be read leaves the demo
classifier chosen, saying why). DCE synthesis (`dce.worklist_training`): Train fine-tunes the demo Pix2Pix, the
chosen generator goes to the flow's `generator_card`, and Evaluate shows the demo and the new generator side by side
with one held-out slice instead of a ROC curve. A job's result is about the cohort open when it started: when
another worklist was opened (or it was closed) meanwhile, the result still shows, naming its cohort.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_server.utils.asynchronous import create_task

from ..cohort_training import (
    GENERATORS,
    METHODS,
    TRAINABLE,
    card_attribute,
    card_summary,
    model_card_path,
    model_choices,
)
from ..dce.worklist_training import TRAIN_HELP as DCE_TRAIN_HELP
from ..errors import SmartImagingError
from ..lvi.worklist_training import choice_arguments, choices
from ..models.registry import check_model_name
from ..worker import WorkerProcess
from ..worklist import OUTPUT_FOLDER

MODULE = "si_module"
DEMO = ""  # the selector's value of the module's demo classifier
POLL_S = 0.1


async def follow_job(state, worker: WorkerProcess, progress) -> dict:
    """Poll a worker job's events into the page (each poll under `state`, so the page gets them at once) until it
    is over; what it ended with: {"result": event} or {"error": message} (neither: it stopped without a word)."""
    outcome: dict = {}
    while True:
        with state:
            over = worker.dispatch(progress, lambda event: outcome.update(result=event),
                                   lambda message, details: outcome.update(error=message))
        if over:
            return outcome
        await asyncio.sleep(POLL_S)
DCE = "(si_module === 'DCESynthesis')"  # its model is a generator: no classes, no ROC (`dce.worklist_training`)
GENERATOR_OR_CLASSIFIER = f"{DCE} ? 'Generator model' : 'Classifier model'"


def _by_module(name: str) -> str:
    return f"{name}[{MODULE}]"


def remembered_choice(station, module: str, attribute: str, kind: str | None, choices) -> str | None:
    """The selector value ("" the demo, else a card's path) of the card among `choices` that the module's open
    worklist remembers as chosen for the flow's `attribute` and lesion `kind`; None when no worklist is open."""
    worklist = station.worklist_panel.worklist(module)
    if worklist is None:
        return None
    card = worklist.chosen_card(attribute, kind, choices)
    return str(card) if card else ""


def remember_choice(station, module: str, attribute: str, kind: str | None, value: str) -> list[list[str]]:
    """Remember the selector's `value` ("" the demo) in the module's open worklist, so that it reopens with it; the
    card's rows to add ([["Note", why]] when it could not be remembered)."""
    worklist = station.worklist_panel.worklist(module)
    why = "" if worklist is None else worklist.remember_card(attribute, kind, Path(value) if value else None)
    return [["Note", why]] if why else []


class TrainingPanel:
    """State, page and callbacks of the Model section, on the station `station`."""

    def __init__(self, station):
        self.station = station
        self.state = state = station.state
        self._worker: WorkerProcess | None = None
        self._demo: dict[str, Path] = {}  # module -> the demo classifier's card
        self._listed: dict[str, tuple] = {}  # module -> the worklist folder and lesion kind the list is for
        modules = [m for m in station.flows if m in TRAINABLE]
        state.si_tr_modules = modules
        state.si_tr_models = {m: [] for m in modules}
        state.si_tr_model = dict.fromkeys(modules, DEMO)
        state.si_tr_card = {m: [] for m in modules}
        state.si_tr_name = {m: f"{getattr(station.flows[m], 'kind', 'site')}-cohort-1" for m in modules}
        state.si_tr_method = dict.fromkeys(modules, "preset")
        state.si_tr_methods = [{"value": key, "title": title} for key, title in METHODS.items()]
        state.si_tr_network = choices()[0][0]  # BreastLVI: the paper's network x sequence to train
        state.si_tr_networks = [{"value": value, "title": title} for value, title in choices()]
        state.si_tr_running = ""  # "train" or "evaluate" while a job runs (one at a time)
        state.si_tr_progress = 0
        state.si_tr_message = ""
        state.si_tr_error = dict.fromkeys(modules, "")
        state.si_tr_info = dict.fromkeys(modules, "")
        state.si_tr_table = {m: [] for m in modules}
        state.si_tr_roc = dict.fromkeys(modules, "")
        for name in ("si_kind", "si_module"):
            state.change(name)(self._on_context_changed)
        state.change("si_wl_open")(self._on_cohort_changed)
        opened = (state.si_wl_open or {}) if state.has("si_wl_open") else {}
        self._cohorts = {m: opened.get(m) for m in modules}  # the cohort each module's messages and tables are about
        for module in modules:
            self.refresh(module)

    # ---- page ---------------------------------------------------------------------------------------------------

    def build(self) -> None:
        """The Model selector and the chosen model's card (for the modules whose classifier trains from a
        worklist), before the steps."""
        with html.Div(v_if=("si_tr_modules.includes(si_module)",), id="si-model", classes="mt-4"):
            html.Div("Model", classes="text-subtitle-1 mb-1")
            v3.VSelect(model_value=(_by_module("si_tr_model"),), items=(_by_module("si_tr_models"),),
                       update_modelValue=(self.on_choose, "[si_module, $event]"), label=(GENERATOR_OR_CLASSIFIER,),
                       density="compact", hide_details=True, disabled=("si_busy",), id="si-tr-model")
            with v3.VTable(density="compact", id="si-tr-card", classes="mt-1"), html.Tbody():
                with html.Tr(v_for=("row in si_tr_card[si_module]",)):
                    html.Td("{{ row[0] }}", style="padding: 0 4px; font-size: 12px; white-space: nowrap;")
                    html.Td("{{ row[1] }}", style="padding: 0 4px; font-size: 12px;")

    def build_training(self) -> None:
        """Train and Evaluate on the open worklist's cohort, their progress, the evaluation table and ROC curve."""
        with html.Div(v_if=("si_tr_modules.includes(si_module)",), id="si-training", classes="mt-4"):
            html.Div("5. Learn from the worklist's cohort", classes="text-subtitle-1 mb-1")
            html.Div("Open a worklist (4. Worklist) and save its cases as done: Train fits a classifier on them, "
                     "Evaluate measures it on the held-out test cases.", v_if=(f"!si_wl_open?.[si_module] && !{DCE}",),
                     classes="text-caption")
            html.Div(DCE_TRAIN_HELP, v_if=(DCE,), classes="text-caption", id="si-tr-dce-help")
            with html.Div(classes="d-flex flex-wrap align-center ga-2 mt-1"):
                v3.VTextField(model_value=(_by_module("si_tr_name"),), label="Model name", density="compact",
                              update_modelValue=f"si_tr_name = {{...si_tr_name, [{MODULE}]: $event}}",
                              hide_details=True, disabled=("!!si_tr_running",), id="si-tr-name",
                              style="flex: 1 1 100%;")  # its own line: a whole default name is shown
                v3.VSelect(model_value=(_by_module("si_tr_method"),), items=("si_tr_methods",), label="Method",
                           v_if=("si_module === 'MammoRadiomics'",),
                           update_modelValue=f"si_tr_method = {{...si_tr_method, [{MODULE}]: $event}}",
                           density="compact", hide_details=True, disabled=("!!si_tr_running",), id="si-tr-method")
                v3.VSelect(v_model=("si_tr_network",), items=("si_tr_networks",), label="Network",
                           v_if=("si_module === 'BreastLVI'",), density="compact", hide_details=True,
                           disabled=("!!si_tr_running",), id="si-tr-network")
            with html.Div(classes="d-flex flex-wrap ga-2 mt-2"):
                ready = "!!si_tr_running || !si_wl_open?.[si_module]"
                v3.VBtn("Train", click=(self.on_train, "[si_module]"), disabled=(ready,), color="primary",
                        variant="tonal", prepend_icon="mdi-school-outline", id="si-tr-train")
                v3.VBtn("Evaluate", click=(self.on_evaluate, "[si_module]"), disabled=(ready,), variant="tonal",
                        prepend_icon="mdi-chart-bell-curve", id="si-tr-evaluate")
                v3.VBtn("Cancel", v_if=("si_tr_running",), click=self.on_cancel, color="error", variant="tonal",
                        id="si-tr-cancel")
            v3.VProgressLinear(v_if=("si_tr_running",), model_value=("si_tr_progress",), height=6, classes="mt-2",
                               color="primary", indeterminate=("si_tr_progress === 0",))
            html.Div("{{ si_tr_message }}", v_if=("si_tr_running",), classes="text-caption", id="si-tr-progress")
            v3.VAlert(v_if=(_by_module("si_tr_error"),), text=(_by_module("si_tr_error"),), type="error",
                      variant="tonal", density="compact", classes="mt-2", id="si-tr-error")
            html.Div("{{ si_tr_info[si_module] }}", v_if=(_by_module("si_tr_info"),), classes="text-body-2 mt-2",
                     id="si-tr-info")
            with v3.VTable(density="compact", v_if=(f"{_by_module('si_tr_table')}.length",), id="si-tr-table",
                           classes="mt-1"), html.Tbody():
                with html.Tr(v_for=("row in si_tr_table[si_module]",)):
                    html.Td("{{ row[0] }}", style="padding: 0 4px; font-size: 13px;")
                    html.Td("{{ row[1] }}", style="padding: 0 4px; font-size: 13px;")
            html.Img(v_if=(_by_module("si_tr_roc"),), src=(_by_module("si_tr_roc"),), id="si-tr-roc",
                     style="width: 100%; max-width: 400px;", alt=(f"{DCE} ? 'One held-out slice: T1, real DCE, "
                                                             "the demo and the new synthetic DCE' : 'ROC curve on "
                                                             "the held-out test cases'",))

    # ---- the model list ---------------------------------------------------------------------------------------

    def _out_folder(self, module: str) -> Path | None:
        """The open worklist's folder in its cohort (`<cohort>/smartimaging/<Module>`), or None."""
        folder = (self.state.si_wl_open or {}).get(module) if self.state.has("si_wl_open") else None
        return Path(folder) / OUTPUT_FOLDER / module if folder else None

    def refresh(self, module: str) -> None:
        """List the demo classifier and the cohort's models of the lesion kind. Another worklist or kind: the model
        chosen for it last (`Worklist.chosen_card`), else the demo; the same: the choice is kept while listed, else
        it goes back to the demo classifier."""
        flow, out, kind = self.station.flows[module], self._out_folder(module), self._kind(module)
        choices = model_choices(module, out, kind, flow.models_dir)
        self._demo[module] = choices[0][1]
        items = [{"value": DEMO if demo else str(card), "title": title} for title, card, demo in choices]
        chosen = self.state.si_tr_model[module]
        if self._listed.get(module) != (out, kind):
            self._listed[module] = (out, kind)
            remembered = remembered_choice(self.station, module, card_attribute(module), kind, choices)
            chosen = chosen if remembered is None else remembered
        self._set("si_tr_models", module, items)
        self.on_select(module, chosen if any(item["value"] == chosen for item in items) else DEMO)

    def _kind(self, module: str) -> str | None:
        """The module's lesion kind as the page has it: the station gives the flow a new kind after this section
        has seen it change."""
        flow = self.station.flows[module]
        page = self.state.si_kind if self.state.has("si_kind") else None
        return page if page in getattr(flow, "kinds", ()) else getattr(flow, "kind", None)

    def on_select(self, module: str, value: str | None) -> None:
        """Choose the model the module's Compute uses (only one the list offers) once its card was read, and show
        that card; a card that cannot be read leaves the demo classifier chosen, the reason above its card."""
        if module not in self.state.si_tr_modules:
            return
        value = value or DEMO
        if value not in [item["value"] for item in self.state.si_tr_models[module]]:
            return  # not offered (a page's stale list, or not a model of this cohort and kind): the choice stays
        try:
            rows = card_summary(Path(value) if value else self._demo[module])
        except (SmartImagingError, OSError) as exc:
            reason = str(exc) if isinstance(exc, SmartImagingError) else f"its card could not be read ({exc.strerror})"
            if value != DEMO:
                self.on_select(module, DEMO)
                self._set("si_tr_card", module, [["Not chosen", f"{Path(value).parent.name}: {reason}"],
                                                  *self.state.si_tr_card[module]])
                return
            rows = [["Card", reason]]
        setattr(self.station.flows[module], card_attribute(module), Path(value) if value else None)
        self._set("si_tr_model", module, value)
        self._set("si_tr_card", module, rows)

    def on_choose(self, module: str, value: str | None) -> None:
        """The reader's choice: chosen as `on_select` does, and remembered by the open worklist."""
        self.on_select(module, value)
        if module in self.state.si_tr_modules and self.state.si_tr_model[module] == (value or DEMO):
            note = remember_choice(self.station, module, card_attribute(module), self._kind(module), value or DEMO)
            self._set("si_tr_card", module, [*self.state.si_tr_card[module], *note])

    def _on_context_changed(self, **_kwargs) -> None:
        for module in self.state.si_tr_modules:
            self.refresh(module)

    def _on_cohort_changed(self, **_kwargs) -> None:
        """Another worklist opened in a tab: the messages, table and ROC of the previous cohort go."""
        for module in self.state.si_tr_modules:
            cohort = ((self.state.si_wl_open or {}) if self.state.has("si_wl_open") else {}).get(module)
            if cohort != self._cohorts[module]:
                self._cohorts[module] = cohort
                for name, empty in (("si_tr_error", ""), ("si_tr_info", ""), ("si_tr_table", []), ("si_tr_roc", "")):
                    self._set(name, module, empty)
        self._on_context_changed()

    # ---- train and evaluate -----------------------------------------------------------------------------------

    def on_train(self, module: str) -> None:
        name = self.state.si_tr_name[module].strip()
        kind = getattr(self.station.flows[module], "kind", None)
        arguments = ["--name", name, "--method", self.state.si_tr_method[module], *(["--kind", kind] if kind else [])]
        try:
            arguments += choice_arguments(self.state.si_tr_network) if module == "BreastLVI" else []
        except SmartImagingError as exc:
            self._set("si_tr_error", module, str(exc))
            return
        self._start(module, "train", name, arguments)

    def on_evaluate(self, module: str) -> None:
        name = self.state.si_tr_name[module].strip()
        self._start(module, "evaluate", name, ["--name", name])

    def on_cancel(self) -> None:
        """Stop the job's process (in a thread: it is given a few seconds to remove its scratch folder)."""
        if self._worker is not None:
            create_task(asyncio.to_thread(self._worker.cancel))

    def _start(self, module: str, what: str, name: str, arguments: list[str]) -> None:
        if self.state.si_tr_running:
            return
        out = self._out_folder(module)
        try:
            if out is None:
                raise SmartImagingError("Open the cohort's worklist first (Worklist, above)")
            check_model_name(name)
        except SmartImagingError as exc:
            self._set("si_tr_error", module, str(exc))
            return
        self._set("si_tr_error", module, "")
        self._set("si_tr_info", module, "")
        self._set("si_tr_table", module, [])  # an earlier model's numbers must not read as this job's
        self._set("si_tr_roc", module, "")
        self.state.si_tr_running, self.state.si_tr_progress, self.state.si_tr_message = what, 0, "starting"
        self._worker = WorkerProcess(f"cohort-{what}", ["--output-dir", str(out), "--module", module, *arguments])
        create_task(self._follow(module, what, name, out))

    async def _follow(self, module: str, what: str, name: str, out: Path) -> None:
        """Poll the job's events into the page until it is over; its result is about the cohort `out` captured at
        its start, whichever worklist is open by then."""
        worker = self._worker

        def progress(fraction: float, message: str) -> None:
            self.state.si_tr_progress, self.state.si_tr_message = round(100 * fraction), message

        try:
            outcome = await follow_job(self.state, worker, progress)
        finally:
            self._worker = None
        with self.state:
            self.state.si_tr_running = ""
            if worker.cancelled:
                self._set("si_tr_error", module, "Cancelled: " + ("no model was written" if what == "train"
                                                                  else "the previous evaluation was kept"))
            elif "error" in outcome:
                self._set("si_tr_error", module, outcome["error"])
            elif what == "train":
                self._trained(module, name, out)
            else:
                self._evaluated(module, name, outcome["result"]["evaluation"], out)

    def _elsewhere(self, module: str, out: Path) -> Path | None:
        """None when the job's cohort (`out`, its worklist's folder in the cohort) is the worklist open now, else that
        cohort's folder (another worklist was opened, or it was closed, while the job ran)."""
        return None if self._out_folder(module) == out else out.parent.parent

    def _trained(self, module: str, name: str, out: Path) -> None:
        self.refresh(module)
        summary = dict(card_summary(model_card_path(out, module, name)))
        cohort = self._elsewhere(module, out)
        where = f"; it is in the cohort {cohort}, not the worklist open now. Open that worklist to choose" if cohort \
            else ". Choose"
        self._set("si_tr_info", module, f"Model {name} trained on {summary['Trained on']}{where} it in the "
                                        f"{'Generator' if module in GENERATORS else 'Classifier'} model list to "
                                        "compute with it; Evaluate measures it on the held-out test cases.")

    def _evaluated(self, module: str, name: str, report: dict, out: Path) -> None:
        roc = model_card_path(out, module, name).parent / "evaluation" / report.get("figure", "roc.png")
        self._set("si_tr_table", module, report["table"])
        self._set("si_tr_roc", module, "data:image/png;base64," + base64.b64encode(roc.read_bytes()).decode())
        cohort = self._elsewhere(module, out)
        self._set("si_tr_info", module, f"Model {name} on the {report['cases']} held-out test cases of the cohort "
                                        f"{cohort} (not the worklist open now):" if cohort else
                                        f"Model {name} on the cohort's {report['cases']} held-out test cases:")
        self.refresh(module)  # the card now records the test metrics

    def _set(self, name: str, module: str, value) -> None:
        self.state[name] = {**self.state[name], module: value}
