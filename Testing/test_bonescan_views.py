"""Loading bone scans: NM DICOM (single/multi-frame, the real GE scan), PNG exports, NRRD; bad inputs."""

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image

from smartimaging.bonescan.views import load_bone_scan, write_nm_dicom
from smartimaging.errors import InputError
from smartimaging.phantoms.bonescan import PIXEL_MM, make_bone_scan_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_bone_scan_phantom(5)


def test_phantom_is_deterministic_and_has_ground_truth(phantom):
    again = make_bone_scan_phantom(5)
    assert np.array_equal(again.views["anterior"], phantom.views["anterior"])
    assert phantom.views["anterior"].shape == (1024, 256)
    for view in ("anterior", "posterior"):
        labels = set(np.unique(phantom.masks[view]))
        assert labels <= {0, 1, 2}
        assert (1 in labels) == (phantom.n_lesions > 0)
        assert (2 in labels) == phantom.bladder_present


def test_multiframe_nm_dicom_round_trip(tmp_path, phantom):
    path = tmp_path / "study.dcm"
    write_nm_dicom(path, phantom.views, "P1", age=63)
    study = load_bone_scan([path])
    assert [v.name for v in study.views] == ["anterior", "posterior"]
    assert study.images[0].GetSize() == (256, 1024, 2)
    assert study.images[0].GetSpacing()[:2] == pytest.approx((PIXEL_MM, PIXEL_MM))
    assert np.array_equal(study.view("posterior").counts, np.round(phantom.views["posterior"]))
    assert study.meta["age"] == 63


def test_view_code_sequence_decides_the_view_names(tmp_path, phantom):
    path = tmp_path / "swapped.dcm"
    write_nm_dicom(path, {"posterior": phantom.views["posterior"], "anterior": phantom.views["anterior"]}, "P1")
    study = load_bone_scan([path])
    assert [v.name for v in study.views] == ["posterior", "anterior"]
    assert np.array_equal(study.view("anterior").counts, np.round(phantom.views["anterior"]))


def test_real_ge_whole_body_scan_loads(ge_bone_scan):
    study = load_bone_scan([ge_bone_scan])
    assert len(study.views) == 1
    view = study.views[0]
    assert view.counts.shape == (1024, 256)
    assert view.counts.min() >= 0  # lossy-compression negatives clipped
    assert study.images[0].GetSpacing()[:2] == pytest.approx((2.26, 2.26))
    assert study.meta["manufacturer"] == "GE Medical Systems"


def test_shipped_ge_scan_is_the_shared_real_case(ge_bone_scan, ge_bone_scan_shared):
    assert ge_bone_scan.read_bytes() == ge_bone_scan_shared.read_bytes()


def test_png_export_with_dark_uptake_is_inverted(tmp_path, phantom):
    counts = phantom.views["anterior"]
    bright = np.clip(counts / np.percentile(counts, 99.9) * 255, 0, 255).astype(np.uint8)
    Image.fromarray(255 - bright).save(tmp_path / "dark.png")
    Image.fromarray(bright).save(tmp_path / "bright.png")
    dark_view = load_bone_scan([tmp_path / "dark.png"]).views[0].counts
    bright_view = load_bone_scan([tmp_path / "bright.png"]).views[0].counts
    assert np.corrcoef(dark_view.ravel(), bright_view.ravel())[0, 1] > 0.99
    assert load_bone_scan([tmp_path / "dark.png"], polarity="uptake-dark").views[0].counts.max() == 255


def test_separate_view_files_get_names(tmp_path, phantom):
    for name in ("a", "b"):
        image = sitk.GetImageFromArray(phantom.views["anterior" if name == "a" else "posterior"][None])
        sitk.WriteImage(image, str(tmp_path / f"{name}.nrrd"))
    study = load_bone_scan([tmp_path / "a.nrrd", tmp_path / "b.nrrd"])
    assert [v.name for v in study.views] == ["anterior", "posterior"]
    assert [v.source for v in study.views] == [0, 1]
    renamed = load_bone_scan([tmp_path / "b.nrrd"], view_names=["posterior"])
    assert renamed.views[0].name == "posterior"


def _ct_dicom(path, template):
    ds = pydicom.dcmread(template)
    ds.Modality = "CT"
    ds.save_as(path)


@pytest.mark.parametrize("kind, message", [
    ("missing", "not found"),
    ("empty", "empty"),
    ("corrupt", "truncated or damaged"),
    ("ct", "CT DICOM image"),
    ("square", "tall image"),
    ("nan", "NaN"),
    ("blank", "blank"),
    ("spect", "SPECT"),
])
def test_bad_inputs_give_clear_messages(tmp_path, phantom, kind, message):
    path = tmp_path / "input.dcm"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        write_nm_dicom(path, phantom.views, "P1")
        path.write_bytes(path.read_bytes()[:1000])
    elif kind == "ct":
        write_nm_dicom(tmp_path / "nm.dcm", phantom.views, "P1")
        _ct_dicom(path, tmp_path / "nm.dcm")
    elif kind in ("square", "nan", "blank", "spect"):
        array = {"square": np.ones((1, 300, 300)), "blank": np.ones((1, 1024, 256)),
                 "spect": np.random.default_rng(0).random((60, 1024, 256))}.get(kind)
        if kind == "nan":
            array = phantom.views["anterior"][None].copy()
            array[0, 5, 5] = np.nan
        path = tmp_path / "input.nrrd"
        sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.float32)), str(path))
    with pytest.raises(InputError, match=message):
        load_bone_scan([path])
