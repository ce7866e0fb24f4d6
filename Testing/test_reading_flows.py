"""The reading flows as the desktop widgets drive them (slicer-core, no Qt, no browser): nodes chosen in the module's
selectors (`Flow.select`), each step run by `StepRunner` from a timer as the widget's qt.QTimer runs it, through
load -> segment -> edit -> compute -> result object; error paths (a worker error, a cancel, a failing result
callback) end the step, bring the buttons back and leave no scratch folder; the shared pieces of the contract (the
edit rule, the BSTBI change, the heat map's display, the reader's pixel size)."""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from smartimaging.bonescan.bstbi import bstbi_change
from smartimaging.bonescan.flow import BoneScanFlow
from smartimaging.errors import CancelledError, InputError, ModelError
from smartimaging.lvi import scene as lvi_scene
from smartimaging.lvi.flow import LVIFlow
from smartimaging.mammo.features import pixel_mm_of_row
from smartimaging.mammo.flow import MammoFlow, parse_pixel_mm
from smartimaging.mrml import sitk_to_volume_node
from smartimaging.reading import JobError, StepRunner, style_heat_map
from smartimaging.segmentation_nodes import edit_check, editable_copy, segmentation_from_labels
from smartimaging.segments import BONESCAN_SEGMENTS, BREAST_MASS


class Timer:
    """What the widget's qt.QTimer does for the runner: start, stop, and whether it would fire."""

    def __init__(self):
        self.active = False

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class Widget:
    """The widget's side of a step: the runner's callbacks, its buttons' state, and its timer's loop."""

    def __init__(self, on_done=None):
        self.timer = Timer()
        self.done, self.errors, self.over, self.progress = [], [], 0, []
        self.runner = StepRunner(self.timer, on_done or self.done.append, self.errors.append, self._over)
        self.buttons_enabled = True

    def _over(self):
        self.over += 1
        self.buttons_enabled = True

    def start(self, step):
        self.buttons_enabled = False
        self.runner.start(step)

    def wait(self, timeout_s: float = 300):
        """The event loop: the timer fires every 20 ms while it is active."""
        deadline = time.monotonic() + timeout_s
        while self.runner.busy:
            assert time.monotonic() < deadline, "the step did not end"
            assert self.timer.active, "a running step always has its timer going"
            time.sleep(0.02)
            self.runner.poll()
        assert not self.timer.active and self.over == 1 and self.buttons_enabled

    def on_progress(self, fraction, message):
        self.progress.append((fraction, message))


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The folder the flows' temporary folders go to, checked empty after each step."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _volume(scene, array, spacing, name, origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    sitk_to_volume_node(image, node)
    return node


@pytest.fixture
def lvi_case(scene):
    from smartimaging.phantoms.breast_mri import make_breast_mri_phantom

    case = make_breast_mri_phantom(990_001, (16, 96, 96), lvi=1)
    origin = (-96.0, -70.0, -20.0)
    volumes = {"DCE": _volume(scene, case.dce2, case.spacing, "phantom DCE", origin),
               "T2": _volume(scene, case.t2, case.spacing, "phantom T2", origin)}
    return volumes, case


def _reader_segmentation(scene, volume, mask):
    """A segmentation the reader made in Slicer's Segment Editor (not SmartImaging's), from a (k, j, i) mask."""
    from smartimaging.mrml import volume_node_to_sitk

    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(volume_node_to_sitk(volume))
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    sitk_to_volume_node(image, labelmap)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "reader VOI")
    slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    scene.RemoveNode(labelmap)
    return segmentation


def _bone_scan_views(scene):
    from smartimaging.phantoms.bonescan import PIXEL_MM, make_bone_scan_phantom

    case = make_bone_scan_phantom(seed=9)
    return case, [_volume(scene, case.views[name][None], (PIXEL_MM, PIXEL_MM, 1.0), f"phantom {name}")
                  for name in ("anterior", "posterior")]


def test_a_worker_error_ends_the_step_and_the_flow_recovers(scene, lvi_case, scratch, tmp_path):
    volumes, case = lvi_case
    reader_voi = _reader_segmentation(scene, volumes["DCE"], (case.lesions > 0).astype(np.uint8))
    flow = LVIFlow(scene, models_dir=str(tmp_path / "no-models"))
    flow.select(volumes, segmentation=reader_voi)
    widget = Widget()
    widget.start(flow.compute(widget.on_progress))
    widget.wait()
    (error,) = widget.errors
    assert isinstance(error, JobError) and "lvi-" in str(error) and not widget.done
    assert flow.result is None and flow.worker is None and flow.overlay is None
    assert list(scratch.iterdir()) == []  # the worker's inputs and outputs are gone

    flow.models_dir = None  # the reader fixes the cause and tries again: the same flow, buttons back
    widget = Widget()
    widget.start(flow.compute(widget.on_progress))
    widget.wait()
    assert not widget.errors and widget.done == [flow.result]
    assert flow.result.headline.startswith("LVI probability ") and flow.result.roi_source == "drawn by the reader"
    assert flow.result.domain["verdict"] in ("inside", "outside", "unknown")
    assert widget.progress[0] == (0.0, "Predict LVI: starting") and widget.progress[-1][0] == 1.0
    assert [message for _, message in widget.progress[1:-1]] == [
        "Predict LVI: loading the sequences and the models", "Predict LVI: model 1 of 2 (lvi-dce-resnet10-3d-demo)",
        "Predict LVI: model 2 of 2 (lvi-t2-resnet10-3d-demo)"]
    assert list(scratch.iterdir()) == []
    heat_map = flow.overlay
    assert heat_map.GetDisplayNode() is None  # made from an array: the GUIs style it
    style_heat_map(heat_map)
    assert heat_map.GetDisplayNode().GetColorNodeID() == "vtkMRMLColorTableNodeRainbow"
    assert heat_map.GetDisplayNode().GetApplyThreshold()


def test_a_worker_that_cannot_start_is_a_failed_job_and_leaves_no_scratch(scene, scratch, tmp_path):
    _, volumes = _bone_scan_views(scene)
    flow = BoneScanFlow(scene, python=str(tmp_path / "no-such-python"))
    flow.select({"scan": volumes[0]})
    widget = Widget()
    widget.start(flow.segment())
    widget.wait()
    (error,) = widget.errors
    assert isinstance(error, JobError) and str(error).startswith("The background process could not be started")
    assert flow.segmentation is None and flow.worker is None and list(scratch.iterdir()) == []


def test_lvi_point_segment_edit_and_predict_as_the_widget_does(scene, lvi_case, scratch):
    from smartimaging.geometry import lps_point_from_ras

    volumes, case = lvi_case
    flow = LVIFlow(scene)
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    flow.select(volumes, point_node=point)
    widget = Widget()
    widget.start(flow.segment())
    widget.wait()
    assert str(widget.errors[0]) == "Place a point on the lesion first" and flow.segmentation is None

    k, j, i = np.argwhere(case.lesions > 0).mean(axis=0)
    image = sitk.GetImageFromArray(case.lesions)
    image.SetSpacing(case.spacing)
    image.SetOrigin((-96.0, -70.0, -20.0))
    point.AddControlPoint(*lps_point_from_ras(image.TransformContinuousIndexToPhysicalPoint((i, j, k))))
    widget = Widget()
    widget.start(flow.segment())
    widget.wait()
    assert not widget.errors and flow.roi_source == "AI"
    assert flow.ai_segmentation.GetDisplayNode().GetVisibility() == 0  # kept, hidden; the reader edits the copy
    assert flow.segmentation.GetNodeReference("SmartImaging.AISegmentation") is flow.ai_segmentation

    labels = slicer.util.arrayFromVolume(volumes["DCE"]) * 0  # the reader erases the VOI's upper half
    labels[sitk.GetArrayFromImage(lvi_scene.voi_image(scene, flow.ai_segmentation, volumes["DCE"])) > 0] = 1
    labels[: labels.shape[0] // 2] = 0
    edited = segmentation_from_labels(scene, volumes["DCE"], labels.astype(np.uint8), (BREAST_MASS,), "edited", "x")
    flow.segmentation.GetSegmentation().DeepCopy(edited.GetSegmentation())
    scene.RemoveNode(edited)
    assert flow.roi_source == "reader edited"
    widget = Widget()
    widget.start(flow.compute())
    widget.wait()
    result = widget.done[0]
    dice = float(next(row for row in result.rows if row[1] == "Dice AI vs edited")[2])
    assert 0 < dice < 1 and result.roi_source == "reader edited"
    assert list(scratch.iterdir()) == []


def test_cancel_through_the_runner_stops_the_worker_and_adds_nothing(scene, scratch):
    _, volumes = _bone_scan_views(scene)
    flow = BoneScanFlow(scene)
    flow.select({"scan": volumes[0], "posterior": volumes[1]})
    nodes_before = scene.GetNumberOfNodes()
    widget = Widget()
    widget.start(flow.segment(widget.on_progress))
    while flow.worker is None or not widget.progress:
        time.sleep(0.02)
        widget.runner.poll()
    worker = flow.worker
    time.sleep(1.0)
    assert widget.runner.cancel()
    widget.wait()
    (error,) = widget.errors
    assert isinstance(error, CancelledError) and "nothing was added" in str(error)
    assert worker.cancelled and flow.segmentation is None and scene.GetNumberOfNodes() == nodes_before
    assert list(scratch.iterdir()) == []

    # The widget goes away (or the scene closes) while the networks run: stopped without a word, nothing left.
    widget = Widget()
    widget.start(flow.segment())
    assert list(scratch.iterdir())  # the worker's inputs
    worker = flow.worker
    widget.runner.abandon()
    assert worker.cancelled and not widget.runner.busy and not widget.timer.active
    assert not widget.errors and not widget.done and widget.over == 0
    assert list(scratch.iterdir()) == [] and scene.GetNumberOfNodes() == nodes_before
    widget = Widget()
    widget.start(flow.segment())  # and the flow takes the next step
    widget.wait()
    assert not widget.errors and flow.segmentation is not None


def test_bone_scan_two_volumes_segment_edit_exclude_compute_and_compare(scene, scratch):
    _, volumes = _bone_scan_views(scene)
    flow = BoneScanFlow(scene)
    flow.select({"scan": volumes[0], "posterior": volumes[1]})
    widget = Widget()
    widget.start(flow.segment(widget.on_progress))
    widget.wait()
    assert [message for _, message in widget.progress if "network" in message] == [
        f"Segment: {view} view {index} of 2, network {network}" for index, view in ((1, "anterior"), (2, "posterior"))
        for network in ("1 of 2 (metastasis classifier)", "2 of 2 (lesion segmenter)")]
    assert not widget.errors and len(flow.segmentations) == 2 and list(scratch.iterdir()) == []
    (posterior_ai, posterior_edited), = flow.other_views
    assert posterior_ai.GetDisplayNode().GetVisibility() == 0 and posterior_edited.GetAttribute(
        "SmartImaging.Role") == "edited"

    widget = Widget()
    widget.start(flow.compute())
    widget.wait()
    baseline = widget.done[0]
    assert not flow.result_is_stale and flow.roi_source == "AI" and ["Reader edited", "no"] in baseline.rows
    segmentation = posterior_edited.GetSegmentation()  # the reader edits the posterior view's copy
    segmentation.RemoveSegment(segmentation.GetNthSegmentID(0))
    assert flow.result_is_stale and flow.roi_source == "reader edited"
    widget = Widget()
    widget.start(flow.compute())
    widget.wait()
    baseline = widget.done[0]
    assert not flow.result_is_stale and ["Reader edited", "yes"] in baseline.rows
    mean = float(baseline.headline.split()[1])
    assert 0 < mean <= 1
    assert baseline.headline == f"BSTBI {float(baseline.table_node.GetAttribute('SmartImaging.BSTBI')):.3f}"
    baseline_table = scene.AddNewNodeByClass("vtkMRMLTableNode", "baseline")
    baseline_table.Copy(baseline.table_node)

    flow.set_exclude("1")  # the reader leaves lesion 1 out
    widget = Widget()
    widget.start(flow.compute())
    widget.wait()
    assert widget.done[0].table_node is baseline.table_node  # updated, not duplicated
    assert float(widget.done[0].headline.split()[1]) < mean
    change = flow.compare(baseline_table)
    rows = {change.GetCellText(r, 0): change.GetCellText(r, 1) for r in range(change.GetNumberOfRows())}
    assert float(rows["Change"]) < 0
    with pytest.raises(InputError, match="numbers separated by commas"):
        flow.set_exclude("first")
    with pytest.raises(InputError, match="Compute BSTBI for both"):
        BoneScanFlow(scene).compare(baseline_table)  # no follow-up result yet

    # The desktop's selector names the edited segmentation again (after a scene reload, say): the posterior's
    # is found through its source volume.
    other = BoneScanFlow(scene)
    other.select({"scan": volumes[0], "posterior": volumes[1]}, segmentation=flow.segmentation)
    assert other.segmentations == flow.segmentations and other.ai_segmentation is flow.ai_segmentation
    _, more = _bone_scan_views(scene)  # a posterior view selected after segmenting: compute says which view lacks one
    other.select({"scan": volumes[0], "posterior": more[1]}, segmentation=flow.segmentation)
    with pytest.raises(InputError, match="phantom posterior has no segmentation: press Segment"):
        other.run(other.compute())


def test_a_failing_result_callback_still_brings_the_buttons_back(scene):
    _, volumes = _bone_scan_views(scene)
    flow = BoneScanFlow(scene)
    flow.select({"scan": volumes[0]})
    widget = Widget()
    widget.start(flow.compute())
    widget.wait()
    assert str(widget.errors[0]).startswith("Press Segment (or Draw ROI by hand) first")

    flow.draw_by_hand()

    def show_result(_value):
        raise RuntimeError("the table view is gone")

    widget = Widget(on_done=show_result)
    widget.start(flow.compute())
    widget.wait()
    assert [str(e) for e in widget.errors] == ["the table view is gone"]
    assert flow.result.headline == "BSTBI 0.000"  # the flow kept its result; only showing it failed
    with pytest.raises(InputError, match="Wait until the running step is over"):
        busy = Widget()
        busy.runner.start(flow.compute())
        busy.runner.start(flow.compute())


def test_mammo_point_box_classify_and_batch_as_the_widget_does(scene, tmp_path):
    from PIL import Image

    from smartimaging.mammo.segment import prompt_point
    from smartimaging.mrml import ijk_to_ras_matrix
    from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom

    case = make_mammo_phantom(910_002, "mass", 1)
    volume = _volume(scene, case.image[None].astype(np.float32), (PIXEL_MM, PIXEL_MM, 1.0), "phantom mammogram")
    flow = MammoFlow(scene)
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    row, col = prompt_point(case.mask)
    point.AddControlPoint(*(ijk_to_ras_matrix(volume) @ [col, row, 0, 1])[:3])
    flow.select({"mammogram": volume}, point)
    flow.run(flow.segment())  # in this process: the widget runs it to its end
    result = flow.run(flow.compute())
    assert result.headline.startswith("Rad-score ") and ["ROI", "AI"] in result.rows

    rows, cols = np.nonzero(case.mask)
    box = (int(rows.min()) - 5, int(cols.min()) - 5, int(rows.max()) + 5, int(cols.max()) + 5)
    flow.select({"mammogram": volume}, segmentation=flow.segmentation, table_node=result.table_node)
    flow.run(flow.segment_box(box))  # no point: the box prompts the network
    box_mask = flow.segmentation
    assert json_attribute(flow.ai_segmentation)["box"] == list(box) and json_attribute(flow.ai_segmentation)[
        "point"] is None
    assert flow.run(flow.compute()).table_node is result.table_node and flow.segmentation is box_mask

    folder = tmp_path / "images"
    folder.mkdir()
    for seed in (910_003, 910_004):
        phantom = make_mammo_phantom(seed, "mass", seed % 2)
        Image.fromarray(phantom.image.round().astype(np.uint16)).save(folder / f"{seed}.png")
    widget = Widget()
    widget.start(flow.batch(folder, tmp_path / "out", progress=widget.on_progress))
    flow.run(flow.compute())  # the reader goes on reading while the batch runs
    widget.wait()
    table, event = widget.done[0]
    assert table.GetNumberOfRows() == 2 and event["images"] == 2 and event["failed"] == 0
    assert (tmp_path / "out" / "features.csv").is_file()


def test_the_desktops_png_mammogram_takes_the_readers_pixel_size(scene):
    """A PNG that Slicer loaded (its storage node names the file) has no pixel size: the result says so, until the
    reader gives one, which becomes the volume's spacing; a pixel size from a DICOM header is never replaced."""
    from smartimaging.mammo.scene import PIXEL_SIZE
    from smartimaging.mrml import get_json_attribute
    from smartimaging.phantoms.mammo import make_mammo_phantom

    case = make_mammo_phantom(910_002, "mass", 1)
    volume = _volume(scene, case.image[None].astype(np.float32), (1.0, 1.0, 1.0), "phantom mammogram")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName("/data/phantom mammogram.png")
    volume.SetAndObserveStorageNodeID(storage.GetID())
    flow = MammoFlow(scene)
    flow.select({"mammogram": volume})
    labels = np.zeros((1, *case.mask.shape), np.uint8)
    labels[0][case.mask > 0] = 1

    def paint():
        flow.draw_by_hand()
        painted = segmentation_from_labels(scene, volume, labels, (flow.drawn_segments[0],), "painted", "edited")
        flow.segmentation.GetSegmentation().DeepCopy(painted.GetSegmentation())
        scene.RemoveNode(painted)

    paint()
    result = flow.run(flow.compute())
    assert any("no pixel size in its file (read as 1 mm" in warning for warning in result.warnings), result.warnings
    assert result.domain["verdict"] == "outside"

    with pytest.raises(InputError, match="Pixel size '0,2' is not a number"):
        flow.set_pixel_size("0,2")
    flow.set_pixel_size("0.2")
    drawn = flow.segmentation
    flow.select({"mammogram": volume}, segmentation=drawn, table_node=result.table_node)
    assert volume.GetSpacing() == pytest.approx((0.2, 0.2, 1.0))
    assert get_json_attribute(volume, PIXEL_SIZE)["pixel_size_source"] == "given by the reader"
    assert flow.result is None and flow.segmentation is None and not scene.IsNodePresent(drawn)  # on the old grid
    paint()
    assert not any("no pixel size" in warning for warning in flow.run(flow.compute()).warnings)

    dicom = _volume(scene, case.image[None].astype(np.float32), (0.1, 0.1, 1.0), "dicom mammogram")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName("/data/mammogram.dcm")
    dicom.SetAndObserveStorageNodeID(storage.GetID())
    flow.select({"mammogram": dicom})
    assert dicom.GetSpacing() == pytest.approx((0.1, 0.1, 1.0)) and get_json_attribute(dicom, PIXEL_SIZE) is None


def json_attribute(node):
    from smartimaging.mrml import get_json_attribute

    return get_json_attribute(node, "SmartImaging.MammoSegmentation")


def test_the_edit_rule_is_the_same_for_every_module(scene):
    volume = _volume(scene, np.zeros((1, 20, 20), np.float32), (1.0, 1.0, 1.0), "image")
    labels = np.zeros((1, 20, 20), np.uint8)
    labels[0, 5:10, 5:10] = 1
    ai = segmentation_from_labels(scene, volume, labels, BONESCAN_SEGMENTS[:1], "AI", "AI")
    copy = editable_copy(scene, ai)
    drawn = segmentation_from_labels(scene, volume, labels, BONESCAN_SEGMENTS[:1], "drawn", "edited")

    def masks(nodes):
        from smartimaging.segmentation_nodes import labels_from_segmentation

        return {"m": np.concatenate([labels_from_segmentation(scene, node, volume, BONESCAN_SEGMENTS[:1]).ravel()
                                     for node in nodes])}

    assert edit_check([ai], masks) == (False, None)
    assert edit_check([copy], masks) == (False, {"m": 1.0})  # an untouched copy is no edit
    assert edit_check([drawn], masks) == (True, None)  # drawn by the reader: theirs, nothing to compare with
    copy.GetSegmentation().DeepCopy(segmentation_from_labels(scene, volume, labels * 0, BONESCAN_SEGMENTS[:1], "e",
                                                             "x").GetSegmentation())
    edited, dices = edit_check([copy], masks)
    assert edited and dices == {"m": 0.0}


def test_bstbi_change_is_one_function():
    assert bstbi_change(0.2, 0.3) == pytest.approx({"baseline": 0.2, "followup": 0.3, "change": 0.1,
                                                    "relative_change_percent": 50.0})
    assert bstbi_change(0.0, 0.1)["relative_change_percent"] is None


@pytest.mark.parametrize(("text", "value"), [("", None), ("  ", None), ("0.1", 0.1), (" 0.05 ", 0.05), ("2e-1", 0.2),
                                             ("7", 7.0)])
def test_the_readers_pixel_size(scene, text, value):
    assert parse_pixel_mm(text) == value
    flow = MammoFlow(scene)
    flow.set_pixel_size(text)
    assert flow.pixel_mm == value


@pytest.mark.parametrize(("text", "refusal"), [
    ("abc", "'abc' is not a number"), ("1_0", "'1_0' is not a number"), ("0.0_5", "'0.0_5' is not a number"),
    ("٠٫١", "'٠٫١' is not a number"), ("0", "0 is not a mammogram pixel size"), ("-0.1", "-0.1 is not a mammogram"),
    ("0.01", "0.01 is not a mammogram"), ("12", "12 is not a mammogram"), ("nan", "nan is not a mammogram"),
    ("inf", "inf is not a mammogram")])
def test_a_pixel_size_that_is_not_one_is_refused_as_the_worklist_refuses_it(text, refusal):
    """The station's and desktop's pixel-size field and the worklist's (a manifest's pixel_mm) share one check and
    one range, 0.02 to 10 mm; '_' digit separators and non-ASCII digits are not numbers."""
    with pytest.raises(InputError, match=f"^Pixel size {refusal}"):
        parse_pixel_mm(text)
    with pytest.raises(InputError, match=f"^pixel_mm {refusal}"):
        pixel_mm_of_row({"pixel_mm": text})


def test_a_selected_volume_without_pixels_is_refused(scene):
    _, volumes = _bone_scan_views(scene)
    empty = _volume(scene, np.zeros((0, 40, 30), np.float32), (2.0, 2.0, 1.0), "empty posterior")
    flow = BoneScanFlow(scene)
    flow.select({"scan": volumes[0], "posterior": volumes[1]})
    with pytest.raises(InputError, match="posterior volume 'empty posterior' holds no image"):
        flow.select({"scan": volumes[0], "posterior": empty})
    assert flow.volumes == {"scan": volumes[0], "posterior": volumes[1]}  # the selection before stays


def test_bone_scan_two_volumes_drawn_by_hand_compute_with_views_left_empty(scene):
    _, volumes = _bone_scan_views(scene)
    flow = BoneScanFlow(scene)
    flow.select({"scan": volumes[0], "posterior": volumes[1]})
    flow.draw_by_hand()
    empty = flow.run(flow.compute())  # nothing painted on either view
    assert empty.headline == "BSTBI 0.000"
    assert flow.roi_source == "drawn by the reader"

    labels = np.zeros(slicer.util.arrayFromVolume(volumes[0]).shape, np.uint8)
    labels[0, 300:320, 100:120] = BONESCAN_SEGMENTS[0].label  # a metastasis painted on the anterior view only
    painted = segmentation_from_labels(scene, volumes[0], labels, BONESCAN_SEGMENTS, "painted", "edited")
    segment = painted.GetSegmentation().GetNthSegment(0)
    flow.segmentation.GetSegmentation().GetNthSegment(0).DeepCopy(segment)
    result = flow.run(flow.compute())
    assert float(result.headline.split()[-1]) > 0


def test_a_flows_segmenter_is_never_served_stale_after_its_weights_change(scene, tmp_path):
    import shutil

    from smartimaging.mammo.segment import SEGMENTER_IDS, prompt_point
    from smartimaging.mrml import ijk_to_ras_matrix
    from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom
    from smartimaging.resources import resource_dir

    models = tmp_path / "models"
    models.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(resource_dir("Models") / f"{SEGMENTER_IDS['mass']}{suffix}", models)
    case = make_mammo_phantom(910_003, "mass", 1)
    volume = _volume(scene, case.image[None].astype(np.float32), (PIXEL_MM, PIXEL_MM, 1.0), "phantom mammogram")
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    row, col = prompt_point(case.mask)
    point.AddControlPoint(*(ijk_to_ras_matrix(volume) @ [col, row, 0, 1])[:3])
    flow = MammoFlow(scene, models_dir=str(models))
    flow.select({"mammogram": volume}, point)
    flow.run(flow.segment())
    weights = models / f"{SEGMENTER_IDS['mass']}.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # damaged after the first Segment
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="do not match the checksum"):
        flow.run(flow.segment())


@pytest.mark.parametrize("flow_class, role, expected", [(LVIFlow, "DCE", "BreastLVI needs MRI volumes"),
                                                        (LVIFlow, "T2", "BreastLVI needs MRI volumes"),
                                                        ("DCEFlow", "T1", "DCESynthesis needs the whole T1")])
def test_a_2d_picture_is_refused_as_an_mri_volume_when_it_is_loaded(scene, tmp_path, flow_class, role, expected):
    from PIL import Image

    if flow_class == "DCEFlow":
        from smartimaging.dce.flow import DCEFlow as flow_class
    path = tmp_path / "mammogram.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 48), dtype=np.uint8)).save(path)
    flow = flow_class(scene)
    with pytest.raises(InputError, match=f"mammogram.png is a single 2D image; {expected}"):
        flow.load(role, path)
    assert flow.volumes == {}


@pytest.mark.parametrize("flow_class, role, expected", [(LVIFlow, "DCE", "BreastLVI needs MRI volumes"),
                                                        ("DCEFlow", "T1", "DCESynthesis needs the whole T1")])
def test_a_2d_picture_selected_in_the_desktop_module_is_refused_as_an_mri_volume(scene, flow_class, role, expected):
    if flow_class == "DCEFlow":
        from smartimaging.dce.flow import DCEFlow as flow_class
    picture = _volume(scene, np.random.default_rng(0).integers(0, 255, (1, 64, 48)).astype(np.float32),
                      (0.1, 0.1, 1.0), "Mammogram R CC")
    flow = flow_class(scene)
    with pytest.raises(InputError, match=f"Mammogram R CC is a single 2D image; {expected}"):
        flow.select({role: picture})
    assert flow.volumes == {}


@pytest.mark.parametrize("flow_class, role, expected", [(MammoFlow, "mammogram", "a mammogram is a single 2D image"),
                                                        (BoneScanFlow, "scan", "a whole-body planar scan has one")])
def test_an_mri_volume_is_refused_as_a_mammogram_or_a_bone_scan(scene, tmp_path, flow_class, role, expected):
    path = tmp_path / "breast_mri.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).random((20, 64, 64), np.float32)), str(path))
    flow = flow_class(scene)
    with pytest.raises(InputError, match=f"breast_mri.nrrd has 20 frames or slices; {expected}"):
        flow.load(role, path)
    assert flow.volumes == {}


def test_the_bone_scan_note_says_which_views_the_file_records(scene):
    from smartimaging.phantoms.bonescan import make_bone_scan_phantom
    from smartimaging.web.cases import GE_BONE_SCAN

    flow = BoneScanFlow(scene)
    flow.load("scan", GE_BONE_SCAN)  # one frame, no View Code Sequence: its caption says "View not recorded"
    assert flow.notes()[-1] == "One view (not recorded in the file; analysed as anterior)"
    with tempfile.TemporaryDirectory() as folder:
        from smartimaging.bonescan.views import write_nm_dicom

        phantom = make_bone_scan_phantom(2)
        write_nm_dicom(f"{folder}/scan.dcm", phantom.views, phantom.patient_id)
        flow.load("scan", f"{folder}/scan.dcm")
    assert flow.notes()[-1] == "Left view: anterior · right view: posterior"


def test_a_volume_the_reader_selected_is_refused_by_its_name_before_any_step(scene):
    from smartimaging.dce.flow import DCEFlow

    array = np.full((8, 32, 32), 100.0, np.float32)
    array[2, 3, 4] = np.nan
    flow = DCEFlow(scene)
    with pytest.raises(InputError, match=r"T1 axial pre contains 1 invalid pixel value"):
        flow.select({"T1": _volume(scene, array, (1.0, 1.0, 3.0), "T1 axial pre")})
    assert flow.volumes == {}


def test_a_volume_the_reader_deleted_is_not_used_by_the_next_step(scene):
    from smartimaging.dce.flow import DCEFlow

    array = np.random.default_rng(0).uniform(50, 150, (8, 32, 32)).astype(np.float32)  # a T1 the check accepts
    t1 = _volume(scene, array, (1.0, 1.0, 3.0), "T1")
    flow = DCEFlow(scene)
    flow.select({"T1": t1})
    scene.RemoveNode(t1)
    with pytest.raises(InputError, match="Load the T1"):
        flow.run(flow.compute())
    assert flow.volumes == {}


def test_a_refused_compute_leaves_no_helper_nodes_in_the_scene(scene):
    from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom

    case = make_mammo_phantom(910_004, "mass", 1)
    volume = _volume(scene, case.image[None].astype(np.float32), (PIXEL_MM, PIXEL_MM, 1.0), "phantom mammogram")
    flow = MammoFlow(scene)
    flow.select({"mammogram": volume})
    flow.draw_by_hand()
    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    with pytest.raises(InputError, match="The ROI is empty"):
        flow.run(flow.compute())
    assert {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())} == before
