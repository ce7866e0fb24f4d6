"""Explanations of results (smartimaging.explain) and the synthetic DCE's lesion-level check
(smartimaging.dce.lesion_contrast): plain feature names, the borderline band, cutoffs and model cards read from the
shipped cards, the LVI disagreement note, the mammography contributions of a tree model, the pixel-size hint of each
front-end; lesion contrast on breast phantoms whose lesions are known, through the CLI's JSON; every module's
explanations through its reading flow on the station's sample cases."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage

from smartimaging import explain
from smartimaging.cli import main
from smartimaging.dce.lesion_contrast import FAINT_RATIO, enhancing_regions, lesion_contrast
from smartimaging.dce.volumes import normalise, to_unit
from smartimaging.mammo.images import PIXEL_SIZE_HINTS, load_mammogram
from smartimaging.mammo.predict import predict_mammogram
from smartimaging.mammo.scorer import load_classifier
from smartimaging.models.registry import models_dir
from smartimaging.phantoms.breast_mri import SHAPE, make_breast_mri_phantom, phantom_image
from smartimaging.phantoms.mammo import make_mammo_phantom

MODELS = Path(models_dir())


@pytest.fixture(scope="module")
def breast():
    """A breast MRI phantom with two enhancing cancers (the station's DCE sample), on the metrics' [0, 1] scale."""
    case = make_breast_mri_phantom(930_006, SHAPE)
    return case, to_unit(normalise(case.t1)), to_unit(normalise(case.dce))


# ---- lesion contrast ------------------------------------------------------------------------------------------------

def test_enhancing_regions_are_the_phantoms_lesions_not_the_heart_nor_vessels(breast):
    case, t1, real = breast
    regions, _ = enhancing_regions(real, t1)
    assert len(regions) == 2  # the two cancers; not the heart (25 000 voxels), nor the enhancing vessels
    for region, index in zip(regions, (1, 2), strict=True):  # each is mostly its cancer, and little else
        truth = case.lesions == index
        assert np.count_nonzero(region & truth) > 0.9 * truth.sum() and region.sum() < 1.5 * truth.sum()


def test_lesion_contrast_is_one_for_the_real_dce_and_faint_when_the_lesion_is_erased(breast):
    case, t1, real = breast
    same = lesion_contrast(t1, real, real)
    assert same["regions"] and not same["faint"]
    assert all(m["ratio"] == pytest.approx(1.0) for m in same["regions"])
    assert "show on the synthetic DCE too" in same["sentence"]
    regions, enhancing = enhancing_regions(real, t1)
    erased = real.copy()  # the regions filled with the tissue around them: what a generator might make
    for region in regions:
        ring = ndimage.binary_dilation(region, iterations=3) & ~enhancing & case.body
        erased[region] = np.median(real[ring])
    faint = lesion_contrast(t1, erased, real)
    assert faint["faint"] and all(m["faint"] for m in faint["regions"]) and len(faint["regions"]) == len(regions)
    assert all(m["ratio"] < FAINT_RATIO for m in faint["regions"])
    assert "faint on the synthetic DCE" in faint["sentence"] and "SSIM" in faint["sentence"]
    nothing = lesion_contrast(t1, t1, t1)
    assert nothing["regions"] == [] and not nothing["faint"] and "no focal region" in nothing["sentence"]


def test_cli_synthesis_reports_the_lesion_level_check_beside_ssim(breast, tmp_path, capsys):
    case = breast[0]
    for name, array in (("t1", case.t1), ("dce", case.dce)):
        sitk.WriteImage(phantom_image(array, case.spacing, (0.0, 0.0, 0.0)), str(tmp_path / f"{name}.nrrd"))
    assert main(["dce", "synthesize", str(tmp_path / "t1.nrrd"), "--dce", str(tmp_path / "dce.nrrd"), "--out",
                 str(tmp_path / "out"), "--device", "cpu", "--quiet"]) == 0
    record = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    measure = record["lesion_contrast"]
    assert record["metrics"]["ssim_mean"] > 0.7  # the image-level number looks good ...
    assert measure["faint"] and measure["regions"][0]["ratio"] < FAINT_RATIO  # ... the demo model misses the cancers
    assert measure["sentence"] in capsys.readouterr().out


def test_dce_evaluate_counts_the_regions_faint_on_the_synthetic_dce(tmp_path, capsys):
    assert main(["dce", "phantoms", "--out", str(tmp_path / "cohort"), "--n", "2", "--seed", "930"]) == 0
    assert main(["dce", "evaluate", "--manifest", str(tmp_path / "cohort" / "manifest.csv"), "--split", "",
                 "--out", str(tmp_path / "eval"), "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text(encoding="utf-8"))
    measure = report["lesion_contrast"]
    assert len(measure["per_volume"]) == 2
    assert measure["regions"] == sum(len(volume["regions"]) for volume in measure["per_volume"].values())
    assert measure["faint"] == sum(m["faint"] for v in measure["per_volume"].values() for m in v["regions"])


# ---- names, borderline, cutoffs, cards ------------------------------------------------------------------------------

def test_plain_feature_names_and_the_rows_a_reader_sees():
    assert explain.plain_feature_name("original_shape2D_Perimeter") == "Perimeter (mm)"
    assert explain.plain_feature_name("original_firstorder_Kurtosis") == "Intensity kurtosis (peakedness)"
    assert explain.plain_feature_name("original_glcm_ClusterProminence") == \
        "Cluster prominence (texture: co-occurrence)"
    assert explain.plain_feature_name("wavelet-LH_glrlm_RunEntropy") == \
        "Run entropy (texture: run length), wavelet-LH image"
    assert explain.plain_feature_name("Rad-score") == "Rad-score"
    names = load_classifier(MODELS / "mammo-mass-classifier-demo.json").feature_names
    plain = [explain.plain_feature_name(name) for name in names]
    assert len(set(plain)) == len(names) == 102 and not any("_" in text for text in plain)
    rows = [["Rad-score", "0.480"], ["Contribution: original_shape2D_Perimeter", "-0.105"],
            ["Warning", "x"], *[[name, "1"] for name in names]]
    shown, titles = explain.shown_rows(rows)
    assert shown == [["Rad-score", "0.480"], ["Contribution: Perimeter (mm)", "-0.105"], ["Warning", "x"]]
    assert titles == ["", "original_shape2D_Perimeter", ""]


def test_borderline_band_is_symmetric_in_log_odds():
    low, high = explain.borderline_band(0.5)
    assert (low, high) == pytest.approx((0.4378, 0.5622), abs=1e-4)
    assert explain.is_borderline(0.480, 0.460)  # just above the cutoff
    assert not explain.is_borderline(0.175, 0.460)
    assert not explain.is_borderline(0.997, 0.968) and explain.is_borderline(0.972, 0.968)  # narrow near 1
    flag = explain.borderline_explanation("Rad-score", 0.480, 0.460)
    assert flag["tone"] == "warning" and "0.399–0.522" in flag["text"][0]
    assert explain.borderline_explanation("Rad-score", 0.175, 0.460) is None


@pytest.mark.parametrize(("model_id", "value", "method"), [
    ("mammo-mass-classifier-demo", 0.57, "Youden index of out-of-fold training predictions (192 training cases"),
    ("bonescan-resnet34-demo", 0.9685, "Youden on validation cases (60 validation cases)"),
    ("lvi-dce-resnet10-3d-demo", 0.7170, "Youden index of the training cases' probabilities (210 training cases)"),
    ("lvi-fusion-demo", 0.5408, "out-of-fold predictions"),
])
def test_cutoff_of_each_card_says_how_and_on_what_data(model_id, value, method):
    cutoff, source = explain.cutoff_of_card(explain.read_card(model_id))
    assert cutoff == pytest.approx(value, abs=1e-4) and source.startswith(method)


def test_every_shipped_model_card_explains_data_metrics_and_demo_use(tmp_path):
    for path in sorted(MODELS.glob("*-demo.json")):  # the cards (not the XGBoost model file beside one)
        card = json.loads(path.read_text(encoding="utf-8"))
        shown = explain.card_explanation({"id": card["id"], "version": card["version"]})
        assert "demo weights" in shown["title"] and shown["tone"] == "warning", path.name
        assert any(line.startswith("Training data: ") and len(line) > 30 for line in shown["text"]), path.name
        assert shown["rows"] and all(len(row) == 3 for row in shown["rows"]), path.name
    older = explain.card_explanation({"id": "mammo-mass-classifier-demo", "version": "0.9.0"})
    assert "computed with version 0.9.0" in older["text"][0]
    gone = explain.card_explanation({"id": "mammo-mass-classifier-demo", "version": "1.1.0"}, tmp_path)
    assert gone["tone"] == "warning" and "no longer in the models folder" in gone["text"][0]


def test_lvi_disagreement_names_both_sides_and_the_fused_number():
    dce = {"sequence": "DCE", "network": "resnet10-3d", "probability": 0.178, "cutoff": 0.717}
    t2 = {"sequence": "T2", "network": "resnet10-3d", "probability": 0.697, "cutoff": 0.367}
    fused = {"probability": 0.438, "cutoff": 0.542, "label": "LVI negative",
             "method": "mean of the models' probabilities"}
    note = explain.lvi_disagreement([dce, t2], fused)
    assert note["tone"] == "warning"
    assert note["text"][0] == "DCE (resnet10-3d): 0.178 < its cutoff 0.717 → negative"
    assert note["text"][1] == "T2 (resnet10-3d): 0.697 ≥ its cutoff 0.367 → positive"
    assert "0.438 is the mean of the models' probabilities" in note["text"][2]
    assert explain.lvi_disagreement([dce, {**t2, "probability": 0.2}], fused) is None
    shown = {e["key"]: e for e in explain.lvi_explanations({"models": [dce, t2], "fused": fused})}
    assert shown["cutoff"]["text"][2] == "This cutoff (0.542) is the mean of the models' own cutoffs."
    fitted = {**fused, "method": "logistic regression on lvi-dce-resnet10-3d-demo, age (lvi-fusion-demo)"}
    shown = {e["key"]: e for e in explain.lvi_explanations({"models": [dce, t2], "fused": fitted})}
    assert "out-of-fold predictions, 5 patient-grouped folds" in shown["cutoff"]["text"][2]
    assert explain.lvi_disagreement([t2], fused) is None


def test_zero_contributions_of_the_random_forest_are_explained_with_feature_families():
    classifier = load_classifier(MODELS / "mammo-mass-classifier-demo.json")
    kept, reference = classifier.reference
    features = dict(zip(classifier.feature_names, np.asarray(reference, float).tolist(), strict=True))
    card = explain.read_card("mammo-mass-classifier-demo")
    at_mean = {"top_features": [{"feature": n, "score_change": 0.0} for n in classifier.feature_names[:5]],
               "features": features}
    shown = explain.contribution_explanation(at_mean, card)
    assert shown["tone"] == "warning" and "random forest" in shown["text"][0] and len(shown["rows"]) == 7
    assert "Not even a whole family" in shown["text"][2]  # every feature at its mean: nothing to move
    shape = [name for name in features if "_shape2D_" in name]
    moved = {**features, **{name: features[name] * 3 + 10 for name in shape}}
    rows = explain.group_contributions(card, moved)
    score = classifier.scores(np.array([[moved[n] for n in classifier.feature_names]]))[0]
    probe = classifier.scores(np.array([[features[n] for n in classifier.feature_names]]))[0]
    assert rows[0][0] == "Shape (9 features)" and float(rows[0][1]) == pytest.approx(score - probe, abs=5e-4)
    ordinary = {"top_features": [{"feature": "a", "score_change": 0.1}, {"feature": "b", "score_change": -0.05}],
                "features": features}
    assert explain.contribution_explanation(ordinary, card) == {
        "key": "contributions", "title": "Why the Rad-score is what it is", "tone": "info", "rows": [],
        "text": [explain.contribution_explanation(at_mean, card)["text"][1]]}


def test_pixel_size_warning_names_the_front_ends_own_place(tmp_path):
    case = make_mammo_phantom(920_011, "mass", 0)
    Image.fromarray(case.image.astype(np.uint16)).save(tmp_path / "mass.png")
    mammogram = load_mammogram(tmp_path / "mass.png")  # a PNG stores no pixel size: read as 1 mm
    for front_end in ("cli", "station", "desktop"):
        prediction = predict_mammogram(mammogram, "mass", mask=case.mask, pixel_hint=PIXEL_SIZE_HINTS[front_end])
        warning = next(text for text in prediction.warnings if "pixel size" in text)
        assert PIXEL_SIZE_HINTS[front_end] in warning
        assert ("--pixel-mm" in warning) == (front_end == "cli")


# ---- through the reading flows --------------------------------------------------------------------------------------

def _computed(module: str, name: str, models: Path | None = None):
    from smartimaging.mrml import create_headless_scene
    from smartimaging.web.app import FLOWS
    from smartimaging.web.cases import sample_cases

    case = next(c for c in sample_cases()[module] if c.name == name)
    flow = FLOWS[module](create_headless_scene(), models_dir=str(models) if models else None)
    files = case.write(Path(tempfile.mkdtemp(prefix="smartimaging-explain-")))
    flow.set_case_options(files.kind, files.pixel_mm)
    for role, path in files.volumes.items():
        flow.load(role, path)
    if files.point_lps is not None:
        flow.set_point_lps(files.point_lps)
    if flow.needs_segment:
        flow.run(flow.segment())
    return flow.run(flow.compute())


def test_desktop_text_of_a_result_node_summary_and_details():
    from smartimaging.mrml import create_headless_scene

    scene = create_headless_scene()
    node = scene.AddNewNodeByClass("vtkMRMLTableNode")
    assert explain.explain_node(node) == [] and explain.as_text([]) == ("", "")
    models = [{"model": {"id": "lvi-dce-resnet10-3d-demo", "version": "1.0.0"}, "sequence": "DCE",
               "network": "resnet10-3d", "probability": 0.178, "cutoff": 0.717},
              {"model": {"id": "lvi-t2-resnet10-3d-demo", "version": "1.0.0"}, "sequence": "T2",
               "network": "resnet10-3d", "probability": 0.697, "cutoff": 0.367}]
    fused = {"probability": 0.4375, "cutoff": 0.542, "label": "LVI negative", "method": "mean"}
    node.SetAttribute(explain.RECORDS["BreastLVI"], json.dumps({"models": models, "fused": fused}))
    summary, details = explain.as_text(explain.explain_node(node))
    assert summary.splitlines() == ["The sequences disagree. DCE 0.178 negative, T2 0.697 positive: the fused 0.438 "
                                    "averages opposite answers.", "Fused LVI probability 0.438 · cutoff 0.542"]
    assert "MODEL CARD: LVI-T2-RESNET10-3D-DEMO 1.0.0" in details and "DEMO WEIGHTS" in details
    assert "  AUC (validation): 0.851 (95 % CI 0.733–0.969) (the 45 'val' cases: 24 positive, 21 negative)" in details


def test_every_modules_result_carries_its_explanations():
    bone = {e["key"]: e for e in _computed("BoneScanBSTBI", "Phantom with 5 metastases").explanations}
    assert "K = 5" in bone["bstbi"]["text"][1] and "No normal range is claimed" in bone["bstbi"]["text"][2]
    assert "cutoff 0.968" in bone["cutoff"]["title"] and "60 validation cases" in bone["cutoff"]["text"][2]
    assert {"card bonescan-resnet34-demo", "card bonescan-unet-demo"} <= set(bone)
    mammo = {e["key"]: e for e in _computed("MammoRadiomics", "Phantom malignant mass").explanations}
    assert "Borderline" in mammo["borderline"]["title"] and len(mammo["features"]["rows"]) == 102
    assert ["Perimeter (mm)", "original_shape2D_Perimeter"] == [mammo["features"]["rows"][5][i] for i in (0, 2)]
    assert {"card mammo-mass-unet-demo", "card mammo-mass-classifier-demo"} <= set(mammo)
    lvi = {e["key"]: e for e in _computed("BreastLVI", "Phantom cancer, LVI negative").explanations}
    assert lvi["disagreement"]["tone"] == "warning" and "fused" in lvi["disagreement"]["text"][-1]
    assert {"card lvi-dce-resnet10-3d-demo", "card lvi-t2-resnet10-3d-demo"} <= set(lvi)
    dce = _computed("DCESynthesis", "Phantom with two lesions")
    shown = {e["key"]: e for e in dce.explanations}
    assert shown["lesions"]["tone"] == "warning" and shown["lesions"]["rows"]
    assert "card dce-pix2pix-demo" in shown
    assert any(row[0] == "Enhancing region 1: contrast synthetic / real" for row in dce.rows)


# ---- hostile model cards --------------------------------------------------------------------------------------------

HOSTILE_CARDS = {  # a field of the bone-scan classifier's card made malformed: what it breaks, what must read
    "metric as text": (lambda c: c["metrics"]["fresh_phantoms"]["rows"][0].update(value="high"),
                       "AUC metastasis (fresh phantoms)", "not recorded (95 % CI 0.991–1.000)"),
    "cohort command a number": (lambda c: c["training"]["data"].update(cohort_command=5), None, "cohort: not recorded"),
    "AUC without its interval": (lambda c: c.update(metrics={"validation": {"auc": {"value": 0.9}}}),
                                 "AUC (validation)", "0.900 (95 % CI not recorded)"),
    "at_cutoff a list": (lambda c: c.update(metrics={"validation": {"at_cutoff": [1, 2]}}),
                         "Sensitivity and specificity at the cutoff (validation)", "not recorded"),
    "cutoff as text": (lambda c: c["outputs"]["thresholds"].update(
        {"case metastasis (Youden on validation cases)": "x"}), None, "Cutoff: not recorded"),
    "thresholds a list": (lambda c: c["outputs"].update(thresholds=[0.5]), None, "Cutoff: not recorded"),
    "no use, training, metrics": (lambda c: [c.pop(k) for k in ("intended_use", "training", "metrics")], None,
                                  "Intended use: not recorded"),
    "task a list, version a dict": (lambda c: c.update(task=["x"], version={"a": 1}), None,
                                    "Task: not recorded · version not recorded"),
}


@pytest.fixture(scope="module")
def hostile_models(tmp_path_factory):
    """A copy of the shipped models folder per hostile card: {name: folder}."""
    import shutil

    folders = {}
    for number, (name, (spoil, _, _)) in enumerate(HOSTILE_CARDS.items()):
        folder = tmp_path_factory.mktemp(f"models{number}")
        shutil.copytree(MODELS, folder, dirs_exist_ok=True)
        card = json.loads((folder / "bonescan-resnet34-demo.json").read_text(encoding="utf-8"))
        spoil(card)
        (folder / "bonescan-resnet34-demo.json").write_text(json.dumps(card), encoding="utf-8")
        folders[name] = folder
    return folders


@pytest.fixture(scope="module")
def bone_result():
    """A bone-scan phantom computed with the shipped models: its result table node carries the record."""
    return _computed("BoneScanBSTBI", "Phantom with 5 metastases")


@pytest.mark.parametrize("name", list(HOSTILE_CARDS))
def test_a_malformed_card_reads_not_recorded_and_the_result_is_still_shown(name, hostile_models, bone_result):
    """Every card field is untrusted: a malformed one reads "not recorded" in the flow's explanations and in the
    desktop's text of the result node; the rest of the card and the result's other explanations stay."""
    _, row_label, expected = HOSTILE_CARDS[name]
    folder = hostile_models[name]
    explanations = explain.explain_node(bone_result.table_node, folder)
    shown = {e["key"]: e for e in explanations}
    card = shown["card bonescan-resnet34-demo"]
    if row_label is None:
        assert any(expected in line for line in card["text"]), card["text"]
    else:
        assert [row[1] for row in card["rows"] if row[0] == row_label] == [expected], card["rows"]
    assert "bstbi" in shown and "card bonescan-unet-demo" in shown
    summary, details = explain.as_text(explanations)
    assert summary and "BONESCAN-RESNET34-DEMO" in details


def test_a_flow_computes_with_a_malformed_card_in_its_models_folder(hostile_models):
    """The station's compute with the attacker's card (a fresh-phantom metric as text): the result is shown."""
    result = _computed("BoneScanBSTBI", "Phantom with 5 metastases", hostile_models["metric as text"])
    shown = {e["key"]: e for e in result.explanations}
    assert result.rows and "bstbi" in shown
    assert "not recorded (95 % CI 0.991–1.000)" in [row[1] for row in shown["card bonescan-resnet34-demo"]["rows"]]


def test_domain_reasons_read_plain_names_with_the_recorded_text_on_hover():
    reasons = ["pixel size assumed, not read from the file",
               "40 of 102 radiomics features outside their training range (original_firstorder_Energy, "
               "original_glcm_ClusterProminence, original_shape2D_Perimeter…)"]
    shown = explain.plain_domain({"verdict": "outside", "reasons": reasons, "text": "outside: " + reasons[1]})
    assert shown["reasons"][0] == reasons[0] and shown["raw"] == ["", reasons[1]]
    assert shown["reasons"][1] == ("40 of 102 radiomics features outside their training range (Intensity energy (sum "
                                   "of squares); Cluster prominence (texture: co-occurrence); Perimeter (mm)…)")
    assert "original_" not in shown["text"] and shown["verdict"] == "outside"
    assert explain.plain_domain(None) is None


def test_a_card_too_large_or_not_an_object_is_said_unreadable_not_missing(tmp_path):
    from smartimaging.models.registry import MAX_CARD_BYTES

    (tmp_path / "huge.json").write_text(json.dumps({"intended_use": "DEMO " + "A" * MAX_CARD_BYTES}))
    (tmp_path / "list.json").write_text("[1, 2]")
    for model_id in ("huge", "list"):
        shown = explain.card_explanation({"id": model_id, "version": "1.0.0"}, tmp_path)
        assert shown["tone"] == "warning" and "cannot be read" in shown["text"][0], model_id
    gone = explain.card_explanation({"id": "gone", "version": "1.0.0"}, tmp_path)
    assert "no longer in the models folder" in gone["text"][0]


@pytest.mark.parametrize(("training", "metrics", "heading"), [
    ({"method": "fine-tuning", "fine_tuned_from": {"id": "dce-pix2pix-demo"},
      "data": {"cohort": "DCESynthesis", "phantom": True}}, {},
     "fine-tuned on the cohort DCESynthesis: synthetic phantoms, not for clinical use"),
    ({"method": "preset", "data": {"cohort": "site-a", "phantom": False}}, {},
     "trained on the cohort site-a: not for clinical use"),
    ({"fine_tuned_from": {"id": "mammo-mass-unet-demo"}, "data": {"manifest": "manifest.csv"}}, {"phantom": True},
     "fine-tuned on a worklist's corrected ROIs: synthetic phantoms, not for clinical use"),
])
def test_a_cohort_models_card_heading_says_the_cohort_not_demo_weights(tmp_path, training, metrics, heading):
    """A model trained or fine-tuned on a worklist's cohort quotes the demo card it started from in its intended use:
    its heading names the cohort, not "demo weights"."""
    card = {"id": "cohort-model", "version": "1.0.0", "task": "dce-synthesis", "training": training,
            "metrics": metrics, "intended_use": "Fine-tuned from a demo (its card: DEMO WEIGHTS ...). Not for clinical "
                                                "use."}
    path = tmp_path / "cohort-model.json"
    path.write_text(json.dumps(card), encoding="utf-8")
    shown = explain.card_explanation({"id": "cohort-model", "version": "1.0.0", "card": str(path)})
    assert shown["title"] == f"Model card: cohort-model 1.0.0 ({heading})" and shown["tone"] == "warning"
