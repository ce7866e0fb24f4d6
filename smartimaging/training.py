"""Shared training loop: seeded, device auto (cuda/mps/cpu), AMP on CUDA, checkpoint + resume, early stopping; the
segmenters' Dice + cross-entropy loss.

Checkpoints hold only tensors and plain containers and are read back with `torch.load(weights_only=True)`,
which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import copy
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .errors import CancelledError, ModelError
from .models.nets import pick_device

DICE_SMOOTH = 1e-5  # MONAI DiceLoss' smooth_nr and smooth_dr


def dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """MONAI's `DiceCELoss(to_onehot_y=True, softmax=True)` (monai 1.6.1, `monai/losses/dice.py`, every other argument
    at its default) without MONAI: the soft Dice loss of the softmax per item and class (background included),
    averaged, plus the cross-entropy. `logits` (B, C, *spatial), `labels` (B, 1, *spatial) holding class indices."""
    classes = labels[:, 0].long()
    probability = torch.softmax(logits, 1)
    truth = F.one_hot(classes, logits.shape[1]).movedim(-1, 1).to(probability.dtype)
    spatial = tuple(range(2, logits.ndim))
    overlap = (probability * truth).sum(spatial)
    dice = 1 - (2 * overlap + DICE_SMOOTH) / (probability.sum(spatial) + truth.sum(spatial) + DICE_SMOOTH)
    return dice.mean() + F.cross_entropy(logits, classes)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-2
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    patience: int | None = None
    checkpoint_dir: str | None = None
    resume: bool = False
    show_progress: bool = True


@dataclass
class TrainResult:
    best_score: float
    best_epoch: int
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


ProgressCallback = Callable[[dict], None]


class SupervisedStep:
    """The default optimisation step: Adam on the whole model and one loss, mixed precision on CUDA.

    A step is called with a batch and returns its losses ({"loss": ...} at least); its `optimizers` are saved in
    checkpoints. Other schemes (e.g. a GAN's two players) provide their own step through `fit(step_factory=...)`.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable, config: TrainConfig, device: torch.device):
        self.model, self.loss_fn = model, loss_fn
        self.optimizers = {"model": torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                                                     weight_decay=config.weight_decay)}
        self.use_amp = config.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.device_type = device.type

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device_type, dtype=torch.float16, enabled=self.use_amp):
            loss = self.loss_fn(self.model(inputs), targets)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        return {"loss": float(loss.detach())}


def _checkpoint_path(config: TrainConfig) -> Path | None:
    return Path(config.checkpoint_dir) / "checkpoint.pt" if config.checkpoint_dir else None


def fit(
    model: torch.nn.Module,
    train_set: Dataset,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    validate: Callable[[torch.nn.Module, torch.device], dict],
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    step_factory: Callable[[torch.nn.Module, torch.device], Callable] | None = None,
) -> TrainResult:
    """Train (Adam and `loss_fn` by default, or the step that `step_factory(model, device)` builds); `validate(model,
    device)` returns a dict with a 'score' (higher is better).

    The model ends with the weights of the best validation epoch.
    """
    seed_everything(config.seed)
    device = pick_device(config.device)
    model.to(device)
    step = step_factory(model, device) if step_factory else SupervisedStep(model, loss_fn, config, device)
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=generator, drop_last=False)

    start_epoch, best_score, best_epoch, history = 0, -np.inf, -1, []
    best_state = copy.deepcopy(model.state_dict())
    checkpoint = _checkpoint_path(config)
    if config.resume and checkpoint is not None and checkpoint.is_file():
        try:
            saved = torch.load(checkpoint, map_location=device, weights_only=True)
            model.load_state_dict(saved["model"])
            for name, optimizer in step.optimizers.items():
                optimizer.load_state_dict(saved["optimizers"][name])
            best_state = saved["best_model"]
            start_epoch, best_score, best_epoch = saved["epoch"] + 1, saved["best_score"], saved["best_epoch"]
            history = saved["history"]
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
        except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError, ValueError, OSError) as exc:
            raise ModelError(f"Cannot resume from {checkpoint}: it is not a checkpoint of this training (damaged, "
                             "written for another network, or holding Python objects that would run code when "
                             "loaded). Remove it or choose another --checkpoint-dir.") from exc

    started = time.perf_counter()
    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.epochs):
        model.train()
        losses: dict[str, list[float]] = {}
        batches = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                       disable=not config.show_progress)
        for inputs, targets in batches:
            if should_cancel is not None and should_cancel():
                raise CancelledError("Training was cancelled")
            for name, value in step(inputs.to(device), targets.to(device)).items():
                losses.setdefault(name, []).append(value)
            batches.set_postfix(loss=f"{losses['loss'][-1]:.4f}")
        model.eval()
        with torch.no_grad():
            metrics = validate(model, device)
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses["loss"])),
                  **{f"train_{name}": float(np.mean(values)) for name, values in losses.items() if name != "loss"},
                  **metrics}
        history.append(record)
        if metrics["score"] > best_score:
            best_score, best_epoch = metrics["score"], epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        if progress is not None:
            progress({"step": "epoch", "fraction": (epoch + 1) / config.epochs, **record})
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "epoch": epoch,
                        "optimizers": {name: optimizer.state_dict() for name, optimizer in step.optimizers.items()},
                        "best_model": best_state, "best_score": best_score, "best_epoch": best_epoch,
                        "history": history, "generator": generator.get_state(),
                        "torch_rng": torch.get_rng_state()}, checkpoint)
        if config.patience is not None and epoch + 1 - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(best_score=float(best_score), best_epoch=best_epoch, epochs_run=epoch + 1,
                       history=history, seconds=time.perf_counter() - started)
