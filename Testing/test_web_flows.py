"""The modules' reading flows (`<task>/flow.py`, which the desktop widgets and the station both drive) on a real
trame-slicer SlicerApp scene (no browser), each step polled as the GUIs poll it: sample cases, each module's load ->
Segment (or draw the ROI by hand) -> compute, edits reaching the result, ROI source and domain check, bad input and
cancel; uploads' limits and checks."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

pytest.importorskip("trame_slicer")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from trame_slicer.core import SlicerApp  # noqa: E402
from trame_slicer.segmentation import SegmentationEffectPaint  # noqa: E402
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

from smartimaging.bonescan.flow import BoneScanFlow  # noqa: E402
from smartimaging.errors import CancelledError, InputError  # noqa: E402
from smartimaging.lvi.flow import LVIFlow  # noqa: E402
from smartimaging.mammo.flow import MammoFlow  # noqa: E402
from smartimaging.mrml import volume_node_to_sitk  # noqa: E402
from smartimaging.reading import Result  # noqa: E402
from smartimaging.result_nodes import VERDICTS, domain_check, domain_sentence  # noqa: E402
from smartimaging.web.app import FLOWS  # noqa: E402
from smartimaging.web.cases import MB, UPLOAD_CHUNK_BYTES, Upload, UploadLimits, format_size, sample_cases  # noqa: E402


@pytest.fixture(scope="module")
def slicer_app():
    return SlicerApp()


@pytest.fixture(scope="module")
def cases():
    return sample_cases()


def _run(step):
    """Poll a flow's step to its end, as the GUIs do between their other work; its value."""
    while not step.poll():
        time.sleep(0.02)
    return step.value


def _load(flow, case, folder):
    files = case.write(folder)
    flow.set_case_options(files.kind, files.pixel_mm)
    for role, path in files.volumes.items():
        flow.load(role, path)
    if files.point_lps is not None:
        flow.set_point_lps(files.point_lps)
    return files


def test_every_module_has_sample_cases_that_write_readable_files(cases, tmp_path):
    assert set(cases) == set(FLOWS)
    for module, module_cases in cases.items():
        assert module_cases, module
        files = module_cases[0].write(tmp_path / module)
        assert set(files.volumes) <= set(FLOWS[module].roles)
        assert FLOWS[module].roles[0] in files.volumes
        assert all(path.is_file() for path in files.volumes.values())


def test_lvi_sample_point_lies_in_the_cancer(cases, tmp_path):
    files = cases["BreastLVI"][0].write(tmp_path)
    image = sitk.ReadImage(str(files.volumes["DCE"]))
    index = image.TransformPhysicalPointToIndex(files.point_lps)
    assert all(0 <= i < s for i, s in zip(index, image.GetSize(), strict=True))


def test_bone_scan_flow_segments_in_the_worker_and_edits_change_bstbi(slicer_app, cases, tmp_path):
    flow = BoneScanFlow(slicer_app.scene)
    _load(flow, cases["BoneScanBSTBI"][0], tmp_path)
    events = []
    _run(flow.segment(lambda fraction, message: events.append((fraction, message))))
    assert events and events[-1][0] > 0.5  # the worker reported progress
    assert flow.ai_segmentation.GetDisplayNode().GetVisibility() == 0  # AI kept, hidden; the copy is edited
    assert "Bone metastasis:" in flow.segment_summary()
    before = _run(flow.compute(lambda *_: None))
    assert before.headline.startswith("BSTBI ")
    mean = float(before.headline.split()[1])
    assert 0 < mean < 5
    assert ["Reader edited", "no"] in before.rows  # an untouched copy is not an edit
    assert before.domain["verdict"] in VERDICTS and before.domain["text"]  # the result's domain check, end to end

    # The reader removes every metastasis: BSTBI drops to 0, the AI segmentation is untouched.
    segmentation = flow.segmentation.GetSegmentation()
    segment_id = next(segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())
                      if segmentation.GetNthSegment(i).GetName() == "Bone metastasis")
    assert not flow.result_is_stale
    segmentation.RemoveSegment(segment_id)
    assert flow.result_is_stale  # the BSTBI shown is not the edited segmentation's
    after = _run(flow.compute(lambda *_: None))
    assert not flow.result_is_stale
    assert after.headline == "BSTBI 0.000"
    assert ["Reader edited", "yes"] in after.rows
    assert after.table_node is before.table_node  # the table is updated, not duplicated
    assert "Bone metastasis" in [flow.ai_segmentation.GetSegmentation().GetNthSegment(i).GetName()
                                 for i in range(flow.ai_segmentation.GetSegmentation().GetNumberOfSegments())]


def test_mammo_flow_says_when_the_file_gave_no_pixel_size(slicer_app, cases, tmp_path):
    flow = MammoFlow(slicer_app.scene)
    files = cases["MammoRadiomics"][0].write(tmp_path)  # a PNG: no pixel size in the file
    flow.kind, flow.pixel_mm = files.kind, None
    flow.load("mammogram", files.volumes["mammogram"])
    flow.set_point_lps(tuple(v / files.pixel_mm for v in files.point_lps[:2]) + (files.point_lps[2],))
    _run(flow.segment(lambda *_: None))
    result = _run(flow.compute(lambda *_: None))
    assert any("no pixel size in its file (read as 1 mm" in warning for warning in result.warnings), result.warnings
    assert result.domain["verdict"] == "outside"


def test_mammo_flow_point_prompt_and_rad_score(slicer_app, cases, tmp_path):
    flow = MammoFlow(slicer_app.scene)
    files = _load(flow, cases["MammoRadiomics"][0], tmp_path)
    assert flow.geometry["mammogram"].startswith("480×640×1 voxels of 0.2×0.2×1 mm")
    assert volume_node_to_sitk(flow.primary).GetSpacing()[:2] == pytest.approx((files.pixel_mm, files.pixel_mm))
    _run(flow.segment(lambda *_: None))
    pixels = int(flow.segment_summary().split(": ")[1].split()[0])
    assert 50 < pixels < 5000  # one mass, not the whole image
    result = _run(flow.compute(lambda *_: None))
    score = float(result.headline.split()[1])
    assert 0 <= score <= 1
    assert ["ROI", "AI"] in result.rows  # the copy is untouched
    assert result.domain["verdict"] in VERDICTS and ["Domain check", result.domain["text"]] in result.rows
    assert not flow.result_is_stale

    # The reader empties the ROI and computes: refused, and the previous Rad-score is marked as not current.
    _empty_segmentation(flow)
    assert flow.result_is_stale
    with pytest.raises(InputError, match="The ROI is empty"):
        _run(flow.compute(lambda *_: None))
    assert flow.result is result and flow.result_is_stale


def _empty_segmentation(flow) -> None:
    """Erase every voxel of the reader's segmentation, as the eraser does."""
    import slicer

    segmentation = flow.segmentation.GetSegmentation()
    representation = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    for index in range(segmentation.GetNumberOfSegments()):
        labelmap = segmentation.GetNthSegment(index).GetRepresentation(representation)
        labelmap.GetPointData().GetScalars().Fill(0)
        labelmap.Modified()


def _draw(flow, segment_name: str, centre_lps, radius_mm: float) -> int:
    """Paint a disc (2D) or ball (3D) of `radius_mm` around `centre_lps` into the reader's segment `segment_name`,
    through the segmentation API as Slicer's Paint effect writes it; the number of voxels painted."""
    import slicer

    logic = slicer.vtkSlicerSegmentationsModuleLogic
    image = volume_node_to_sitk(flow.primary)
    labelmap = logic.CreateOrientedImageDataFromVolumeNode(flow.primary)
    labelmap.AllocateScalars(3, 1)  # VTK_UNSIGNED_CHAR
    k, j, i = np.indices(image.GetSize()[::-1])
    points = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    origin, spacing = np.array(image.GetOrigin()), np.array(image.GetSpacing())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    lps = origin + (points * spacing) @ direction.T
    inside = (np.linalg.norm((lps - np.array(centre_lps))[:, :2 if image.GetSize()[2] == 1 else 3], axis=1)
              <= radius_mm).reshape(image.GetSize()[::-1])
    vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = inside.ravel().astype(np.uint8)
    segmentation = flow.segmentation.GetSegmentation()
    segment_id = next(segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())
                      if segmentation.GetNthSegment(n).GetName() == segment_name)
    logic.SetBinaryLabelmapToSegment(labelmap, flow.segmentation, segment_id, logic.MODE_REPLACE)
    return int(inside.sum())


def _segments(flow) -> dict[str, object]:
    segmentation = flow.segmentation.GetSegmentation()
    return {segmentation.GetNthSegment(n).GetName(): segmentation.GetNthSegment(n)
            for n in range(segmentation.GetNumberOfSegments())}


def test_mammo_roi_drawn_by_hand_is_an_empty_coded_segment_that_compute_uses(slicer_app, cases, tmp_path):
    import slicer

    flow = MammoFlow(slicer_app.scene)
    files = _load(flow, cases["MammoRadiomics"][0], tmp_path)
    _run(flow.segment(lambda *_: None))
    ai_node = flow.ai_segmentation
    assert flow.roi_source == "AI"
    flow.draw_by_hand()
    assert flow.ai_segmentation is None and not slicer_app.scene.IsNodePresent(ai_node)  # one ROI at a time
    assert flow.segmentation.GetName() == f"{flow.primary.GetName()} drawn mass"
    (segment,) = _segments(flow).values()
    assert segment.GetName() == "Breast mass"
    assert "Mass" in segment.GetTerminology() and segment.GetColor() == pytest.approx((0.95, 0.45, 0.15))
    assert flow.segment_summary() == "Breast mass: 0 pixels"
    converter = slicer.vtkSegmentationConverter
    geometry = slicer.vtkOrientedImageData()
    converter.DeserializeImageGeometry(flow.segmentation.GetSegmentation().GetConversionParameter(
        converter.GetReferenceImageGeometryParameterName()), geometry)
    flow.primary.GetRASToIJKMatrix(matrix := vtk.vtkMatrix4x4())
    assert geometry.GetDimensions() == flow.primary.GetImageData().GetDimensions()  # painted voxels are its pixels
    geometry.GetWorldToImageMatrix(world_to_image := vtk.vtkMatrix4x4())
    assert [world_to_image.GetElement(r, c) for r in range(4) for c in range(4)] == pytest.approx(
        [matrix.GetElement(r, c) for r in range(4) for c in range(4)])
    assert flow.roi_source == "drawn by the reader"
    with pytest.raises(InputError, match="The ROI is empty"):
        _run(flow.compute(lambda *_: None))

    painted = _draw(flow, "Breast mass", files.point_lps, 4.0)
    assert flow.segment_summary() == f"Breast mass: {painted} pixels"
    result = _run(flow.compute(lambda *_: None))
    assert 0 <= float(result.headline.split()[1]) <= 1
    assert ["ROI pixels", str(painted)] in result.rows  # the drawn disc, not the AI's ROI
    assert result.roi_source == "drawn by the reader"
    assert ["ROI", "drawn by the reader"] in result.rows  # the result table says so too
    assert "Dice AI vs edited ROI" not in [row[0] for row in result.rows]  # no AI proposal to compare with


def test_bone_scan_metastases_drawn_by_hand_give_the_bstbi(slicer_app, cases, tmp_path):
    flow = BoneScanFlow(slicer_app.scene)
    _load(flow, cases["BoneScanBSTBI"][0], tmp_path)
    with pytest.raises(InputError, match=r"Press Segment \(or Draw ROI by hand\) first"):
        _run(flow.compute(lambda *_: None))
    flow.draw_by_hand()
    assert list(_segments(flow)) == ["Bone metastasis", "Urinary bladder"]
    assert flow.segment_summary() == "Bone metastasis: 0 pixels · Urinary bladder: 0 pixels"
    assert _run(flow.compute(lambda *_: None)).headline == "BSTBI 0.000"  # nothing drawn yet: no tumour burden
    image = volume_node_to_sitk(flow.primary)
    centre = image.TransformContinuousIndexToPhysicalPoint([(size - 1) / 2 for size in image.GetSize()[:2]] + [0])
    _draw(flow, "Bone metastasis", centre, 15.0)
    result = _run(flow.compute(lambda *_: None))
    assert float(result.headline.split()[1]) > 0
    assert result.roi_source == "drawn by the reader"


def test_lvi_voi_drawn_by_hand_reaches_the_networks(slicer_app, cases, tmp_path):
    flow = LVIFlow(slicer_app.scene)
    files = _load(flow, cases["BreastLVI"][0], tmp_path)
    flow.draw_by_hand()
    assert list(_segments(flow)) == ["Breast mass"]
    assert flow.segmentation.GetName().endswith("drawn lesion VOI")
    assert _draw(flow, "Breast mass", files.point_lps, 8.0) > 50
    result = _run(flow.compute(lambda *_: None))
    fused = next(row for row in result.rows if row[0] == "fused")
    assert 0 <= float(fused[2]) <= 1
    assert result.roi_source == "drawn by the reader"


def test_dce_without_a_real_dce_has_no_roi_to_draw_and_still_its_domain_check(slicer_app, cases, tmp_path):
    flow = FLOWS["DCESynthesis"](slicer_app.scene)
    files = cases["DCESynthesis"][0].write(tmp_path)
    flow.load("T1", files.volumes["T1"])
    with pytest.raises(InputError, match="no ROI to draw"):
        flow.draw_by_hand()
    result = _run(flow.compute(lambda *_: None))
    assert result.table_node is None and result.headline.endswith("(no real DCE to compare with)")
    assert result.domain["verdict"] in VERDICTS  # read from the synthetic DCE volume's record


def test_an_edited_proposal_is_told_apart_from_the_untouched_one(slicer_app, cases, tmp_path):
    flow = MammoFlow(slicer_app.scene)
    _load(flow, cases["MammoRadiomics"][0], tmp_path)
    _run(flow.segment(lambda *_: None))
    assert flow.roi_source == "AI"
    _empty_segmentation(flow)
    assert flow.roi_source == "reader edited"


@pytest.mark.parametrize(("rows", "verdict"), [
    ([["Rad-score", "0.8"], ["Domain check", "outside the model's training data (pixel size 0.05 mm, trained on "
                                            "0.2 mm)"]], "outside"),
    ([["fused", "mean", "0.5"], ["Domain check", "inside the model's training data", ""]], "inside"),
    ([["Domain check", "unknown: the model card does not describe its training data"]], "unknown"),
    ([["Rad-score", "0.8"]], None),
])
def test_the_domain_check_is_read_from_the_result_table_row(rows, verdict):
    domain = Result("score", ["Quantity", "Value"], rows).domain
    assert (domain or {}).get("verdict") == verdict
    if verdict:
        assert domain["text"] == rows[-1][1]


def test_the_domain_check_prefers_the_result_record(slicer_app):
    from smartimaging.mrml import fill_table, set_json_attribute

    table = slicer_app.scene.AddNewNodeByClass("vtkMRMLTableNode")
    fill_table(table, ["Quantity", "Value"], [["Rad-score", "0.9"], ["Domain check", "inside the model's training "
                                                                                     "data"]])
    assert domain_check(table)["verdict"] == "inside"  # the table's own row
    record = {"rad_score": 0.9, "domain": {"verdict": "outside", "reasons": ["pixel size 0.05 mm (trained on 0.2)"],
                                           "text": "outside the model's training data (pixel size 0.05 mm)"}}
    set_json_attribute(table, "SmartImaging.MammoResult", record)
    assert domain_check(table) == record["domain"]
    assert domain_sentence(record["domain"]).endswith("do not rely on it.")
    slicer_app.scene.RemoveNode(table)


def test_mammo_result_warnings_are_the_results_warnings(slicer_app, cases, tmp_path):
    flow = MammoFlow(slicer_app.scene)
    files = cases["MammoRadiomics"][0].write(tmp_path)
    flow.kind, flow.pixel_mm = files.kind, 0.1  # not the 0.2 mm the classifier was trained on
    flow.load("mammogram", files.volumes["mammogram"])
    flow.set_point_lps(tuple(v / 2 for v in files.point_lps))
    _run(flow.segment(lambda *_: None))
    result = _run(flow.compute(lambda *_: None))
    assert any("trained on 0.2 mm pixels" in text for text in result.warnings)
    assert result.warnings == [row[1] for row in result.rows if row[0] == "Warning"]


def test_result_warnings_come_from_the_table_rows():
    result = Result("LVI probability 0.5", ["Sequence", "Model"], [["fused", "mean"], ["warning", "VOI covers 100%"],
                                                                   ["Warning", "grids differ"]], None, ["grids differ"])
    assert result.warnings == ["grids differ", "VOI covers 100%"]


@pytest.mark.parametrize("module", ["BreastLVI", "DCESynthesis"])
def test_mri_flows_end_to_end(slicer_app, cases, tmp_path, module):
    flow = FLOWS[module](slicer_app.scene)
    _load(flow, cases[module][0], tmp_path)
    if flow.needs_segment:
        _run(flow.segment(lambda *_: None))
        assert "Breast mass:" in flow.segment_summary()
        assert flow.segmentation.GetName().endswith("edited lesion VOI")  # told apart from the AI VOI
    result = _run(flow.compute(lambda *_: None))
    assert result.domain["verdict"] in VERDICTS
    if module == "BreastLVI":
        fused = next(row for row in result.rows if row[0] == "fused")
        assert 0 <= float(fused[2]) <= 1
        heat_map = volume_node_to_sitk(flow.overlay)
        assert heat_map.GetSize() == volume_node_to_sitk(flow.primary).GetSize()
        assert not flow.result_is_stale
        _empty_segmentation(flow)
        with pytest.raises(InputError, match="empty"):
            _run(flow.compute(lambda *_: None))
        assert flow.result is result and flow.result_is_stale
        assert flow.overlay is not None  # the kept result's heat map stays with it
    else:
        with pytest.raises(InputError, match="no segmentation step"):
            _run(flow.segment(lambda *_: None))
        ssim = float(result.headline.split("SSIM ")[1].split()[0])
        assert 0.6 < ssim <= 1
        assert flow.layout == "side-by-side"
        synthetic = volume_node_to_sitk(flow.view_volumes["DCE-Synthetic"])
        t1 = volume_node_to_sitk(flow.primary)
        assert synthetic.GetOrigin() == pytest.approx(t1.GetOrigin())
        assert synthetic.GetSpacing() == pytest.approx(t1.GetSpacing())


def test_bad_input_gives_a_clear_message_and_leaves_the_scene_alone(slicer_app, tmp_path):
    flow = MammoFlow(slicer_app.scene)
    corrupt = tmp_path / "broken.dcm"
    corrupt.write_bytes(b"DICM" + bytes(200))
    before = slicer_app.scene.GetNumberOfNodes()
    with pytest.raises(InputError, match="broken.dcm"):
        flow.load("mammogram", corrupt)
    assert slicer_app.scene.GetNumberOfNodes() == before
    with pytest.raises(InputError, match="Load the mammogram"):
        _run(flow.segment(lambda *_: None))
    with pytest.raises(InputError, match=r"Press Segment \(or Draw ROI by hand\) first"):
        _run(flow.compute(lambda *_: None))
    with pytest.raises(InputError, match="takes mammogram"):
        flow.load("T2", corrupt)


def test_wrong_modality_is_refused(slicer_app, tmp_path):
    flow = BoneScanFlow(slicer_app.scene)
    volume = sitk.GetImageFromArray(np.zeros((20, 30, 30), np.float32))
    path = tmp_path / "ct_like.nrrd"
    sitk.WriteImage(volume, str(path))
    with pytest.raises(InputError, match="frames or slices"):
        flow.load("scan", path)


def test_cancel_stops_the_worker_and_adds_nothing(slicer_app, cases, tmp_path):
    flow = BoneScanFlow(slicer_app.scene)
    _load(flow, cases["BoneScanBSTBI"][0], tmp_path)
    nodes_before = slicer_app.scene.GetNumberOfNodes()

    step = flow.segment(lambda *_: None)
    while flow.worker is None:
        step.poll()
    time.sleep(1.0)
    assert flow.cancel()
    with pytest.raises(CancelledError, match="nothing was added"):
        _run(step)
    assert flow.segmentation is None
    assert slicer_app.scene.GetNumberOfNodes() == nodes_before


@pytest.fixture(scope="module")
def station():
    """The station's page state and callbacks, without a browser (one per test module: it holds trame's server)."""
    from smartimaging.web.app import ReadingStation

    return ReadingStation()


def test_station_links_the_dce_views_and_keeps_the_mip_apart(station):
    station.state.si_module = "DCESynthesis"
    station._on_module_changed("DCESynthesis")

    async def load_and_synthesize():
        await station._load_sample(lambda *_: None)
        await station._compute(lambda *_: None)

    asyncio.run(load_and_synthesize())
    views = [station.slicer_app.view_manager.get_view(tag) for tag in ("DceT1", "DceSynthetic", "DceReal", "DceMip")]
    assert station.state.si_layout["DCESynthesis"] == "side-by-side"  # the page's note on the four views
    backgrounds = [station.slicer_app.scene.GetNodeByID(view.get_background_volume_id()).GetName() for view in views]
    assert backgrounds[0].endswith("T1") and "synthetic DCE" in backgrounds[1]
    assert backgrounds[2].endswith("DCE") and "MIP" in backgrounds[3]
    mip_offset = views[3].get_slice_value()
    logic = views[0]._logic  # a scroll in the view, as the interactor does it
    logic.StartSliceOffsetInteraction()
    logic.SetSliceOffset(views[0].get_slice_value() + 5)
    logic.EndSliceOffsetInteraction()
    assert views[1].get_slice_value() == pytest.approx(views[0].get_slice_value())
    assert views[2].get_slice_value() == pytest.approx(views[0].get_slice_value())
    assert views[3].get_slice_value() == pytest.approx(mip_offset)


def test_upload_limits_default_and_from_the_environment(monkeypatch):
    assert UploadLimits() == UploadLimits.from_environment() == UploadLimits(512 * MB, 1024 * MB)
    assert 200 * 512 * 512 * 2 < UploadLimits().total_bytes  # a 200-slice DICOM series of 512x512 int16
    monkeypatch.setenv("SMARTIMAGING_UPLOAD_MAX_FILE_MB", "3")
    monkeypatch.setenv("SMARTIMAGING_UPLOAD_MAX_TOTAL_MB", " 4 ")
    assert UploadLimits.from_environment() == UploadLimits(3 * MB, 4 * MB)
    for bad in ("0", "-1", "1.5", "abc"):
        monkeypatch.setenv("SMARTIMAGING_UPLOAD_MAX_FILE_MB", bad)
        with pytest.raises(InputError, match="SMARTIMAGING_UPLOAD_MAX_FILE_MB"):
            UploadLimits.from_environment()
    assert [format_size(size) for size in (900, 900 * 1024, 5 * MB, 512 * MB, int(1.2 * 1024 * MB))] == [
        "900 bytes", "900 KB", "5 MB", "512 MB", "1.2 GB"]


def test_an_upload_is_written_to_disk_chunk_by_chunk(tmp_path):
    content = bytes(range(256)) * (UPLOAD_CHUNK_BYTES // 256 + 3)
    upload = Upload(tmp_path, [{"name": "../../etc/scan.dcm", "size": len(content)}, {"name": "empty", "size": 0}],
                    UploadLimits())
    assert [path.name for path in upload.paths] == ["scan.dcm", "empty"]  # never a path the browser chose
    assert all(path.parent == upload.folder and path.parent.parent == tmp_path for path in upload.paths)
    for offset in range(0, len(content), UPLOAD_CHUNK_BYTES):
        upload.write(0, offset, content[offset:offset + UPLOAD_CHUNK_BYTES])
    assert upload.fraction == 1
    paths = upload.finish()
    assert paths[0].read_bytes() == content and paths[1].read_bytes() == b""
    upload.discard()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("manifest", "message"), [
    ([], "No file was received"),
    ("scan.dcm", "No file was received"),
    ([{"name": "..", "size": 1}], "'..' is not a file name"),
    ([{"name": "", "size": 1}], "'' is not a file name"),
    ([{"name": "x" * 300, "size": 1}], "is not a file name"),
    ([{"name": 5, "size": 1}], "5 is not a file name"),
    ([{"name": "a.dcm", "size": 1}, {"name": "dir/a.dcm", "size": 1}], "a.dcm is sent twice"),
    ([{"name": "a.dcm", "size": -1}], "a.dcm has no valid size"),
    ([{"name": "a.dcm", "size": True}], "a.dcm has no valid size"),
    ([{"name": "a.dcm"}], "a.dcm has no valid size"),
    ([{"name": "scan.dcm", "size": int(1.2 * 1024 * MB)}],
     r"^scan.dcm is 1.2 GB; the station accepts files up to 512 MB\. Export a smaller file, or start the station "
     r"with a larger SMARTIMAGING_UPLOAD_MAX_FILE_MB\.$"),
    ([{"name": f"{i}.dcm", "size": 300 * MB} for i in range(4)],
     r"^The 4 files are 1.2 GB together; the station accepts up to 1 GB per upload\. Upload one series \(or one "
     r"file\) at a time, or start the station with a larger SMARTIMAGING_UPLOAD_MAX_TOTAL_MB\.$"),
    ([{"name": f"{i}.dcm", "size": 1} for i in range(10_001)],
     r"10001 files in one upload; the station accepts up to 10000\. Upload the files of one series"),
])
def test_an_upload_is_refused_before_any_file_is_written(tmp_path, manifest, message):
    with pytest.raises(InputError, match=message):
        Upload(tmp_path, manifest, UploadLimits())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("index", "offset", "data", "message"), [
    (0, 0, b"x" * 11, "a.dcm is larger than the 10 bytes it declared"),
    (0, 5, b"x", "a.dcm arrived out of order"),
    (1, 0, b"x", "not a file chunk"),
    ("0", 0, b"x", "not a file chunk"),
    (0, 0, "text", "not a file chunk"),
    (0, 0, b"x" * (UPLOAD_CHUNK_BYTES + 1), "not a file chunk"),
])
def test_a_chunk_that_breaks_the_declaration_is_refused(tmp_path, index, offset, data, message):
    upload = Upload(tmp_path, [{"name": "a.dcm", "size": 10}], UploadLimits())
    with pytest.raises(InputError, match=message):
        upload.write(index, offset, data)
    assert upload.paths[0].read_bytes() == b""


def test_an_incomplete_upload_is_refused(tmp_path):
    upload = Upload(tmp_path, [{"name": "a.dcm", "size": 10}], UploadLimits())
    upload.write(0, 0, b"x" * 4)
    with pytest.raises(InputError, match=r"a.dcm arrived incomplete \(4 bytes of 10 bytes\)"):
        upload.finish()


def test_station_keeps_a_refused_computes_old_result_stale_and_errors_per_module(station):
    state, module = station.state, "MammoRadiomics"
    state.si_module = module
    station._on_module_changed(module)

    async def step(*steps):
        for one in steps:
            await station._run(one)

    asyncio.run(step(station._load_sample, station._segment, station._compute))
    headline = state.si_headline[module]
    assert headline.startswith("Rad-score") and not state.si_stale[module] and not state.si_errors[module]
    assert not any(row[0] == "Warning" for row in state.si_rows[module])  # warnings go above the headline

    _empty_segmentation(station.flow)  # the reader erases the ROI and computes
    asyncio.run(step(station._compute))
    assert state.si_errors[module] == "The ROI is empty; draw it around the lesion"
    assert state.si_headline[module] == headline and state.si_stale[module]  # the old Rad-score, marked stale
    assert state.si_errors["BoneScanBSTBI"] == ""  # shown in its own module only

    state.si_module = "BoneScanBSTBI"
    station._on_module_changed("BoneScanBSTBI")
    station._on_upload_begin([{"name": "big.dcm", "size": 10**12}])
    assert state.si_errors["BoneScanBSTBI"].startswith("big.dcm is 931 GB")
    assert state.si_errors[module] == "The ROI is empty; draw it around the lesion"
    key = state.si_upload_key
    station._on_upload_begin([{"name": "big.dcm", "size": 10**12}])
    assert state.si_upload_key > key  # the refused file's name leaves the file input

    state.si_module = module
    station._on_module_changed(module)
    asyncio.run(step(station._load_sample))  # another case: its error and its result are gone
    assert state.si_errors[module] == "" and state.si_headline[module] == "" and not state.si_stale[module]


def test_station_offers_drawing_when_segment_fails_and_shows_the_drawn_roi(station):
    state, module = station.state, "BreastLVI"
    state.si_module = module
    station._on_module_changed(module)
    asyncio.run(station._run(station._load_sample))
    station.flow.point_node.RemoveAllControlPoints()  # no point: the AI cannot segment
    asyncio.run(station._run(station._segment))
    assert state.si_errors[module] == "Place a point on the lesion first" and state.si_offer_draw[module]
    asyncio.run(station._run(station._draw_by_hand))
    assert not state.si_errors[module] and not state.si_offer_draw[module]
    assert state.si_roi_source[module] == "drawn by the reader"
    assert state.si_has_segmentation[module] and state.si_segments[module] == "Breast mass: 0 voxels"
    editor = station.slicer_app.segmentation_editor
    assert editor.active_segmentation_node is station.flow.segmentation
    assert isinstance(editor.active_effect, SegmentationEffectPaint)  # ready to draw


def test_station_shows_the_domain_check_beside_the_score_and_not_in_the_table(station):
    state, module = station.state, "MammoRadiomics"
    flow = station.flows[module]
    outside = {"verdict": "outside", "reasons": ["pixel size 0.05 mm (trained on 0.2–0.2 mm)"],
               "text": "outside the model's training data (pixel size 0.05 mm (trained on 0.2–0.2 mm))"}
    flow.result = Result("Rad-score 0.900 (malignant)", ["Quantity", "Value"],
                         [["Rad-score", "0.900"], ["Domain check", outside["text"]]], domain=outside,
                         roi_source="drawn by the reader")
    station._publish(flow)
    assert state.si_domain[module] == {**outside, "raw": [""], "more": ""}  # no feature names to read plainly
    flow.result.domain = {**outside, "reasons": outside["reasons"] * 6}  # one more than the page shows
    station._publish(flow)
    assert state.si_domain[module]["more"] == "1 more reason"
    assert state.si_result_roi_source[module] == "drawn by the reader"
    assert state.si_rows[module] == [["Rad-score", "0.900"]]  # shown with the headline, not buried in the table
    flow.result = None
    station._publish(flow)
    assert state.si_domain[module] is None


def test_a_classical_proposal_is_labelled_as_such_before_and_after_an_edit(station, cases, tmp_path):
    from smartimaging.segmentation_nodes import CLASSICAL, ROI_SOURCE, segmentation_from_labels
    from smartimaging.segments import BREAST_MASS

    state, module = station.state, "MammoRadiomics"
    flow = station.flows[module]
    _load(flow, cases[module][0], tmp_path)
    labels = np.zeros(_array_shape(flow.primary), np.uint8)
    labels[0, 200:220, 150:170] = BREAST_MASS.label
    proposal = segmentation_from_labels(flow.scene, flow.primary, labels, (BREAST_MASS,), "grown mass", "AI")
    proposal.SetAttribute(ROI_SOURCE, CLASSICAL)  # as the scene adapters mark the fallback's ROI
    flow._keep_segmentation(proposal)
    station._publish(flow)
    assert state.si_roi_source[module] == "classical (AI found none)"
    _empty_segmentation(flow)
    assert flow.roi_source == "classical (AI found none), reader edited"


def _array_shape(volume_node) -> tuple[int, ...]:
    dims = volume_node.GetImageData().GetDimensions()
    return dims[2], dims[1], dims[0]


def test_a_sample_case_loaded_again_reuses_the_files_it_wrote(tmp_path):
    case = sample_cases()["BreastLVI"][0]  # a generated phantom: writing it took most of a load's time
    first = case.write(tmp_path)
    written = {path: path.stat().st_mtime_ns for path in first.volumes.values()}
    assert case.write(tmp_path) is first
    assert {path: path.stat().st_mtime_ns for path in first.volumes.values()} == written
    next(iter(written)).unlink()  # a file gone: the case is written again
    again = case.write(tmp_path)
    assert again is not first and all(path.is_file() for path in again.volumes.values())
    assert case.write(tmp_path / "elsewhere").volumes != first.volumes


def test_the_station_writes_each_modules_first_case_ahead(tmp_path):
    from smartimaging.web.cases import write_ahead

    cases = sample_cases()
    write_ahead(cases, tmp_path)
    for module, module_cases in cases.items():
        first = module_cases[0]
        assert first.folder(tmp_path).parent.name == module
        files = list(tmp_path.glob(f"{module}/*/*"))
        ahead = {path: path.stat().st_mtime_ns for path in files}
        written = first.write(first.folder(tmp_path))  # opening the module: nothing written again
        assert set(written.volumes.values()) <= set(files)
        assert {path: path.stat().st_mtime_ns for path in files} == ahead
