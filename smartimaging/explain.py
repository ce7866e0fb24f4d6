"""What a reader needs to understand a result, one click away (desktop modules and reading station alike, GUI-free):
what BSTBI is, what a cutoff is and where it came from, the model card of every model the result used (read from
the provenance its result node records), plain radiomics feature names (`feature_names`), a borderline flag near
the cutoff, a note when the LVI models disagree and the synthetic DCE's lesion-level check.

An explanation is a JSON-ready dict: "key", "title", "text" (paragraphs), "tone" ("info" or "warning"), "rows"
([label, value, hover] lines, e.g. a card's metrics or the features with their pyradiomics names) and, for a
warning shown under the score, "summary" (one line).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from .errors import SmartImagingError
from .feature_names import FEATURE_CLASSES, plain_feature_name
from .feature_names import plain_domain as plain_domain  # the GUIs' callers read these two here
from .feature_names import shown_rows as shown_rows
from .models.registry import MAX_CARD_BYTES, read_json_limited
from .models.registry import models_dir as default_models_dir
from .wording import counted

NOT_RECORDED = "not recorded"
BORDERLINE_LOGIT = 0.25  # "near the cutoff": within ±0.25 on the log-odds scale (±0.06 around a cutoff of 0.5)
RECORDS = {"BoneScanBSTBI": "SmartImaging.BoneScanResult", "MammoRadiomics": "SmartImaging.MammoResult",
           "BreastLVI": "SmartImaging.BreastLVI", "DCESynthesis": "SmartImaging.DCESynthesis"}
BSTBI_TEXT = [
    "BSTBI (bone scan tumour burden index) is the share of the skeleton's tracer uptake that lies in the "
    "metastases, weighted so that small burdens stay visible.",
    "How this software computes it: each view is shown at two grey-level settings (upper limit at the view's "
    "99.9th count percentile, and at half of it), each mapped to 8 bits with more uptake = darker. On each of the "
    "four sub-images, S(X) = Σ(255 − pixel) over a region X and BSTBI = K·S(L) / ((K−1)·S(L) + S(R) − S(B)), with "
    "K = 5, L the metastasis pixels, R the whole sub-image and B the bladder (left out: urine, not bone). The case "
    "value is the mean of the four sub-images.",
    "Meaning (the method's paper): 0 without metastases, towards 1 as metastases take up most of the uptake; it is "
    "meant for following one patient over time (a rise = more tumour burden). No normal range is claimed here: "
    "the demo models were trained on phantoms, and the value depends on the camera, the counts and the "
    "segmentation, so compare a patient's scans from the same camera, not patients with each other."]
CUTOFF_TEXT = ("A cutoff turns a probability into a yes/no label: at or above it the case is called positive. It is "
               "chosen on training data, here by the Youden index (the threshold that maximises sensitivity + "
               "specificity − 1), so it balances missed and false-positive cases on that data; it is not a "
               "clinical decision threshold.")


# ---- untrusted card fields -------------------------------------------------------------------------------------------
# A model card is a file anyone can edit: every field an explanation uses is type-checked, and what is missing or
# malformed reads "not recorded".

def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value) -> float | None:
    """A finite JSON number, else None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _count(value) -> int | None:
    """A non-negative JSON integer, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(value) -> str | None:
    """A non-empty string, or a number as text (a version 2); else None."""
    if isinstance(value, str):
        return value.strip() or None
    return str(value) if _number(value) is not None else None


def _or_not_recorded(value) -> str:
    return NOT_RECORDED if value is None else str(value)


def _fixed(value, digits: int) -> str:
    number = _number(value)
    return NOT_RECORDED if number is None else f"{number:.{digits}f}"


# ---- cutoff and borderline ------------------------------------------------------------------------------------------

def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def borderline_band(cutoff: float) -> tuple[float, float]:
    """The scores called near `cutoff`: within ±BORDERLINE_LOGIT of it on the log-odds scale."""
    centre = _logit(cutoff)
    return tuple(1 / (1 + math.exp(-(centre + side * BORDERLINE_LOGIT))) for side in (-1, 1))


def is_borderline(score: float, cutoff: float) -> bool:
    low, high = borderline_band(cutoff)
    return low <= score <= high


def borderline_explanation(what: str, score: float, cutoff: float) -> dict | None:
    """A warning when `score` lies near `cutoff` (see `borderline_band`), else None."""
    if not is_borderline(score, cutoff):
        return None
    low, high = borderline_band(cutoff)
    side = "at or above" if score >= cutoff else "below"
    return {"key": "borderline", "title": f"Borderline: {what} {score:.3f} is close to the cutoff {cutoff:.3f}",
            "tone": "warning", "rows": [],
            "summary": f"Read the label as uncertain: the borderline band is {low:.3f}–{high:.3f}.",
            "text": [f"The {what} {score:.3f} lies {side} the cutoff {cutoff:.3f}, within the borderline band "
                     f"{low:.3f}–{high:.3f}: a small change of the ROI or of the image could flip the label. Read "
                     "the label as uncertain.",
                     f"Borderline band: ±{BORDERLINE_LOGIT:g} around the cutoff on the log-odds scale (odds within a "
                     f"factor {math.exp(BORDERLINE_LOGIT):.2f} of the cutoff's; ±0.06 around a cutoff of 0.5, "
                     "narrower towards 0 and 1, where a model's probabilities crowd together)."]}


def cutoff_of_card(card: dict) -> tuple[float, str] | None:
    """(value, how it was chosen and on which data) of a model card's case cutoff, or None (also when the card's
    cutoff is not a finite number: a card is read as untrusted)."""
    training = _dict(card.get("training"))
    data = _dict(training.get("data"))
    outputs = _dict(card.get("outputs"))
    if isinstance(card.get("cutoff"), dict):  # radiomics classifiers
        cases, folds = _count(training.get("cases")), _count(training.get("folds"))
        where = f" ({cases} training cases, {_or_not_recorded(folds)} folds)" if cases is not None else ""
        value = _number(card["cutoff"].get("value"))
        return None if value is None else (value, _or_not_recorded(_text(card["cutoff"].get("method"))) + where)
    if "cutoff" in outputs:  # LVI networks
        cases, value = _count(training.get("train_cases")), _number(outputs["cutoff"])
        return None if value is None else (value, _or_not_recorded(_text(outputs.get("cutoff_method")))
                                           + (f" ({cases} training cases)" if cases is not None else ""))
    for name, value in _dict(outputs.get("thresholds")).items():  # the bone-scan classifier's case cutoff
        if name.startswith("case"):
            method = name[name.find("(") + 1:name.rfind(")")] if "(" in name else name
            cases, value = _count(data.get("val_cases")), _number(value)
            return None if value is None else \
                (value, method + (f" ({cases} validation cases)" if cases is not None else ""))
    if isinstance(card.get("fusion"), dict):
        value = _number(card["fusion"].get("cutoff"))
        return None if value is None else (value, _or_not_recorded(_text(training.get("cutoff_from"))))
    return None


def _claims_cutoff(card: dict) -> bool:
    """Whether a card has a field meant to hold a case cutoff (well-formed or not)."""
    outputs = _dict(card.get("outputs"))
    return "cutoff" in card or "cutoff" in outputs or "thresholds" in outputs or "fusion" in card


# ---- model cards ----------------------------------------------------------------------------------------------------

def card_path_of(provenance: dict, directory=None) -> Path:
    """Where a model's card is: the card a result names (a model trained on a cohort), else `<id>.json` of the
    models folder."""
    named = provenance.get("card")
    return Path(named) if isinstance(named, str) and named.endswith(".json") else \
        Path(directory or default_models_dir()) / f"{provenance.get('id')}.json"


def read_card(model_id: str, directory=None, path: Path | None = None) -> dict | None:
    """The model card `<id>.json` of the models folder (or at `path`), or None when it is missing or unreadable."""
    path = path or Path(directory or default_models_dir()) / f"{model_id}.json"
    try:
        return read_json_limited(path, MAX_CARD_BYTES, "Model card")
    except (SmartImagingError, OSError, ValueError):
        return None


def _interval(entry: dict, digits: int = 3) -> str:
    value = _fixed(entry.get("value", entry.get("auc")), digits)
    low, high = _number(entry.get("ci_low")), _number(entry.get("ci_high"))
    if low is None or high is None:
        return f"{value} (95 % CI {NOT_RECORDED})"
    return f"{value} (95 % CI {low:.{digits}f}–{high:.{digits}f})"


def _metric_rows(card: dict) -> list[list[str]]:
    """The card's validation and fresh-phantom metrics as [what, value, on which data] rows."""
    metrics = _dict(card.get("metrics"))
    rows = []
    validation = metrics.get("validation") if isinstance(metrics.get("validation"), dict) else None
    if validation is not None:
        data = _text(validation.get("data")) or "validation cases"
        auc = validation.get("auc")
        if isinstance(auc, dict):
            positive, negative = (_or_not_recorded(_count(auc.get(key))) for key in ("n_positive", "n_negative"))
            rows.append(["AUC (validation)", _interval(auc), f"{data}: {positive} positive, {negative} negative"])
        at_cutoff = _dict(validation.get("at_cutoff")) or _dict(validation.get("metrics"))
        if not at_cutoff and ("at_cutoff" in validation or "metrics" in validation):
            rows.append(["Sensitivity and specificity at the cutoff (validation)", NOT_RECORDED, data])
        for name in ("sensitivity", "specificity"):
            if name in at_cutoff:
                entry = _dict(at_cutoff[name])
                counts = [_count(entry.get(key)) for key in ("numerator", "denominator")]
                fraction = f" ({counts[0]}/{counts[1]})" if None not in counts else ""
                rows.append([f"{name.capitalize()} at the cutoff (validation)", _fixed(entry.get("value"), 2)
                             + fraction, data])
        for name in ("ssim", "psnr"):
            if name in validation:
                rows.append([f"{name.upper()} (validation)", _fixed(validation[name], 3), data])
    elif isinstance(metrics.get("data"), str):  # networks whose card records the last validation epoch
        for name, value in metrics.items():
            if isinstance(value, float) and name not in ("train_loss", "score"):
                words = name.replace("_", " ").replace("auc ", "AUC ").replace("dice ", "Dice ")
                rows.append([f"{words} (validation)", _fixed(value, 3), metrics["data"]])
    fresh = _dict(metrics.get("fresh_phantoms"))
    for row in fresh.get("rows") if isinstance(fresh.get("rows"), list) else []:
        if isinstance(row, dict) and {"metric", "value", "ci_low", "ci_high"} <= set(row):
            count, cohort = _or_not_recorded(_count(row.get("n"))), _text(row.get("cohort")) or NOT_RECORDED
            rows.append([f"{_text(row['metric']) or 'metric ' + NOT_RECORDED} (fresh phantoms)", _interval(row),
                         f"{count} phantoms never used in training ({cohort})"])
    return rows


def _training_text(card: dict) -> str:
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    domain = card.get("training_domain") if isinstance(card.get("training_domain"), dict) else {}
    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    parts = [_text(data.get("description")) or _text(domain.get("data")) or ""]
    counts = [f"{training[key]} {key.replace('_', ' ')}" for key in ("cases", "train_cases", "val_cases",
                                                                     "train_volumes", "val_volumes")
              if _count(training.get(key)) is not None]
    counts += [f"{data[key]} {key.replace('_', ' ')}" for key in ("train_cases", "val_cases")
               if _count(data.get(key)) is not None]
    recorded = training.get("cohort_command") or data.get("cohort_command")
    command = _text(recorded) if isinstance(recorded, str) else None
    cohort = "" if not recorded or (command and command in parts[0]) else f"cohort: {command or NOT_RECORDED}"
    sources = [f"{key.replace('_', ' ')}: {value}" for key, value in data.items()  # e.g. real backgrounds, masks
               if isinstance(value, str) and key not in ("description", "cohort_command", "manifest")]
    sources += [f"{key.replace('_', ' ')}: " + ", ".join(f"{len(items)} {name.replace('_', ' ')}"
                                                         for name, items in value.items() if isinstance(items, list))
                for key, value in data.items() if key == "backgrounds" and isinstance(value, dict)]
    return "; ".join(part for part in [*parts, ", ".join(counts), cohort, *sources] if part)


def card_explanation(provenance: dict, directory=None) -> dict:
    """The model card of one model a result used (provenance: its id, version and sha256): task, version,
    training data, metrics, cutoff and intended use, each "not recorded" where the card lacks it or holds something
    malformed; a warning when the card on disk is another version, missing or unreadable."""
    model_id, version = str(provenance.get("id")), str(provenance.get("version"))
    card = read_card(model_id, directory, card_path_of(provenance, directory))
    if card is None:
        present = card_path_of(provenance, directory).is_file()
        why = "cannot be read (too large, or not a JSON object)" if present else "is no longer in the models folder"
        return {"key": f"card {model_id}", "title": f"Model card: {model_id} {version}", "tone": "warning",
                "rows": [], "text": [f"The card {model_id}.json {why}: only the result's record is left (model "
                                     f"{model_id}, version {version})."]}
    card_version = _text(card.get("version"))
    intended = _text(card.get("intended_use"))
    text = [f"Task: {_text(card.get('task')) or NOT_RECORDED} · version {card_version or NOT_RECORDED}"
            + ("" if card_version == version else
               f" (this result was computed with version {version}: the card below may not describe it)"),
            f"Training data: {_training_text(card) or NOT_RECORDED}",
            f"Intended use: {intended or NOT_RECORDED}"]
    cutoff = cutoff_of_card(card)
    if cutoff is not None:
        text.insert(2, f"Cutoff {cutoff[0]:.3f}: {cutoff[1]}")
    elif _claims_cutoff(card):
        text.insert(2, f"Cutoff: {NOT_RECORDED} (the card's cutoff is not a number)")
    origin = _origin(card, intended or "")
    return {"key": f"card {model_id}", "title": f"Model card: {model_id} {card_version or NOT_RECORDED}"
            + (f" ({origin})" if origin else ""),
            "tone": "warning" if origin else "info", "text": text, "rows": _metric_rows(card)}


def _origin(card: dict, intended: str) -> str:
    """Where the heading says the model comes from: a worklist's cohort it was trained or fine-tuned on (its
    intended use quotes the demo card it started from: it is not the demo model), else demo weights; "" for
    another model."""
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    phantom = "synthetic phantoms, " if data.get("phantom") is True or metrics.get("phantom") is True else ""
    tuned = "fine-tuned" if isinstance(training.get("fine_tuned_from"), dict) else "trained"
    if _text(data.get("cohort")):
        return f"{tuned} on the cohort {_text(data.get('cohort'))}: {phantom}not for clinical use"
    if tuned == "fine-tuned":  # a proposal U-Net fine-tuned on a worklist's corrected ROIs
        return f"fine-tuned on a worklist's corrected ROIs: {phantom}not for clinical use"
    return "demo weights, not for clinical use" if "DEMO" in intended.upper() else ""


def cutoff_explanation(what: str, score: float, cutoff: float, card: dict | None) -> dict:
    """What the cutoff beside a score is, and where this one came from (the card's method and data)."""
    source = cutoff_of_card(card) if card is not None else None
    where = f"This cutoff ({cutoff:.3f}) comes from {source[1]}." if source is not None else \
        f"This cutoff ({cutoff:.3f}) is the mean of the models' own cutoffs."
    side = "at or above" if score >= cutoff else "below"
    return {"key": "cutoff", "title": f"{what[0].upper()}{what[1:]} {score:.3f} · cutoff {cutoff:.3f}",
            "tone": "info", "rows": [],
            "text": [f"The {what} {score:.3f} is {side} its cutoff {cutoff:.3f}.", CUTOFF_TEXT, where]}


# ---- per module -----------------------------------------------------------------------------------------------------

def record_of(module: str, nodes) -> dict | None:
    """The JSON record a module's result node holds (the first of `nodes` that has one)."""
    for node in nodes:
        text = node.GetAttribute(RECORDS[module]) if node is not None else None
        if text:
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if isinstance(record, dict):
                return record
    return None


def _models_of(record: dict) -> list[dict]:
    models = record.get("models") or ([record["model"]] if isinstance(record.get("model"), dict) else [])
    return [m["model"] if isinstance(m.get("model"), dict) else m for m in models if isinstance(m, dict)]


def bonescan_explanations(record: dict, directory=None) -> list[dict]:
    from .bonescan.bstbi import K_SCALING

    bstbi = record.get("bstbi", {})
    lines = [[name, f"{value:.3f}", "one view at one grey-level setting"]
             for name, value in (bstbi.get("per_subimage") or {}).items()]
    explanations = [{"key": "bstbi", "title": f"What BSTBI {bstbi.get('mean', 0):.3f} means", "tone": "info",
                     "text": BSTBI_TEXT if bstbi.get("k", K_SCALING) == K_SCALING else
                     [*BSTBI_TEXT, f"This result used K = {bstbi['k']:g}."], "rows": lines}]
    cards = [read_card(str(m.get("id")), directory) for m in _models_of(record)]
    card = next((c for c in cards if c is not None and cutoff_of_card(c) is not None), None)  # the classifier's
    cutoff = cutoff_of_card(card) if card else None
    probability = record.get("metastasis_probability")
    if cutoff is not None and isinstance(probability, (int, float)):
        explanations.append(cutoff_explanation("metastasis probability", probability, cutoff[0], card))
        flag = borderline_explanation("metastasis probability", probability, cutoff[0])
        explanations += [flag] if flag else []
    return explanations


def mammo_explanations(record: dict, directory=None) -> list[dict]:
    from .mammo.predict import CLASSIFIER_IDS

    score, cutoff = record["rad_score"], record["cutoff"]
    chosen = next((m for m in _models_of(record) if "card" in m), None)  # a cohort's model, else the demo one
    card = read_card(CLASSIFIER_IDS.get(record.get("kind"), ""), directory,
                     card_path_of(chosen, directory) if chosen else None)
    explanations = [borderline_explanation("Rad-score", score, cutoff)]
    explanations.append(cutoff_explanation("Rad-score", score, cutoff, card))
    explanations.append(contribution_explanation(record, card, directory))
    features = record.get("features") or {}
    explanations.append({"key": "features", "title": f"The {len(features)} radiomics features of this ROI",
                         "tone": "info",
                         "text": ["Plain names; hover a name for its pyradiomics name. Shape features are in "
                                  "millimetres at the image's pixel size."],
                         "rows": [[plain_feature_name(name), f"{value:.4g}", name] for name, value in
                                  features.items()]})
    return [e for e in explanations if e]


def group_contributions(card: dict | None, features: dict, directory=None) -> list[list[str]]:
    """Score change when every feature of one class (shape, intensity, a texture family) is set together to its
    training reference: [class, change] rows, largest change first; empty when the classifier cannot be read."""
    from .mammo.scorer import load_classifier

    if card is None:
        return []
    try:
        classifier = load_classifier(Path(directory or default_models_dir()) / f"{card['id']}.json")
    except (SmartImagingError, OSError, KeyError, TypeError, ValueError, AttributeError):  # a malformed card
        return []
    if classifier.reference is None or any(name not in features for name in classifier.feature_names):
        return []
    values = np.array([features[name] for name in classifier.feature_names], float)
    kept, reference = classifier.reference
    score = classifier.scores(values[None])[0]
    rows = []
    for feature_class, label in FEATURE_CLASSES.items():
        members = [i for i, column in enumerate(kept)
                   if classifier.feature_names[column].split("_")[1] == feature_class]
        if not members:
            continue
        probe = values.copy()
        probe[np.asarray(kept)[members]] = np.asarray(reference)[members]
        change = score - classifier.scores(probe[None])[0]
        rows.append([f"{label} ({counted(len(members), 'feature')})", f"{change:+.3f}",
                     "score change when these features are set together to their training mean"])
    return sorted(rows, key=lambda row: -abs(float(row[1])))


def contribution_explanation(record: dict, card: dict | None, directory=None) -> dict:
    """What the per-feature contributions are; when they are (nearly) all zero, a warning saying why, with the
    contributions of whole feature families instead."""
    top = record.get("top_features") or []
    zero = [item for item in top if abs(item.get("score_change", 0)) < 0.0005]
    definition = ("Contribution of a feature: how much the Rad-score would drop if that feature alone were set to "
                  "its training mean (positive: the feature pushed the score up).")
    if not top or len(zero) < len(top) - 1:
        return {"key": "contributions", "title": "Why the Rad-score is what it is", "tone": "info",
                "text": [definition], "rows": []}
    classifier = _text(_dict(_dict(card).get("pipeline")).get("classifier"))
    model = {"rf": "random forest", "xgboost": "tree ensemble"}.get(classifier, "classifier")
    text = [f"{len(zero)} of the {len(top)} largest contributions are 0: the {model} decides by thresholds (tree "
            "splits) on combined features; moving one feature alone to its training mean rarely crosses any split, "
            "so the score does not move. This happens most when the lesion's features lie far from the training "
            "data (see the domain check). Below: whole feature families set to their training mean together.",
            definition]
    rows = group_contributions(card, record.get("features") or {}, directory)
    if rows and all(abs(float(row[1])) < 0.0005 for row in rows):
        text.append("Not even a whole family moves the score: it comes from the combination of all of them.")
    return {"key": "contributions", "title": f"Feature contributions of 0: how a {model} scores", "tone": "warning",
            "text": text, "rows": rows,
            "summary": "One feature moved alone rarely flips a tree; whole feature families: Explain this result."}


def lvi_explanations(record: dict, directory=None) -> list[dict]:
    models = [m for m in record.get("models") or [] if isinstance(m, dict)]
    fused = record.get("fused") or {}
    explanations = []
    disagreement = lvi_disagreement(models, fused)
    if disagreement:
        explanations.append(disagreement)
    if fused:
        from .lvi.report_page import is_fused

        what = "fused LVI probability" if is_fused(record) else "LVI probability"  # one network alone: no fusion
        explanations.append(borderline_explanation(what, fused["probability"], fused["cutoff"]))
        fitted = re.search(r"\(([^()]+)\)$", str(fused.get("method", "")))  # a fitted fusion names its card
        source = fitted.group(1) if fitted else models[0]["model"]["id"] if len(models) == 1 else None
        path = None if fitted or not source else card_path_of(models[0]["model"], directory)  # a cohort's model
        card = read_card(source, directory, path) if source else None
        explanations.append(cutoff_explanation(what, fused["probability"], fused["cutoff"], card))
    return [e for e in explanations if e]


def lvi_disagreement(models: list[dict], fused: dict) -> dict | None:
    """A note when the sequences' models fall on opposite sides of their own cutoffs, with what the fused number
    is; None when they agree."""
    positive = [m for m in models if m["probability"] >= m["cutoff"]]
    if not positive or len(positive) == len(models):
        return None
    lines = [f"{m['sequence']} ({m.get('network', '')}): {m['probability']:.3f} "
             f"{'≥' if m in positive else '<'} its cutoff {m['cutoff']:.3f} → "
             f"{'positive' if m in positive else 'negative'}" for m in models]
    sides = ", ".join(f"{m['sequence']} {m['probability']:.3f} {'positive' if m in positive else 'negative'}"
                      for m in models)
    return {"key": "disagreement", "title": "The sequences disagree", "tone": "warning", "rows": [],
            "summary": f"{sides}: the fused {fused.get('probability', float('nan')):.3f} averages opposite answers.",
            "text": [*lines,
                     f"The fused {fused.get('probability', float('nan')):.3f} is the "
                     f"{fused.get('method', 'fusion')}, compared with the fused cutoff {fused.get('cutoff', 0):.3f}: "
                     f"it averages two opposite answers, so its label ({fused.get('label', '')}) says less than "
                     "either model does. Look at both sequences and their heat maps before trusting it."]}


def dce_explanations(record: dict, directory=None) -> list[dict]:
    measure = record.get("lesion_contrast")
    if not measure:
        return [{"key": "lesions", "title": "Lesion-level check: needs a real DCE", "tone": "info", "rows": [],
                 "text": ["Load the real DCE of this patient to see whether what enhances on it also shows "
                          "on the synthetic DCE; SSIM alone cannot tell."]}]
    rows = [[f"Region {number} (slices {m['slices'][0] + 1}–{m['slices'][1] + 1}, {counted(m['voxels'], 'voxel')})",
             "no real contrast" if m["ratio"] is None else f"{m['ratio']:.2f}",
             f"contrast to surroundings: synthetic {m['synthetic_contrast']:.3f}, real {m['real_contrast']:.3f}"]
            for number, m in enumerate(measure["regions"], start=1)]
    faint = [f"{m['ratio']:.2f}" for m in measure["regions"] if m["faint"] and m["ratio"] is not None]
    return [{"key": "lesions", "title": "Enhancing regions faint on the synthetic DCE" if measure["faint"] else
             "Lesion-level check", "tone": "warning" if measure["faint"] else "info", "rows": rows,
             "summary": f"{len(faint)} of {counted(len(measure['regions']), 'region')} below "
                        f"{measure['faint_ratio']:g} of their real contrast (ratio {', '.join(faint)}); SSIM does not "
                        "show this.",
             "text": [measure["sentence"],
                      f"Enhancing region: a connected, focal region where the real DCE minus the T1 (mapped onto "
                      f"it) exceeds {measure['threshold']:g} of the intensity range, neither tiny, nor thin as a "
                      "vessel, nor the size of the heart: a lesion or focal background enhancement; the three that "
                      "enhance most are measured. Ratio = synthetic / real contrast of the region to its "
                      f"surroundings; faint below {measure['faint_ratio']:g}."]}]


EXPLAINERS = {"BoneScanBSTBI": bonescan_explanations, "MammoRadiomics": mammo_explanations,
              "BreastLVI": lvi_explanations, "DCESynthesis": dce_explanations}


def explain(module: str, nodes, directory=None) -> list[dict]:
    """Every explanation of a module's result, from the record its result nodes hold (table first, then e.g. the
    synthetic DCE volume): the module's own, then the model card of each model the result used."""
    record = record_of(module, nodes)
    return [] if record is None else explain_record(module, record, directory)


def explain_record(module: str, record: dict, directory=None) -> list[dict]:
    """Every explanation of a module's result record (as result.json holds it): the module's own, then the model
    card of each model the result used."""
    cards = [_card_or_warning(model, directory) for model in _models_of(record)]
    return [*EXPLAINERS[module](record, directory), *cards]


def _card_or_warning(model: dict, directory) -> dict:
    """A card's explanation; should a card still defeat the checks above, a warning naming the error instead of
    no result at all (the result is always shown)."""
    try:
        return card_explanation(model, directory)
    except Exception as error:  # noqa: BLE001 - an untrusted file must not hide the result it explains
        model_id = str(model.get("id"))
        return {"key": f"card {model_id}", "title": f"Model card: {model_id} {NOT_RECORDED}", "tone": "warning",
                "rows": [], "text": [f"The card {model_id}.json could not be read ({type(error).__name__}: "
                                     f"{error}): its contents are {NOT_RECORDED} here."]}


def explain_node(node, directory=None) -> list[dict]:
    """Every explanation of the result a node holds (a result table, or the synthetic DCE volume), whichever
    module's it is; [] for a node without a result record."""
    module = next((m for m, key in RECORDS.items() if node is not None and node.GetAttribute(key)), None)
    return explain(module, [node], directory) if module else []


def as_text(explanations: list[dict]) -> tuple[str, str]:
    """(summary, details) for a message box: the warnings (title and summary) and the cutoff, then every
    explanation in full (paragraphs, then its rows as "label: value (hover text)")."""
    summary = [f"{e['title']}. {e['summary']}" if e.get("summary") else e["title"] for e in explanations
               if e["key"] == "cutoff" or (e["tone"] == "warning" and not e["key"].startswith("card"))]
    details = []
    for item in explanations:
        details += [item["title"].upper(), *item["text"],
                    *(f"  {row[0]}: {row[1]}" + (f" ({row[2]})" if row[2] else "") for row in item["rows"]), ""]
    if not summary and explanations:
        summary = [explanations[0]["title"]]
    return "\n".join(summary), "\n".join(details).strip()

