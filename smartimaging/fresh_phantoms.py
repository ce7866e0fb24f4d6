"""Every demo model measured on fresh phantoms, from seeds that no card's training cohort used: the headline metric
with its 95 % CI (DeLong for AUCs, Wilson for proportions, the t-interval of the mean for Dice, SSIM, PSNR and the
BSTBI error). `tools/phantom_tables.py` runs it on 200 phantoms per module and records the results in the cards
(`metrics.fresh_phantoms`); the tests re-measure a small cohort and check it against them (:func:`consistent`).

Phantoms are easier than patients: these numbers say what the demo weights do on their own kind of data, nothing
about real images.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import stats

from .evaluation import auc_with_ci, binary_metrics, dice, mean_ci, wilson_interval
from .models.registry import models_dir, sha256_of

# Training cohorts used seeds 1 (bone scan), 21/22 (mammography), 41 (DCE) and 52 (LVI); the README's older test
# cohorts 2, 31, 32 and 94. Cases are seeded `seed * 100000 + index`, so these cohorts share no phantom with them.
SEEDS = {"mammo": 1201, "lvi": 1203, "bonescan": 1204, "dce": 1205}
SECTIONS = ("mammo-classifiers", "mammo-unets", "lvi-classifiers", "lvi-unet", "bonescan", "dce")
LVI_CLASSIFIERS = ("lvi-dce-vanilla2d-demo", "lvi-dce-resnet10-2d-demo", "lvi-dce-resnet10-3d-demo",
                   "lvi-t2-vanilla2d-demo", "lvi-t2-resnet10-2d-demo", "lvi-t2-resnet10-3d-demo")
Z95 = float(stats.norm.ppf(0.975))


def weights_sha256(model_id: str, directory=None) -> dict[str, str]:
    """sha256 of every file of a model except its card (the weights the numbers belong to)."""
    folder = Path(directory or models_dir())
    return {path.name: sha256_of(path) for path in sorted(folder.glob(f"{model_id}.*"))
            if path.name != f"{model_id}.json"}


def auc_row(model_id: str, labels, scores, what: str = "AUC") -> dict:
    auc = auc_with_ci(labels, scores)
    return {"model": model_id, "metric": what, "kind": "auc", "value": auc.auc, "ci_low": auc.ci_low,
            "ci_high": auc.ci_high, "n": auc.n_positive + auc.n_negative, "n_positive": auc.n_positive,
            "n_negative": auc.n_negative}


def mean_row(model_id: str, metric: str, values) -> dict:
    summary = mean_ci(values)
    return {"model": model_id, "metric": metric, "kind": "mean", "value": summary["mean"], "sd": summary["sd"],
            "ci_low": summary["ci_low"], "ci_high": summary["ci_high"], "n": summary["n"]}


def proportion_row(model_id: str, metric: str, successes: int, total: int) -> dict:
    low, high = wilson_interval(successes, total)
    return {"model": model_id, "metric": metric, "kind": "proportion", "value": successes / total, "ci_low": low,
            "ci_high": high, "n": total, "successes": successes}


def _cohort(work: Path, name: str, n: int, seed: int, writer) -> Path:
    """The cohort's manifest, written once per (name, n, seed) and reused."""
    folder = work / f"{name}-seed{seed}-n{n}"
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        writer(folder, n, seed)
    return manifest


def _mammo_cohort(work: Path, kind: str, n: int, seed: int) -> Path:
    from .mammo.cohort import write_mammo_phantom_cohort

    return _cohort(work, f"mammo-{kind}", n, seed + (kind == "calcification"),
                   lambda folder, count, s: write_mammo_phantom_cohort(folder, count, s, kind))


def mammo_classifiers(work: Path, n: int, seed: int = SEEDS["mammo"]) -> list[dict]:
    """AUC (and SEN/SPE at the card's cutoff) of each radiomics classifier on ground-truth ROIs."""
    from .mammo.classify import _matrix, read_features
    from .mammo.features import extract_cohort
    from .mammo.scorer import load_classifier

    rows = []
    for kind in ("mass", "calcification"):
        manifest = _mammo_cohort(work, kind, n, seed)
        features = manifest.parent / "features.csv"
        if not features.is_file():
            extract_cohort(manifest, features, n_jobs=1, show_progress=False)
        model_id = f"mammo-{kind}-classifier-demo"
        model = load_classifier(models_dir() / f"{model_id}.json")  # as `mammo predict` scores
        table, _ = read_features(features, None)
        X, y = _matrix(table, model.feature_names)
        scores = model.scores(X)
        at_cutoff = binary_metrics(y, scores >= model.checked["cutoff"])
        rows.append({**auc_row(model_id, y, scores), "weights_sha256": weights_sha256(model_id),
                     "sensitivity": at_cutoff.sensitivity.as_text(), "specificity": at_cutoff.specificity.as_text(),
                     "cohort": f"smartimaging mammo phantoms --out {kind} --n {n} --seed "
                               f"{seed + (kind == 'calcification')} --kind {kind}; mammo extract (ground-truth ROIs)"})
    return rows


def mammo_unets(work: Path, n: int, seed: int = SEEDS["mammo"]) -> list[dict]:
    """Dice of each prompted U-Net with the click at the lesion's centre (as in training's validation), and how
    often it finds the lesion (non-empty ROI overlapping it)."""
    from .mammo.features import load_mask
    from .mammo.images import load_mammogram
    from .mammo.segment import MammoSegmenter, prompt_point
    from .manifest import read_manifest

    rows = []
    for kind in ("mass", "calcification"):
        manifest = read_manifest(_mammo_cohort(work, kind, n, seed), required=("image", "mask", "pixel_mm"))
        segmenter = MammoSegmenter.load(kind, device="cpu")
        scores, found = [], 0
        for row in manifest.rows:
            mammogram = load_mammogram(manifest.resolve(row["image"]), float(row["pixel_mm"]))  # PNG: no spacing
            truth = load_mask(manifest.resolve(row["mask"]), mammogram)
            spacing = mammogram.image.GetSpacing()
            predicted = segmenter.segment(mammogram.pixels, (spacing[1], spacing[0]), point=prompt_point(truth))
            scores.append(dice(predicted, truth))
            found += bool(np.any(predicted.astype(bool) & truth.astype(bool)))
        model_id = f"mammo-{kind}-unet-demo"
        cohort = f"smartimaging mammo phantoms --n {n} --seed {seed + (kind == 'calcification')} --kind {kind}"
        rows.append({**mean_row(model_id, "Dice (click at the lesion centre)", scores),
                     "weights_sha256": weights_sha256(model_id), "cohort": cohort})
        rows.append({**proportion_row(model_id, "lesion found", found, len(scores)), "cohort": cohort})
    return rows


def _lvi_cohort(work: Path, n: int, seed: int) -> Path:
    from .lvi.cohort import write_lvi_phantom_cohort

    return _cohort(work, "lvi", n, seed, write_lvi_phantom_cohort)


def lvi_classifiers(work: Path, n: int, seed: int = SEEDS["lvi"]) -> list[dict]:
    """AUC of the six LVI networks (each at its card's preprocessing) and of the fusion card."""
    from .lvi.cohort import case_inputs
    from .lvi.fusion import apply_fusion, read_fusion
    from .lvi.fusion_training import design_matrix
    from .lvi.predict import load_lvi_model
    from .lvi.preprocess import Preprocessing
    from .lvi.train import case_probabilities

    manifest = _lvi_cohort(work, n, seed)
    cohort = f"smartimaging lvi phantoms --n {n} --seed {seed}"
    rows = []
    for model_id in LVI_CLASSIFIERS:
        model = load_lvi_model(model_id)
        card = model.card
        settings = Preprocessing(**{key: tuple(value) if isinstance(value, list) else value
                                    for key, value in card["inputs"]["preprocessing"].items()
                                    if key in Preprocessing.__dataclass_fields__})
        cases = case_inputs(manifest, card["inputs"]["sequence"], None, card["inputs"]["dimensions"], settings)
        scores = case_probabilities(model.network, cases, next(model.network.parameters()).device)
        rows.append({**auc_row(model_id, [case["label"] for case in cases], scores),
                     "weights_sha256": weights_sha256(model_id), "cohort": cohort})
    card = read_fusion(models_dir() / "lvi-fusion-demo.json")
    fusion = card["fusion"]
    models = [name for name in fusion["inputs"] if name.startswith("lvi-")]
    X, y, _, _ = design_matrix(manifest, models, [name for name in fusion["inputs"] if name not in models], None, None)
    rows.append({**auc_row("lvi-fusion-demo", y, apply_fusion(fusion, X)), "cohort": cohort,
                 "weights_sha256": {"lvi-fusion-demo.json (fusion block)": _fusion_digest(fusion)}})
    return rows


def _fusion_digest(fusion: dict) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(fusion, sort_keys=True).encode()).hexdigest()


def lvi_unet(work: Path, n: int, seed: int = SEEDS["lvi"]) -> list[dict]:
    """Dice of the click-seeded lesion U-Net on DCE and T2, the click on the lesion voxel nearest its centroid."""
    from .io import read_series_or_volume
    from .lvi.segment import LesionSegmenter, NoLesionFoundError
    from .manifest import read_manifest

    manifest = read_manifest(_lvi_cohort(work, n, seed), required=("dce", "t2", "voi"))
    segmenter = LesionSegmenter.load(device="cpu")
    rows = []
    for column in ("dce", "t2"):
        scores = []
        for row in manifest.rows:
            volume = read_series_or_volume(manifest.resolve(row[column]))
            voi = sitk.GetArrayFromImage(read_series_or_volume(manifest.resolve(row["voi"]))) > 0
            points = np.argwhere(voi)
            k, j, i = points[np.argmin(((points - points.mean(axis=0)) ** 2).sum(axis=1))]
            click = volume.TransformIndexToPhysicalPoint((int(i), int(j), int(k)))
            try:
                predicted = sitk.GetArrayFromImage(segmenter.segment(volume, click)) > 0
            except NoLesionFoundError:
                predicted = np.zeros_like(voi)
            scores.append(dice(predicted, voi))
        rows.append({**mean_row("lvi-lesion-unet-demo", f"Dice on {column.upper()} (click on the lesion)", scores),
                     "weights_sha256": weights_sha256("lvi-lesion-unet-demo"),
                     "cohort": f"smartimaging lvi phantoms --n {n} --seed {seed}"})
    return rows


def bonescan(work: Path, n: int, seed: int = SEEDS["bonescan"]) -> list[dict]:
    """Metastasis AUC (ResNet34), lesion and bladder Dice (U-Net) and the BSTBI's absolute error against the
    BSTBI of the ground-truth masks (both networks)."""
    from .bonescan.cohort import read_masks, write_phantom_cohort
    from .bonescan.pipeline import BLADDER, LESION, BoneScanModels, analyse, bstbi_from_labelmaps
    from .bonescan.views import load_bone_scan
    from .manifest import read_manifest

    manifest = read_manifest(_cohort(work, "bonescan", n, seed, write_phantom_cohort),
                             required=("image", "mask", "label"))
    models = BoneScanModels.load(device="cpu")
    labels, probabilities, lesion, bladder, errors = [], [], [], [], []
    for row in manifest.rows:
        study = load_bone_scan(manifest.paths(row, "image"))
        result = analyse(study, models)
        truth = read_masks(study, manifest.paths(row, "mask"))
        labels.append(int(row["label"]))
        probabilities.append(result.metastasis_probability)
        for label, scores in ((LESION, lesion), (BLADDER, bladder)):
            t = np.concatenate([(truth[v] == label).ravel() for v in truth])
            if t.any():
                scores.append(dice(np.concatenate([(result.labelmaps[v] == label).ravel() for v in truth]), t))
        errors.append(abs(result.bstbi["mean"] - bstbi_from_labelmaps(study, truth)["mean"]))
    cohort = f"smartimaging bonescan phantoms --n {n} --seed {seed}"
    unet = weights_sha256("bonescan-unet-demo")
    return [{**auc_row("bonescan-resnet34-demo", labels, probabilities, "AUC metastasis"), "cohort": cohort,
             "weights_sha256": weights_sha256("bonescan-resnet34-demo")},
            {**mean_row("bonescan-unet-demo", "Dice metastases (cases with metastases)", lesion), "cohort": cohort,
             "weights_sha256": unet},
            {**mean_row("bonescan-unet-demo", "Dice bladder", bladder), "cohort": cohort, "weights_sha256": unet},
            {**mean_row("bonescan-unet-demo", "BSTBI absolute error (both networks)", errors), "cohort": cohort,
             "weights_sha256": unet}]


def dce(work: Path, n: int, seed: int = SEEDS["dce"]) -> list[dict]:
    """Per-volume mean SSIM and PSNR of the synthetic against the phantom's real DCE (the `dce evaluate` metrics)."""
    from .dce.cohort import write_dce_phantom_cohort
    from .dce.metrics import volume_metrics
    from .dce.synthesis import DCESynthesizer
    from .dce.volumes import load_mr_volume, normalise, pair_with_t1, to_unit
    from .manifest import read_manifest

    manifest = read_manifest(_cohort(work, "dce", n, seed, write_dce_phantom_cohort), required=("t1", "dce"))
    synthesizer = DCESynthesizer.load(device="cpu")
    per_volume = []
    for row in manifest.rows:  # one volume at a time: memory stays small
        t1 = load_mr_volume(manifest.resolve(row["t1"]), "T1")
        real, _ = pair_with_t1(t1, load_mr_volume(manifest.resolve(row["dce"]), "DCE"))
        t1_array = normalise(sitk.GetArrayFromImage(t1))
        per_volume.append(volume_metrics(to_unit(synthesizer.synthesize_normalised(t1_array)),
                                         to_unit(normalise(sitk.GetArrayFromImage(real)))))
    cohort = f"smartimaging dce phantoms --n {n} --seed {seed}"
    sha = weights_sha256("dce-pix2pix-demo")
    return [{**mean_row("dce-pix2pix-demo", "SSIM (per-volume mean of slices)", [v["ssim_mean"] for v in per_volume]),
             "cohort": cohort, "weights_sha256": sha},
            {**mean_row("dce-pix2pix-demo", "PSNR dB (per-volume mean of slices)",
                        [v["psnr_mean"] for v in per_volume]), "cohort": cohort, "weights_sha256": sha}]


MEASURE = {"mammo-classifiers": mammo_classifiers, "mammo-unets": mammo_unets, "lvi-classifiers": lvi_classifiers,
           "lvi-unet": lvi_unet, "bonescan": bonescan, "dce": dce}


def hanley_mcneil_se(auc: float, n_positive: int, n_negative: int) -> float:
    """Standard error of an AUC on a cohort of that size when the true AUC is `auc` (Hanley & McNeil 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (n_positive - 1) * (q1 - auc**2) + (n_negative - 1) * (q2 - auc**2)) / (
        n_positive * n_negative)
    return math.sqrt(max(variance, 0.0))


def consistent(recorded: dict, measured: dict, z: float = 3.0) -> tuple[bool, str]:
    """Whether a small cohort's `measured` row agrees with the `recorded` 200-phantom row: their difference within
    `z` standard errors of the two estimates together; the small cohort's error is what its size allows at the
    recorded value (Hanley-McNeil for AUCs, recorded SD / sqrt(n) for means, binomial for proportions)."""
    value = recorded["value"]
    recorded_se = (recorded["ci_high"] - recorded["ci_low"]) / (2 * Z95)
    if recorded["kind"] == "auc":
        small_se = hanley_mcneil_se(value, measured["n_positive"], measured["n_negative"])
    elif recorded["kind"] == "mean":
        small_se = recorded["sd"] / math.sqrt(measured["n"])
    else:
        small_se = math.sqrt(value * (1 - value) / measured["n"])
    tolerance = z * math.hypot(recorded_se, small_se)
    ok = abs(measured["value"] - value) <= tolerance
    return ok, (f"{measured['model']} {measured['metric']}: {measured['value']:.3f} on {measured['n']} fresh phantoms "
                f"vs {value:.3f} (95 % CI {recorded['ci_low']:.3f}-{recorded['ci_high']:.3f}) recorded on "
                f"{recorded['n']}; allowed difference {tolerance:.3f}")
