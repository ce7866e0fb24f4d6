"""Domain check (issue 12 §3): profiles, card ranges, verdicts in plain words."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REALDATA, REPO, require_shared

from smartimaging import domain
from smartimaging.errors import InputError


def _smooth_phantom(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 4) ** 2))
    return image + rng.normal(0, 0.01, image.shape)


def test_profile_measures_size_intensity_noise_and_lesion():
    image = _smooth_phantom(0)
    mask = np.zeros(image.shape, bool)
    mask[28:36, 28:36] = True
    profile = domain.image_profile(image, 0.5, lesion_mask=mask, pixel_size_assumed=1.0)
    assert profile["pixel_size_mm"] == 0.5
    assert profile["rows_mm"] == profile["cols_mm"] == 32.0
    assert profile["intensity_q01"] < profile["intensity_q50"] < profile["intensity_q99"]
    assert 0.005 < profile["noise_sigma"] < 0.02  # the added Gaussian noise (sigma 0.01), not the smooth blob
    assert profile["lesion_diameter_mm"] == pytest.approx(2 * np.sqrt(16 / np.pi))
    assert profile["lesion_contrast"] > 0  # the lesion sits on the bright centre
    assert profile["pixel_size_assumed"] == 1.0


def test_profile_3d_spacing_per_axis_and_unknown_pixel_size():
    volume = np.random.default_rng(1).normal(size=(4, 10, 12))
    profile = domain.image_profile(volume, (3.0, 0.5, 0.5))
    assert (profile["slice_spacing_mm"], profile["slices_mm"], profile["cols_mm"]) == (3.0, 12.0, 6.0)
    unknown_size = domain.image_profile(volume, None)
    assert "pixel_size_mm" not in unknown_size and "rows_mm" not in unknown_size
    with pytest.raises(InputError, match="pixel size"):
        domain.image_profile(volume, (1.0, 1.0))
    with pytest.raises(InputError, match="no valid pixel"):
        domain.image_profile(np.full((4, 4), np.nan), 1.0)


def test_summarise_widens_ranges_and_skips_flags():
    profiles = [{"a": 1.0, "b": 5.0, "pixel_size_assumed": 1.0}, {"a": 3.0, "b": 5.0}]
    summary = domain.summarise(profiles, "two test profiles")
    assert summary["n"] == 2 and summary["data"] == "two test profiles"
    pad = domain.SD_MARGIN * 1.0 + domain.RELATIVE_TOLERANCE * 3.0  # the values' SD (1) exceeds 10 % of the span
    assert summary["ranges"]["a"] == [pytest.approx(1.0 - pad), pytest.approx(3.0 + pad)]
    assert summary["ranges"]["b"][0] < 5.0 < summary["ranges"]["b"][1]  # a constant quantity gets a tolerance
    assert "pixel_size_assumed" not in summary["ranges"]


def test_check_inside_outside_unknown():
    train = [domain.image_profile(_smooth_phantom(seed), 0.2) for seed in range(20)]
    card_domain = domain.summarise(train, "20 smooth phantoms")
    fresh = domain.check(card_domain, domain.image_profile(_smooth_phantom(99), 0.2), "unet")
    assert fresh == {"verdict": "inside", "reasons": [], "text": "inside the model's training data", "model": "unet"}

    real_like = _smooth_phantom(99) + np.random.default_rng(5).normal(0, 0.2, (64, 64))  # much noisier
    noisy = domain.check(card_domain, domain.image_profile(real_like, 0.2), "unet")
    assert noisy["verdict"] == "outside" and any("pixel noise" in r for r in noisy["reasons"])
    assert noisy["text"].startswith("outside the model's training data (")

    coarse = domain.check(card_domain, domain.image_profile(_smooth_phantom(99), 1.0), "unet")
    assert any(r.startswith("pixel size 1 mm (trained on") for r in coarse["reasons"])
    no_size = domain.check(card_domain, domain.image_profile(_smooth_phantom(99), None), "unet")
    assert no_size["verdict"] == "outside" and "pixel size unknown" in no_size["text"]
    assumed = domain.check(card_domain, domain.image_profile(_smooth_phantom(99), 0.2, pixel_size_assumed=1), "unet")
    assert assumed["reasons"] == ["pixel size assumed, not read from the file"]

    no_card = domain.check(None, {"intensity_q50": 0.1}, "old")
    assert no_card["verdict"] == "unknown" and "does not describe" in no_card["text"]


def test_radiomics_features_outside_when_enough_fall_out():
    train = [domain.feature_profile({f"f{i}": float(seed + i) for i in range(20)}) for seed in range(10)]
    card_domain = domain.summarise(train, "features")
    one_off = domain.feature_profile({**{f"f{i}": 5.0 + i for i in range(20)}, "f0": 1e6, "diagnostics_x": "v"})
    assert domain.check(card_domain, one_off, "clf")["verdict"] == "inside"  # 1 of 20 is within the 10 % allowance
    many_off = {**one_off, "feature:f1": -1e6, "feature:f2": 1e6}
    result = domain.check(card_domain, many_off, "clf")
    assert result["verdict"] == "outside" and "3 of 20 radiomics features" in result["reasons"][0]


def test_combine_outside_wins_then_unknown():
    inside = domain.check({"ranges": {"x": [0, 1]}}, {"x": 0.5}, "segmenter")
    outside = domain.check({"ranges": {"x": [0, 1]}}, {"x": 2.0}, "classifier")
    unknown = domain.unknown("fusion", "not run")
    both = domain.combine([inside, outside, unknown])
    assert both["verdict"] == "outside" and both["reasons"] == ["classifier: x 2 (trained on 0–1)"]
    assert both["models"] == {"segmenter": "inside", "classifier": "outside", "fusion": "unknown"}
    assert domain.combine([inside, unknown])["verdict"] == "unknown"
    assert domain.combine([inside, inside])["text"] == "inside the model's training data"


# --- the shipped cards: fresh phantoms (seeds never used in training) inside, real cases outside -----------------

BREAST1 = REALDATA / "breast_mri_pyradiomics"
CARDS_WITH_DOMAIN = ("bonescan-resnet34-demo", "bonescan-unet-demo", "dce-pix2pix-demo", "lvi-fusion-demo",
                     "mammo-mass-classifier-demo", "mammo-calcification-classifier-demo",
                     *(f"lvi-{s}-{m}-demo" for s in ("dce", "t2") for m in ("resnet10-3d", "resnet10-2d", "vanilla2d")))


def _card(model_id: str) -> dict:
    return json.loads((REPO / "Resources" / "Models" / f"{model_id}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("model_id", CARDS_WITH_DOMAIN)
def test_shipped_card_records_the_ranges_of_its_training_inputs(model_id):
    domain_field = _card(model_id)["training_domain"]
    assert domain_field["n"] >= 20 and "tools/card_domains.py" in domain_field["data"]
    assert domain_field["ranges"] and all(low < high for low, high in domain_field["ranges"].values())


def test_bone_scan_fresh_phantoms_inside_the_ge_scan_outside(tmp_path):
    from smartimaging.bonescan.pipeline import domain_check
    from smartimaging.bonescan.views import load_bone_scan, write_nm_dicom
    from smartimaging.phantoms.bonescan import make_bone_scan_phantom

    cards = [_card("bonescan-resnet34-demo"), _card("bonescan-unet-demo")]
    for seed in (990_000_001, 990_000_002):
        case = make_bone_scan_phantom(seed)
        write_nm_dicom(tmp_path / f"{seed}.dcm", case.views, case.patient_id, case.age)
        assert domain_check(load_bone_scan([tmp_path / f"{seed}.dcm"]), cards)["verdict"] == "inside"
    real = domain_check(load_bone_scan([REPO / "Resources" / "SampleData" / "GE_NM_wholebody_bone.dcm"]), cards)
    assert real["verdict"] == "outside" and set(real["models"].values()) == {"outside"}


def test_lvi_and_dce_fresh_phantoms_inside_breast1_outside(tmp_path):
    from smartimaging.dce.cohort import write_dce_phantom_cohort
    from smartimaging.dce.synthesis import domain_profile as dce_profile
    from smartimaging.io import read_series_or_volume
    from smartimaging.lvi.cohort import write_lvi_phantom_cohort
    from smartimaging.lvi.predict import _settings, domain_profile
    from smartimaging.lvi.preprocess import network_input
    from smartimaging.manifest import read_manifest

    lvi_cards = [_card(f"lvi-dce-{m}-demo") for m in ("resnet10-3d", "resnet10-2d", "vanilla2d")]

    def lvi_verdicts(volume, voi):
        return {domain.check_card(c, domain_profile(network_input(volume, voi, c["inputs"]["dimensions"],
                                                                  _settings(c)), volume, voi))["verdict"]
                for c in lvi_cards}

    manifest = read_manifest(write_lvi_phantom_cohort(tmp_path / "lvi", 2, seed=9100), ("patient_id",))
    for row in manifest.rows:
        volume, voi = (read_series_or_volume(manifest.resolve(row[c])) for c in ("dce", "voi"))
        assert lvi_verdicts(volume, voi) == {"inside"}
    manifest = read_manifest(write_dce_phantom_cohort(tmp_path / "dce", 2, seed=9100), ("patient_id",))
    dce_card = _card("dce-pix2pix-demo")
    for row in manifest.rows:
        t1 = read_series_or_volume(manifest.resolve(row["t1"]))
        assert domain.check_card(dce_card, dce_profile(t1))["verdict"] == "inside"
    image = read_series_or_volume(require_shared(BREAST1 / "breast1_image.nrrd"))
    label = read_series_or_volume(BREAST1 / "breast1_label.nrrd")
    assert lvi_verdicts(image, label) == {"outside"}
    real_t1 = domain.check_card(dce_card, dce_profile(image))
    assert real_t1["verdict"] == "outside" and "pixel size" in real_t1["text"]


def test_mammo_classifier_fresh_phantoms_inside_nyu_outside(tmp_path):
    from PIL import Image

    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.mammo.domain import classifier_check
    from smartimaging.mammo.features import load_mask, pixel_mm_of_row
    from smartimaging.mammo.images import load_mammogram
    from smartimaging.manifest import read_manifest
    from smartimaging.radiomics import extract_2d

    classifier = _card("mammo-mass-classifier-demo")
    manifest = read_manifest(write_mammo_phantom_cohort(tmp_path, 3, seed=9100, kind="mass"))
    for row in manifest.rows:
        mammogram = load_mammogram(manifest.resolve(row["image"]), pixel_mm_of_row(row))
        roi = load_mask(manifest.resolve(row["mask"]), mammogram)
        assert classifier_check(classifier, mammogram, extract_2d(mammogram.image, roi))["verdict"] == "inside"
    nyu = require_shared(REALDATA / "mammo_gmic_nyu")
    with Image.open(nyu / "0_R-CC_benign_mask.png") as mask:
        roi = (np.asarray(mask.convert("L")) > 0).astype(np.uint8)
    for pixel_mm, reason in ((None, "pixel size assumed"), (0.2, "radiomics features outside")):
        mammogram = load_mammogram(nyu / "0_R-CC_cropped.png", pixel_mm)
        result = classifier_check(classifier, mammogram, extract_2d(mammogram.image, roi))
        assert result["verdict"] == "outside" and reason in result["text"], result["text"]


def test_bone_scan_cli_result_and_console_carry_the_domain_check(tmp_path, capsys):
    from smartimaging.cli import main

    out = tmp_path / "ge"
    sample = REPO / "Resources" / "SampleData" / "GE_NM_wholebody_bone.dcm"
    assert main(["bonescan", "predict", str(sample), "--out", str(out), "--device", "cpu"]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert record["domain"]["verdict"] == "outside"
    assert f"domain check: {record['domain']['text']}" in capsys.readouterr().out


def test_ranges_of_sizes_never_go_below_zero_and_a_constant_reads_as_such():
    profiles = [{"pixel_size_mm": 0.05, "intensity_q01": 0.0}, {"pixel_size_mm": 0.9, "intensity_q01": 0.1},
                {"pixel_size_mm": 0.2, "intensity_q01": 0.05}]
    trained = domain.summarise(profiles, "three inputs")
    assert trained["ranges"]["pixel_size_mm"][0] == 0.0
    assert trained["ranges"]["intensity_q01"][0] < 0  # an intensity may be negative
    constant = domain.summarise([{"intensity_q50": 0.0}] * 5, "five empty views")
    reasons = domain.check(constant, {"intensity_q50": 0.0098}, "m")["reasons"]
    assert reasons == ["median intensity 0.0098 (always 0 in training)"]
