"""The case report (`report.html`) of an `lvi predict` result: the LVI probability of each model and the fused one
with their cutoffs and labels, and the axial slice through the VOI's largest extent of each sequence with the VOI's
outline and each model's Grad-CAM (`record_report`)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..record_report import AXIAL_EDGES, HEAT_FROM, Explainer, aspect, lps, on_grid, rainbow, record_report
from ..report import CaseReport, Figure, figure_png, window_of
from ..segments import BREAST_MASS

COLUMNS = ("Sequence", "Model", "LVI probability", "Cutoff", "Label", "Model card")
CAPTIONS = {"DCE": "DCE", "T2": "FS-T2WI"}
VOI_COLOUR = tuple(round(255 * c) for c in BREAST_MASS.color)
ONE_MODEL = "one model alone (no fusion)"  # a record's fused method when one network ran (a cohort's model)


def is_fused(record: dict) -> bool:
    """Whether a record's "fused" result combines models (or a fitted fusion's inputs): not one network alone."""
    return (record.get("fused") or {}).get("method") != ONE_MODEL


def result_rows(record: dict) -> list[list[str]]:
    """The result table of a record (`LVIPrediction.as_json`): one row per model, then the fused one (none when one
    network ran alone: its row is the result)."""
    rows = [[m["sequence"], m["network"], f"{m['probability']:.3f}", f"{m['cutoff']:.3f}", m["label"],
             f"{m['model']['id']} {m['model']['version']}"] for m in record["models"]]
    fused = record["fused"]
    return rows + ([["fused", fused["method"], f"{fused['probability']:.3f}", f"{fused['cutoff']:.3f}",
                     fused["label"], ""]] if is_fused(record) else [])


def figures(volumes: dict[str, sitk.Image], voi: sitk.Image, record: dict,
            heat_maps: dict[str, sitk.Image]) -> list[Figure]:
    """Each sequence's axial slice through the VOI's largest extent, on the first sequence's grid, with the VOI's
    outline, then the Grad-CAM of each model of that sequence (`heat_maps`: model id -> map on its sequence's
    grid)."""
    reference_name, reference = next(iter(volumes.items()))
    grid = lps(reference)
    mask = on_grid(voi, grid, nearest=True) > 0
    k = int(np.argmax(mask.sum(axis=(1, 2)))) if mask.any() else grid.GetSize()[2] // 2
    shown = []
    for sequence, volume in volumes.items():
        image = on_grid(volume, grid)
        window = window_of(image)
        where = f"axial slice {k + 1} of {image.shape[0]} (the VOI's largest)" + (
            "" if sequence == reference_name else f", resampled onto the {CAPTIONS[reference_name]} grid")
        shown.append(Figure(f"{CAPTIONS[sequence]} with the VOI", figure_png(
            image[k], [(mask[k], VOI_COLOUR)], window, aspect=aspect(grid)), where, AXIAL_EDGES))
        for model in record["models"]:
            if model["sequence"] == sequence:
                heat = on_grid(heat_maps[model["model"]["id"]], grid)
                shown.append(Figure(f"{CAPTIONS[sequence]}: Grad-CAM of {model['model']['id']}", figure_png(
                    image[k], [], window, aspect=aspect(grid), heat=heat[k], heat_colours=rainbow(),
                    heat_from=HEAT_FROM), where, AXIAL_EDGES))
    return shown


def report_page(volumes: dict[str, sitk.Image], voi: sitk.Image, heat_maps: dict[str, sitk.Image], record: dict,
                explain: Explainer) -> CaseReport:
    """The report of an `lvi predict` result record."""
    fused = record["fused"]
    colours = rainbow()
    return record_report("Breast MRI LVI", "BreastLVI", "lvi predict",
                         f"LVI probability {fused['probability']:.3f} ({fused['label']})", record, explain,
                         result_rows(record), figures(volumes, voi, record, heat_maps), columns=COLUMNS,
                         legend=[("Lesion VOI (the reader's, --voi)", VOI_COLOUR)],
                         heat_colours=colours[round(HEAT_FROM * (len(colours) - 1)):],
                         roi="the reader's VOI (--voi)")
