"""BoneScanBSTBI MRML adapter on a real vtkMRMLScene (slicer-core): geometry, AI vs edited segmentations,
BSTBI table, follow-up comparison, the worker process."""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from smartimaging.bonescan import scene as bonescan_scene
from smartimaging.bonescan.pipeline import BoneScanModels
from smartimaging.mrml import get_json_attribute, ijk_to_ras_matrix, sitk_to_volume_node, volume_node_to_sitk
from smartimaging.phantoms.bonescan import PIXEL_MM, make_bone_scan_phantom
from smartimaging.segmentation_nodes import ROLE, editable_copy
from smartimaging.worker import WorkerProcess


@pytest.fixture(scope="module")
def models():
    return BoneScanModels.load(device="cpu")


@pytest.fixture(scope="module")
def case():
    return make_bone_scan_phantom(11)


def _volume(scene, case, name):
    image = sitk.GetImageFromArray(case.views[name][None])
    image.SetSpacing((PIXEL_MM, PIXEL_MM, 1.0))
    image.SetOrigin((-289.0, -120.0, 40.0))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"phantom {name}")
    sitk_to_volume_node(image, node)
    return node


def test_lps_ras_round_trip_keeps_oblique_geometry_exactly(scene):
    image = sitk.GetImageFromArray(np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7))
    angle = np.deg2rad(20)
    image.SetDirection((np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1))
    image.SetSpacing((0.7, 1.3, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    sitk_to_volume_node(image, node)
    index = (3, 4, 1)
    lps = np.array(image.TransformIndexToPhysicalPoint(index))
    ras = ijk_to_ras_matrix(node) @ np.array([*index, 1.0])
    assert np.allclose(ras[:3], lps * [-1, -1, 1])
    back = volume_node_to_sitk(node)
    assert np.allclose(back.GetDirection(), image.GetDirection())
    assert np.allclose(back.GetOrigin(), image.GetOrigin())
    assert np.allclose(back.GetSpacing(), image.GetSpacing())
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))


def _erase_upper_half(scene, segmentation_node, volume_node, label_name="Bone metastasis"):
    """What a reader does with the Erase effect: clear a segment's voxels in the upper half of the image."""
    segmentation = segmentation_node.GetSegmentation()
    segment_id = segmentation.GetSegmentIdBySegmentName(label_name)
    labels = bonescan_scene.labels_from_segmentation(scene, segmentation_node, volume_node)
    mask = (labels == 1).astype(np.uint8)
    mask[:, : mask.shape[1] // 2] = 0
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    reference = volume_node_to_sitk(volume_node)
    edited = sitk.GetImageFromArray(mask)
    edited.CopyInformation(reference)
    sitk_to_volume_node(edited, labelmap)
    oriented = slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(labelmap)
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        oriented, segmentation_node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    scene.RemoveNode(labelmap)


def test_segment_edit_and_compute_bstbi(scene, models, case):
    volumes = [_volume(scene, case, "anterior"), _volume(scene, case, "posterior")]
    ai_nodes = bonescan_scene.segment(scene, volumes, models)
    result = get_json_attribute(ai_nodes[0], bonescan_scene.RESULT)  # the networks' result, on each AI node
    assert len(ai_nodes) == 2 and get_json_attribute(ai_nodes[1], bonescan_scene.RESULT) == result
    for ai in ai_nodes:
        segmentation = ai.GetSegmentation()
        assert ai.GetAttribute(ROLE) == "AI"
        assert [segmentation.GetNthSegment(i).GetName() for i in range(2)] == ["Bone metastasis", "Urinary bladder"]
        assert "SCT^89837001" in segmentation.GetNthSegment(1).GetTerminology()
    labels = bonescan_scene.labels_from_segmentation(scene, ai_nodes[0], volumes[0])

    table, ai_result = bonescan_scene.compute_bstbi(scene, volumes, ai_nodes)
    assert ai_result.bstbi["mean"] == pytest.approx(result["bstbi"]["mean"], abs=1e-12)  # the labels, unchanged
    assert len(ai_result.lesions) == len(result["lesions"])
    assert ai_result.metastasis_probability == result["metastasis_probability"]
    rows = {table.GetCellText(r, 0): table.GetCellText(r, 1) for r in range(table.GetNumberOfRows())}
    assert rows["BSTBI (mean)"] == f"{result['bstbi']['mean']:.3f}"
    assert rows["Reader edited"] == "no"
    assert len([k for k in rows if k.startswith("BSTBI ") and "/" in k]) == 4

    edited = [editable_copy(scene, node) for node in ai_nodes]
    assert np.any(labels[0][:, : labels.shape[2] // 2] == 1), "phantom 11 has a lesion the model finds on the left"
    _erase_upper_half(scene, edited[0], volumes[0])
    table2, edited_result = bonescan_scene.compute_bstbi(scene, volumes, edited)
    assert edited_result.reader_edited
    assert edited_result.bstbi["mean"] < ai_result.bstbi["mean"]
    assert edited_result.edit_dice["Bone metastasis"] < 1.0
    assert edited_result.edit_dice["Urinary bladder"] == 1.0
    # the AI segmentation is left untouched by the edit
    assert np.array_equal(bonescan_scene.labels_from_segmentation(scene, ai_nodes[0], volumes[0]), labels)

    comparison = bonescan_scene.compare(scene, table, table2)
    change = {comparison.GetCellText(r, 0): comparison.GetCellText(r, 1) for r in range(4)}
    assert float(change["Change"]) < 0


def test_worker_process_gives_the_same_segmentation(scene, models, case, tmp_path):
    volumes = [_volume(scene, case, "anterior")]
    inputs = bonescan_scene.write_volumes_for_worker(volumes, tmp_path)
    worker = WorkerProcess("bonescan-segment", ["--input", *map(str, inputs), "--output-dir", str(tmp_path),
                                                "--device", "cpu"])
    events = worker.wait(timeout=300)
    assert worker.process.returncode == 0, worker.stderr
    assert [e for e in events if e["event"] == "progress"]
    result_event = next(e for e in events if e["event"] == "result")
    nodes = bonescan_scene.import_worker_result(scene, volumes, result_event)
    in_process = bonescan_scene.segment(scene, volumes, models)
    assert np.array_equal(bonescan_scene.labels_from_segmentation(scene, nodes[0], volumes[0]),
                          bonescan_scene.labels_from_segmentation(scene, in_process[0], volumes[0]))


def test_worker_reports_bad_input_and_can_be_cancelled(tmp_path):
    blank = tmp_path / "blank.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((1, 1024, 256), np.float32)), str(blank))
    worker = WorkerProcess("bonescan-segment", ["--input", str(blank), "--output-dir", str(tmp_path)])
    events = worker.wait(timeout=120)
    assert worker.process.returncode == 2
    assert any(e["event"] == "error" and "blank" in e["message"] for e in events)

    slow = WorkerProcess("bonescan-segment", ["--input", str(blank), "--output-dir", str(tmp_path)],
                         python=None)
    slow.cancel()
    assert slow.finished and slow.cancelled


def test_missing_volume_is_a_clear_error(scene, models):
    from smartimaging.errors import InputError

    with pytest.raises(InputError, match="Select the bone-scan volume"):
        bonescan_scene.segment(scene, [None], models)


def test_results_go_under_the_input_study_with_provenance(scene, models, case):
    volumes = [_volume(scene, case, "anterior")]
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = hierarchy.CreateStudyItem(hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Patient"), "Study")
    hierarchy.CreateItem(study, volumes[0])
    ai_nodes = bonescan_scene.segment(scene, volumes, models)
    edited = editable_copy(scene, ai_nodes[0])
    table, _ = bonescan_scene.compute_bstbi(scene, volumes, [edited])
    for node in (ai_nodes[0], edited, table):
        assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == study, node.GetName()
    provenance = get_json_attribute(table, bonescan_scene.RESULT)
    assert {m["id"] for m in provenance["models"]} == {"bonescan-resnet34-demo", "bonescan-unet-demo"}
    assert provenance["smartimaging_version"]


def test_volume_node_with_dark_uptake_is_read_as_counts(scene, case):
    counts = case.views["anterior"]
    image = sitk.GetImageFromArray((counts.max() - counts)[None])
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "exported png")
    sitk_to_volume_node(image, node)
    study = bonescan_scene.study_from_volume_nodes([node])
    assert counts.min() == 0
    assert np.array_equal(study.views[0].counts, counts)
