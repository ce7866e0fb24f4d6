"""DCESynthesis core: Pix2Pix networks, metrics against scikit-image, phantoms, synthesis with exact geometry, bad
inputs, training with resume, and the paper's tables."""

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from dicom_series import write_dicom_series
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from smartimaging.cli import main
from smartimaging.dce.synthesis import MODEL_ID, DCESynthesizer
from smartimaging.dce.volumes import normalise
from smartimaging.evaluation import psnr, ssim
from smartimaging.models.nets import build_network, prepare_for_inference
from smartimaging.models.pix2pix import PatchDiscriminator
from smartimaging.models.registry import save_model
from smartimaging.phantoms.breast_mri import make_breast_mri_phantom


def test_generator_takes_any_in_plane_size():
    generator = build_network({"name": "pix2pix_unet", "ngf": 4, "depth": 8}).eval()
    with torch.no_grad():
        for size in ((384, 384), (100, 130), (64, 48)):
            output = generator(torch.randn(1, 1, *size))
            assert output.shape == (1, 1, *size) and output.abs().max() <= 1


def test_folding_batch_norms_keeps_the_generator_output():
    torch.manual_seed(3)
    generator = build_network({"name": "pix2pix_unet", "ngf": 4, "depth": 6}).eval()
    for module in generator.modules():  # non-trivial running statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 1, 96, 80)
    with torch.no_grad():
        expected = generator(x)
        folded = prepare_for_inference(generator, torch.device("cpu"))
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        assert torch.allclose(folded(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-5)


def test_patchgan_judges_70_pixel_patches():
    discriminator = PatchDiscriminator(2, 8, 3).eval()
    image = torch.zeros(1, 2, 160, 160, requires_grad=True)
    output = discriminator(image)
    output[0, 0, output.shape[2] // 2, output.shape[3] // 2].backward()
    rows, cols = np.nonzero(image.grad[0].abs().sum(0).numpy())
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_ssim_and_psnr_match_scikit_image():
    rng = np.random.default_rng(1)
    real = rng.random((64, 80))
    synthetic = np.clip(real + rng.normal(0, 0.08, real.shape), 0, 1)
    assert ssim(real, synthetic, 1.0) == pytest.approx(structural_similarity(real, synthetic, data_range=1.0),
                                                       abs=1e-10)
    assert psnr(real, synthetic, 1.0) == pytest.approx(peak_signal_noise_ratio(real, synthetic, data_range=1.0))


def test_phantom_sequences_differ_as_t1_and_fat_suppressed_dce():
    case = make_breast_mri_phantom(8)
    again = make_breast_mri_phantom(8)
    assert np.array_equal(case.t1, again.t1) and np.array_equal(case.dce, again.dce)
    t1, dce = normalise(case.t1), normalise(case.dce)
    breast = case.body.copy()
    breast[:, case.t1.shape[1] // 2:] = False  # anterior half: the breasts
    fat = breast & (t1 > np.percentile(t1[breast], 80))
    assert t1[fat].mean() > 0.4 and dce[fat].mean() < t1[fat].mean() - 0.6  # fat bright on T1, suppressed on DCE
    assert np.percentile(dce, 99.5) > np.percentile(dce[breast], 90)  # heart and vessels enhance most


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A randomly initialised small generator under the demo id, for the mechanics (not the quality)."""
    folder = tmp_path_factory.mktemp("dce-model")
    torch.manual_seed(0)
    architecture = {"name": "pix2pix_unet", "in_channels": 1, "out_channels": 1, "ngf": 4, "depth": 5}
    save_model(build_network(architecture), {
        "id": MODEL_ID, "version": "0.0.1", "task": "dce-synthesis", "architecture": architecture, "inputs": {},
        "outputs": {}, "intended_use": "test"}, folder)
    return folder


def _oblique_volume(array, spacing=(0.8, 0.8, 1.5)):
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((-120.5, 33.25, -60.0))
    angle = math.radians(12)  # math, not numpy: numpy 1.24's sin differs from the C library's in the last digit
    image.SetDirection((math.cos(angle), -math.sin(angle), 0, math.sin(angle), math.cos(angle), 0, 0, 0, 1))
    return image


@pytest.fixture(scope="module")
def t1_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dce-inputs")
    case = make_breast_mri_phantom(12, shape=(6, 64, 72))
    t1, dce = _oblique_volume(case.t1), _oblique_volume(case.dce)
    sitk.WriteImage(t1, str(folder / "t1.nrrd"))
    sitk.WriteImage(dce, str(folder / "dce.nrrd"))
    shifted = sitk.Image(dce)
    shifted.SetSpacing((1.0, 1.0, 1.5))
    sitk.WriteImage(shifted, str(folder / "dce_other_grid.nrrd"))
    far = sitk.Image(dce)
    far.SetOrigin((500.0, 500.0, 500.0))
    sitk.WriteImage(far, str(folder / "dce_elsewhere.nrrd"))
    return folder


def test_synthesis_keeps_geometry_and_does_not_depend_on_batching(tiny_model, t1_files, tmp_path):
    out = tmp_path / "out"
    assert main(["dce", "synthesize", str(t1_files / "t1.nrrd"), "--dce", str(t1_files / "dce.nrrd"), "--out",
                 str(out), "--models-dir", str(tiny_model), "--device", "cpu", "--quiet"]) == 0
    t1 = sitk.ReadImage(str(t1_files / "t1.nrrd"))
    for name in ("synthetic_dce.nrrd", "subtraction.nrrd"):
        output = sitk.ReadImage(str(out / name))
        assert output.GetSize() == t1.GetSize() and output.GetSpacing() == t1.GetSpacing()
        assert output.GetOrigin() == t1.GetOrigin() and output.GetDirection() == t1.GetDirection()
    mip = sitk.ReadImage(str(out / "subtraction_mip.nrrd"))
    assert mip.GetSize() == (*t1.GetSize()[:2], 1)
    subtraction = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "subtraction.nrrd")))
    assert np.allclose(sitk.GetArrayFromImage(mip)[0], subtraction.max(axis=0)) and subtraction.min() >= 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert record["model"]["id"] == MODEL_ID and record["warnings"] == []
    assert 0 < record["metrics"]["ssim_mean"] <= 1 and -1 <= record["metrics"]["pearson_r"] <= 1
    synthesizer = DCESynthesizer.load(tiny_model, "cpu")
    volume = normalise(sitk.GetArrayFromImage(t1))
    assert np.allclose(synthesizer.synthesize_normalised(volume, 1), synthesizer.synthesize_normalised(volume, 5),
                       atol=1e-5)


def test_real_dce_on_another_grid_is_resampled_with_a_warning_or_refused(tiny_model, t1_files, tmp_path, capsys):
    arguments = ["--models-dir", str(tiny_model), "--device", "cpu", "--quiet"]
    assert main(["dce", "synthesize", str(t1_files / "t1.nrrd"), "--dce", str(t1_files / "dce_other_grid.nrrd"),
                 "--out", str(tmp_path / "resampled"), *arguments]) == 0
    assert "resampled onto the T1 grid" in capsys.readouterr().err
    assert main(["dce", "synthesize", str(t1_files / "t1.nrrd"), "--dce", str(t1_files / "dce_elsewhere.nrrd"),
                 "--out", str(tmp_path / "refused"), *arguments]) == 2
    assert "same examination" in capsys.readouterr().err and not (tmp_path / "refused").exists()


@pytest.mark.parametrize("case, message", [("2d", "single 2D image"), ("4d", "4 dimensions"), ("nan", "NaN"),
                                           ("constant", "blank"), ("missing", "not found")])
def test_bad_t1_inputs_are_refused_clearly(tiny_model, tmp_path, capsys, case, message):
    path = tmp_path / f"{case}.nrrd"
    if case == "2d":
        sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).random((32, 32)).astype(np.float32)),
                        str(path))
    elif case == "4d":
        path = tmp_path / "4d.nii.gz"
        sitk.WriteImage(sitk.GetImageFromArray(np.ones((2, 3, 8, 8), np.float32), isVector=False), str(path))
    elif case == "nan":
        array = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
        array[1, 2, 3] = np.nan
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    elif case == "constant":
        sitk.WriteImage(sitk.GetImageFromArray(np.full((4, 16, 16), 7.0, np.float32)), str(path))
    before = path.read_bytes() if path.exists() else None
    assert main(["dce", "synthesize", str(path), "--out", str(tmp_path / "out"), "--models-dir", str(tiny_model),
                 "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert (path.read_bytes() if path.exists() else None) == before


def test_training_resumes_and_evaluate_prints_the_papers_tables(tmp_path, capsys):
    cohort = tmp_path / "cohort"
    assert main(["dce", "phantoms", "--out", str(cohort), "--n", "5", "--seed", "3",
                 "--splits", "train=0.6,val=0.2,test=0.2"]) == 0
    arguments = ["dce", "train", "--manifest", str(cohort / "manifest.csv"), "--out", str(tmp_path / "models"),
                 "--name", MODEL_ID, "--ngf", "4", "--depth", "5", "--ndf", "4", "--batch-size", "8",
                 "--checkpoint-dir", str(tmp_path / "checkpoint"), "--device", "cpu", "--quiet"]
    assert main([*arguments, "--epochs", "1"]) == 0
    assert main([*arguments, "--epochs", "2", "--resume"]) == 0
    card = json.loads((tmp_path / "models" / f"{MODEL_ID}.json").read_text(encoding="utf-8"))
    assert [row["epoch"] for row in card["training"]["history"]] == [1, 2]
    assert {"train_l1", "train_discriminator", "ssim", "psnr"} <= set(card["training"]["history"][0])
    assert card["architecture"]["depth"] == 5 and "DEMO WEIGHTS" in card["intended_use"]
    capsys.readouterr()
    assert main(["dce", "evaluate", "--manifest", str(cohort / "manifest.csv"), "--out", str(tmp_path / "eval"),
                 "--models-dir", str(tmp_path / "models"), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "Table 2" in text and "Table 3" in text and "linear map" in text and "identity" in text
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text(encoding="utf-8"))
    assert report["volumes"] == 1 and report["slices"] == 24
    identity = report["summary"]["identity"]["per_slice"]["ssim"]
    assert identity["n"] == 24 and identity["ci_low"] <= identity["mean"] <= identity["ci_high"]


def test_demo_model_card_holds_on_fresh_phantoms_and_beats_the_baselines():
    from smartimaging.dce.metrics import linear_baseline, volume_metrics
    from smartimaging.dce.volumes import to_unit

    synthesizer = DCESynthesizer.load(device="cpu")
    card = synthesizer.model.card
    assert "DEMO WEIGHTS" in card["intended_use"] and card["training"]["command"].startswith("smartimaging dce train")
    assert synthesizer.model.weights_path.stat().st_size < 8 * 2**20
    results = {"model": [], "identity": [], "linear map": []}
    for seed in range(950_000, 950_003):  # never used for training (cohort seed 41: 4_100_000+)
        case = make_breast_mri_phantom(seed)
        t1, real = to_unit(normalise(case.t1)), to_unit(normalise(case.dce))
        predictions = {"model": to_unit(synthesizer.synthesize_normalised(normalise(case.t1))), "identity": t1,
                       "linear map": linear_baseline(t1, real)}
        for method, prediction in predictions.items():
            results[method].append(volume_metrics(prediction, real))
    mean = {method: {key: np.mean([r[key] for r in rows]) for key in ("ssim_mean", "mae")}
            for method, rows in results.items()}
    assert mean["model"]["ssim_mean"] >= card["metrics"]["validation"]["ssim"] - 0.05
    for baseline in ("identity", "linear map"):
        assert mean["model"]["ssim_mean"] > mean[baseline]["ssim_mean"] + 0.1
        assert mean["model"]["mae"] < mean[baseline]["mae"] * 0.5


def test_demo_model_makes_lesions_enhance():
    from scipy import ndimage

    from smartimaging.dce.volumes import to_unit

    synthesizer = DCESynthesizer.load(device="cpu")
    contrasts = []
    for seed in (950_000, 950_002, 950_006, 950_008):  # phantoms with lesions, never used for training
        case = make_breast_mri_phantom(seed)
        synthetic = to_unit(synthesizer.synthesize_normalised(normalise(case.t1)))
        for index in range(1, len(case.lesion_kinds) + 1):
            lesion = case.lesions == index
            surround = ndimage.binary_dilation(lesion, iterations=3) & (case.lesions == 0)
            contrasts.append(synthetic[lesion].mean() - synthetic[surround].mean())
    assert len(contrasts) >= 3 and np.mean(contrasts) > 0.02


def test_t1_from_a_dicom_series_folder_keeps_its_geometry(tiny_model, tmp_path, capsys):
    case = make_breast_mri_phantom(13, shape=(5, 48, 40))
    image = sitk.GetImageFromArray(np.round(case.t1).astype(np.float32))
    image.SetSpacing((0.9, 0.9, 2.0))
    image.SetOrigin((-20.0, 15.0, -40.0))
    write_dicom_series(image, tmp_path / "t1", "1.2.826.0.1.3680043.2.1.1")
    assert main(["dce", "synthesize", str(tmp_path / "t1"), "--out", str(tmp_path / "out"), "--models-dir",
                 str(tiny_model), "--device", "cpu", "--quiet"]) == 0
    synthetic = sitk.ReadImage(str(tmp_path / "out" / "synthetic_dce.nrrd"))
    assert synthetic.GetSize() == (40, 48, 5)
    assert np.allclose(synthetic.GetSpacing(), (0.9, 0.9, 2.0), atol=1e-3)
    assert np.allclose(synthetic.GetOrigin(), (-20.0, 15.0, -40.0), atol=1e-3)
    write_dicom_series(image, tmp_path / "t1", "1.2.826.0.1.3680043.2.1.2")  # a second series in the same folder
    assert main(["dce", "synthesize", str(tmp_path / "t1"), "--out", str(tmp_path / "two"), "--models-dir",
                 str(tiny_model), "--quiet"]) == 2
    assert "2 DICOM series" in capsys.readouterr().err
