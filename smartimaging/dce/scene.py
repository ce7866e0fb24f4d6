"""MRML adapter of DCESynthesis: takes a vtkMRMLScene and nodes (never widgets).

- `synthesize`: (metrics table node or None, DCEResult): synthetic DCE, subtraction and its MIP as volume nodes on
  the T1's exact geometry, in the T1's study, with provenance in their attributes; the table when a real DCE is
  given;
- `write_inputs_for_worker` / `import_worker_result`: the same through the background worker;
- `LAYOUT_XML` + `show_side_by_side`: linked slice views T1 | synthetic DCE | real DCE | subtraction MIP;
- `add_regions` / `show_regions` / `region_legend` / `region_centre_ras`: with a real DCE, the regions that enhance on
  it (`lesion_contrast`) outlined on the real and the synthetic DCE views, named and coloured by whether they show
  on the synthetic DCE, numbered as the result table's "Enhancing region n" rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from ..mrml import (
    fill_table,
    get_json_attribute,
    ijk_to_ras_matrix,
    place_in_same_study,
    set_json_attribute,
    sitk_to_volume_node,
    volume_node_to_sitk,
    write_for_worker,
)
from ..result_nodes import RecordedResult
from ..segmentation_nodes import segmentation_from_labels
from ..segments import ALTERED, Code, SegmentSpec
from .lesion_contrast import REGION_KINDS, region_name
from .synthesis import REGIONS_FILE, DCESynthesizer, SynthesisResult, synthesize_volume
from .volumes import check_mr_volume

RESULT = "SmartImaging.DCESynthesis"
LAYOUT_ID = 1801  # an unused id in Slicer's layout numbering
VIEWS = ("DCE-T1", "DCE-Synthetic", "DCE-Real", "DCE-MIP")
LAYOUT_XML = ('<layout type="horizontal" split="true">'
              + "".join(f'<item><view class="vtkMRMLSliceNode" singletontag="{name}"><property name="orientation" '
                        f'action="default">Axial</property><property name="viewlabel" action="default">{label}'
                        f'</property><property name="viewcolor" action="default">{color}</property></view></item>'
                        for name, label, color in zip(VIEWS, ("T1", "S", "D", "M"),
                                                      ("#E17012", "#4A90D9", "#30A070", "#A050C0"), strict=True))
              + "</layout>")


REGION_VIEWS = ("DCE-Synthetic", "DCE-Real")  # the views the enhancing regions are outlined on
REGION_TYPE = Code("SCT", "52988006", "Lesion")  # a region may also be focal background enhancement
REGION_OUTLINE_PX = 2


@dataclass
class DCEResult(RecordedResult):
    """A synthesis in the scene: its record (`SynthesisResult.record`) and its volume nodes ("synthetic",
    "subtraction", "mip")."""
    volumes: dict

    @property
    def ssim(self) -> float | None:
        """Mean SSIM of the slices, synthetic vs real DCE (None without a real DCE)."""
        return self.record["metrics"]["ssim_mean"] if "metrics" in self.record else None


def _add_volume(scene, image: sitk.Image, name: str, t1_node, record: dict):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    sitk_to_volume_node(image, node)
    set_json_attribute(node, RESULT, record)
    place_in_same_study(scene, node, t1_node)
    return node


def add_result_nodes(scene, t1_node, result: SynthesisResult) -> tuple:
    """(metrics table node when the real DCE was given, else None; DCEResult with the volume nodes) for a synthesis
    result."""
    name = t1_node.GetName()
    nodes = {"synthetic": _add_volume(scene, result.synthetic, f"{name} synthetic DCE", t1_node, result.record),
             "subtraction": _add_volume(scene, result.subtraction, f"{name} synthetic subtraction", t1_node,
                                        result.record),
             "mip": _add_volume(scene, result.mip, f"{name} synthetic subtraction MIP", t1_node, result.record)}
    if result.regions is not None and result.record["lesion_contrast"]["regions"]:
        nodes["regions"] = add_regions(scene, t1_node, result.regions, result.record)
    table = metrics_table(scene, t1_node, result.record) if "metrics" in result.record else None
    return table, DCEResult(result.record, nodes)


def add_regions(scene, t1_node, labels: sitk.Image, record: dict):
    """The real DCE's enhancing regions (`labels`: region n = n, on the T1's grid) as a segmentation on the T1's
    geometry, one segment per measured region named and coloured as REGION_KINDS, shown as outlines."""
    specs = tuple(SegmentSpec(f"enhancing_region_{number}", region_name(number, measure), number,
                              REGION_KINDS[measure["faint"]][1], ALTERED, REGION_TYPE)
                  for number, measure in enumerate(record["lesion_contrast"]["regions"], start=1))
    node = segmentation_from_labels(scene, t1_node, sitk.GetArrayFromImage(labels), specs,
                                    f"{t1_node.GetName()} enhancing on real DCE", "measured")
    set_json_attribute(node, RESULT, record)
    display = node.GetDisplayNode()
    display.SetVisibility2DFill(False)
    display.SetVisibility2DOutline(True)
    display.SetSliceIntersectionThickness(REGION_OUTLINE_PX)
    display.SetVisibility(False)  # until `show_regions` puts it on its views
    return node


def show_regions(scene, regions_node, layout_names, shown: bool = True) -> list[str]:
    """Outline the regions on the slice views named `layout_names` only (the real and the synthetic DCE views), or
    hide them; the IDs of the slice nodes found (none found: hidden, never shown on every view). Slicer 5.12
    vtkMRMLDisplayNode.RemoveAllViewNodeIDs / AddViewNodeID (an empty list means every view)."""
    display = regions_node.GetDisplayNode()
    slices = scene.GetNodesByClass("vtkMRMLSliceNode")
    ids = [slices.GetItemAsObject(i).GetID() for i in range(slices.GetNumberOfItems())
           if slices.GetItemAsObject(i).GetLayoutName() in layout_names]
    display.RemoveAllViewNodeIDs()
    for view_id in ids:
        display.AddViewNodeID(view_id)
    display.SetVisibility(bool(shown and ids))
    return ids


def region_legend(regions_node) -> list[dict]:
    """For a legend beside the views: each region's number, segment name, outline colour (#rrggbb), faint flag,
    slices (1-based, first and last) and contrast ratio, as the result records them."""
    regions = get_json_attribute(regions_node, RESULT)["lesion_contrast"]["regions"]
    legend = []
    for number, measure in enumerate(regions, start=1):
        colour = "#" + "".join(f"{round(c * 255):02x}" for c in REGION_KINDS[measure["faint"]][1])
        legend.append({"number": number, "name": region_name(number, measure), "colour": colour,
                       "faint": measure["faint"], "slices": [k + 1 for k in measure["slices"]],
                       "ratio": measure["ratio"]})
    return legend


def region_centre_ras(regions_node, t1_node, number: int) -> list[float]:
    """The RAS position (mm) of region `number`'s centre voxel, for the views to go to it."""
    centre = get_json_attribute(regions_node, RESULT)["lesion_contrast"]["regions"][number - 1]["centre_voxel"]
    return [float(v) for v in (ijk_to_ras_matrix(t1_node) @ [*centre, 1.0])[:3]]


def go_to_region(scene, regions_node, t1_node, number: int, layout_names=("DCE-T1", *REGION_VIEWS)) -> list:
    """The slice views named `layout_names` moved to the slice through region `number`'s centre (Slicer 5.12
    vtkMRMLSliceNode.JumpSliceByOffsetting: the slice offset only, the view is not panned); the slice nodes moved."""
    ras = region_centre_ras(regions_node, t1_node, number)
    slices = scene.GetNodesByClass("vtkMRMLSliceNode")
    moved = [slices.GetItemAsObject(i) for i in range(slices.GetNumberOfItems())
             if slices.GetItemAsObject(i).GetLayoutName() in layout_names]
    for node in moved:
        node.JumpSliceByOffsetting(*ras)
    return moved


def synthesize(scene, t1_node, synthesizer: DCESynthesizer, real_dce_node=None, progress=None) -> tuple:
    """Run the generator in this process on a T1 volume node."""
    real = volume_node_to_sitk(real_dce_node) if real_dce_node is not None else None
    result = synthesize_volume(check_mr_volume(volume_node_to_sitk(t1_node), t1_node.GetName(), "T1"), synthesizer,
                               check_mr_volume(real, real_dce_node.GetName(), "DCE") if real is not None else None,
                               progress=progress)
    return add_result_nodes(scene, t1_node, result)


def metrics_table(scene, t1_node, record: dict, table_node=None):
    """SSIM, PSNR, MAE, MSE and Pearson r of synthetic vs real DCE (intensities in [0, 1]) into a table node."""
    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{t1_node.GetName()} synthetic vs real DCE")
        place_in_same_study(scene, table_node, t1_node)
    metrics = record["metrics"]
    rows = [["SSIM (mean of slices)", f"{metrics['ssim_mean']:.3f}"],
            ["PSNR (dB, mean of slices)", f"{metrics['psnr_mean']:.2f}"], ["MAE", f"{metrics['mae']:.4f}"],
            ["MSE", f"{metrics['mse']:.5f}"], ["Pearson r", f"{metrics['pearson_r']:.3f}"],
            ["Intensity range", "[0, 1] per volume (minimum .. 99.9th percentile)"],
            ["Model", f"{record['model']['id']} {record['model']['version']}"]]
    regions = record.get("lesion_contrast", {}).get("regions", [])
    rows[1:1] = [[f"Enhancing region {number}: contrast synthetic / real", f"{m['ratio']:.2f}"
                  if m["ratio"] is not None else "no real contrast"] for number, m in enumerate(regions, start=1)]
    if "domain" in record:
        rows.append(["Domain check", record["domain"]["text"]])
    rows += [["Warning", text] for text in record.get("warnings", [])]
    fill_table(table_node, ["Quantity", "Value"], rows)
    set_json_attribute(table_node, RESULT, record)
    return table_node


def write_inputs_for_worker(t1_node, real_dce_node, folder: Path) -> list[str]:
    """Worker arguments for a T1 node (and the real DCE node): NRRD files in LPS with the exact geometry."""
    arguments = ["--input", str(write_for_worker(t1_node, folder))]
    if real_dce_node is not None:
        arguments += ["--dce", str(write_for_worker(real_dce_node, folder))]
    return arguments + ["--output-dir", str(Path(folder) / "out")]


def import_worker_result(scene, t1_node, event: dict) -> tuple:
    """(table node or None, DCEResult) from a `dce-synthesize` worker's result event (the files it wrote)."""
    folder = Path(event["output_dir"])
    record = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    regions = sitk.ReadImage(str(folder / REGIONS_FILE)) if (folder / REGIONS_FILE).is_file() else None
    result = SynthesisResult(*(sitk.ReadImage(str(folder / name)) for name in
                               ("synthetic_dce.nrrd", "subtraction.nrrd", "subtraction_mip.nrrd")), record,
                             regions=regions)
    return add_result_nodes(scene, t1_node, result)


def show_side_by_side(scene, layout_node, volumes: dict, regions_node=None) -> None:
    """Register and select the four-view layout; put the volumes (keys: VIEWS) in their linked views; the enhancing
    regions (when given) outlined on the synthetic and the real DCE views."""
    if not layout_node.IsLayoutDescription(LAYOUT_ID):
        layout_node.AddLayoutDescription(LAYOUT_ID, LAYOUT_XML)
    layout_node.SetViewArrangement(LAYOUT_ID)
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    for index in range(composites.GetNumberOfItems()):
        composite = composites.GetItemAsObject(index)
        volume = volumes.get(composite.GetLayoutName())
        if composite.GetLayoutName() in VIEWS:
            composite.SetBackgroundVolumeID(volume.GetID() if volume is not None else None)
            composite.SetLinkedControl(True)
    if regions_node is not None:
        show_regions(scene, regions_node, REGION_VIEWS)
