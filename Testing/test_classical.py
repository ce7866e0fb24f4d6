"""Seeded classical segmentation (the fallback when a network finds nothing): 2D, one-slice 3D and 3D images."""

import numpy as np
import SimpleITK as sitk

from smartimaging.classical import grow_from_seed
from smartimaging.evaluation import dice
from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom


def _image(array, spacing, origin, direction=None):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def _blob_volume(rng):
    zz, yy, xx = np.mgrid[0:24, 0:60, 0:60]
    truth = ((zz - 12) * 2.0) ** 2 + (yy - 30.0) ** 2 + ((xx - 28) * 1.2) ** 2 < 10.0**2
    return (100 + 80 * truth + rng.normal(0, 12, truth.shape)).astype(np.float32), truth


def test_3d_blob_found_on_an_oblique_grid_and_bounded_by_the_radius():
    truth_image, truth = _blob_volume(np.random.default_rng(0))
    direction = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    image = _image(truth_image, (0.7, 0.7, 2.0), (-12.0, 40.0, 7.5), direction)
    seed = image.TransformIndexToPhysicalPoint((30, 33, 13))  # off the centre, inside the blob
    mask = grow_from_seed(image, seed, max_radius_mm=20.0)
    assert mask.GetSize() == image.GetSize() and mask.GetDirection() == direction
    assert mask.GetOrigin() == image.GetOrigin() and mask.GetSpacing() == image.GetSpacing()
    assert dice(sitk.GetArrayFromImage(mask) > 0, truth) > 0.8
    points = np.argwhere(sitk.GetArrayFromImage(mask) > 0)[:, ::-1]
    distances = [np.linalg.norm(np.subtract(image.TransformIndexToPhysicalPoint(p.tolist()), seed)) for p in points]
    assert max(distances) <= 20.0 + 1e-6
    assert not sitk.GetArrayFromImage(grow_from_seed(image, seed, max_radius_mm=3.0)).any()  # lesion beyond the bound

def test_one_slice_mammogram_phantom_masses():
    scores = []
    for seed in range(900_000, 900_006):
        case = make_mammo_phantom(seed, "mass", seed % 2)
        image = _image(case.image[None], (PIXEL_MM, PIXEL_MM, 1.0), (-40.0, 25.0, 3.0))
        row, col = np.argwhere(case.mask).mean(axis=0)
        mask = grow_from_seed(image, image.TransformContinuousIndexToPhysicalPoint((col, row, 0.0)), 30.0)
        assert mask.GetSize() == image.GetSize()
        scores.append(dice(sitk.GetArrayFromImage(mask)[0] > 0, case.mask > 0))
    assert np.median(scores) > 0.6


def test_nothing_sensible_gives_an_empty_mask():
    flat = _image(np.random.default_rng(1).normal(100, 10, (80, 80)).astype(np.float32), (0.5, 0.5), (0.0, 0.0))
    assert not sitk.GetArrayFromImage(grow_from_seed(flat, (20.0, 20.0), 10.0)).any()  # pure noise leaks everywhere
    assert not sitk.GetArrayFromImage(grow_from_seed(flat, (-5.0, 20.0), 10.0)).any()  # seed outside the image
    speck = np.full((80, 80), 100.0, np.float32)
    speck[40, 40] = 400.0
    image = _image(speck, (0.5, 0.5), (0.0, 0.0))
    assert not sitk.GetArrayFromImage(grow_from_seed(image, (20.0, 20.0), 10.0, min_size_mm=3.0)).any()
