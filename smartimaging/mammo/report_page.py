"""The case report (`report.html`) of a `mammo predict` result: the Rad-score with its cutoff and label, the ROI, the
feature contributions, and the mammogram with the ROI's outline, whole and enlarged around the ROI
(`record_report`)."""

from __future__ import annotations

import numpy as np

from ..record_report import Explainer, record_report
from ..report import CaseReport, Figure, figure_png, report_header, window_of
from ..segments import MAMMO_SEGMENTS
from .images import Mammogram

ZOOM_MARGIN = 1.5  # the enlarged view: the ROI's box grown by this many times its size on each side (as the station)
ZOOM_MIN_PX = 48


def result_rows(record: dict) -> list[list[str]]:
    """The result table (quantity, value) of a record (`MammoPrediction.as_json`); the feature values are in the
    explanations, with plain names."""
    rows = [["Rad-score", f"{record['rad_score']:.3f}"], ["Label", record["label"]],
            ["Cutoff (Youden, training)", f"{record['cutoff']:.3f}"], ["Lesion kind", record["kind"]],
            ["ROI", record["roi_source"]], ["ROI pixels", str(record["roi_pixels"])]]
    return rows + [[f"Contribution: {item['feature']}", f"{item['score_change']:+.3f}"]
                   for item in record.get("top_features") or []]


def roi_colour(kind: str) -> tuple[int, int, int]:
    """The ROI's outline colour: its segment's, as the station shows it."""
    return tuple(round(255 * c) for c in MAMMO_SEGMENTS[kind].color)


def figures(mammogram: Mammogram, roi: np.ndarray, colour: tuple[int, int, int]) -> list[Figure]:
    """The mammogram with the ROI's outline, as stored in the file (not hung), and enlarged around the ROI."""
    pixels = np.asarray(mammogram.pixels, np.float32)
    spacing = mammogram.image.GetSpacing()
    aspect = spacing[1] / spacing[0]
    mask = np.asarray(roi, bool)
    shown = [Figure("Mammogram with the ROI", figure_png(pixels, [(mask, colour)], window_of(pixels),
                                                         aspect=aspect),
                    "as stored in the file (not hung); window: the image's 0.5–99.5th percentiles")]
    if mask.any():
        rows, cols = np.nonzero(mask)
        size = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
        margin = max(round(ZOOM_MARGIN * size), ZOOM_MIN_PX)
        r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin + 1, pixels.shape[0])
        c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin + 1, pixels.shape[1])
        crop = pixels[r0:r1, c0:c1]
        shown.append(Figure("ROI enlarged", figure_png(crop, [(mask[r0:r1, c0:c1], colour)], window_of(crop),
                                                       aspect=aspect),
                            f"{(c1 - c0) * spacing[0]:.0f} × {(r1 - r0) * spacing[1]:.0f} mm around the ROI; "
                            "window: the crop's own range"))
    return shown


def report_page(mammogram: Mammogram, roi: np.ndarray, record: dict, explain: Explainer) -> CaseReport:
    """The report of a `mammo predict` result record."""
    meta = record.get("image") or {}
    header = report_header({"Modality": meta.get("modality"), "Pixel size": meta.get("pixel_size_mm") and (
        " × ".join(f"{v:.3f}" for v in meta["pixel_size_mm"]) + " mm ("
        + str(meta.get("pixel_size_source", "source not recorded")) + ")")})
    return record_report("Mammography Rad-score", "MammoRadiomics", "mammo predict",
                         f"Rad-score {record['rad_score']:.3f} ({record['label']})", record, explain,
                         result_rows(record), figures(mammogram, roi, roi_colour(record["kind"])),
                         legend=[(f"{MAMMO_SEGMENTS[record['kind']].name} ROI ({record['roi_source']})",
                                  roi_colour(record["kind"]))],
                         header=header, roi=record["roi_source"])
