"""A reading flow's current result as files that leave the tool: the per-case report (`report.py`: HTML with the
images and their overlays, printable to PDF) and the result table as CSV, for every module; the station's downloads
and the desktop modules call these.

Only the current result is exported: none, or one computed from a segmentation edited since, is refused. The
report holds no patient identifier: the image header comes from the patient-free header panel (`display`), figure
titles from the view captions, never from file or node names (a file name may hold the patient's name).
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from . import __version__
from .display import header_rows, presets, read_header, source_of, volume_captions
from .errors import InputError
from .explain import plain_domain, record_of, shown_rows
from .io import atomic_files
from .mrml import remove_temporary_labelmap, volume_node_to_sitk
from .overlays import DASHED
from .reading import HEAT_MAP_SHOWN_FROM, heat_map_colours, is_warning_row, style_heat_map, table_rows
from .record_report import AXIAL_EDGES, aspect, lps, models_of, on_grid
from .report import CaseReport, Figure, created_text, figure_png, render_html, report_header, window_of
from .result_csv import csv_rows
from .result_nodes import DOMAIN_ROW
from .segmentation_nodes import AI_REFERENCE, PROPOSAL_COLOR

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting so as a formula
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def current_result(flow):
    """The flow's result, refused when there is none or it is stale (the segmentation was edited since)."""
    if flow.result is None:
        raise InputError(f"{flow.title}: compute a result first; there is nothing to export")
    if flow.result_is_stale:
        raise InputError(f"{flow.title}: the segmentation was edited after this result; compute again before "
                         "exporting it")
    return flow.result


def export_report(flow, folder, created: datetime | None = None) -> Path:
    """`<module>_report.html` in `folder`: the current result's case report (written whole or not at all)."""
    html_text = render_html(case_report(flow, created))
    path = Path(folder) / f"{flow.module}_report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_files(path) as (temporary,):
        temporary.write_text(html_text, encoding="utf-8")
    return path


def export_csv(flow, folder) -> Path:
    """`<module>_result.csv` in `folder`: the current result's table as the scene holds it (every row, the raw
    feature names included) and its domain check in full (`result_csv.csv_rows`); a text cell a spreadsheet would
    run as a formula is prefixed with '."""
    result = current_result(flow)
    path = Path(folder) / f"{flow.module}_result.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_files(path) as (temporary,), open(temporary, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([spreadsheet_safe(c) for c in result.columns])
        writer.writerows([spreadsheet_safe(cell) for cell in row]
                         for row in csv_rows(result.columns, result.rows, result.domain, result.comparison))
    return path


def spreadsheet_safe(value) -> str:
    """A CSV cell that a spreadsheet shows as text: one starting with =, +, -, @ (or a tab or return) gets a leading
    ' unless it is a plain number ("-0.105")."""
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_START) and not NUMBER.fullmatch(text) else text


def case_report(flow, created: datetime | None = None) -> CaseReport:
    """The report of a flow's current result."""
    result = current_result(flow)
    nodes = [result.table_node, *flow.extra_nodes.values()]
    record = record_of(flow.module, nodes) or {}
    rows = [row for row in result.rows if not is_warning_row(row) and row[0] != DOMAIN_ROW
            and row[:2] not in result.comparison]
    figures, legend, heat = FIGURES[flow.module](flow, record)
    tables = [(name[:1].upper() + name[1:], *table_rows(node)) for name, node in flow.extra_nodes.items()
              if node is not None and node.IsA("vtkMRMLTableNode")]
    created = created or datetime.now().astimezone()
    version = str(record.get("smartimaging_version") or __version__)
    provenance = [("SmartImaging", __version__ + ("" if version == __version__ else
                                                 f" (the result was computed with {version})")),
                  ("Computed on", str(record.get("device") or flow.device)),
                  ("ROI", result.roi_source or ("no ROI: the whole volume" if not flow.needs_segment else
                                                "not recorded")),
                  ("Report created", created_text(created))]
    flags = [e for e in result.explanations if e.get("tone") == "warning" and e.get("summary")
             and not str(e.get("key", "")).startswith("card")]  # as the station flags them under the score
    warnings = [*result.warnings, *(f"{e['title']}. {e['summary']}" for e in flags)]
    sublines = [e["title"] for e in result.explanations if e.get("key") == "cutoff"]
    sublines += [f"ROI of this result: {result.roi_source}"] if result.roi_source else []
    return CaseReport(title=flow.title, module=flow.module, headline=result.headline, created=created,
                      sublines=sublines,
                      domain=plain_domain(result.domain), warnings=warnings, columns=result.columns,
                      rows=shown_rows(rows)[0], comparison=result.comparison, tables=tables,
                      header=report_header(dict(header_rows(flow.primary))), figures=figures, legend=legend,
                      heat_colours=heat,
                      explanations=list(result.explanations), models=models_of(record), provenance=provenance)


# ---- masks and slices ---------------------------------------------------------------------------------------------

def _rgb(colour) -> tuple[int, int, int]:
    return tuple(int(round(255 * float(c))) for c in colour[:3])


def segment_masks(scene, segmentation_node, volume_node) -> list[tuple[str, tuple[int, int, int], np.ndarray]]:
    """(name, RGB, boolean (k, j, i) array on the volume's grid) of each segment of a segmentation."""
    segmentation = segmentation_node.GetSegmentation()
    masks = []
    labelmap_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            ids = vtk.vtkStringArray()
            ids.InsertNextValue(segmentation.GetNthSegmentID(index))
            if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                    segmentation_node, ids, labelmap_node, volume_node):
                continue
            masks.append((segment.GetName(), _rgb(segment.GetColor()),
                          np.array(slicer.util.arrayFromVolume(labelmap_node) > 0)))
    finally:
        remove_temporary_labelmap(scene, labelmap_node)
    return masks


def roi_outlines(flow, segmentation, volume) -> tuple[list[tuple], list[tuple[str, tuple]]]:
    """The outlines to draw on `volume`, in drawing order ((mask (k, j, i), RGB[, DASHED]), `overlays.outlined_rgb`)
    and their legend: the AI's proposal when the reader edited it, green, dashed outside its outline, then the
    reader's segments in their colours, solid inside theirs: where the two coincide both stay visible."""
    outlines, legend = [], []
    if segmentation is None:
        return outlines, legend
    edited = "edited" in (flow.result.roi_source or "") or "drawn" in (flow.result.roi_source or "")
    who = "reader's ROI" if edited else (flow.result.roi_source or "ROI")
    ai = segmentation.GetNodeReference(AI_REFERENCE) if edited else None
    if ai is not None and flow.scene.IsNodePresent(ai):
        green = _rgb(PROPOSAL_COLOR)
        outlines += [(mask, green, DASHED) for _, _, mask in segment_masks(flow.scene, ai, volume)]
        legend.append(("AI proposal, before the reader's edits (dashed, just outside its outline)", green))
    for name, colour, mask in segment_masks(flow.scene, segmentation, volume):
        outlines.append((mask, colour))
        legend.append((f"{name} ({who}, solid, just inside its outline)" if ai is not None else f"{name} ({who})",
                       colour))
    return outlines, legend


def _mask_image(mask: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(like)
    return image


# ---- figures of each module ----------------------------------------------------------------------------------------

def _bonescan_figures(flow, record):
    from .bonescan import scene as bonescan_scene
    from .bonescan.report_page import REJECTED, lesion_labels

    rejected = record.get("excluded_lesions") or []
    rejected_masks = [None] * len(flow.scan_volumes)
    if rejected:  # outlined grey, dashed, instead of red and labelled "rejected", as the station's views mark them
        study = bonescan_scene.study_from_volume_nodes(flow.scan_volumes, flow.view_names or None)
        labels = [bonescan_scene.labels_from_segmentation(flow.scene, segmentation, volume)
                  for segmentation, volume in zip(flow.segmentations, flow.scan_volumes, strict=True)]
        counted = bonescan_scene.without_rejected(study, labels, rejected)
        rejected_masks = [(all_labels == 1) & (kept != 1) for all_labels, kept in zip(labels, counted, strict=True)]
    figures, legend = [], []
    frame = 0
    for volume, segmentation, rejected_mask in zip(flow.scan_volumes, flow.segmentations + [None] * 2,
                                                   rejected_masks, strict=False):
        pixels = np.asarray(slicer.util.arrayFromVolume(volume), np.float32)
        outlines, legend = roi_outlines(flow, segmentation, volume)
        if rejected_mask is not None:  # the reader's solid outlines leave the rejected lesions out
            outlines = [item if item[2:] else (item[0] & ~rejected_mask, item[1]) for item in outlines]
            outlines.append((rejected_mask, REJECTED[1], DASHED))
            legend.append(REJECTED)
        spacing = volume.GetSpacing()
        for k, caption in enumerate(volume_captions(flow.module, volume)):
            preset = presets("NM", pixels[k])[0]
            view = flow.view_names[frame] if frame < len(flow.view_names) else ""
            png = figure_png(pixels[k], [(mask[k], *style) for mask, *style in outlines],
                             (preset.level - preset.window / 2, preset.level + preset.window / 2), preset.invert,
                             spacing[1] / spacing[0], labels=lesion_labels(record, view))
            figures.append(Figure(caption.title, png, "; ".join(filter(None, [
                caption.note, f"analysed as the {view} view" if view else "", f"{preset.name}: {preset.detail}",
                "lesion numbers as in the lesion table"])), caption.edges or {}))
            frame += 1
    return figures, legend, []


def _mammo_figures(flow, record):
    """The mammogram hung and windowed as the views show it, whole and enlarged (`mammo.report_page.hung_figures`,
    as the command line's report draws it)."""
    from .mammo.report_page import hung_figures
    from .mammo.scene import mammogram_from_volume_node

    volume = flow.primary
    pixels = np.asarray(slicer.util.arrayFromVolume(volume), np.float32)[0]
    outlines, legend = roi_outlines(flow, flow.segmentation, volume)
    figures = hung_figures(pixels, [(mask[0], *style) for mask, *style in outlines],
                           volume_captions(flow.module, volume)[0],
                           presets("MG", pixels, read_header(source_of(volume)))[0], volume.GetSpacing()[:2],
                           mammogram_from_volume_node(volume).pixel_size_known, record.get("segmenter_pixel_mm"))
    return figures, legend, []


def _heat_table(node) -> list[str]:
    """The heat map's colours (#rrggbb) over [0, 1] as the views show them."""
    style_heat_map(node)
    return heat_map_colours(node, np.linspace(0, 1, 64))


def _lvi_figures(flow, record):
    reference = volume_node_to_sitk(flow.primary)
    grid = lps(reference)
    outlines, legend = roi_outlines(flow, flow.segmentation, flow.primary)
    outlines = [(on_grid(_mask_image(mask, reference), grid, nearest=True), *style) for mask, *style in outlines]
    union = np.any([m for m, *_ in outlines], axis=0) if outlines else np.zeros(sitk.GetArrayViewFromImage(grid).shape)
    k = int(np.argmax(union.sum(axis=(1, 2)))) if union.any() else grid.GetSize()[2] // 2
    sequences = {"DCE": flow.volumes.get("DCE"), "T2": flow.volumes.get("T2")}
    captions = {"DCE": "DCE", "T2": "FS-T2WI"}
    maps = {str(m.get("sequence")): m["model"]["id"] for m in record.get("models") or []
            if isinstance(m, dict) and isinstance(m.get("model"), dict)}
    figures, colours = [], []
    for sequence, node in sequences.items():
        if node is None:
            continue
        image = on_grid(volume_node_to_sitk(node), grid)
        window = window_of(image)
        where = f"axial slice {k + 1} of {image.shape[0]} (the ROI's largest)" + (
            "" if node is flow.primary else f", resampled onto the {captions[flow.roles[0]]} grid")
        figures.append(Figure(f"{captions[sequence]} with the ROI", figure_png(
            image[k], [(m[k], *style) for m, *style in outlines], window, aspect=aspect(grid)), where, AXIAL_EDGES))
        heat_node = flow.extra_nodes.get(f"Grad-CAM {maps.get(sequence)}")
        if heat_node is not None:
            colours = _heat_table(heat_node)
            heat = on_grid(volume_node_to_sitk(heat_node), grid)
            figures.append(Figure(f"{captions[sequence]}: Grad-CAM of {maps[sequence]}", figure_png(
                image[k], [], window, aspect=aspect(grid), heat=heat[k], heat_colours=colours,
                heat_from=HEAT_MAP_SHOWN_FROM), where, AXIAL_EDGES))
    return figures, legend, colours[round(HEAT_MAP_SHOWN_FROM * (len(colours) - 1)):]


def _dce_figures(flow, record):
    """The command line's DCE figures (`dce.report_page.figures`) from the scene's volumes: the enhancing regions
    outlined and numbered as on the station's views."""
    from .dce.report_page import figures, region_legend

    t1 = volume_node_to_sitk(flow.primary)
    regions = None
    if flow.regions is not None:  # its segments in the regions' order (`dce.scene.add_regions`)
        labels = np.zeros(sitk.GetArrayViewFromImage(t1).shape, np.uint8)
        for number, (_, _, mask) in enumerate(segment_masks(flow.scene, flow.regions, flow.primary), start=1):
            labels[mask] = number
        regions = _mask_image(labels, t1)
    real = flow.volumes.get("DCE")
    return figures(t1, volume_node_to_sitk(flow.extra_nodes["synthetic"]),
                   volume_node_to_sitk(real) if real is not None else None,
                   volume_node_to_sitk(flow.extra_nodes["mip"]), record, regions), region_legend(record), []


FIGURES = {"BoneScanBSTBI": _bonescan_figures, "MammoRadiomics": _mammo_figures, "BreastLVI": _lvi_figures,
           "DCESynthesis": _dce_figures}
