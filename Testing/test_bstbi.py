"""BSTBI formula 1 and the 8-bit 'more uptake = smaller value' sub-images."""

import numpy as np
import pytest

from smartimaging.bonescan.bstbi import bstbi, eight_bit_uptake_dark, study_bstbi, subimages, uptake_sum


def test_formula_on_hand_computed_example():
    image = np.full((4, 4), 255, np.uint8)  # background: no uptake
    image[0, 0] = 55  # lesion pixel: S = 200
    image[1, 1] = 155  # normal bone: S = 100
    image[3, 3] = 5  # bladder: S = 250
    lesion = np.zeros((4, 4), bool)
    lesion[0, 0] = True
    bladder = np.zeros((4, 4), bool)
    bladder[3, 3] = True
    # K·S(L) / ((K-1)·S(L) + S(R) - S(B)) = 5·200 / (4·200 + 550 - 250)
    assert bstbi(image, lesion, bladder) == pytest.approx(1000 / 1100)
    assert uptake_sum(image) == 550


def test_no_lesion_gives_zero_and_everything_lesion_gives_one():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 16)).astype(np.uint8)
    empty = np.zeros_like(image, bool)
    assert bstbi(image, empty, empty) == 0.0
    assert bstbi(image, np.ones_like(image, bool), empty) == pytest.approx(1.0)


def test_bounded_and_monotonic_in_lesion_extent():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (64, 32)).astype(np.uint8)
    bladder = np.zeros_like(image, bool)
    bladder[50:58, 10:20] = True
    previous = 0.0
    for size in range(1, 30, 4):
        lesion = np.zeros_like(image, bool)
        lesion[:size, :size] = True
        value = bstbi(image, lesion, bladder)
        assert 0.0 <= value <= 1.0
        assert value >= previous
        previous = value


def test_bladder_uptake_is_removed_from_the_denominator():
    image = np.full((10, 10), 200, np.uint8)
    lesion = np.zeros((10, 10), bool)
    lesion[0, 0] = True
    bladder = np.zeros((10, 10), bool)
    bladder[5:9, 5:9] = True
    image[bladder] = 0  # very hot bladder
    assert bstbi(image, lesion, bladder) > bstbi(image, lesion, np.zeros_like(bladder))


def test_overlapping_lesion_and_bladder_count_as_lesion():
    image = np.full((6, 6), 100, np.uint8)
    both = np.zeros((6, 6), bool)
    both[1:3, 1:3] = True
    assert bstbi(image, both, both) == bstbi(image, both, np.zeros_like(both))


def test_eight_bit_convention_more_uptake_smaller_value():
    counts = np.array([[0.0, 50.0, 100.0, 400.0]])
    image = eight_bit_uptake_dark(counts, upper=100.0)
    assert image.dtype == np.uint8
    assert image.tolist() == [[255, 127, 0, 0]]  # 255 - round(127.5)


def test_subimages_high_contrast_doubles_contrast():
    counts = np.linspace(0, 1000, 4096).reshape(64, 64)
    images = subimages(counts)
    assert set(images) == {"standard", "high-contrast"}
    assert np.all(images["high-contrast"] <= images["standard"])
    assert (images["high-contrast"] == 0).sum() > (images["standard"] == 0).sum()


def test_study_mean_over_four_subimages():
    rng = np.random.default_rng(3)
    views = {v: rng.poisson(20, (128, 32)).astype(float) for v in ("anterior", "posterior")}
    lesions = {v: np.zeros((128, 32), bool) for v in views}
    lesions["anterior"][10:14, 10:14] = True
    bladders = {v: np.zeros((128, 32), bool) for v in views}
    result = study_bstbi(views, lesions, bladders)
    assert len(result["per_subimage"]) == 4
    assert result["per_subimage"]["posterior / standard"] == 0.0
    assert result["mean"] == pytest.approx(np.mean(list(result["per_subimage"].values())))
