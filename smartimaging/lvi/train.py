"""`lvi train`: one network on one sequence with the paper's schedule, on the shared training loop.

Schedule (paper): Adam, learning rate 1e-3 decayed ×0.9 every 10 % of the total iterations, 100 epochs, batch 64
(2D) or 8 (3D); binary cross-entropy on the logit; augmentation: left-right mirroring. 2D networks train on every
tumour slice with its case's label and score a case by the mean of its slices' probabilities. The best epoch is
chosen by the validation cases' AUC, ties (a few val cases soon reach AUC 1) broken by their lower cross-entropy, so
that an epoch that barely trained is not kept for its lucky ranking; the cutoff is the Youden point of the training
cases' probabilities.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch.utils.data import Dataset

from ..errors import InputError
from ..evaluation import auc_with_ci, binary_metrics, youden_cutoff
from ..models.nets import build_network
from ..models.registry import save_model
from ..training import ProgressCallback, TrainConfig, fit
from .cohort import case_inputs, check_both_classes
from .predict import training_domain
from .preprocess import DEFAULT_PREPROCESSING, Preprocessing

ARCHITECTURES = {  # the paper's networks at full width; `width` scales them for the demo weights
    "vanilla2d": {"name": "vanilla_cnn_2d", "features": 32, "input_size": 64, "hidden": 512, "dropout": 0.5},
    "resnet10-2d": {"name": "resnet10", "spatial_dims": 2, "num_classes": 1, "widen_factor": 1.0},
    "resnet10-3d": {"name": "resnet10_3d_convpool", "input_size": [16, 64, 64], "widen_factor": 1.0,
                    "head_channels": 128},
}
PAPER_BATCH = {2: 64, 3: 8}
TIE_BREAK = 1e-6  # the val cross-entropy's weight in the epoch's score: it only orders epochs of equal AUC


def architecture_for(model: str, width: float = 1.0) -> dict:
    if model not in ARCHITECTURES:
        raise InputError(f"Unknown model {model!r}; choose one of {', '.join(ARCHITECTURES)}")
    architecture = dict(ARCHITECTURES[model])
    for key in ("features", "head_channels"):
        if key in architecture:
            architecture[key] = max(4, int(round(architecture[key] * width)))
    if "widen_factor" in architecture:
        architecture["widen_factor"] = architecture["widen_factor"] * width
    return architecture


def dimensions_of(model: str) -> int:
    return 3 if model.endswith("3d") else 2


class LesionInputs(Dataset):
    """(input, label) pairs: one per 3D case, or one per tumour slice of every case for 2D; mirrored at random."""

    def __init__(self, cases: list[dict], augment: bool = True):
        self.items = [(array, case["label"]) for case in cases
                      for array in ([case["input"]] if case["dimensions"] == 3 else list(case["input"]))]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        array, label = self.items[index]
        tensor = torch.from_numpy(np.ascontiguousarray(array))[None]
        if self.augment and torch.rand(()) < 0.5:
            tensor = tensor.flip(-1)
        return tensor, torch.tensor([float(label)])


class PaperStep:
    """Adam + BCE on the logit, learning rate ×0.9 every 10 % of the total iterations."""

    def __init__(self, model: torch.nn.Module, learning_rate: float, total_iterations: int):
        self.model = model
        self.optimizers = {"model": torch.optim.Adam(model.parameters(), lr=learning_rate)}
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizers["model"],
                                                         step_size=max(1, total_iterations // 10), gamma=0.9)

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(self.model(inputs), targets)
        loss.backward()
        optimizer.step()
        self.scheduler.step()
        return {"loss": loss.item(), "learning_rate": self.scheduler.get_last_lr()[0]}


def case_probabilities(network: torch.nn.Module, cases: list[dict], device: torch.device) -> np.ndarray:
    """One probability per case: the 3D output, or the mean of the 2D tumour slices' probabilities."""
    network.eval()
    probabilities = []
    with torch.no_grad():
        for case in cases:
            array = case["input"]
            batch = torch.from_numpy(np.ascontiguousarray(array))[None, None] if case["dimensions"] == 3 else \
                torch.from_numpy(np.ascontiguousarray(array))[:, None]
            probabilities.append(float(torch.sigmoid(network(batch.to(device))).mean()))
    return np.array(probabilities)


def train_lvi(manifest: str | os.PathLike, sequence: str, model: str, out_dir: str | os.PathLike,
              config: TrainConfig, model_id: str | None = None, width: float = 1.0,
              settings: Preprocessing = DEFAULT_PREPROCESSING, progress: ProgressCallback | None = None,
              arguments: dict | None = None) -> Path:
    dimensions = dimensions_of(model)
    train_cases = case_inputs(manifest, sequence, "train", dimensions, settings)
    val_cases = case_inputs(manifest, sequence, "val", dimensions, settings)
    check_both_classes(train_cases, "train", "training")
    check_both_classes(val_cases, "val", "choosing the epoch by the AUC")
    architecture = architecture_for(model, width)
    torch.manual_seed(config.seed)
    network = build_network(architecture)
    dataset = LesionInputs(train_cases)
    total_iterations = config.epochs * math.ceil(len(dataset) / config.batch_size)
    val_labels = np.array([case["label"] for case in val_cases])

    def validate(net, device):
        probabilities = case_probabilities(net, val_cases, device)
        auc = float(roc_auc_score(val_labels, probabilities))
        loss = float(F.binary_cross_entropy(torch.from_numpy(probabilities).clamp(1e-7, 1 - 1e-7),
                                            torch.from_numpy(val_labels).double()))
        return {"score": auc - TIE_BREAK * loss, "val_auc": auc, "val_loss": loss}

    result = fit(network, dataset, None, validate, config, progress,
                 step_factory=lambda net, device: PaperStep(net, config.learning_rate, total_iterations))
    device = next(network.parameters()).device
    train_labels = np.array([case["label"] for case in train_cases])
    cutoff = youden_cutoff(train_labels, case_probabilities(network, train_cases, device))
    val_scores = case_probabilities(network, val_cases, device)
    model_id = model_id or f"lvi-{sequence.lower()}-{model}-custom"
    card = {
        "id": model_id, "version": "1.0.0", "task": "lvi", "architecture": architecture,
        "inputs": {"sequence": sequence, "dimensions": dimensions, "preprocessing": settings.as_card()},
        "outputs": {"probability": "lymphovascular invasion", "cutoff": cutoff,
                    "cutoff_method": "Youden index of the training cases' probabilities"},
        "training": {"manifest": Path(manifest).name, "arguments": arguments, "model": model,
                     "train_cases": len(train_cases), "train_inputs": len(dataset), "val_cases": len(val_cases),
                     "schedule": "Adam, lr x0.9 every 10 % of the iterations", "total_iterations": total_iterations,
                     "config": asdict(config), "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                     "seconds": result.seconds, "history": result.history},
        "metrics": {"validation": {"data": f"the {len(val_cases)} 'val' cases", "auc": auc_with_ci(
            val_labels, val_scores).__dict__, "at_cutoff": binary_metrics(val_labels, (val_scores >= cutoff)
                                                                          .astype(int)).as_dict()}},
        "intended_use": ("DEMO WEIGHTS trained on synthetic phantoms; not for clinical use." if "demo" in model_id
                         else "Research use; validate on your own data before any clinical use.")}
    card["training_domain"] = training_domain(manifest, "train", card, f"the 'train' rows of {Path(manifest).name}")
    return save_model(network, card, out_dir)
