"""Seeded classical segmentation: the labelled fallback when a network finds nothing at the reader's click.

`grow_from_seed` works on 2D and 3D SimpleITK images (a one-slice 3D image counts as 2D). Around the seed it crops a
ball of `max_radius_mm`, smooths lightly and grows a region with ConfidenceConnected (mean ± k·sd of the seed's
neighbourhood); the region's edge is then placed halfway between its median and the median on the ball's border.
Stricter multipliers are tried while the region leaks to the border. The result is the seed's connected component,
holes filled, on the input's exact grid. It is empty when nothing sensible is found: the seed outside the image, no
contrast between the seed's region and the border (e.g. a lesion larger than the ball), a leak at every multiplier,
or a region smaller than `min_size_mm`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

MULTIPLIERS = (2.5, 2.0, 1.5, 1.0)
MIN_CONTRAST = 0.5  # region-to-border difference, in standard deviations of the border's pixels
MAX_BORDER_FRACTION = 0.3  # a region touching more of the ball's border than this has leaked into the background


def _ball(size: Sequence[int], centre: Sequence[int], spacing: Sequence[float], radius_mm: float) -> np.ndarray:
    """Boolean ball in array order (z, y, x) of a crop whose SimpleITK size is `size` (x, y, z)."""
    axes = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(size, centre, spacing, strict=True)], indexing="ij")
    return (sum(a**2 for a in axes) <= radius_mm**2).transpose(tuple(reversed(range(len(size)))))


def _seed_component(region: np.ndarray, seed_at: tuple[int, ...]) -> np.ndarray:
    """The seed's connected component of `region`, holes filled (all False when the seed lies outside it)."""
    labels, _ = ndimage.label(region)
    return ndimage.binary_fill_holes(labels == labels[seed_at]) if labels[seed_at] else np.zeros_like(region)


def grow_from_seed(image: sitk.Image, seed_point: Sequence[float], max_radius_mm: float,
                   min_size_mm: float = 2.0, multipliers: Sequence[float] = MULTIPLIERS) -> sitk.Image:
    """uint8 mask (1 = region) on `image`'s grid of the bright-or-dark region around `seed_point` (physical
    coordinates, LPS mm), bounded by a ball of `max_radius_mm`; all zeros when nothing sensible is found."""
    empty = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(image)
    flat = image.GetDimension() == 3 and image.GetSize()[2] == 1
    work = image[:, :, 0] if flat else image
    seed = np.round(work.TransformPhysicalPointToContinuousIndex([float(v) for v in seed_point[:work.GetDimension()]]))
    size, spacing = np.array(work.GetSize()), np.array(work.GetSpacing())
    seed = seed.astype(int)
    if np.any(seed < 0) or np.any(seed >= size):
        return empty
    half = np.ceil(max_radius_mm / spacing).astype(int) + 1
    lower, upper = np.maximum(seed - half, 0), np.minimum(seed + half + 1, size)
    crop = sitk.RegionOfInterest(sitk.Cast(work, sitk.sitkFloat32), (upper - lower).tolist(), lower.tolist())
    smoothed = sitk.DiscreteGaussian(crop, variance=[float(s) ** 2 for s in spacing], useImageSpacing=True)
    local_seed = (seed - lower).tolist()
    ball = _ball(crop.GetSize(), local_seed, spacing, max_radius_mm)
    border = ball & ~ndimage.binary_erosion(ball, border_value=0)
    min_voxels = max(1, int(np.prod(min_size_mm / spacing) * (np.pi / 4 if len(spacing) == 2 else np.pi / 6)))
    values = sitk.GetArrayFromImage(smoothed)
    original = sitk.GetArrayFromImage(crop)
    seed_at = tuple(reversed(local_seed))
    for multiplier in multipliers:
        grown = sitk.ConfidenceConnected(smoothed, seedList=[local_seed], numberOfIterations=3,
                                         multiplier=float(multiplier), initialNeighborhoodRadius=1, replaceValue=1)
        region = _seed_component(sitk.GetArrayFromImage(grown).astype(bool) & ball, seed_at)
        if not region.any():
            continue
        inside, outside = float(np.median(values[region])), float(np.median(values[border]))
        if abs(inside - outside) < MIN_CONTRAST * float(original[border].std()):
            continue  # no edge between the seed's region and the ball's border
        midway = (inside + outside) / 2
        region = _seed_component(((values >= midway) if inside > outside else (values <= midway)) & ball, seed_at)
        if not region.any() or np.count_nonzero(region & border) > MAX_BORDER_FRACTION * np.count_nonzero(border):
            continue  # leaked into the background: try a stricter multiplier
        if np.count_nonzero(region) < min_voxels:
            return empty
        full = np.zeros(tuple(reversed(size.tolist())), np.uint8)
        full[tuple(slice(lo, hi) for lo, hi in zip(lower[::-1], upper[::-1], strict=True))] = region
        mask = sitk.GetImageFromArray(full[None] if flat else full)
        mask.CopyInformation(image)
        return mask
    return empty
