"""Training of the bone-scan classifier (ResNet34, multi-label crops) and segmenter (U-Net) from a manifest."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.utils.data import Dataset

from ..errors import InputError
from ..evaluation import dice, youden_cutoff
from ..manifest import binary_label, read_manifest
from ..models import build_network, save_model
from ..training import TrainConfig, dice_ce_loss, fit
from .cohort import LabelledStudy, load_labelled
from .pipeline import (
    BLADDER,
    CASE_THRESHOLD_KEY,
    CLASSIFIER_ID,
    CROP,
    LESION,
    NET_COLS,
    NET_ROWS,
    SEGMENTER_ID,
    crop_offsets,
    crops_of,
    network_input,
    training_domain,
)

CLASSIFIER_ARCHITECTURE = {"name": "resnet34", "spatial_dims": 2, "in_channels": 1, "num_classes": 2,
                           "widen_factor": 0.25, "conv1_stride": 2}
SEGMENTER_ARCHITECTURE = {"name": "basic_unet", "spatial_dims": 2, "in_channels": 1, "out_channels": 3,
                          "features": [8, 16, 32, 64, 128, 8], "act": "relu", "norm": "batch"}
INPUTS = {"channels": 1, "size_rows_cols": [NET_ROWS, NET_COLS], "crop": [CROP, CROP], "crop_stride_rows": 128,
          "resize": "bilinear", "normalisation": "counts / 99.5th percentile of the view, clipped to [0, 4]",
          "spacing": "as acquired; each view is resized to 1024×256 (2.26 mm pixels for a 256×1024 camera matrix)"}
LESION_PIXELS_FOR_POSITIVE_CROP, BLADDER_PIXELS_FOR_POSITIVE_CROP = 5, 20


def _net_labels(labels: np.ndarray) -> np.ndarray:
    tensor = torch.from_numpy(labels.astype(np.float32))[None, None]
    return F.interpolate(tensor, size=(NET_ROWS, NET_COLS), mode="nearest")[0, 0].numpy().astype(np.int64)


def prepared_views(studies: list[LabelledStudy]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(network input, label map on the network grid) per view."""
    return [(network_input(v.counts), _net_labels(s.labelmaps[v.name])) for s in studies for v in s.study.views]


class CropDataset(Dataset):
    """256×256 crops with multi-label targets (metastasis, bladder); random left-right flips and gain."""

    def __init__(self, views, augment: bool):
        self.views, self.augment = views, augment
        self.items = [(i, r) for i in range(len(views)) for r in crop_offsets()]

    def __len__(self):
        return len(self.items)

    def target(self, index: int) -> np.ndarray:
        view, row = self.items[index]
        labels = self.views[view][1][row:row + CROP, :CROP]
        return np.array([(labels == LESION).sum() >= LESION_PIXELS_FOR_POSITIVE_CROP,
                         (labels == BLADDER).sum() >= BLADDER_PIXELS_FOR_POSITIVE_CROP], np.float32)

    def __getitem__(self, index):
        view, row = self.items[index]
        crop = self.views[view][0][row:row + CROP, :CROP]
        if self.augment:
            rng = np.random.default_rng(torch.randint(0, 2**31, ()).item())
            crop = crop[:, ::-1] if rng.random() < 0.5 else crop
            crop = crop * rng.uniform(0.8, 1.25)
        image = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))[None]
        return image, torch.from_numpy(self.target(index))


class PatchDataset(Dataset):
    """256-row patches for the U-Net, centred on a lesion or the bladder half of the time."""

    def __init__(self, views, patches_per_view: int = 4, rows: int = 256):
        self.views, self.per_view, self.rows = views, patches_per_view, rows

    def __len__(self):
        return len(self.views) * self.per_view

    def __getitem__(self, index):
        x, labels = self.views[index // self.per_view]
        rng = np.random.default_rng(torch.randint(0, 2**31, ()).item())
        foreground = np.flatnonzero(labels.any(axis=1))
        if foreground.size and rng.random() < 0.5:
            centre = int(rng.choice(foreground))
        else:
            centre = int(rng.integers(0, NET_ROWS))
        top = int(np.clip(centre - self.rows // 2 + rng.integers(-64, 65), 0, NET_ROWS - self.rows))
        patch, target = x[top:top + self.rows], labels[top:top + self.rows]
        if rng.random() < 0.5:
            patch, target = patch[:, ::-1], target[:, ::-1]
        patch = patch * rng.uniform(0.8, 1.25)
        return (torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32))[None],
                torch.from_numpy(np.ascontiguousarray(target))[None])


def _classifier_validation(views):
    data = CropDataset(views, augment=False)
    inputs = torch.from_numpy(np.concatenate([crops_of(x) for x, _ in views]))
    targets = np.stack([data.target(i) for i in range(len(data))])

    def validate(model, device):
        scores = np.concatenate([torch.sigmoid(model(batch.to(device))).float().cpu().numpy()
                                 for batch in inputs.split(64)])
        result = {}
        for column, name in enumerate(("metastasis", "bladder")):
            has_both = 0 < targets[:, column].sum() < len(targets)
            result[f"auc_{name}"] = float(roc_auc_score(targets[:, column], scores[:, column])) if has_both else 0.5
        result["score"] = (result["auc_metastasis"] + result["auc_bladder"]) / 2
        return result
    return validate


def _segmenter_validation(views):
    def validate(model, device):
        overlap, totals = np.zeros(3), np.zeros(3)
        for x, labels in views:
            predicted = model(torch.from_numpy(x)[None, None].to(device)).argmax(1)[0].cpu().numpy()
            for label in (LESION, BLADDER):
                overlap[label] += 2 * np.sum((predicted == label) & (labels == label))
                totals[label] += np.sum(predicted == label) + np.sum(labels == label)
        dice = overlap / np.maximum(totals, 1)
        return {"dice_lesion": float(dice[LESION]), "dice_bladder": float(dice[BLADDER]),
                "score": float((dice[LESION] + dice[BLADDER]) / 2)}
    return validate


def case_cutoff(network: torch.nn.Module, studies: list[LabelledStudy]) -> float | None:
    """Youden cutoff of the case probability (max over crops and views) on labelled validation studies."""
    device = next(network.parameters()).device
    scores, labels = [], []
    network.eval()
    with torch.inference_mode():
        for labelled in studies:
            crops = np.concatenate([crops_of(network_input(v.counts)) for v in labelled.study.views])
            scores.append(float(torch.sigmoid(network(torch.from_numpy(crops).to(device)))[:, 0].max()))
            labels.append(int(labelled.row["label"]) if labelled.row.get("label") else -1)
    if not 0 < sum(label == 1 for label in labels) < len(labels) or -1 in labels:
        return None
    return youden_cutoff(labels, scores)


def _check_labels(rows: list[dict], manifest_name: str) -> None:
    """Labels, where given, are 0/1 and not all the same (the case cutoff needs both)."""
    labels = [binary_label(row, manifest_name) for row in rows if row.get("label")]
    if labels and len(set(labels)) == 1 and len(labels) == len(rows):
        raise InputError(f"{manifest_name}: every 'train' and 'val' case has label {labels[0]}; training needs "
                         "cases with (1) and without (0) metastases")


def _has_both_crop_classes(views) -> bool:
    data = CropDataset(views, augment=False)
    metastasis = [data.target(index)[0] for index in range(len(data))]
    return 0 < sum(metastasis) < len(metastasis)


def train_bonescan(manifest_path, out_dir, which=("classifier", "segmenter"), config: TrainConfig | None = None,
                   segmenter_config: TrainConfig | None = None, progress=None,
                   model_suffix: str = "demo") -> list[Path]:
    """Train on the manifest's `train` rows, select on its `val` rows; write cards + safetensors to `out_dir`."""
    unknown = sorted(set(which) - {"classifier", "segmenter"})
    if unknown or not which:
        raise InputError(f"--which takes classifier, segmenter or both (comma-separated); got {','.join(which)!r}")
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask", "split"))
    train_rows, val_rows = manifest.subset("train"), manifest.subset("val")
    if not train_rows or not val_rows:
        raise InputError("The manifest needs rows with split 'train' and rows with split 'val'")
    _check_labels(train_rows + val_rows, manifest.path.name)
    train_views = prepared_views(load_labelled(manifest, train_rows))
    if "classifier" in which and not _has_both_crop_classes(train_views):
        raise InputError(f"{manifest.path.name}: the 'train' masks hold no bone metastasis (or only metastases); "
                         "the classifier needs cases with and without metastases")
    val_studies = load_labelled(manifest, val_rows)
    val_views = prepared_views(val_studies)
    command = "smartimaging " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    data = {"manifest": str(Path(manifest_path).name), "train_cases": len(train_rows), "val_cases": len(val_rows)}
    config = config or TrainConfig()
    domain = training_domain(manifest_path, "train", f"the 'train' rows of {Path(manifest_path).name}")
    written = []
    jobs = {
        "classifier": (CLASSIFIER_ID, CLASSIFIER_ARCHITECTURE, CropDataset(train_views, augment=True),
                       torch.nn.BCEWithLogitsLoss(), _classifier_validation(val_views), config,
                       {"labels": ["bone metastasis", "urinary bladder"], "activation": "sigmoid",
                        "thresholds": {"bone metastasis": 0.5, "urinary bladder": 0.5}}),
        "segmenter": (SEGMENTER_ID, SEGMENTER_ARCHITECTURE, PatchDataset(train_views),
                      dice_ce_loss, _segmenter_validation(val_views),
                      segmenter_config or config,
                      {"labels": {"0": "background", "1": "bone metastasis", "2": "urinary bladder"},
                       "activation": "softmax + argmax"}),
    }
    for name in which:
        model_id, architecture, dataset, loss, validate, job_config, outputs = jobs[name]
        model_id = model_id.replace("-demo", f"-{model_suffix}")
        network = build_network(architecture)
        result = fit(network, dataset, loss, validate, job_config, progress=progress)
        if name == "classifier":
            cutoff = case_cutoff(network, val_studies)
            if cutoff is not None:
                outputs["thresholds"][CASE_THRESHOLD_KEY] = cutoff
        card = {
            "id": model_id, "version": "1.0.0", "task": f"bonescan-{name}",
            "architecture": architecture, "inputs": INPUTS, "outputs": outputs,
            "training": {"data": data, "command": command, "seed": job_config.seed, "epochs": job_config.epochs,
                         "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                         "optimizer": "Adam", "learning_rate": job_config.learning_rate,
                         "batch_size": job_config.batch_size, "seconds": round(result.seconds, 1),
                         "history": result.history},
            "metrics": {"data": "validation split of the training manifest", **result.history[result.best_epoch - 1]},
            "intended_use": ("DEMO WEIGHTS trained on synthetic phantoms; not for clinical use." if model_suffix ==
                             "demo" else "Research use; validate on your own data before any clinical use."),
            "weights_sha256": "",
            "training_domain": domain,
        }
        written.append(save_model(network, card, out_dir))
        if progress:
            progress({"step": "saved", "model": model_id, "card": str(written[-1])})
    return written


TRAINING_LEARNING_RATE = 0.01  # `bonescan train --lr`'s default; fine-tuning takes a tenth
FINETUNE_WHAT = (f"a bone-scan U-Net (task bonescan-segmenter: a 2D basic_unet of 1 input channel and 3 outputs on the "
                 f"{NET_ROWS}×{NET_COLS} view)")


def _with_metastases(studies: list[LabelledStudy]) -> list[LabelledStudy]:
    return [s for s in studies if any((labels == LESION).any() for labels in s.labelmaps.values())]


def finetune_segmenter(manifest_path, from_card, out_dir, name: str, config: TrainConfig, phantom: bool = False,
                       progress=None, should_stop=None, command: str | None = None):
    """Fine-tune a bone-scan U-Net (its card: `from_card`) on a manifest's corrected label maps: training on the
    `train` rows, Dice of the metastases before and after on the held-out studies that have some
    (`smartimaging.finetune`), every view segmented whole and cleaned as in `BoneScanModels.segment`. Returns a
    `FinetuneResult`."""
    from ..finetune import finetune, finetune_config, held_out_split, start_model
    from ..models import LoadedModel
    from .pipeline import BoneScanModels, check_segmenter_card

    start, start_card = start_model(from_card, check_segmenter_card, FINETUNE_WHAT)
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask", "split"))
    split = held_out_split(manifest)
    if not manifest.subset("train"):
        raise InputError(f"{manifest.path.name} has no 'train' rows to fine-tune on")
    train_views = prepared_views(load_labelled(manifest, manifest.subset("train")))
    rows = {id(row): number for number, row in enumerate(manifest.rows, start=2)}
    held_out = _with_metastases(load_labelled(manifest, manifest.subset(split)))
    if not held_out:
        raise InputError(f"{manifest.path.name}: no '{split}' study has metastases drawn in its mask; the Dice before "
                         "and after fine-tuning is measured on studies that have some")
    validation = _with_metastases(load_labelled(manifest, manifest.subset("val"))) if split == "test" else []

    def evaluate(network, device, studies) -> list[float]:
        models = BoneScanModels(None, LoadedModel(start.card, network, start.weights_path), device)  # segmenter only
        scores = []
        for labelled in studies:
            views = labelled.study.views
            predicted = [models.segment(network_input(v.counts), v.counts.shape) for v in views]
            truth = [labelled.labelmaps[v.name] for v in views]
            scores.append(dice(np.concatenate([(p == LESION).ravel() for p in predicted]),
                               np.concatenate([(t == LESION).ravel() for t in truth])))
        return scores

    return finetune(
        start, start_card, PatchDataset(train_views), dice_ce_loss, evaluate, held_out,
        [f"row {rows[id(s.row)]}" for s in held_out], validation or None,
        finetune_config(config, TRAINING_LEARNING_RATE), manifest_path=manifest_path, split=split, unit="study",
        prompt="every view segmented whole (no prompt), Dice of the metastases over the study's views, studies "
               "with metastases", name=name, out_dir=out_dir, phantom=phantom,
        counts={"train_views": len(train_views), "val_studies": len(validation), "held_out_studies": len(held_out)},
        command=command, progress=progress, should_stop=should_stop)
