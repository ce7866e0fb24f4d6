"""BreastLVI MRML adapter with real MRML (slicer-core): VOI from a segmentation, result table, Grad-CAM nodes on each
sequence's exact grid, and the worker path giving the same probabilities."""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from smartimaging.lvi import scene as lvi_scene
from smartimaging.mrml import ijk_to_ras_matrix, sitk_to_volume_node
from smartimaging.phantoms.breast_mri import make_breast_mri_phantom
from smartimaging.worker import WorkerProcess

MODELS = ["lvi-dce-resnet10-3d-demo", "lvi-t2-vanilla2d-demo"]


@pytest.fixture
def case_nodes(scene):
    case = make_breast_mri_phantom(990_001, (16, 96, 96), lvi=1)
    nodes = {}
    for name, array, spacing in (("DCE", case.dce2, case.spacing), ("T2", case.t2, case.spacing)):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        image.SetOrigin((-96.0, -70.0, -20.0))
        nodes[name] = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"phantom {name}")
        sitk_to_volume_node(image, nodes[name])
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    voi = sitk.GetImageFromArray((case.lesions > 0).astype(np.uint8))
    voi.SetSpacing(case.spacing)
    voi.SetOrigin((-96.0, -70.0, -20.0))
    sitk_to_volume_node(voi, labelmap)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "reader VOI")
    slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    return nodes, segmentation, case


def test_voi_from_a_segmentation_matches_the_lesion(scene, case_nodes):
    nodes, segmentation, case = case_nodes
    voi = sitk.GetArrayFromImage(lvi_scene.voi_image(scene, segmentation, nodes["DCE"]))
    assert np.array_equal(voi > 0, case.lesions > 0)


def test_prediction_table_and_heat_maps_on_each_sequence_grid(scene, case_nodes, tmp_path):
    nodes, segmentation, _ = case_nodes
    table, result = lvi_scene.predict(scene, nodes, segmentation, MODELS)
    assert table.GetCellText(2, 0) == "fused" and table.GetCellText(3, 0) == "Domain check"
    probabilities = [float(table.GetCellText(row, 2)) for row in range(2)]
    assert all(0 <= p <= 1 for p in probabilities)
    assert float(table.GetCellText(2, 2)) == pytest.approx(np.mean(probabilities), abs=2e-3)
    assert table.GetCellText(2, 2) == f"{result.fused['probability']:.3f}"  # headline from the result object
    assert result.domain["text"] == table.GetCellText(3, 1)
    for model_id, node in result.heat_maps.items():
        sequence = "DCE" if "-dce-" in model_id else "T2"
        assert np.array_equal(ijk_to_ras_matrix(node), ijk_to_ras_matrix(nodes[sequence]))
        assert slicer.util.arrayFromVolume(node).max() <= 1 + 1e-5

    arguments = lvi_scene.write_inputs_for_worker(scene, nodes, segmentation, tmp_path)
    worker = WorkerProcess("lvi-predict", [*arguments, "--models", *MODELS, "--device", "cpu"])
    events = worker.wait(timeout=300)
    assert worker.process.returncode == 0, worker.stderr
    worker_table, _ = lvi_scene.import_worker_result(scene, nodes, next(e for e in events if e["event"] == "result"))
    assert [worker_table.GetCellText(row, 2) for row in range(3)] == \
        [table.GetCellText(row, 2) for row in range(3)]


def test_click_gives_ai_and_editable_voi_and_the_table_reports_their_dice(scene, case_nodes):
    from smartimaging.geometry import lps_point_from_ras
    from smartimaging.lvi.segment import LesionSegmenter
    from smartimaging.segmentation_nodes import ROLE, editable_copy

    nodes, _, case = case_nodes
    stats = sitk.LabelShapeStatisticsImageFilter()
    lesion = sitk.GetImageFromArray((case.lesions > 0).astype(np.uint8))
    lesion.SetSpacing(case.spacing)
    lesion.SetOrigin((-96.0, -70.0, -20.0))
    stats.Execute(lesion)
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    point.AddControlPoint(*lps_point_from_ras(stats.GetCentroid(1)))  # the same map converts LPS -> RAS
    before = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    ai = lvi_scene.segment(scene, nodes["DCE"], point, LesionSegmenter.load())
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == before + 1  # the AI's node only
    edited = editable_copy(scene, ai)
    assert edited.GetAttribute(ROLE) == "edited" and ai.GetAttribute(ROLE) == "AI"
    voi = sitk.GetArrayFromImage(lvi_scene.voi_image(scene, ai, nodes["DCE"])) > 0
    assert voi.any() and voi.shape == case.lesions.shape
    table, result = lvi_scene.predict(scene, nodes, edited, MODELS)
    assert result.record["dice_ai_vs_edited_voi"] == 1.0 and result.record["roi_source"] == "AI"
    rows = {table.GetCellText(r, 1): table.GetCellText(r, 2) for r in range(table.GetNumberOfRows())}
    assert rows["Dice AI vs edited"] == "1.000"
