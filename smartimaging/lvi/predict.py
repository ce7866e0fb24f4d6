"""`lvi predict`: LVI probability per model and sequence, their late fusion, and a Grad-CAM heat map per prediction
as a volume on the sequence's exact grid.

Fusion (beyond the paper): the unweighted mean of the available models' probabilities, and the label at the mean of
their training cutoffs. Grad-CAM (Selvaraju et al. 2017): the last convolutional block's activations weighted by the
mean gradient of the logit, ReLU, normalised to [0, 1], resampled from the network's box onto the input volume
(zero outside the box); 2D models give one map per tumour slice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn

from .. import __version__
from ..domain import check, check_card, combine, image_profile, summarise
from ..errors import InputError, ModelError
from ..io import atomic_output_dir, describe_geometry, read_series_or_volume, same_geometry, write_image, write_json
from ..models.nets import (
    MAX_SIDE,
    CardFieldError,
    card_choice,
    card_field,
    card_number,
    card_sizes,
    check_architecture,
    checked_card,
)
from ..models.registry import LoadedModel, load_model, read_card
from ..privacy import input_record
from ..record_report import REPORT_FILE, Explainer, write_report
from .preprocess import NetworkInput, Preprocessing, network_input, oversized_voi, voi_on_grid
from .report_page import ONE_MODEL, report_page

DEFAULT_MODELS = ("lvi-dce-resnet10-3d-demo", "lvi-t2-resnet10-3d-demo")


def last_convolutional_block(network: nn.Module) -> nn.Module:
    """The module whose output Grad-CAM explains: the last block before the classifier head."""
    if hasattr(network, "trunk"):
        return network.trunk[-1]  # ResNet10-3D: layer4
    if hasattr(network, "layer4"):
        return network.layer4  # MONAI ResNet10 (2D)
    return network.features  # VanillaCNN


def grad_cam(network: nn.Module, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (n,) and Grad-CAM maps upsampled to the input size (n, *spatial), each in [0, 1]."""
    saved = {}

    def keep(module, inputs, output):
        saved["activation"] = output
        output.register_hook(lambda gradient: saved.update(gradient=gradient))

    handle = last_convolutional_block(network).register_forward_hook(keep)
    try:
        network.eval()
        logits = network(batch.clone().requires_grad_(True))
        logits.sum().backward()
    finally:
        handle.remove()
    activation, gradient = saved["activation"].detach(), saved["gradient"].detach()
    weights = gradient.mean(dim=tuple(range(2, gradient.ndim)), keepdim=True)
    cam = torch.relu((weights * activation).sum(dim=1, keepdim=True))
    mode = "trilinear" if cam.ndim == 5 else "bilinear"
    cam = torch.nn.functional.interpolate(cam, size=batch.shape[2:], mode=mode, align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)
    cam = cam / peak.view(-1, *([1] * (cam.ndim - 1)))
    return torch.sigmoid(logits.detach())[:, 0].numpy(), cam.numpy()


@dataclass
class ModelPrediction:
    model: dict  # provenance
    sequence: str
    network: str
    probability: float
    cutoff: float
    heat_map: sitk.Image
    domain: dict = field(default_factory=dict)  # `smartimaging.domain.check` of this network's input

    @property
    def label(self) -> str:
        return "LVI positive" if self.probability >= self.cutoff else "LVI negative"


@dataclass
class LVIPrediction:
    models: list[ModelPrediction]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    fusion: dict | None = None  # a fitted fusion card (`lvi fuse`), else the mean of the models
    covariates: dict[str, float] = field(default_factory=dict)

    @property
    def fused_probability(self) -> float:
        if self.fusion is not None:
            from .fusion import fused_probability

            return fused_probability(self.fusion["fusion"], {m.model["id"]: m.probability for m in self.models},
                                     self.covariates)
        return float(np.mean([m.probability for m in self.models]))

    @property
    def fused_cutoff(self) -> float:
        if self.fusion is not None:
            return float(self.fusion["fusion"]["cutoff"])
        return float(np.mean([m.cutoff for m in self.models]))

    @property
    def fusion_method(self) -> str:
        if self.fusion is not None:
            return f"logistic regression on {', '.join(self.fusion['fusion']['inputs'])} ({self.fusion['id']})"
        return ONE_MODEL if len(self.models) == 1 else "mean of the models' probabilities"

    @property
    def domain(self) -> dict:
        """Every network's domain check, and the fusion's (its covariates) when a fitted fusion is used."""
        checks = [m.domain for m in self.models]
        if self.fusion is not None:
            checks.append(check(self.fusion.get("training_domain"), self.covariates, self.fusion["id"]))
        return combine(checks)

    def as_json(self) -> dict:
        return {"smartimaging_version": __version__, "seconds": self.seconds, "warnings": self.warnings,
                "domain": self.domain,
                "models": [{"model": m.model, "sequence": m.sequence, "network": m.network,
                            "probability": m.probability, "cutoff": m.cutoff, "label": m.label,
                            "domain": m.domain, "heat_map": f"gradcam_{m.model['id']}.nrrd"}
                           for m in self.models],
                "fused": {"probability": self.fused_probability, "cutoff": self.fused_cutoff,
                          "label": "LVI positive" if self.fused_probability >= self.fused_cutoff
                          else "LVI negative", "method": self.fusion_method,
                          "covariates": self.covariates}}


CLASSIFIER_DIMENSIONS = {"vanilla_cnn_2d": 2, "resnet10_3d_convpool": 3}  # MONAI ResNets: their spatial_dims
NETWORKS = {"vanilla2d": ("vanilla_cnn_2d", 2), "resnet10-2d": ("resnet10", 2),  # `training.model`: the network
            "resnet10-3d": ("resnet10_3d_convpool", 3)}  # that `lvi train` built (architecture name, dimensions)
MAX_MARGIN_MM = 100.0


def check_lvi_card(card: dict) -> Preprocessing:
    """Every field of a BreastLVI classifier card that prediction uses, bounded; the preprocessing it records.

    Sequence DCE or T2; a network of one input channel and one output (the LVI logit) whose dimensions match
    `inputs.dimensions`; margin 0-100 mm; box sizes 1-512 a side (2^24 voxels at most) and, for the networks built
    for one input size, equal to it; cutoff in [0, 1]; `training.model` (the network's name in results) one of
    NETWORKS, the one the architecture builds.
    """
    architecture = check_architecture(card_field(card, "architecture"))
    card_choice(card_field(card, "inputs.sequence"), "inputs.sequence", ("DCE", "T2"))
    dimensions = card_choice(card_field(card, "inputs.dimensions"), "inputs.dimensions", (2, 3))
    name = architecture["name"]
    built_for = CLASSIFIER_DIMENSIONS.get(name, architecture.get("spatial_dims", 2) if name.startswith("resnet")
                                          else None)
    if built_for is None:
        raise CardFieldError(f"architecture.name is {name!r}, not a BreastLVI classifier network")
    if built_for != dimensions:
        raise CardFieldError(f"inputs.dimensions is {dimensions} but the {name} network is {built_for}D")
    card_choice(architecture.get("in_channels", 1), "architecture.in_channels", (1,))
    card_choice(architecture.get("num_classes", 1), "architecture.num_classes", (1,))
    stored = card_field(card, "inputs.preprocessing")
    if not isinstance(stored, dict):
        raise CardFieldError(f"inputs.preprocessing is {stored!r}; expected an object")
    settings = Preprocessing(
        margin_mm=card_number(card_field(card, "inputs.preprocessing.margin_mm"), "inputs.preprocessing.margin_mm",
                              0.0, MAX_MARGIN_MM, " mm"),
        size_3d=card_sizes(card_field(card, "inputs.preprocessing.size_3d"), "inputs.preprocessing.size_3d", 3),
        size_2d=card_number(card_field(card, "inputs.preprocessing.size_2d"), "inputs.preprocessing.size_2d", 1,
                            MAX_SIDE, integer=True))
    if name == "resnet10_3d_convpool" and list(settings.size_3d) != list(architecture.get("input_size", [16, 64, 64])):
        raise CardFieldError(f"inputs.preprocessing.size_3d is {list(settings.size_3d)} but the network was built "
                             f"for {list(architecture.get('input_size', [16, 64, 64]))}")
    if name == "vanilla_cnn_2d" and settings.size_2d != architecture.get("input_size", 64):
        raise CardFieldError(f"inputs.preprocessing.size_2d is {settings.size_2d} but the network was built for "
                             f"{architecture.get('input_size', 64)}")
    card_number(card_field(card, "outputs.cutoff"), "outputs.cutoff", 0.0, 1.0)
    model = card_choice(card_field(card, "training.model"), "training.model", tuple(NETWORKS))
    if NETWORKS[model] != (name, dimensions):
        raise CardFieldError(f"training.model is {model!r} but the architecture is a {dimensions}D {name}")
    return settings


def load_lvi_model(model_id_or_card, directory=None, device: str = "cpu") -> LoadedModel:
    """A BreastLVI classifier (`lvi train`), its card checked (:func:`check_lvi_card`) before the network is built;
    other models' cards (a segmenter, a bone-scan model...) and edited fields are refused."""
    card, card_path = read_card(model_id_or_card, directory)
    if card.get("task") != "lvi":
        raise ModelError(f"{card.get('id', model_id_or_card)} is not a BreastLVI classifier (task "
                         f"{card.get('task')!r}); give a model written by `lvi train`, e.g. lvi-dce-resnet10-3d-demo")
    checked_card(card_path.name, check_lvi_card, card)
    model = load_model(card_path, device=device)
    checked_card(card_path.name, check_lvi_card, model.card)  # the card the network was built from
    return model


def _settings(card: dict) -> Preprocessing:
    """The preprocessing a (checked) BreastLVI card records."""
    return checked_card(f"{card.get('id')}.json", check_lvi_card, card)


def domain_profile(prepared: NetworkInput, volume: sitk.Image, voi: sitk.Image) -> dict[str, float]:
    """Domain-check quantities (`smartimaging.domain`) of a network input: the z-scored box on its grid, the volume's
    own voxel size and the VOI's equivalent diameter."""
    box_x, box_y, box_z = prepared.grid.GetSpacing()
    source = volume.GetSpacing()
    voi_voxels = int(np.count_nonzero(sitk.GetArrayFromImage(voi_on_grid(volume, voi))))
    voi_mm = (6 * voi_voxels * float(np.prod(source)) / np.pi) ** (1 / 3)
    return image_profile(prepared.array, (box_z, box_y, box_x), source_pixel_size_mm=(source[0] + source[1]) / 2,
                         source_slice_spacing_mm=source[2], lesion_diameter_mm=voi_mm)


def training_domain(manifest_path, split: str | None, card: dict, data: str) -> dict:
    """`training_domain` for a BreastLVI classifier card: its sequence's network inputs of a manifest's `split` rows."""
    from ..manifest import read_manifest
    from .cohort import SEQUENCES, manifest_file

    sequence, dimensions = card["inputs"]["sequence"], card["inputs"]["dimensions"]
    manifest = read_manifest(manifest_path, required=("patient_id", SEQUENCES[sequence], "voi"))
    rows = manifest.subset(split) if split else manifest.rows
    profiles = []
    for row in rows:
        volume = read_series_or_volume(manifest_file(manifest, row, SEQUENCES[sequence]))
        voi = read_series_or_volume(manifest_file(manifest, row, "voi"))
        prepared = network_input(volume, voi, dimensions, _settings(card), f"{sequence} volume")
        profiles.append(domain_profile(prepared, volume, voi))
    return summarise(profiles, f"{len(rows)} {sequence} cases: {data}")


def predict_with_model(model: LoadedModel, volume: sitk.Image, voi: sitk.Image) -> ModelPrediction:
    card = model.card
    dimensions = card["inputs"]["dimensions"]
    prepared = network_input(volume, voi, dimensions, _settings(card), f"{card['inputs']['sequence']} volume")
    batch = torch.from_numpy(prepared.array)[None, None] if dimensions == 3 else \
        torch.from_numpy(prepared.array)[:, None]
    probabilities, maps = grad_cam(model.network, batch.to(next(model.network.parameters()).device))
    if not np.all(np.isfinite(probabilities)) or not np.all(np.isfinite(maps)):
        raise ModelError(f"The model {card['id']} gave no valid probability for this case (NaN); check its weights")
    on_grid = np.zeros(sitk.GetArrayViewFromImage(prepared.grid).shape, np.float32)
    if dimensions == 3:
        on_grid[:] = maps[0]
    else:
        on_grid[prepared.kept_slices] = maps
    box = sitk.GetImageFromArray(on_grid)
    box.CopyInformation(prepared.grid)
    heat_map = sitk.Resample(box, volume, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return ModelPrediction(model.provenance, card["inputs"]["sequence"], card["training"]["model"],
                           float(probabilities.mean()), float(card["outputs"]["cutoff"]), heat_map,
                           check_card(card, domain_profile(prepared, volume, voi)))


def predict_case(volumes: dict[str, sitk.Image], voi: sitk.Image, model_ids=DEFAULT_MODELS, directory=None,
                 device: str = "cpu", loader=load_lvi_model, progress=None) -> LVIPrediction:
    """Every model whose sequence is among `volumes` ("DCE", "T2"); the VOI is mapped onto each sequence's grid.
    `loader` (signature of :func:`load_lvi_model`) lets a warm worker hand out models it already loaded;
    `progress(fraction, message)` hears which model runs ("model 2 of 2 (lvi-t2-...)"). A model given by its card
    (a model trained on a cohort) names that card in its provenance."""
    started = time.perf_counter()
    models = [(model_id, loader(model_id, directory, device)) for model_id in model_ids]
    ids = [model.card["id"] for _, model in models]
    twice = sorted({model for model in ids if ids.count(model) > 1})
    if twice:  # its probability would count twice in the fused result
        raise InputError(f"The model {twice[0]} is named twice; name each model once")
    usable = [(model_id, m) for model_id, m in models if m.card["inputs"]["sequence"] in volumes]
    if not usable:
        raise InputError(f"No model for the sequences given ({', '.join(volumes)})")
    warnings = []
    reference_name, reference = next(iter(volumes.items()))
    for name, volume in volumes.items():
        if not same_geometry(volume, reference):
            warnings.append(f"{name} ({describe_geometry(volume)}) is on another grid than {reference_name} "
                            f"({describe_geometry(reference)}); the VOI was mapped onto it in physical space")
        spacing = volume.GetSpacing()
        if max(spacing) > 4 * min(spacing):
            warnings.append(f"{name} is strongly anisotropic ({' x '.join(f'{s:g}' for s in spacing)} mm); the box "
                            "is resampled to the network's grid, fine detail across slices is interpolated")
    predictions = []
    for index, (model_id, model) in enumerate(usable):
        if progress is not None:
            progress(index / len(usable), f"model {index + 1} of {len(usable)} ({model.card['id']})")
        prediction = predict_with_model(model, volumes[model.card["inputs"]["sequence"]], voi)
        if str(model_id).endswith(".json"):
            prediction.model = {**prediction.model, "card": str(model_id)}
        predictions.append(prediction)
    warnings += filter(None, [oversized_voi(reference, voi, reference_name)])
    return LVIPrediction(predictions, warnings, time.perf_counter() - started)


def predict_files(sequences: dict[str, str | os.PathLike], voi_path: str | os.PathLike, out_dir,
                  model_ids=DEFAULT_MODELS, directory=None, device: str = "cpu", fusion_card=None,
                  covariates: dict[str, float] | None = None, loader=load_lvi_model, compress: bool = True,
                  progress=None, dicom: bool = False, report: Explainer | None = None,
                  keep_identifiers: bool = False) -> LVIPrediction:
    """Read the sequences and the VOI, predict, write result.json and the Grad-CAM volumes (all or nothing;
    `compress=False` for volumes read back at once, as the worker's are); `progress` as for `predict_case`. With
    `dicom`, the DICOM SEG of the VOI (the reader's: MANUAL) and the SR on the DCE, else the T2 (`lvi.dicom`); with
    `report` (the record's explanations), the case report (`report.html`). result.json records the sequences and
    the VOI by their sha256, and their paths only with `keep_identifiers` (a file or folder name may name the
    patient)."""
    from .fusion import read_fusion

    volumes = {name: read_series_or_volume(path) for name, path in sequences.items() if path}
    if not volumes:
        raise InputError("Give at least one sequence (--dce and/or --t2)")
    fusion = read_fusion(fusion_card) if fusion_card else None
    if fusion is not None:
        model_ids = [name for name in fusion["fusion"]["inputs"] if name not in (covariates or {})]
    voi = read_series_or_volume(voi_path)
    prediction = predict_case(volumes, voi, model_ids, directory, device, loader, progress)
    prediction.fusion, prediction.covariates = fusion, dict(covariates or {})
    record = prediction.as_json()  # fails here, before anything is written, when the fusion lacks an input
    with atomic_output_dir(out_dir) as scratch:
        for model in prediction.models:
            write_image(model.heat_map, scratch / f"gradcam_{model.model['id']}.nrrd", compress)
        if dicom:
            from .dicom import write_prediction_dicom

            record["outputs"] = [item["heat_map"] for item in record["models"]] + \
                write_prediction_dicom(scratch, volumes, sequences, voi, record)
        if report is not None:
            record["outputs"] = record.get("outputs", [item["heat_map"] for item in record["models"]]) + [REPORT_FILE]
        record = {**record, "inputs": {k: input_record(v, keep_identifiers) for k, v in sequences.items() if v},
                  "voi": input_record(voi_path, keep_identifiers)}
        if report is not None:
            write_report(scratch, report_page(volumes, voi, {m.model["id"]: m.heat_map for m in prediction.models},
                                              record, report))
        write_json(scratch / "result.json", record)
    return prediction
