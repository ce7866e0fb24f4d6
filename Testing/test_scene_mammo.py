"""MammoRadiomics MRML adapter on a real vtkMRMLScene: markups point/box prompts, AI vs edited ROI, Rad-score table."""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from smartimaging.errors import InputError
from smartimaging.evaluation import dice
from smartimaging.mammo import scene as mammo_scene
from smartimaging.mammo.segment import MammoSegmenter, prompt_point
from smartimaging.mrml import get_json_attribute, ijk_to_ras_matrix, sitk_to_volume_node, volume_node_to_sitk
from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom
from smartimaging.segmentation_nodes import ROLE, editable_copy, labels_from_segmentation
from smartimaging.segments import BREAST_MASS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def segmenter():
    return MammoSegmenter.load("mass", device="cpu")


@pytest.fixture()
def mammogram(scene):
    case = make_mammo_phantom(910_001, "mass", 1)
    image = sitk.GetImageFromArray(case.image[None])
    image.SetSpacing((PIXEL_MM, PIXEL_MM, 1.0))
    image.SetOrigin((-40.0, 25.0, 0.0))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "phantom mammogram")
    sitk_to_volume_node(image, node)
    return case, node


def _ras(volume_node, row, col):
    return (ijk_to_ras_matrix(volume_node) @ np.array([col, row, 0.0, 1.0]))[:3]


def test_point_prompt_segment_edit_and_classify(scene, segmenter, mammogram):
    case, volume = mammogram
    row, col = prompt_point(case.mask)
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    markups.AddControlPoint(*_ras(volume, row, col))
    point = mammo_scene.point_from_markups(volume, markups)
    assert point == pytest.approx((row, col), abs=1e-6)

    ai = mammo_scene.segment(scene, volume, "mass", segmenter, point=point)
    assert ai.GetAttribute(ROLE) == "AI"
    assert ai.GetSegmentation().GetNthSegment(0).GetName() == BREAST_MASS.name
    ai_mask = labels_from_segmentation(scene, ai, volume, (BREAST_MASS,))[0]
    assert dice(ai_mask, case.mask) > 0.8

    edited = editable_copy(scene, ai)
    reduced = ai_mask.copy()
    reduced[: int(row)] = 0  # the reader trims the upper half
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    trimmed = sitk.GetImageFromArray(reduced[None])
    trimmed.CopyInformation(volume_node_to_sitk(volume))
    sitk_to_volume_node(trimmed, labelmap)
    segment_id = edited.GetSegmentation().GetNthSegmentID(0)
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(labelmap), edited, segment_id,
        slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)

    table, prediction = mammo_scene.classify(scene, volume, edited, "mass")
    rows = {table.GetCellText(r, 0): table.GetCellText(r, 1) for r in range(table.GetNumberOfRows())}
    assert rows["ROI"] == "reader edited"
    assert rows["ROI pixels"] == str(int(reduced.sum()))
    assert 0 < float(rows["Dice AI vs edited ROI"]) < 1
    assert rows["Label"] in ("benign", "malignant") and 0 <= float(rows["Rad-score"]) <= 1
    assert sum(name.startswith("original_") for name in rows) == 102
    record = get_json_attribute(table, mammo_scene.RESULT)
    assert [m["id"] for m in record["models"]] == ["mammo-mass-unet-demo", "mammo-mass-classifier-demo"]
    assert record["warnings"] == []  # the volume carries the 0.2 mm spacing the classifier was trained on
    # the AI segmentation is unchanged by the edit
    assert np.array_equal(labels_from_segmentation(scene, ai, volume, (BREAST_MASS,))[0], ai_mask)


def test_box_prompt_from_a_markups_roi(scene, segmenter, mammogram):
    case, volume = mammogram
    rows, cols = np.nonzero(case.mask)
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    corner_a, corner_b = _ras(volume, rows.min() - 4, cols.min() - 4), _ras(volume, rows.max() + 5, cols.max() + 5)
    roi.SetCenter(*((corner_a + corner_b) / 2))
    roi.SetSize(*np.abs(corner_b - corner_a) + [0, 0, 1])
    box = mammo_scene.box_from_markups_roi(volume, roi)
    assert box[0] <= rows.min() and box[2] >= rows.max() and box[1] <= cols.min() and box[3] >= cols.max()
    ai = mammo_scene.segment(scene, volume, "mass", segmenter, box=box)
    assert dice(labels_from_segmentation(scene, ai, volume, (BREAST_MASS,))[0], case.mask) > 0.8


def test_bad_prompts(scene, segmenter, mammogram):
    _, volume = mammogram
    with pytest.raises(InputError, match="Place a point"):
        mammo_scene.point_from_markups(volume, scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode"))
    with pytest.raises(InputError, match="outside the image"):
        mammo_scene.segment(scene, volume, "mass", segmenter, point=(5000.0, 10.0))
    with pytest.raises(InputError, match="Select the mammogram"):
        mammo_scene.mammogram_from_volume_node(None)
