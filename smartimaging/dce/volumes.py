"""Breast MRI volumes for DCESynthesis: reading with checks, the [-1, 1] normalisation, pairing a real DCE with the T1.

A volume is refused when it cannot be a breast MRI: fewer than MIN_IN_PLANE × MIN_IN_PLANE pixels per slice or
fewer than MIN_SLICES slices (clinical breast T1WI: 256-512 pixels square, 60-200 slices), NaN, blank, colour.

Normalisation (recorded in the model card): per volume, from its minimum to its 99.9th percentile (so that a few
very bright voxels, e.g. in the heart, do not compress the breast's grey levels) mapped linearly to [-1, 1] and
clipped, as the paper's min-max normalisation to [-1, 1].
"""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..io import check_finite, describe_geometry, read_series_or_volume, same_geometry

UPPER_PERCENTILE = 99.9
BODY_THRESHOLD = 0.05  # normalised T1 above this = inside the body, for the linear intensity mapping
MIN_OVERLAP = 0.5
MIN_IN_PLANE, MIN_SLICES = 32, 3
HOUNSFIELD_AIR_THRESHOLD = -500  # MR magnitudes are never this negative; CT air is about -1000


def load_mr_volume(path: str | os.PathLike, role: str) -> sitk.Image:
    """A 3D MR volume (DICOM series folder, NRRD, NIfTI) as float32, refusing 2D, 4D, colour, NaN or blank data."""
    return check_mr_volume(read_series_or_volume(path), os.path.basename(os.fspath(path)), role)


def check_mr_volume(image: sitk.Image, name: str, role: str) -> sitk.Image:
    """The image as float32 if it is a usable 3D greyscale MR volume, else a clear InputError."""
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise InputError(f"{name} is a colour or vector image; the {role} must be a greyscale MR volume")
    if image.GetSize()[2] < 2:
        raise InputError(f"{name} is a single 2D image; DCESynthesis needs the whole {role} volume (all slices)")
    image = sitk.Cast(image, sitk.sitkFloat32)
    array = sitk.GetArrayViewFromImage(image)
    check_finite(array, name)
    if float(array.max()) <= float(array.min()):
        raise InputError(f"{name} is blank (every voxel has the same value)")
    below_air = float(np.mean(array < HOUNSFIELD_AIR_THRESHOLD))
    if below_air > 0.05:
        raise InputError(f"{name} looks like a CT, not an MR volume: {below_air:.0%} of its voxels are below "
                         f"{HOUNSFIELD_AIR_THRESHOLD} (Hounsfield units of air); the {role} must be an MR volume")
    columns, rows, slices = image.GetSize()
    if min(columns, rows) < MIN_IN_PLANE or slices < MIN_SLICES:
        raise InputError(f"{name} has {columns}×{rows} pixels in {slices} slices: too small to be a breast MRI "
                         f"(at least {MIN_IN_PLANE}×{MIN_IN_PLANE} pixels and {MIN_SLICES} slices); give the whole "
                         f"{role} series")
    return image


def normalise(array: np.ndarray) -> np.ndarray:
    """Minimum .. 99.9th percentile -> [-1, 1] (clipped), float32."""
    low, high = float(array.min()), float(np.percentile(array, UPPER_PERCENTILE))
    if high <= low:
        high = float(array.max())
    return (np.clip((array - low) / (high - low), 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def to_unit(array: np.ndarray) -> np.ndarray:
    """[-1, 1] -> [0, 1]: the intensity range in which every metric is computed."""
    return (np.asarray(array, np.float32) + 1.0) / 2.0


def intensity_mapped_subtraction(synthetic: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """A [0, 1] DCE (synthetic or real) minus the [0, 1] T1 mapped onto it by least squares over the body; >= 0."""
    body = t1 > BODY_THRESHOLD
    slope, intercept = np.polyfit(t1[body].ravel(), synthetic[body].ravel(), 1) if body.sum() > 10 else (0.0, 0.0)
    return np.clip(synthetic - (slope * t1 + intercept), 0.0, None) * body


def pair_with_t1(t1: sitk.Image, dce: sitk.Image) -> tuple[sitk.Image, list[str]]:
    """The real DCE on the T1's grid: as is when the grids match, else resampled (linear) with a warning; refused
    when less than half of the T1 lies inside the DCE volume."""
    if same_geometry(t1, dce):
        return dce, []
    ones = sitk.Image(dce.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(dce)
    coverage = sitk.Resample(ones, t1, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    covered = float(sitk.GetArrayViewFromImage(coverage).mean())
    if covered < MIN_OVERLAP:
        raise InputError(f"The real DCE covers only {covered:.0%} of the T1 volume (T1: {describe_geometry(t1)}; "
                         f"DCE: {describe_geometry(dce)}); check that both belong to the same examination")
    resampled = sitk.Resample(dce, t1, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return resampled, [f"The real DCE ({describe_geometry(dce)}) was resampled onto the T1 grid "
                       f"({describe_geometry(t1)}) by linear interpolation for display and metrics"]
