"""Bad-input cases of damaged and hostile image files: headers claiming gigabytes, truncated volumes, DICOM series
with a missing or truncated slice, DICOM files cut inside their header. Each file is made in code from a tiny valid
image whose header bytes are then changed or whose end is cut off."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from badinput import BadInput
from dicom_series import write_dicom_series
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from smartimaging.bonescan.views import write_nm_dicom

AREA = "Damaged or hostile file"
MG_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"
SERIES_UID = "1.2.826.0.1.3680043.2.1125.7"
LVI_MODEL = "lvi-dce-resnet10-3d-demo"


def _volume(folder: Path, name: str, slices: int = 16) -> Path:
    """A small MR-like volume (48×48 pixels, `slices` slices) written as `name` (format from the suffix)."""
    array = np.random.default_rng(0).uniform(0, 400, (slices, 48, 48)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 3.0))
    path = folder / name
    sitk.WriteImage(image, str(path), name.endswith(("gz.nrrd", ".nii.gz")))
    return path


def _nrrd_claiming(folder: Path, gzipped: bool) -> Path:
    """A NRRD header claiming 2048×2048×896 shorts (7 GB): 124 bytes raw, or 10 KB of gzip data."""
    path = folder / "claims7gb.nrrd"
    header = (b"NRRD0004\n# Complete NRRD file format specification at:\ntype: short\ndimension: 3\n"
              b"sizes: 2048 2048 896\nencoding: " + (b"gzip" if gzipped else b"raw") + b"\n\n")
    path.write_bytes(header + (gzip.compress(bytes(10_000_000)) if gzipped else bytes(8)))
    return path


def _nifti_header(folder: Path, dims: tuple[int, ...], datatype: int = 16) -> bytes:
    """A NIfTI-1 header of a small valid file with its dimensions and data type changed."""
    source = _volume(folder, "source.nii", 2)
    head = bytearray(source.read_bytes()[:352])
    source.unlink()
    head[40:56] = struct.pack("<8h", len(dims), *dims, *[1] * (7 - len(dims)))
    head[70:74] = struct.pack("<hh", datatype, {16: 32, 4: 16}[datatype])
    return bytes(head)


def _nifti_claiming(folder: Path) -> Path:
    """A 416-byte .nii whose header claims 2048×2048×896 shorts (7 GB)."""
    path = folder / "claims7gb.nii"
    path.write_bytes(_nifti_header(folder, (2048, 2048, 896), datatype=4) + bytes(64))
    return path


def _nifti_gz_claiming_5tb(folder: Path) -> Path:
    path = folder / "claims5tb.nii.gz"
    path.write_bytes(gzip.compress(_nifti_header(folder, (16384, 16384, 5120)) + bytes(64)))
    return path


def _truncated(folder: Path, name: str, keep: float) -> Path:
    """A 16-slice volume of which only the first `keep` fraction of the file (or its decoded data) is kept."""
    path = _volume(folder, name)
    if name.endswith(".nii.gz"):
        data = gzip.decompress(path.read_bytes())
        path.write_bytes(gzip.compress(data[:int(len(data) * keep)]))
    else:
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * keep)])
    return path


def _series(folder: Path, damage: str) -> Path:
    """A 10-slice DICOM series with its 5th file deleted or cut short."""
    array = np.random.default_rng(0).uniform(0, 400, (10, 48, 48)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 3.0))
    write_dicom_series(image, folder / "series", SERIES_UID)
    middle = sorted((folder / "series").iterdir())[4]
    if damage == "missing":
        middle.unlink()
    else:
        middle.write_bytes(middle.read_bytes()[:-1000])
    return folder / "series"


def _voi(folder: Path) -> Path:
    mask = np.zeros((16, 48, 48), np.uint8)
    mask[6:10, 20:28, 20:28] = 1
    image = sitk.GetImageFromArray(mask)
    image.SetSpacing((1.5, 1.5, 3.0))
    sitk.WriteImage(image, str(folder / "voi.nrrd"))
    return folder / "voi.nrrd"


def _dce(path: Path, folder: Path) -> list[str]:
    return ["dce", "synthesize", str(path), "--out", str(folder / "out")]


def _lvi_predict(path: Path, folder: Path) -> list[str]:
    return ["lvi", "predict", "--dce", str(path), "--voi", str(_voi(folder)), "--models", LVI_MODEL,
            "--device", "cpu", "--out", str(folder / "out")]


def _lvi_segment(path: Path, folder: Path) -> list[str]:
    return ["lvi", "segment", str(path), "--point", "30,30,20", "--out", str(folder / "out")]


def _mg_dicom(folder: Path, rows: int = 60, columns: int = 40) -> Path:
    """A 60×40 MG DICOM; `rows` and `columns` set what its header claims."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MG_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MG_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation = "MG", "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 12, 11, 0
    ds.ImagerPixelSpacing = [0.085, 0.085]
    ds.PixelData = np.random.default_rng(0).integers(100, 4000, (60, 40)).astype(np.uint16).tobytes()
    path = folder / "mammogram.dcm"
    ds.save_as(str(path), enforce_file_format=True)
    return path


def _cut(path: Path, keep: int) -> Path:
    """Keep the first `keep` bytes (a negative number: drop that many from the end)."""
    path.write_bytes(path.read_bytes()[:keep])
    return path


def _png_claiming(folder: Path, columns: int, rows: int) -> Path:
    """A 40×60 PNG whose header (IHDR, checksum updated) claims `columns`×`rows` pixels."""
    path = folder / "mammogram.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 40)).astype(np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", columns, rows)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def _mammo(path: Path, folder: Path) -> list[str]:
    return ["mammo", "predict", str(path), "--kind", "mass", "--point", "20,30", "--out", str(folder / "out")]


def _nm_dicom(folder: Path, rows: int | None = None) -> Path:
    """A two-view 128×32 NM DICOM; `rows` (with as many columns) sets what its header claims."""
    counts = np.random.default_rng(0).poisson(20, (128, 32)).astype(np.float32)
    path = folder / "scan.dcm"
    write_nm_dicom(path, {"anterior": counts, "posterior": counts}, "P1")
    if rows:
        ds = pydicom.dcmread(path)
        ds.Rows = ds.Columns = rows
        ds.save_as(str(path))
    return path


def _bonescan(path: Path, folder: Path) -> list[str]:
    return ["bonescan", "predict", str(path), "--device", "cpu", "--out", str(folder / "out")]


CASES = [
    BadInput(AREA, "124-byte NRRD whose header claims 7 GB (`dce synthesize`)",
             lambda f: _dce(_nrrd_claiming(f, gzipped=False), f),
             "claims7gb.nrrd claims 7.0 GB of image data (2048×2048×896 voxels); the limit for an MRI volume is "
             "2.0 GB"),
    BadInput(AREA, "10 KB gzip NRRD whose header claims 7 GB (`lvi segment`)",
             lambda f: _lvi_segment(_nrrd_claiming(f, gzipped=True), f), "claims 7.0 GB of image data"),
    BadInput(AREA, "416-byte NIfTI whose header claims 7 GB (`lvi predict`)",
             lambda f: _lvi_predict(_nifti_claiming(f), f), "claims7gb.nii claims 7.0 GB of image data"),
    BadInput(AREA, ".nii.gz whose header claims 5 TB (`dce synthesize`)", lambda f: _dce(_nifti_gz_claiming_5tb(f), f),
             "claims5tb.nii.gz claims 5.0 TB of image data"),
    BadInput(AREA, "NIfTI cut short: 13 of 16 slices (`dce synthesize`)",
             lambda f: _dce(_truncated(f, "t1.nii", 0.85), f), "t1.nii is truncated: it holds 13 of 16 slices"),
    BadInput(AREA, ".nii.gz holding 8 of 16 slices (`lvi predict`)",
             lambda f: _lvi_predict(_truncated(f, "dce.nii.gz", 0.55), f),
             "dce.nii.gz is truncated: it holds 8 of 16 slices"),
    BadInput(AREA, "raw NRRD cut short (`lvi segment`)", lambda f: _lvi_segment(_truncated(f, "dce.nrrd", 0.5), f),
             "dce.nrrd is truncated: it holds 7 of 16 slices"),
    BadInput(AREA, "gzip NRRD cut short (`dce synthesize`)",
             lambda f: _dce(_truncated(f, "t1_gz.nrrd", 0.5), f), "t1_gz.nrrd is truncated: it holds 7 of 16 slices"),
    BadInput(AREA, "DICOM series with one slice file deleted (`dce synthesize`)",
             lambda f: _dce(_series(f, "missing"), f), "has a gap between 7_003.dcm and 7_005.dcm: its slices are "
                                                       "3 mm apart but these two are 6 mm apart (1 slice missing)"),
    BadInput(AREA, "DICOM series with one slice file cut short (`lvi segment`)",
             lambda f: _lvi_segment(_series(f, "truncated"), f), "7_004.dcm is truncated"),
    BadInput(AREA, "mammogram DICOM cut inside its header (`mammo predict`)",
             lambda f: _mammo(_cut(_mg_dicom(f), 400), f), "the file ends inside its DICOM header"),
    BadInput(AREA, "mammogram DICOM with its pixel data cut short (`mammo predict`)",
             lambda f: _mammo(_cut(_mg_dicom(f), -1000), f), "mammogram.dcm is truncated"),
    BadInput(AREA, "mammogram DICOM whose header claims 60000×60000 pixels (`mammo predict`)",
             lambda f: _mammo(_mg_dicom(f, 60000, 60000), f), "the limit for a mammogram is 1.0 GB"),
    BadInput(AREA, "PNG whose header claims 100000×100000 pixels (`mammo predict`)",
             lambda f: _mammo(_png_claiming(f, 100_000, 100_000), f), "a decompression bomb or a damaged header"),
    BadInput(AREA, "PNG whose header claims 30000×60 pixels (`mammo predict`)",
             lambda f: _mammo(_png_claiming(f, 30_000, 60), f), "the limit for a mammogram is 20000 pixels per side"),
    BadInput(AREA, "bone-scan DICOM cut inside its header (`bonescan predict`)",
             lambda f: _bonescan(_cut(_nm_dicom(f), 400), f), "the file ends inside its DICOM header"),
    BadInput(AREA, "bone-scan DICOM with its pixel data cut short (`bonescan predict`)",
             lambda f: _bonescan(_cut(_nm_dicom(f), -1000), f), "scan.dcm is truncated"),
    BadInput(AREA, "bone-scan DICOM whose header claims 60000×60000 pixels (`bonescan predict`)",
             lambda f: _bonescan(_nm_dicom(f, 60000), f), "the limit for a whole-body bone scan is 512.0 MB"),
    BadInput(AREA, "bone-scan NRRD whose header claims 7 GB (`bonescan predict`)",
             lambda f: _bonescan(_nrrd_claiming(f, gzipped=False), f), "claims 7.0 GB of image data"),
]
