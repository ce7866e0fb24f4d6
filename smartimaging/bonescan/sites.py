"""Where a bone-scan lesion lies in the skeleton, named as a reader names it ("right ribs", "lumbar spine"): an
estimate from the lesion's height in the body and its distance from the body's midline (as a share of the body's
length), by adult body proportions of a supine whole-body scan. Height: 0 at the top of the head, 1 at the soles (both
found on the view); where the bladder is segmented, its centre is taken as BLADDER_HEIGHT and the heights above and
below it are scaled to it (a body's proportions vary; the phantoms' pelvis lies low). A planar view cannot separate
bones that overlap (the sternum and the thoracic spine on the anterior view) nor a bone from a soft-tissue focus: such
sites are named together, and the name is an estimate to check on the image.

Side: the patient's. The anterior view shows the patient's right on the viewer's left; the posterior view, stored as
seen from behind (`lesions` module), shows it on the viewer's right. So one site has the same side on both views,
though it lies on opposite sides of their images.
"""

from __future__ import annotations

import numpy as np

BODY_SHARE = 0.05  # a pixel brighter than this share of the view's 99.5th percentile (smoothed) is in the body
BODY_ROW_PX = 4  # a row with fewer body pixels is noise above the head or below the feet
MIDLINE = 0.02  # within this share of the body's length from the midline: a midline bone (spine, sternum, sacrum)
BLADDER_HEIGHT = 0.46  # the bladder's centre, as a share of the body's length from the top of the head
SITE_NOTE = ("Site: estimated from the lesion's height in the body (scaled to the bladder where it is segmented) and "
             "its distance from the midline, by adult body proportions; check it on the image. Right and left are the "
             "patient's: the anterior view shows the patient's right on the viewer's left, the posterior view on the "
             "viewer's right.")  # under the lesion list, in the station and the desktop module

# Bands of height: (lower than, midline bone, trunk bone, arm bone, arm from this share of the length off the midline).
# Below the chest the arms hang beside the trunk: the lower ribs and the iliac wings reach about 0.085 of the length
# off the midline (half the bi-iliac breadth, ~145 mm of ~1700 mm), the forearms and hands lie farther out. The iliac
# crest lies at about 0.385 of the length from the top of the head (its height from the floor is ~0.615 of stature).
_BANDS = (
    (0.13, "skull", "skull", "skull", 1.0),
    (0.19, "cervical spine", "shoulder girdle (clavicle, scapula)", "shoulder girdle (clavicle, scapula)", 1.0),
    (0.34, "thoracic spine", "ribs", "humerus", 0.065),
    (0.385, "lumbar spine", "lower ribs", "forearm", 0.09),
    (0.455, "lower lumbar spine or sacrum", "pelvis (ilium)", "forearm or hand", 0.09),
    (0.50, "sacrum or pubis (pelvis, midline)", "pelvis (acetabulum, ischium)", "hand or wrist", 0.09),
    (0.57, "between the thighs (no bone)", "hip or proximal femur", "hand or wrist", 0.09),
    (0.70, "femur", "femur", "femur", 1.0),
    (0.77, "knee", "knee", "knee", 1.0),
    (0.95, "lower leg (tibia, fibula)", "lower leg (tibia, fibula)", "lower leg (tibia, fibula)", 1.0),
    (float("inf"), "ankle or foot", "ankle or foot", "ankle or foot", 1.0),
)
_NO_SIDE = ("spine", "sacrum", "midline", "sternum", "thighs")  # midline: no side


def body_frame(counts: np.ndarray, bladder: np.ndarray | None = None) -> tuple | None:
    """(top row, bottom row, midline column, bladder centre row or None) of the body on a view (rows × columns of
    counts; `bladder`: its mask, if segmented); None when the view holds no body."""
    from scipy import ndimage  # SciPy: installed with the modules' packages, after the desktop widget shows SITE_NOTE

    smooth = ndimage.gaussian_filter(np.nan_to_num(counts.astype(np.float64)), 2.0)
    high = float(np.percentile(smooth, 99.5))
    if not high > 0:
        return None
    numbered, count = ndimage.label(smooth > BODY_SHARE * high)
    if not count:
        return None
    body = numbered == 1 + int(np.argmax(ndimage.sum_labels(numbered > 0, numbered, range(1, count + 1))))
    rows = np.flatnonzero(body.sum(axis=1) >= BODY_ROW_PX)  # the largest region: not a spot above the head
    if rows.size < 2 or rows[-1] - rows[0] < 0.2 * counts.shape[0]:
        return None
    top, bottom = float(rows[0]), float(rows[-1])
    trunk = body[int(top + 0.2 * (bottom - top)):int(top + 0.5 * (bottom - top)) + 1]  # chest and abdomen, arms
    columns = np.nonzero(trunk)[1]  # both arms beside the trunk: their centre is the midline
    bladder_rows = np.nonzero(bladder)[0] if bladder is not None else np.empty(0)
    centre = float(bladder_rows.mean()) if bladder_rows.size else None
    if centre is not None and not top + 0.3 * (bottom - top) < centre < top + 0.7 * (bottom - top):
        centre = None  # not where a bladder lies: the proportions alone
    return top, bottom, float(columns.mean()), centre


def _height(row: float, top: float, bottom: float, bladder: float | None) -> float:
    """The row's height in the body (0: top of the head, 1: soles), scaled to the bladder where it is known."""
    if bladder is None:
        return (row - top) / (bottom - top)
    if row <= bladder:
        return BLADDER_HEIGHT * (row - top) / (bladder - top)
    return BLADDER_HEIGHT + (1 - BLADDER_HEIGHT) * (row - bladder) / (bottom - bladder)


def skeletal_site(row: float, col: float, view: str, frame: tuple, pixel_mm: tuple[float, float]) -> str:
    """The site of a lesion centred at (row, col) on `view` ("anterior" or "posterior"; another name is read as
    anterior), given the view's `body_frame` and (row, column) pixel size in mm, e.g. "right ribs"."""
    top, bottom, midline, bladder = frame
    lateral = (col - midline) * pixel_mm[1] / ((bottom - top) * pixel_mm[0])  # > 0: the viewer's right
    distance = abs(lateral)
    _below, middle, trunk, arm, arm_from = next(band for band in _BANDS if _height(row, top, bottom, bladder) < band[0])
    name = middle if distance < MIDLINE else trunk if distance < arm_from else arm
    if view == "anterior" and name == "thoracic spine":
        name = "sternum or thoracic spine"
    if any(word in name for word in _NO_SIDE) or distance < MIDLINE:
        return name
    patient_left = (lateral > 0) == (view != "posterior")
    return f"{'left' if patient_left else 'right'} {name}"


def view_sites(lesions: list[dict], counts: dict[str, np.ndarray], pixel_mm: dict[str, tuple[float, float]],
               bladders: dict[str, np.ndarray] | None = None) -> None:
    """Set each lesion's "site" (`lesions.lesion_components`' dicts: "view", "row", "col"), `bladders` the bladder
    mask of each view where segmented; None on a view where no body is found."""
    frames = {view: body_frame(values, (bladders or {}).get(view)) for view, values in counts.items()}
    for lesion in lesions:
        frame = frames.get(lesion["view"])
        lesion["site"] = (skeletal_site(lesion["row"], lesion["col"], lesion["view"], frame, pixel_mm[lesion["view"]])
                          if frame is not None else None)
