"""Property-based fuzzing of every image loader: a small valid file with header bytes changed, numbers replaced,
keywords swapped, bits flipped or its end cut off must load or give our clear refusal (SmartImagingError), never
another exception, never more than 10 s per file, never more than 2 GB of memory.

The budget is SMARTIMAGING_FUZZ_EXAMPLES examples in all (default 256, shared between the loaders, the same examples
on every run); a longer, random run:

    SMARTIMAGING_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest Testing/test_fuzz_loaders.py
"""

from __future__ import annotations

import gzip
import io
import os
import re
import resource
import shutil
import struct
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_series import write_dicom_series
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from smartimaging.bonescan.cohort import read_masks
from smartimaging.bonescan.views import load_bone_scan, write_nm_dicom
from smartimaging.errors import SmartImagingError
from smartimaging.io import read_series_or_volume
from smartimaging.mammo.features import load_mask
from smartimaging.mammo.images import load_mammogram

TOTAL_EXAMPLES = int(os.environ.get("SMARTIMAGING_FUZZ_EXAMPLES", "256"))
MEMORY_LIMIT_KB = 2 * 1024 * 1024  # growth of the peak resident memory allowed while fuzzing one loader
SPECIAL_NUMBERS = [0, 1, -1, 2, 3, 7, 8, 255, 256, 32767, 32768, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 10**9,
                   10**12, 10**15]
KEYWORDS = [b"raw", b"gzip", b"bzip2", b"ascii", b"hex", b"block", b"LIST", b"LOCAL", b"True", b"False", b"-1",
            b"double", b"uchar", b"MET_DOUBLE", b"MET_UCHAR", b"vector", b"RGB-color", b"none", b"nan", b"inf", b""]
MG_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"


@dataclass
class Target:
    """A loader and its valid seed file; mutations hit the first `header` bytes (flips and cuts hit any byte).
    `gzipped`: the seed is mutated before it is gzip-compressed."""

    name: str
    suffix: str
    seed: bytes
    header: int
    load: Callable[[Path], object]
    gzipped: bool = False


def _image(array: np.ndarray, spacing=(0.5, 0.5, 2.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def _written(image: sitk.Image, suffix: str, compress: bool = False) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"seed{suffix}"
        sitk.WriteImage(image, str(path), compress)
        return path.read_bytes()


def _saved(array: np.ndarray, suffix: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format={".png": "PNG", ".pgm": "PPM", ".jpg": "JPEG", ".tif": "TIFF"}[suffix],
                                **options)
    return buffer.getvalue()


def _mg_dicom(stored: np.ndarray) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MG_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MG_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation, ds.NumberOfFrames = "MG", "MONOCHROME1", 1
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.ImagerPixelSpacing = 2, 10, [0.085, 0.085]
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.PixelData = stored.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _nm_dicom(counts: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "nm.dcm"
        write_nm_dicom(path, {"anterior": counts, "posterior": counts}, "P1", age=60)
        return path.read_bytes()


def _dicom_header_length(data: bytes) -> int:
    """Bytes before the pixel data."""
    with io.BytesIO(data) as f:
        pydicom.dcmread(f, stop_before_pixels=True)
        return f.tell()


def _text_header_length(data: bytes) -> int:
    return data.index(b"\n\n") + 2 if b"\n\n" in data else data.index(b"ElementDataFile = LOCAL\n") + 24


RNG = np.random.default_rng(5)
MAMMO = RNG.integers(100, 4000, (48, 32)).astype(np.uint16)
BONE = RNG.poisson(20, (96, 32)).astype(np.float32)
MR = RNG.uniform(0, 400, (6, 24, 20)).astype(np.float32)
MAMMO_MASK = np.zeros(MAMMO.shape, np.uint8)
MAMMO_MASK[10:20, 8:16] = 1
BONE_MASK = np.zeros((1, *BONE.shape), np.float32)
BONE_MASK[0, 40:48, 10:16] = 1


def _mammogram_for_masks():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mammogram.png"
        path.write_bytes(_saved(MAMMO, ".png"))
        return load_mammogram(path)


def _bone_study():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scan.nrrd"
        path.write_bytes(_written(_image(BONE[None], (2.26, 2.26, 1.0)), ".nrrd"))
        return load_bone_scan([path])


MAMMOGRAM = _mammogram_for_masks()
BONE_STUDY = _bone_study()
NIFTI = _written(_image(MR), ".nii")
NRRD = _written(_image(MR), ".nrrd")
NRRD_GZ = _written(_image(MR), ".nrrd", compress=True)
MHA = _written(_image(MR), ".mha")
MG_DICOM = _mg_dicom(MAMMO)
NM_DICOM = _nm_dicom(BONE)
MASK_NRRD = _written(_image(MAMMO_MASK[None], (1.0, 1.0, 1.0)), ".nrrd")
BONE_MASK_NRRD = _written(_image(BONE_MASK, (2.26, 2.26, 1.0)), ".nrrd")

TARGETS = [
    Target("mammogram DICOM", ".dcm", MG_DICOM, _dicom_header_length(MG_DICOM), load_mammogram),
    Target("bone-scan DICOM", ".dcm", NM_DICOM, _dicom_header_length(NM_DICOM), lambda p: load_bone_scan([p])),
    Target("NRRD volume", ".nrrd", NRRD, _text_header_length(NRRD), read_series_or_volume),
    Target("gzip NRRD volume", ".nrrd", NRRD_GZ, _text_header_length(NRRD_GZ), read_series_or_volume),
    Target("NIfTI volume", ".nii", NIFTI, 352, read_series_or_volume),
    Target("NIfTI in .nii.gz", ".nii.gz", NIFTI, 352, read_series_or_volume, gzipped=True),
    Target(".nii.gz bytes", ".nii.gz", gzip.compress(NIFTI), 64, read_series_or_volume),
    Target("MetaImage volume", ".mha", MHA, _text_header_length(MHA), read_series_or_volume),
    Target("PNG mammogram", ".png", _saved(MAMMO, ".png"), 80, load_mammogram),
    Target("PGM mammogram", ".pgm", _saved((MAMMO // 16).astype(np.uint8), ".pgm"), 16, load_mammogram),
    Target("JPEG mammogram", ".jpg", _saved((MAMMO // 16).astype(np.uint8), ".jpg", quality=90), 640,
           load_mammogram),
    Target("TIFF mammogram", ".tif", _saved(MAMMO, ".tif"), 256, load_mammogram),
    Target("PNG bone scan", ".png", _saved((BONE * 4).astype(np.uint8), ".png"), 80, lambda p: load_bone_scan([p])),
    Target("PNG mammography mask", ".png", _saved(MAMMO_MASK * 255, ".png"), 80, lambda p: load_mask(p, MAMMOGRAM)),
    Target("NRRD mammography mask", ".nrrd", MASK_NRRD, _text_header_length(MASK_NRRD),
           lambda p: load_mask(p, MAMMOGRAM)),
    Target("NRRD bone-scan mask", ".nrrd", BONE_MASK_NRRD, _text_header_length(BONE_MASK_NRRD),
           lambda p: read_masks(BONE_STUDY, [p])),
]
EXAMPLES = max(1, TOTAL_EXAMPLES // (len(TARGETS) + 1))  # + 1: the DICOM series

number = st.sampled_from(SPECIAL_NUMBERS) | st.integers(-(10**13), 10**13)
operation = st.one_of(
    st.tuples(st.just("byte"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("word"), st.integers(0, 1 << 20), number, st.sampled_from([1, 2, 4, 8]), st.sampled_from("<>")),
    st.tuples(st.just("number"), st.integers(0, 64), number),
    st.tuples(st.just("token"), st.integers(0, 256), st.sampled_from(KEYWORDS)),
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 30)),
)
operations = st.lists(operation, min_size=1, max_size=4)


def mutate(data: bytes, header: int, ops: list[tuple]) -> bytes:
    """Apply the drawn operations: positions wrap around the header (byte, word, number, token) or the file (flip,
    cut)."""
    data = bytearray(data)
    for op in ops:
        if not data:
            break
        head = max(1, min(header, len(data)))
        if op[0] == "byte":
            data[op[1] % head] = op[2]
        elif op[0] == "word":
            _, position, value, width, order = op
            position = position % max(1, head - width + 1)
            packed = struct.pack(order + {1: "B", 2: "H", 4: "I", 8: "Q"}[width], value % (1 << (8 * width)))
            data[position:position + width] = packed[:len(data) - position]
        elif op[0] == "number":
            runs = list(re.finditer(rb"-?\d+", bytes(data[:head])))
            if runs:
                run = runs[op[1] % len(runs)]
                data[run.start():run.end()] = str(op[2]).encode()
        elif op[0] == "token":
            tokens = list(re.finditer(rb"[^\s:=]+", bytes(data[:head])))
            if tokens:
                token = tokens[op[1] % len(tokens)]
                data[token.start():token.end()] = op[2]
        elif op[0] == "flip":
            data[op[1] % len(data)] ^= 1 << op[2]
        else:
            del data[op[1] % (len(data) + 1):]
    return bytes(data)


def _fuzz_settings():
    return settings(max_examples=EXAMPLES, deadline=10_000, derandomize="SMARTIMAGING_FUZZ_EXAMPLES" not in os.environ,
                    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _load_or_refuse(load: Callable[[Path], object], path: Path, baseline_kb: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load(path)
        except SmartImagingError:
            pass
    assert _peak_kb() - baseline_kb < MEMORY_LIMIT_KB, "a loader used more than 2 GB on a small damaged file"


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_damaged_file_loads_or_is_refused(target):
    baseline = _peak_kb()
    scratch = Path(tempfile.mkdtemp(prefix="fuzz-"))

    @_fuzz_settings()
    @given(ops=operations)
    def check(ops):
        data = mutate(target.seed, target.header, ops)
        path = scratch / f"input{target.suffix}"
        path.write_bytes(gzip.compress(data) if target.gzipped else data)
        _load_or_refuse(target.load, path, baseline)

    try:
        check()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("series") / "series"
    write_dicom_series(_image(MR, (0.8, 0.8, 3.0)), folder, "1.2.826.0.1.3680043.2.1125.9")
    return folder


def test_damaged_dicom_series_loads_or_is_refused(series):
    baseline = _peak_kb()
    files = sorted(series.iterdir())
    seeds = [f.read_bytes() for f in files]
    scratch = Path(tempfile.mkdtemp(prefix="fuzz-series-"))

    @_fuzz_settings()
    @given(index=st.integers(0, len(files) - 1), ops=operations)
    def check(index, ops):
        folder = scratch / "series"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for file, seed in zip(files, seeds, strict=True):
            (folder / file.name).write_bytes(seed)
        (folder / files[index].name).write_bytes(mutate(seeds[index], _dicom_header_length(seeds[index]), ops))
        _load_or_refuse(read_series_or_volume, folder, baseline)

    try:
        check()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
