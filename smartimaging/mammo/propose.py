"""AI ROI proposals for a whole cohort (`mammo propose`), the seed study's way of building its model: a network
proposed the ROI of every lesion, radiologists corrected about 10 % of them, and the features were extracted from
these ROIs, so that the classifier learns from ROIs like those it will be given in use.

The lesion U-Net is prompted, as a reader would click, at the row's `centre_row,centre_col` when the manifest has
them, else at the reader's click inside the row's mask (`realistic.reader_click`); the classical fallback
(`segment.propose_roi`) takes over where the network finds nothing. Output folder (written atomically):
`rois/<row>.seg.nrrd` (the AI ROI of manifest row <row>, counted from 1) and `manifest.csv` = the input rows with
`mask` = the ROI to extract features from, `ai_mask` = the AI ROI, `reference_mask` = the input mask,
`dice_ai_vs_reference`, `roi_source` (AI / the classical fallback / corrected), every path relative to the new
manifest (images are referenced, not copied).

`correct_fraction` simulates the study's readers on cohorts with reference masks (phantoms): they correct that share
of the rows, those whose AI ROI is furthest from the reference (lowest Dice: the visibly wrong ones), and the
corrected row's `mask` is its reference mask.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..evaluation import dice
from ..io import atomic_output_dir
from ..manifest import read_manifest, write_manifest
from ..segfile import write_seg_nrrd
from ..segments import MAMMO_SEGMENTS
from .features import load_mask, pixel_mm_of_row
from .images import load_mammogram
from .realistic import reader_click
from .segment import CLASSICAL_SOURCE, MammoSegmenter, estimated_pixel_mm, propose_roi

KINDS = tuple(MAMMO_SEGMENTS)
CORRECTED = "corrected"


@dataclass
class ProposalSummary:
    manifest: Path
    rows: int
    ai: int  # rows whose ROI the network proposed
    classical: int  # rows where the classical fallback proposed it
    corrected: int  # rows the simulated reader corrected
    mean_dice: float | None  # AI (or fallback) ROI vs reference, over the rows with a reference mask


def row_kind(row: dict, kind: str | None, number: int) -> str:
    """The row's lesion kind: its `kind` cell, else `kind` (--kind); InputError when neither names one."""
    value = row.get("kind") or kind
    if value not in KINDS:
        found = f"its kind is {value!r}" if value else "it has no 'kind' cell"
        raise InputError(f"Row {number}: {found}; the kinds are {' and '.join(KINDS)} (give --kind for rows "
                         "without one)")
    return value


def row_click(row: dict, reference: np.ndarray | None, number: int) -> tuple[float, float]:
    """(row, col) of the prompt: the manifest's `centre_row,centre_col` when both are filled, else the reader's
    click inside the reference mask."""
    cells = row.get("centre_row", ""), row.get("centre_col", "")
    if all(cells):
        try:
            point = float(cells[0]), float(cells[1])
        except ValueError:
            point = (math.nan, math.nan)
        if not all(map(math.isfinite, point)):
            raise InputError(f"Row {number}: centre_row,centre_col {cells[0]!r},{cells[1]!r} is not a pixel position")
        return point
    if any(cells):
        raise InputError(f"Row {number}: give both centre_row and centre_col, or neither (the click is then placed "
                         "inside the mask)")
    if reference is None:
        raise InputError(f"Row {number}: no centre_row,centre_col and no mask: nothing says where the lesion is")
    if not reference.any():
        raise InputError(f"Row {number}: the mask is empty, so no click can be placed in it; give centre_row and "
                         "centre_col, or draw the lesion")
    return reader_click(reference > 0)


def corrected_rows(dices: list[float | None], fraction: float) -> list[int]:
    """Indices of the rows a reader who corrects `fraction` of them corrects: the lowest Dice first (earlier rows
    first among equals); round(fraction × rows), at least one for a positive fraction."""
    if fraction <= 0:
        return []
    count = max(1, math.floor(fraction * len(dices) + 0.5))
    return sorted(sorted(range(len(dices)), key=lambda i: dices[i])[:count])


def propose_cohort(manifest_path: str | os.PathLike, out_dir: str | os.PathLike, kind: str | None = None,
                   directory=None, device: str = "auto", correct_fraction: float = 0.0,
                   progress: Callable[[float, str], None] | None = None) -> ProposalSummary:
    """The AI ROI of every row of `manifest_path` into `out_dir` (see the module docstring). A row that cannot be
    proposed (unreadable image or mask, a click outside the image, nothing found there by the network nor by the
    fallback) stops the run with an InputError naming it; nothing is written then."""
    if not 0 <= correct_fraction <= 1:
        raise InputError(f"--correct-fraction {correct_fraction:g} is not a fraction of the rows (0 to 1)")
    manifest = read_manifest(manifest_path, required=("patient_id", "image"))
    out_dir = Path(out_dir)
    if out_dir.resolve() == manifest.root:
        raise InputError(f"--out {out_dir} is the input manifest's folder; choose a new folder (its manifest.csv "
                         "would be replaced)")
    for row in manifest.rows:  # the CLI checks this too; the worker job (GUIs) relies on this check
        for path in (*manifest.paths(row, "image"), *manifest.paths(row, "mask")):
            if path == out_dir.resolve() or out_dir.resolve() in path.parents:
                raise InputError(f"--out {out_dir} holds the input {path.name} of patient {row['patient_id']}: the "
                                 "proposals would replace it; give --out a folder of its own")
    if correct_fraction > 0 and not all(row.get("mask") for row in manifest.rows):
        raise InputError("--correct-fraction needs every row's reference mask (the simulated reader's correction); "
                         "some rows have no 'mask'")
    kinds = [row_kind(row, kind, number) for number, row in enumerate(manifest.rows, start=2)]
    segmenters = {name: MammoSegmenter.load(name, directory, device) for name in sorted(set(kinds))}
    root = out_dir.resolve()
    rows, dices, ai, classical = [], [], 0, 0
    with atomic_output_dir(out_dir) as scratch:
        (scratch / "rois").mkdir()
        for index, (row, lesion_kind) in enumerate(zip(manifest.rows, kinds, strict=True)):
            number = index + 2  # CSV line (header = 1)
            if progress:
                progress(index / len(manifest.rows), f"row {index + 1} of {len(manifest.rows)}")
            try:
                mammogram = load_mammogram(manifest.resolve(row["image"]), pixel_mm_of_row(row))
                reference = load_mask(manifest.resolve(row["mask"]), mammogram) if row.get("mask") else None
                assumed_mm = None if mammogram.pixel_size_known else estimated_pixel_mm(mammogram.pixels.shape)
                roi, source = propose_roi(segmenters[lesion_kind], mammogram.image, lesion_kind,
                                          row_click(row, reference, number), None, assumed_mm)
            except InputError as exc:
                text = str(exc)
                raise InputError(text if text.startswith("Row ") else
                                 f"Row {number} ({row['patient_id']}): {text}") from exc
            ai += source == "AI"
            classical += source == CLASSICAL_SOURCE
            name = f"rois/{index + 1}.seg.nrrd"
            write_seg_nrrd(roi[None], mammogram.image, (MAMMO_SEGMENTS[lesion_kind],), scratch / name)
            score = None if reference is None else dice(roi, reference)
            dices.append(score)
            rows.append({**row, "image": _relative(manifest.resolve(row["image"]), root), "mask": name,
                         "ai_mask": name, "reference_mask": _relative(manifest.resolve(row["mask"]), root)
                         if reference is not None else "", "dice_ai_vs_reference": "" if score is None
                         else f"{score:.4f}", "roi_source": source, "kind": lesion_kind})
        for index in corrected_rows(dices, correct_fraction):
            rows[index].update(mask=rows[index]["reference_mask"], roi_source=CORRECTED)
        write_manifest(scratch / "manifest.csv", rows)
        if progress:
            progress(1.0, f"{len(rows)} ROIs proposed")
    scored = [score for score in dices if score is not None]
    return ProposalSummary(out_dir / "manifest.csv", len(rows), ai, classical,
                           sum(row["roi_source"] == CORRECTED for row in rows),
                           float(np.mean(scored)) if scored else None)


def _relative(path: Path, root: Path) -> str:
    """`path` relative to the new manifest's folder, with '/' on every system (as the input manifests write)."""
    return Path(os.path.relpath(path, root)).as_posix()
