"""A worklist read through the modules' flows in a real MRML scene (slicer-core), as the station and the desktop
modules do: open, Segment, keep the proposal, edit, save, reopen where the reader stopped with the edit restored."""

import numpy as np
import pytest

from smartimaging.bonescan.cohort import write_phantom_cohort
from smartimaging.bonescan.flow import BoneScanFlow
from smartimaging.errors import InputError
from smartimaging.geometry import ras_point_from_lps
from smartimaging.mammo.cohort import write_mammo_phantom_cohort
from smartimaging.mammo.flow import MammoFlow
from smartimaging.mrml import create_headless_scene, ijk_to_ras_matrix, volume_node_to_sitk
from smartimaging.segmentation_nodes import labels_from_segmentation
from smartimaging.worklist import DONE, PROPOSED, ConflictError
from smartimaging.worklist_scene import WorklistReading, set_segments


def _segment_array(flow, node=None):
    return labels_from_segmentation(flow.scene, node or flow.segmentation, flow.primary, flow.drawn_segments)


def _paint(flow, array):
    set_segments(flow.scene, flow.segmentation, flow.primary, array.astype(np.uint8), flow.drawn_segments)


def test_mammo_propose_edit_save_and_resume(tmp_path):
    write_mammo_phantom_cohort(tmp_path, 3, seed=8, kind="mass")
    reading = WorklistReading(MammoFlow(create_headless_scene()), tmp_path)
    case = reading.open_case()
    assert case.case_id == reading.worklist.cases[0].case_id and reading.flow.kind == "mass"
    assert reading.labels() == {"kind": "mass"}
    key = reading.answer_key()
    assert key.shape == volume_node_to_sitk(reading.flow.primary).GetSize()[::-1] and key.any()
    rows, cols = np.nonzero(key[0])
    centre = ijk_to_ras_matrix(reading.flow.primary) @ [cols.mean(), rows.mean(), 0, 1]
    reading.flow.ensure_point_node().AddControlPoint(*centre[:3])
    reading.flow.run(reading.flow.segment())
    record = reading.keep_proposal()
    assert record["status"] == PROPOSED and record["model"]["id"] == "mammo-mass-unet-demo"
    assert len(record["model"]["sha256"]) == 64
    proposed = _segment_array(reading.flow)
    edited = proposed.copy()
    edited[0, rows.min():rows.min() + 6, cols.min():cols.max()] = 1  # the reader adds a strip
    _paint(reading.flow, edited)
    saved = reading.save({"kind": "mass", "pathology": "malignant", "birads": "4c"})
    assert saved["status"] == DONE and 0 < saved["dice_ai_vs_corrected"] < 1
    assert saved["roi_source"] == "reader edited" and saved["edit_seconds"] >= 0

    reopened = WorklistReading(MammoFlow(create_headless_scene()), tmp_path)
    assert reopened.open_case().case_id == case.case_id  # where the reader stopped
    assert np.array_equal(_segment_array(reopened.flow), edited)
    assert np.array_equal(_segment_array(reopened.flow, reopened.flow.ai_segmentation), proposed)
    assert reopened.flow.roi_source == "reader edited"
    assert reopened.labels()["pathology"] == "malignant"
    result = reopened.flow.run(reopened.flow.compute())
    assert result.headline.startswith("Rad-score")

    nxt = reopened.step(1)
    assert nxt.case_id == reopened.worklist.cases[1].case_id and reopened.flow.segmentation is None
    with pytest.raises(ConflictError):  # the first window still holds case 1 at its old revision
        reading.worklist.save(case.case_id, {"kind": "mass", "pathology": "benign"}, edited,
                              reopened.worklist.cases and _reference(reopened, case.case_id), (),
                              expected_revision=1)


def _reference(reading, case_id):
    import SimpleITK as sitk

    return sitk.ReadImage(str(reading.worklist.case_folder(case_id) / "corrected.seg.nrrd"))


def test_bone_scan_reopened_case_computes_as_when_proposed(tmp_path):
    write_phantom_cohort(tmp_path, 2, seed=4)
    reading = WorklistReading(BoneScanFlow(create_headless_scene()), tmp_path)
    reading.open_case()
    reading.flow.run(reading.flow.segment())
    reading.keep_proposal()
    first = reading.flow.run(reading.flow.compute())
    reading.save({"metastasis": "yes", "note": "rib lesion"})

    reopened = WorklistReading(BoneScanFlow(create_headless_scene()), tmp_path)
    reopened.open_case()
    again = reopened.flow.run(reopened.flow.compute())
    assert again.headline == first.headline  # BSTBI and the classifier's probability as when proposed
    assert reopened.worklist.manifest_rows()[0]["label"] == 1


def test_a_case_whose_image_was_replaced_refuses_the_saved_roi(tmp_path):
    write_mammo_phantom_cohort(tmp_path, 2, seed=9, kind="mass")
    reading = WorklistReading(MammoFlow(create_headless_scene()), tmp_path)
    reading.open_case()
    reading.flow.draw_by_hand()
    key = reading.answer_key()
    _paint(reading.flow, key > 0)
    reading.save({"kind": "mass", "pathology": "benign"})
    assert reading.worklist.record(reading.case.case_id)["roi_source"] == "drawn by the reader"
    reopened = WorklistReading(MammoFlow(create_headless_scene()), tmp_path)
    reopened.open_case()
    assert np.array_equal(_segment_array(reopened.flow), key > 0)
    assert reopened.flow.roi_source == "drawn by the reader"
    from PIL import Image

    image = reading.worklist.case(reading.case.case_id).inputs["mammogram"]
    Image.fromarray(np.random.default_rng(0).integers(0, 4000, (64, 64), dtype=np.uint16)).save(image)
    with pytest.raises(InputError, match="not on the grid"):
        reopened.open_case(reading.case.case_id)
    with pytest.raises(InputError, match="Open a case"):  # nothing is saved into a case that did not open
        reopened.save({"kind": "mass", "pathology": "benign"})


def test_a_damaged_saved_roi_is_refused_with_a_plain_message(tmp_path):
    write_mammo_phantom_cohort(tmp_path, 2, seed=9, kind="mass")
    reading = WorklistReading(MammoFlow(create_headless_scene()), tmp_path)
    reading.open_case()
    reading.flow.draw_by_hand()
    _paint(reading.flow, reading.answer_key() > 0)
    reading.save({"kind": "mass", "pathology": "benign"})
    corrected = reading.worklist.case_folder(reading.case.case_id) / "corrected.seg.nrrd"
    (tmp_path / "elsewhere.seg.nrrd").write_bytes(corrected.read_bytes())
    corrected.unlink()
    corrected.symlink_to(tmp_path / "elsewhere.seg.nrrd")  # a link: refused, never followed
    reopened = WorklistReading(MammoFlow(create_headless_scene()), tmp_path)
    with pytest.raises(InputError, match="corrected.seg.nrrd is not a plain file"):
        reopened.open_case(reading.case.case_id)
    corrected.unlink()
    corrected.write_text("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 40000 40000 40\nencoding: gzip\n\n")
    with pytest.raises(InputError, match="not on the grid"):  # 64 GB claimed: refused from the header
        reopened.open_case(reading.case.case_id)


def test_centre_point_helper_is_lps():
    assert ras_point_from_lps((1.0, 2.0, 3.0)) == pytest.approx((-1.0, -2.0, 3.0))
