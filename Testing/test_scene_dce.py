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
from smartimaging.mrml import get_json_attribute, ijk_to_ras_matrix, sitk_to_volume_node
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
