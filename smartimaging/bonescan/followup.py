"""Follow-up of a patient's bone scans: earlier results (result.json of `bonescan predict` / `bonescan bstbi`, or
results of the reading session) checked, ordered by study date, the BSTBI change and a trend plot (SVG). Each
study says what the reader changed (lesions rejected, segmentation edited), and a change between studies the reader
changed differently says that part of it is the reader's.

Study dates: result.json records the study date only when written with --keep-identifiers (a date identifies a
patient); without dates the studies are taken in the order the reader gave them, and the trend says so.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import date
from html import escape
from pathlib import Path

from ..errors import InputError
from ..wording import counted
from .bstbi import bstbi_change

RESULT_FILE = "result.json"
MAX_RESULT_BYTES = 20_000_000  # a result.json with its lesion list is a few hundred kB at most
_HINT = "give the result.json (or its folder) written by `bonescan predict` or `bonescan bstbi`"
EARLIEST_STUDY = date(1900, 1, 1)
# What identifies a result's content: its numbers, not when or where it was written nor the patient's identifiers.
_CONTENT_KEYS = ("views", "metastasis_probability", "crop_probabilities", "bstbi", "lesions", "excluded_lesions",
                 "reader_edited", "dice_ai_vs_edited", "models", "acquisition")


@dataclass(frozen=True)
class StudyPoint:
    """One study of the trend: what the reader called it, its study date (None: unknown), its BSTBI, its acquisition
    (`acquisition`: what of it is recorded), whether it lies outside the models' training data, and a digest of its
    content (the same study given twice has the same digest); what the reader changed: how many lesions the reader
    rejected and whether the segmentation is the reader's (edited or drawn) rather than the AI's as proposed."""
    label: str
    bstbi: float
    study_date: date | None = None
    acquisition: dict = field(default_factory=dict)
    outside_domain: bool = False
    digest: str = ""
    rejected: int = 0
    reader_segmentation: bool = False


def acquisition(study) -> dict:
    """What a trend compares between studies (a BoneScanStudy): the number of views, the first view's pixel grid
    (rows, columns) and pixel size in mm, and the camera's manufacturer (and model where the file names them)."""
    view = study.views[0]
    spacing = study.images[view.source].GetSpacing()
    camera = {key: str(study.meta[key]) for key in ("manufacturer", "camera_model") if study.meta.get(key)}
    return {"views": len(study.views), "grid": list(view.counts.shape),
            "pixel_mm": [round(spacing[1], 4), round(spacing[0], 4)], **camera}


def record_facts(record: dict) -> tuple[dict, bool, str, int, bool]:
    """The acquisition, whether outside the training data, the content digest, the number of lesions the reader
    rejected and whether the segmentation is the reader's (`reader_segmentation`) of a result record (result.json or
    the station's result), as `StudyPoint` holds them; a result.json written before acquisitions were recorded gives
    the number of views and the manufacturer."""
    study = record.get("study") if isinstance(record.get("study"), dict) else {}
    facts = record.get("acquisition") if isinstance(record.get("acquisition"), dict) else {}
    if not facts:
        views = record.get("views")
        facts = {**({"views": len(views)} if isinstance(views, list) and views else {}),
                 **({"manufacturer": str(study["manufacturer"])} if study.get("manufacturer") else {})}
    domain = record.get("domain")
    outside = isinstance(domain, dict) and domain.get("verdict") == "outside"
    content = json.dumps({key: record.get(key) for key in _CONTENT_KEYS}, sort_keys=True, default=str)
    excluded = record.get("excluded_lesions")
    rejected = len(set(excluded)) if isinstance(excluded, list) else 0
    return (facts, outside, hashlib.sha256(content.encode("utf-8")).hexdigest(), rejected,
            reader_segmentation(record))


def reader_segmentation(record: dict) -> bool:
    """Whether BSTBI was computed from the reader's segmentation rather than the AI's as proposed: where the result
    compares the two (Dice AI vs edited, per segment), a segment the reader changed; else the result's own word
    (`bonescan bstbi` computes from the reader's masks). Lesions rejected from the list are not an edit here: they
    are counted apart (`excluded_lesions`)."""
    dices = record.get("dice_ai_vs_edited")
    if isinstance(dices, dict) and dices:
        return any(_number(value) and value < 1 for value in dices.values())
    return record.get("reader_edited") is True


def _other_module(record: dict) -> str | None:
    """The model ids of a result of another SmartImaging module, e.g. "mammo-..."; None when none are named."""
    models = record.get("models")
    ids = [m.get("id", "") for m in models if isinstance(m, dict)] if isinstance(models, list) else []
    others = [str(i) for i in ids if i and not str(i).startswith("bonescan")]
    return ", ".join(others) if others else None


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def check_record(record, name: str) -> float:
    """The mean BSTBI of a parsed result.json, after checking that it is a bone-scan result whose BSTBI is consistent
    (its mean is the mean of its sub-image values, each in [0, 1]); an edit that keeps them consistent is not seen."""
    if not isinstance(record, dict):
        raise InputError(f"{name} is not a bone-scan result (a JSON value, not an object); {_HINT}")
    bstbi = record.get("bstbi")
    value = bstbi.get("mean") if isinstance(bstbi, dict) else None
    if value is None:
        other = _other_module(record)
        if other:
            raise InputError(f"{name} is a result of another SmartImaging module (models {other}), not of a bone "
                             f"scan; {_HINT}")
        raise InputError(f"{name} holds no BSTBI (no 'bstbi' 'mean' entry); {_HINT}")
    if not _number(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"{name} gives BSTBI {value!r}, which is not a number between 0 and 1; the file was "
                         "changed or damaged: recompute it with `bonescan bstbi`")
    parts = bstbi.get("per_subimage")
    if not isinstance(parts, dict) or not parts or not all(_number(v) and 0.0 <= v <= 1.0 for v in parts.values()):
        raise InputError(f"{name} has no valid BSTBI per sub-image (numbers between 0 and 1); the file was changed "
                         "or damaged: recompute it with `bonescan bstbi`")
    excluded = record.get("excluded_lesions", [])
    if not isinstance(excluded, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in excluded):
        raise InputError(f"{name} lists the lesions the reader rejected as {str(excluded)[:40]!r}, not as lesion "
                         "numbers; the file was changed or damaged: recompute it with `bonescan bstbi`")
    if abs(sum(parts.values()) / len(parts) - value) > 1e-6:
        raise InputError(f"{name} gives BSTBI {value:.4f}, but its sub-images average "
                         f"{sum(parts.values()) / len(parts):.4f}: the file was changed after it was written; "
                         "recompute it with `bonescan bstbi`")
    return float(value)


def parse_study_date(text) -> date | None:
    """A DICOM StudyDate (YYYYMMDD) or an ISO date (YYYY-MM-DD); None when absent."""
    if text in (None, ""):
        return None
    match = re.fullmatch(r"(\d{4})-?(\d{2})-?(\d{2})", str(text).strip()[:40])
    try:
        when = date(*map(int, match.groups())) if match else _bad_date(text)
    except ValueError:
        return _bad_date(text)
    if not EARLIEST_STUDY <= when <= date.today():
        raise InputError(f"Study date {when.isoformat()} is " + ("after today" if when > date.today() else
                                                                 "before 1900") + ": not the date of a study")
    return when


def _bad_date(text) -> date:
    shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + "..."
    raise InputError(f"Study date {shown} is not a date (YYYYMMDD or YYYY-MM-DD)")


def parse_result(text: bytes | str, name: str, label: str | None = None) -> StudyPoint:
    """A StudyPoint from the content of a result.json (`name`: the file, in messages; `label`: what the reader called
    the study, `name` by default)."""
    if len(text) > MAX_RESULT_BYTES:
        raise InputError(f"{name} is {len(text) / 1e6:.0f} MB, too large for a bone-scan result.json; {_HINT}")
    try:
        record = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: also a number of 4300+ digits
        raise InputError(f"{name} is not a bone-scan result (damaged or not JSON); {_HINT}") from exc
    value = check_record(record, name)
    study = record.get("study") if isinstance(record.get("study"), dict) else {}
    try:
        when = parse_study_date(study.get("study_date"))
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from exc
    return StudyPoint(label or name, value, when, *record_facts(record))


def read_result(path: str | Path) -> StudyPoint:
    """A StudyPoint from a result.json or the result folder holding it."""
    candidate = Path(path)
    if candidate.is_dir():
        candidate = candidate / RESULT_FILE
        if not candidate.exists():
            raise InputError(f"{path} has no {RESULT_FILE}; {_HINT}")
    if not candidate.exists():
        raise InputError(f"File not found: {candidate}")
    if not candidate.is_file():
        raise InputError(f"{candidate} is not a regular file (a device, a pipe or a link to one); {_HINT}")
    if candidate.stat().st_size > MAX_RESULT_BYTES:
        raise InputError(f"{candidate} is {candidate.stat().st_size / 1e6:.0f} MB, too large for a bone-scan "
                         f"result.json; {_HINT}")
    return parse_result(candidate.read_bytes(), str(candidate), str(path))


_ACQUISITION_WORDS = {"views": "number of views", "grid": "pixel grid", "pixel_mm": "pixel size (mm)",
                      "manufacturer": "camera manufacturer", "camera_model": "camera model"}


def patient_key(patient_id: str | None) -> str | None:
    """A digest that tells two studies' patients apart without holding the identifier; None when none is given."""
    return hashlib.sha256(patient_id.strip().encode("utf-8")).hexdigest() if patient_id and patient_id.strip() else None


def why_not_joinable(point: StudyPoint, earlier: list[StudyPoint], current: StudyPoint | None,
                     same_patient: bool | None) -> str:
    """Why a result cannot join the follow-up of the `current` study after the `earlier` ones ("" when it can):
    another patient (`same_patient` False: both files name their patient, and the names differ), a study already
    added, or `check_comparable`'s refusal."""
    if same_patient is False:
        return "another patient"
    if point.digest and any(point.digest == other.digest for other in earlier):
        return "already in the follow-up"
    try:
        check_comparable([*earlier, point, *([current] if current else [])], current_last=current is not None)
    except InputError as exc:
        return str(exc)
    return ""


def check_comparable(points: list[StudyPoint], current_last: bool = False) -> None:
    """Refuse a trend of studies that cannot be one patient's series: the same study twice, studies acquired
    differently (views, pixel grid or size, camera, where both record them), or, with `current_last` (the station:
    the last point is the study on screen), an earlier study dated after the current one."""
    for index, point in enumerate(points):
        for other in points[:index]:
            if point.digest and point.digest == other.digest:
                raise InputError(f"{point.label} and {other.label} are the same study (the same result): give each "
                                 "study once")
            for key, word in _ACQUISITION_WORDS.items():
                mine, theirs = point.acquisition.get(key), other.acquisition.get(key)
                if mine is not None and theirs is not None and mine != theirs:
                    raise InputError(f"{point.label} and {other.label} were acquired differently ({word} {theirs} vs "
                                     f"{mine}): their BSTBI cannot be compared as one patient's follow-up")
    current = points[-1]
    later = [p.label for p in points[:-1] if current_last and p.study_date and current.study_date
             and p.study_date > current.study_date]
    if later:
        raise InputError(f"{', '.join(later)} is dated after the current study ({current.study_date.isoformat()}): "
                         "add only earlier studies")


def reader_text(rejected: int, edited: bool) -> str:
    """What the reader changed in a study's result, e.g. "2 lesions rejected by the reader"; "" for none."""
    parts = ([f"{counted(rejected, 'lesion')} rejected by the reader"] if rejected else []) + (
        ["segmentation edited or drawn by the reader"] if edited else [])
    return "; ".join(parts)


def reader_note(before: StudyPoint, after: StudyPoint) -> str:
    """Why a change from `before` to `after` is partly the reader's: the studies differ in the lesions the reader
    rejected or in whose segmentation was counted; "" when the reader changed both alike."""
    parts = []
    if before.rejected != after.rejected:
        had = counted(before.rejected, "lesion") if before.rejected else "no lesion"
        parts.append(f"the earlier study had {had} rejected by the reader, this one "
                     + (str(after.rejected) if after.rejected else "none"))
    if before.reader_segmentation != after.reader_segmentation:
        whose = ("the reader's (edited or drawn), this one's the AI's" if before.reader_segmentation else
                 "the AI's, this one's the reader's (edited or drawn)")
        parts.append(f"the earlier study's segmentation was {whose}")
    return "; ".join(parts) + ": part of the change is the reader's" if parts else ""


def _change(before: StudyPoint, after: StudyPoint) -> dict:
    return {**bstbi_change(before.bstbi, after.bstbi), "reader_note": reader_note(before, after)}


def trend(points: list[StudyPoint], current_last: bool = False) -> dict:
    """The studies in date order (in the given order when a date is unknown), each with what the reader changed,
    the change from the first study and from the previous one to the last (with `reader_note`), and how they were
    ordered (`check_comparable` first)."""
    if len(points) < 2:
        raise InputError("A trend needs at least two studies (an earlier result and the current one)")
    check_comparable(points, current_last)
    dated = all(p.study_date is not None for p in points)
    ordered = sorted(points, key=lambda p: p.study_date) if dated else list(points)
    unknown = [p.label for p in points if p.study_date is None]
    order = ("by study date" if dated else
             f"as given by the reader: the study date of {', '.join(unknown)} is unknown (result.json records it only "
             "when written with --keep-identifiers)")
    return {"order": order,
            "studies": [{"label": p.label, "study_date": p.study_date.isoformat() if p.study_date else None,
                         "bstbi": p.bstbi, "outside_training_data": p.outside_domain,
                         "rejected_by_reader": p.rejected, "reader_segmentation": p.reader_segmentation,
                         "reader": reader_text(p.rejected, p.reader_segmentation)} for p in ordered],
            "change_from_first": _change(ordered[0], ordered[-1]),
            "change_from_previous": _change(ordered[-2], ordered[-1])}


def relative_text(change: dict) -> str:
    """The relative change in brackets, or why it is undefined (a baseline of 0 or too near 0 to divide by)."""
    relative = change["relative_change_percent"]
    return (f" ({relative:+.1f} %)" if relative is not None
            else f" (relative change undefined: baseline {change['baseline']:.3g})")


def change_text(change: dict) -> str:
    return f"{change['baseline']:.3f} -> {change['followup']:.3f}: {change['change']:+.3f}" + relative_text(change)


def _with_note(change: dict) -> str:
    note = change.get("reader_note")
    return change_text(change) + (f"; caution: {note}" if note else "")


def trend_lines(result: dict) -> list[str]:
    """The trend as text lines (CLI, station and desktop): each study with what the reader changed, the changes
    with the caution when the reader changed the studies differently."""
    lines = [f"{index}. {study['study_date'] or 'date unknown'}  BSTBI {study['bstbi']:.3f}  {study['label']}"
             + ("  (outside the models' training data)" if study.get("outside_training_data") else "")
             + (f"  ({study['reader']})" if study.get("reader") else "")
             for index, study in enumerate(result["studies"], 1)]
    return [*lines, f"ordered {result['order']}",
            f"change from the first study: {_with_note(result['change_from_first'])}",
            f"change from the previous study: {_with_note(result['change_from_previous'])}"]


def trend_svg(result: dict, width: int = 400, height: int = 220) -> str:
    """A line plot of BSTBI per study (x: time when every date is known, else the study order, labelled "study N";
    y: BSTBI from 0); a study outside the models' training data is an open circle, one the reader changed (lesions
    rejected, segmentation edited) is labelled so under its point (over it near the axis), and a change partly the
    reader's is noted."""
    studies = result["studies"]
    notes = ([] if all(s["study_date"] for s in studies) else ["some dates unknown: studies in the order given"]) + (
        ["open circle: outside the training data"] if any(s.get("outside_training_data") for s in studies) else []) + (
        ["orange label: what the reader changed (part of the change)"]
        if any(result[key].get("reader_note") for key in ("change_from_first", "change_from_previous")) else [])
    height += 12 * max(len(notes) - 2, 0)
    left, right, top, bottom = 48, 40, 16, 44 + 12 * max(len(notes) - 2, 0)
    top_value = max(0.05, max(s["bstbi"] for s in studies) * 1.15)
    dates = [date.fromisoformat(s["study_date"]) if s["study_date"] else None for s in studies]
    if all(dates) and dates[-1] > dates[0]:  # x in time: the intervals as they were (no dates mixed with "study N")
        span = (dates[-1] - dates[0]).days
        positions = [(d - dates[0]).days / span for d in dates]
    else:  # x in order: the studies equally spaced
        positions = [i / max(len(studies) - 1, 1) for i in range(len(studies))]
    xs = [left + p * (width - left - right) for p in positions]
    ys = [top + (height - top - bottom) * (1 - s["bstbi"] / top_value) for s in studies]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
             f'<text x="4" y="{top + 4}">{top_value:.2f}</text>',
             f'<text x="4" y="{height - bottom + 4}">0</text>',
             f'<text x="4" y="{(top + height - bottom) / 2}" transform="rotate(-90 10 {(top + height - bottom) / 2})"'
             '>BSTBI</text>',
             '<polyline fill="none" stroke="#c62828" stroke-width="2" points="'
             + " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True)) + '"/>']
    for index, (x, y, study) in enumerate(zip(xs, ys, studies, strict=True), 1):
        fill = "white" if study.get("outside_training_data") else "#c62828"
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{fill}" stroke="#c62828" stroke-width="2"><title>'
                  f'{escape(study["label"])}</title></circle>',
                  f'<text x="{x:.1f}" y="{y - 8:.1f}" text-anchor="middle">{study["bstbi"]:.3f}</text>',
                  *([f'<text x="{x:.1f}" y="{y + 18 if y + 18 < height - bottom - 4 else y - 20:.1f}" '
                     'text-anchor="middle" fill="#b35900" class="reader">'
                     f'{escape(_short_reader(study))}<title>{escape(study["reader"])}</title></text>']
                    if study.get("reader") else []),
                  f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                  f'{escape(study["study_date"] if all(dates) else f"study {index}")}</text>']
    first_note = height - 15 - 12 * max(len(notes) - 2, 0)
    parts += [f'<text x="4" y="{first_note + 12 * i}">{escape(note)}</text>' for i, note in enumerate(notes)]
    return "\n".join([*parts, "</svg>"]) + "\n"


def _short_reader(study: dict) -> str:
    """What the reader changed in a study, short enough for a point of the plot ("2 rejected", "edited")."""
    return ", ".join(([f"{study['rejected_by_reader']} rejected"] if study.get("rejected_by_reader") else [])
                     + (["edited"] if study.get("reader_segmentation") else []))
