"""The shipped demo models: card metrics re-checked on fresh phantoms, and the real GE scan runs end to end."""

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from smartimaging.bonescan.pipeline import BLADDER, LESION, BoneScanModels, analyse, crops_of, network_input
from smartimaging.bonescan.train import BLADDER_PIXELS_FOR_POSITIVE_CROP, LESION_PIXELS_FOR_POSITIVE_CROP, _net_labels
from smartimaging.bonescan.views import load_bone_scan
from smartimaging.models.registry import read_card
from smartimaging.phantoms.bonescan import make_bone_scan_phantom

FRESH_SEEDS = range(500_000, 500_016)  # never used for training (seed 1 cohort) or validation


@pytest.fixture(scope="module")
def models():
    return BoneScanModels.load(device="cpu")


def test_cards_declare_demo_weights_and_provenance(models):
    for loaded in (models.classifier, models.segmenter):
        card = loaded.card
        assert "DEMO WEIGHTS" in card["intended_use"] and "synthetic phantoms" in card["intended_use"]
        assert card["training"]["command"].startswith("smartimaging bonescan train")
        assert card["weights_sha256"] and card["parameters"] > 0
        assert loaded.weights_path.stat().st_size < 10 * 2**20


def test_case_cutoff_comes_from_the_card(models):
    from smartimaging.bonescan.pipeline import CASE_THRESHOLD_KEY

    cutoff = models.classifier.card["outputs"]["thresholds"][CASE_THRESHOLD_KEY]
    assert models.case_threshold == cutoff and 0.0 < cutoff < 1.0


def test_card_metrics_hold_on_fresh_phantoms(models):
    scores, targets = [], []
    overlap, totals = np.zeros(3), np.zeros(3)
    for seed in FRESH_SEEDS:
        case = make_bone_scan_phantom(seed)
        for view, counts in case.views.items():
            x = network_input(counts)
            labels = _net_labels(case.masks[view])
            scores.append(models.classify(x))
            for crop in crops_of(labels.astype(np.float32))[:, 0]:
                targets.append([(crop == LESION).sum() >= LESION_PIXELS_FOR_POSITIVE_CROP,
                                (crop == BLADDER).sum() >= BLADDER_PIXELS_FOR_POSITIVE_CROP])
            predicted = models.segment(x, (1024, 256))
            for label in (LESION, BLADDER):
                overlap[label] += 2 * np.sum((predicted == label) & (labels == label))
                totals[label] += np.sum(predicted == label) + np.sum(labels == label)
    scores, targets = np.concatenate(scores), np.array(targets)
    classifier_card = read_card("bonescan-resnet34-demo")[0]["metrics"]
    segmenter_card = read_card("bonescan-unet-demo")[0]["metrics"]
    assert roc_auc_score(targets[:, 0], scores[:, 0]) >= classifier_card["auc_metastasis"] - 0.06
    assert roc_auc_score(targets[:, 1], scores[:, 1]) >= classifier_card["auc_bladder"] - 0.03
    dice = overlap / np.maximum(totals, 1)
    assert dice[LESION] >= segmenter_card["dice_lesion"] - 0.1
    assert dice[BLADDER] >= segmenter_card["dice_bladder"] - 0.08


def test_real_ge_scan_runs_end_to_end_and_finds_the_bladder(models, ge_bone_scan):
    study = load_bone_scan([ge_bone_scan])
    result = analyse(study, models)
    assert result.bladder_probability >= 0.5
    bladder = result.labelmaps["anterior"] == BLADDER
    assert 100 <= bladder.sum() <= 5000, "bladder area in pixels"
    counts = ndimage.gaussian_filter(study.views[0].counts, 3)
    hottest = np.unravel_index(np.argmax(counts), counts.shape)
    centre = np.array(ndimage.center_of_mass(bladder))
    assert np.linalg.norm(centre - np.array(hottest)) < 30, (centre, hottest)
    assert 0.0 <= result.bstbi["mean"] <= 1.0
