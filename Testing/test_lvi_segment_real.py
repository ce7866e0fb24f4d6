"""BreastLVI click-seeded lesion VOI: the click -> patch -> volume geometry is exact (any direction, anisotropic
voxels, a partial field of view), a component away from the click is never taken, and on the real breast1 MRI
(pyradiomics' test case, held out from training) every click on the lesion gives a VOI that overlaps it."""

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REALDATA, require_shared

from smartimaging.evaluation import dice
from smartimaging.lvi.segment import PATCH_SIZE, LesionSegmenter, clicked_component, patch_grid, patch_input

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from lvi_segment_real import breast1_clicks, dice_at  # noqa: E402

# issue 12 asks Dice >= 0.6 on every click (lvi-lesion-unet-demo 2.0.0 with mirror averaging and re-centring: 0.75-0.80)
BREAST1_MIN_DICE = 0.6


def _oblique_volume() -> tuple[sitk.Image, tuple[int, int, int]]:
    """A volume with flipped, swapped axes and 0.7 x 0.7 x 2.5 mm voxels, one bright voxel at a known index."""
    array = np.full((12, 40, 30), 100.0, np.float32)
    index = (7, 11, 5)  # (i, j, k): column, row, slice
    array[index[2], index[1], index[0]] = 1000.0
    volume = sitk.GetImageFromArray(array)
    volume.SetSpacing((0.7, 0.7, 2.5))
    volume.SetOrigin((12.0, -30.0, 40.0))
    volume.SetDirection((0, -1, 0, -1, 0, 0, 0, 0, -1))
    return volume, index


def test_click_maps_to_the_patch_centre_and_back_for_any_direction():
    volume, index = _oblique_volume()
    click = volume.TransformIndexToPhysicalPoint(index)
    grid = patch_grid(volume, click)
    centre = [(n - 1) / 2 for n in grid.GetSize()]
    np.testing.assert_allclose(grid.TransformContinuousIndexToPhysicalPoint(centre), click, atol=1e-9)
    assert grid.GetDirection() == volume.GetDirection()
    array, _ = patch_input(volume, click)
    assert array.shape == PATCH_SIZE
    brightest = np.unravel_index(np.argmax(array), array.shape)  # (slice, row, col) next to the centre
    assert np.all(np.abs(np.array(brightest) - np.array(PATCH_SIZE) / 2 + 0.5) <= 1.0)
    # a patch marking its centre comes back onto the clicked voxel
    mark = np.zeros(PATCH_SIZE, np.float32)
    middle = tuple(n // 2 for n in PATCH_SIZE)
    mark[tuple(slice(m - 1, m + 1) for m in middle)] = 1.0
    patch = sitk.GetImageFromArray(mark)
    patch.CopyInformation(grid)
    back = sitk.GetArrayFromImage(sitk.Resample(patch, volume, sitk.Transform(), sitk.sitkLinear, 0.0))
    assert back[index[2], index[1], index[0]] > 0.5


def test_zero_padding_only_outside_the_field_of_view_and_not_in_the_z_score():
    volume, index = _oblique_volume()
    click = volume.TransformIndexToPhysicalPoint((0, 0, 0))  # a corner: most of the patch lies outside
    array, grid = patch_input(volume, click)
    ones = sitk.Image(volume.GetSize(), sitk.sitkFloat32) + 1.0
    ones.CopyInformation(volume)
    inside = sitk.GetArrayFromImage(sitk.Resample(ones, grid, sitk.Transform(), sitk.sitkLinear, 0.0)) > 0.999
    assert 0 < inside.mean() < 0.5
    tissue = array[inside]
    assert abs(float(np.median(tissue))) < 0.5  # z-scored over the tissue, not over the zeros
    assert np.all(array[~inside] < tissue.min() + 1e-6)


def test_a_component_away_from_the_click_is_not_taken():
    binary = sitk.Image(40, 40, 10, sitk.sitkUInt8)
    binary.SetSpacing((0.7, 0.7, 2.0))
    binary[30:34, 30:34, 6:8] = 1  # a blob 14 mm away from the click
    click = binary.TransformIndexToPhysicalPoint((10, 10, 2))
    assert clicked_component(binary, click) is None
    binary[9:12, 9:12, 2:3] = 1  # the clicked blob
    mask = clicked_component(binary, click)
    assert mask is not None and int(sitk.GetArrayViewFromImage(mask).sum()) == 9


@pytest.fixture(scope="module")
def breast1():
    folder = require_shared(REALDATA / "breast_mri_pyradiomics")
    return sitk.ReadImage(str(folder / "breast1_image.nrrd")), sitk.ReadImage(str(folder / "breast1_label.nrrd"))


def test_every_click_on_the_real_breast1_lesion_overlaps_it(breast1):
    volume, label = breast1
    segmenter = LesionSegmenter.load()
    scores = {name: dice_at(segmenter, volume, label, point)[0] for name, point in breast1_clicks(label).items()}
    assert len(scores) == 5
    assert min(scores.values()) >= BREAST1_MIN_DICE, scores


def test_an_off_centre_click_gives_nearly_the_voi_of_a_central_click(breast1):
    volume, label = breast1
    segmenter = LesionSegmenter.load()
    masks = [sitk.GetArrayFromImage(segmenter.segment(volume, point)) > 0 for point in breast1_clicks(label).values()]
    assert min(dice(masks[0], other) for other in masks[1:]) >= 0.8


def _network_that_finds_nothing():
    """The U-Net of the card with an output layer that always says background."""
    import torch

    from smartimaging.lvi.segment import ARCHITECTURE
    from smartimaging.models.nets import build_network

    network = build_network(ARCHITECTURE).eval()
    with torch.no_grad():
        network.final_conv.weight.zero_()
        network.final_conv.bias.copy_(torch.tensor([10.0, -10.0]))
    return network


def test_when_the_network_finds_nothing_region_growing_proposes_a_labelled_voi():
    import torch

    from smartimaging.errors import InputError
    from smartimaging.lvi.segment import CLASSICAL_SOURCE

    segmenter = LesionSegmenter(_network_that_finds_nothing(), torch.device("cpu"))
    rng = np.random.default_rng(0)
    array = rng.normal(100, 5, (12, 60, 60)).astype(np.float32)
    zz, yy, xx = np.mgrid[:12, :60, :60]
    blob = ((zz - 6) * 2.5) ** 2 + ((yy - 30) * 0.8) ** 2 + ((xx - 25) * 0.8) ** 2 < 6 ** 2  # a 12 mm lesion
    array[blob] += 150
    volume = sitk.GetImageFromArray(array)
    volume.SetSpacing((0.8, 0.8, 2.5))
    click = volume.TransformIndexToPhysicalPoint((25, 30, 6))
    mask, source = segmenter.propose(volume, click)
    assert source == CLASSICAL_SOURCE
    found = sitk.GetArrayFromImage(mask) > 0
    assert 2 * (found & blob).sum() / (found.sum() + blob.sum()) > 0.7
    flat = sitk.GetImageFromArray(rng.normal(100, 5, (12, 60, 60)).astype(np.float32))
    flat.CopyInformation(volume)
    with pytest.raises(InputError, match="draw the VOI by hand"):
        segmenter.propose(flat, click)
