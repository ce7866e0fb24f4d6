"""A teaching session for either GUI: a teaching set (`teaching_scene.TeachingSet`: a cohort folder whose cases carry
an answer key, or a phantom set written on the spot) read case by case in one module's flow. A case opens with its
images only (the AI's proposal and the key stay out of the scene); Check (`check`, a `reading.Step`: the AI's outline
may need the worker) scores the student's outline and call against the key (`teaching`), locks the outline (no
longer an editable segmentation), shows the student's, the key's and the AI's outlines together and adds the case to
the session's score sheet (one row per case). The station's Teaching section and the desktop modules' bind their
controls to it; the views (zoom, spots) are theirs."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, SmartImagingError
from .io import free_path
from .mrml import volume_node_to_sitk
from .teaching import CheckResult, Score, ScoreSheet, ShownSlice, check_answer, check_spots, slice_to_show
from .teaching_scene import (
    TeachingSet,
    image_of,
    key_centre_lps,
    proposal_call,
    proposal_flow,
    proposal_mask,
    read_proposal,
    show_outlines,
    spot_sites,
    student_mask,
    write_phantom_set,
)

SHEET_COLUMNS = ("Case", "Your Dice", "AI Dice", "Your call", "Key", "Call", "Time (s)")  # Score.cells()' first 7
SPOT_SHEET_COLUMNS = ("Spots found", "False +")  # lesion-wise sets: the student's key spots found, false positives
CSV_NAME = "teaching-scores.csv"


@dataclass
class Checked:
    """A checked case: the check, its score sheet row (and the row it replaced), the slice to show (a volume), where
    the AI's outline came from, the outlines scored (by `teaching_scene.OUTLINES` name) and, lesion-wise, the view
    names in frame order."""

    result: CheckResult
    score: Score
    replaced: Score | None
    shown: ShownSlice | None
    ai_source: str
    masks: dict[str, np.ndarray]
    views: list[str] | None

    @property
    def replaced_text(self) -> str:
        """What a GUI says when the case's earlier row was replaced ("" when none was)."""
        return (f"Case {self.score.case} was checked again: its new row replaces the earlier one (your Dice then "
                f"{self.replaced.cells()[1]})." if self.replaced else "")

    def lines(self) -> list[str]:
        """What the check says, one line each, as a GUI without the station's layout shows it (the desktop): the
        key's spots, Dice (or the false positives where the key has no lesion), the call, the sentences, where the
        AI's outline came from, the slice shown, a replaced row."""
        result, cells, sentences = self.result, self.score.cells(), self.sentences()
        dice = (f"Dice with the key: you {cells[1]}" + (f" · AI {cells[2]}" if cells[2] else "")
                if result.dice_student_key is not None else sentences["no_dice"])
        lines = [sentences["key_summary"], dice, result.call_summary or "",
                 sentences["student"], sentences["ai"], sentences["ai_call"], self.ai_source,
                 self.shown.text if self.shown else "", self.replaced_text]
        return [line for line in lines if line]

    def sentences(self) -> dict[str, str]:
        """The check's sentences: region-wise (`check_answer`) or spot by spot (`check_spots`: the key's spots, the
        false positives in place of an undefined Dice, the AI's call)."""
        result = self.result
        if result.student_spots is None:
            return {"student": result.student.summary, "ai": result.ai.summary if result.ai else "",
                    "key_summary": "", "no_dice": "", "ai_call": ""}
        no_dice = ""
        if result.dice_student_key is None:
            ai = result.ai_spots
            no_dice = (f"False-positive spots: you {len(result.student_spots.false_positives)}"
                       + (f" · AI {len(ai.false_positives)}" if ai else "") + " (no Dice: no lesion in the key)")
        return {"student": result.student_spots.summary, "ai": result.ai_spots.summary if result.ai_spots else "",
                "key_summary": result.key_summary, "no_dice": no_dice, "ai_call": result.ai_call_summary or ""}


class TeachingSession:
    """Teaching sets read in `flow`; their scratch folders and phantom sets go to `scratch`."""

    def __init__(self, flow, scratch: str | Path):
        self.flow, self.scratch = flow, Path(scratch)
        self.set: TeachingSet | None = None
        self.index = -1  # the set's case opened last (-1: none yet)
        self.sheet = ScoreSheet()
        self.checked: Checked | None = None  # the open case, once checked
        self.outlines: list = []  # the checked case's outline nodes
        self._volume = None  # the open case's image node; None when no case is open
        self._opened = 0.0  # time.monotonic() when the case opened
        self._numbers = itertools.count(1)

    # ---- the set ----

    def phantom_set(self) -> Path:
        """Write a phantom set of the flow's module (its lesion kind) with ground truth; its folder (open it next)."""
        number = next(self._numbers)
        folder = self.scratch / f"phantom-set-{number}"
        return write_phantom_set(folder, self.flow.module, number, getattr(self.flow, "kind", None))

    def open_set(self, folder: str | Path) -> None:
        """Read a teaching set (refused with the reason when it has no case with an answer key); the earlier set
        closes and the score sheet starts again. Open a case next."""
        teaching = TeachingSet(self.flow, Path(folder), self.scratch / f"set-{next(self._numbers)}")
        self.close()
        self.set, self.sheet = teaching, ScoreSheet()

    @property
    def columns(self) -> list[str]:
        """The score sheet's columns as the GUIs show them."""
        lesion_wise = self.set is not None and self.set.lesion_wise
        return [*SHEET_COLUMNS, *(SPOT_SHEET_COLUMNS if lesion_wise else ())]

    def sheet_rows(self) -> list[list[str]]:
        """The score sheet as the GUIs show it, one row per checked case."""
        return [row.cells()[:len(SHEET_COLUMNS)] + ([f"{row.spots[1]}/{row.spots[0]}", str(row.spots[3])]
                                                    if row.spots else []) for row in self.sheet.rows]

    def save_sheet(self, folder: str | Path) -> Path:
        """The score sheet as CSV (`teaching.COLUMNS`) in `folder`, named CSV_NAME (a number added rather than
        replacing a file there); its path."""
        if not str(folder).strip():
            raise InputError("Choose the folder to save the score sheet in")
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder} is not a folder: choose the folder to save the score sheet in")
        path = free_path(folder, Path(CSV_NAME).stem, ".csv")
        try:
            with open(path, "x", encoding="utf-8", newline="") as f:
                f.write(self.sheet.to_csv_text())
        except OSError as exc:
            raise InputError(f"The score sheet could not be saved in {folder}: {exc.strerror or exc}") from exc
        return path

    def blocks(self) -> dict[str, bool]:
        """What the module's own buttons may not do meanwhile: Segment while a case is open (it would show the AI's
        proposal), Draw ROI by hand once it is checked (the outline is locked), the compute until Check (its score
        would tell the AI's call)."""
        open_ = self.is_open
        return {"segment": open_, "draw": open_ and self.checked is not None,
                "compute": open_ and self.checked is None}

    def close(self) -> None:
        """Leave the set: its outlines leave the scene."""
        self.remove_outlines()
        self.set, self.index, self._volume, self.checked = None, -1, None, None

    # ---- cases ----

    @property
    def case_place(self) -> str:
        """"1 of 3: P0001": the case in its set ("" before a case is opened)."""
        if self.set is None or self.index < 0:
            return ""
        return f"{self.index + 1} of {len(self.set.cases)}: {self.set.cases[self.index].case_id}"

    @property
    def case_title(self) -> str:
        """"Case 1 of 3: P0001" ("" before a case is opened)."""
        return f"Case {self.case_place}" if self.case_place else ""

    @property
    def has_previous(self) -> bool:
        return self.set is not None and self.index > 0

    @property
    def has_next(self) -> bool:
        return self.set is not None and self.index < len(self.set.cases) - 1

    @property
    def is_open(self) -> bool:
        """Whether a case of the set is in the flow (not replaced by another image since it opened)."""
        return self._volume is not None and self.flow.primary is self._volume

    def open_case(self, index: int):
        """Open the set's `index`-th case: its images only, the earlier outlines gone; PixelSizeNeededError while it
        waits for its pixel size (`set.pixel_size_request`, then `give_pixel_size`). The case."""
        if self.set is None or isinstance(index, bool) or not isinstance(index, int) or \
                not 0 <= index < len(self.set.cases):
            raise InputError("No such case in the teaching set")
        self.remove_outlines()
        self.index, self.checked, self._volume = index, None, None
        case = self.set.open(index)
        self._volume, self._opened = self.flow.primary, time.monotonic()
        return case

    def give_pixel_size(self, text: str):
        """The pixel size (mm) for the case that waits for one (for the whole set when no case has one): kept for the
        session, then the case opens."""
        if self.set is None or self.index < 0 or self.is_open or not self.set.pixel_size_request(self.index):
            raise InputError("No teaching case waits for its pixel size")
        self.set.set_pixel_size(self.index, text)
        return self.open_case(self.index)

    def replaced(self) -> bool:
        """Whether another image replaced the open case in the flow (a sample, an upload); its outlines then go."""
        if self._volume is None or self.flow.primary is self._volume:
            return False
        self.remove_outlines()
        self._volume, self.checked = None, None
        return True

    # ---- Check ----

    def check(self, call: str | None, progress=None, before_lock=None):
        """Check the student's outline and `call` (one of `set.choices`, None: no call): a step of the flow (the AI's
        outline, when the cohort saved none, is its Segment in the worker) whose value is the `Checked` case.
        `before_lock()`: what a GUI does before the outline stops being editable (its editor lets go)."""
        return self.flow.run_steps(lambda p: self._check(call, p, before_lock), progress, "Check")

    def _check(self, call, progress, before_lock):
        teaching, flow = self.set, self.flow
        if teaching is None or not self.is_open:
            raise InputError("Open a case of the teaching set first")
        if self.checked is not None:
            raise InputError("This case is checked: open it again (Previous / Next) to draw and check it again")
        if call is not None and call not in teaching.choices:
            raise InputError(f"The call must be one of {', '.join(teaching.choices)}")
        seconds = time.monotonic() - self._opened
        case = teaching.cases[self.index]
        reference = volume_node_to_sitk(flow.primary)
        student = student_mask(flow)
        if not student.any() and not teaching.lesion_wise:
            raise InputError("Draw the lesion first: your outline is empty")
        key = teaching.key()
        progress(0.3, "the AI's outline")
        ai, ai_call, ai_source = yield from self._ai_outline(case, key, reference, progress)
        scored = (image_of(student, reference), image_of(key, reference),
                  None if ai is None else image_of(ai, reference), call, case.key_label,
                  {choice: choice for choice in teaching.choices})
        views = None
        if teaching.lesion_wise:
            views, where = spot_sites(flow, teaching.bladder())
            result = check_spots(*scored, views, where, ai_call)
        else:
            result = check_answer(*scored)
        masks = {"student": student, "key": key, **({} if ai is None else {"ai": ai})}
        if before_lock is not None:
            before_lock()
        flow._replace_segmentation(None, None)  # the student's outline is locked: no longer editable
        self.outlines = show_outlines(flow.scene, flow.primary, masks, flow.drawn_segments[0])
        teaching.keep(case, {name: mask for name, mask in masks.items() if name != "key"}, reference,
                      flow.drawn_segments[0])
        earlier = next((at for at, row in enumerate(self.sheet.rows) if row.case == case.case_id), None)
        score = self.sheet.add(case.case_id, result, seconds)
        replaced = None
        if earlier is not None:  # one row per case: the new one takes the earlier one's place
            replaced = self.sheet.rows[earlier]
            self.sheet.rows[earlier] = self.sheet.rows.pop()
        # a volume: the slice with the student's outline and the key (a bone scan's frames are its two views)
        shown = None if teaching.lesion_wise else slice_to_show(student, key)
        self.checked = Checked(result, score, replaced, shown, ai_source, masks, views)
        return self.checked

    def _ai_outline(self, case, key, reference, progress):
        """The AI's outline of the case (None when the AI found nothing), its call where known (a bone scan's
        networks), and the sentence that says where the outline came from (a generator: Segment's worker jobs)."""
        teaching = self.set
        saved = teaching.saved_proposal(case)
        note = ""
        if saved is not None:
            try:
                return (read_proposal(saved, reference, teaching.lesion_label if teaching.lesion_wise else None), None,
                        "The AI's outline: the proposal saved in the cohort's worklist.")
            except InputError as exc:
                note = f"{exc}; "
        where = "" if teaching.lesion_wise else ", prompted at the answer key's centre"
        scratch = proposal_flow(self.flow, case, None if teaching.lesion_wise else key_centre_lps(key, reference))
        try:
            yield from scratch._segment(progress)  # its jobs run in this flow's step (the same warm worker)
            made = ("the classical region growing (the AI found no lesion there)"
                    if (scratch.roi_source or "").startswith("classical") else "the AI's Segment")
            why = note or "The cohort's worklist saved no AI proposal for this case; "
            return (proposal_mask(scratch), proposal_call(scratch) if teaching.lesion_wise else None,
                    f"{why}the AI's outline was made now by {made}{where}.")
        except SmartImagingError as exc:
            return None, None, f"{note}No AI outline: Segment{where} found nothing ({exc})."
        finally:
            scratch.clear()

    # ---- the scene ----

    def remove_outlines(self) -> None:
        scene = self.flow.scene
        for node in self.outlines:
            if scene.IsNodePresent(node):
                scene.RemoveNode(node)
        self.outlines = []

    def show_outlines(self, visible: bool) -> None:
        """Show or hide the checked case's outlines (a GUI hides them while another module is shown)."""
        for node in self.outlines:
            node.GetDisplayNode().SetVisibility(visible)
