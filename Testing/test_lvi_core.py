"""BreastLVI foundations: LVI phantoms, the paper's three networks, and the VOI-centred preprocessing (geometry-aware,
with clear refusals), including the real pyradiomics breast1 case."""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from smartimaging.errors import InputError
from smartimaging.lvi.preprocess import Preprocessing, crop_3d, tumour_slices_2d
from smartimaging.models.nets import build_network
from smartimaging.phantoms.breast_mri import make_breast_mri_phantom


def test_lvi_phantoms_differ_by_oedema_in_probability():
    positive = [make_breast_mri_phantom(700 + i, shape=(16, 96, 96), lvi=1) for i in range(8)]
    negative = [make_breast_mri_phantom(800 + i, shape=(16, 96, 96), lvi=0) for i in range(8)]
    assert all(case.lesion_kinds == ["malignant"] and case.lesions.any() for case in positive + negative)
    oedema = [np.mean([case.oedema.any() for case in group]) for group in (positive, negative)]
    assert oedema[0] > oedema[1]
    with_oedema = next(case for case in positive if case.oedema.any())
    ring = with_oedema.oedema & (with_oedema.lesions == 0)
    assert with_oedema.t2[ring].mean() > 1.3 * with_oedema.t2[with_oedema.lesions > 0].mean()  # bright on T2


@pytest.mark.parametrize("architecture, shape", [
    ({"name": "vanilla_cnn_2d", "features": 8, "input_size": 64}, (3, 1, 64, 64)),
    ({"name": "resnet10", "spatial_dims": 2, "num_classes": 1, "widen_factor": 0.25}, (3, 1, 64, 64)),
    ({"name": "resnet10_3d_convpool", "widen_factor": 0.25, "input_size": [16, 64, 64], "head_channels": 16},
     (2, 1, 16, 64, 64))])
def test_networks_give_one_logit_per_case(architecture, shape):
    network = build_network(architecture).eval()
    with torch.no_grad():
        assert network(torch.randn(*shape)).shape == (shape[0], 1)


def test_vanilla_cnn_has_five_doubling_conv_pool_blocks():
    network = build_network({"name": "vanilla_cnn_2d", "features": 8, "input_size": 64})
    convolutions = [m for m in network.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convolutions] == [8, 16, 32, 64, 128]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1) for c in convolutions)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in network.features) == 5
    linear = [m for m in network.classifier if isinstance(m, torch.nn.Linear)]
    assert linear[0].out_features == 512 and any(isinstance(m, torch.nn.Dropout) for m in network.classifier)


def test_3d_resnet10_has_two_conv_pool_layers_instead_of_global_pooling():
    network = build_network({"name": "resnet10_3d_convpool", "widen_factor": 0.25, "input_size": [16, 64, 64]})
    assert sum(isinstance(m, torch.nn.Conv3d) for m in network.head) == 2
    assert sum(isinstance(m, torch.nn.MaxPool3d) for m in network.head) == 2
    assert not any(isinstance(m, torch.nn.AdaptiveAvgPool3d) for m in network.modules())


@pytest.fixture(scope="module")
def lvi_case():
    case = make_breast_mri_phantom(901, shape=(16, 96, 96), lvi=1)
    volume = sitk.GetImageFromArray(case.t2)
    volume.SetSpacing((1.5, 1.5, 3.0))
    volume.SetOrigin((-70.0, -40.0, 12.0))
    voi = sitk.GetImageFromArray(case.lesions)
    voi.CopyInformation(volume)
    return case, volume, voi


def test_3d_crop_is_centred_on_the_lesion_and_z_scored(lvi_case):
    _, volume, voi = lvi_case
    crop = crop_3d(volume, voi)
    assert crop.shape == Preprocessing().size_3d and np.isfinite(crop).all()
    assert abs(float(np.median(crop))) < 1.5 and 0.3 < crop.std() < 3
    lesion_only = sitk.Cast(voi, sitk.sitkFloat32) * 100 + 1  # a volume bright exactly in the lesion
    lesion_crop = crop_3d(lesion_only, voi)
    centre = np.argwhere(lesion_crop > lesion_crop.mean()).mean(axis=0)
    assert np.allclose(centre, (np.array(lesion_crop.shape) - 1) / 2, atol=2.0)


def test_crop_follows_physical_space_not_the_voxel_grid(lvi_case):
    _, volume, voi = lvi_case
    resampled = sitk.Resample(volume, [48, 48, 24], sitk.Transform(), sitk.sitkLinear, volume.GetOrigin(),
                              [3.0, 3.0, 2.0], volume.GetDirection(), 0.0, sitk.sitkFloat32)
    original, coarse = crop_3d(volume, voi), crop_3d(resampled, voi)
    assert np.corrcoef(original.ravel(), coarse.ravel())[0, 1] > 0.8


def test_2d_model_input_is_the_tumour_slices(lvi_case):
    case, volume, voi = lvi_case
    slices = tumour_slices_2d(volume, voi)
    assert slices.shape[1:] == (64, 64)
    assert len(slices) == int((case.lesions > 0).reshape(len(case.lesions), -1).any(axis=1).sum())


@pytest.mark.parametrize("problem, message", [("empty", "empty"), ("outside", "outside"), ("2d", "2D image")])
def test_bad_vois_and_inputs_are_refused(lvi_case, problem, message):
    _, volume, voi = lvi_case
    if problem == "empty":
        voi = voi * 0
    elif problem == "outside":
        voi = sitk.Image(voi)
        voi.SetOrigin((900.0, 900.0, 900.0))
    else:
        volume, voi = volume[:, :, 8:9], voi[:, :, 8:9]
    with pytest.raises(InputError, match=message):
        crop_3d(volume, voi)


def test_real_breast1_case_is_preprocessed(breast1_dir):
    volume = sitk.ReadImage(str(breast1_dir / "breast1_image.nrrd"))
    label = sitk.ReadImage(str(breast1_dir / "breast1_label.nrrd"))
    crop = crop_3d(volume, label)
    slices = tumour_slices_2d(volume, label)
    assert crop.shape == (16, 64, 64) and np.isfinite(crop).all()
    assert len(slices) == 3  # the label spans slices 8-10


def test_train_with_the_papers_schedule_then_table_1(tmp_path, capsys):
    from smartimaging.cli import main

    cohort = tmp_path / "cohort"
    assert main(["lvi", "phantoms", "--out", str(cohort), "--n", "16", "--seed", "9",
                 "--splits", "train=0.5,val=0.25,test=0.25"]) == 0
    cards = []
    for model in ("vanilla2d", "resnet10-3d"):
        assert main(["lvi", "train", "--manifest", str(cohort / "manifest.csv"), "--sequence", "T2", "--model", model,
                     "--out", str(tmp_path / "models"), "--width", "0.125", "--epochs", "2", "--device", "cpu",
                     "--quiet"]) == 0
        cards.append(tmp_path / "models" / f"lvi-t2-{model}-custom.json")
    card = json.loads(cards[1].read_text(encoding="utf-8"))
    assert card["inputs"]["dimensions"] == 3 and card["training"]["config"]["batch_size"] == 8  # the paper's 3D batch
    history = card["training"]["history"]
    assert [row["epoch"] for row in history] == [1, 2] and "val_auc" in history[0]
    iterations = card["training"]["total_iterations"]
    assert history[-1]["train_learning_rate"] == pytest.approx(1e-3 * 0.9 ** (iterations // max(1, iterations // 10)))
    assert 0 <= card["outputs"]["cutoff"] <= 1
    assert json.loads(cards[0].read_text(encoding="utf-8"))["training"]["config"]["batch_size"] == 64
    capsys.readouterr()
    assert main(["lvi", "evaluate", "--manifest", str(cohort / "manifest.csv"), "--models", *map(str, cards),
                 "--out", str(tmp_path / "eval")]) == 0
    table = capsys.readouterr().out
    assert "vanilla2d" in table and "resnet10-3d" in table and "AUC" in table
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text(encoding="utf-8"))
    assert [row["cases"] for row in report["models"]] == [4, 4]

    # predict: probabilities per model, fusion, Grad-CAM volumes on the T2's exact grid; T2 given on another grid
    rows = csv.DictReader((cohort / "manifest.csv").read_text(encoding="utf-8").splitlines())
    row = next(r for r in rows if r["split"] == "test")
    t2 = sitk.ReadImage(str(cohort / row["t2"]))
    coarse = sitk.Resample(t2, [48, 48, 16], sitk.Transform(), sitk.sitkLinear, t2.GetOrigin(),
                           [4.0, 4.0, 2.5], t2.GetDirection(), 0.0, sitk.sitkFloat32)
    sitk.WriteImage(coarse, str(tmp_path / "t2_coarse.nrrd"))
    assert main(["lvi", "predict", "--t2", str(tmp_path / "t2_coarse.nrrd"), "--voi", str(cohort / row["voi"]),
                 "--models", *map(str, cards), "--out", str(tmp_path / "predict")]) == 0
    result = json.loads((tmp_path / "predict" / "result.json").read_text(encoding="utf-8"))
    probabilities = [m["probability"] for m in result["models"]]
    assert len(probabilities) == 2 and result["fused"]["probability"] == pytest.approx(np.mean(probabilities))
    for model in result["models"]:
        heat = sitk.ReadImage(str(tmp_path / "predict" / model["heat_map"]))
        assert heat.GetSize() == coarse.GetSize() and heat.GetSpacing() == coarse.GetSpacing()
        assert heat.GetOrigin() == coarse.GetOrigin() and heat.GetDirection() == coarse.GetDirection()
        values = sitk.GetArrayFromImage(heat)
        assert 0 <= values.min() and values.max() <= 1 + 1e-5
    assert main(["lvi", "predict", "--dce", str(cohort / row["dce"]), "--voi", str(cohort / row["voi"]),
                 "--models", str(cards[0]), "--out", str(tmp_path / "no-model")]) == 2
    assert not (tmp_path / "no-model").exists()

    # fusion of the models with clinical covariates, fitted on the training cases, used by predict
    assert main(["lvi", "fuse", "--manifest", str(cohort / "manifest.csv"), "--models", *map(str, cards),
                 "--covariates", "age,size_mm", "--out", str(tmp_path / "fusion"), "--name", "lvi-fusion-test"]) == 0
    fusion_card = tmp_path / "fusion" / "lvi-fusion-test.json"
    fusion = json.loads(fusion_card.read_text(encoding="utf-8"))["fusion"]
    assert len(fusion["coefficients"]) == 4 and 0 <= fusion["cutoff"] <= 1
    arguments = ["lvi", "predict", "--t2", str(cohort / row["t2"]), "--voi", str(cohort / row["voi"]),
                 "--fusion", str(fusion_card), "--models-dir", str(tmp_path / "models")]
    assert main([*arguments, "--covariate", f"age={row['age']}", "--covariate", f"size_mm={row['size_mm']}",
                 "--out", str(tmp_path / "fused")]) == 0
    fused = json.loads((tmp_path / "fused" / "result.json").read_text(encoding="utf-8"))["fused"]
    assert fused["method"].startswith("logistic regression") and 0 <= fused["probability"] <= 1
    assert main([*arguments, "--covariate", f"age={row['age']}", "--out", str(tmp_path / "no-size")]) == 2
    assert "size_mm" in capsys.readouterr().err and not (tmp_path / "no-size").exists()


def test_click_seeded_segmenter_trains_and_writes_a_voi_on_the_volume_grid(tmp_path, capsys):
    from smartimaging.cli import main

    cohort = tmp_path / "cohort"
    assert main(["lvi", "phantoms", "--out", str(cohort), "--n", "6", "--seed", "8",
                 "--splits", "train=0.5,val=0.5"]) == 0
    assert main(["lvi", "train-segmenter", "--manifest", str(cohort / "manifest.csv"), "--out",
                 str(tmp_path / "models"), "--name", "lvi-lesion-unet-demo", "--epochs", "1", "--batch-size", "4",
                 "--device", "cpu", "--quiet"]) == 0
    card = json.loads((tmp_path / "models" / "lvi-lesion-unet-demo.json").read_text(encoding="utf-8"))
    assert card["training"]["train_volumes"] == 6 and "val_dice" in card["training"]["history"][0]
    rows = list(csv.DictReader((cohort / "manifest.csv").read_text(encoding="utf-8").splitlines()))
    volume_path, voi_path = cohort / rows[0]["dce"], cohort / rows[0]["voi"]
    voi = sitk.ReadImage(str(voi_path))
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(voi > 0, sitk.sitkUInt8))
    point = ",".join(f"{v:.2f}" for v in stats.GetCentroid(1))
    code = main(["lvi", "segment", str(volume_path), "--point", point, "--out", str(tmp_path / "seg"),
                 "--models-dir", str(tmp_path / "models")])
    if code == 0:  # one epoch may already find the lesion; the mask must then lie on the volume's grid
        mask = sitk.ReadImage(str(tmp_path / "seg" / "voi.nrrd"))
        volume = sitk.ReadImage(str(volume_path))
        assert mask.GetSize() == volume.GetSize() and mask.GetOrigin() == volume.GetOrigin()
    else:
        assert code == 2 and "no lesion" in capsys.readouterr().err
    assert main(["lvi", "segment", str(volume_path), "--point", "900,900,900", "--out", str(tmp_path / "outside"),
                 "--models-dir", str(tmp_path / "models")]) == 2
    assert "outside the volume" in capsys.readouterr().err and not (tmp_path / "outside").exists()


def test_a_voi_outside_a_sequence_names_that_sequence():
    from smartimaging.lvi.preprocess import network_input

    volume = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 100, (12, 40, 40)).astype(np.float32))
    voi = sitk.GetImageFromArray(np.ones((2, 4, 4), np.uint8))
    voi.SetOrigin((500.0, 0.0, 0.0))  # the T2 was moved 500 mm away from the VOI drawn on the DCE
    with pytest.raises(InputError, match="lies outside the T2 volume"):
        network_input(volume, voi, 3, what="T2 volume")
