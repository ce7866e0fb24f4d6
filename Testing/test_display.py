"""smartimaging.display on real images: window/level presets per modality, invert and reset on real display nodes,
captions (ANT / POST, laterality and view, MRI sequence and edge letters), mammogram hanging, a header without
patient identifiers."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import vtk
from PIL import Image
from realdata import cbis_ddsm_views, cdd_cesm_views
from slicer.util import arrayFromVolume

from smartimaging import display
from smartimaging.bonescan.flow import BoneScanFlow
from smartimaging.bonescan.views import write_nm_dicom
from smartimaging.lvi.flow import LVIFlow
from smartimaging.mammo.flow import MammoFlow


def _grey(values: np.ndarray, display_node) -> np.ndarray:
    """Grey level in [0, 1] the display node gives each value (0 black), as vtkMRMLScalarVolumeDisplayNode maps it."""
    window, level = display_node.GetWindow(), display_node.GetLevel()
    grey = np.clip((values - (level - window / 2)) / window, 0, 1)
    return 1 - grey if display_node.GetInvertDisplayScalarRange() else grey


def test_ge_bone_scan_default_is_black_on_white_and_not_washed_out(scene, ge_bone_scan):
    flow = BoneScanFlow(scene)
    node = flow.load("scan", ge_bone_scan)
    counts = arrayFromVolume(node)
    presets = display.presets("NM", counts)
    assert [p.name for p in presets][:3] == ["Bone standard", "Bone faint uptake", "Bone hot spots"]
    assert all(p.invert for p in presets)
    display.apply_preset(node.GetDisplayNode(), presets[0])
    shown = node.GetDisplayNode()
    assert not shown.GetAutoWindowLevel() and shown.GetInvertDisplayScalarRange()
    assert (shown.GetWindow(), shown.GetLevel()) == pytest.approx((presets[0].window, presets[0].level))
    grey = _grey(counts.astype(float), shown)
    background = counts <= 0
    body = counts > 0.1 * np.percentile(counts, 99.5)
    assert grey[background].mean() > 0.95  # white field, not grey
    assert 0.3 < np.median(grey[body]) < 0.8  # soft tissue mid grey
    assert (grey[body] == 0).mean() < 0.03  # only the hottest 2 % of the body (bladder, hot bone) black
    assert np.percentile(grey[body], 5) < 0.3  # the skeleton dark against the soft tissue
    assert "inverted" in display.window_level_text(shown)


def test_invert_and_reset(scene, ge_bone_scan):
    node = BoneScanFlow(scene).load("scan", ge_bone_scan)
    shown = node.GetDisplayNode()
    presets = display.presets("NM", arrayFromVolume(node))
    display.apply_preset(shown, presets[2])
    shown.SetInvertDisplayScalarRange(False)
    shown.SetWindowLevel(10, 200)
    display.apply_preset(shown, presets[0])  # the reset
    assert shown.GetInvertDisplayScalarRange() == 1
    assert shown.GetWindow() == pytest.approx(presets[0].window)


def test_bone_scan_captions(scene, tmp_path, ge_bone_scan):
    flow = BoneScanFlow(scene)
    flow.load("scan", ge_bone_scan)
    assert flow.layout == "axial"  # the one view shown once
    caption = display.view_captions(flow)[display.PRIMARY]
    assert "not recorded" in caption.title and caption.note.startswith("one view only")
    assert caption.edges == {}  # no R / L without a known view
    frames = np.zeros((2, 64, 16), np.float32)
    frames[:, 10:50, 4:12] = 100
    write_nm_dicom(tmp_path / "two.dcm", {"posterior": frames[0], "anterior": frames[1]}, "P1")
    flow.load("scan", tmp_path / "two.dcm")
    captions = display.view_captions(flow)
    assert (captions["frame 0"].title, captions["frame 0"].edges) == ("POST", {"left": "L", "right": "R"})
    assert (captions["frame 1"].title, captions["frame 1"].edges) == ("ANT", {"left": "R", "right": "L"})


@pytest.mark.parametrize(("name", "expected"), [
    ("0_R-CC_cropped.png", ("R", "CC")), ("flipped_P121_L_DM_CC.jpg", ("L", "CC")),
    ("Mass-Training_P_00001_LEFT_MLO.dcm", ("L", "MLO")), ("RMLO.dcm", ("R", "MLO")),
    ("scan.png", (display.UNKNOWN, display.UNKNOWN))])
def test_laterality_and_view_from_file_names(name, expected):
    assert display.mammo_laterality_view({}, name) == expected


def _half_disc(rows: int = 100, columns: int = 120, border: int = 0) -> np.ndarray:
    """A breast seen from above: straight at the chest wall (left edge), round to the nipple; `border` black
    columns on both sides, as CDD-CESM stores its views."""
    y, x = np.mgrid[:rows, :columns]
    image = ((x - border) ** 2 + (y - rows / 2) ** 2 < (0.45 * rows) ** 2) & (x >= border)
    return image.astype(np.float32) * 100


def test_chest_wall_side_and_hanging():
    image = _half_disc()
    assert display.chest_wall_side(image) == "left"
    assert display.chest_wall_side(image[:, ::-1]) == "right"
    bordered = _half_disc(border=30)  # a black band on both sides: ignored
    assert display.chest_wall_side(bordered) == "left" and display.chest_wall_side(bordered[:, ::-1]) == "right"
    right = display.mammo_caption({"ImageLaterality": "R", "ViewPosition": "CC"}, "x.dcm", image)
    assert (right.title, right.mirrored, right.note) == ("R CC", True, "hung chest wall right (mirrored)")
    left = display.mammo_caption({"ImageLaterality": "L", "ViewPosition": "MLO"}, "x.dcm", image)
    assert (left.title, left.mirrored, left.note) == ("L MLO", False, "hung chest wall left")
    unknown = display.mammo_caption({}, "x.png", image)
    assert not unknown.mirrored and "laterality unknown" in unknown.title
    for undecided in (np.pad(np.full((80, 40), 100, np.float32), 10), np.zeros((50, 50), np.float32),
                      np.full((50, 50), 7, np.float32)):  # a rectangle (both ends straight), blank, uniform
        assert display.chest_wall_side(undecided) is None
        caption = display.mammo_caption({"ImageLaterality": "R", "ViewPosition": "CC"}, "x.dcm", undecided)
        assert not caption.mirrored and caption.note.startswith("hanging not determined")


def test_real_cdd_cesm_views_hung_as_stored():
    """The 24 CDD-CESM views are stored as hung (checked by eye on P99 R CC, P116 R CC, P139 R MLO, P108 L CC,
    P121 L CC, P181 L CC, P190 L CC, P161 L MLO, P84 L MLO): a right breast's chest wall on the right, a left one's
    on the left, inside black bands on both sides; none is mirrored."""
    views = cdd_cesm_views()
    assert len(views) == 24
    for view in views:
        pixels = np.asarray(Image.open(view.image).convert("L"), dtype=np.float32)
        laterality, _ = display.mammo_laterality_view({}, view.image.name)
        assert display.chest_wall_side(pixels) == {"R": "right", "L": "left"}[laterality], view.image.name
        caption = display.mammo_caption({}, view.image.name, pixels)
        assert not caption.mirrored and caption.note == f"hung chest wall {'right' if laterality == 'R' else 'left'}"


def test_real_nyu_mammogram_is_hung_mirrored(scene, nyu_mammogram):
    flow = MammoFlow(scene)
    node = flow.load("mammogram", nyu_mammogram[0])
    caption = display.view_captions(flow)[display.PRIMARY]
    assert caption.title == "R CC"
    assert display.chest_wall_side(arrayFromVolume(node)[0]) == "left"  # stored chest wall left: mirrored to hang
    assert caption.mirrored
    rows = dict(display.header_rows(node))
    assert rows["Pixel size"].startswith("not recorded") and rows["Format"] == "PNG"


def test_real_cbis_ddsm_captions_header_and_presets(scene):
    flow = MammoFlow(scene)
    for view in cbis_ddsm_views()[:4]:
        node = flow.load("mammogram", view.path)
        ds = pydicom.dcmread(view.path, stop_before_pixels=True)
        patient = str(ds.PatientName)  # e.g. Mass-Test_P_00173_LEFT_CC: the truth, never shown
        side = "R" if "RIGHT" in patient else "L"
        caption = display.view_captions(flow)[display.PRIMARY]
        assert caption.title == f"{side} {patient.rsplit('_', 1)[-1]}"
        # films stored as hung: a right breast's chest wall on the right, a left one's on the left
        assert display.chest_wall_side(arrayFromVolume(node)[0]) == {"R": "right", "L": "left"}[side]
        assert not caption.mirrored
        rows = display.header_rows(node)
        text = " ".join(value for _, value in rows)
        assert "P_00" not in text and str(ds.PatientID) not in text
        assert dict(rows)["Study date"] == "2016-10-04" and dict(rows)["Modality"] == "MG"
        presets = display.presets("MG", arrayFromVolume(node), display.read_header(view.path))
        assert presets[0].name == "Tissue"  # no DICOM window in these files
        assert presets[-1].name == "Full range" and not any(p.invert for p in presets)


def test_dicom_window_is_the_mammography_default():
    array = np.linspace(0, 4095, 10_000, dtype=np.float32).reshape(100, 100)
    presets = display.presets("MG", array, {"window": [2000.0, 1500.0]})
    assert (presets[0].name, presets[0].level, presets[0].window) == ("DICOM window", 2000.0, 1500.0)
    inverted = display.presets("MG", array, {"window": [1000.0, 1500.0], "photometric": "MONOCHROME1"})[0]
    assert (inverted.level, inverted.window) == (3095.0, 1500.0)  # the stored window on the inverted pixels


def test_ge_header_has_no_identifiers(scene, ge_bone_scan):
    node = BoneScanFlow(scene).load("scan", ge_bone_scan)
    ds = pydicom.dcmread(ge_bone_scan, stop_before_pixels=True)
    rows = dict(display.header_rows(node))
    assert rows["Study date"] == "2004-08-26" and rows["Modality"] == "NM"
    assert rows["Manufacturer"] == "GE Medical Systems" and rows["Pixel size"] == "2.26 × 2.26 mm"
    assert rows["View"] == "not recorded"
    text = " ".join(rows.values())
    for keyword in ("PatientName", "PatientID", "InstitutionName"):
        assert str(ds.get(keyword)) not in text
    assert "Sex" not in " ".join(rows)


def test_mri_caption_edges_and_mirroring(scene, breast1_dir):
    flow = LVIFlow(scene)
    flow.load("DCE", breast1_dir / "breast1_image.nrrd")
    caption = display.view_captions(flow)[display.PRIMARY]
    assert caption.title == "DCE (phase not recorded)" and caption.edges is None  # letters from the view's geometry
    assert display.mr_caption("DCE", "case_dce_phase2.nrrd").title == "DCE phase 2"
    slice_node = scene.AddNewNodeByClass("vtkMRMLSliceNode")
    slice_node.SetOrientationToAxial()
    assert display.edge_letters(slice_node) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    errors = []
    slice_node.AddObserver(vtk.vtkCommand.ErrorEvent, lambda *_: errors.append(1))
    display.hang(slice_node, True)
    assert display.edge_letters(slice_node) == {"left": "L", "right": "R", "top": "A", "bottom": "P"}
    display.hang(slice_node, True)
    assert not errors  # the mirrored preset registered on the node, never asked for by an unknown name
    display.hang(slice_node, False)
    assert display.edge_letters(slice_node)["left"] == "R"
    presets = display.presets("MR", arrayFromVolume(flow.primary))
    display.apply_preset(flow.primary.GetDisplayNode(), presets[0])
    assert presets[0].name == "Auto" and flow.primary.GetDisplayNode().GetAutoWindowLevel()



def test_drag_window_level_acts_on_the_background_not_the_overlay():
    """Slicer's window/level widget adjusts a visible foreground under the pointer (the LVI Grad-CAM) unless told
    not to: the station's views adjust only the background image."""
    import slicer

    manager = slicer.vtkMRMLScalarBarDisplayableManager()
    assert manager.GetWindowLevelWidget().GetForegroundVolumeEditable()  # Slicer's default: the overlay changes
    display.drag_adjusts_background_only(manager)
    widget = manager.GetWindowLevelWidget()
    assert not widget.GetForegroundVolumeEditable() and widget.GetBackgroundVolumeEditable()
    display.drag_adjusts_background_only(None)  # a view without the manager: nothing to do


def _hostile_mammogram(path, **fields) -> None:
    """A 16-bit MG DICOM (pixels 16-3512, breast against the left edge) whose free-text tags name the patient."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.full((64, 48), 16, np.uint16)
    pixels[8:56, :30] = np.linspace(400, 3512, 30, dtype=np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.2", generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.StudyDate, ds.ImageLaterality = "MG", "20240105", "L"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "SMITH^JANE", "MRN998877", "19500101"
    ds.SeriesDescription = "SMITH^JANE MRN998877 DOB 19500101 whole body"
    ds.BodyPartExamined = "SMITH JANE"
    ds.Manufacturer, ds.ViewPosition = "M" * 3000, "MLO" + "Y" * 497
    ds.WindowCenter, ds.WindowWidth = "30000", "0.5"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 64, 48, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [0.2, 0.2]
    for keyword, value in fields.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_header_withholds_free_text_that_names_the_patient(scene, tmp_path):
    _hostile_mammogram(tmp_path / "hostile.dcm")
    node = MammoFlow(scene).load("mammogram", tmp_path / "hostile.dcm")
    rows = dict(display.header_rows(node))
    assert rows["Series"] == rows["Body part"] == display.WITHHELD
    assert rows["Study date"] == "2024-01-05" and rows["Modality"] == "MG" and rows["Laterality"] == "L"
    text = " ".join(rows.values()).upper()
    for identifier in ("SMITH", "JANE", "998877", "1950"):
        assert identifier not in text
    ds = pydicom.dcmread(tmp_path / "hostile.dcm", stop_before_pixels=True)
    names = display.patient_identifiers(ds)
    for named in ("Jane Smith", "smith", "JANESMITH-PC", "id 998877", "born 01/01/1950", "1950-01-01", "1.1.50",
                  "01011950", "1 Jan 1950", "January 1, 1950"):
        assert names(named), named
    for plain in ("whole body", "GE Medical Systems", "Hologic Selenia Dimensions", "CC", "2004-08-26",
                  "1 Jan 1951", "MLO"):
        assert not names(plain), plain
    ds.OtherPatientIDs, ds.PatientName = ["AB12", "XY-77"], "LI^WU"  # 2-letter names: as words only
    names = display.patient_identifiers(ds)
    assert names("ID XY-77") and names("ab12 study") and names("Li Wu") and not names("clinical wuhan")


def test_a_window_outside_the_pixels_is_not_the_default_and_long_values_are_cut(scene, tmp_path):
    """WindowCenter 30000, width 0.5 on pixels 16-3512 would show a blank view: "Tissue" is the default."""
    _hostile_mammogram(tmp_path / "hostile.dcm")
    node = MammoFlow(scene).load("mammogram", tmp_path / "hostile.dcm")
    array = arrayFromVolume(node)
    presets = display.presets("MG", array, display.read_header(tmp_path / "hostile.dcm"))
    assert [p.name for p in presets] == ["Tissue", "DICOM window", "Full range"]
    assert "not the default" in presets[1].detail
    assert not display.sensible_window(30000, 0.5, 16, 3512) and not display.sensible_window(2000, 0.5, 16, 3512)
    assert display.sensible_window(2000, 1500, 16, 3512) and not display.sensible_window(2000, 40_000, 16, 3512)
    rows = dict(display.header_rows(node))
    assert rows["Manufacturer"] == "M" * 3000  # whole: the page cuts it to its width, the full text on hover
    flow = MammoFlow(scene)
    flow.load("mammogram", tmp_path / "hostile.dcm")
    title = display.view_captions(flow)[display.PRIMARY].title  # drawn in the view: no hover there
    assert title.startswith("L MLOYYY") and title.endswith("…") and len(title) <= 30
