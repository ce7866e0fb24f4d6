"""The bone-scan tab's lesion review and follow-up in the reading station.

Lesions: the result's numbered lesions per view (`bonescan.lesions.review`); a click rejects a lesion (or accepts it
again) and computes BSTBI again, so the headline, the counts and the table follow. Follow-up: earlier studies, results
of this session or result.json files of `bonescan predict`, in the order the reader adds them, with the current
result last; `bonescan.followup.trend` orders them by study date when every date is known and gives the change and
the plot.
"""

from __future__ import annotations

import json

from trame.widgets import client, html
from trame.widgets import vuetify3 as v3
from trame_server.utils.asynchronous import create_task

from ..bonescan.followup import (
    MAX_RESULT_BYTES,
    StudyPoint,
    check_comparable,
    parse_result,
    parse_study_date,
    reader_text,
    record_facts,
    trend,
    trend_lines,
    trend_svg,
    why_not_joinable,
)
from ..bonescan.lesions import review
from ..bonescan.sites import SITE_NOTE
from ..errors import InputError
from .display_panel import ELLIPSIS

MODULE = "BoneScanBSTBI"
RESULT_TRIGGER = "si_bone_result_file"

# Asks for result.json files (a file input made for the purpose, so the page keeps one file input: the case's), reads
# each as text (a few hundred kB; larger files are refused by size, unread) and sends it.
RESULT_UPLOAD_SCRIPT = f"""
window.smartimagingBoneResults = function () {{
  const input = document.createElement("input");
  input.type = "file";
  input.accept = ".json,application/json";
  input.multiple = true;
  input.onchange = async () => {{
    for (const file of Array.from(input.files || [])) {{
      const text = file.size <= {MAX_RESULT_BYTES} ? await file.text() : null;
      await trame.trigger({json.dumps(RESULT_TRIGGER)}, [file.name, file.size, text]);
    }}
  }};
  input.click();
}};
"""

def _date(text) -> str | None:
    try:
        return parse_study_date(text).isoformat() if text else None
    except InputError:
        return None


def _entry(point: StudyPoint) -> dict:
    """A study of the follow-up as the page's state holds it (`reader`: what the reader changed, in words)."""
    return {"label": point.label, "bstbi": point.bstbi,
            "study_date": point.study_date.isoformat() if point.study_date else None,
            "acquisition": point.acquisition, "outside_domain": point.outside_domain, "digest": point.digest,
            "rejected": point.rejected, "reader_segmentation": point.reader_segmentation,
            "reader": reader_text(point.rejected, point.reader_segmentation)}


def _point(entry: dict) -> StudyPoint:
    return StudyPoint(entry["label"], entry["bstbi"], parse_study_date(entry["study_date"]), entry["acquisition"],
                      entry["outside_domain"], entry["digest"], entry["rejected"], entry["reader_segmentation"])


class BoneScanPanel:
    """State, page and callbacks of the lesion list and the follow-up, on the station `station`."""

    def __init__(self, station):
        self.station = station
        self.flow = station.flows[MODULE]
        self._history: dict[str, dict] = {}  # volume node id -> this session's last result of that case
        self._earlier: list[dict] = []  # the earlier studies the reader added, in order
        self._toggling = False  # a Reject click is being applied: further clicks wait for it (one toggle per click)
        state = station.state
        state.si_bone_review = {"views": [], "counts": ""}
        state.si_bone_session = []  # results of this session that can join this patient's follow-up: {value, title}
        state.si_bone_session_skipped = []  # "label: why not" of the others
        state.si_bone_earlier = []
        state.si_bone_trend = None  # {lines, svg, change}
        state.si_bone_followup_error = ""
        state.change("si_steps_done")(self._on_step_done)
        state.change("si_module")(self._on_module_changed)
        state.change("si_stale")(self._publish)  # an edit makes the result, hence the trend's last point, stale
        station.server.trigger(RESULT_TRIGGER)(self.on_result_file)

    # ---- page ---------------------------------------------------------------------------------------------------

    def build(self) -> None:
        """The lesion list and the follow-up, shown in the bone-scan tab under the result."""
        client.Script(RESULT_UPLOAD_SCRIPT)
        with html.Div(v_if=(f"si_module === '{MODULE}' && si_bone_review.views.length",), id="si-bone-lesions",
                      classes=(f"si_stale['{MODULE}'] ? 'text-disabled' : ''",)):
            html.Div("Lesions: click Reject to leave a false positive out of BSTBI and the counts (its number turns "
                     "grey on the image)",
                     classes="text-subtitle-2 mt-3")
            html.Div("{{ si_bone_review.counts }}", classes="text-body-2", id="si-bone-counts")
            with html.Div(v_for=("group in si_bone_review.views",), key="group.view", classes="mt-2",
                          id=("'si-bone-view-' + group.view",)):
                html.Div("{{ group.title.charAt(0).toUpperCase() + group.title.slice(1) }}: "
                         "{{ group.lesions.filter(l => !l.rejected).length }} of {{ group.lesions.length }} accepted",
                         classes="text-body-2 font-weight-bold")
                html.Div("No lesion segmented", v_if=("!group.lesions.length",), classes="text-caption")
                with html.Div(v_for=("lesion in group.lesions",), key="lesion.id",
                              classes="d-flex align-center ga-2 py-1 si-bone-lesion",
                              style="border-bottom: 1px solid rgba(255,255,255,0.12);"):
                    v3.VChip("#{{ lesion.id }}", size="small", label=True,
                             color=("lesion.rejected ? 'grey' : 'error'",), variant="flat")
                    with html.Div(classes=("'flex-grow-1 text-caption' + (lesion.rejected ? "
                                           "' text-disabled text-decoration-line-through' : '')",)):
                        html.Div("{{ lesion.site }} · {{ lesion.area }}", classes="si-bone-site",
                                 title=("'Centre: ' + lesion.position + ' from the top-left corner of the view'",))
                        html.Div("{{ lesion.uptake }} · {{ lesion.match }} · {{ lesion.position }}",
                                 classes="text-medium-emphasis")
                    v3.VBtn("{{ lesion.rejected ? 'Accept' : 'Reject' }}", size="x-small", variant="tonal",
                            color=("lesion.rejected ? 'success' : 'warning'",),
                            disabled=(f"si_busy || si_stale['{MODULE}']",),
                            click=(self.on_toggle, "[lesion.id, lesion.rejected]"),
                            id=("'si-bone-toggle-' + lesion.id",))
            html.Div(f"{SITE_NOTE} Position (also on hover): the lesion's centre in mm from the top-left corner of "
                     "its view (x right, y down). Uptake: counts in the lesion's pixels; no reference region is "
                     "segmented, so no ratio.", classes="text-caption mt-1", id="si-bone-site-rule")
        with html.Div(v_if=(f"si_module === '{MODULE}'",), id="si-bone-followup"):
            html.Div("Follow-up: earlier studies of this patient", classes="text-subtitle-2 mt-4")
            html.Div("Earlier results of this patient in this session (click to add):",
                     v_if=("si_bone_session.length",), classes="text-caption mt-1")
            with html.Div(classes="d-flex flex-wrap ga-1"):
                v3.VBtn("{{ entry.title }}", v_for=("entry in si_bone_session",), key="entry.value",
                        click=(self.on_add_session, "[entry.value]"), disabled=("si_busy",), size="small",
                        variant="tonal", prepend_icon="mdi-plus", classes="si-bone-session")
            with html.Div(v_if=("si_bone_session_skipped.length",), id="si-bone-session-skipped",
                          classes="text-caption text-medium-emphasis mt-1"):
                html.Div("Not offered: results of this session that cannot join this patient's follow-up")
                html.Div("{{ line }}", v_for=("line in si_bone_session_skipped",), style=ELLIPSIS, title=("line",))
            v3.VBtn("Add an earlier result.json (bonescan predict / bstbi)", click="window.smartimagingBoneResults()",
                    prepend_icon="mdi-file-upload-outline", variant="tonal", size="small", classes="mt-2",
                    disabled=("si_busy",), id="si-bone-result-file")
            v3.VAlert(v_if=("si_bone_followup_error",), text=("si_bone_followup_error",), type="error",
                      density="compact", classes="mt-2", id="si-bone-followup-error")
            with html.Div(v_for=("(study, index) in si_bone_earlier",), key="index",
                          classes="d-flex align-center text-body-2 mt-1 si-bone-earlier"):
                html.Span("{{ index + 1 }}. {{ study.label }} · {{ study.study_date || 'date unknown' }} · "
                          "BSTBI {{ study.bstbi.toFixed(3) }}{{ study.reader ? ' · ' + study.reader : '' }}",
                          classes="flex-grow-1")
                v3.VBtn(icon="mdi-close", size="x-small", variant="text", click=(self.on_remove, "[index]"),
                        disabled=("si_busy",))
            with html.Div(v_if=("si_bone_trend",), id="si-bone-trend", classes="mt-2"):
                v3.VAlert(v_if=("si_bone_trend.reader_note",), text=("si_bone_trend.reader_note",), type="warning",
                          density="compact", classes="mb-2", id="si-bone-trend-reader")
                html.Div("{{ line }}", v_for=("line in si_bone_trend.lines",), classes="text-body-2")
                html.Div(v_html=("si_bone_trend.svg",), classes="mt-2")
            html.Div("Add an earlier study and compute BSTBI of this one to see the change and the trend.",
                     v_if=("!si_bone_trend",), classes="text-caption mt-1")

    # ---- callbacks ----------------------------------------------------------------------------------------------

    def on_toggle(self, lesion_id, shown_rejected) -> None:
        """Reject the lesion (or accept it again) and compute BSTBI again. The click carries what its button showed:
        a click on a state that is already gone (the second click of a double-click, which can arrive after the
        first one's quick step is over) changes nothing."""
        state = self.station.state
        if self._toggling or state.si_busy or state.si_module != MODULE:
            return
        if (int(lesion_id) in self.flow.exclude) != bool(shown_rejected):
            return
        self._toggling = state.si_busy = True  # at once: a second click of a double-click finds it busy

        async def toggle_and_compute(progress) -> None:
            self.flow.toggle_lesion(int(lesion_id))  # a refusal reaches the page as the module's error
            await self.station._compute(progress)

        async def run_once() -> None:
            try:
                await self.station._run(toggle_and_compute)
            finally:
                self._toggling = False

        create_task(run_once())

    def _add(self, entry: dict) -> None:
        """An earlier study added to the follow-up, after `check_comparable` with the others and the current one."""
        current = self._current()
        check_comparable([_point(e) for e in [*self._earlier, entry, *([current] if current else [])]],
                         current_last=current is not None)
        self._earlier.append(entry)

    def _current(self) -> dict | None:
        """This study's entry (its last result this session), or None."""
        flow = self.flow
        key = flow.primary.GetID() if flow.primary is not None else None
        return {**self._history[key], "label": "this study (current)"} if key in self._history else None

    def on_add_session(self, key) -> None:
        entry = self._history.get(key)
        state = self.station.state
        try:
            if entry is not None:  # the patient's digest stays on the server
                self._add({key: value for key, value in entry.items() if key != "patient"})
        except InputError as exc:
            state.si_bone_followup_error = str(exc)
        else:
            state.si_bone_followup_error = ""
        self._publish()

    def on_remove(self, index) -> None:
        if 0 <= int(index) < len(self._earlier):
            self._earlier.pop(int(index))
            self.station.state.si_bone_followup_error = ""
        self._publish()

    def on_result_file(self, name: str, size: int, text: str | None) -> None:
        """An earlier result.json from the reader's computer, checked as `bonescan trend` checks it."""
        state = self.station.state
        try:
            if text is None:
                raise InputError(f"{name} is {size / 1e6:.0f} MB, too large for a bone-scan result.json")
            self._add(_entry(parse_result(text.encode("utf-8"), name)))
        except InputError as exc:
            state.si_bone_followup_error = str(exc)
        else:
            state.si_bone_followup_error = ""
        self._publish()

    def _on_step_done(self, **_kwargs) -> None:
        """After every step: the current result into this session's history, the lesion list and the trend."""
        flow = self.flow
        if flow.result is not None and flow.primary is not None:
            record = flow.result_record
            facts = record_facts({**record, "acquisition": {**flow.acquisition, "views": len(record["views"])}})
            when = parse_study_date(_date(flow.study_date))
            point = StudyPoint(flow.primary.GetName(), record["bstbi"]["mean"], when, *facts)
            entry = {**_entry(point), "patient": flow.patient_key}
            self._history = {key: other for key, other in self._history.items()  # the same result of a case loaded
                             if key == flow.primary.GetID() or other["digest"] != entry["digest"]}  # again: once
            self._history[flow.primary.GetID()] = entry
        self._publish()

    def _on_module_changed(self, si_module, **_kwargs) -> None:
        """The lesion numbers are shown in the bone-scan tab only."""
        markers = self.flow.extra_nodes.get("lesion numbers")
        if markers is not None and markers.GetDisplayNode() is not None:
            markers.GetDisplayNode().SetVisibility(si_module == MODULE)

    # ---- display ------------------------------------------------------------------------------------------------

    def _publish(self, **_kwargs) -> None:
        flow, state = self.flow, self.station.state
        record = flow.result_record
        state.si_bone_review = review(record) if record else {"views": [], "counts": ""}
        current = flow.primary.GetID() if flow.primary is not None else None
        this = self._current()
        offered, skipped = [], []
        for key, entry in self._history.items():
            if key == current:
                continue
            named = entry.get("patient") is not None and flow.patient_key is not None
            reason = why_not_joinable(_point(entry), [_point(e) for e in self._earlier], _point(this) if this else None,
                                      entry.get("patient") == flow.patient_key if named else None)
            if reason:
                skipped.append(f"{entry['label']}: {reason}")
            else:
                offered.append({"value": key, "title": f"{entry['label']} · BSTBI {entry['bstbi']:.3f}"})
        state.si_bone_session, state.si_bone_session_skipped = offered, skipped
        state.si_bone_earlier = list(self._earlier)
        state.si_bone_trend = None
        if current in self._history and flow.result is not None and not flow.result_is_stale and self._earlier:
            try:  # another case loaded since the studies were added may not be comparable with them
                result = trend([_point(e) for e in [*self._earlier, self._current()]], current_last=True)
            except InputError as exc:
                state.si_bone_followup_error = str(exc)
            else:
                state.si_bone_trend = {"lines": trend_lines(result), "svg": trend_svg(result),
                                       "change": result["change_from_previous"]["change"],
                                       "reader_note": result["change_from_previous"]["reader_note"]}
