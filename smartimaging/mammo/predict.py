"""`mammo predict`: ROI (AI from a point/box/whole image, or the reader's mask) → 102 features → Rad-score, label at
the model's cutoff, and the features that moved the score most."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..domain import combine
from ..errors import InputError, ModelError
from ..io import atomic_output_dir
from ..models.registry import models_dir
from ..overlays import outline_png
from ..privacy import input_record
from ..radiomics import MAMMO_PARAMS, extract_2d, parameter_settings
from ..record_report import REPORT_FILE, Explainer, write_report
from ..segfile import labelmap_image, write_seg_nrrd
from ..segments import MAMMO_SEGMENTS
from .domain import classifier_check, segmenter_check
from .features import check_roi, load_mask
from .images import PIXEL_SIZE_HINTS, Mammogram, load_mammogram
from .report_page import report_page
from .scorer import Classifier, load_classifier, read_radiomics_card
from .segment import BREAST_IMAGE_MM, MammoSegmenter, check_prompt, estimated_pixel_mm, propose_roi

CLASSIFIER_IDS = {"mass": "mammo-mass-classifier-demo", "calcification": "mammo-calcification-classifier-demo"}
DEMO_KINDS = {card_id: kind for kind, card_id in CLASSIFIER_IDS.items()}  # a demo card's id names its lesion kind
LARGE_ROI = 0.5  # of the breast or of the image: an ROI that large is not around one lesion


@dataclass
class MammoPrediction:
    kind: str
    roi: np.ndarray
    roi_source: str
    features: dict[str, float]
    rad_score: float
    cutoff: float
    top_features: list[dict]
    models: list[dict]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    domain: dict = field(default_factory=dict)  # `smartimaging.domain.combine` of the segmenter's and classifier's
    segmenter_pixel_mm: float | None = None  # the pixel size the segmenter assumed for a file that records none

    @property
    def label(self) -> str:
        return "malignant" if self.rad_score >= self.cutoff else "benign"

    def as_json(self) -> dict:
        return {"smartimaging_version": __version__, "kind": self.kind, "roi_source": self.roi_source,
                "roi_pixels": int(self.roi.sum()), "rad_score": self.rad_score, "cutoff": self.cutoff,
                "label": self.label, "top_features": self.top_features, "models": self.models,
                "warnings": self.warnings, "domain": self.domain, "segmenter_pixel_mm": self.segmenter_pixel_mm,
                "timings_s": self.timings, "features": self.features}


def feature_contributions(classifier: Classifier, values: np.ndarray, top: int = 5) -> list[dict]:
    """Score change when each feature is set to the training reference (mean or mid-range) of the normaliser."""
    if classifier.reference is None:
        return []
    kept, reference = classifier.reference
    score = classifier.scores(values[None])[0]
    probes = np.repeat(values[None], len(kept), axis=0)
    probes[np.arange(len(kept)), kept] = reference
    deltas = score - classifier.scores(probes)
    order = np.argsort(-np.abs(deltas))[:top]
    return [{"feature": classifier.feature_names[kept[i]], "value": float(values[kept[i]]),
             "score_change": float(deltas[i])} for i in order]


def check_radiomics_settings(card_path: Path, parameters=MAMMO_PARAMS, trained: dict | None = None) -> None:
    """Refuse a classifier trained on features computed with other pyradiomics settings than the parameter file's.

    `trained` is the card's `radiomics` block as checked by `read_radiomics_card` (read from `card_path` when None).
    """
    if trained is None:
        trained = read_radiomics_card(card_path)["radiomics"]
    if trained is None:
        raise ModelError(f"The model card {card_path.name} does not record the pyradiomics settings its features were "
                         "computed with; retrain it from a features file written by `mammo extract`.")
    current = parameter_settings(parameters)
    if trained["settings"] != current:
        trained_setting, current_setting = trained["settings"].get("setting", {}), current.get("setting", {})
        if not isinstance(trained_setting, dict):
            trained_setting = {}
        changed = sorted(str(key) for key in set(trained_setting) | set(current_setting)
                         if trained_setting.get(key) != current_setting.get(key)) or ["feature classes"]
        raise ModelError(f"The classifier {card_path.stem} was trained on features computed with other pyradiomics "
                         f"settings than {Path(parameters).name} (differences: {', '.join(changed)}); its Rad-score "
                         "would be meaningless. Retrain it or restore the parameter file.")


def predict_mammogram(mammogram: Mammogram, kind: str, point=None, box=None, mask: np.ndarray | None = None,
                      directory=None, device: str = "auto", pixel_hint: str = PIXEL_SIZE_HINTS["cli"],
                      classifier_card: str | os.PathLike | None = None) -> MammoPrediction:
    """ROI, features and Rad-score for one lesion of a mammogram; `pixel_hint`: where the reader gives a pixel size
    (`images.PIXEL_SIZE_HINTS`: the CLI's option, or the station's or the desktop module's field);
    `classifier_card`: another classifier than the kind's demo one (a model trained on a cohort), loaded through the
    same checks; its provenance then names its card."""
    notes: list[str] = []
    timings, models, checks = {}, [], []
    assumed_mm = None  # the pixel size the segmenter assumed (none for the reader's mask or a known size)
    started = time.perf_counter()
    if mask is not None:
        roi, source = (np.asarray(mask) > 0).astype(np.uint8), "reader mask"
    else:
        segmenter = MammoSegmenter.load(kind, directory, device)
        assumed_mm = None if mammogram.pixel_size_known else estimated_pixel_mm(mammogram.pixels.shape)
        roi, source = propose_roi(segmenter, mammogram.image, kind, point, box, assumed_mm)
        if assumed_mm:
            notes.append(f"The file records no pixel size: the segmenter assumed {assumed_mm:.2g} mm from the image "
                         f"size (a mammogram about {BREAST_IMAGE_MM:g} mm long); give --pixel-mm if you know it")
        if source == "AI":
            source = "AI (" + ("point" if point is not None else "box" if box is not None else "whole image") + ")"
        models.append(segmenter.model.provenance)
        checks.append(segmenter_check(segmenter.model.card, mammogram, roi))
    timings["segment"] = time.perf_counter() - started
    check_roi(roi)
    card_path = Path(classifier_card or Path(directory or models_dir()) / f"{CLASSIFIER_IDS[kind]}.json")
    classifier = load_classifier(card_path)
    card = classifier.checked
    trained_kind = classifier.card.get("lesion_kind") or DEMO_KINDS.get(card["provenance"]["id"], kind)
    if trained_kind != kind:
        raise InputError(f"The classifier {card['provenance']['id']} was trained on {trained_kind} lesions, not on "
                         f"{kind} lesions; choose a {kind} model")
    check_radiomics_settings(card_path, trained=card["radiomics"])
    models.append({**card["provenance"], "card": str(card_path)} if classifier_card else card["provenance"])
    started = time.perf_counter()
    features = extract_2d(mammogram.image, roi)
    timings["features"] = time.perf_counter() - started
    warnings = notes + [text for text in [large_roi_warning(mammogram.pixels, roi)] if text]
    trained_mm = card["pixel_spacing_mm"]
    spacing_mm = mammogram.image.GetSpacing()[0]
    if trained_mm and abs(spacing_mm / trained_mm - 1) > 0.1:
        pixels = f"{spacing_mm:g} mm pixels" if mammogram.pixel_size_known else \
            f"no pixel size in its file (read as {spacing_mm:g} mm; give the pixel size: {pixel_hint})"
        warnings.append(f"The classifier was trained on {trained_mm:g} mm pixels but this image has {pixels}; size "
                        "and shape features differ with the pixel size. Interpret the Rad-score with caution.")
    values = np.array([features[name] for name in classifier.feature_names])
    rad_score = float(classifier.scores(values[None])[0])
    timings["classify"] = time.perf_counter() - started - timings["features"]
    checks.append(classifier_check(classifier.card, mammogram, features))
    return MammoPrediction(kind, roi, source, features, rad_score, card["cutoff"],
                           feature_contributions(classifier, values), models, timings, warnings, combine(checks),
                           assumed_mm)


def large_roi_warning(pixels: np.ndarray, roi: np.ndarray) -> str | None:
    """A warning when the ROI covers more than half of the image or of the breast (pixels brighter than 5 % of the
    grey range above the background), i.e. is not drawn around one lesion; None otherwise."""
    roi = roi > 0
    low, high = np.percentile(pixels, [1, 99.5])
    breast = pixels > low + 0.05 * (high - low)
    if roi.all():
        where = "the whole image"
    elif roi.mean() > LARGE_ROI:
        where = f"{roi.mean():.0%} of the image"
    elif breast.any() and np.count_nonzero(roi & breast) > LARGE_ROI * np.count_nonzero(breast):
        where = f"{np.count_nonzero(roi & breast) / np.count_nonzero(breast):.0%} of the breast"
    else:
        return None
    return (f"The ROI covers {where}; draw it around the lesion. The Rad-score describes a lesion only when the "
            "ROI outlines it")


def overlay_png(mammogram: Mammogram, prediction: MammoPrediction, path: str | os.PathLike) -> None:
    """The ROI's outline (orange) on the mammogram cropped around it, the Rad-score as title."""
    rows, cols = np.nonzero(prediction.roi)
    margin = 60
    r0, r1 = max(rows.min() - margin, 0), rows.max() + margin
    c0, c1 = max(cols.min() - margin, 0), cols.max() + margin
    crop = mammogram.pixels[r0:r1, c0:c1]
    outline_png(crop, [(prediction.roi[r0:r1, c0:c1], (255, 165, 0))], path,
                f"{prediction.kind}: Rad-score {prediction.rad_score:.3f} ({prediction.label})", width=440,
                window=(float(np.percentile(crop, 1)), float(np.percentile(crop, 99.5))))


def write_prediction(mammogram: Mammogram, prediction: MammoPrediction, out_dir, dicom: bool = False,
                     report: Explainer | None = None, keep_identifiers: bool = False) -> Path:
    """result.json, the ROI (.seg.nrrd, NIfTI) and the overlay PNG into `out_dir` at once; with `dicom` the DICOM
    SEG and SR too (`mammo.dicom`): the ROI is the reader's (MANUAL) when given as a mask, else the AI's; with
    `report` (the record's explanations) the case report (`report.html`). result.json records the image by its
    sha256, and its path only with `keep_identifiers` (a file name may name the patient)."""
    with atomic_output_dir(out_dir) as scratch:
        outputs = ["roi.seg.nrrd", "roi_labels.nii.gz", "overlay.png"]
        if dicom:
            from .dicom import write_prediction_dicom

            outputs += write_prediction_dicom(scratch, mammogram, prediction)
        labels = prediction.roi[None]
        write_seg_nrrd(labels, mammogram.image, (MAMMO_SEGMENTS[prediction.kind],), scratch / "roi.seg.nrrd")
        sitk.WriteImage(labelmap_image(labels, mammogram.image), str(scratch / "roi_labels.nii.gz"))
        overlay_png(mammogram, prediction, scratch / "overlay.png")
        outputs += [REPORT_FILE] if report is not None else []
        record = {**prediction.as_json(), "input": input_record(mammogram.path, keep_identifiers),
                  "image": mammogram.meta, "outputs": outputs}
        if report is not None:
            write_report(scratch, report_page(mammogram, prediction.roi, record, report))
        (scratch / "result.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return Path(out_dir) / "result.json"


def _numbers(text: str, option: str, form: str, example: str) -> list[float]:
    """The comma-separated finite numbers of a --point or --box, as many as `form` names."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != form.count(",") + 1 or not all(np.isfinite(values)):
        raise InputError(f"{option} takes {form} in pixels, e.g. {example}; got {text!r}")
    return values


def parse_point(text: str | None) -> tuple[float, float] | None:
    """'x,y' in pixels (column, row) -> (row, col)."""
    if not text:
        return None
    x, y = _numbers(text, "--point", "x,y", "812,1430")
    return y, x


def parse_box(text: str | None) -> tuple[int, int, int, int] | None:
    """'x0,y0,x1,y1' in pixels -> (row0, col0, row1, col1)."""
    if not text:
        return None
    x0, y0, x1, y1 = (int(round(v)) for v in _numbers(text, "--box", "x0,y0,x1,y1", "760,1380,880,1490"))
    return min(y0, y1), min(x0, x1), max(y0, y1), max(x0, x1)


def predict_file(image_path, kind: str, out_dir, point: str | None = None, box: str | None = None,
                 mask_path: str | None = None, pixel_mm: float | None = None, directory=None,
                 device: str = "auto", dicom: bool = False, report: Explainer | None = None,
                 keep_identifiers: bool = False) -> MammoPrediction:
    mammogram = load_mammogram(image_path, pixel_mm)
    mask = load_mask(mask_path, mammogram) if mask_path else None
    point, box = parse_point(point), parse_box(box)
    check_prompt(mammogram.pixels.shape, point, box)  # before the model is loaded
    prediction = predict_mammogram(mammogram, kind, point, box, mask, directory, device)
    write_prediction(mammogram, prediction, out_dir, dicom, report, keep_identifiers)
    return prediction
