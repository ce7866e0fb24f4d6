"""The case report (`report.html`) of a `dce synthesize` result: the similarity to the real DCE when one was given
(SSIM, PSNR, MAE, MSE, Pearson r, the enhancing regions' contrast ratios), and the T1, synthetic DCE and real DCE
slices through the most enhancing region (else the middle slice) with the subtraction MIP (`record_report`)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..record_report import AXIAL_EDGES, Explainer, aspect, lps, on_grid, record_report
from ..report import CaseReport, Figure, figure_png, window_of
from .lesion_contrast import REGION_KINDS, region_name

REGION_FIGURES = ("Synthetic DCE (AI)", "Real DCE")  # outlined as on the station's views


def result_rows(record: dict) -> list[list[str]]:
    """The result table (quantity, value) of a synthesis record, as the station's."""
    rows = [["Slices", str(record["slices"])], ["Output intensities", record["output_units"]],
            ["Model", f"{record['model']['id']} {record['model']['version']}"]]
    metrics = record.get("metrics")
    if metrics is None:
        return [["Real DCE", "not given: no similarity metrics"], *rows]
    regions = (record.get("lesion_contrast") or {}).get("regions") or []
    return [["SSIM (mean of slices)", f"{metrics['ssim_mean']:.3f}"],
            *([f"Enhancing region {number}: contrast synthetic / real",
               "no real contrast" if m["ratio"] is None else f"{m['ratio']:.2f}"]
              for number, m in enumerate(regions, start=1)),
            ["PSNR (dB, mean of slices)", f"{metrics['psnr_mean']:.2f}"], ["MAE", f"{metrics['mae']:.4f}"],
            ["MSE", f"{metrics['mse']:.5f}"], ["Pearson r", f"{metrics['pearson_r']:.3f}"],
            ["Intensity range", "[0, 1] per volume (minimum .. 99.9th percentile)"], *rows]


def _rgb(colour) -> tuple[int, int, int]:
    return tuple(round(255 * c) for c in colour)


def region_legend(record: dict) -> list[tuple[str, tuple[int, int, int]]]:
    """(name, RGB) of each enhancing region of the real DCE, the station's names and colours (cyan: shows on the
    synthetic DCE, magenta: faint on it)."""
    regions = (record.get("lesion_contrast") or {}).get("regions") or []
    return [(region_name(number, m), _rgb(REGION_KINDS[m["faint"]][1])) for number, m in enumerate(regions, start=1)]


def region_overlay(labels: np.ndarray | None, record: dict) -> tuple[list, list]:
    """(outlines, numbers) of the enhancing regions on one axial slice (`labels`: rows x cols, region n = n; None:
    none): each region outlined in its colour and numbered beside it, as the result table's rows."""
    if labels is None:
        return [], []
    outlines, numbers = [], []
    for number, (_, colour) in enumerate(region_legend(record), start=1):
        mask = labels == number
        if mask.any():
            rows, cols = np.nonzero(mask)
            outlines.append((mask, colour))
            numbers.append((float(rows.mean()), float(cols.max()), str(number), colour))
    return outlines, numbers


def slice_through_regions(t1: sitk.Image, grid: sitk.Image, record: dict) -> tuple[int, str]:
    """(axial slice k of `grid` (the T1 in LPS), its description): through the most enhancing region of the real DCE
    (its centre voxel, i j k on the T1 grid), else the middle one."""
    regions = (record.get("lesion_contrast") or {}).get("regions") or []
    if regions and len(regions[0].get("centre_voxel") or []) == 3:
        point = t1.TransformIndexToPhysicalPoint([int(v) for v in regions[0]["centre_voxel"]])
        return (grid.TransformPhysicalPointToIndex(point)[2],
                "axial slice {} of {} (through the most enhancing region of the real DCE)")
    return grid.GetSize()[2] // 2, "axial slice {} of {} (the middle)"


def figures(t1: sitk.Image, synthetic: sitk.Image, real_dce: sitk.Image | None, mip: sitk.Image,
            record: dict, regions: sitk.Image | None = None) -> list[Figure]:
    """T1, synthetic and real DCE (on the T1's grid) on the T1's axial slice through the most enhancing region of
    the real DCE (`slice_through_regions`), the synthetic and real DCE with the enhancing regions outlined and
    numbered (`regions`: their labels on the T1's grid); the subtraction MIP."""
    grid = lps(t1)
    k, where = slice_through_regions(t1, grid, record)
    outlines, numbers = region_overlay(on_grid(regions, grid, nearest=True)[k] if regions is not None else None,
                                       record)
    shown = []
    for title, volume in (("T1 (pre-contrast)", t1), ("Synthetic DCE (AI)", synthetic), ("Real DCE", real_dce)):
        if volume is not None:
            image = on_grid(volume, grid)
            outlined = title in REGION_FIGURES
            shown.append(Figure(title, figure_png(image[k], outlines if outlined else [], window_of(image),
                                                  aspect=aspect(grid), labels=numbers if outlined else ()),
                                where.format(k + 1, image.shape[0])
                                + ("; enhancing regions of the real DCE outlined and numbered" if outlined and outlines
                                   else ""), AXIAL_EDGES))
    mip = lps(mip)
    image = sitk.GetArrayFromImage(mip)
    shown.append(Figure("Subtraction MIP (synthetic − T1)", figure_png(image.max(axis=0), [], window_of(image),
                                                                       aspect=aspect(mip)),
                        "maximum over all slices", AXIAL_EDGES))
    return shown


def report_page(t1: sitk.Image, synthetic: sitk.Image, real_dce: sitk.Image | None, mip: sitk.Image, record: dict,
                explain: Explainer, regions: sitk.Image | None = None) -> CaseReport:
    """The report of a `dce synthesize` result record (`real_dce`: on the T1's grid, None when not given;
    `regions`: its enhancing regions' labels on the T1's grid)."""
    metrics = record.get("metrics")
    headline = (f"Synthetic DCE: SSIM {metrics['ssim_mean']:.3f} vs real DCE" if metrics else
                "Synthetic DCE ready (no real DCE to compare with)")
    return record_report("Synthetic DCE", "DCESynthesis", "dce synthesize", headline, record, explain,
                         result_rows(record), figures(t1, synthetic, real_dce, mip, record, regions),
                         legend=region_legend(record))
