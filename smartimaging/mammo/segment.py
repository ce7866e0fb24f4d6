"""Semi-automatic lesion segmentation on mammograms (U-Net, MONAI BasicUNet).

The reader marks a lesion with a point or a box; a 128×128 patch around it is normalised (1st-99th percentile to
[0, 1]) and given to the network with a second channel that encodes the prompt (a Gaussian spot for a point, the
filled box for a box, zeros for whole-image mode). Whole-image mode slides the patch over the image. One model
segments masses (the region), another calcifications (every spot of a cluster).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from ..models import LoadedModel, load_model
from ..models.nets import pick_device, prepare_for_inference

PATCH = 128
POINT_SIGMA = 6.0
SEGMENTER_IDS = {"mass": "mammo-mass-unet-demo", "calcification": "mammo-calcification-unet-demo"}
ARCHITECTURE = {"name": "basic_unet", "spatial_dims": 2, "in_channels": 2, "out_channels": 2,
                "features": [8, 16, 32, 64, 128, 8], "act": "relu", "norm": "batch"}


def normalise(patch: np.ndarray) -> np.ndarray:
    low, high = np.percentile(patch, [1, 99])
    return np.clip((patch - low) / max(high - low, 1e-6), -0.5, 1.5).astype(np.float32)


def prompt_channel(point: tuple[float, float] | None = None, box: tuple[int, int, int, int] | None = None,
                   shape: tuple[int, int] = (PATCH, PATCH)) -> np.ndarray:
    """Prompt encoding in patch coordinates: Gaussian spot (point), filled rectangle (box: r0, c0, r1, c1)."""
    channel = np.zeros(shape, np.float32)
    if point is not None:
        rr, cc = np.mgrid[0:shape[0], 0:shape[1]]
        channel = np.exp(-((rr - point[0]) ** 2 + (cc - point[1]) ** 2) / (2 * POINT_SIGMA**2)).astype(np.float32)
    elif box is not None:
        channel[max(box[0], 0):box[2], max(box[1], 0):box[3]] = 1.0
    return channel


def patch_origin(centre: tuple[float, float], image_shape: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of the PATCH×PATCH window centred on `centre`, kept inside the image."""
    if image_shape[0] < PATCH or image_shape[1] < PATCH:
        raise InputError(f"The image is {image_shape[1]}×{image_shape[0]} pixels; at least {PATCH}×{PATCH} needed")
    return (int(np.clip(round(centre[0]) - PATCH // 2, 0, image_shape[0] - PATCH)),
            int(np.clip(round(centre[1]) - PATCH // 2, 0, image_shape[1] - PATCH)))


def network_input(image: np.ndarray, origin: tuple[int, int], point=None, box=None) -> np.ndarray:
    """(2, PATCH, PATCH) input: normalised patch and the prompt, both in patch coordinates."""
    r, c = origin
    patch = normalise(image[r:r + PATCH, c:c + PATCH])
    local_point = None if point is None else (point[0] - r, point[1] - c)
    local_box = None if box is None else (box[0] - r, box[1] - c, box[2] - r, box[3] - c)
    return np.stack([patch, prompt_channel(local_point, local_box)])


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
    def load(cls, kind: str, directory=None, device: str = "auto") -> MammoSegmenter:
        chosen = pick_device(device)
        return cls(load_model(SEGMENTER_IDS[kind], directory, chosen), chosen)

    @torch.inference_mode()
    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        if self.device.type == "cpu":
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return torch.softmax(self.model.network(tensor).float(), dim=1)[:, 1].cpu().numpy()

    def segment(self, image: np.ndarray, point: tuple[float, float] | None = None,
                box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """uint8 mask of the lesion at a point (row, col) or in a box (r0, c0, r1, c1); whole image if neither."""
        image = np.asarray(image, dtype=np.float32)
        check_prompt(image.shape, point, box)
        if point is None and box is None:
            return self.segment_whole(image)
        centre = point if point is not None else ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        origin = patch_origin(centre, image.shape)
        probability = self._probabilities(network_input(image, origin, point, box)[None])[0]
        mask = np.zeros(image.shape, np.uint8)
        mask[origin[0]:origin[0] + PATCH, origin[1]:origin[1] + PATCH] = probability > 0.5
        if box is not None:  # the reader's box bounds the lesion
            outside = np.ones(image.shape, bool)
            outside[box[0]:box[2], box[1]:box[3]] = False
            mask[outside] = 0
        return mask

    def segment_whole(self, image: np.ndarray, stride: int = PATCH // 2) -> np.ndarray:
        """Sliding-window segmentation without a prompt (averaged overlapping probabilities)."""
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
        return (total / np.maximum(weight, 1) > 0.5).astype(np.uint8)


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


def train_segmenter(manifest_path, kind: str, out_dir, config, model_id: str | None = None, progress=None):
    """Train the point/box-prompted U-Net for masses or calcifications on a manifest's train/val rows."""
    import shlex
    import sys

    from monai.losses import DiceCELoss

    from ..manifest import read_manifest
    from ..models import build_network, save_model
    from ..training import fit
    from .classify import check_model_name
    from .features import load_mask
    from .images import load_mammogram

    model_id = model_id or SEGMENTER_IDS[kind]
    check_model_name(model_id)
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask", "split"))
    rows = [(number, r) for number, r in enumerate(manifest.rows, start=2) if r.get("kind", kind) == kind]

    def cases(split):
        loaded = []
        for number, row in (item for item in rows if item[1]["split"] == split):
            try:
                mammogram = load_mammogram(manifest.resolve(row["image"]))
                mask = load_mask(manifest.resolve(row["mask"]), mammogram)
                if not mask.any():
                    raise InputError("the mask is empty; every training row needs its lesion drawn")
                patch_origin((0, 0), mask.shape)
            except InputError as exc:
                raise InputError(f"Row {number} of {manifest.path.name} ({row['patient_id']}): {exc}") from exc
            loaded.append((mammogram.pixels, mask))
        if not loaded:
            raise InputError(f"The manifest has no '{kind}' rows with split '{split}'")
        return loaded
    train_cases, val_cases = cases("train"), cases("val")

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
    result = fit(network, PromptedPatches(train_cases, point_jitter=jitter), DiceCELoss(to_onehot_y=True,
                 softmax=True), validate, config, progress=progress)
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
