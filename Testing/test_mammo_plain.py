"""The plain-array form of a fitted radiomics pipeline scores exactly as the pipeline, for every component of the
search that has one; the shipped classifiers carry it and `mammo predict` uses it (same Rad-score and contributions
as through scikit-learn)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smartimaging.errors import ModelError
from smartimaging.mammo.persistence import load_radiomics_model, save_radiomics_model
from smartimaging.mammo.plain import PlainModel, plain_model_of, probe_rows
from smartimaging.mammo.predict import feature_contributions
from smartimaging.mammo.scorer import Classifier, load_classifier
from smartimaging.mammo.search import CLASSIFIERS, build_pipeline, fit_final
from smartimaging.models.registry import models_dir, sha256_of

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
WITHOUT_PLAIN_FORM = {"adaboost"}  # AdaBoost's weighted votes of trees
FRONT_ENDS = [("zscore", "pca", "rfe"), ("minmax", "pcc", "kw"), ("mean", "none", "relief"), ("none", "pca", "anova")]


@pytest.fixture(scope="module")
def features():
    """Training rows with a constant column (dropped by the pipeline) and rows to score, wider than training."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 24)) * rng.uniform(0.1, 50, 24) + rng.normal(0, 100, 24)
    standard = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (standard[:, 0] + standard[:, 3] + rng.normal(0, 1, 120) > 0).astype(int)
    X[:, 5] = 7.0
    unseen = X.mean(axis=0) + X.std(axis=0) * rng.normal(0, 1.5, (300, 24))
    return X, y, unseen


@pytest.mark.parametrize("classifier", sorted(set(CLASSIFIERS) - WITHOUT_PLAIN_FORM))
@pytest.mark.parametrize("front_end", FRONT_ENDS, ids="-".join)
def test_plain_form_scores_as_the_pipeline(classifier, front_end, features, tmp_path):
    X, y, unseen = features
    pipeline = build_pipeline(*front_end, n_features=7, classifier=classifier).fit(X, y)
    plain = plain_model_of(pipeline)
    assert plain is not None
    plain.save(tmp_path / "m.plain.safetensors")
    loaded = PlainModel.load(tmp_path / "m.plain.safetensors")
    expected = pipeline.predict_proba(unseen)[:, 1]
    # XGBoost adds its leaves in float32; libsvm sums kernel products where the plain form uses their sum (coef_)
    tolerance = {"xgboost": 1e-6, "svm": 1e-9}.get(classifier, 1e-12)
    np.testing.assert_allclose(loaded.scores(unseen), expected, rtol=0, atol=tolerance)
    if classifier in ("rf", "xgboost"):  # the trees take the same branch: identical scores, not close ones
        assert np.array_equal(loaded.scores(unseen) > 0.5, expected > 0.5)


@pytest.mark.parametrize("classifier", sorted(WITHOUT_PLAIN_FORM))
def test_components_without_plain_form_keep_skops_only(classifier, features, tmp_path):
    X, y, _ = features
    model = fit_final({"normaliser": "zscore", "reducer": "pca", "selector": "anova", "n_features": 5,
                       "classifier": classifier}, X, y, np.arange(len(y)), [f"f{i}" for i in range(24)], folds=3)
    card = json.loads(save_radiomics_model(model, tmp_path, "m", {"intended_use": "test"}).read_text())
    assert "plain" not in card["files"] and not list(tmp_path.glob("*.plain.safetensors"))
    classifier_used = load_classifier(tmp_path / "m.json")  # falls back to the skops pipeline
    np.testing.assert_allclose(classifier_used.scores(X[:10]), model.scores(X[:10]))


def test_plain_form_that_disagrees_is_not_written(features, monkeypatch):
    """The probe comparison keeps a plain form that would score differently from its pipeline out of the folder."""
    X, y, _ = features
    pipeline = build_pipeline("zscore", "pca", "anova", 5, "lr").fit(X, y)
    assert plain_model_of(pipeline) is not None
    honest = pipeline.predict_proba
    monkeypatch.setattr(pipeline, "predict_proba", lambda rows: np.clip(honest(rows) + [-1e-3, 1e-3], 0, 1))
    assert plain_model_of(pipeline) is None


@pytest.mark.parametrize("model_id", ["mammo-mass-classifier-demo", "mammo-calcification-classifier-demo"])
def test_shipped_classifiers_predict_from_their_plain_form(model_id):
    """Same scores and the same feature contributions as through scikit-learn, on 2000 rows around the training
    data."""
    card_path = models_dir() / f"{model_id}.json"
    assert "plain" in json.loads(card_path.read_text())["files"]
    plain, skops = load_classifier(card_path), load_radiomics_model(card_path)
    rows = probe_rows(skops.pipeline, 2000, seed=5)
    np.testing.assert_allclose(plain.scores(rows), skops.scores(rows), rtol=0, atol=1e-6)
    through_sklearn = Classifier(skops.scores, skops.feature_names, skops.reference(), plain.checked, plain.card)
    for row in rows[:5]:
        ours, theirs = feature_contributions(plain, row), feature_contributions(through_sklearn, row)
        assert [c["feature"] for c in ours] == [c["feature"] for c in theirs]
        np.testing.assert_allclose([c["score_change"] for c in ours], [c["score_change"] for c in theirs],
                                   rtol=0, atol=1e-6)


def test_all_probe_rows_cover_both_classes_of_the_shipped_mass_classifier():
    """The probe rows reach both sides of the cutoff, so the save-time comparison exercises both classes."""
    card_path = models_dir() / "mammo-mass-classifier-demo.json"
    scores = load_classifier(card_path).scores(probe_rows(load_radiomics_model(card_path).pipeline))
    cutoff = json.loads(card_path.read_text())["cutoff"]["value"]
    assert (scores >= cutoff).any() and (scores < cutoff).any()


def test_front_ends_are_all_exercised():
    """Every normaliser and reducer of the search appears in FRONT_ENDS."""
    from smartimaging.mammo.search import NORMALISERS, REDUCERS, SELECTORS

    normalisers, reducers, selectors = (set(column) for column in zip(*FRONT_ENDS, strict=True))
    assert normalisers == set(NORMALISERS) and reducers == set(REDUCERS) and selectors == set(SELECTORS)


def test_a_score_that_is_no_probability_is_refused(features, tmp_path):
    """A tampered Gaussian NB (means 0, variances 1e-300) passes the load-time probe (a row of zeros) but gives NaN
    for real rows: the score is refused, never labelled."""
    X, y, _ = features
    model = fit_final({"normaliser": "none", "reducer": "none", "selector": "anova", "n_features": 5,
                       "classifier": "nb"}, X, y, np.arange(len(y)), [f"f{i}" for i in range(24)], folds=3)
    card_path = save_radiomics_model(model, tmp_path, "m", {"intended_use": "test"})
    plain_path = tmp_path / "m.plain.safetensors"
    plain = PlainModel.load(plain_path)
    last = len(plain.steps) - 1
    plain.arrays[f"{last}.means"][:] = 0.0
    plain.arrays[f"{last}.variances"][:] = 1e-300
    plain.save(plain_path)
    card = json.loads(card_path.read_text())
    card["sha256"][plain_path.name] = sha256_of(plain_path)
    card_path.write_text(json.dumps(card))
    classifier = load_classifier(card_path)
    with pytest.raises(ModelError, match="no valid score for this lesion"):
        classifier.scores(X[:3] * 1e6)  # radiomics features reach 1e6 and more (energy, sums)
