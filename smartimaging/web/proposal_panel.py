"""The station's Proposal network section (Mammography, Breast LVI, Bone scan): the network the module's Segment
uses (the demo U-Net, or one fine-tuned on the open worklist's cohort, with its card), and "Fine-tune on this cohort":
the worker job `finetune-segmenter` on the worklist's done cases, from the chosen network, in a worker process of its
own (progress, Cancel; a cancel leaves no model folder); then Dice before → after on the held-out corrected cases,
and the new network is chosen unless its Dice fell. A phantom cohort (its marker file) is labelled phantom by the job
itself: the section only says so.

The chosen card goes to the flow (`flow.segmenter_card`), which loads it through the registry's checks (sha256,
safetensors, size limits) and refuses a damaged or tampered one with a message, never falling back silently.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from trame.widgets import html
from trame.widgets import vuetify3 as v3
from trame_server.utils.asynchronous import create_task

from ..errors import InputError, SmartImagingError
from ..finetune import FINETUNE_EPOCHS
from ..proposal_networks import (
    MAX_EPOCHS,
    TASKS,
    check_finetune_data,
    finetune_outcome,
    next_name,
    phantom_manifest,
    proposal_card_path,
    proposal_choices,
    proposal_summary,
)
from ..worker import WorkerProcess
from ..worklist import OUTPUT_FOLDER
from .training_panel import follow_job, remember_choice, remembered_choice

MODULE = "si_module"
DEMO = ""  # the selector's value of the module's demo U-Net


def _by_module(name: str) -> str:
    return f"{name}[{MODULE}]"


def _assign(name: str) -> str:
    return f"{name} = {{...{name}, [{MODULE}]: $event}}"


class ProposalPanel:
    """State, page and callbacks of the Proposal network section, on the station `station`."""

    def __init__(self, station):
        self.station = station
        self.state = state = station.state
        self._worker: WorkerProcess | None = None
        self._demo: dict[str, Path] = {}  # module -> the demo U-Net's card
        self._listed: dict[str, tuple] = {}  # module -> the worklist folder and lesion kind the name and box are for
        modules = [m for m in station.flows if m in TASKS]
        state.si_pn_modules = modules
        state.si_pn_models = {m: [] for m in modules}
        state.si_pn_model = dict.fromkeys(modules, DEMO)
        state.si_pn_card = {m: [] for m in modules}
        state.si_pn_name = dict.fromkeys(modules, "")
        state.si_pn_epochs = dict.fromkeys(modules, str(FINETUNE_EPOCHS))
        state.si_pn_phantom = dict.fromkeys(modules, False)  # the open worklist's cohort holds synthetic phantoms
        state.si_pn_running = ""  # the module whose fine-tuning runs (one at a time)
        state.si_pn_progress = 0
        state.si_pn_message = ""
        state.si_pn_error = dict.fromkeys(modules, "")
        state.si_pn_dice = {m: [] for m in modules}  # the last fine-tuning's Dice before and after
        for name in ("si_kind", "si_module", "si_wl_open"):
            state.change(name)(self._on_context_changed)
        for module in modules:
            self.refresh(module)

    # ---- page ---------------------------------------------------------------------------------------------------

    def build(self) -> None:
        """The selector, the chosen network's card, and Fine-tune with its progress and Dice before → after."""
        with html.Div(v_if=("si_pn_modules.includes(si_module)",), id="si-proposal", classes="mt-4"):
            html.Div("Proposal network", classes="text-subtitle-1 mb-1")
            v3.VSelect(model_value=(_by_module("si_pn_model"),), items=(_by_module("si_pn_models"),),
                       update_modelValue=(self.on_choose, "[si_module, $event]"), label="Network that Segment uses",
                       density="compact", hide_details=True, disabled=("si_busy || !!si_pn_running",),
                       id="si-pn-model")
            with v3.VTable(density="compact", id="si-pn-card", classes="mt-1"), html.Tbody():
                with html.Tr(v_for=("row in si_pn_card[si_module]",)):
                    html.Td("{{ row[0] }}", style="padding: 0 4px; font-size: 12px; white-space: nowrap;")
                    html.Td("{{ row[1] }}", style="padding: 0 4px; font-size: 12px;")
            html.Div("Open a worklist (above) and save corrected cases as done: Fine-tune adapts the chosen network "
                     "to them.", v_if=("!si_wl_open?.[si_module]",), classes="text-caption mt-1")
            with html.Div(classes="d-flex align-center ga-2 mt-2"):
                v3.VTextField(model_value=(_by_module("si_pn_name"),), label="New network's name", density="compact",
                              update_modelValue=_assign("si_pn_name"), hide_details=True,
                              disabled=("!!si_pn_running",), id="si-pn-name")
                v3.VTextField(model_value=(_by_module("si_pn_epochs"),), label="Epochs", density="compact",
                              update_modelValue=_assign("si_pn_epochs"), hide_details=True, type="number",
                              disabled=("!!si_pn_running",), id="si-pn-epochs", style="max-width: 80px;")
            html.Div("Synthetic phantoms (the cohort's marker file): the new card labels its Dice as phantom "
                     "numbers.", v_if=(_by_module("si_pn_phantom"),), classes="text-caption mt-1", id="si-pn-phantom")
            with html.Div(classes="d-flex flex-wrap ga-2 mt-2"):
                v3.VBtn("Fine-tune on this cohort", click=(self.on_finetune, "[si_module]"),
                        disabled=("!!si_pn_running || !si_wl_open?.[si_module]",), color="primary", variant="tonal",
                        prepend_icon="mdi-tune-variant", id="si-pn-finetune")
                v3.VBtn("Cancel", v_if=("si_pn_running === si_module",), click=self.on_cancel, color="error",
                        variant="tonal", id="si-pn-cancel")
            v3.VProgressLinear(v_if=("si_pn_running === si_module",), model_value=("si_pn_progress",), height=6,
                               classes="mt-2", color="primary", indeterminate=("si_pn_progress === 0",))
            html.Div("{{ si_pn_message }}", v_if=("si_pn_running === si_module",), classes="text-caption",
                     id="si-pn-progress")
            v3.VAlert(v_if=(_by_module("si_pn_error"),), text=(_by_module("si_pn_error"),), type="error",
                      variant="tonal", density="compact", classes="mt-2", id="si-pn-error")
            with v3.VTable(density="compact", v_if=(f"{_by_module('si_pn_dice')}.length",), id="si-pn-dice",
                           classes="mt-1"), html.Tbody():
                with html.Tr(v_for=("row in si_pn_dice[si_module]",)):
                    html.Td("{{ row[0] }}", style="padding: 0 4px; font-size: 13px; white-space: nowrap;")
                    html.Td("{{ row[1] }}", style="padding: 0 4px; font-size: 13px;")

    # ---- the network list -------------------------------------------------------------------------------------

    def _out_folder(self, module: str) -> Path | None:
        """The open worklist's folder in its cohort (`<cohort>/smartimaging/<Module>`), or None."""
        folder = (self.state.si_wl_open or {}).get(module) if self.state.has("si_wl_open") else None
        return Path(folder) / OUTPUT_FOLDER / module if folder else None

    def refresh(self, module: str) -> None:
        """List the demo U-Net and the cohort's fine-tuned networks of the lesion kind; the choice is kept while
        listed, else it goes back to the demo U-Net. Another worklist (or lesion kind) proposes a free name and
        says whether its cohort is phantoms."""
        flow, out = self.station.flows[module], self._out_folder(module)
        kind = getattr(flow, "kind", None)
        choices = proposal_choices(module, out, kind, flow.models_dir)
        self._demo[module] = choices[0][1]
        items = [{"value": DEMO if demo else str(card), "title": title} for title, card, demo in choices]
        chosen = self.state.si_pn_model[module]
        if self._listed.get(module) != (out, kind):
            self._listed[module] = (out, kind)
            self._set("si_pn_name", module, next_name(module, out, kind))
            self._set("si_pn_phantom", module, out is not None and phantom_manifest(out / "manifest.csv"))
            remembered = remembered_choice(self.station, module, "segmenter_card", kind, choices)
            chosen = chosen if remembered is None else remembered
        self._set("si_pn_models", module, items)
        self.on_select(module, chosen if any(item["value"] == chosen for item in items) else DEMO)

    def on_select(self, module: str, value: str | None) -> None:
        """The network the module's Segment uses (only one the list offers), and its card on the page."""
        value = value or DEMO
        if value not in [item["value"] for item in self.state.si_pn_models[module]]:
            return  # not offered (a page's stale list, or not a network of this cohort and kind): the choice stays
        self.station.flows[module].segmenter_card = Path(value) if value else None
        self._set("si_pn_model", module, value)
        try:
            self._set("si_pn_card", module, proposal_summary(Path(value) if value else self._demo[module]))
        except SmartImagingError as exc:
            self._set("si_pn_card", module, [["Card", str(exc)]])

    def on_choose(self, module: str, value: str | None) -> None:
        """The reader's choice: chosen as `on_select` does, and remembered by the open worklist."""
        self.on_select(module, value)
        if self.state.si_pn_model[module] == (value or DEMO):
            note = remember_choice(self.station, module, "segmenter_card",
                                   getattr(self.station.flows[module], "kind", None), value or DEMO)
            self._set("si_pn_card", module, [*self.state.si_pn_card[module], *note])

    def _on_context_changed(self, **_kwargs) -> None:
        for module in self.state.si_pn_modules:
            self.refresh(module)

    # ---- fine-tuning ------------------------------------------------------------------------------------------

    def on_finetune(self, module: str) -> None:
        if self.state.si_pn_running:
            return
        flow, out = self.station.flows[module], self._out_folder(module)
        name = str(self.state.si_pn_name[module]).strip()
        try:
            if out is None:
                raise InputError("Open the cohort's worklist first (Worklist, above)")
            epochs = self._epochs(module)
            target = proposal_card_path(out, name).parent
            if target.exists():
                raise InputError(f"This cohort already has a proposal network named {name}; choose another name")
            check_finetune_data(module, out / "manifest.csv", getattr(flow, "kind", None))
        except SmartImagingError as exc:
            self._set("si_pn_error", module, str(exc))
            return
        start = flow.segmenter_card or self._demo[module]
        self._set("si_pn_error", module, "")
        self._set("si_pn_dice", module, [])
        self.state.si_pn_running, self.state.si_pn_progress, self.state.si_pn_message = module, 0, "starting"
        arguments = ["--task", TASKS[module], "--manifest", str(out / "manifest.csv"), "--from-card", str(start),
                     "--output-dir", str(target), "--name", name, "--epochs", str(epochs), "--device", flow.device]
        self._worker = WorkerProcess("finetune-segmenter", arguments)
        create_task(self._follow(module, target))

    def _epochs(self, module: str) -> int:
        text = str(self.state.si_pn_epochs[module]).strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_EPOCHS:
            raise InputError(f"Epochs '{text}': give a whole number from 1 to {MAX_EPOCHS} (default "
                             f"{FINETUNE_EPOCHS})")
        return int(text)

    def on_cancel(self) -> None:
        """Stop the job's process (in a thread: it is given a few seconds to unwind)."""
        if self._worker is not None:
            create_task(asyncio.to_thread(self._worker.cancel))

    async def _follow(self, module: str, target: Path) -> None:
        """Poll the job's events into the page until it is over; a cancelled job's model folder is removed (the
        name was free when it started)."""
        worker = self._worker

        def progress(fraction: float, message: str) -> None:
            self.state.si_pn_progress, self.state.si_pn_message = round(100 * fraction), message

        try:
            outcome = await follow_job(self.state, worker, progress)
        finally:
            self._worker = None
        if worker.cancelled:
            shutil.rmtree(target, ignore_errors=True)
        with self.state:
            self.state.si_pn_running = ""
            if worker.cancelled:
                self._set("si_pn_error", module, "Cancelled: no network was written")
            elif "error" in outcome:
                self._set("si_pn_error", module, outcome["error"])
            elif "result" not in outcome:
                self._set("si_pn_error", module, f"The fine-tuning process stopped without a result: "
                                                 f"{worker.stderr[-300:] or 'no message'}")
            else:
                self._finetuned(module, outcome["result"])

    def _finetuned(self, module: str, result: dict) -> None:
        """Dice before → after on the held-out cases, the new network chosen unless its Dice fell, a free name for
        the next one."""
        chosen, rows = finetune_outcome(TASKS[module], result)
        self.refresh(module)
        if chosen:  # chosen as the reader chooses: the worklist reopens with it
            self.on_choose(module, result["card"])
        flow = self.station.flows[module]
        self._set("si_pn_name", module, next_name(module, self._out_folder(module), getattr(flow, "kind", None)))
        self._set("si_pn_dice", module, rows)

    def _set(self, name: str, module: str, value) -> None:
        self.state[name] = {**self.state[name], module: value}
