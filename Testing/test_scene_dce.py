"""DCESynthesis MRML adapter with real MRML (slicer-core): result nodes on the T1's exact geometry, metrics table,
the worker path giving the same volumes, and the linked side-by-side layout."""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import torch

from smartimaging.dce import scene as dce_scene
from smartimaging.dce.synthesis import MODEL_ID, DCESynthesizer
from smartimaging.models.nets import build_network
from smartimaging.models.registry import save_model
from smartimaging.mrml import get_json_attribute, ijk_to_ras_matrix, sitk_to_volume_node, volume_node_to_sitk
from smartimaging.phantoms.breast_mri import make_breast_mri_phantom
from smartimaging.worker import WorkerProcess


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dce-scene-model")
    torch.manual_seed(1)
    architecture = {"name": "pix2pix_unet", "in_channels": 1, "out_channels": 1, "ngf": 4, "depth": 5}
    save_model(build_network(architecture), {"id": MODEL_ID, "version": "0.0.1", "task": "dce-synthesis",
                                             "architecture": architecture, "inputs": {}, "outputs": {},
                                             "intended_use": "test"}, folder)
    return folder


@pytest.fixture
def nodes(scene):
    case = make_breast_mri_phantom(21, shape=(5, 48, 56))
    result = []
    for name, array in (("T1", case.t1), ("DCE", case.dce)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.7, 0.7, 2.0))
        image.SetOrigin((40.0, -12.5, 8.0))
        image.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))  # a sagittal acquisition
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        sitk_to_volume_node(image, node)
        result.append(node)
    return result


def test_result_nodes_overlay_the_t1_exactly(scene, nodes, model_dir):
    t1, dce = nodes
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = hierarchy.CreateStudyItem(hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Patient"), "MRI")
    hierarchy.CreateItem(study, t1)
    table, result = dce_scene.synthesize(scene, t1, DCESynthesizer.load(model_dir, "cpu"), dce)
    for key in ("synthetic", "subtraction"):
        assert np.array_equal(ijk_to_ras_matrix(result.volumes[key]), ijk_to_ras_matrix(t1))
        assert slicer.util.arrayFromVolume(result.volumes[key]).shape == slicer.util.arrayFromVolume(t1).shape
    assert slicer.util.arrayFromVolume(result.volumes["mip"]).shape == (1, 48, 56)
    record = get_json_attribute(result.volumes["synthetic"], dce_scene.RESULT)
    assert record["model"]["id"] == MODEL_ID and record["slices"] == 5 and record == result.record
    values = {table.GetCellText(r, 0): table.GetCellText(r, 1) for r in range(table.GetNumberOfRows())}
    assert -1 <= float(values["SSIM (mean of slices)"]) <= 1  # random weights: any value
    assert values["SSIM (mean of slices)"] == f"{result.ssim:.3f}"  # the headline number, from the result object
    assert float(values["MAE"]) == pytest.approx(record["metrics"]["mae"], abs=1e-4)
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(result.volumes["synthetic"])) == study
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(table)) == study


def test_worker_gives_the_same_synthetic_volume(scene, nodes, model_dir, tmp_path):
    t1, dce = nodes
    arguments = dce_scene.write_inputs_for_worker(t1, dce, tmp_path)
    worker = WorkerProcess("dce-synthesize", [*arguments, "--models-dir", str(model_dir), "--device", "cpu"])
    events = worker.wait(timeout=300)
    assert worker.process.returncode == 0, worker.stderr
    fractions = [e["fraction"] for e in events if e["event"] == "progress"]
    assert fractions == sorted(fractions) and len(fractions) >= 2
    worker_table, from_worker = dce_scene.import_worker_result(scene, t1, next(e for e in events
                                                                                if e["event"] == "result"))
    no_table, in_process = dce_scene.synthesize(scene, t1, DCESynthesizer.load(model_dir, "cpu"))
    assert np.allclose(slicer.util.arrayFromVolume(from_worker.volumes["synthetic"]),
                       slicer.util.arrayFromVolume(in_process.volumes["synthetic"]), atol=1e-3)
    assert np.array_equal(ijk_to_ras_matrix(from_worker.volumes["synthetic"]), ijk_to_ras_matrix(t1))
    assert worker_table is not None and no_table is None and in_process.ssim is None


def test_side_by_side_layout_links_the_four_views(scene, nodes):
    t1, dce = nodes
    layout = scene.AddNewNodeByClass("vtkMRMLLayoutNode")
    composites = {}
    for name in dce_scene.VIEWS:
        composite = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        composite.SetLayoutName(name)
        composites[name] = composite
    dce_scene.show_side_by_side(scene, layout, {"DCE-T1": t1, "DCE-Real": dce})
    assert layout.GetViewArrangement() == dce_scene.LAYOUT_ID
    assert "DCE-Synthetic" in layout.GetLayoutDescription(dce_scene.LAYOUT_ID)
    assert composites["DCE-T1"].GetBackgroundVolumeID() == t1.GetID()
    assert composites["DCE-Real"].GetBackgroundVolumeID() == dce.GetID()
    assert composites["DCE-MIP"].GetBackgroundVolumeID() is None
    assert all(c.GetLinkedControl() for c in composites.values())


def _unit_arrays(t1, dce):
    from smartimaging.dce.volumes import normalise, to_unit

    return (to_unit(normalise(slicer.util.arrayFromVolume(node).astype(np.float32))) for node in (t1, dce))


def _segment_mask(scene, segmentation_node, segment_id, volume_node):
    """A segment exported onto a volume's grid (k, j, i)."""
    import vtk

    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap,
                                                                                 volume_node)
    mask = slicer.util.arrayFromVolume(labelmap) > 0
    scene.RemoveNode(labelmap)
    return mask


def test_enhancing_regions_are_the_lesion_contrast_regions_on_the_t1_grid(scene, nodes, model_dir):
    from smartimaging.dce.lesion_contrast import enhancing_regions

    t1, dce = nodes
    table, result = dce_scene.synthesize(scene, t1, DCESynthesizer.load(model_dir, "cpu"), dce)
    regions_node = result.volumes["regions"]
    measures = result.record["lesion_contrast"]["regions"]
    t1_unit, real = _unit_arrays(t1, dce)
    expected, _ = enhancing_regions(real, t1_unit)
    segmentation = regions_node.GetSegmentation()
    assert len(measures) == len(expected) == segmentation.GetNumberOfSegments() == 2  # the phantom's two lesions
    for number, (mask, measure) in enumerate(zip(expected, measures, strict=True), start=1):
        segment_id = segmentation.GetNthSegmentID(number - 1)
        exported = _segment_mask(scene, regions_node, segment_id, t1)
        assert np.array_equal(exported, mask) and int(exported.sum()) == measure["voxels"]  # voxel for voxel
        segment = segmentation.GetSegment(segment_id)
        kind, colour = dce_scene.REGION_KINDS[measure["faint"]]
        assert segment.GetName() == f"Region {number}: {kind}" and segment.GetColor() == pytest.approx(colour)
        centre = dce_scene.region_centre_ras(regions_node, t1, number)  # the sagittal T1's IJK -> RAS
        assert centre == pytest.approx((ijk_to_ras_matrix(t1) @ [*measure["centre_voxel"], 1.0])[:3])
    display = regions_node.GetDisplayNode()
    assert display.GetVisibility2DOutline() and not display.GetVisibility2DFill()
    rows = [table.GetCellText(r, 0) for r in range(table.GetNumberOfRows())]
    assert [row for row in rows if row.startswith("Enhancing region")] == [
        f"Enhancing region {n}: contrast synthetic / real" for n in (1, 2)]  # the legend's numbers


def test_regions_are_named_by_whether_they_show_on_the_synthetic_dce(scene, nodes):
    from smartimaging.dce.lesion_contrast import enhancing_regions, lesion_contrast, region_labels

    t1, dce = nodes
    t1_unit, real = _unit_arrays(t1, dce)
    found = enhancing_regions(real, t1_unit)
    labels = sitk.GetImageFromArray(region_labels(found[0], real.shape))
    labels.CopyInformation(volume_node_to_sitk(t1))
    for synthetic, faint, kind in ((real, False, "shows on synthetic"), (t1_unit, True, "faint on synthetic")):
        record = {"lesion_contrast": lesion_contrast(t1_unit, synthetic, real, found)}
        legend = dce_scene.region_legend(dce_scene.add_regions(scene, t1, labels, record))
        assert [entry["faint"] for entry in legend] == [faint, faint]
        assert all(entry["name"].endswith(kind) and entry["name"].startswith(f"Region {entry['number']}: enhances "
                                                                              "on real DCE") for entry in legend)
        assert {entry["colour"] for entry in legend} == {"#ff33cc" if faint else "#26d9ff"}


def test_regions_are_outlined_on_the_real_and_synthetic_dce_views_only(scene, nodes, model_dir):
    t1, dce = nodes
    _, result = dce_scene.synthesize(scene, t1, DCESynthesizer.load(model_dir, "cpu"), dce)
    regions = result.volumes["regions"]
    display = regions.GetDisplayNode()
    assert not display.GetVisibility()  # not on every view before it has its views
    assert dce_scene.show_regions(scene, regions, dce_scene.REGION_VIEWS) == [] and not display.GetVisibility()
    slices = {}
    for name in (*dce_scene.VIEWS, "Red"):
        slices[name] = scene.AddNewNodeByClass("vtkMRMLSliceNode")
        slices[name].SetLayoutName(name)
    layout = scene.AddNewNodeByClass("vtkMRMLLayoutNode")
    dce_scene.show_side_by_side(scene, layout, {"DCE-T1": t1, "DCE-Real": dce}, regions)
    shown_on = {display.GetNthViewNodeID(i) for i in range(display.GetNumberOfViewNodeIDs())}
    assert shown_on == {slices["DCE-Synthetic"].GetID(), slices["DCE-Real"].GetID()} and display.GetVisibility()
    assert display.IsDisplayableInView(slices["DCE-Real"].GetID())
    assert not display.IsDisplayableInView(slices["DCE-T1"].GetID()) and not display.IsDisplayableInView(
        slices["Red"].GetID())
    dce_scene.show_regions(scene, regions, dce_scene.REGION_VIEWS, shown=False)
    assert not display.GetVisibility()

    centre = dce_scene.region_centre_ras(regions, t1, 2)
    moved = dce_scene.go_to_region(scene, regions, t1, 2)  # "Go to": the T1, synthetic and real DCE views
    assert {node.GetLayoutName() for node in moved} == {"DCE-T1", "DCE-Synthetic", "DCE-Real"}
    assert all(node.GetSliceOffset() == pytest.approx(centre[2]) for node in moved)  # axial: S of the centre
    assert slices["DCE-MIP"].GetSliceOffset() == 0.0 and slices["Red"].GetSliceOffset() == 0.0


def test_the_flow_gives_the_regions_through_the_worker_and_none_without_a_real_dce(scene, nodes, model_dir):
    from smartimaging.dce.flow import DCEFlow

    t1, dce = nodes
    flow = DCEFlow(scene, models_dir=str(model_dir))
    flow.select({"T1": t1, "DCE": dce})
    result = flow.run(flow.compute())
    regions = flow.regions
    measures = get_json_attribute(result.table_node, dce_scene.RESULT)["lesion_contrast"]["regions"]
    assert regions is not None and regions.GetSegmentation().GetNumberOfSegments() == len(measures) == 2
    assert [entry["slices"] for entry in dce_scene.region_legend(regions)] == [
        [m["slices"][0] + 1, m["slices"][1] + 1] for m in measures]
    flow.select({"T1": t1})
    flow.run(flow.compute())
    assert flow.regions is None and not scene.IsNodePresent(regions)  # the previous synthesis' regions are gone
