"""Semi-automatic lesion segmentation on mammograms (U-Net, MONAI BasicUNet).

The reader marks a lesion with a point or a box. The image is resampled to the card's pixel size (`inputs.pixel_mm`;
cards without one see the image as stored), a 128×128 patch around the prompt is normalised (1st-99th percentile to
[0, 1]) and given to the network with a second channel that encodes the prompt (a Gaussian spot for a point, the
filled box for a box, zeros for whole-image mode; `prompts`). Whole-image mode slides the patch over the image. The
probabilities are resampled back, so the mask lies on the image's own grid. One model segments masses (the region),
another calcifications (every spot of a cluster).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from ..classical import grow_from_seed
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
    mirror_averaged,
    pick_device,
    prepare_for_inference,
)
from ..models.registry import read_card
from .images import Mammogram, load_mammogram, parse_pixel_mm, pixel_size
from .prompts import PATCH, POINT_SIGMA, network_input, patch_origin, resample, scaled

SEGMENTER_IDS = {"mass": "mammo-mass-unet-demo", "calcification": "mammo-calcification-unet-demo"}
CLASSICAL_SOURCE = "classical (AI found none)"  # as segmentation_nodes.CLASSICAL
FALLBACK_RADIUS_MM = {"mass": 30.0, "calcification": 10.0}
BREAST_IMAGE_MM = 240.0  # the long side of a mammogram, for images whose pixel size is unknown
ARCHITECTURE = {"name": "basic_unet", "spatial_dims": 2, "in_channels": 2, "out_channels": 2,
                "features": [16, 32, 64, 96, 128, 16], "act": "relu", "norm": "batch"}


def check_prompt(shape: tuple[int, int], point=None, box=None) -> None:
    """Refuse a point or box outside the image, or an empty box."""
    def inside(row, col):
        return 0 <= row < shape[0] and 0 <= col < shape[1]
    size = f"{shape[1]}×{shape[0]} pixels"
    if point is not None and not inside(*point):
        raise InputError(f"The marked point (x {point[1]:.6g}, y {point[0]:.6g}) lies outside the image ({size}); "
                         "mark the lesion inside it")
    if box is not None and not (inside(box[0], box[1]) and inside(box[2] - 1, box[3] - 1)
                                and box[2] > box[0] and box[3] > box[1]):
        raise InputError(f"The marked box lies outside the image ({size}) or is empty; draw it around the lesion")


class MammoSegmenter:
    """A loaded lesion segmenter: point, box and whole-image modes, masks on the full image grid."""

    def __init__(self, model: LoadedModel, device: torch.device):
        self.model, self.device = model, device
        self.model.network = prepare_for_inference(model.network, device)

    @classmethod
    def load(cls, kind: str, directory=None, device: str = "auto", card=None) -> MammoSegmenter:
        """The kind's demo U-Net, or the model card `card` (a fine-tuned U-Net), its card checked as a `kind` U-Net
        before and after the registry loads it (sha256, safetensors, size limits)."""
        chosen = pick_device(device)
        if card is None:
            return cls(load_model(SEGMENTER_IDS[kind], directory, chosen), chosen)

        def check(content: dict) -> None:
            card_kind = checked_card(path.name, check_segmenter_card, content)
            if card_kind != kind:
                raise InputError(f"The proposal network {path.stem} segments {card_kind} lesions, not {kind} "
                                 f"lesions: choose a {kind} network")

        content, path = read_card(card)
        check(content)
        model = load_model(path, device=chosen)
        check(model.card)  # the card as loaded
        return cls(model, chosen)

    @property
    def pixel_mm(self) -> float | None:
        """The pixel size (mm) the network works at; None: the image as stored."""
        return self.model.card.get("inputs", {}).get("pixel_mm")

    @torch.inference_mode()
    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        if self.device.type == "cpu":
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return torch.softmax(self.model.network(tensor).float(), dim=1)[:, 1].cpu().numpy()

    def segment(self, image: np.ndarray, pixel_mm: float | tuple[float, float],
                point: tuple[float, float] | None = None,
                box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """uint8 mask of the lesion at a point (row, col) or in a box (r0, c0, r1, c1), whole image if neither, on
        the grid of `image`, whose pixel size is `pixel_mm` (one value, or row and column sizes)."""
        image = np.asarray(image, dtype=np.float32)
        check_prompt(image.shape, point, box)
        scale = np.broadcast_to(np.asarray(pixel_mm, float), (2,)) / (self.pixel_mm or pixel_mm)
        grid = resample(image, pixel_mm, self.pixel_mm) if self.pixel_mm else image
        shape = grid.shape
        grid = np.pad(grid, [(0, max(PATCH - n, 0)) for n in shape], constant_values=float(grid.min()))
        if point is None and box is None:
            probability = self.probabilities_whole(grid)
        else:
            grid_point = None if point is None else tuple(np.asarray(point) * scale)
            grid_box = None if box is None else (int(np.floor(box[0] * scale[0])), int(np.floor(box[1] * scale[1])),
                                                 int(np.ceil(box[2] * scale[0])), int(np.ceil(box[3] * scale[1])))
            centre = grid_point if point is not None else ((grid_box[0] + grid_box[2]) / 2,
                                                           (grid_box[1] + grid_box[3]) / 2)
            origin = patch_origin(centre, grid.shape)
            probability = np.zeros(grid.shape, np.float32)
            probability[origin[0]:origin[0] + PATCH, origin[1]:origin[1] + PATCH] = mirror_averaged(
                self._probabilities, network_input(grid, origin, grid_point, grid_box), (1, 2))
        probability = probability[:shape[0], :shape[1]]
        if self.pixel_mm:
            probability = scaled(probability, scale, image.shape)
        mask = (probability > self.model.card["outputs"].get("threshold", 0.5)).astype(np.uint8)
        if box is not None:  # the reader's box bounds the lesion
            outside = np.ones(image.shape, bool)
            outside[box[0]:box[2], box[1]:box[3]] = False
            mask[outside] = 0
        if point is not None and self.model.card["outputs"].get("one_region_at_point"):
            mask = region_at(mask, point)
        return mask

    def probabilities_whole(self, image: np.ndarray, stride: int = PATCH // 2) -> np.ndarray:
        """Sliding-window lesion probabilities without a prompt (overlapping windows averaged)."""
        total, weight = np.zeros(image.shape, np.float32), np.zeros(image.shape, np.float32)
        rows = sorted(set(range(0, image.shape[0] - PATCH + 1, stride)) | {image.shape[0] - PATCH})
        cols = sorted(set(range(0, image.shape[1] - PATCH + 1, stride)) | {image.shape[1] - PATCH})
        origins = [(r, c) for r in rows for c in cols]
        for start in range(0, len(origins), 32):
            chunk = origins[start:start + 32]
            probabilities = self._probabilities(np.stack([network_input(image, o) for o in chunk]))
            for (r, c), p in zip(chunk, probabilities, strict=True):
                total[r:r + PATCH, c:c + PATCH] += p
                weight[r:r + PATCH, c:c + PATCH] += 1
        return total / np.maximum(weight, 1)


def estimated_pixel_mm(shape: tuple[int, int]) -> float:
    """A pixel size for a mammogram that records none: its long side taken as BREAST_IMAGE_MM (CDD-CESM 512²:
    0.47 mm; CBIS-DDSM film scans, ~4.6k rows: 0.05 mm)."""
    return float(np.clip(BREAST_IMAGE_MM / max(shape), 0.02, 1.0))


def placeholder_replacement(image: sitk.Image) -> float | None:
    """`estimated_pixel_mm` for an image that would be implausibly long (over twice BREAST_IMAGE_MM: a placeholder
    spacing such as 1 mm), else None."""
    if max(np.multiply(image.GetSize()[:2], image.GetSpacing()[:2])) > 2 * BREAST_IMAGE_MM:
        return estimated_pixel_mm(image.GetSize()[:2])
    return None


def classical_roi(image: sitk.Image, kind: str, point=None, box=None) -> np.ndarray:
    """The classical fallback (`classical.grow_from_seed`) from the point or the box centre, bounded by
    FALLBACK_RADIUS_MM: a uint8 (rows, cols) mask on the mammogram's grid, empty when nothing sensible is found."""
    row, col = point if point is not None else ((box[0] + box[2] - 1) / 2, (box[1] + box[3] - 1) / 2)
    seed = image.TransformContinuousIndexToPhysicalPoint((col, row, 0.0)[:image.GetDimension()])
    mask = sitk.GetArrayFromImage(grow_from_seed(image, seed, FALLBACK_RADIUS_MM[kind]))
    return mask.reshape(mask.shape[-2:])


def propose_roi(segmenter: MammoSegmenter, image: sitk.Image, kind: str, point=None, box=None,
                pixel_mm: float | None = None) -> tuple[np.ndarray, str]:
    """(mask, "AI") from the network at the point, in the box or over the whole image; when it finds nothing at a
    point or box, (mask, CLASSICAL_SOURCE) from the classical fallback; InputError when neither finds a lesion.
    `pixel_mm` replaces the image's pixel size (one that the file does not record); so does `estimated_pixel_mm`
    when the image would be implausibly long (over twice BREAST_IMAGE_MM: a placeholder spacing such as 1 mm)."""
    pixel_mm = pixel_mm or placeholder_replacement(image)
    if pixel_mm is not None:
        image = sitk.Image(image)
        image.SetSpacing((pixel_mm, pixel_mm, *image.GetSpacing()[2:]))
    pixels = sitk.GetArrayFromImage(image).reshape(image.GetSize()[1::-1])
    mask = segmenter.segment(pixels, pixel_size(image), point=point, box=box)
    if mask.any():
        return mask, "AI"
    if point is None and box is None:
        raise InputError("The model found no lesion in the image; mark the lesion with a point or a box, or draw "
                          "the ROI yourself")
    mask = classical_roi(image, kind, point, box)
    if mask.any():
        return mask, CLASSICAL_SOURCE
    raise InputError("The model found no lesion there, nor did region growing from the click; draw the ROI "
                     "yourself")


def region_at(mask: np.ndarray, point: tuple[float, float]) -> np.ndarray:
    """The connected region of `mask` under `point`, or the one nearest to it."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    pixels = np.argwhere(labels)
    nearest = pixels[np.argmin(((pixels - np.asarray(point)) ** 2).sum(axis=1))]
    return (labels == labels[tuple(nearest)]).astype(np.uint8)


class PromptedPatches(Dataset):
    """Training patches: 60 % prompted by a point on the lesion (jittered), 20 % by a box around it, 20 %
    unprompted windows (on the lesion or anywhere), with flips."""

    def __init__(self, cases: list[tuple[np.ndarray, np.ndarray]], patches_per_case: int = 4,
                 point_jitter: float = 2.0):
        self.cases, self.per_case, self.point_jitter = cases, patches_per_case, point_jitter

    def __len__(self):
        return len(self.cases) * self.per_case

    def __getitem__(self, index):
        image, mask = self.cases[index // self.per_case]
        rng = np.random.default_rng(torch.randint(0, 2**31, ()).item())
        lesion = np.argwhere(mask > 0)
        mode = rng.choice(["point", "box", "none"], p=[0.6, 0.2, 0.2])
        if mode == "none":
            centre = lesion[rng.integers(len(lesion))] if rng.random() < 0.5 else \
                (rng.integers(0, image.shape[0]), rng.integers(0, image.shape[1]))
            origin = patch_origin(centre, image.shape)
            x = network_input(image, origin)
        elif mode == "point":
            point = tuple(np.clip(lesion[rng.integers(len(lesion))] + rng.normal(0, self.point_jitter, 2), 0,
                                  np.array(image.shape) - 1))
            origin = patch_origin(point, image.shape)
            x = network_input(image, origin, point=point)
        else:
            (r0, c0), (r1, c1) = lesion.min(axis=0), lesion.max(axis=0) + 1
            margin = rng.integers(2, 10, 4)
            box = (int(r0 - margin[0]), int(c0 - margin[1]), int(r1 + margin[2]), int(c1 + margin[3]))
            origin = patch_origin(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), image.shape)
            x = network_input(image, origin, box=box)
        y = mask[origin[0]:origin[0] + PATCH, origin[1]:origin[1] + PATCH].astype(np.int64)[None]
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, :, ::-1]
        if rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


def prompt_point(mask: np.ndarray) -> tuple[float, float]:
    """Where a reader would click: the lesion's centroid (for a cluster, its centre)."""
    return tuple(float(v) for v in np.argwhere(mask > 0).mean(axis=0))


def segmenter_cases(manifest, kind: str, split: str) -> list[tuple[int, Mammogram, np.ndarray]]:
    """(manifest line, mammogram, lesion mask) of the manifest's `kind` rows of one split (rows without a `kind`
    column count as `kind`); InputError naming the row for an unreadable image or an empty mask, and when there is
    no such row."""
    from .features import load_mask

    loaded = []
    for number, row in enumerate(manifest.rows, start=2):
        if row.get("kind", kind) != kind or row["split"] != split:
            continue
        try:
            mammogram = load_mammogram(manifest.resolve(row["image"]), parse_pixel_mm(row.get("pixel_mm"), "pixel_mm"))
            mask = load_mask(manifest.resolve(row["mask"]), mammogram)
            if not mask.any():
                raise InputError("the mask is empty; every training row needs its lesion drawn")
            patch_origin((0, 0), mask.shape)
        except InputError as exc:
            raise InputError(f"Row {number} of {manifest.path.name} ({row['patient_id']}): {exc}") from exc
        loaded.append((number, mammogram, mask))
    if not loaded:
        raise InputError(f"The manifest has no '{kind}' rows with split '{split}'")
    return loaded


def train_segmenter(manifest_path, kind: str, out_dir, config, model_id: str | None = None, progress=None):
    """Train the point/box-prompted U-Net for masses or calcifications on a manifest's train/val rows."""
    import shlex
    import sys

    from ..manifest import read_manifest
    from ..models import build_network, save_model
    from ..models.registry import check_model_name
    from ..training import dice_ce_loss, fit

    model_id = model_id or SEGMENTER_IDS[kind]
    check_model_name(model_id)
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask", "split"))
    train_cases, val_cases = ([(m.pixels, mask) for _, m, mask in segmenter_cases(manifest, kind, split)]
                              for split in ("train", "val"))

    def validate(model, device):
        overlap = total = 0.0
        for image, mask in val_cases:
            point = prompt_point(mask)
            origin = patch_origin(point, image.shape)
            x = torch.from_numpy(network_input(image, origin, point=point)[None]).to(device)
            predicted = model(x).argmax(1)[0].cpu().numpy()
            truth = mask[origin[0]:origin[0] + PATCH, origin[1]:origin[1] + PATCH]
            overlap += 2 * np.sum((predicted == 1) & (truth == 1))
            total += np.sum(predicted == 1) + np.sum(truth == 1)
        dice = overlap / max(total, 1.0)
        return {"dice": float(dice), "score": float(dice)}

    network = build_network(ARCHITECTURE)
    jitter = 2.0 if kind == "mass" else 8.0
    result = fit(network, PromptedPatches(train_cases, point_jitter=jitter), dice_ce_loss, validate, config,
                 progress=progress)
    card = {"id": model_id, "version": "1.0.0", "task": f"mammo-{kind}-segmentation", "architecture": ARCHITECTURE,
            "inputs": {"channels": ["patch normalised 1st-99th percentile to [0, 1]", "prompt: Gaussian point "
                                    f"(sigma {POINT_SIGMA} px), filled box or zeros"], "patch": [PATCH, PATCH],
                       "spacing": "as stored (phantoms 0.2 mm)"},
            "outputs": {"labels": {"0": "background", "1": kind}, "activation": "softmax, lesion > 0.5"},
            "training": {"data": {"manifest": Path(manifest_path).name, "train_cases": len(train_cases),
                                  "val_cases": len(val_cases)},
                         "command": "smartimaging " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                         "seed": config.seed, "epochs": config.epochs, "epochs_run": result.epochs_run,
                         "best_epoch": result.best_epoch, "learning_rate": config.learning_rate,
                         "batch_size": config.batch_size, "seconds": round(result.seconds, 1),
                         "history": result.history},
            "metrics": {"data": "validation split, point prompt at the lesion centre",
                        **result.history[result.best_epoch - 1]},
            "intended_use": ("DEMO WEIGHTS trained on synthetic phantoms; not for clinical use." if "demo" in model_id
                             else "Research use; validate on your own data before any clinical use."),
            "weights_sha256": ""}
    return save_model(network, card, out_dir)


TRAINING_LEARNING_RATE = 1e-3  # `mammo train-segmenter --lr`'s default; fine-tuning takes a tenth
FINETUNE_WHAT = ("a mammography lesion U-Net (task mammo-mass-segmentation or mammo-calcification-segmentation: a 2D "
                 f"basic_unet of 2 input channels and 2 outputs on {PATCH}×{PATCH} patches)")


def check_segmenter_card(card: dict) -> str:
    """The lesion kind of a mammography U-Net card, once the fields that segmentation and fine-tuning rely on are
    checked: task mammo-<kind>-segmentation, a 2D BasicUNet of 2 input channels (patch, prompt) and 2 outputs, the
    PATCH×PATCH patch, a pixel size (when given) of 0.02 to 10 mm."""
    kinds = {f"mammo-{kind}-segmentation": kind for kind in SEGMENTER_IDS}
    if card.get("task") not in kinds:
        raise CardFieldError(f"task is {card.get('task')!r}; expected {' or '.join(map(repr, kinds))}")
    architecture = check_architecture(card_field(card, "architecture"))
    card_choice(architecture["name"], "architecture.name", ("basic_unet",))
    card_choice(architecture.get("spatial_dims", 2), "architecture.spatial_dims", (2,))
    card_choice(architecture.get("in_channels", 1), "architecture.in_channels", (2,))
    card_choice(architecture.get("out_channels"), "architecture.out_channels", (2,))
    if card_sizes(card_field(card, "inputs.patch"), "inputs.patch", 2) != (PATCH, PATCH):
        raise CardFieldError(f"inputs.patch is {card['inputs']['patch']!r}; expected [{PATCH}, {PATCH}] (the patch "
                             "this version of SmartImaging cuts)")
    if card_field(card, "inputs.pixel_mm", None) is not None:
        card_number(card["inputs"]["pixel_mm"], "inputs.pixel_mm", 0.02, 10.0, " mm")
    return kinds[card["task"]]


def _working_pixel_mm(mammogram: Mammogram) -> tuple[float, float]:
    """The (row, column) pixel size a proposal uses (`propose_roi`: a placeholder spacing is replaced)."""
    replacement = placeholder_replacement(mammogram.image)
    return (replacement, replacement) if replacement else pixel_size(mammogram.image)


def _on_grid(number: int, mammogram: Mammogram, mask: np.ndarray, grid_mm: float | None):
    """Image and mask on the network's grid (`grid_mm` pixels; None: as stored), padded to one patch."""
    pixels = mammogram.pixels
    if grid_mm:
        source_mm = _working_pixel_mm(mammogram)
        pixels = resample(pixels, source_mm, grid_mm)
        mask = (resample(mask.astype(np.float32), source_mm, grid_mm) >= 0.5).astype(np.uint8)
        if not mask.any():
            raise InputError(f"Row {number}: the lesion is smaller than a pixel of the model ({grid_mm:g} mm)")
    padding = [(0, max(PATCH - n, 0)) for n in pixels.shape]
    return np.pad(pixels, padding, constant_values=float(pixels.min())), np.pad(mask, padding)


def finetune_segmenter(manifest_path, from_card, out_dir, name: str, config, kind: str | None = None,
                       phantom: bool = False, progress=None, should_stop=None, command: str | None = None):
    """Fine-tune a mass or calcification U-Net (its card: `from_card`) on a manifest's corrected ROIs: training on
    the `train` rows on the card's pixel grid, Dice before and after on the held-out rows (`finetune`), the click at
    the lesion's centroid and the mask on the image's own grid, as in use. Returns a `FinetuneResult`."""
    from ..evaluation import dice
    from ..finetune import finetune, finetune_config, held_out_split, start_model
    from ..manifest import read_manifest
    from ..training import dice_ce_loss

    start, start_card = start_model(from_card, check_segmenter_card, FINETUNE_WHAT)
    card_kind = check_segmenter_card(start.card)
    if kind is not None and kind != card_kind:
        raise InputError(f"--from-model {start.card['id']} segments {card_kind} lesions, not {kind} lesions; give "
                         f"--kind {card_kind} or a {kind} U-Net")
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask", "split"))
    split = held_out_split(manifest, lambda row: row.get("kind", card_kind) == card_kind)
    grid_mm = start.card["inputs"].get("pixel_mm")
    train = [_on_grid(*case, grid_mm) for case in segmenter_cases(manifest, card_kind, "train")]
    held_out = segmenter_cases(manifest, card_kind, split)
    has_val = split == "test" and any(row["split"] == "val" and row.get("kind", card_kind) == card_kind
                                      for row in manifest.rows)
    validation = [(m, mask) for _, m, mask in segmenter_cases(manifest, card_kind, "val")] if has_val else None

    def evaluate(network, device, items) -> list[float]:
        segmenter = MammoSegmenter(LoadedModel(start.card, network, start.weights_path), device)
        return [dice(segmenter.segment(m.pixels, _working_pixel_mm(m), point=prompt_point(mask)), mask)
                for m, mask in items]

    patches = PromptedPatches(train, point_jitter=2.0 if card_kind == "mass" else 8.0)
    return finetune(
        start, start_card, patches, dice_ce_loss, evaluate,
        [(m, mask) for _, m, mask in held_out], [f"row {number}" for number, _, _ in held_out], validation,
        finetune_config(config, TRAINING_LEARNING_RATE), manifest_path=manifest_path, split=split, unit="mammogram",
        prompt="click at the lesion's centroid, Dice on the image's own grid", name=name, out_dir=out_dir,
        phantom=phantom, counts={"train_cases": len(train), "val_cases": len(validation or []),
                                 "held_out_cases": len(held_out)},
        command=command, progress=progress, should_stop=should_stop)
