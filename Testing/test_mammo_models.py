"""FAE-style model search: presets, leakage-free grouped CV, cutoffs from training only, secure persistence,
`mammo train / evaluate` with McNemar against reader BI-RADS."""

import csv
import json
import os

import numpy as np
import pytest
import skops.io as sio
from sklearn.feature_selection import RFE, SelectKBest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from smartimaging.cli import main
from smartimaging.errors import InputError, ModelError
from smartimaging.evaluation import youden_cutoff
from smartimaging.mammo.classify import mcnemar, reader_labels
from smartimaging.mammo.persistence import load_radiomics_model, save_radiomics_model
from smartimaging.mammo.search import PRESETS, build_pipeline, fit_final, out_of_fold_scores, search

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def separable():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    X = rng.normal(size=(60, 40))
    X[:, :8] += y[:, None] * 1.2
    return X, y, np.array([f"p{i}" for i in range(60)]), [f"original_f{i}" for i in range(40)]


def test_presets_are_the_papers_pipelines():
    mass = build_pipeline(**PRESETS["mass"])
    assert [type(s).__name__ for _, s in mass.steps] == ["VarianceThreshold", "StandardScaler", "PCA", "RFE",
                                                         "RandomForestClassifier"]
    assert isinstance(mass.named_steps["selector"], RFE) and mass.named_steps["selector"].n_features_to_select == 9
    calcification = build_pipeline(**PRESETS["calcification"])
    assert [type(s).__name__ for _, s in calcification.steps] == ["VarianceThreshold", "MinMaxScaler", "PCA",
                                                                  "SelectKBest", "XGBClassifier"]
    selector = calcification.named_steps["selector"]
    assert isinstance(selector, SelectKBest) and selector.k == 13
    assert selector.score_func.__name__ == "kruskal_wallis_scores"


def test_feature_selection_inside_folds_does_not_leak():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 500)), np.repeat([0, 1], 20)
    groups = np.arange(40)
    config = {"normaliser": "zscore", "reducer": "none", "selector": "anova", "n_features": 10, "classifier": "lr"}
    _, aucs = out_of_fold_scores(config, X, y, groups)
    assert np.mean(aucs) < 0.75  # pure noise: selecting on all data first would look far better


def test_folds_keep_a_patients_images_together():
    rng = np.random.default_rng(2)
    X = np.repeat(rng.normal(size=(30, 20)), 2, axis=0)  # two identical images per patient
    y = np.repeat(np.repeat([0, 1], 15), 2)
    config = {"normaliser": "none", "reducer": "none", "selector": "anova", "n_features": 20, "classifier": "rf"}
    _, grouped = out_of_fold_scores(config, X, y, np.repeat(np.arange(30), 2))
    _, split_patients = out_of_fold_scores(config, X, y, np.arange(60))
    assert np.mean(grouped) < 0.8 < np.mean(split_patients)


def test_cutoff_comes_from_out_of_fold_training_predictions(separable):
    X, y, groups, names = separable
    model = fit_final(PRESETS["mass"], X, y, groups, names)
    assert model.cutoff == youden_cutoff(y, model.training_scores)
    assert model.cv_auc > 0.9
    assert len(model.selected_inputs()) == 9


def test_search_and_one_standard_error_rule(separable):
    X, y, groups, _ = separable
    space = {"normalisers": ("zscore",), "reducers": ("pcc",), "selectors": ("anova", "kw", "relief"),
             "n_features": (2, 3, 10), "classifiers": ("lr",)}
    best = search(X, y, groups, **space)
    simplest = search(X, y, groups, one_standard_error=True, **space)
    assert len(best.table) == 9
    top_row = max(best.table, key=lambda r: r["cv_auc"])
    assert best.best == {k: top_row[k] for k in best.best}
    assert simplest.best["n_features"] <= best.best["n_features"]
    top = max(r["cv_auc"] for r in best.table)
    chosen = next(r for r in simplest.table if all(r[k] == v for k, v in simplest.best.items()))
    assert chosen["cv_auc"] >= top - max(r["cv_se"] for r in best.table if r["cv_auc"] == top)


@pytest.mark.parametrize("preset", ["mass", "calcification"])
def test_models_round_trip_without_pickle(separable, tmp_path, preset):
    X, y, groups, names = separable
    model = fit_final(PRESETS[preset], X, y, groups, names)
    card = save_radiomics_model(model, tmp_path, f"m-{preset}", {"intended_use": "test"})
    files = json.loads(card.read_text(encoding="utf-8"))["files"]
    assert ("xgboost" in files) == (preset == "calcification")
    loaded = load_radiomics_model(card)
    assert np.allclose(loaded.scores(X), model.scores(X))
    assert loaded.cutoff == model.cutoff and loaded.feature_names == names


def test_tampered_and_unsafe_model_files_are_refused(separable, tmp_path):
    X, y, groups, names = separable
    model = fit_final(PRESETS["mass"], X, y, groups, names)
    card = save_radiomics_model(model, tmp_path, "m", {"intended_use": "test"})
    skops_file = tmp_path / "m.skops"
    data = bytearray(skops_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    skops_file.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="modified or damaged"):
        load_radiomics_model(card)
    # a file whose checksum matches but that asks to run os.system on load
    sio.dump(Pipeline([("evil", FunctionTransformer(os.system))]), skops_file)
    record = json.loads(card.read_text(encoding="utf-8"))
    from smartimaging.models.registry import sha256_of

    record["sha256"]["m.skops"] = sha256_of(skops_file)
    card.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(ModelError, match="never saves"):
        load_radiomics_model(card)


def test_mcnemar_and_reader_categories():
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0])
    model = np.array([1, 1, 1, 0, 0, 0, 0, 1, 1, 0])
    reader = np.array([1, 0, 0, 0, 0, 1, 1, 1, 1, 0])
    result = mcnemar(truth, model, reader)
    assert (result["model_only_correct"], result["reader_only_correct"]) == (4, 0)
    assert result["p_exact"] == pytest.approx(0.125)
    assert list(reader_labels(["2", "4A", "4b", "5", "3"])) == [0, 0, 1, 1, 0]
    with pytest.raises(InputError):
        reader_labels(["0"])


def test_train_and_evaluate_commands(tmp_path):
    rng = np.random.default_rng(3)
    names = [f"original_firstorder_F{i}" for i in range(30)]
    rows = []
    for i in range(80):
        label = i % 2
        values = rng.normal(size=30) + label * np.r_[np.ones(4), np.zeros(26)]
        reader = ("4b" if label else "3") if rng.random() < 0.8 else ("3" if label else "4c")
        rows.append({"patient_id": f"P{i}", "label": label, "split": "train" if i < 56 else "test",
                     "birads": reader, **dict(zip(names, map(str, values), strict=True))})
    features = tmp_path / "features.csv"
    with open(features, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["mammo", "train", "--features", str(features), "--out", str(tmp_path / "models"), "--name", "m1",
                 "--preset", "calcification"]) == 0
    assert main(["mammo", "evaluate", "--model", str(tmp_path / "models" / "m1.json"), "--features", str(features),
                 "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text(encoding="utf-8"))
    assert report["cases"] == 24
    assert report["auc"]["auc"] > 0.7
    assert {"mcnemar", "metrics"} <= set(report["reader"])
    assert (tmp_path / "eval" / "roc.png").is_file()
    assert len(json.loads((tmp_path / "eval" / "selected_features.json").read_text(encoding="utf-8"))) == 13
    # a worklist's manifest leaves BI-RADS blank where the reader gave none: the reader is compared where it was given
    with open(features, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "birads": row["birads"] if index % 3 else ""} for index, row in enumerate(rows))
    assert main(["mammo", "evaluate", "--model", str(tmp_path / "models" / "m1.json"), "--features", str(features),
                 "--out", str(tmp_path / "eval")]) == 0
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text(encoding="utf-8"))
    called = sum(1 for index in range(56, 80) if index % 3)
    assert report["reader"]["cases"] == called < report["cases"] == 24
    assert f"on the {called} of 24 lesions with a BI-RADS category" in (tmp_path / "eval" / "table.txt").read_text(
        encoding="utf-8")
