"""BreastLVI preprocessing, recorded in every model card:

1. the VOI is put on the sequence's grid (nearest neighbour) and must hold voxels inside the volume;
2. a box around the VOI, enlarged by `margin_mm` on every side, is resampled (linear; the VOI nearest) to a fixed
   grid: `size_3d` voxels (slices, rows, cols) for the 3D network; for the 2D networks the same box in-plane at
   `size_2d`² with the sequence's own slice spacing, keeping the slices that contain the VOI;
3. intensities are z-scored with the mean and SD of the box's tissue (voxels brighter than 10 % of the box's 99th
   percentile: the breast around the lesion, without air or the zeros outside the volume).
2D networks score every tumour slice; the case probability is the mean of the slice probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

TISSUE_FRACTION = 0.1
MAX_VOI_FRACTION, MAX_VOI_MM = 0.5, 100.0  # beyond either, a VOI is not around one breast lesion


@dataclass(frozen=True)
class Preprocessing:
    margin_mm: float = 10.0
    size_3d: tuple[int, int, int] = (16, 64, 64)  # slices, rows, cols
    size_2d: int = 64

    def as_card(self) -> dict:
        return {**asdict(self), "intensity": "z-score over the box's tissue (> 10 % of its 99th percentile)",
                "2d_aggregation": "mean of the tumour slices' probabilities"}


DEFAULT_PREPROCESSING = Preprocessing()


def voi_on_grid(volume: sitk.Image, voi: sitk.Image, what: str = "volume") -> sitk.Image:
    """The VOI (non-zero = lesion) on the volume's grid; refused when empty, damaged or outside the volume (`what`
    names it in the message)."""
    if voi.GetNumberOfComponentsPerPixel() > 1:
        raise InputError("The lesion VOI is a colour or vector image; save it as a label map (0 = background)")
    values = sitk.GetArrayViewFromImage(voi)
    if not np.all(np.isfinite(values)):
        raise InputError("The lesion VOI contains invalid values (NaN or infinity); the file is damaged: save the VOI "
                         "again")
    if not np.any(values):
        raise InputError("The lesion VOI is empty: draw or segment the lesion first")
    binary = sitk.Cast(sitk.NotEqual(voi, 0), sitk.sitkUInt8)
    on_grid = sitk.Resample(binary, volume, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    if not np.any(sitk.GetArrayViewFromImage(on_grid)):
        raise InputError(f"The lesion VOI lies outside the {what} (check that the VOI and the {what} belong to the "
                         "same examination and were not moved apart)")
    return on_grid


def oversized_voi(volume: sitk.Image, voi: sitk.Image, name: str) -> str | None:
    """A warning when the VOI is far larger than a breast lesion (over half the volume or over 10 cm across)."""
    on_grid = voi_on_grid(volume, voi)
    fraction = float(np.mean(sitk.GetArrayViewFromImage(on_grid)))
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(on_grid)
    extent = np.array(stats.GetBoundingBox(1)[3:]) * np.array(volume.GetSpacing())
    if fraction <= MAX_VOI_FRACTION and extent.max() <= MAX_VOI_MM:
        return None
    return (f"the VOI covers {fraction:.0%} of the {name} volume ({' x '.join(f'{e:.0f}' for e in extent)} mm); "
            "the models were trained on VOIs around one lesion: check that the VOI outlines the lesion only")


def check_values(volume: sitk.Image, what: str, voi: sitk.Image | None = None) -> None:
    """Refuse NaN or infinite voxels anywhere in the volume (they would make every score NaN); those inside `voi`
    (on the volume's grid) are counted."""
    array = sitk.GetArrayViewFromImage(volume)
    if not np.issubdtype(array.dtype, np.floating):
        return
    invalid = ~np.isfinite(array)
    if not invalid.any():
        return
    inside = 0 if voi is None else int(np.count_nonzero(invalid & (sitk.GetArrayViewFromImage(voi) > 0)))
    count = inside or int(invalid.sum())
    where = "" if voi is None else " inside the lesion VOI" if inside else " outside the lesion VOI"
    raise InputError(f"The {what} has {count} invalid voxel{'s' if count > 1 else ''} (NaN or infinite){where}; "
                     "the file is damaged: export the series again")


def _box_reference(volume: sitk.Image, voi: sitk.Image, margin_mm: float, size_xyz: tuple[int, int, int],
                   slice_spacing: float | None = None) -> sitk.Image:
    """A grid with the volume's direction covering the VOI's bounding box + margin with `size_xyz` voxels."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(voi)
    x, y, z, sx, sy, sz = stats.GetBoundingBox(1)
    corners = [volume.TransformIndexToPhysicalPoint((i, j, k)) for i in (x, x + sx - 1) for j in (y, y + sy - 1)
               for k in (z, z + sz - 1)]
    direction = np.array(volume.GetDirection()).reshape(3, 3)
    local = np.array(corners) @ direction  # coordinates along the volume's axes
    low, high = local.min(axis=0) - margin_mm, local.max(axis=0) + margin_mm
    if slice_spacing is not None:  # 2D: keep the native slices of the VOI, no margin across them
        low[2], high[2] = local[:, 2].min(), local[:, 2].max()
    size = np.array(size_xyz, dtype=float)
    spacing = (high - low) / np.maximum(size - 1, 1)
    if slice_spacing is not None:
        spacing[2] = slice_spacing
        size[2] = int(round((high[2] - low[2]) / slice_spacing)) + 1
    reference = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    reference.SetDirection(volume.GetDirection())
    reference.SetSpacing([float(max(v, 1e-3)) for v in spacing])
    reference.SetOrigin(tuple(direction @ low))
    return reference


def _zscore_tissue(crop: np.ndarray) -> np.ndarray:
    tissue = crop > TISSUE_FRACTION * float(np.percentile(crop, 99))
    values = crop[tissue] if tissue.sum() > 10 else crop.ravel()
    return ((crop - values.mean()) / max(float(values.std()), 1e-6)).astype(np.float32)


@dataclass
class NetworkInput:
    """A network's input with the grid it was sampled on (to map heat maps back onto the volume)."""

    array: np.ndarray  # 3D: (slices, rows, cols); 2D: (tumour slices, size, size)
    grid: sitk.Image  # the box's geometry (for 2D: all its slices)
    kept_slices: np.ndarray  # for 2D: which slices of `grid` are in `array`


def check_mr_volume(volume: sitk.Image, name: str = "") -> None:
    """Refuse a single 2D image (a mammogram, a screenshot) where BreastLVI needs an MRI volume."""
    if volume.GetDimension() != 3 or volume.GetSize()[2] < 2:
        raise InputError(f"{name + ' is a single 2D image; ' if name else ''}BreastLVI needs MRI volumes (several "
                         "slices), not a single 2D image")


def network_input(volume: sitk.Image, voi: sitk.Image, dimensions: int,
                  settings: Preprocessing = DEFAULT_PREPROCESSING, what: str = "MRI volume") -> NetworkInput:
    """The z-scored box around the lesion: the 3D network's (slices, rows, cols) = settings.size_3d, or the 2D
    networks' in-plane boxes (size_2d²) of the native slices that contain the VOI. `what` names the volume in
    messages."""
    check_mr_volume(volume)
    if volume.GetNumberOfComponentsPerPixel() > 1:
        raise InputError(f"The {what} is a colour or vector image; BreastLVI needs a greyscale MR volume")
    voi = voi_on_grid(volume, voi, what)
    check_values(volume, what, voi)
    if dimensions == 3:
        grid = _box_reference(volume, voi, settings.margin_mm, settings.size_3d[::-1])
    else:
        grid = _box_reference(volume, voi, settings.margin_mm, (settings.size_2d, settings.size_2d, 1),
                              slice_spacing=volume.GetSpacing()[2])
    crop = _zscore_tissue(sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(volume, sitk.sitkFloat32), grid,
                                                               sitk.Transform(), sitk.sitkLinear, 0.0)))
    if dimensions == 3:
        return NetworkInput(crop, grid, np.ones(len(crop), bool))
    lesion = sitk.GetArrayFromImage(sitk.Resample(voi, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    keep = lesion.reshape(len(lesion), -1).any(axis=1)
    keep = keep if keep.any() else np.ones(len(crop), bool)
    return NetworkInput(crop[keep], grid, keep)


def crop_3d(volume: sitk.Image, voi: sitk.Image, settings: Preprocessing = DEFAULT_PREPROCESSING,
            what: str = "MRI volume") -> np.ndarray:
    """The 3D network's input array."""
    return network_input(volume, voi, 3, settings, what).array


def tumour_slices_2d(volume: sitk.Image, voi: sitk.Image, settings: Preprocessing = DEFAULT_PREPROCESSING,
                     what: str = "MRI volume") -> np.ndarray:
    """The 2D networks' input: (n, size_2d, size_2d) tumour slices."""
    return network_input(volume, voi, 2, settings, what).array
