"""Semi-automatic lesion VOI for BreastLVI: the reader clicks the lesion (or draws a box) and a 3D U-Net (MONAI
BasicUNet) segments it.

A fixed physical patch (PATCH_SIZE voxels of PATCH_SPACING mm) is resampled around the click (or the box's centre),
z-scored over its tissue like the LVI networks' input, and the network segments the lesion at the patch centre. The
probabilities (averaged over the patch's in-plane mirror images) are resampled back onto the volume's grid (linear),
thresholded at the card's threshold (0.5), and the connected component at (or nearest to) the click is kept. The
patch is then cut again around that component's centroid and the two probability maps are averaged, so that a click
off the lesion's centre gives nearly the VOI of a central click. One model serves DCE and FS-T2WI. The card's fields
are checked before the network is built (:func:`check_segmenter_card`).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..domain import check, image_profile
from ..errors import InputError
from ..evaluation import dice
from ..io import read_series_or_volume
from ..manifest import read_manifest
from ..models.nets import (
    CardFieldError,
    build_network,
    card_choice,
    card_field,
    card_number,
    card_sizes,
    check_architecture,
    checked_card,
    mirror_averaged,
    pick_device,
)
from ..models.registry import load_model, read_card, save_model
from ..training import ProgressCallback, TrainConfig, fit
from .cohort import manifest_file
from .preprocess import _zscore_tissue, check_mr_volume, check_values

SEGMENTER_ID = "lvi-lesion-unet-demo"
PATCH_SIZE = (16, 64, 64)  # slices, rows, cols
PATCH_SPACING = (1.0, 1.0, 2.0)  # x, y, z in mm: 64 x 64 x 32 mm around the click
MAX_CLICK_DISTANCE_MM = 3.0  # a component farther from the click is not the clicked lesion
CLASSICAL_MAX_RADIUS_MM = 30.0  # the fallback's region growing stays within this distance of the click
AI_SOURCE, CLASSICAL_SOURCE = "AI", "classical (AI found none)"  # as segmentation_nodes.AI / CLASSICAL
ARCHITECTURE = {"name": "basic_unet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                "features": [8, 16, 32, 64, 128, 8], "act": "relu", "norm": "batch"}


def patch_grid(volume: sitk.Image, centre_lps: tuple[float, float, float]) -> sitk.Image:
    """The fixed physical patch centred on a point, with the volume's direction."""
    grid = sitk.Image(list(PATCH_SIZE[::-1]), sitk.sitkFloat32)
    grid.SetSpacing(PATCH_SPACING)
    grid.SetDirection(volume.GetDirection())
    direction = np.array(volume.GetDirection()).reshape(3, 3)
    half = (np.array(PATCH_SIZE[::-1]) - 1) / 2 * np.array(PATCH_SPACING)
    grid.SetOrigin(tuple(np.array(centre_lps) - direction @ half))
    return grid


def patch_input(volume: sitk.Image, centre_lps) -> tuple[np.ndarray, sitk.Image]:
    grid = patch_grid(volume, centre_lps)
    patch = sitk.Resample(sitk.Cast(volume, sitk.sitkFloat32), grid, sitk.Transform(), sitk.sitkLinear, 0.0)
    return _zscore_tissue(sitk.GetArrayFromImage(patch)), grid


def check_inside(volume: sitk.Image, point_lps) -> None:
    index = volume.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in point_lps))
    if not all(-0.5 <= i <= s - 0.5 for i, s in zip(index, volume.GetSize(), strict=True)):
        raise InputError("The marked point lies outside the volume; click on the lesion")


def check_segmenter_card(card: dict) -> float:
    """The fields of a lesion U-Net card that segmentation uses; returns its threshold.

    A 3D U-Net of one input channel and two outputs (background, lesion); the patch it was trained on must be the one
    this version cuts (PATCH_SIZE voxels of PATCH_SPACING mm); threshold in [0, 1].
    """
    if card.get("task") != "lvi-lesion-segmentation":
        raise CardFieldError(f"task is {card.get('task')!r}; expected 'lvi-lesion-segmentation' (a lesion U-Net "
                             "written by `lvi train-segmenter`)")
    architecture = check_architecture(card_field(card, "architecture"))
    card_choice(architecture["name"], "architecture.name", ("basic_unet",))
    card_choice(architecture.get("spatial_dims", 2), "architecture.spatial_dims", (3,))
    card_choice(architecture.get("in_channels", 1), "architecture.in_channels", (1,))
    card_choice(architecture.get("out_channels"), "architecture.out_channels", (2,))
    size = card_sizes(card_field(card, "inputs.patch_size_zyx"), "inputs.patch_size_zyx", 3)
    if size != PATCH_SIZE:
        raise CardFieldError(f"inputs.patch_size_zyx is {list(size)}; expected {list(PATCH_SIZE)} (the patch this "
                             "version of SmartImaging cuts)")
    spacing = card_field(card, "inputs.patch_spacing_xyz_mm")
    if not isinstance(spacing, list | tuple) or len(spacing) != 3 or tuple(
            card_number(v, "inputs.patch_spacing_xyz_mm", 0.0, 100.0, " mm", low_open=True) for v in spacing
    ) != PATCH_SPACING:
        raise CardFieldError(f"inputs.patch_spacing_xyz_mm is {spacing!r}; expected {list(PATCH_SPACING)} mm (the "
                             "patch this version of SmartImaging cuts)")
    return card_number(card_field(card, "outputs.threshold", 0.5), "outputs.threshold", 0.0, 1.0)


class NoLesionFoundError(InputError):
    """The U-Net found no lesion at the click."""


def patch_profile(array: np.ndarray, volume: sitk.Image, lesion: np.ndarray | None = None) -> dict[str, float]:
    """Domain-check quantities (`smartimaging.domain`) of the U-Net's input: the z-scored patch, the volume's own
    voxel size, and the lesion in the patch when given."""
    source = volume.GetSpacing()
    return image_profile(array, PATCH_SPACING[::-1], lesion, source_pixel_size_mm=(source[0] + source[1]) / 2,
                         source_slice_spacing_mm=source[2])


class LesionSegmenter:
    def __init__(self, network: torch.nn.Module, device: torch.device, provenance: dict | None = None,
                 threshold: float = 0.5, training_domain: dict | None = None):
        self.network, self.device, self.provenance, self.threshold = network, device, provenance, threshold
        self.training_domain = training_domain

    @classmethod
    def load(cls, directory=None, device: str = "cpu", model_id: str = SEGMENTER_ID) -> LesionSegmenter:
        """The lesion U-Net, its card checked (:func:`check_segmenter_card`) before the network is built."""
        device = pick_device(device)
        card, card_path = read_card(model_id, directory)
        checked_card(card_path.name, check_segmenter_card, card)
        model = load_model(card_path, device=device)
        threshold = checked_card(card_path.name, check_segmenter_card, model.card)
        return cls(model.network, device, model.provenance, threshold, model.card.get("training_domain"))

    def segment(self, volume: sitk.Image, point_lps=None, box_lps=None) -> sitk.Image:
        """Binary lesion mask (uint8) on the volume's grid from a click (LPS mm) or a box (two LPS corners)."""
        if point_lps is None and box_lps is None:
            raise InputError("Mark the lesion with a point or a box")
        centre = np.array(point_lps if point_lps is not None else np.mean(box_lps, axis=0), float)
        check_mr_volume(volume)
        check_inside(volume, centre)
        check_values(volume, "volume")
        probability = self._probability_on(volume, centre)
        first = clicked_component(probability > self.threshold, centre)
        if first is None:
            raise NoLesionFoundError("The model found no lesion at this point; click inside the lesion or draw the VOI")
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(first)
        recentred = (probability + self._probability_on(volume, stats.GetCentroid(1))) / 2
        return clicked_component(recentred > self.threshold, centre) or first

    def _probability_on(self, volume: sitk.Image, centre_lps) -> sitk.Image:
        """Lesion probability on the volume's grid (0 outside the patch) from the patch centred on a point, averaged
        over the patch and its in-plane mirror images."""
        array, grid = patch_input(volume, np.asarray(centre_lps, float))
        probability = mirror_averaged(self._probabilities, array[None], (2, 3))  # (channel, slice, row, col)
        patch = sitk.GetImageFromArray(probability.astype(np.float32))
        patch.CopyInformation(grid)
        return sitk.Resample(patch, volume, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)

    @torch.inference_mode()
    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Lesion probability of every voxel of a batch of patches (n, 1, slices, rows, cols)."""
        tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        return torch.softmax(self.network(tensor), 1)[:, 1].cpu().numpy()

    def domain_check(self, volume: sitk.Image, point_lps, mask: sitk.Image | None = None) -> dict:
        """`smartimaging.domain.check` of the patch at a click (and of the VOI in it) against the card."""
        array, grid = patch_input(volume, np.asarray(point_lps, float))
        lesion = None if mask is None else sitk.GetArrayFromImage(sitk.Resample(
            mask, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
        return check(self.training_domain, patch_profile(array, volume, lesion),
                     (self.provenance or {}).get("id", SEGMENTER_ID))

    def propose(self, volume: sitk.Image, point_lps) -> tuple[sitk.Image, str]:
        """The lesion VOI at a click and its source: the U-Net's ("AI") or, when the U-Net finds nothing there,
        seeded region growing ("classical (AI found none)"); refused, with the way forward, when neither finds one."""
        try:
            return self.segment(volume, point_lps), AI_SOURCE
        except NoLesionFoundError:
            pass
        from ..classical import grow_from_seed

        grown = grow_from_seed(volume, [float(v) for v in point_lps], CLASSICAL_MAX_RADIUS_MM)
        if not np.any(sitk.GetArrayViewFromImage(grown)):
            raise InputError("The model found no lesion at this point, and region growing from the click found none "
                             "either; click inside the lesion or draw the VOI by hand")
        return grown, CLASSICAL_SOURCE


def clicked_component(binary: sitk.Image, point_lps, max_distance_mm: float = MAX_CLICK_DISTANCE_MM
                      ) -> sitk.Image | None:
    """The connected component of a binary image that holds the point, or the nearest one within
    `max_distance_mm` of it (physical distance); None when there is none."""
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(binary))
    if not labels.any():
        return None
    points = np.argwhere(labels > 0)  # (slice, row, col)
    origin, spacing = np.array(binary.GetOrigin()), np.array(binary.GetSpacing())
    physical = origin + (points[:, ::-1] * spacing) @ np.array(binary.GetDirection()).reshape(3, 3).T
    distances = np.linalg.norm(physical - np.asarray(point_lps, float), axis=1)
    nearest = int(np.argmin(distances))
    if distances[nearest] > max(max_distance_mm, float(spacing.max()) / 2):
        return None
    mask = sitk.GetImageFromArray((labels == labels[tuple(points[nearest])]).astype(np.uint8))
    mask.CopyInformation(binary)
    return mask


class ClickedPatches(Dataset):
    """(patch, lesion mask) around a random lesion voxel of each (volume, VOI) pair, recomputed every epoch."""

    def __init__(self, pairs: list[tuple[sitk.Image, sitk.Image]], jitter_mm: float = 4.0, seed: int = 0):
        self.pairs, self.jitter, self.rng = pairs, jitter_mm, np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        volume, voi = self.pairs[index]
        points = np.argwhere(sitk.GetArrayViewFromImage(voi) > 0)
        k, j, i = points[self.rng.integers(len(points))]
        centre = np.array(voi.TransformIndexToPhysicalPoint((int(i), int(j), int(k))))
        centre = centre + self.rng.uniform(-self.jitter, self.jitter, 3)
        array, grid = patch_input(volume, centre)
        target = sitk.Resample(voi, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        image, mask = torch.from_numpy(array)[None], torch.from_numpy(sitk.GetArrayFromImage(target) > 0)[None]
        if self.rng.random() < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return image, mask.long()


def _named_pairs(manifest_path, split: str) -> list[tuple[str, sitk.Image, sitk.Image]]:
    """("row <line> (<sequence>)", volume, VOI) for each sequence of the split's rows."""
    manifest = read_manifest(manifest_path, required=("patient_id", "voi"))
    pairs = []
    for number, row in enumerate(manifest.rows, start=2):
        if row.get("split", "") != split:
            continue
        voi = sitk.Cast(read_series_or_volume(manifest_file(manifest, row, "voi")) > 0, sitk.sitkUInt8)
        if not np.any(sitk.GetArrayViewFromImage(voi)):
            raise InputError(f"{Path(manifest_path).name}: the VOI of patient {row['patient_id']} is empty; "
                             "segment the lesion or remove the row")
        for column in ("dce", "t2"):
            if row.get(column):
                pairs.append((f"row {number} ({column})", read_series_or_volume(manifest.resolve(row[column])), voi))
    if not pairs:
        raise InputError(f"No '{split}' rows with a VOI and a sequence in {Path(manifest_path).name}")
    return pairs


def _pairs(manifest_path, split: str) -> list[tuple[sitk.Image, sitk.Image]]:
    return [(volume, voi) for _, volume, voi in _named_pairs(manifest_path, split)]


def centroid_click_dice(segmenter: LesionSegmenter, volume: sitk.Image, voi: sitk.Image) -> float:
    """Dice of the VOI segmented from a click at the reference VOI's centroid (0 when nothing is found there)."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(voi)
    try:
        mask = segmenter.segment(volume, stats.GetCentroid(1))
    except InputError:  # nothing found at the click: Dice 0
        return 0.0
    return dice(sitk.GetArrayFromImage(mask) > 0, sitk.GetArrayFromImage(voi) > 0)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice of the lesion class."""
    probability = torch.softmax(logits, 1)[:, 1]
    lesion = (target[:, 0] == 1).float()
    soft_dice = (2 * (probability * lesion).sum() + 1) / (probability.sum() + lesion.sum() + 1)
    return F.cross_entropy(logits, target[:, 0]) + (1 - soft_dice)


def train_lesion_segmenter(manifest: str | os.PathLike, out_dir, config: TrainConfig, model_id: str = SEGMENTER_ID,
                           progress: ProgressCallback | None = None) -> Path:
    train_pairs, val_pairs = _pairs(manifest, "train"), _pairs(manifest, "val")
    torch.manual_seed(config.seed)
    network = build_network(ARCHITECTURE)

    def validate(net, device):
        segmenter = LesionSegmenter(net, device)
        scores = [centroid_click_dice(segmenter, volume, voi) for volume, voi in val_pairs]
        return {"score": float(np.mean(scores)), "val_dice": float(np.mean(scores))}

    result = fit(network, ClickedPatches(train_pairs, seed=config.seed), segmentation_loss, validate, config, progress)
    card = {"id": model_id, "version": "1.0.0", "task": "lvi-lesion-segmentation", "architecture": ARCHITECTURE,
            "inputs": {"patch_size_zyx": PATCH_SIZE, "patch_spacing_xyz_mm": PATCH_SPACING,
                       "centre": "the click (or the box centre)", "intensity": "z-score over the patch's tissue",
                       "sequences": "DCE phase 2 and FS-T2WI"},
            "outputs": {"labels": {"0": "background", "1": "lesion"}, "threshold": 0.5},
            "training": {"manifest": Path(manifest).name, "train_volumes": len(train_pairs),
                         "val_volumes": len(val_pairs), "config": asdict(config), "best_epoch": result.best_epoch,
                         "seconds": result.seconds, "history": result.history,
                         "iterations": result.epochs_run * math.ceil(len(train_pairs) / config.batch_size)},
            "metrics": {"dice": result.best_score,
                        "data": "validation volumes, click at the VOI's centroid"},
            "intended_use": ("DEMO WEIGHTS trained on synthetic phantoms; not for clinical use." if "demo" in model_id
                             else "Research use; validate on your own data before any clinical use.")}
    return save_model(network, card, out_dir)


TRAINING_LEARNING_RATE = 3e-3  # `lvi train-segmenter --lr`'s default; fine-tuning takes a tenth
FINETUNE_WHAT = (f"an LVI lesion U-Net (task lvi-lesion-segmentation: a 3D basic_unet of 1 input channel and 2 outputs "
                 f"on {'×'.join(map(str, PATCH_SIZE))} patches of {'×'.join(f'{v:g}' for v in PATCH_SPACING)} mm)")


def finetune_lesion_segmenter(manifest_path, from_card, out_dir, name: str, config: TrainConfig, phantom: bool = False,
                              progress=None, should_stop=None, command: str | None = None):
    """Fine-tune a lesion U-Net (its card: `from_card`) on a manifest's corrected VOIs: training on the DCE and
    FS-T2WI of the `train` rows, Dice before and after on the held-out rows' volumes (`smartimaging.finetune`), the
    click at the VOI's centroid as in the training's validation. Returns a `FinetuneResult`."""
    from ..finetune import finetune, finetune_config, held_out_split, start_model

    start, start_card = start_model(from_card, check_segmenter_card, FINETUNE_WHAT)
    threshold = check_segmenter_card(start.card)
    manifest = read_manifest(manifest_path, required=("patient_id", "voi"))
    split = held_out_split(manifest)
    train, held_out = _pairs(manifest_path, "train"), _named_pairs(manifest_path, split)
    validation = _pairs(manifest_path, "val") if split == "test" and manifest.subset("val") else None

    def evaluate(network, device, items) -> list[float]:
        segmenter = LesionSegmenter(network, device, threshold=threshold)
        return [centroid_click_dice(segmenter, volume, voi) for volume, voi in items]

    return finetune(
        start, start_card, ClickedPatches(train, seed=config.seed), segmentation_loss, evaluate,
        [(volume, voi) for _, volume, voi in held_out], [label for label, _, _ in held_out], validation,
        finetune_config(config, TRAINING_LEARNING_RATE), manifest_path=manifest_path, split=split, unit="volume",
        prompt="click at the VOI's centroid, Dice on the volume's grid", name=name, out_dir=out_dir,
        phantom=phantom, counts={"train_volumes": len(train), "val_volumes": len(validation or []),
                                 "held_out_volumes": len(held_out)},
        command=command, progress=progress, should_stop=should_stop)
