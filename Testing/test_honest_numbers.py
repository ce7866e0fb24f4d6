"""Honest numbers: nested cross-validation around the radiomics search, and every demo card's headline metric
re-checked on a small fresh phantom cohort against the 95 % CI measured on 200 fresh phantoms
(`tools/phantom_tables.py`)."""

import csv
import json
import warnings

import numpy as np
import pytest
import torch

from smartimaging.fresh_phantoms import MEASURE, SEEDS, consistent
from smartimaging.mammo.classify import evaluate_features, train_from_features
from smartimaging.mammo.search import nested_cv, search
from smartimaging.models.registry import models_dir

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

NOISE_SPACE = {"normalisers": ("zscore",), "reducers": ("none",), "selectors": ("anova",),
               "n_features": (1, 2, 3, 4, 6, 8, 12, 16), "classifiers": ("nb",)}


def _noise(seed: int, patients: int = 30, features: int = 100):
    """Random features and random labels: nothing to learn, so an honest AUC estimate is near 0.5."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat([0, 1], patients // 2))
    return rng.normal(size=(patients, features)), y, np.array([f"p{i}" for i in range(patients)])


def _write_features(path, X, y, groups, split: str = "train"):
    names = [f"original_f{i}" for i in range(X.shape[1])]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["patient_id", "label", "split", *names])
        for patient, label, row in zip(groups, y, X, strict=True):
            writer.writerow([patient, int(label), split, *(f"{value:.17g}" for value in row)])
    return path


def test_nested_cv_is_near_chance_where_the_search_overfits():
    own, nested = [], []
    for seed in range(3):  # three noise cohorts: the comparison holds on average, not by a lucky draw
        X, y, groups = _noise(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            own.append(max(row["cv_auc"] for row in search(X, y, groups, folds=3, **NOISE_SPACE).table))
            result = nested_cv(X, y, groups, outer_folds=3, folds=3, **NOISE_SPACE)
        nested.append(result["auc"])
        assert len(result["outer_folds"]) == 3
        assert sum(fold["cases"] for fold in result["outer_folds"]) == len(y)
    assert abs(np.mean(nested) - 0.5) < 0.1
    assert np.mean(own) > np.mean(nested) + 0.08  # the best of 8 pipelines by the CV that picked it looks better
    assert all(o > n for o, n in zip(own, nested, strict=True))


def test_search_card_records_the_nested_estimate_and_evaluate_quotes_it(tmp_path):
    X, y, groups = _noise(3, features=40)
    features = _write_features(tmp_path / "features.csv", X, y, groups)
    space = {**NOISE_SPACE, "n_features": (1, 4, 8), "classifiers": ("nb", "lda")}
    card_path = train_from_features(features, tmp_path / "model", "noise-search", search_space=space, split="train",
                                    folds=3, outer_folds=3)

    metrics = json.loads(card_path.read_text(encoding="utf-8"))["metrics"]
    honest = metrics["honest_auc"]
    assert honest["method"].startswith("nested CV: 3 patient-grouped outer folds")
    assert len(honest["outer_folds"]) == 3 and honest["auc"] < metrics["cv_auc"]
    assert metrics["cv"]["auc"] == metrics["cv_auc"]
    text = evaluate_features(card_path, features, tmp_path / "evaluation", split="train")
    assert f"Honest training estimate: AUC {honest['auc']:.3f} ± {honest['sd']:.3f} (nested CV" in text
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text(encoding="utf-8"))
    assert report["training_estimate"]["auc"] == pytest.approx(honest["auc"])


def test_preset_card_says_its_cv_is_already_honest(tmp_path):
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 20)
    X = rng.normal(size=(40, 30)) + y[:, None] * np.r_[np.full(6, 1.5), np.zeros(24)]
    features = _write_features(tmp_path / "features.csv", X, y, np.array([f"p{i}" for i in range(40)]))
    card_path = train_from_features(features, tmp_path / "model", "preset", preset="calcification", folds=3)

    metrics = json.loads(card_path.read_text(encoding="utf-8"))["metrics"]
    assert metrics["honest_auc"]["auc"] == metrics["cv_auc"] > 0.8
    assert "nothing selected" in metrics["honest_auc"]["why"]


# Small fresh cohorts (seeds apart from the 200-phantom run's and from every training cohort's), per section.
SMALL = {"mammo-classifiers": 20, "mammo-unets": 20, "lvi-classifiers": 24, "lvi-unet": 24, "bonescan": 5, "dce": 4}


def _recorded(model_id: str) -> dict:
    card = json.loads((models_dir() / f"{model_id}.json").read_text(encoding="utf-8"))
    recorded = card.get("metrics", {}).get("fresh_phantoms")
    assert recorded, (f"{model_id}.json records no fresh-phantom metrics: run tools/phantom_tables.py --n 200 "
                      "--write-cards")
    return recorded


@pytest.fixture(scope="module")
def small_cohorts(tmp_path_factory):
    return tmp_path_factory.mktemp("fresh")


@pytest.mark.parametrize("section", list(SMALL))
def test_card_numbers_hold_on_a_small_fresh_cohort(section, small_cohorts):
    torch.set_num_threads(1)
    seed = {"mammo": SEEDS["mammo"], "lvi": SEEDS["lvi"]}.get(section.split("-")[0], SEEDS.get(section))
    measured = MEASURE[section](small_cohorts, SMALL[section], seed + 1000)
    for row in measured:
        recorded = _recorded(row["model"])
        same = [r for r in recorded["rows"] if r["metric"] == row["metric"]]
        assert same, f"{row['model']}.json records no fresh-phantom {row['metric']}"
        if "weights_sha256" in row:
            assert same[0]["weights_sha256"] == row["weights_sha256"], (
                f"{row['model']}: the card's fresh-phantom numbers were measured on other weights; run "
                "tools/phantom_tables.py --write-cards again")
        ok, text = consistent(same[0], row)
        assert ok, text


def test_the_check_fails_on_a_wrong_card_number():
    recorded = {"model": "m", "metric": "AUC", "kind": "auc", "value": 0.95, "ci_low": 0.92, "ci_high": 0.98,
                "n": 200}
    measured = {"model": "m", "metric": "AUC", "value": 0.90, "n": 40, "n_positive": 20, "n_negative": 20}
    assert consistent(recorded, measured)[0]
    assert not consistent({**recorded, "value": 0.55, "ci_low": 0.47, "ci_high": 0.63}, measured)[0]
    dice_recorded = {"model": "u", "metric": "Dice", "kind": "mean", "value": 0.9, "sd": 0.05, "ci_low": 0.893,
                     "ci_high": 0.907, "n": 200}
    assert consistent(dice_recorded, {"model": "u", "metric": "Dice", "value": 0.88, "n": 10})[0]
    assert not consistent(dice_recorded, {"model": "u", "metric": "Dice", "value": 0.75, "n": 10})[0]
