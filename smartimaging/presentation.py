"""How an image is presented to the reader, without MRML or a GUI: window/level presets per modality (bone scan
black-on-white from the body's counts; mammography the file's DICOM window, the breast tissue's range or the full
range; MRI Slicer's auto window) and a mammogram's laterality, view and hanging (chest wall right for a right
breast, left for a left one). The station, the desktop modules (through `display`) and the command line's reports
show images by these same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

UNKNOWN = "unknown"
# Bone scan: the window runs from 0 counts to this percentile of the body's counts, black on white (uptake dark)
BONE_PRESETS = (("Bone standard", 98.0), ("Bone faint uptake", 90.0), ("Bone hot spots", 99.9))
BODY_FRACTION = 0.1  # body pixels: counts above this fraction of the image's 99.5th percentile
TISSUE_PERCENTILES = (1.0, 99.5)  # mammography "Tissue" preset over the pixels above background
BREAST_COLUMN_FRACTION = 0.05  # chest_wall_side: a column holds breast when this fraction of its rows does
CHEST_WALL_RATIO = 1.5  # chest_wall_side: the chest-wall end's column profile over the nipple end's, at least
SHOWN_CHARACTERS = 60  # header values and caption titles longer than this are shortened with "…"
# The file's DICOM window is a mammogram's default only when sensible for its pixels: its centre inside the pixel
# range and its width between these fractions of that range (narrower: a binary threshold; wider: all mid-grey)
DICOM_WINDOW_WIDTH = (0.01, 10.0)
LATERALITY = {"R": "R", "RIGHT": "R", "L": "L", "LEFT": "L"}
MAMMO_VIEWS = ("XCCL", "XCCM", "CC", "MLO", "ML", "LM", "LMO", "SIO", "FB", "AT")


@dataclass(frozen=True)
class Preset:
    """A window/level (None, None: Slicer's auto window/level) and whether the grey scale is inverted; `detail`:
    how it was chosen (tooltip)."""
    name: str
    window: float | None
    level: float | None
    invert: bool = False
    detail: str = ""


@dataclass
class ViewCaption:
    """What a view says about itself: `title` and `note` (upper right), the letters of the patient's
    directions at the view's `edges` ({"left", "right", "top", "bottom"}; None: from the slice view's geometry, for
    volumes in patient space) and whether the view is `mirrored` (a right mammogram hung chest wall right)."""
    title: str
    note: str = ""
    edges: dict[str, str] | None = field(default_factory=dict)
    mirrored: bool = False


# ---- window / level ---------------------------------------------------------------------------------------------

def presets(modality: str, array: np.ndarray, header: dict | None = None) -> list[Preset]:
    """The window/level presets of an image of `modality` (NM, MG, MR); the first is the default. `header`: the
    file's fields (`read_header`), for a mammogram's DICOM window."""
    array = np.asarray(array, dtype=np.float32)
    low, high = float(array.min()), float(array.max())
    full = Preset("Full range", max(high - low, 1e-6), (high + low) / 2, detail=f"{low:g} to {high:g}")
    if modality == "NM":
        counts = np.clip(array, 0, None)
        body = counts[counts > BODY_FRACTION * float(np.percentile(counts, 99.5))]
        body = body if body.size else counts.ravel()
        found = []
        for name, percentile in BONE_PRESETS:
            upper = max(float(np.percentile(body, percentile)), 1e-6)
            found.append(Preset(name, upper, upper / 2, True,
                                f"0 to {upper:.0f} counts ({percentile:g}th percentile of the body), uptake dark"))
        return [*found, Preset("Full range", high, high / 2, True, f"0 to {high:g} counts, uptake dark")]
    if modality == "MG":
        found = []
        window = (header or {}).get("window")
        tissue = array[array > low + 0.05 * (high - low)]
        tissue = tissue if tissue.size else array.ravel()
        lower, upper = (float(v) for v in np.percentile(tissue, TISSUE_PERCENTILES))
        found.append(Preset("Tissue", max(upper - lower, 1e-6), (upper + lower) / 2,
                            detail=f"{lower:g} to {upper:g} ({TISSUE_PERCENTILES[0]:g}-{TISSUE_PERCENTILES[1]:g}th "
                                   "percentile of the breast)"))
        if window:  # a MONOCHROME1 image was inverted when read (dense tissue bright): so is its window's centre
            centre = high + low - window[0] if (header or {}).get("photometric") == "MONOCHROME1" else window[0]
            detail = f"the file's window: centre {window[0]:g}, width {window[1]:g}"
            if sensible_window(centre, window[1], low, high):
                found.insert(0, Preset("DICOM window", window[1], centre, detail=detail))
            else:  # offered, never the default: it would show a blank image
                found.append(Preset("DICOM window", window[1], centre,
                                    detail=f"{detail}; not the default: outside the pixels ({low:g} to {high:g}) or "
                                           f"too narrow or wide for them"))
        return [*found, full]
    return [Preset("Auto", None, None, detail="Slicer's automatic window/level"), full]


def sensible_window(centre: float, width: float, low: float, high: float) -> bool:
    """Whether a window shows an image whose pixels run from `low` to `high`: its centre within them and its width
    DICOM_WINDOW_WIDTH times their range (1 % to 10 times)."""
    span = max(high - low, 1e-6)
    return low <= centre <= high and DICOM_WINDOW_WIDTH[0] * span <= width <= DICOM_WINDOW_WIDTH[1] * span


def window_bounds(preset: Preset) -> tuple[float, float]:
    """The (low, high) pixel values a preset with a window shows from black to white."""
    return preset.level - preset.window / 2, preset.level + preset.window / 2


def shortened(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """`text` cut to `limit` characters with "…" when longer (the page shows the full text on hover)."""
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


# ---- mammogram hanging ------------------------------------------------------------------------------------------

def mammo_laterality_view(header: dict, name: str) -> tuple[str, str]:
    """(laterality "R"/"L", view "CC"/"MLO"/...) from the DICOM header, else from the file name ("0_R-CC_cropped",
    "P121_L_DM_CC", "LEFT_CC"), else "unknown": never a guess."""
    laterality = LATERALITY.get(str(header.get("ImageLaterality") or header.get("Laterality") or "").upper(), "")
    view = str(header.get("ViewPosition") or "").upper()
    tokens = [t for t in re.split(r"[^A-Z0-9]+", name.upper()) if t]
    for token in tokens:
        if not laterality and token in LATERALITY:
            laterality = LATERALITY[token]
        if not view and token in MAMMO_VIEWS:
            view = token
        joined = re.fullmatch(rf"([RL])({'|'.join(MAMMO_VIEWS)})", token)  # "RCC", "LMLO"
        if joined:
            laterality, view = laterality or joined[1], view or joined[2]
    return laterality or UNKNOWN, view or UNKNOWN


def chest_wall_side(pixels: np.ndarray) -> str | None:
    """"left" or "right": the image edge of the chest wall, None when the image cannot tell. The breast (pixels
    above a tenth of the 1st-99.5th percentile range) is cut straight at the chest wall and rounds off to the
    nipple: the column profile (the fraction of rows holding breast) is high at the chest-wall end and low at the
    nipple end, and the breast's mass lies nearer the chest wall. Both ends are taken where the breast begins and
    ends (uniform borders, such as CDD-CESM's black bands on both sides, are skipped); a side is answered only when
    the end's profile is at least CHEST_WALL_RATIO times the other's and the centre of mass agrees."""
    pixels = np.asarray(pixels, dtype=np.float32)
    low, high = (float(v) for v in np.percentile(pixels, (1.0, 99.5)))
    profile = (pixels > low + 0.1 * (high - low)).mean(axis=0) if high > low else np.zeros(pixels.shape[1])
    columns = np.nonzero(profile > BREAST_COLUMN_FRACTION)[0]
    if columns.size < 2:
        return None
    first, last = int(columns[0]), int(columns[-1])
    band = max(1, (last - first + 1) // 20)
    left, right = float(profile[first:first + band].mean()), float(profile[last - band + 1:last + 1].mean())
    centre = float((profile * np.arange(profile.size)).sum() / profile.sum())
    middle = (first + last) / 2
    if left >= CHEST_WALL_RATIO * right and centre < middle:
        return "left"
    if right >= CHEST_WALL_RATIO * left and centre > middle:
        return "right"
    return None


def mammo_caption(header: dict, name: str, pixels: np.ndarray) -> ViewCaption:
    """"R CC" and the hanging: a right breast's chest wall on the right of the view, a left breast's on the left
    (the two breasts back to back, as radiologists hang them); the view is mirrored when the stored image has it the
    other way. Unknown laterality or chest-wall side: shown as stored, and said so."""
    laterality, view = mammo_laterality_view(header, name)
    view = shortened(view, 24)
    title = f"{laterality if laterality != UNKNOWN else 'laterality unknown'} {view if view != UNKNOWN else ''}"
    if laterality == UNKNOWN:
        return ViewCaption(title.strip() + (" (view unknown)" if view == UNKNOWN else ""),
                           "shown as stored (no hanging without laterality)")
    title = title.strip() if view != UNKNOWN else f"{laterality} (view unknown)"
    side = chest_wall_side(pixels)
    if side is None:
        return ViewCaption(title, "hanging not determined (chest wall side not found): shown as stored")
    mirrored = (laterality == "R") == (side == "left")
    wall = "right" if laterality == "R" else "left"
    note = f"hung chest wall {wall}" + (" (mirrored)" if mirrored else "")
    return ViewCaption(title, note, {}, mirrored)
