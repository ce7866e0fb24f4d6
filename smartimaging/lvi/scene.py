"""MRML adapter of BreastLVI: takes a vtkMRMLScene and nodes (never widgets).

- `voi_image`: the lesion VOI (every segment of a segmentation node) on a sequence's grid;
- `predict`: (table node, LVIResult): the result table (one row per model and sequence, then the fusion) and the
  result (its record, the fused probability, one Grad-CAM heat-map volume per model on its sequence's grid);
- `segment`: the click-seeded AI VOI (kept unchanged; the reader edits `segmentation_nodes.editable_copy` of it);
- `write_inputs_for_worker` / `import_worker_result`: the same through the background worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk
import slicer
import vtk

from ..errors import InputError
from ..geometry import lps_point_from_ras
from ..mrml import (
    fill_table,
    place_in_same_study,
    remove_temporary_labelmap,
    set_json_attribute,
    sitk_to_volume_node,
    volume_node_to_sitk,
    write_for_worker,
)
from ..result_nodes import RecordedResult
from ..segmentation_nodes import CLASSICAL, ROI_SOURCE, edit_check, roi_source, segmentation_from_labels
from ..segments import BREAST_MASS
from .predict import DEFAULT_MODELS, predict_case
from .report_page import result_rows

RESULT = "SmartImaging.BreastLVI"
SEGMENTATION = "SmartImaging.BreastLVISegmentation"


@dataclass
class LVIResult(RecordedResult):
    """An LVI result in the scene: its record (`LVIPrediction.as_json` with the VOI's source and Dice AI-vs-edited)
    and one Grad-CAM volume node per model id."""
    heat_maps: dict = field(default_factory=dict)

    @property
    def fused(self) -> dict:
        """The late fusion: probability, cutoff, label, method."""
        return self.record["fused"]


def voi_image(scene, segmentation_node, reference_node) -> sitk.Image:
    """All segments of the segmentation as one binary VOI on the reference volume's grid."""
    segmentation = segmentation_node.GetSegmentation()
    ids = vtk.vtkStringArray()
    for index in range(segmentation.GetNumberOfSegments()):
        ids.InsertNextValue(segmentation.GetNthSegmentID(index))
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap,
                                                                             reference_node)
        return sitk.Cast(volume_node_to_sitk(labelmap) > 0, sitk.sitkUInt8)
    finally:
        remove_temporary_labelmap(scene, labelmap)


def segment(scene, volume_node, point_node, segmenter, index: int = 0):
    """AI VOI node from a control point of a markups node (the first by default)."""
    if point_node is None or point_node.GetNumberOfControlPoints() <= index:
        raise InputError("Place a point on the lesion first")
    point_ras = [0.0, 0.0, 0.0]
    point_node.GetNthControlPointPositionWorld(index, point_ras)
    point = lps_point_from_ras(point_ras)
    volume = volume_node_to_sitk(volume_node)
    mask, source = segmenter.propose(volume, point)
    ai_node = segmentation_from_labels(scene, volume_node, sitk.GetArrayFromImage(mask) * BREAST_MASS.label,
                                       (BREAST_MASS,), f"{volume_node.GetName()} AI lesion VOI", "AI")
    if source == CLASSICAL:
        ai_node.SetAttribute(ROI_SOURCE, CLASSICAL)
    set_json_attribute(ai_node, SEGMENTATION, {"model": segmenter.provenance, "point_lps": point, "source": source,
                                               "domain": segmenter.domain_check(volume, point, mask)})
    return ai_node


def voi_record(scene, segmentation_node, reference_node) -> dict:
    """Where the VOI came from (`roi_source`) and the Dice between the AI VOI and the reader's edit."""
    edited, dices = edit_check([segmentation_node], lambda nodes: {
        "VOI": sitk.GetArrayFromImage(voi_image(scene, nodes[0], reference_node)) > 0})
    return {"roi_source": roi_source(segmentation_node, edited), "dice_ai_vs_edited_voi": dices and dices["VOI"]}


def add_result_nodes(scene, volume_nodes: dict, record: dict, heat_maps: dict, table_node=None) -> tuple:
    """(table node, LVIResult) from a prediction record (`LVIPrediction.as_json`): the table, and a heat-map volume
    node per model (no display node yet: `reading.style_heat_map` shows it); `heat_maps`: model id -> SimpleITK
    image on its sequence's grid."""
    reference = next(iter(volume_nodes.values()))
    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{reference.GetName()} LVI")
        place_in_same_study(scene, table_node, reference)
    rows = result_rows(record)
    if "domain" in record:
        rows.append(["Domain check", record["domain"]["text"], "", "", "", ""])
    if record.get("roi_source"):
        rows.append(["VOI", "ROI source", record["roi_source"], "", "", ""])
    if record.get("dice_ai_vs_edited_voi") is not None:
        rows.append(["VOI", "Dice AI vs edited", f"{record['dice_ai_vs_edited_voi']:.3f}", "", "", ""])
    rows += [["warning", text, "", "", "", ""] for text in record["warnings"]]
    fill_table(table_node, ["Sequence", "Model", "LVI probability", "Cutoff", "Label", "Model card"], rows)
    set_json_attribute(table_node, RESULT, record)
    result = LVIResult(record)
    for model in record["models"]:
        sequence_node = volume_nodes[model["sequence"]]
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{sequence_node.GetName()} Grad-CAM "
                                                                 f"{model['network']}")
        sitk_to_volume_node(heat_maps[model["model"]["id"]], node)
        set_json_attribute(node, RESULT, model)
        place_in_same_study(scene, node, sequence_node)
        result.heat_maps[model["model"]["id"]] = node
    return table_node, result


def predict(scene, volume_nodes: dict, segmentation_node, model_ids=DEFAULT_MODELS, directory=None,
            device: str = "cpu", table_node=None) -> tuple:
    """Run the models in this process; `volume_nodes` maps "DCE" / "T2" to volume nodes; (table node, LVIResult)."""
    reference = next(iter(volume_nodes.values()))
    volumes = {name: volume_node_to_sitk(node) for name, node in volume_nodes.items()}
    prediction = predict_case(volumes, voi_image(scene, segmentation_node, reference), model_ids, directory, device)
    record = {**prediction.as_json(), **voi_record(scene, segmentation_node, reference)}
    return add_result_nodes(scene, volume_nodes, record, {m.model["id"]: m.heat_map for m in prediction.models},
                            table_node)


def write_inputs_for_worker(scene, volume_nodes: dict, segmentation_node, folder: Path) -> list[str]:
    """Worker arguments: each sequence and the VOI as NRRD (LPS, exact geometry)."""
    folder = Path(folder)
    voi = folder / "voi.nrrd"  # first: the volumes' files take other names
    sitk.WriteImage(voi_image(scene, segmentation_node, next(iter(volume_nodes.values()))), str(voi))
    arguments = []
    for name, node in volume_nodes.items():
        arguments += [f"--{name.lower()}", str(write_for_worker(node, folder))]
    return [*arguments, "--voi", str(voi), "--output-dir", str(folder / "out")]


def import_worker_result(scene, volume_nodes: dict, event: dict, segmentation_node=None, table_node=None) -> tuple:
    """(table node, LVIResult) from an `lvi-predict` worker's result event (the files it wrote); with the VOI's
    segmentation node, the Dice between the AI and the edited VOI is added."""
    folder = Path(event["output_dir"])
    record = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    if segmentation_node is not None:
        record.update(voi_record(scene, segmentation_node, next(iter(volume_nodes.values()))))
    heat_maps = {m["model"]["id"]: sitk.ReadImage(str(folder / m["heat_map"])) for m in record["models"]}
    return add_result_nodes(scene, volume_nodes, record, heat_maps, table_node)

