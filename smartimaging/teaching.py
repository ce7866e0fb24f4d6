"""Teaching mode's scoring, GUI-free (numpy and SimpleITK): a student's outline and call checked against a case's
answer key (reference mask + label), the AI's outline checked the same way, and a session's score sheet as CSV.

Masks are label images on one grid (any non-zero pixel is the lesion): 2D images (a mammogram, a bone-scan frame;
a SimpleITK 2D image or a 3D one with one slice) give areas in mm², 3D volumes (MRI) volumes in mm³. Where an
outline disagrees with the key is told as connected regions (face-connected) of key minus outline ("missed") and
outline minus key ("extra"). A region counts only where it is more than two pixels wide somewhere in the image plane
(one of its pixels has its four in-plane neighbours in it): a band along the outline at most two pixels wide is the
brush's imprecision, which the Dice already shows. A region is placed on a side of the lesion only when that is
clear-cut (SIDE_OFFSET, SIDE_DOMINANCE); otherwise only its size is told. An outline that does not touch the lesion
is said to be off it (and where the lesion lies, by the same rules); a volume's outline on far fewer slices than the
lesion spans is said so. Slices are the image grid's (k), counted from 1.

Bone scans are checked lesion-wise (`check_spots`): the key's metastases are hot spots (8-connected regions of each
view, a slice of the grid), possibly none in a negative study; a key spot is found when the outline touches it, and an
outline's spot that touches no key spot is a false positive unless it is a slip of the brush: one pixel wide (no 2×2
block, no pixel with its four in-plane neighbours) and at most SLIP_PIXELS pixels; the smallest brush dab counts, and
so does a long thin stroke. Each
spot is placed by the caller's `where` (the skeletal site), else by its position on its view. Dice needs a key with
lesions: for a negative key it is None, never NaN, and the false-positive spots are counted instead.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .errors import InputError
from .io import atomic_files
from .wording import counted

# A region is on a side of the lesion when its centroid is at least SIDE_OFFSET × the key's equivalent radius (of the
# disc or ball of the key's area or volume) from the key's centroid along one direction, and that offset is at least
# SIDE_DOMINANCE × its offset along every other direction.
SIDE_OFFSET = 0.5
SIDE_DOMINANCE = 2.0
# Side words per LPS axis (negative direction, positive direction). 3D: anatomical. 2D: up and down as the axial
# views of the station and of Slicer show a one-slice image (anterior at the top); left and right are never said
# for a 2D image, since a mammogram may be hung mirrored.
SIDES_3D = (("patient's right", "patient's left"), ("anterior", "posterior"), ("inferior", "superior"))
SIDES_2D = ((None, None), ("upper", "lower"), (None, None))
# The lesion's side of an outline it does not touch, as a phrase: "the lesion is above it"
TOWARDS = {"upper": "above", "lower": "below", "anterior": "anterior to", "posterior": "posterior to",
           "superior": "superior to", "inferior": "inferior to", "patient's right": "to the patient's right of",
           "patient's left": "to the patient's left of"}
GEOMETRY_TOLERANCE = 1e-6  # mm for origin and spacing (× the smallest spacing), plain for direction cosines
# The score sheet's columns: the case id, Dice student-vs-key and AI-vs-key (empty when undefined: no AI outline, or
# a key without lesions), the student's call and the key's label (their words; empty for no call), the call right /
# wrong / none, the seconds from opening the case to Check, when; then, for a case checked lesion-wise (bone scans;
# empty otherwise), the key's hot spots, the student's found / missed / false-positive spots, the AI's, and the AI's
# call (empty when unknown)
COLUMNS = ("case", "student_dice", "ai_dice", "student_call", "key_label", "call", "seconds", "time", "key_spots",
           "spots_found", "spots_missed", "false_positive_spots", "ai_spots_found", "ai_spots_missed",
           "ai_false_positive_spots", "ai_call")
LISTED_SPOTS = 3  # spots named in a sentence; more are counted ("and 2 more")
SLIP_PIXELS = 6  # a one-pixel-wide stroke of at most this many pixels is a slip of the brush, not a spot
ORDINALS = ("first", "second", "third", "fourth")  # a view without a name: "on the second view"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting so as a formula
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class Region:
    """A connected region where an outline disagrees with the key."""

    pixels: int
    size: float  # mm² for a 2D image, mm³ for a volume
    unit: str  # "mm²" or "mm³"
    centroid_lps: tuple[float, float, float]  # mm
    side: str | None  # "upper", "anterior", "patient's left"...: relative to the key's centroid; None when unclear

    def text(self, edge: str) -> str:
        """Its size and, when known, side: "14 mm² at the upper edge" (`edge` "at the" or "beyond the")."""
        return _size_text(self.size, self.unit) + (f" {edge} {self.side} edge" if self.side else "")


@dataclass(frozen=True)
class Discrepancies:
    """Where one outline (the student's or the AI's) disagrees with the key, largest regions first."""

    missed: tuple[Region, ...]  # parts of the key outside the outline
    extra: tuple[Region, ...]  # parts of the outline outside the key
    summary: str  # one sentence a teacher would write


@dataclass(frozen=True)
class Spot:
    """A hot spot of a lesion-wise check: a connected region (8-connected) of one view of the key or of an outline."""

    view: str  # the view's name ("anterior")
    row: float  # centroid, pixels of the view (from its top-left pixel's centre)
    col: float
    pixels: int
    area: float  # mm²
    where: str  # the skeletal site ("left ribs"), else the position ("x 40 mm, y 312 mm")

    def text(self) -> str:
        """"left ribs on the anterior view, 45 mm²"; "at x 40 mm, y 312 mm on the anterior view, 45 mm²"."""
        place = self.where if not self.where.startswith("x ") else f"at {self.where}"
        return f"{place} on the {self.view} view, {_size_text(self.area, 'mm²')}"


@dataclass(frozen=True)
class SpotFindings:
    """One outline (the student's or the AI's) checked spot by spot against the key."""

    found: tuple[Spot, ...]  # the key's spots the outline touches
    missed: tuple[Spot, ...]  # the key's spots it does not
    false_positives: tuple[Spot, ...]  # the outline's spots that touch no key spot
    summary: str  # one sentence a teacher would write


@dataclass(frozen=True)
class CheckResult:
    """The student's outline and call, and the AI's outline, checked against the answer key: region-wise around one
    lesion (`check_answer`: `student`, `ai`) or spot by spot (`check_spots`: `key_spots`, `student_spots`,
    `ai_spots`)."""

    dice_student_key: float | None  # None when the key has no lesion (a negative bone scan)
    dice_ai_key: float | None  # None without an AI outline or without a lesion in the key
    call: str  # "right", "wrong", or "none" (no call made, or the key has no label)
    call_summary: str | None  # None when the key has no label
    student_call: str | None  # the call's words, None for no call
    key_label: str | None  # the key label's words, None when the key has none
    student: Discrepancies | None  # region-wise; None for a lesion-wise check
    ai: Discrepancies | None
    key_spots: tuple[Spot, ...] | None = None  # lesion-wise: the key's hot spots (none in a negative study)
    key_summary: str | None = None  # "The answer key has 3 hot spots ..." / "No metastasis in the key."
    student_spots: SpotFindings | None = None
    ai_spots: SpotFindings | None = None  # None without an AI outline
    ai_call: str | None = None  # the AI's call's words, None when unknown
    ai_call_summary: str | None = None  # "The AI's call, yes, is wrong: ..."; None when unknown or the key has no label


@dataclass(frozen=True)
class _Mask:
    """A binary mask with the geometry that sizes and places its regions."""

    array: np.ndarray  # bool, (k, j, i)
    image: sitk.Image  # the 3D label image it came from
    flat: bool  # one slice: areas in mm²


@dataclass(frozen=True)
class _Key:
    """The answer key's mask and where its regions are placed from."""

    mask: _Mask
    centroid: np.ndarray  # LPS, mm
    radius: float  # mm: of the disc (2D) or ball (3D) of the key's area or volume


def check_answer(student: sitk.Image, key: sitk.Image, ai: sitk.Image | None = None, student_call: str | None = None,
                 key_label: str | None = None, labels: dict | None = None) -> CheckResult:
    """Score the student's outline (and the AI's, when given) against the answer key, and the student's call against
    the key's label. `labels` maps each call's code (the manifest's label, e.g. "1") to its words ("malignant");
    without it the codes are the words. Refuses masks on different grids and an empty student outline or key."""
    key_mask, student_mask, ai_mask = _masks(key, student, ai)
    if not key_mask.array.any():
        raise InputError("The answer key of this case outlines nothing: the case cannot be checked.")
    if not student_mask.array.any():
        raise InputError("Draw the lesion first: your outline is empty.")
    words = {str(code): str(text) for code, text in (labels or {}).items()}
    call, call_summary = _check_call(student_call, key_label, words)
    key_shape = _key_shape(key_mask)
    return CheckResult(
        dice_student_key=_dice(student_mask.array, key_mask.array),
        dice_ai_key=None if ai_mask is None else _dice(ai_mask.array, key_mask.array),
        call=call, call_summary=call_summary,
        student_call=None if student_call is None else words.get(str(student_call), str(student_call)),
        key_label=None if key_label is None else words.get(str(key_label), str(key_label)),
        student=_discrepancies(student_mask, key_shape, STUDENT),
        ai=None if ai_mask is None else _discrepancies(ai_mask, key_shape, AI))


def check_spots(student: sitk.Image, key: sitk.Image, ai: sitk.Image | None = None, student_call: str | None = None,
                key_label: str | None = None, labels: dict | None = None, views: Sequence[str] = (),
                where: Callable[[int, float, float], str | None] | None = None,
                ai_call: str | None = None) -> CheckResult:
    """Score lesion-wise (a bone scan): the key's hot spots found and missed by the student's outline (and the AI's),
    their false-positive spots, Dice where the key has lesions, the student's call (and the AI's `ai_call`, when
    known) against the key's label. The key and the outlines may be empty (a negative study; the student outlined
    none). `views`: the name of each slice of the grid (a bone scan's frames: "anterior", "posterior"; else
    ORDINALS); `where(slice, row, col)`: a spot's skeletal site, or None to give its position. `labels` as for
    `check_answer`."""
    key_mask, student_mask, ai_mask = _masks(key, student, ai)
    words = {str(code): str(text) for code, text in (labels or {}).items()}
    call, call_summary = _check_call(student_call, key_label, words)
    _, ai_summary = _check_call(ai_call, key_label, words)
    names = [views[k] if k < len(views) else ORDINALS[k] if k < len(ORDINALS) else f"no. {k + 1}"
             for k in range(key_mask.array.shape[0])]
    spots = _Spots(key_mask, names, where)
    lesions, key_spots = key_mask.array.any(), spots.key_spots
    return CheckResult(
        dice_student_key=_dice(student_mask.array, key_mask.array) if lesions else None,
        dice_ai_key=_dice(ai_mask.array, key_mask.array) if lesions and ai_mask is not None else None,
        call=call, call_summary=call_summary,
        student_call=None if student_call is None else words.get(str(student_call), str(student_call)),
        key_label=None if key_label is None else words.get(str(key_label), str(key_label)),
        student=None, ai=None, key_spots=key_spots, key_summary=_key_spots_text(key_spots, names),
        student_spots=spots.findings(student_mask.array, STUDENT),
        ai_spots=None if ai_mask is None else spots.findings(ai_mask.array, AI),
        ai_call=None if ai_call is None else words.get(str(ai_call), str(ai_call)),
        ai_call_summary=None if ai_call is None or ai_summary is None else
        ai_summary.replace("Your call", "The AI's call", 1) + _call_and_spots(words.get(str(ai_call), str(ai_call)),
                                                                            ai_mask))


AI_CALL_AND_SPOTS = (" The call comes from the AI's classifier network, the spots from its segmentation network: "
                     "here they disagree.")


def _call_and_spots(ai_call: str, ai_mask: _Mask | None) -> str:
    """Said after the AI's call when its call (its words: "yes", or the code "1", is a metastasis) and its outlined
    spots disagree."""
    if ai_mask is None or (ai_call in ("1", "yes")) == bool(ai_mask.array.any()):
        return ""
    return AI_CALL_AND_SPOTS


class _Spots:
    """The hot spots of masks on the key's grid, and an outline's findings against the key's spots."""

    def __init__(self, key: _Mask, views: list[str], where):
        self.key, self.views, self.where = key, views, where
        spacing = key.image.GetSpacing()
        self.pixel_mm = (spacing[1], spacing[0])  # (row, column)
        self.pixel_area = _pixel_size(key.image, True)
        self.key_spots, self.key_labels = self.of(key.array)

    def of(self, mask: np.ndarray, wide_only: bool = False) -> tuple[tuple[Spot, ...], np.ndarray]:
        """The spots of a (k, j, i) mask, by view then row then column, and its label array (spot n labelled n + 1;
        0 elsewhere and for the slips of the brush left out when `wide_only`)."""
        labels = np.zeros(mask.shape, np.int32)
        inner = _dab(mask) if wide_only else mask
        spots = []
        for k in range(mask.shape[0]):
            numbered, count = ndimage.label(mask[k], structure=np.ones((3, 3)))
            kept = np.unique(numbered[inner[k].astype(bool) & (numbered > 0)])  # one pass over the view
            if wide_only:  # a thin stroke longer than a slip counts too
                kept = np.union1d(kept, np.nonzero(np.bincount(numbered.ravel())[1:] > SLIP_PIXELS)[0] + 1)
            if not kept.size:
                continue
            centres = ndimage.center_of_mass(mask[k], numbered, kept)
            sizes = ndimage.sum_labels(mask[k], numbered, kept)
            renumbered = np.zeros(count + 1, np.int32)  # the view's region number -> spot n + 1 (0: not a spot)
            for n, (row, col), pixels in sorted(zip(kept, centres, sizes, strict=True), key=lambda item: item[1]):
                renumbered[n] = len(spots) + 1
                spots.append(Spot(self.views[k], float(row), float(col), int(pixels), float(pixels * self.pixel_area),
                                  self._where(k, float(row), float(col))))
            labels[k] = renumbered[numbered]
        return tuple(spots), labels

    def _where(self, k: int, row: float, col: float) -> str:
        site = self.where(k, row, col) if self.where is not None else None
        return site or f"x {col * self.pixel_mm[1]:.0f} mm, y {row * self.pixel_mm[0]:.0f} mm"

    def findings(self, outline: np.ndarray, who: _Who) -> SpotFindings:
        """The key's spots the outline touches and misses, and the outline's spots that touch none (a slip of the
        brush is left to the Dice)."""
        touched = set(np.unique(self.key_labels[outline]).tolist())
        found = tuple(spot for n, spot in enumerate(self.key_spots, 1) if n in touched)
        missed = tuple(spot for n, spot in enumerate(self.key_spots, 1) if n not in touched)
        spots, labels = self.of(outline, wide_only=True)
        on_key = set(np.unique(labels[self.key.array]).tolist())
        false = tuple(spot for n, spot in enumerate(spots, 1) if n not in on_key)
        return SpotFindings(found, missed, false, _findings_text(found, missed, false, who))


def _spot_list(spots: tuple[Spot, ...]) -> str:
    """"left ribs on the anterior view, 45 mm²; sacrum on the posterior view, 30 mm² and 2 more"."""
    shown = "; ".join(spot.text() for spot in spots[:LISTED_SPOTS])
    return shown + (f" and {len(spots) - LISTED_SPOTS} more" if len(spots) > LISTED_SPOTS else "")


def _key_spots_text(spots: tuple[Spot, ...], views: list[str]) -> str:
    """"The answer key has 3 hot spots (metastases): 2 on the anterior view, 1 on the posterior view." or "No
    metastasis in the key: ..."."""
    if not spots:
        return "No metastasis in the key (a negative study): false-positive spots are counted, Dice is not defined."
    per_view = [f"{sum(spot.view == view for spot in spots)} on the {view} view" for view in dict.fromkeys(views)
                if any(spot.view == view for spot in spots)]
    both = " (a metastasis seen on both views is a spot on each)" if len(set(views)) > 1 else ""
    return f"The answer key has {counted(len(spots), 'hot spot')} (metastases): {', '.join(per_view)}{both}."


def _findings_text(found, missed, false, who: _Who) -> str:
    """The sentence of an outline's spot findings ("You found 2 of the key's 3 hot spots; you missed 1 (...)")."""
    student = who is STUDENT
    owner, pronoun, name = ("your", "you", "your") if student else ("its", "it", "the AI's")
    if not found and not missed:
        if not false:
            return f"No metastasis in the key, and {pronoun if student else 'the AI'} outlined no spot."
        are = "is a false positive" if len(false) == 1 else "are false positives"
        return f"No metastasis in the key: {name} {counted(len(false), 'spot')} {are} ({_spot_list(false)})."
    text = f"{who.subject} found {len(found)} of the key's {counted(len(found) + len(missed), 'hot spot')}"
    if missed:
        text += f"; {pronoun} missed {len(missed)} ({_spot_list(missed)})"
    if false:
        one = len(false) == 1
        text += (f"; {len(false)} of {owner} spots {'is' if one else 'are'} not in the key (false "
                 f"positive{'' if one else 's'}: {_spot_list(false)})")
    else:
        text += f"; {pronoun} marked no false-positive spot"
    return text + "."


def _masks(key: sitk.Image, student: sitk.Image, ai: sitk.Image | None) -> tuple[_Mask, _Mask, _Mask | None]:
    """The key's, the student's and the AI's (None: not given) masks, the outlines refused on another grid."""
    key_mask, student_mask = _mask(key, "the answer key"), _mask(student, "your outline")
    _check_same_grid(student_mask.image, key_mask.image, "your outline")
    if ai is None:
        return key_mask, student_mask, None
    ai_mask = _mask(ai, "the AI's outline")
    _check_same_grid(ai_mask.image, key_mask.image, "the AI's outline")
    return key_mask, student_mask, ai_mask


def _mask(image: sitk.Image, name: str) -> _Mask:
    """The non-zero pixels of a 2D or 3D label image (a 2D image becomes one slice at z = 0)."""
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() not in (2, 3):
        raise InputError(f"{_capitalised(name)} must be a 2D or 3D label image with one value per pixel.")
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    values = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(values).all():
        raise InputError(f"{_capitalised(name)} has pixels that are not numbers (NaN or infinite).")
    return _Mask(values != 0, image, image.GetSize()[2] == 1)


def _capitalised(text: str) -> str:
    """The text with its first letter upper-case ("the AI's outline" -> "The AI's outline")."""
    return text[:1].upper() + text[1:]


def _check_same_grid(image: sitk.Image, key: sitk.Image, name: str) -> None:
    """Refuse a mask whose size, spacing, origin or direction differs from the key's."""
    tolerance = GEOMETRY_TOLERANCE * min(key.GetSpacing())
    differences = [what for what, a, b, atol in (
        ("size", image.GetSize(), key.GetSize(), 0),
        ("spacing", image.GetSpacing(), key.GetSpacing(), tolerance),
        ("origin", image.GetOrigin(), key.GetOrigin(), tolerance),
        ("direction", image.GetDirection(), key.GetDirection(), GEOMETRY_TOLERANCE))
        if not np.allclose(a, b, rtol=0, atol=atol)]
    if differences:
        raise InputError(f"{_capitalised(name)} is not on the answer key's image grid (its {' and '.join(differences)} "
                         f"differ{'s' if len(differences) == 1 else ''}): both must outline the same image.")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary masks, at least one non-empty."""
    return float(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def _pixel_size(image: sitk.Image, flat: bool) -> float:
    """Area (mm²) of a pixel in the image plane, or volume (mm³) of a voxel, exact for any direction matrix."""
    axes = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    return float(np.linalg.norm(np.cross(axes[:, 0], axes[:, 1])) if flat else abs(np.linalg.det(axes)))


def _key_shape(key: _Mask) -> _Key:
    """The key's centroid and equivalent radius."""
    size = key.array.sum() * _pixel_size(key.image, key.flat)
    radius = math.sqrt(size / math.pi) if key.flat else (3 * size / (4 * math.pi)) ** (1 / 3)
    index = np.argwhere(key.array).mean(axis=0)[::-1]  # (i, j, k)
    return _Key(key, np.array(key.image.TransformContinuousIndexToPhysicalPoint(index.tolist())), radius)


def _regions(mask: np.ndarray, key: _Key) -> tuple[Region, ...]:
    """The connected regions of `mask` (on the key's grid) more than two pixels wide somewhere in the image plane,
    largest first."""
    if not mask.any():
        return ()
    of = key.mask
    # the mask's bounding box (a small lesion in a large image is fast), on the same physical grid
    extent = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    mask = mask[tuple(slice(e[0], e[-1] + 1) for e in extent)]
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(of.image.GetSpacing())
    image.SetDirection(of.image.GetDirection())
    image.SetOrigin(of.image.TransformIndexToPhysicalPoint([int(extent[axis][0]) for axis in (2, 1, 0)]))
    components = sitk.ConnectedComponent(image, False)
    wide = np.unique(sitk.GetArrayViewFromImage(components)[_inner(mask)])
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(components)
    pixel, unit = _pixel_size(of.image, of.flat), "mm²" if of.flat else "mm³"
    regions = []
    for label in wide:
        pixels, centroid = shapes.GetNumberOfPixels(int(label)), np.array(shapes.GetCentroid(int(label)))
        regions.append(Region(pixels, pixels * pixel, unit, tuple(float(c) for c in centroid),
                              _side(centroid - key.centroid, key)))
    return tuple(sorted(regions, key=lambda region: -region.pixels))


def _inner(mask: np.ndarray) -> np.ndarray:
    """The pixels of a (k, j, i) mask whose four in-plane neighbours are in it too (an in-plane erosion with a cross;
    outside the image counts as outside the mask)."""
    inner = np.zeros_like(mask)
    inner[:, 1:-1, 1:-1] = (mask[:, 1:-1, 1:-1] & mask[:, :-2, 1:-1] & mask[:, 2:, 1:-1] & mask[:, 1:-1, :-2]
                            & mask[:, 1:-1, 2:])
    return inner


def _dab(mask: np.ndarray) -> np.ndarray:
    """The pixels of a (k, j, i) mask that make it more than one pixel wide: the top-left pixel of each 2×2 block in
    it and each pixel with its four in-plane neighbours (what the smallest brush dab paints; a one-pixel stroke has
    neither)."""
    blocks = np.zeros_like(mask)
    blocks[:, :-1, :-1] = mask[:, :-1, :-1] & mask[:, 1:, :-1] & mask[:, :-1, 1:] & mask[:, 1:, 1:]
    return blocks | _inner(mask)


def _side(offset_lps: np.ndarray, key: _Key) -> str | None:
    """The side of the key's centroid that an offset (mm, LPS) points to, None unless clear-cut."""
    axis = int(np.argmax(np.abs(offset_lps)))
    along, others = abs(offset_lps[axis]), np.delete(np.abs(offset_lps), axis)
    if along < SIDE_OFFSET * key.radius or (others * SIDE_DOMINANCE > along).any():
        return None
    return (SIDES_2D if key.mask.flat else SIDES_3D)[axis][int(offset_lps[axis] > 0)]


@dataclass(frozen=True)
class _Who:
    """Whose outline, as the sentences say it."""

    subject: str  # "You"
    outline: str  # "Your outline"
    advice: str  # said after "the lesion spans N slices": "" or ": outline it on every slice"


STUDENT = _Who("You", "Your outline", ": outline it on every slice")
AI = _Who("The AI", "The AI's outline", "")


def _discrepancies(outline: _Mask, key: _Key, who: _Who) -> Discrepancies:
    """Where `outline` disagrees with the key, and the sentences that say it ("You ...", "The AI ...")."""
    missed = _regions(key.mask.array & ~outline.array, key)
    extra = _regions(outline.array & ~key.mask.array, key)
    slices = _slices_text(outline, key, who)
    if outline.array.any() and not (outline.array & key.mask.array).any():
        return Discrepancies(missed, extra, slices + _off_lesion(outline, key, who))
    missed_text = (f"missed {counted(len(missed), 'region')} of the lesion ({_regions_text(missed, 'at the')})"
                   if missed else "missed no part of the lesion")
    extra_text = (f"included {counted(len(extra), 'region')} outside it ({_regions_text(extra, 'beyond the')})"
                  if extra else "included nothing outside it")
    sentence = f"{who.subject} {missed_text} {'but' if extra and not missed else 'and'} {extra_text}"
    if not missed and not extra and not np.array_equal(outline.array, key.mask.array):
        sentence += "; the outlines differ only along a band at most two pixels wide"
    return Discrepancies(missed, extra, slices + sentence + ".")


def _off_lesion(outline: _Mask, key: _Key, who: _Who) -> str:
    """The sentence for an outline that does not touch the lesion: their sizes, and where the lesion lies from it
    (a side only when clear-cut, by `_side`'s rules with the outline's centroid in place of the key's)."""
    pixel, unit = _pixel_size(key.mask.image, key.mask.flat), "mm²" if key.mask.flat else "mm³"
    index = np.argwhere(outline.array).mean(axis=0)[::-1]  # (i, j, k)
    centroid = np.array(key.mask.image.TransformContinuousIndexToPhysicalPoint(index.tolist()))
    offset = key.centroid - centroid
    side = _side(offset, key)
    apart = _size_text(float(np.linalg.norm(offset)), "mm")
    where = (f"the lesion is {TOWARDS[side]} it, {apart} away centre to centre" if side
             else f"their centres are {apart} apart")
    return (f"{who.outline} ({_size_text(outline.array.sum() * pixel, unit)}) is not on the lesion "
            f"({_size_text(key.mask.array.sum() * pixel, unit)}): {where}.")


def _slices_text(outline: _Mask, key: _Key, who: _Who) -> str:
    """For a volume whose outline is on at most half the slices the lesion spans: "Your outline covers 1 slice
    (slice 8); the lesion spans 9 slices (slices 4–12, 22.5 mm): outline it on every slice. " ("" otherwise)."""
    if key.mask.flat:
        return ""
    drawn = np.flatnonzero(outline.array.any(axis=(1, 2)))
    lesion = np.flatnonzero(key.mask.array.any(axis=(1, 2)))
    spans = int(lesion[-1] - lesion[0] + 1)
    if not drawn.size or spans < 2 or 2 * drawn.size > spans:  # an empty outline: its missed region says it
        return ""
    image = key.mask.image
    thickness = _pixel_size(image, False) / _pixel_size(image, True)  # the slices' spacing along their normal
    return (f"{who.outline} covers {counted(drawn.size, 'slice')} ({_slice_numbers(drawn)}); the lesion spans "
            f"{counted(spans, 'slice')} ({_slice_numbers(lesion)}, {spans * thickness:.3g} mm){who.advice}. ")


def _slice_numbers(slices: np.ndarray) -> str:
    """Sorted slice indices (from 0) as said: "slice 8", "slices 4–12" (first to last), counted from 1."""
    first, last = int(slices[0]) + 1, int(slices[-1]) + 1
    return f"slice {first}" if first == last else f"slices {first}–{last}"


def _regions_text(regions: tuple[Region, ...], edge: str) -> str:
    """The largest region's size (and side): "14 mm² at the upper edge", "largest 14 mm²" for several."""
    return ("" if len(regions) == 1 else "largest ") + regions[0].text(edge)


def _size_text(size: float, unit: str) -> str:
    """A size with two significant digits below 10 ("2.5 mm²", "0.013 mm²"), whole above ("14 mm²")."""
    return f"{size:.0f} {unit}" if size >= 9.95 else f"{size:.2g} {unit}"


def _check_call(student_call, key_label, words: dict[str, str]) -> tuple[str, str | None]:
    """("right" / "wrong" / "none", the sentence that says it; None when the key has no label); `words`: each call's
    code (str) to its words."""
    for what, code in (("your call", student_call), ("the answer key's label", key_label)):
        if code is not None and words and str(code) not in words:
            raise InputError(f"{_capitalised(what)} '{code}' is none of this teaching set's labels "
                             f"({', '.join(words.values())}).")
    if key_label is None:
        return "none", None
    key_words = words.get(str(key_label), str(key_label))
    if student_call is None:
        return "none", f"You made no call; the answer key says {key_words}."
    call_words = words.get(str(student_call), str(student_call))
    if str(student_call) == str(key_label):
        return "right", f"Your call, {call_words}, is right."
    return "wrong", f"Your call, {call_words}, is wrong: the answer key says {key_words}."


@dataclass(frozen=True)
class ShownSlice:
    """The slice of a volume the views show after Check, and the sentence that says which and why."""

    index: int  # k, from 0
    text: str


def slice_to_show(student: np.ndarray, key: np.ndarray) -> ShownSlice | None:
    """The slice of a (k, j, i) volume where the student's outline and the key are seen together: where they overlap
    most; without overlap, the slice with both where the student drew most; else the student's largest slice (the
    key is elsewhere: the sentence says where). None for a one-slice image."""
    student, key = np.asarray(student, bool), np.asarray(key, bool)
    if student.shape[0] == 1:
        return None
    count = student.shape[0]
    overlap = (student & key).sum(axis=(1, 2))
    drawn, lesion = student.sum(axis=(1, 2)), np.flatnonzero(key.any(axis=(1, 2)))
    if overlap.any():
        index, why = int(np.argmax(overlap)), "where your outline and the key overlap most"
    elif (both := drawn * key.any(axis=(1, 2))).any():
        index, why = int(np.argmax(both)), "where both your outline and the key are (they do not overlap)"
    else:
        index = int(np.argmax(drawn))
        why = f"your outline's; the key is on {_slice_numbers(lesion)}" if lesion.size else "your outline's"
    return ShownSlice(index, f"The views show slice {index + 1} of {count}, {why}.")


@dataclass(frozen=True)
class Score:
    """One checked case of a session (the case id the caller gives: never a patient identifier)."""

    case: str
    student_dice: float | None  # None when undefined (a key without lesions)
    ai_dice: float | None
    student_call: str | None  # the call's words, None for no call
    key_label: str | None  # the key label's words
    call: str  # "right", "wrong" or "none"
    seconds: float  # time spent on the case
    time: datetime  # when it was checked
    spots: tuple[int, ...] | None = None  # lesion-wise: key spots, found, missed, false positives (student)
    ai_spots: tuple[int, ...] | None = None  # the AI's found, missed, false positives; None without an AI outline
    ai_call: str | None = None  # the AI's call's words, None when unknown

    def cells(self) -> list[str]:
        """Its CSV cells, in COLUMNS' order (a case id or label a spreadsheet would run as a formula is prefixed
        with ')."""
        counts = [*(self.spots or ("",) * 4), *(self.ai_spots or ("",) * 3)]
        dice = ("" if value is None else f"{value:.3f}" for value in (self.student_dice, self.ai_dice))
        return [_cell(self.case), *dice,
                *(_cell(words or "") for words in (self.student_call, self.key_label)), self.call,
                f"{self.seconds:.1f}", self.time.isoformat(timespec="seconds"), *map(str, counts),
                _cell(self.ai_call or "")]


def _cell(text: str) -> str:
    """A text cell, prefixed with ' where a spreadsheet would run it as a formula."""
    return f"'{text}" if text.startswith(FORMULA_START) and not NUMBER.fullmatch(text) else text


@dataclass(frozen=True)
class SheetSummary:
    """A session's totals."""

    cases: int
    mean_student_dice: float | None  # None before the first case, or when no case's Dice is defined
    mean_ai_dice: float | None  # over the cases with an AI outline and a defined Dice
    calls_right: int
    calls_checked: int  # cases whose call was right or wrong
    dice_cases: int = 0  # cases whose Dice is defined (a key with lesions)
    spots: tuple[int, int, int] | None = None  # lesion-wise cases: key spots found, key spots, false positives

    @property
    def text(self) -> str:
        """"3 cases: your mean Dice 0.78 (the AI's 0.85); calls right 2/3"; with lesion-wise cases "... your mean Dice
        0.61 over 2 cases with metastases (...); calls right 2/3; hot spots found 5/7, 1 false-positive spot"."""
        if not self.cases:
            return "No case checked yet."
        text = counted(self.cases, "case") + ": "
        if self.mean_student_dice is None:
            text += "no Dice (no case with a lesion in its key)"
        else:
            text += f"your mean Dice {self.mean_student_dice:.2f}"
            if self.dice_cases < self.cases:
                text += f" over {counted(self.dice_cases, 'case')} with metastases"
            if self.mean_ai_dice is not None:
                text += f" (the AI's {self.mean_ai_dice:.2f})"
        text += f"; calls right {self.calls_right}/{self.calls_checked}"
        if self.spots is not None:
            found, total, false = self.spots
            text += f"; hot spots found {found}/{total}, {counted(false, 'false-positive spot')}"
        return text


@dataclass
class ScoreSheet:
    """A teaching session's score sheet: one row per checked case, in the order checked."""

    rows: list[Score] = field(default_factory=list)

    def add(self, case: str, result: CheckResult, seconds: float, time: datetime | None = None) -> Score:
        """Append a checked case (`time` defaults to now, local time with its UTC offset)."""
        if not str(case).strip():
            raise InputError("A teaching case needs an id for the score sheet.")
        if not math.isfinite(seconds) or seconds < 0:
            raise InputError(f"The time spent on case {case} must be a number of seconds, not {seconds}.")
        spots = ai_spots = None
        if result.student_spots is not None:
            found = result.student_spots
            spots = (len(result.key_spots), len(found.found), len(found.missed), len(found.false_positives))
        if result.ai_spots is not None:
            ai_spots = tuple(len(part) for part in (result.ai_spots.found, result.ai_spots.missed,
                                                    result.ai_spots.false_positives))
        score = Score(str(case), result.dice_student_key, result.dice_ai_key, result.student_call, result.key_label,
                      result.call, float(seconds), time or datetime.now().astimezone(), spots, ai_spots,
                      result.ai_call)
        self.rows.append(score)
        return score

    def summary(self) -> SheetSummary:
        """Mean Dice (the student's and the AI's, over the cases where it is defined), the calls right out of those
        checked, and for lesion-wise cases the key's spots found and the false positives."""
        student = [row.student_dice for row in self.rows if row.student_dice is not None]
        ai = [row.ai_dice for row in self.rows if row.ai_dice is not None]
        spotted = [row.spots for row in self.rows if row.spots is not None]
        return SheetSummary(len(self.rows), float(np.mean(student)) if student else None,
                            float(np.mean(ai)) if ai else None, sum(row.call == "right" for row in self.rows),
                            sum(row.call != "none" for row in self.rows), len(student),
                            (sum(s[1] for s in spotted), sum(s[0] for s in spotted), sum(s[3] for s in spotted))
                            if spotted else None)

    def to_csv_text(self) -> str:
        """The sheet as CSV text: a header (COLUMNS) and one line per case."""
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        writer.writerows(row.cells() for row in self.rows)
        return buffer.getvalue()

    def to_csv(self, path) -> Path:
        """Write the sheet to `path` (UTF-8), whole or not at all (a temporary file beside it, then moved)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_files(path) as (temporary,):
            temporary.write_text(self.to_csv_text(), encoding="utf-8", newline="")
        return path
