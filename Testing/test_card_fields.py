"""Model-card fields not covered by the weights' checksum: every demo card passes its task's check, and each edited
field is refused with a ModelError naming the card and the field (pure checks: nothing is built or loaded)."""

from __future__ import annotations

import copy
import json
import time

import pytest

from smartimaging.bonescan.pipeline import check_classifier_card as check_bonescan_classifier
from smartimaging.bonescan.pipeline import check_segmenter_card as check_bonescan_segmenter
from smartimaging.dce.synthesis import check_dce_card
from smartimaging.errors import ModelError
from smartimaging.lvi.predict import check_lvi_card
from smartimaging.lvi.segment import check_segmenter_card as check_lesion_segmenter
from smartimaging.mammo.scorer import check_radiomics_card
from smartimaging.models.nets import CardFieldError, build_network, check_architecture, checked_card
from smartimaging.models.registry import MODELS_DIR

CHECKS = {
    "bonescan-resnet34-demo": check_bonescan_classifier,
    "bonescan-unet-demo": check_bonescan_segmenter,
    "dce-pix2pix-demo": check_dce_card,
    "lvi-lesion-unet-demo": check_lesion_segmenter,
    "mammo-mass-classifier-demo": check_radiomics_card,
    "mammo-calcification-classifier-demo": check_radiomics_card,
    **{f"lvi-{sequence}-{network}-demo": check_lvi_card for sequence in ("dce", "t2")
       for network in ("resnet10-2d", "resnet10-3d", "vanilla2d")},
}


def _card(model_id: str) -> dict:
    return json.loads((MODELS_DIR / f"{model_id}.json").read_text(encoding="utf-8"))


def _edited(model_id: str, path: str, value) -> dict:
    card = copy.deepcopy(_card(model_id))
    *parents, last = path.split(".")
    target = card
    for key in parents:
        target = target[key]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return card


def test_every_demo_card_with_a_task_check_is_listed():
    cards = {path.stem for path in MODELS_DIR.glob("*.json") if not path.stem.endswith(".xgboost")}
    assert cards - set(CHECKS) == {"lvi-fusion-demo", "mammo-mass-unet-demo", "mammo-calcification-unet-demo"}


@pytest.mark.parametrize("model_id", sorted(CHECKS))
def test_every_demo_card_passes(model_id):
    card = _card(model_id)
    checked_card(f"{model_id}.json", CHECKS[model_id], card)
    if "architecture" in card:
        check_architecture(card["architecture"])


@pytest.mark.parametrize("model_id", ["mammo-mass-unet-demo", "mammo-calcification-unet-demo"])
def test_mammo_unet_architectures_pass(model_id):
    check_architecture(_card(model_id)["architecture"])


BAD = [
    ("lvi-dce-resnet10-3d-demo", "outputs.cutoff", float("nan"), "outputs.cutoff is nan"),
    ("lvi-dce-resnet10-3d-demo", "outputs.cutoff", 1.5, "outputs.cutoff is 1.5; expected 0 to 1"),
    ("lvi-dce-resnet10-3d-demo", "outputs.cutoff", "0.5", "outputs.cutoff is '0.5', not a number"),
    ("lvi-dce-resnet10-3d-demo", "training", None, "training.model is missing"),
    ("lvi-dce-resnet10-3d-demo", "inputs.dimensions", 2, "inputs.dimensions is 2 but the resnet10_3d_convpool"),
    ("lvi-dce-vanilla2d-demo", "inputs.dimensions", 3, "inputs.dimensions is 3 but the vanilla_cnn_2d"),
    ("lvi-t2-resnet10-2d-demo", "inputs.dimensions", 3, "inputs.dimensions is 3 but the resnet10 network is 2D"),
    ("lvi-dce-resnet10-3d-demo", "inputs.sequence", "PET", "inputs.sequence is 'PET'"),
    ("lvi-dce-resnet10-3d-demo", "inputs.preprocessing.margin_mm", 1e7,
     "inputs.preprocessing.margin_mm is 1e+07; expected 0 to 100 mm"),
    ("lvi-dce-resnet10-3d-demo", "inputs.preprocessing.margin_mm", -1, "margin_mm is -1"),
    ("lvi-dce-resnet10-3d-demo", "inputs.preprocessing.size_3d", [1024, 2048, 2048], "size_3d[0] is 1024"),
    ("lvi-dce-resnet10-3d-demo", "inputs.preprocessing.size_3d", [512, 512, 512], "134217728 voxels"),
    ("lvi-dce-resnet10-3d-demo", "inputs.preprocessing.size_3d", [16, 64, 32], "built for [16, 64, 64]"),
    ("lvi-dce-resnet10-2d-demo", "inputs.preprocessing.size_2d", 0, "size_2d is 0"),
    ("lvi-dce-vanilla2d-demo", "inputs.preprocessing.size_2d", 128, "built for 64"),
    ("lvi-dce-resnet10-3d-demo", "inputs.preprocessing", None, "inputs.preprocessing is missing"),
    ("lvi-dce-resnet10-3d-demo", "architecture.widen_factor", 100, "architecture.widen_factor is 100"),
    ("lvi-dce-resnet10-3d-demo", "architecture.input_size", [16, 64, 100000], "architecture.input_size[2]"),
    ("lvi-dce-vanilla2d-demo", "architecture.num_classes", 2, "architecture.num_classes is 2"),
    ("dce-pix2pix-demo", "architecture.depth", 200_000, "architecture.depth is 200000; expected 5 to 10"),
    ("dce-pix2pix-demo", "architecture.depth", True, "architecture.depth is True, not a whole number"),
    ("dce-pix2pix-demo", "architecture.ngf", 100_000, "architecture.ngf is 100000; expected 1 to 512"),
    ("dce-pix2pix-demo", "architecture.in_channels", 3, "architecture.in_channels is 3"),
    ("dce-pix2pix-demo", "task", "lvi", "task is 'lvi'"),
    ("lvi-lesion-unet-demo", "outputs.threshold", float("inf"), "outputs.threshold is inf"),
    ("lvi-lesion-unet-demo", "inputs.patch_size_zyx", [16, 64, 32], "patch_size_zyx is [16, 64, 32]"),
    ("lvi-lesion-unet-demo", "inputs.patch_spacing_xyz_mm", [1.5, 1.5, 0], "patch_spacing_xyz_mm is 0"),
    ("lvi-lesion-unet-demo", "architecture.features", [8] * 5, "architecture.features is"),
    ("lvi-lesion-unet-demo", "architecture.spatial_dims", 2, "architecture.spatial_dims is 2"),
    ("bonescan-resnet34-demo", "outputs.thresholds", {"case metastasis (Youden on validation cases)": -3},
     "is -3; expected 0 to 1"),
    ("bonescan-resnet34-demo", "inputs.crop", [4096, 4096], "inputs.crop is [4096, 4096]; expected [256, 256]"),
    ("bonescan-resnet34-demo", "inputs.crop_stride_rows", 0, "inputs.crop_stride_rows is 0"),
    ("bonescan-resnet34-demo", "architecture.num_classes", 1, "architecture.num_classes is 1"),
    ("bonescan-unet-demo", "inputs.size_rows_cols", [100000, 256], "size_rows_cols[0] is 100000"),
    ("bonescan-unet-demo", "architecture.features", [5000] * 6, "architecture.features[0] is 5000"),
    ("bonescan-unet-demo", "architecture.norm", "group", "architecture.norm is 'group'"),
    ("mammo-mass-classifier-demo", "cutoff.value", float("nan"), "cutoff.value is nan"),
    ("mammo-mass-classifier-demo", "cutoff.value", -0.1, "cutoff.value is -0.1"),
    ("mammo-mass-classifier-demo", "training", {"pixel_spacing_mm": float("inf")}, "pixel_spacing_mm is inf"),
    ("mammo-mass-classifier-demo", "training", {"pixel_spacing_mm": 0}, "pixel_spacing_mm is 0"),
    ("mammo-mass-classifier-demo", "radiomics", {"settings": "x"}, "radiomics.settings is 'x'"),
    ("mammo-mass-classifier-demo", "version", 3, "version is 3"),
]


@pytest.mark.parametrize("model_id, path, value, expect", BAD, ids=[f"{m}:{p}={v!r}" for m, p, v, _ in BAD])
def test_each_edited_field_is_refused_naming_card_and_field(model_id, path, value, expect):
    with pytest.raises(ModelError) as refused:
        checked_card(f"{model_id}.json", CHECKS[model_id], _edited(model_id, path, value))
    message = str(refused.value)
    assert message.startswith(f"Model card {model_id}.json: "), message
    assert expect in message, message
    assert message.endswith("reinstall SmartImaging or retrain the model."), message
    assert "\n" not in message


def test_mammo_card_values_are_returned():
    checked = check_radiomics_card(_card("mammo-mass-classifier-demo"))
    assert checked["cutoff"] == 0.57 and checked["provenance"]["id"] == "mammo-mass-classifier-demo"
    assert isinstance(checked["radiomics"]["settings"], dict)


def test_build_network_bounds_depth_and_sizes_before_building():
    started = time.perf_counter()
    with pytest.raises(CardFieldError, match="architecture.depth is 200000"):
        build_network({"name": "pix2pix_unet", "ngf": 4, "depth": 200_000})
    with pytest.raises(CardFieldError, match="architecture.input_size"):
        build_network({"name": "resnet10_3d_convpool", "input_size": [2048, 2048, 2048]})
    with pytest.raises(CardFieldError, match="architecture.name"):
        build_network({"name": "transformer"})
    assert time.perf_counter() - started < 1
    # channel counts are left to the registry's tensor-shape check on build (cheap on the meta device)
    check_architecture({"name": "basic_unet", "out_channels": 1, "features": [10**5] * 6}, channels=False)


def test_every_demo_model_loads_through_its_task_loader():
    from smartimaging.bonescan.pipeline import BoneScanModels
    from smartimaging.dce.synthesis import DCESynthesizer
    from smartimaging.lvi.fusion import read_fusion
    from smartimaging.lvi.predict import load_lvi_model
    from smartimaging.lvi.segment import LesionSegmenter
    from smartimaging.mammo.scorer import read_radiomics_card

    for model_id, check in CHECKS.items():
        if check is check_lvi_card:
            assert load_lvi_model(model_id).card["id"] == model_id
        elif check is check_radiomics_card:
            assert read_radiomics_card(MODELS_DIR / f"{model_id}.json")["cutoff"] > 0
    assert LesionSegmenter.load().threshold == 0.5
    assert DCESynthesizer.load(device="cpu").model.card["id"] == "dce-pix2pix-demo"
    assert 0 < BoneScanModels.load(device="cpu").case_threshold < 1
    assert read_fusion(MODELS_DIR / "lvi-fusion-demo.json")["id"] == "lvi-fusion-demo"
