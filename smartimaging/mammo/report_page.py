"""The case report (`report.html`) of a `mammo predict` result: the Rad-score with its cutoff and label, the ROI, the
feature contributions with plain names, and the mammogram with the ROI's outline, whole and enlarged around the ROI,
hung and windowed as the station shows it (`presentation`: laterality from the DICOM header or the file name, chest
wall right for a right breast; the file's DICOM window where sensible, else the breast tissue's range). Sizes in mm
only where the pixel size is known: else in pixels, with what the segmenter assumed (`record_report`)."""

from __future__ import annotations

import numpy as np

from ..feature_names import plain_feature_name
from ..presentation import Preset, ViewCaption, mammo_caption, presets, window_bounds
from ..record_report import Explainer, record_report
from ..report import CaseReport, Figure, figure_png, report_header, window_of
from ..segments import MAMMO_SEGMENTS
from .images import PIXEL_SIZE_UNKNOWN, Mammogram

ZOOM_MARGIN = 1.5  # the enlarged view: the ROI's box grown by this many times its size on each side
ZOOM_MIN_PX = 48


def result_rows(record: dict) -> list[list[str]]:
    """The result table (quantity, value) of a record (`MammoPrediction.as_json`), the contributions under the
    features' plain names; the feature values are in the explanations."""
    rows = [["Rad-score", f"{record['rad_score']:.3f}"], ["Label", record["label"]],
            ["Cutoff (Youden, training)", f"{record['cutoff']:.3f}"], ["Lesion kind", record["kind"]],
            ["ROI", record["roi_source"]], ["ROI pixels", str(record["roi_pixels"])]]
    return rows + [[f"Contribution: {plain_feature_name(item['feature'])}", f"{item['score_change']:+.3f}"]
                   for item in record.get("top_features") or []]


def roi_colour(kind: str) -> tuple[int, int, int]:
    """The ROI's outline colour: its segment's, as the station shows it."""
    return tuple(round(255 * c) for c in MAMMO_SEGMENTS[kind].color)


def header_fields(meta: dict) -> dict:
    """The DICOM header fields `presentation` reads (laterality, view, photometric interpretation, window) from a
    mammogram's `meta` (`images.load_mammogram`)."""
    window = meta.get("display") if isinstance(meta.get("display"), dict) else {}
    return {"ImageLaterality": meta.get("laterality") or "", "ViewPosition": meta.get("view") or "",
            "photometric": meta.get("photometric") or "",
            **({"window": [window["window_center"], window["window_width"]]} if window else {})}


def size_text(cols: int, rows: int, spacing: tuple[float, float], known: bool, assumed_mm: float | None) -> str:
    """A region's size: in mm at the pixel size (`spacing`: column, row mm) when the file or the reader gave it; else
    in pixels, with its size at the pixel size the segmenter assumed (`assumed_mm`) when it assumed one."""
    if known:
        return f"{cols * spacing[0]:.0f} × {rows * spacing[1]:.0f} mm"
    about = (f"; about {cols * assumed_mm:.0f} × {rows * assumed_mm:.0f} mm at the {assumed_mm:.2g} mm the segmenter "
             "assumed") if assumed_mm else ""
    return f"{cols} × {rows} pixels (the file records no pixel size{about})"


def hung_figures(pixels: np.ndarray, outlines: list[tuple], caption: ViewCaption, preset: Preset,
                 spacing: tuple[float, float], known: bool, assumed_mm: float | None = None) -> list[Figure]:
    """The mammogram (rows, cols) with its outlines ((mask, RGB[, DASHED]), `overlays.outlined_rgb`), whole in the
    `preset`'s window and enlarged around the outlines in the crop's own range, mirrored when `caption` hangs it so;
    `spacing`: (column, row) mm; `known`, `assumed_mm`: as `size_text` takes them. The station's report and the
    command line's draw the same figures."""
    if caption.mirrored:  # hung as radiologists hang it (chest wall right for a right breast)
        pixels = pixels[:, ::-1]
        outlines = [(mask[:, ::-1], *style) for mask, *style in outlines]
    aspect = spacing[1] / spacing[0]
    note = "; ".join(filter(None, [caption.note, f"{preset.name}: {preset.detail}"]))
    window = window_bounds(preset) if preset.window is not None else window_of(pixels)
    shown = [Figure(f"{caption.title}: whole image", figure_png(pixels, outlines, window, aspect=aspect), note)]
    union = np.any([mask for mask, *_ in outlines], axis=0) if outlines else np.zeros(pixels.shape, bool)
    if union.any():
        rows, cols = np.nonzero(union)
        size = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
        margin = max(round(ZOOM_MARGIN * size), ZOOM_MIN_PX)
        r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin + 1, pixels.shape[0])
        c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin + 1, pixels.shape[1])
        crop = pixels[r0:r1, c0:c1]
        shown.append(Figure(f"{caption.title}: ROI enlarged",
                            figure_png(crop, [(m[r0:r1, c0:c1], *style) for m, *style in outlines],
                                       window_of(crop), aspect=aspect),
                            f"{size_text(c1 - c0, r1 - r0, spacing, known, assumed_mm)} around the ROI; window: "
                            "the crop's own range"))
    return shown


def figures(mammogram: Mammogram, roi: np.ndarray, colour: tuple[int, int, int], assumed_mm: float | None
            ) -> list[Figure]:
    """The mammogram with the ROI's outline, hung and windowed as the station shows it, whole and enlarged."""
    pixels = np.asarray(mammogram.pixels, np.float32)
    header = header_fields(mammogram.meta)
    return hung_figures(pixels, [(np.asarray(roi, bool), colour)],
                        mammo_caption(header, mammogram.path.name, pixels), presets("MG", pixels, header)[0],
                        mammogram.image.GetSpacing()[:2], mammogram.pixel_size_known, assumed_mm)


def pixel_size_text(meta: dict, assumed_mm: float | None) -> str:
    """The header's pixel size: as the file or the reader gave it, else what each model read it as."""
    spacing = meta.get("pixel_size_mm") or []
    shown = " × ".join(f"{v:.3g}" for v in spacing)
    if meta.get("pixel_size_source") != PIXEL_SIZE_UNKNOWN:
        return f"{shown} mm ({meta.get('pixel_size_source', 'source not recorded')})"
    assumed = f"; the segmenter assumed {assumed_mm:.2g} mm from the image size" if assumed_mm else ""
    return f"not recorded in the file: the classifier's features read it as {shown} mm{assumed}"


def report_page(mammogram: Mammogram, roi: np.ndarray, record: dict, explain: Explainer) -> CaseReport:
    """The report of a `mammo predict` result record."""
    meta = record.get("image") or {}
    assumed_mm = record.get("segmenter_pixel_mm")
    header = report_header({"Modality": meta.get("modality"), "Laterality": meta.get("laterality"),
                            "View": meta.get("view"),
                            "Pixel size": meta.get("pixel_size_mm") and pixel_size_text(meta, assumed_mm)})
    return record_report("Mammography Rad-score", "MammoRadiomics", "mammo predict",
                         f"Rad-score {record['rad_score']:.3f} ({record['label']})", record, explain,
                         result_rows(record), figures(mammogram, roi, roi_colour(record["kind"]), assumed_mm),
                         legend=[(f"{MAMMO_SEGMENTS[record['kind']].name} ROI ({record['roi_source']})",
                                  roi_colour(record["kind"]))],
                         header=header, roi=record["roi_source"])
