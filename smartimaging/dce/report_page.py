"""The case report (`report.html`) of a `dce synthesize` result: the similarity to the real DCE when one was given
(SSIM, PSNR, MAE, MSE, Pearson r, the enhancing regions' contrast ratios), and the T1, synthetic DCE and real DCE
slices through the most enhancing region (else the middle slice) with the subtraction MIP (`record_report`)."""

from __future__ import annotations

import SimpleITK as sitk

from ..record_report import AXIAL_EDGES, Explainer, aspect, lps, on_grid, record_report
from ..report import CaseReport, Figure, figure_png, window_of


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


def figures(t1: sitk.Image, synthetic: sitk.Image, real_dce: sitk.Image | None, mip: sitk.Image,
            record: dict) -> list[Figure]:
    """T1, synthetic and real DCE (on the T1's grid) on the T1's axial slice through the most enhancing region of
    the real DCE (its centre voxel, i j k on the T1 grid), else the middle one; the subtraction MIP."""
    grid = lps(t1)
    regions = (record.get("lesion_contrast") or {}).get("regions") or []
    k = grid.GetSize()[2] // 2
    where = "axial slice {} of {} (the middle)"
    if regions:
        point = t1.TransformIndexToPhysicalPoint([int(v) for v in regions[0]["centre_voxel"]])
        k = grid.TransformPhysicalPointToIndex(point)[2]
        where = "axial slice {} of {} (through the most enhancing region of the real DCE)"
    shown = []
    for title, volume in (("T1 (pre-contrast)", t1), ("Synthetic DCE (AI)", synthetic), ("Real DCE", real_dce)):
        if volume is not None:
            image = on_grid(volume, grid)
            shown.append(Figure(title, figure_png(image[k], [], window_of(image), aspect=aspect(grid)),
                                where.format(k + 1, image.shape[0]), AXIAL_EDGES))
    mip = lps(mip)
    image = sitk.GetArrayFromImage(mip)
    shown.append(Figure("Subtraction MIP (synthetic − T1)", figure_png(image.max(axis=0), [], window_of(image),
                                                                       aspect=aspect(mip)),
                        "maximum over all slices", AXIAL_EDGES))
    return shown


def report_page(t1: sitk.Image, synthetic: sitk.Image, real_dce: sitk.Image | None, mip: sitk.Image, record: dict,
                explain: Explainer) -> CaseReport:
    """The report of a `dce synthesize` result record (`real_dce`: on the T1's grid, None when not given)."""
    metrics = record.get("metrics")
    headline = (f"Synthetic DCE: SSIM {metrics['ssim_mean']:.3f} vs real DCE" if metrics else
                "Synthetic DCE ready (no real DCE to compare with)")
    return record_report("Synthetic DCE", "DCESynthesis", "dce synthesize", headline, record, explain,
                         result_rows(record), figures(t1, synthetic, real_dce, mip, record))
