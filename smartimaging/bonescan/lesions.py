"""The lesions of a bone scan as the reader reviews them: numbered per view, with position, area and uptake, the
anterior and posterior appearances of one site matched, and counts per view after the reader's rejections.

Position: the centroid in mm from the centre of the view's top-left pixel (x to the right, y down), as the view is
displayed; site: the skeletal site and the patient's side estimated from it (`sites`). Uptake: mean and maximum
counts of the lesion's pixels; no reference region (normal bone) is segmented, so no lesion-to-bone ratio is given.

Matching: a whole-body camera acquires both views at once on the same grid, and the posterior view is stored as
seen from behind (the patient's left on the viewer's left, the convention of `write_nm_dicom` and of the cameras), so
a site at column c of the anterior view lies at column (columns - 1 - c) of the posterior view, on the same row. An
anterior and a posterior lesion are one site when each is the other's nearest lesion and their centroids, thus
mirrored, lie within MATCH_TOLERANCE_MM. Views of other names or grids are not matched.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..wording import counted
from .sites import view_sites

LESION, BLADDER = 1, 2  # label values of the bone-scan label maps
MATCH_TOLERANCE_MM = 20.0
MATCH_RULE = (f"anterior and posterior lesions are one site when, with the posterior view mirrored, their centres "
              f"lie within {MATCH_TOLERANCE_MM:g} mm and each is the other's nearest")
_CONNECTIVITY = np.ones((3, 3))  # 8-connected


def _numbered(labels: np.ndarray) -> tuple[np.ndarray, int]:
    return ndimage.label(labels == LESION, structure=_CONNECTIVITY)


def lesion_components(labelmaps: dict[str, np.ndarray], counts: dict[str, np.ndarray],
                      pixel_mm: dict[str, tuple[float, float]]) -> list[dict]:
    """Numbered lesion components (8-connected), ordered by view then by position, with position, area and uptake;
    `pixel_mm` is each view's (row, column) pixel size; anterior and posterior appearances matched (`match_views`)."""
    components = []
    for view, labels in labelmaps.items():
        numbered, n = _numbered(labels)
        found = []
        for index in range(1, n + 1):
            rows, cols = np.nonzero(numbered == index)
            found.append((float(rows.mean()), float(cols.mean()), index,
                          counts[view][rows, cols].astype(np.float64)))  # a float32 mean of huge counts is inf
        row_mm, col_mm = pixel_mm[view]
        for row, col, index, values in sorted(found, key=lambda item: item[:3]):
            components.append({"id": len(components) + 1, "view": view, "row": round(row, 1), "col": round(col, 1),
                               "x_mm": round(col * col_mm, 1), "y_mm": round(row * row_mm, 1),
                               "area_px": int(values.size), "area_mm2": round(values.size * row_mm * col_mm, 1),
                               "mean_counts": round(float(values.mean()), 1), "max_counts": float(values.max()),
                               "matches": None, "_index": index})
    match_views(components, {view: labels.shape for view, labels in labelmaps.items()}, pixel_mm)
    view_sites(components, counts, pixel_mm, {view: labels == BLADDER for view, labels in labelmaps.items()})
    return components


def match_views(components: list[dict], shapes: dict[str, tuple[int, int]],
                pixel_mm: dict[str, tuple[float, float]]) -> None:
    """Set each lesion's "matches" to the id of its appearance in the other view (or None), by the module's rule."""
    if set(shapes) != {"anterior", "posterior"} or shapes["anterior"] != shapes["posterior"] \
            or pixel_mm["anterior"] != pixel_mm["posterior"]:
        return
    columns = shapes["anterior"][1]
    row_mm, col_mm = pixel_mm["anterior"]
    front = [c for c in components if c["view"] == "anterior"]
    back = [c for c in components if c["view"] == "posterior"]
    if not front or not back:
        return
    distance = np.array([[math.hypot((a["row"] - p["row"]) * row_mm, (a["col"] - (columns - 1 - p["col"])) * col_mm)
                          for p in back] for a in front])
    for i, a in enumerate(front):
        j = int(np.argmin(distance[i]))
        if int(np.argmin(distance[:, j])) == i and distance[i, j] <= MATCH_TOLERANCE_MM:
            a["matches"], back[j]["matches"] = back[j]["id"], a["id"]


def exclude_lesions(labelmaps: dict[str, np.ndarray], components: list[dict], exclude: list[int]) -> dict:
    """Copy of the label maps with the listed lesion components (ids from `lesion_components`) set to background."""
    unknown = sorted(set(exclude) - {c["id"] for c in components})
    if unknown:
        raise InputError(f"No lesion with id {unknown}; this case has lesions 1-{len(components)}")
    result = {view: labels.copy() for view, labels in labelmaps.items()}
    for component in components:
        if component["id"] in exclude:
            view = component["view"]
            result[view][_numbered(labelmaps[view])[0] == component["_index"]] = 0
    return result


def lesion_counts(components: list[dict], excluded: list[int], views: list[str]) -> dict:
    """What is counted: accepted lesions per view, the lesions the reader rejected, and, where the views are matched,
    the sites (a lesion seen on both views counts once)."""
    accepted = [c for c in components if c["id"] not in excluded]
    ids = {c["id"] for c in accepted}
    per_view = {view: sum(c["view"] == view for c in accepted) for view in views}
    matched = set(views) == {"anterior", "posterior"}
    both = sum(1 for c in accepted if c["view"] == "anterior" and c["matches"] in ids)
    return {"per_view": per_view, "rejected": sorted(set(excluded)),
            "sites": len(accepted) - both if matched else None,
            "sites_on_both_views": both if matched else None, "match_rule": MATCH_RULE if matched else None}


def count_rows(counts: dict, unrecorded: tuple | list = ()) -> list[list[str]]:
    """Result-table rows ("Quantity", "Value") of `lesion_counts` (views named by `view_title`)."""
    rows = [[f"Lesions, {view_title(view, unrecorded)}", str(n)] for view, n in counts["per_view"].items()]
    if counts["sites"] is not None:
        rows.append(["Lesion sites (both views matched)",
                     f"{counts['sites']} ({counts['sites_on_both_views']} seen on both views)"])
    rejected = counts["rejected"]
    rows.append(["Lesions rejected by the reader",
                 f"{len(rejected)} (#{', #'.join(map(str, rejected))})" if rejected else "0"])
    return rows


def counts_text(counts: dict, unrecorded: tuple | list = ()) -> str:
    """One line for the reader, e.g. "anterior 6 lesions · posterior 1 lesion; 6 sites (1 on both views); 5 rejected
    by the reader"; a view the file does not record: "view not recorded (analysed as anterior) 6 lesions"."""
    text = " · ".join(f"{view_title(view, unrecorded) if view in unrecorded else view} {counted(n, 'lesion')}"
                      for view, n in counts["per_view"].items())
    if counts["sites"] is not None:
        text += f"; {counted(counts['sites'], 'site')} ({counts['sites_on_both_views']} on both views)"
    return text + f"; {len(counts['rejected'])} rejected by the reader"


def _counts(value: float) -> str:
    """Counts as whole numbers, in powers of ten beyond a million (a float image may hold up to 3e38)."""
    return f"{value:.0f}" if abs(value) < 1e6 else f"{value:.3g}"


def describe(lesion: dict, matched_view: str | None = None, unrecorded: tuple | list = ()) -> dict[str, str]:
    """Texts of one lesion of result.json's "lesions" for the review list; "site" is the position where no site was
    recorded (a result.json written before sites were); on a view the file does not record (`unrecorded`), the side
    is said to assume the view it was analysed as."""
    partner = lesion.get("matches")
    position = f"x {lesion['x_mm']:.0f} mm, y {lesion['y_mm']:.0f} mm"
    site = lesion.get("site") or position
    if lesion["view"] in unrecorded and site.startswith(("left ", "right ")):
        site += f" (if this is the {lesion['view']} view)"
    return {"site": site, "position": position,
            "area": f"{lesion['area_mm2']:.0f} mm² ({lesion['area_px']} px)",
            "uptake": f"mean {_counts(lesion['mean_counts'])}, max {_counts(lesion['max_counts'])} counts",
            "match": (f"same site as #{partner}" + (f" ({matched_view})" if matched_view else "")) if partner
            else "one view only"}


def view_title(view: str, unrecorded: tuple | list = ()) -> str:
    """How a view is named to the reader: "anterior view", or, for a view the file does not record (named by
    default), "view not recorded (analysed as anterior)"."""
    return f"view not recorded (analysed as {view})" if view in unrecorded else f"{view} view"


def review(record: dict) -> dict:
    """The numbered lesion list per view of a result record (`BoneScanResult.as_json`), for a GUI: {"views": [{"view",
    "title" (`view_title`), "lesions": [{"id", "rejected", texts of `describe`}]}], "counts": text}."""
    unrecorded = record.get("unrecorded_views") or []
    views = record.get("views", [])
    lesions = record.get("lesions", [])
    view_of = {lesion["id"]: lesion["view"] for lesion in lesions}
    excluded = set(record.get("excluded_lesions", []))
    listed = [{"view": view, "title": view_title(view, unrecorded),
               "lesions": [{"id": lesion["id"], "rejected": lesion["id"] in excluded,
                            **describe(lesion, view_of.get(lesion.get("matches")), unrecorded)}
                           for lesion in lesions if lesion["view"] == view]} for view in views]
    counts = record.get("lesion_counts")
    return {"views": listed, "counts": counts_text(counts, unrecorded) if counts else ""}


def toggled(excluded: list[int], lesion_id: int) -> list[int]:
    """The rejected lesions after the reader clicks lesion `lesion_id` (rejected -> accepted and back)."""
    return sorted(set(excluded) ^ {lesion_id})
