"""Mammogram reading: DICOM MG (MONOCHROME1, rescale, window), PNG 8/16 bit, PGM, NRRD; bad inputs; the real NYU
mammogram with its mass mask through 2D feature extraction."""

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from smartimaging.errors import InputError
from smartimaging.mammo.images import load_mammogram
from smartimaging.radiomics import extract_2d

MG_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"


def _mg_dicom(path, stored: np.ndarray, modality="MG", photometric="MONOCHROME1"):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MG_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MG_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation = modality, photometric
    ds.ImageLaterality, ds.ViewPosition = "R", "CC"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 14, 13, 0
    ds.RescaleSlope, ds.RescaleIntercept = 2, 10
    ds.ImagerPixelSpacing = [0.085, 0.085]
    ds.WindowCenter, ds.WindowWidth = 8000, 12000
    ds.PixelData = stored.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


@pytest.fixture()
def stored():
    return np.random.default_rng(0).integers(100, 16000, (60, 40)).astype(np.uint16)


def test_dicom_mg_monochrome1_is_rescaled_and_inverted(tmp_path, stored):
    _mg_dicom(tmp_path / "mg.dcm", stored)
    mammogram = load_mammogram(tmp_path / "mg.dcm")
    rescaled = stored * 2.0 + 10
    assert np.allclose(mammogram.pixels, rescaled.max() + rescaled.min() - rescaled)
    assert mammogram.image.GetSpacing()[:2] == pytest.approx((0.085, 0.085))
    assert mammogram.meta["display"] == {"window_center": 8000.0, "window_width": 12000.0}
    assert (mammogram.meta["laterality"], mammogram.meta["view"]) == ("R", "CC")


def test_dicom_mg_monochrome2_keeps_values(tmp_path, stored):
    _mg_dicom(tmp_path / "mg.dcm", stored, photometric="MONOCHROME2")
    assert np.allclose(load_mammogram(tmp_path / "mg.dcm").pixels, stored * 2.0 + 10)


def test_png_8_and_16_bit_and_pgm(tmp_path, stored):
    Image.fromarray(stored).save(tmp_path / "m16.png")
    Image.fromarray((stored // 64).astype(np.uint8)).save(tmp_path / "m8.png")
    Image.fromarray((stored // 64).astype(np.uint8)).save(tmp_path / "mias.pgm")
    assert np.array_equal(load_mammogram(tmp_path / "m16.png").pixels, stored)
    assert np.array_equal(load_mammogram(tmp_path / "m8.png").pixels, stored // 64)
    pgm = load_mammogram(tmp_path / "mias.pgm", pixel_mm=0.2)
    assert np.array_equal(pgm.pixels, stored // 64)
    assert pgm.image.GetSpacing()[:2] == pytest.approx((0.2, 0.2))


@pytest.mark.parametrize("case, message", [("ct", "Modality MG"), ("volume", "single 2D image"), ("nan", "NaN"),
                                           ("blank", "blank"), ("pgm", "not a readable PGM")])
def test_bad_mammograms(tmp_path, stored, case, message):
    if case == "ct":
        path = tmp_path / "ct.dcm"
        _mg_dicom(path, stored, modality="CT")
    elif case == "pgm":
        path = tmp_path / "broken.pgm"
        path.write_bytes(b"P5\n40 60\n255\n" + bytes(100))
    else:
        array = {"volume": np.ones((3, 20, 20)), "blank": np.ones((1, 20, 20)),
                 "nan": np.where(np.eye(20)[None] > 0, np.nan, 1.0)}[case]
        path = tmp_path / "image.nrrd"
        sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.float32)), str(path))
    with pytest.raises(InputError, match=message):
        load_mammogram(path)


def test_real_nyu_mammogram_mass_features(nyu_mammogram):
    image_path, mask_path = nyu_mammogram
    mammogram = load_mammogram(image_path)
    assert mammogram.pixels.shape == (2944, 1920)
    mask = np.asarray(Image.open(mask_path)) > 0
    assert mask.shape == mammogram.pixels.shape and mask.sum() > 100
    rows, cols = np.nonzero(mask)
    window = (slice(rows.min() - 20, rows.max() + 21), slice(cols.min() - 20, cols.max() + 21))
    features = extract_2d(mammogram.pixels[window], mask[window].astype(np.uint8))
    assert len(features) == 102 and all(np.isfinite(v) for v in features.values())
    assert features["original_shape2D_PixelSurface"] == pytest.approx(mask.sum())
