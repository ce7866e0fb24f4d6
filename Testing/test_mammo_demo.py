"""MammoRadiomics demo models: segmenters and classifiers re-checked on fresh phantoms; `mammo predict` end to end,
including the real NYU mammogram with its mass mask."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from smartimaging.cli import main
from smartimaging.errors import ModelError
from smartimaging.evaluation import dice
from smartimaging.mammo.persistence import load_radiomics_model
from smartimaging.mammo.predict import CLASSIFIER_IDS, check_radiomics_settings
from smartimaging.mammo.segment import PATCH, MammoSegmenter, patch_origin, prompt_point
from smartimaging.models.registry import models_dir, read_card
from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom
from smartimaging.radiomics import extract_2d, parameter_settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
FRESH = 900_000  # seeds never used for training (cohorts 21 and 22 use 2_100_000+ and 2_200_000+)


@pytest.fixture(scope="module", params=["mass", "calcification"])
def segmenter(request):
    return request.param, MammoSegmenter.load(request.param, device="cpu")


def test_segmenter_card_dice_holds_on_fresh_phantoms(segmenter):
    kind, model = segmenter
    scores = []
    for seed in range(FRESH, FRESH + 8):
        case = make_mammo_phantom(seed, kind, seed % 2)
        point = prompt_point(case.mask)
        mask = model.segment(case.image, PIXEL_MM, point=point)
        r, c = patch_origin(point, case.image.shape)
        window = (slice(r, r + PATCH), slice(c, c + PATCH))
        scores.append(dice(mask[window], case.mask[window]))
    card = read_card(model.model.card["id"])[0]
    assert "DEMO WEIGHTS" in card["intended_use"]
    assert np.mean(scores) >= card["metrics"]["dice"] - 0.1


def test_box_and_whole_image_modes_find_a_mass():
    model = MammoSegmenter.load("mass", device="cpu")
    case = make_mammo_phantom(FRESH + 50, "mass", 0)
    rows, cols = np.nonzero(case.mask)
    box = (rows.min() - 5, cols.min() - 5, rows.max() + 6, cols.max() + 6)
    assert dice(model.segment(case.image, PIXEL_MM, box=box), case.mask) > 0.8
    assert dice(model.segment(case.image, PIXEL_MM), case.mask) > 0.5


@pytest.mark.parametrize("kind", ["mass", "calcification"])
def test_classifier_card_auc_holds_on_fresh_phantoms(kind):
    card_path = models_dir() / f"{CLASSIFIER_IDS[kind]}.json"
    model = load_radiomics_model(card_path)
    labels, scores = [], []
    for seed in range(FRESH + 100, FRESH + 140):
        case = make_mammo_phantom(seed, kind, seed % 2)
        features = extract_2d(case.image, case.mask, spacing=(PIXEL_MM, PIXEL_MM))
        scores.append(model.scores(np.array([[features[n] for n in model.feature_names]]))[0])
        labels.append(case.label)
    validation = json.loads(card_path.read_text(encoding="utf-8"))["metrics"]["validation"]["auc"]["auc"]
    assert roc_auc_score(labels, scores) >= validation - 0.15


@pytest.fixture(scope="module")
def mass_png(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    case = make_mammo_phantom(FRESH + 60, "mass", 1)
    Image.fromarray(case.image.astype(np.uint16)).save(folder / "mass.png")
    Image.fromarray(case.mask * 255).save(folder / "mask.png")
    return folder, case


def test_predict_from_a_point(mass_png):
    folder, case = mass_png
    row, col = prompt_point(case.mask)
    out = folder / "out"
    assert main(["mammo", "predict", str(folder / "mass.png"), "--kind", "mass", "--point", f"{col},{row}",
                 "--pixel-mm", "0.2", "--out", str(out), "--device", "cpu"]) == 0
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert 0 <= result["rad_score"] <= 1 and result["label"] in ("benign", "malignant")
    assert result["roi_source"] == "AI (point)" and len(result["features"]) == 102
    assert len(result["top_features"]) == 5 and len(result["models"]) == 2
    assert result["warnings"] == []
    assert set(result["outputs"]) == {"roi.seg.nrrd", "roi_labels.nii.gz", "overlay.png", "report.html"}


def test_predict_with_the_readers_mask_and_bad_prompts(mass_png, tmp_path):
    folder, case = mass_png
    assert main(["mammo", "predict", str(folder / "mass.png"), "--kind", "mass", "--mask", str(folder / "mask.png"),
                 "--out", str(tmp_path / "m")]) == 0
    result = json.loads((tmp_path / "m" / "result.json").read_text(encoding="utf-8"))
    assert result["roi_pixels"] == int(case.mask.sum())
    assert "0.2 mm pixels" in result["warnings"][0]  # no --pixel-mm: the PNG is read at 1 mm
    assert main(["mammo", "predict", str(folder / "mass.png"), "--kind", "mass", "--point", "5000,10",
                 "--out", str(tmp_path / "outside")]) == 2
    tiny = np.zeros_like(case.mask)
    tiny[100, 100:104] = 255
    Image.fromarray(tiny).save(tmp_path / "tiny.png")
    assert main(["mammo", "predict", str(folder / "mass.png"), "--kind", "mass", "--mask", str(tmp_path / "tiny.png"),
                 "--out", str(tmp_path / "tiny")]) == 2
    assert not (tmp_path / "outside").exists() and not (tmp_path / "tiny").exists()


def test_real_nyu_mammogram_end_to_end(nyu_mammogram, tmp_path):
    image, mask = nyu_mammogram
    assert main(["mammo", "predict", str(image), "--kind", "mass", "--mask", str(mask), "--out",
                 str(tmp_path / "nyu")]) == 0
    result = json.loads((tmp_path / "nyu" / "result.json").read_text(encoding="utf-8"))
    assert all(np.isfinite(v) for v in result["features"].values())
    assert 0 <= result["rad_score"] <= 1


def test_classifier_trained_with_other_radiomics_settings_is_refused(mass_png, tmp_path):
    folder, _ = mass_png
    models = tmp_path / "models"
    shutil.copytree(models_dir(), models)
    card_path = models / f"{CLASSIFIER_IDS['mass']}.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    assert card["radiomics"]["settings"] == parameter_settings()
    card["radiomics"]["settings"]["setting"]["binWidth"] = 25
    card_path.write_text(json.dumps(card), encoding="utf-8")
    assert main(["mammo", "predict", str(folder / "mass.png"), "--kind", "mass", "--mask", str(folder / "mask.png"),
                 "--models-dir", str(models), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    with pytest.raises(ModelError, match="binWidth"):
        check_radiomics_settings(card_path)
