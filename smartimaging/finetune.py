"""Fine-tuning of the ROI-proposal networks (mammography, LVI lesion and bone-scan U-Nets) from the reader's
corrected ROIs, as in MONAI Label's active learning.

Training starts from a model card's weights, loaded through the registry (sha256 check, safetensors) after the card
is checked against the task's network and input spec; it runs FINETUNE_EPOCHS epochs at the task's training learning
rate over LEARNING_RATE_DIVISOR: the start weights already segment, and a few small steps adapt them to a handful of
corrected cases without forgetting what they learnt (and take minutes on a CPU, in the background worker). The start
and the fine-tuned network are measured on the same held-out rows (split 'test', else 'val') with the same prompts;
the new card records both Dice values, the start model (id, version, sha256), the data, the command and the seed.

The best epoch is chosen on the 'val' rows when the held-out rows are the 'test' rows; otherwise (the 'val' rows are
the held-out rows, or there are none) the last epoch is kept, so that the held-out rows never choose the model.
"""

from __future__ import annotations

import copy
import json
import shlex
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CancelledError, InputError
from .wording import counted, plural

if TYPE_CHECKING:  # the CLI's parser imports this module for its options: torch loads only when a job runs
    import torch
    from torch.utils.data import Dataset

    from .manifest import Manifest
    from .models import LoadedModel
    from .training import TrainConfig

FINETUNE_EPOCHS = 5
LEARNING_RATE_DIVISOR = 10
DEFAULTS_WHY = (f"default {FINETUNE_EPOCHS} epochs at a tenth of the training learning rate: the start weights "
                "already segment, and small steps adapt them to the corrected cases without forgetting what they "
                "learnt")
FINETUNE_HELP = ("fine-tune: start from this model card's weights (same task, network and input spec; sha256 checked); "
                 f"{DEFAULTS_WHY}. Dice of the start and the fine-tuned model on the held-out rows (split 'test', else "
                 "'val') goes into the new card")
PHANTOM_HELP = "the manifest holds synthetic phantoms: the card labels its Dice values as phantom numbers"
BATCH_SIZES = {"mammo": 16, "lvi": 8, "bonescan": 8}  # the defaults of the tasks' segmenter training commands

Progress = Callable[[float, str], None]
StopCheck = Callable[[], bool]
# Dice of a network (on a device) for each held-out or validation item of a task
Evaluate = Callable[["torch.nn.Module", "torch.device", Sequence], list[float]]


def add_finetune_options(parser) -> None:
    """--from-model and --phantom on a task's training command."""
    parser.add_argument("--from-model", metavar="CARD.json", help=FINETUNE_HELP)
    parser.add_argument("--phantom", action="store_true", help=PHANTOM_HELP)


@dataclass
class FinetuneResult:
    card: Path
    dice_before: float
    dice_after: float
    n: int
    split: str
    unit: str  # what was measured: "mammogram", "volume", "study"
    phantom: bool  # the card labels its Dice as phantom numbers

    def as_json(self) -> dict:
        return {"card": str(self.card), "dice_before": self.dice_before, "dice_after": self.dice_after, "n": self.n,
                "split": self.split, "phantom": self.phantom}

    def summary(self) -> str:
        return (f"Dice on {counted(self.n, 'held-out ' + self.unit)} ('{self.split}' rows): {self.dice_before:.3f} "
                f"before, {self.dice_after:.3f} after fine-tuning; wrote {self.card}")


def finetune_config(config: TrainConfig, training_learning_rate: float) -> TrainConfig:
    """`config` with the fine-tuning defaults where its epochs or learning rate is None (not chosen)."""
    from .training import TrainConfig

    return TrainConfig(**{**config.__dict__, "epochs": config.epochs or FINETUNE_EPOCHS,
                          "learning_rate": config.learning_rate or training_learning_rate / LEARNING_RATE_DIVISOR})


def start_model(from_card, check: Callable[[dict], object], what: str) -> tuple[LoadedModel, Path]:
    """The start model of a fine-tuning and its card's path: the card checked by `check` (the task's network and
    input spec) before the registry loads it (sha256, safetensors); InputError naming the card and the field that
    differs."""
    from .models import load_model
    from .models.nets import CardFieldError
    from .models.registry import read_card

    card, path = read_card(from_card)
    try:
        check(card)
    except CardFieldError as exc:
        raise InputError(f"The start model's card {path.name} is not {what}, so it cannot be fine-tuned here: "
                         f"{exc}") from None
    return load_model(path), path


def held_out_split(manifest: Manifest, usable: Callable[[dict], bool] = lambda row: True) -> str:
    """'test' when the manifest has usable test rows, else 'val'; InputError when it has neither."""
    for split in ("test", "val"):
        if any(row.get("split") == split and usable(row) for row in manifest.rows):
            return split
    raise InputError(f"{manifest.path.name} has no held-out rows (split 'test' or 'val'): Dice before and after "
                     "fine-tuning is measured on them; mark some corrected cases as 'test'")


def check_finetune_options(args) -> None:
    """Refuse --phantom without --from-model (it labels the Dice values of a fine-tuning)."""
    if args.phantom and not args.from_model:
        raise InputError("--phantom labels the Dice before and after a fine-tuning as phantom numbers; it needs "
                         "--from-model")


def command_line() -> str:
    return "smartimaging " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def finetune_progress(fraction: float, message: str) -> None:
    """A fine-tuning progress step as one JSON line on stdout (as the training commands print theirs)."""
    print(json.dumps({"step": "finetune", "fraction": round(fraction, 4), "message": message}), flush=True)


def _mean(scores: list[float]) -> float:
    return float(statistics.fmean(scores)) if scores else 0.0


def frozen_norm_steps(loss_fn, config: TrainConfig):
    """`fit`'s step factory for fine-tuning: the default step (Adam on `loss_fn`) with every batch norm in eval mode,
    so that it normalises with the start model's running statistics and keeps them. The batch statistics of a few
    corrected cases differ from them (the demo mass U-Net's loss on 20 patches of 5 real CDD-CESM views: 0.88 in eval
    mode, 2.12 with batch statistics), and training on them moves the network away from what it does in use."""
    from torch import nn

    from .training import SupervisedStep

    class FrozenNormStep(SupervisedStep):
        def __call__(self, inputs, targets):
            for module in self.model.modules():
                if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
                    module.eval()
            return super().__call__(inputs, targets)

    return lambda model, device: FrozenNormStep(model, loss_fn, config, device)


def finetune(start: LoadedModel, start_card: Path, train_set: Dataset, loss_fn, evaluate: Evaluate, held_out: Sequence,
             held_out_names: list[str], validation: Sequence | None, config: TrainConfig, *, manifest_path,
             split: str, unit: str, prompt: str, name: str, out_dir, phantom: bool, counts: dict,
             command: str | None = None, progress: Progress | None = None,
             should_stop: StopCheck | None = None) -> FinetuneResult:
    """Fine-tune `start.network` (read from the card `start_card`) on `train_set` and write the new card + weights
    to `out_dir` (never over the start model's files).

    `evaluate(network, device, items)` gives one Dice per item; `held_out` (named by `held_out_names`) are measured
    before and after, `validation` (or None: the last epoch is kept) chooses the best epoch. `unit` names an item
    ("volume"), `prompt` says how the prompts were derived, `counts` how many rows were used (for the card)."""
    from .models import save_model
    from .models.nets import pick_device
    from .models.registry import check_model_name
    from .training import fit

    check_model_name(name)
    start_files = {Path(start.weights_path).resolve(), Path(start_card).resolve()}
    if {Path(out_dir, f"{name}{suffix}").resolve() for suffix in (".json", ".safetensors")} & start_files:
        raise InputError(f"The new model would be written over the start model {start.card['id']}; give it "
                         "another name or output folder")
    report = progress or (lambda fraction, message: None)
    device = pick_device(config.device)

    def dice_of(network, items) -> list[float]:  # on a copy: inference may fold batch norms in place
        if should_stop is not None and should_stop():
            raise CancelledError("Fine-tuning was cancelled")
        return evaluate(copy.deepcopy(network).to(device).eval(), device, items)

    report(0.0, f"measuring the start model {start.card['id']} on {counted(len(held_out), 'held-out ' + unit)}")
    before = dice_of(start.network, held_out)
    network = start.network
    epochs_seen = []

    def validate(model, device):
        if validation is None:  # the last epoch is kept
            epochs_seen.append(1)
            return {"score": float(len(epochs_seen))}
        dice = _mean(dice_of(model, validation))
        return {"score": dice, "val_dice": dice}

    def on_epoch(record: dict) -> None:
        shown = f", val Dice {record['val_dice']:.3f}" if "val_dice" in record else ""
        report(0.1 + 0.8 * record["fraction"], f"epoch {record['epoch']}/{config.epochs}: loss "
                                               f"{record['train_loss']:.4f}{shown}")

    report(0.1, f"fine-tuning for {counted(config.epochs, 'epoch', 'epochs')}")
    result = fit(network, train_set, loss_fn, validate, config, progress=on_epoch, should_cancel=should_stop,
                 step_factory=frozen_norm_steps(loss_fn, config))
    report(0.9, f"measuring the fine-tuned model on the same {plural('held-out ' + unit)}")
    after = dice_of(network, held_out)
    data = f"{Path(manifest_path).name}, split '{split}'"
    metrics = {
        "data": (f"{'PHANTOM numbers: ' if phantom else ''}{counted(len(held_out), 'held-out ' + unit)} of {data} "
                 f"({prompt}); the start and the fine-tuned model on the same {plural(unit)} with the same prompts"),
        "phantom": phantom, "manifest": Path(manifest_path).name, "split": split, "n": len(held_out),
        "dice_before": _mean(before), "dice_after": _mean(after),
        "per_item": [{"item": item, "dice_before": b, "dice_after": a}
                     for item, b, a in zip(held_out_names, before, after, strict=True)],
        "fine_tuned_from": start.provenance, "command": command or command_line(), "seed": config.seed,
    }
    kept = ("task", "architecture", "inputs", "outputs", "training_domain")
    card = {"id": name, "version": "1.0.0", **{key: start.card[key] for key in kept if key in start.card},
            "training": {"fine_tuned_from": start.provenance, "data": {"manifest": Path(manifest_path).name,
                                                                        **counts},
                         "command": metrics["command"], "seed": config.seed, "epochs": config.epochs,
                         "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                         "selection": ("best validation Dice ('val' rows)" if validation is not None else
                                       "last epoch (the held-out rows never choose the model)"),
                         "learning_rate": config.learning_rate, "batch_size": config.batch_size,
                         "defaults": DEFAULTS_WHY,
                         "batch_norms": "frozen: the start model's running statistics (smartimaging.finetune)",
                         "seconds": round(result.seconds, 1), "history": result.history,
                         "training_domain": "the start model's (the fine-tuning rows are not added)"},
            "metrics": metrics,
            "intended_use": (f"Fine-tuned from {start.card['id']} (its card: {start.card['intended_use']}) "
                             + ("on synthetic phantoms; not for clinical use." if phantom else
                                "on the user's corrected ROIs; research use, validate on your own data before any "
                                "clinical use.")),
            "weights_sha256": ""}
    written = save_model(network, card, out_dir)
    report(1.0, f"wrote {written.name}")
    return FinetuneResult(written, metrics["dice_before"], metrics["dice_after"], len(held_out), split, unit,
                          phantom)
