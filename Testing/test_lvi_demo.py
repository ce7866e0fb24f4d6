"""BreastLVI demo models: card AUCs re-checked on fresh phantoms, and the real pyradiomics breast1 case end to end."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.metrics import roc_auc_score

from smartimaging.cli import main
from smartimaging.lvi.cohort import case_inputs
from smartimaging.lvi.predict import _settings
from smartimaging.lvi.train import case_probabilities
from smartimaging.models.registry import load_model

DEMO = [f"lvi-{sequence}-{model}-demo" for sequence in ("dce", "t2") for model in
        ("vanilla2d", "resnet10-2d", "resnet10-3d")]


@pytest.fixture(scope="module")
def fresh_cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lvi-fresh")
    assert main(["lvi", "phantoms", "--out", str(folder), "--n", "24", "--seed", "99"]) == 0  # training used seed 52
    return folder / "manifest.csv"


@pytest.mark.parametrize("model_id", DEMO)
def test_demo_card_auc_holds_on_fresh_phantoms(model_id, fresh_cohort):
    model = load_model(model_id)
    card = model.card
    assert "DEMO WEIGHTS" in card["intended_use"] and card["training"]["command"].startswith("smartimaging lvi train")
    cases = case_inputs(fresh_cohort, card["inputs"]["sequence"], None, card["inputs"]["dimensions"],
                        _settings(card))
    scores = case_probabilities(model.network, cases, next(model.network.parameters()).device)
    auc = roc_auc_score([case["label"] for case in cases], scores)
    assert auc >= card["metrics"]["validation"]["auc"]["auc"] - 0.2


def test_real_breast1_runs_end_to_end(breast1_dir, tmp_path, capsys):
    image, label = breast1_dir / "breast1_image.nrrd", breast1_dir / "breast1_label.nrrd"
    assert main(["lvi", "predict", "--dce", str(image), "--voi", str(label), "--models", "lvi-dce-resnet10-3d-demo",
                 "lvi-dce-vanilla2d-demo", "--out", str(tmp_path / "breast1")]) == 0
    result = json.loads((tmp_path / "breast1" / "result.json").read_text(encoding="utf-8"))
    assert all(0 <= m["probability"] <= 1 for m in result["models"]) and len(result["models"]) == 2
    reference = sitk.ReadImage(str(image))
    for model in result["models"]:
        heat = sitk.ReadImage(str(tmp_path / "breast1" / model["heat_map"]))
        assert heat.GetSize() == reference.GetSize()
        assert np.allclose(heat.GetDirection(), reference.GetDirection())
        assert np.allclose(heat.GetOrigin(), reference.GetOrigin())
    assert "strongly anisotropic" not in capsys.readouterr().err  # 0.66 x 0.66 x 2.1 mm: under 4x



def test_demo_fusion_with_covariates_on_a_fresh_case(fresh_cohort, tmp_path):
    import csv

    from smartimaging.models.registry import models_dir

    row = next(csv.DictReader(fresh_cohort.read_text(encoding="utf-8").splitlines()))
    folder = fresh_cohort.parent
    assert main(["lvi", "predict", "--dce", str(folder / row["dce"]), "--t2", str(folder / row["t2"]), "--voi",
                 str(folder / row["voi"]), "--fusion", str(models_dir() / "lvi-fusion-demo.json"), "--covariate",
                 f"age={row['age']}", "--covariate", f"size_mm={row['size_mm']}", "--out", str(tmp_path / "p")]) == 0
    result = json.loads((tmp_path / "p" / "result.json").read_text(encoding="utf-8"))
    assert {m["model"]["id"] for m in result["models"]} == {"lvi-dce-resnet10-3d-demo", "lvi-t2-resnet10-3d-demo"}
    assert "lvi-fusion-demo" in result["fused"]["method"] and 0 <= result["fused"]["probability"] <= 1


def test_demo_segmenter_dice_holds_on_fresh_phantoms(fresh_cohort):
    import csv

    from smartimaging.evaluation import dice
    from smartimaging.lvi.segment import LesionSegmenter

    segmenter = LesionSegmenter.load()
    card = load_model("lvi-lesion-unet-demo").card
    assert "DEMO WEIGHTS" in card["intended_use"]
    scores = []
    for row in list(csv.DictReader(fresh_cohort.read_text(encoding="utf-8").splitlines()))[:6]:
        voi = sitk.Cast(sitk.ReadImage(str(fresh_cohort.parent / row["voi"])) > 0, sitk.sitkUInt8)
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(voi)
        mask = segmenter.segment(sitk.ReadImage(str(fresh_cohort.parent / row["dce"])), stats.GetCentroid(1))
        scores.append(dice(sitk.GetArrayFromImage(mask) > 0, sitk.GetArrayFromImage(voi) > 0))
    assert np.mean(scores) >= card["metrics"]["dice"] - 0.15


def test_anisotropic_and_differently_gridded_sequences_are_reported():
    from smartimaging.lvi.predict import predict_case
    from smartimaging.phantoms.breast_mri import make_breast_mri_phantom

    case = make_breast_mri_phantom(991_000, (16, 96, 96), lvi=1)
    dce = sitk.GetImageFromArray(case.dce2)
    dce.SetSpacing((0.5, 0.5, 3.0))  # 6:1
    t2 = sitk.GetImageFromArray(case.t2)
    t2.CopyInformation(dce)
    t2 = sitk.Resample(t2, [48, 48, 16], sitk.Transform(), sitk.sitkLinear, (0.0, 0.0, 0.0), (1.0, 1.0, 3.0),
                       dce.GetDirection(), 0.0, sitk.sitkFloat32)
    voi = sitk.GetImageFromArray(case.lesions)
    voi.CopyInformation(dce)
    prediction = predict_case({"DCE": dce, "T2": t2}, voi)
    assert len(prediction.models) == 2
    assert any("strongly anisotropic" in w for w in prediction.warnings)
    assert any("T2" in w and "another grid" in w for w in prediction.warnings)
