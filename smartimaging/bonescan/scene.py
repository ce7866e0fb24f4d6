"""MRML adapter of BoneScanBSTBI: takes a vtkMRMLScene and nodes (never widgets).

- `segment`: the AI segmentation node of each volume ("Bone metastasis", "Urinary bladder", coded by terminology),
  kept as AI;
- the reader edits `segmentation_nodes.editable_copy` of it, so AI and edited segments stay apart;
- `compute_bstbi`: BSTBI per sub-image + mean into a table node, from the (edited) segmentation, with provenance
  and Dice AI-vs-edited;
- `compare`: baseline vs follow-up table.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk

from .. import __version__
from ..errors import InputError
from ..mrml import (
    fill_table,
    get_json_attribute,
    place_in_same_study,
    set_json_attribute,
    volume_node_to_sitk,
    write_for_worker,
)
from ..segmentation_nodes import edit_check, segmentation_from_labels
from ..segmentation_nodes import labels_from_segmentation as labels_of_segments
from ..segments import BONESCAN_SEGMENTS
from .bstbi import bstbi_change
from .lesions import count_rows, exclude_lesions, lesion_components, review
from .outputs import source_labelmaps
from .pipeline import BoneScanModels, BoneScanResult, analyse, pixel_spacing, recompute_from_labelmaps
from .views import BoneScanStudy, study_from_images

RESULT = "SmartImaging.BoneScanResult"


def study_from_volume_nodes(volume_nodes: list, view_names: list[str] | None = None) -> BoneScanStudy:
    """Bone-scan study from scalar volume nodes (one per view, or one node with two frames); white-background
    exports with dark uptake are detected and inverted, as for files."""
    if not volume_nodes or any(node is None for node in volume_nodes):
        raise InputError("Select the bone-scan volume(s) first")
    images = [volume_node_to_sitk(node) for node in volume_nodes]
    paths = [Path(node.GetName()) for node in volume_nodes]
    return study_from_images(images, paths, view_names=view_names)


def labels_from_segmentation(scene, segmentation_node, volume_node) -> np.ndarray:
    """(k, j, i) bone-scan label array (1 metastasis, 2 bladder) on the volume's grid."""
    return labels_of_segments(scene, segmentation_node, volume_node, BONESCAN_SEGMENTS)


def _labelmaps_by_view(study: BoneScanStudy, per_source: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {v.name: per_source[v.source][v.frame] for v in study.views}


def without_rejected(study: BoneScanStudy, per_source: list[np.ndarray], rejected: list[int]) -> list[np.ndarray]:
    """The (frames, rows, cols) label arrays of each source with the lesions the reader rejected (their numbers, as
    `lesion_components` numbers the lesions of these labels) set to background: the segmentation BSTBI counted."""
    if not rejected:
        return per_source
    by_view = _labelmaps_by_view(study, per_source)
    kept = exclude_lesions(by_view, lesion_components(by_view, {v.name: v.counts for v in study.views},
                                                       pixel_spacing(study)), rejected)
    counted = [labels.copy() for labels in per_source]
    for view in study.views:
        counted[view.source][view.frame] = kept[view.name]
    return counted


def add_ai_segmentations(scene, volume_nodes: list, per_source_labels: list[np.ndarray], result_json: dict) -> list:
    """One AI segmentation node per volume from label arrays, with the analysis result attached."""
    nodes = []
    for volume_node, labels in zip(volume_nodes, per_source_labels, strict=True):
        node = segmentation_from_labels(scene, volume_node, labels, BONESCAN_SEGMENTS,
                                        f"{volume_node.GetName()} AI segmentation", "AI")
        set_json_attribute(node, RESULT, result_json)
        nodes.append(node)
    return nodes


def segment(scene, volume_nodes: list, models: BoneScanModels, view_names: list[str] | None = None) -> list:
    """Run the networks in this process; the AI segmentation node of each volume, the networks' result (probabilities,
    BSTBI, models) in its RESULT attribute."""
    study = study_from_volume_nodes(volume_nodes, view_names)
    result = analyse(study, models)
    labels = source_labelmaps(study, result.labelmaps)
    return add_ai_segmentations(scene, volume_nodes, labels, result.as_json())


def write_volumes_for_worker(volume_nodes: list, folder: Path) -> list[Path]:
    """Save volume nodes as NRRD (geometry in LPS) for the worker process."""
    return [write_for_worker(node, folder) for node in volume_nodes]


def import_worker_result(scene, volume_nodes: list, event: dict) -> list:
    """AI segmentation nodes from a worker's 'result' event (label NRRD per input + result JSON)."""
    labels = [sitk.GetArrayFromImage(sitk.ReadImage(path)) for path in event["labels"]]
    return add_ai_segmentations(scene, volume_nodes, labels, event["result"])


def compute_bstbi(scene, volume_nodes: list, segmentation_nodes: list, exclude: list[int] | None = None,
                  table_node=None, view_names: list[str] | None = None, unrecorded_views: list[str] = ()) -> tuple:
    """BSTBI from the given (AI or edited) segmentations into a table node; returns (table node, result);
    `unrecorded_views`: the `view_names` the file does not record (named by default)."""
    if len(segmentation_nodes) != len(volume_nodes):
        raise InputError("Give one segmentation per bone-scan volume")
    started = time.perf_counter()
    study = study_from_volume_nodes(volume_nodes, view_names)
    study.unrecorded_views = [name for name in unrecorded_views if name in (view_names or [])]

    def labelmaps_of(nodes) -> dict[str, np.ndarray]:
        per_source = [labels_from_segmentation(scene, seg, vol) for seg, vol in zip(nodes, volume_nodes, strict=True)]
        return _labelmaps_by_view(study, per_source)

    def masks_of(nodes) -> dict[str, np.ndarray]:
        labelmaps = labelmaps_of(nodes)
        return {spec.name: np.concatenate([(labels == spec.label).ravel() for labels in labelmaps.values()])
                for spec in BONESCAN_SEGMENTS}

    result = recompute_from_labelmaps(study, labelmaps_of(segmentation_nodes), exclude)
    edited, dices = edit_check(segmentation_nodes, masks_of)
    result.reader_edited = edited or bool(result.excluded_lesions)  # a rejected lesion changes the AI's result too
    result.edit_dice = dices or {}
    ai_result = get_json_attribute(segmentation_nodes[0], RESULT, {})
    result.metastasis_probability = ai_result.get("metastasis_probability")
    result.threshold = ai_result.get("threshold")  # the classifier card's cutoff the networks' result was read at
    result.bladder_probability = ai_result.get("bladder_probability")
    result.models = ai_result.get("models", [])
    if "domain" in ai_result:
        result.domain = ai_result["domain"]
    result.timings = {"bstbi": time.perf_counter() - started}
    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{volume_nodes[0].GetName()} BSTBI")
        place_in_same_study(scene, table_node, volume_nodes[0])
    write_result_table(table_node, result)
    return table_node, result


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_result_table(table_node, result: BoneScanResult) -> None:
    """Rows 'Quantity | Value': BSTBI per sub-image and mean, probabilities, lesions, edit state; provenance in
    the node's attributes."""
    rows = [[f"BSTBI {name}", _fmt(value)] for name, value in result.bstbi["per_subimage"].items()]
    rows.append(["BSTBI (mean)", _fmt(result.bstbi["mean"])])
    rows.append(["Metastasis probability", _fmt(result.metastasis_probability)])
    rows += [["Classifier", f"{model['id']} {model['version']}"] for model in result.models[:1]]
    rows.append(["Domain check", result.domain["text"]])
    rows.append(["Urinary bladder probability", _fmt(result.bladder_probability)])
    rows += count_rows(result.lesion_counts, result.unrecorded_views)
    rows.append(["Reader edited", "yes" if result.reader_edited else "no"])
    rows += [[f"Dice AI vs edited ({name})", _fmt(value)] for name, value in result.edit_dice.items()]
    rows += [["Warning", text] for text in result.warnings]
    fill_table(table_node, ["Quantity", "Value"], rows)
    set_json_attribute(table_node, RESULT, result.as_json())
    table_node.SetAttribute("SmartImaging.Version", __version__)
    table_node.SetAttribute("SmartImaging.BSTBI", repr(result.bstbi["mean"]))


LESION_MARKERS = "SmartImaging.LesionMarkers"  # attribute of the markups node numbering the lesions in the views
ACCEPTED_COLOUR, REJECTED_COLOUR = (1.0, 0.6, 0.0), (0.55, 0.55, 0.55)


def mark_lesions(scene, volume_nodes: list, record: dict, node=None):
    """A locked point list (`node`, or a new one) with each lesion's number at its centre, on its view's frame
    (views in the volumes' frame order, as `study_from_volume_nodes` reads them): accepted lesions orange, rejected
    ones grey, the number alone (a "rejected" label ran over the neighbouring anatomy and lesions). Slicer 5.12 API
    (Markups module): vtkMRMLMarkupsNode AddControlPointWorld, SetNthControlPointSelected, SetLocked;
    vtkMRMLMarkupsDisplayNode SetSelectedColor, SetColor, SetGlyphScale."""
    frames = [(volume, k) for volume in volume_nodes for k in range(volume.GetImageData().GetDimensions()[2])]
    where = dict(zip(record["views"], frames, strict=False))
    if node is None or not scene.IsNodePresent(node):
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{volume_nodes[0].GetName()} lesion numbers")
        node.SetAttribute(LESION_MARKERS, "1")
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        display.SetSelectedColor(*ACCEPTED_COLOUR)
        display.SetColor(*REJECTED_COLOUR)
        display.SetGlyphScale(1.0)  # a small dot at the centre (default 3 % of the view hides small lesions)
        node.SetLocked(True)  # the reader edits the segmentation, not the numbers
        place_in_same_study(scene, node, volume_nodes[0])
    node.RemoveAllControlPoints()
    excluded = set(record.get("excluded_lesions", []))
    matrix = vtk.vtkMatrix4x4()
    for lesion in record["lesions"]:
        volume, k = where[lesion["view"]]
        volume.GetIJKToRASMatrix(matrix)
        ras = matrix.MultiplyPoint((lesion["col"], lesion["row"], k, 1.0))[:3]
        rejected = lesion["id"] in excluded
        index = node.AddControlPointWorld(vtk.vtkVector3d(*ras), str(lesion["id"]))
        node.SetNthControlPointSelected(index, not rejected)  # grey
    return node


def lesion_table(scene, record: dict, volume_node, table_node=None):
    """The numbered lesion list (`lesions.review`) as a table node (`table_node`, or a new one in the volume's
    study): number, view, site, position, area, uptake, the same site in the other view, and whether it is counted."""
    if table_node is None or not scene.IsNodePresent(table_node):
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{volume_node.GetName()} lesions")
        place_in_same_study(scene, table_node, volume_node)
    rows = [[f"#{lesion['id']}", group["view"], lesion["site"], lesion["position"], lesion["area"], lesion["uptake"],
             lesion["match"], "rejected" if lesion["rejected"] else "counted"]
            for group in review(record)["views"] for lesion in group["lesions"]]
    fill_table(table_node, ["#", "View", "Site (estimated)", "Position", "Area", "Uptake", "Other view", "Status"],
               rows)
    return table_node


def compare(scene, baseline_table, followup_table, table_node=None):
    """Baseline vs follow-up BSTBI and change, from two BSTBI table nodes."""
    values = []
    for node in (baseline_table, followup_table):
        text = node.GetAttribute("SmartImaging.BSTBI") if node else None
        if text is None:
            raise InputError("Compute BSTBI for both the baseline and the follow-up study first")
        values.append(float(text))
    change = bstbi_change(*values)
    relative = change["relative_change_percent"]
    table_node = table_node or scene.AddNewNodeByClass("vtkMRMLTableNode", "BSTBI follow-up")
    rows = [["Baseline BSTBI", f"{change['baseline']:.3f}"], ["Follow-up BSTBI", f"{change['followup']:.3f}"],
            ["Change", f"{change['change']:+.3f}"],
            ["Relative change", f"{relative:+.1f} %" if relative is not None else "n/a"]]
    fill_table(table_node, ["Quantity", "Value"], rows)
    return table_node
