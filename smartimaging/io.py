"""Image reading and writing with geometry: DICOM, NRRD, NIfTI, PNG/PGM/JPEG -> SimpleITK.Image.

Every reader returns a 3D SimpleITK image (2D images get one slice) in ITK's LPS convention with spacing, origin
and direction kept exactly. Unreadable or suspicious files raise :class:`InputError` with a reader-friendly message.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError

RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".tif", ".tiff"}


def file_suffix(path: str | os.PathLike) -> str:
    """Lower-case suffix, keeping the double suffixes `.nii.gz` and `.seg.nrrd`."""
    name = Path(path).name.lower()
    for double in (".nii.gz", ".seg.nrrd"):
        if name.endswith(double):
            return double
    return Path(name).suffix


def is_dicom(path: str | os.PathLike) -> bool:
    """True when the file carries the DICOM preamble ('DICM' at byte 128)."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def check_readable(path: str | os.PathLike) -> Path:
    """Return the path if it is a non-empty regular file, else raise InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"File not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the image file itself")
    if path.stat().st_size == 0:
        raise InputError(f"{path.name} is empty (0 bytes)")
    return path


def read_raster(path: str | os.PathLike, spacing_mm: float = 1.0) -> sitk.Image:
    """PNG / PGM / JPEG / TIFF (8 or 16 bit, grey or RGB) as a one-slice float image; RGB is averaged to grey."""
    path = check_readable(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path.name} is not a readable image file (corrupt or truncated)") from exc
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        grey = array[..., :3].mean(axis=-1)
        image = sitk.GetImageFromArray(grey)
    image = sitk.Cast(image, sitk.sitkFloat32)
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    image.SetSpacing((spacing_mm, spacing_mm, 1.0))
    image.SetOrigin((0.0, 0.0, 0.0))
    return image


def read_volume(path: str | os.PathLike) -> sitk.Image:
    """NRRD / NIfTI / MetaImage as read by SimpleITK; 2D files get one slice."""
    path = check_readable(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path.name} could not be read as an image volume (corrupt or unsupported)") from exc
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise InputError(f"{path.name} has {image.GetDimension()} dimensions; expected a 2D image or 3D volume")
    return image


def read_series_or_volume(path: str | os.PathLike) -> sitk.Image:
    """A DICOM series (its folder) or a volume file (NRRD, NIfTI, MetaImage, one DICOM file) with its geometry."""
    path = Path(path)
    if not path.is_dir():
        return read_volume(path)
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
    if not series:
        raise InputError(f"The folder {path} holds no readable DICOM series")
    if len(series) > 1:
        raise InputError(f"The folder {path} holds {len(series)} DICOM series; give the folder of one series")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0]))
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"The DICOM series in {path} could not be read (corrupt or incomplete files)") from exc


def check_finite(array: np.ndarray, what: str) -> None:
    """Raise InputError if the array holds NaN or infinite values."""
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InputError(f"{what} contains {bad} invalid pixel values (NaN or infinity); the file is damaged")


def same_geometry(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-4) -> bool:
    """True when two images share size, spacing, origin and direction (within tolerance, in mm)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    )


def describe_geometry(image: sitk.Image) -> str:
    """Short human description of an image's grid, for error messages."""
    size = "×".join(str(s) for s in image.GetSize())
    spacing = "×".join(f"{s:g}" for s in image.GetSpacing())
    origin = ", ".join(f"{o:g}" for o in image.GetOrigin())
    return f"{size} voxels of {spacing} mm at ({origin})"


@contextmanager
def atomic_output_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a scratch folder; its files move into `out_dir` only if the block succeeds (no partial outputs)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".smartimaging-", dir=out_dir.parent))
    try:
        yield scratch
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in scratch.iterdir():
            target = out_dir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
