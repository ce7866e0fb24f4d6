"""Bone-scan inference: network input, ResNet34 crop classification, U-Net segmentation, BSTBI, lesion list.

Network input: each view is resized (bilinear) to 1024×256 (rows × columns) and divided by its 99.5th count
percentile, clipped to [0, 4]. The classifier sees seven 256×256 crops per view (stride 128 rows); the case
probability is the maximum over crops and views, compared with the cutoff in the classifier's card. The U-Net
labels every pixel (0 background, 1 metastasis, 2 bladder); its logits are resized back to the original grid
before the argmax. Both cards are checked before their networks are built (:func:`check_classifier_card`,
:func:`check_segmenter_card`): the sizes above are this module's, a card recording others is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .. import __version__
from ..domain import check_parts, combine, image_profile, summarise, unknown
from ..errors import InputError
from ..models import LoadedModel, load_model
from ..models.nets import (
    CardFieldError,
    card_choice,
    card_field,
    card_number,
    card_sizes,
    check_architecture,
    checked_card,
    pick_device,
    prepare_for_inference,
)
from ..models.registry import read_card
from .bstbi import GREY_LEVEL_SETTINGS, K_SCALING, UPPER_PERCENTILE, study_bstbi
from .lesions import BLADDER, LESION, exclude_lesions, lesion_components, lesion_counts
from .views import BoneScanStudy

NET_ROWS, NET_COLS, CROP, CROP_STRIDE = 1024, 256, 256, 128
CLASSIFIER_ID, SEGMENTER_ID = "bonescan-resnet34-demo", "bonescan-unet-demo"
PAPER_THRESHOLD = 0.5
CASE_THRESHOLD_KEY = "case metastasis (Youden on validation cases)"
MIN_LESION_PIXELS = 3


def network_input(counts: np.ndarray) -> np.ndarray:
    """View counts -> normalised float32 array of NET_ROWS × NET_COLS."""
    tensor = torch.from_numpy(np.ascontiguousarray(counts, dtype=np.float32))[None, None]
    resized = F.interpolate(tensor, size=(NET_ROWS, NET_COLS), mode="bilinear", align_corners=False)[0, 0].numpy()
    scale = float(np.percentile(resized, 99.5))
    if scale <= 0:
        raise InputError("The image has almost no counts; it cannot be a whole-body bone scan")
    return np.clip(resized / scale, 0.0, 4.0).astype(np.float32)


def domain_profile(counts: np.ndarray, pixel_mm: tuple[float, float]) -> dict[str, float]:
    """Domain-check quantities (`smartimaging.domain`) of one view as both networks see it; `pixel_mm` is the view's
    (row, column) pixel size."""
    spacing = (counts.shape[0] * pixel_mm[0] / NET_ROWS, counts.shape[1] * pixel_mm[1] / NET_COLS)
    return image_profile(network_input(counts), spacing, source_pixel_size_mm=float(np.mean(pixel_mm)),
                         peak_counts=float(np.percentile(counts, 99.5)))


def study_profiles(study: BoneScanStudy) -> list[dict[str, float]]:
    """`domain_profile` of every view of a study."""
    spacing = pixel_spacing(study)
    return [domain_profile(view.counts, spacing[view.name]) for view in study.views]


def domain_check(study: BoneScanStudy, cards: list[dict]) -> dict:
    """Every view of a study against the training data of each model card (`smartimaging.domain`)."""
    profiles = dict(zip([f"{v.name} view" for v in study.views], study_profiles(study), strict=True))
    return combine([check_parts(card, profiles) for card in cards])


def training_domain(manifest_path, split: str | None, data: str) -> dict:
    """`training_domain` for a bone-scan model card: the views of a manifest's `split` rows (all when None)."""
    from ..manifest import read_manifest
    from .views import load_bone_scan

    manifest = read_manifest(manifest_path)
    rows = manifest.subset(split) if split else manifest.rows
    profiles = [p for row in rows for p in study_profiles(load_bone_scan([manifest.resolve(row["image"])]))]
    return summarise(profiles, f"{len(profiles)} views of {len(rows)} cases: {data}")


def crop_offsets() -> list[int]:
    return list(range(0, NET_ROWS - CROP + 1, CROP_STRIDE))


def crops_of(x: np.ndarray) -> np.ndarray:
    """(n_crops, 1, CROP, CROP) crops of a network input."""
    return np.stack([x[r:r + CROP, :CROP] for r in crop_offsets()])[:, None]


def clean_labelmap(labels: np.ndarray) -> np.ndarray:
    """Keep the largest bladder component; drop lesion specks smaller than MIN_LESION_PIXELS."""
    labels = labels.copy()
    bladder, n = ndimage.label(labels == BLADDER)
    if n > 1:
        sizes = ndimage.sum(np.ones_like(bladder), bladder, range(1, n + 1))
        labels[(bladder > 0) & (bladder != 1 + int(np.argmax(sizes)))] = 0
    lesions, n = ndimage.label(labels == LESION)
    if n:
        sizes = ndimage.sum(np.ones_like(lesions), lesions, range(1, n + 1))
        small = np.isin(lesions, 1 + np.flatnonzero(sizes < MIN_LESION_PIXELS))
        labels[small] = 0
    return labels


def parse_lesion_ids(text: str) -> list[int]:
    """Lesion ids typed by the reader, e.g. "2, 5" (what was typed is echoed shortened to 40 characters)."""
    shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        if any(len(part) > 9 for part in parts):  # no case has a billion lesions
            raise ValueError(text)
        return [int(part) for part in parts]
    except ValueError as exc:
        raise InputError(f"Lesions to exclude are numbers separated by commas, e.g. 2,5; got {shown}") from exc


def _same_sizes(card: dict, path: str, expected: list[int], count: int) -> None:
    """A size the pipeline does not read from the card but hard-codes: the card must record the same."""
    sizes = card_sizes(card_field(card, path), path, count, high=4096)
    if list(sizes) != expected:
        raise CardFieldError(f"{path} is {list(sizes)}; expected {expected} (the network input this version of "
                             "SmartImaging computes)")


def check_classifier_card(card: dict) -> float:
    """The fields of a bone-scan crop classifier card that inference uses; returns the case threshold.

    Task 'bonescan-classifier'; a 2D ResNet of one input channel and two outputs (metastasis, bladder); the network
    input of this pipeline (1024×256, 256×256 crops every 128 rows); every threshold in [0, 1].
    """
    if card.get("task") != "bonescan-classifier":
        raise CardFieldError(f"task is {card.get('task')!r}; expected 'bonescan-classifier'")
    architecture = check_architecture(card_field(card, "architecture"))
    card_choice(architecture["name"], "architecture.name", ("resnet10", "resnet18", "resnet34"))
    card_choice(architecture.get("spatial_dims", 2), "architecture.spatial_dims", (2,))
    card_choice(architecture.get("in_channels", 1), "architecture.in_channels", (1,))
    card_choice(architecture.get("num_classes"), "architecture.num_classes", (2,))
    _same_sizes(card, "inputs.size_rows_cols", [NET_ROWS, NET_COLS], 2)
    _same_sizes(card, "inputs.crop", [CROP, CROP], 2)
    card_choice(card_field(card, "inputs.crop_stride_rows"), "inputs.crop_stride_rows", (CROP_STRIDE,))
    thresholds = card_field(card, "outputs.thresholds", {})
    if not isinstance(thresholds, dict):
        raise CardFieldError(f"outputs.thresholds is {thresholds!r}; expected an object of thresholds")
    for key, value in thresholds.items():
        card_number(value, f"outputs.thresholds[{key!r}]", 0.0, 1.0)
    return float(thresholds.get(CASE_THRESHOLD_KEY, PAPER_THRESHOLD))


def check_segmenter_card(card: dict) -> None:
    """The fields of a bone-scan U-Net card that inference uses: task 'bonescan-segmenter', a 2D U-Net of one input
    channel and three outputs (background, metastasis, bladder), the 1024×256 network input of this pipeline."""
    if card.get("task") != "bonescan-segmenter":
        raise CardFieldError(f"task is {card.get('task')!r}; expected 'bonescan-segmenter'")
    architecture = check_architecture(card_field(card, "architecture"))
    card_choice(architecture["name"], "architecture.name", ("basic_unet",))
    card_choice(architecture.get("spatial_dims", 2), "architecture.spatial_dims", (2,))
    card_choice(architecture.get("in_channels", 1), "architecture.in_channels", (1,))
    card_choice(architecture.get("out_channels"), "architecture.out_channels", (3,))
    _same_sizes(card, "inputs.size_rows_cols", [NET_ROWS, NET_COLS], 2)


def _load_checked(model_id: str, check, directory, device) -> LoadedModel:
    card, card_path = read_card(model_id, directory)
    checked_card(card_path.name, check, card)
    model = load_model(card_path, device=device)
    checked_card(card_path.name, check, model.card)
    return model


@dataclass
class BoneScanModels:
    classifier: LoadedModel
    segmenter: LoadedModel
    device: torch.device
    channels_last: bool = False  # set when the networks were prepared for CPU inference

    @classmethod
    def load(cls, classifier: str = CLASSIFIER_ID, segmenter: str = SEGMENTER_ID, directory=None,
             device: str = "auto") -> BoneScanModels:
        chosen = pick_device(device)
        loaded = [_load_checked(model_id, check, directory, chosen) for model_id, check in
                  ((classifier, check_classifier_card), (segmenter, check_segmenter_card))]
        for model in loaded:
            model.network = prepare_for_inference(model.network, chosen)
        return cls(*loaded, chosen, channels_last=chosen.type == "cpu")

    def domain_check(self, study: BoneScanStudy) -> dict:
        return domain_check(study, [self.classifier.card, self.segmenter.card])

    def to_network_tensor(self, array: np.ndarray) -> torch.Tensor:
        """A (batch, channel, rows, cols) array as a tensor on the models' device and memory format."""
        tensor = torch.from_numpy(array).to(self.device)
        return tensor.contiguous(memory_format=torch.channels_last) if self.channels_last else tensor

    @property
    def provenance(self) -> list[dict]:
        return [self.classifier.provenance, self.segmenter.provenance]

    @property
    def case_threshold(self) -> float:
        """Case-level metastasis cutoff from the classifier's card (the paper's 0.5 when the card has none)."""
        return checked_card(f"{self.classifier.card.get('id')}.json", check_classifier_card, self.classifier.card)

    @torch.inference_mode()
    def classify(self, x: np.ndarray) -> np.ndarray:
        """Sigmoid probabilities (n_crops, 2): metastasis, bladder."""
        batch = self.to_network_tensor(crops_of(x))
        return torch.sigmoid(self.classifier.network(batch)).float().cpu().numpy()

    @torch.inference_mode()
    def segment(self, x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Label map (0/1/2) on the original `shape` grid."""
        logits = self.segmenter.network(self.to_network_tensor(x[None, None])).float()
        logits = F.interpolate(logits, size=shape, mode="bilinear", align_corners=False)
        return clean_labelmap(logits.argmax(1)[0].cpu().numpy().astype(np.uint8))


MAX_PLAUSIBLE_LESION_SHARE = 0.25  # the whole skeleton covers about a fifth of a whole-body view


@dataclass
class BoneScanResult:
    views: list[str]
    crop_probabilities: dict[str, list[list[float]]]
    metastasis_probability: float | None  # None when recomputed from a mask without the networks
    bladder_probability: float | None
    labelmaps: dict[str, np.ndarray]
    lesions: list[dict]
    bstbi: dict
    timings: dict[str, float]
    models: list[dict]
    excluded_lesions: list[int] = field(default_factory=list)
    reader_edited: bool = False
    edit_dice: dict[str, float] = field(default_factory=dict)
    device: str = ""
    threshold: float | None = None  # the classifier card's case cutoff (`case_threshold`); None: no classifier ran
    domain: dict = field(default_factory=lambda: combine([unknown("networks", "not run on this result")]))
    unrecorded_views: list[str] = field(default_factory=list)  # BoneScanStudy.unrecorded_views
    proposed_labelmaps: dict[str, np.ndarray] | None = None  # before the reader's rejections (None: none rejected)

    @property
    def metastasis_suspected(self) -> bool | None:
        if self.metastasis_probability is None or self.threshold is None:
            return None
        return self.metastasis_probability >= self.threshold

    @property
    def warnings(self) -> list[str]:
        """What the reader should check before trusting the BSTBI: a metastasis segment implausibly large for a
        skeleton, or networks that suspect metastases where none is segmented."""
        found = []
        for view, labels in self.labelmaps.items():
            share = float(np.mean(labels == LESION))
            if share > MAX_PLAUSIBLE_LESION_SHARE:
                found.append(f"The metastasis segment covers {share:.0%} of the {view} view, more than a whole "
                             "skeleton; BSTBI is meaningful only when the lesions are outlined: check the segmentation")
        lesion_pixels = sum(int(np.count_nonzero(labels == LESION)) for labels in self.labelmaps.values())
        if self.metastasis_suspected and lesion_pixels == 0:
            found.append(f"The networks suspect metastases (probability {self.metastasis_probability:.2f}) but no "
                         "lesion is segmented, so BSTBI is 0: review the scan and outline the lesions")
        return found

    @property
    def lesion_counts(self) -> dict:
        """Accepted lesions per view, the reader's rejections and the matched sites (`lesions.lesion_counts`)."""
        return lesion_counts(self.lesions, self.excluded_lesions, self.views)

    def as_json(self) -> dict:
        return {
            "smartimaging_version": __version__,
            "views": self.views,
            "metastasis_probability": self.metastasis_probability,
            "metastasis_suspected": self.metastasis_suspected,
            "bladder_probability": self.bladder_probability,
            "threshold": self.threshold,
            "parameters": {"k": K_SCALING, "grey_levels": GREY_LEVEL_SETTINGS, "upper_percentile": UPPER_PERCENTILE,
                           "case_threshold": self.threshold, "min_lesion_pixels": MIN_LESION_PIXELS},
            "device": self.device,
            "crop_probabilities": self.crop_probabilities,
            "bstbi": self.bstbi,
            "lesions": [{k: v for k, v in c.items() if not k.startswith("_")} for c in self.lesions],
            "excluded_lesions": self.excluded_lesions,
            "lesion_counts": self.lesion_counts,
            "reader_edited": self.reader_edited,
            "dice_ai_vs_edited": self.edit_dice,
            "models": self.models,
            "timings_s": self.timings,
            "warnings": self.warnings,
            "domain": self.domain,
            "unrecorded_views": self.unrecorded_views,
        }


def _view_counts(study: BoneScanStudy) -> dict[str, np.ndarray]:
    return {v.name: v.counts for v in study.views}


def bstbi_from_labelmaps(study: BoneScanStudy, labelmaps: dict[str, np.ndarray]) -> dict:
    return study_bstbi(_view_counts(study), {v: m == LESION for v, m in labelmaps.items()},
                       {v: m == BLADDER for v, m in labelmaps.items()}, K_SCALING)


def recompute_from_labelmaps(study: BoneScanStudy, labelmaps: dict[str, np.ndarray],
                             exclude: list[int] | None = None) -> BoneScanResult:
    """BSTBI from the reader's label maps (edited or drawn), without running the networks."""
    lesions = lesion_components(labelmaps, _view_counts(study), pixel_spacing(study))
    proposed = labelmaps if exclude else None
    if exclude:
        labelmaps = exclude_lesions(labelmaps, lesions, exclude)
    return BoneScanResult(views=[v.name for v in study.views], unrecorded_views=list(study.unrecorded_views),
                          crop_probabilities={}, metastasis_probability=None,
                          bladder_probability=None, labelmaps=labelmaps, lesions=lesions,
                          bstbi=bstbi_from_labelmaps(study, labelmaps), timings={}, models=[],
                          excluded_lesions=sorted(exclude or []), reader_edited=True, proposed_labelmaps=proposed)


def pixel_spacing(study: BoneScanStudy) -> dict[str, tuple[float, float]]:
    """(row, column) pixel size in mm per view."""
    return {v.name: (study.images[v.source].GetSpacing()[1], study.images[v.source].GetSpacing()[0])
            for v in study.views}


def analyse(study: BoneScanStudy, models: BoneScanModels, exclude: list[int] | None = None,
            load_seconds: float = 0.0, progress=None) -> BoneScanResult:
    """Classify, segment and compute BSTBI for every view of a study; `progress(fraction, message)` is optional."""
    timings = {"load": load_seconds, "classify": 0.0, "segment": 0.0, "bstbi": 0.0}
    crop_probabilities, labelmaps = {}, {}
    for index, view in enumerate(study.views):
        where = f"{view.name} view {index + 1} of {len(study.views)}"
        x = network_input(view.counts)
        if progress is not None:
            progress(index / (len(study.views) + 1), f"{where}, network 1 of 2 (metastasis classifier)")
        started = time.perf_counter()
        crop_probabilities[view.name] = models.classify(x)
        timings["classify"] += time.perf_counter() - started
        if progress is not None:
            progress((index + 0.5) / (len(study.views) + 1), f"{where}, network 2 of 2 (lesion segmenter)")
        started = time.perf_counter()
        labelmaps[view.name] = models.segment(x, view.counts.shape)
        timings["segment"] += time.perf_counter() - started
        if progress is not None:
            progress(len(labelmaps) / (len(study.views) + 1), f"{view.name} view classified and segmented")
    started = time.perf_counter()
    lesions = lesion_components(labelmaps, _view_counts(study), pixel_spacing(study))
    proposed = labelmaps if exclude else None
    if exclude:
        labelmaps = exclude_lesions(labelmaps, lesions, exclude)
    index = bstbi_from_labelmaps(study, labelmaps)
    timings["bstbi"] = time.perf_counter() - started
    timings["total"] = sum(timings.values())
    all_probabilities = np.concatenate(list(crop_probabilities.values()))
    return BoneScanResult(
        views=[v.name for v in study.views], unrecorded_views=list(study.unrecorded_views),
        crop_probabilities={k: np.round(v, 4).tolist() for k, v in crop_probabilities.items()},
        metastasis_probability=float(all_probabilities[:, 0].max()),
        bladder_probability=float(all_probabilities[:, 1].max()),
        labelmaps=labelmaps, lesions=lesions, bstbi=index, timings=timings,
        models=models.provenance, excluded_lesions=sorted(exclude or []), device=str(models.device),
        threshold=models.case_threshold, domain=models.domain_check(study), proposed_labelmaps=proposed,
    )
