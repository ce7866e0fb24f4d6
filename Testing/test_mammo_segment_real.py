"""Prompted mammography segmenters on real images: held-out real lesions re-measured against the card, physical
pixel size and exact geometry, and the classical fallback when the network finds nothing."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import REALDATA, require_shared

from smartimaging.errors import InputError
from smartimaging.evaluation import dice
from smartimaging.mammo import scene as mammo_scene
from smartimaging.mammo.images import Mammogram
from smartimaging.mammo.predict import predict_mammogram
from smartimaging.mammo.realistic import (
    CDDCESM_FOLD_HALVES,
    CDDCESM_HELD_OUT,
    evaluate,
    held_out_cases,
    held_out_patients,
    held_out_skin_bands,
    is_skin_band,
    reference_components,
    synthetic_mass,
)
from smartimaging.mammo.segment import (
    CLASSICAL_SOURCE,
    SEGMENTER_IDS,
    MammoSegmenter,
    estimated_pixel_mm,
    propose_roi,
)
from smartimaging.models.registry import models_dir
from smartimaging.mrml import sitk_to_volume_node
from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom
from smartimaging.segmentation_nodes import roi_source

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
# Reached on the held-out real lesions (issue 12 asks for >= 0.90 found and median Dice >= 0.70: Dice not met yet)
FOUND_REACHED, MEDIAN_DICE_REACHED = 15 / 16, 0.60


@pytest.fixture(scope="module")
def mass_segmenter():
    torch.set_num_threads(2)
    return MammoSegmenter.load("mass", device="cpu")


def _mammogram(pixels: np.ndarray, spacing=(PIXEL_MM, PIXEL_MM)) -> Mammogram:
    image = sitk.GetImageFromArray(pixels[None].astype(np.float32))
    image.SetSpacing((spacing[1], spacing[0], 1.0))
    image.SetOrigin((-40.0, 25.0, 0.0))
    return Mammogram(None, image, {})


def test_held_out_real_lesions_match_the_card(mass_segmenter):
    require_shared(REALDATA / "mammo_cddcesm")
    card = json.loads((models_dir() / f"{SEGMENTER_IDS['mass']}.json").read_text())
    held_out = card["training"]["data"]["held_out_never_trained"]
    assert held_out["cddcesm_patients"] == [f"P{n}" for n in CDDCESM_HELD_OUT]
    trained_on = card["training"]["data"]["backgrounds"]["cddcesm_train"]
    assert not {name.split("_")[1] for name in trained_on} & set(held_out["cddcesm_patients"])
    result = evaluate(mass_segmenter, held_out_cases(REALDATA))
    assert result["lesions"] == card["metrics"]["held_out_real"]["lesions"]
    assert result["found_fraction"] >= FOUND_REACHED - 1e-9
    assert result["median_dice"] >= MEDIAN_DICE_REACHED
    assert result["median_dice"] == pytest.approx(card["metrics"]["held_out_real"]["median_dice"], abs=0.02)


def test_pixel_size_is_honoured_and_the_mask_keeps_the_grid(mass_segmenter):
    case = make_mammo_phantom(905_000, "mass", 0)
    point = tuple(np.argwhere(case.mask).mean(axis=0))
    native = mass_segmenter.segment(case.image, PIXEL_MM, point=point)
    assert native.shape == case.image.shape and dice(native, case.mask) > 0.7
    # the same breast digitised at half the pixel size (twice the pixels): same lesion in millimetres
    fine = np.kron(case.image, np.ones((2, 2), np.float32))
    fine_mask = mass_segmenter.segment(fine, PIXEL_MM / 2, point=(point[0] * 2 + 0.5, point[1] * 2 + 0.5))
    assert fine_mask.shape == fine.shape
    assert dice(fine_mask, np.kron(case.mask, np.ones((2, 2), np.uint8))) > 0.7
    # a file without a pixel size: estimated from the image's long side (CDD-CESM 512², CBIS-DDSM film scans)
    assert estimated_pixel_mm((512, 512)) == pytest.approx(0.47, abs=0.01)
    assert estimated_pixel_mm((4600, 2700)) == pytest.approx(0.052, abs=0.002)
    placeholder = _mammogram(fine, spacing=(1.0, 1.0))  # 1280 mm long: the 1 mm is a placeholder, not a size
    mask, source = propose_roi(mass_segmenter, placeholder.image, "mass", point=(point[0] * 2, point[1] * 2))
    assert source == "AI" and dice(mask, np.kron(case.mask, np.ones((2, 2), np.uint8))) > 0.5


def test_classical_fallback_when_the_network_finds_nothing(mass_segmenter, monkeypatch):
    case = make_mammo_phantom(905_001, "mass", 0)
    mammogram = _mammogram(case.image)
    point = tuple(np.argwhere(case.mask).mean(axis=0))
    monkeypatch.setitem(mass_segmenter.model.card["outputs"], "threshold", 1.01)  # the network answers nothing
    mask, source = propose_roi(mass_segmenter, mammogram.image, "mass", point=point)
    assert source == CLASSICAL_SOURCE and dice(mask, case.mask) > 0.5
    background = (5.0, 5.0)  # outside the breast: nothing to grow either
    with pytest.raises(InputError, match="draw the ROI yourself"):
        propose_roi(mass_segmenter, mammogram.image, "mass", point=background)
    monkeypatch.setattr(MammoSegmenter, "load", classmethod(lambda cls, *args, **kwargs: mass_segmenter))
    assert predict_mammogram(mammogram, "mass", point=point).roi_source == CLASSICAL_SOURCE


def test_scene_marks_a_classical_roi(scene, mass_segmenter, monkeypatch):
    case = make_mammo_phantom(905_002, "mass", 1)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "phantom mammogram")
    sitk_to_volume_node(_mammogram(case.image).image, node)
    monkeypatch.setitem(mass_segmenter.model.card["outputs"], "threshold", 1.01)
    ai = mammo_scene.segment(scene, node, "mass", mass_segmenter, point=tuple(np.argwhere(case.mask).mean(axis=0)))
    assert roi_source(ai, edited=False) == CLASSICAL_SOURCE


def test_a_loose_synthetic_outline_includes_the_faint_margin():
    tight = synthetic_mass(np.random.default_rng(5), (128, 128), (64, 64), 20.0)[1]
    loose = synthetic_mass(np.random.default_rng(5), (128, 128), (64, 64), 20.0, loose_margin=1.0)[1]
    assert np.all(loose[tight]) and loose.sum() > tight.sum()


def test_two_fold_halves_split_the_held_out_patients():
    """Each half of the two-fold protocol is tested on the other half only; together they test every held-out
    CDD-CESM lesion once, and the training patients are in neither."""
    halves = [set(CDDCESM_FOLD_HALVES[name]) for name in sorted(CDDCESM_FOLD_HALVES)]
    assert not halves[0] & halves[1] and halves[0] | halves[1] == set(CDDCESM_HELD_OUT)
    assert set(held_out_patients("A")) == halves[1] and set(held_out_patients("B")) == halves[0]
    require_shared(REALDATA / "mammo_cddcesm")
    tested = {name: {case[0] for case in held_out_cases(REALDATA, name) if case[0].startswith("flipped")}
              for name in CDDCESM_FOLD_HALVES}
    everything = {case[0] for case in held_out_cases(REALDATA) if case[0].startswith("flipped")}
    assert not tested["A"] & tested["B"] and tested["A"] | tested["B"] == everything
    assert all(int(name.split("_")[1][1:]) in halves[1] for name in tested["A"])


def test_skin_bands_are_not_lesions():
    """A thin arc along the skin is left out of the reference lesions; a disc and a small oval are kept."""
    rows, cols = np.mgrid[0:512, 0:512]
    radius = np.hypot(rows - 256, cols)
    arc = (radius > 240) & (radius < 246)
    disc = np.hypot(rows - 200, cols - 150) < 40
    oval = ((rows - 400) / 12) ** 2 + ((cols - 300) / 6) ** 2 < 1
    kept, bands = reference_components(arc | disc | oval, 0.45)
    assert len(kept) == 2 and len(bands) == 1 and np.array_equal(bands[0], arc)
    assert not is_skin_band(disc, 0.45) and is_skin_band(arc, 0.45)


def test_the_held_out_skin_bands_are_the_two_traced_skin_lines():
    require_shared(REALDATA / "mammo_cddcesm")
    card = json.loads((models_dir() / f"{SEGMENTER_IDS['mass']}.json").read_text())
    excluded = held_out_skin_bands(REALDATA)
    assert excluded == ["flipped_P108_L_DM_CC (1 band)", "flipped_P139_R_DM_MLO (1 band)"]
    assert card["metrics"]["held_out_real"]["excluded_skin_bands"]["views"] == excluded
