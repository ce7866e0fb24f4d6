"""BreastLVI's classifier trained and evaluated on a worklist's cohort: the module's part of `cohort_training` (the
station's and the desktop's Model section run it in the worker jobs `cohort-train` / `cohort-evaluate`).

Training: one of the paper's networks (VanillaCNN 2D, ResNet10 2D, ResNet10 3D, at the paper's width) on one
sequence (the DCE's second post-contrast phase or the FS-T2WI), trained by `lvi.train.train_lvi` with the paper's
schedule (Adam, learning rate 1e-3 x0.9 every 10 % of the iterations, batch 64 in 2D and 8 in 3D, binary cross-entropy,
left-right mirroring) on the reader's corrected VOIs of the train rows; the val rows choose the epoch by their AUC and
the training cases' Youden point is the cutoff. A GUI run lasts EPOCHS epochs (the paper: 100, the most allowed).

Evaluation: the model, loaded as Compute loads it (`predict.load_lvi_model`: checksums, every card field bounded),
scores the test rows' corrected VOIs on its sequence; `cohort_training` makes the table (AUC with its DeLong CI,
SEN/SPE/ACC at the card's cutoff with counts, Dice of the AI VOIs with the corrections) and the ROC curve.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..models.nets import card_field, checked_card, section_number
from ..models.registry import MAX_CARD_BYTES, read_card, read_json_limited
from ..training import TrainConfig
from ..wording import counted
from .cohort import SEQUENCES, case_inputs
from .predict import DEFAULT_MODELS, check_lvi_card, load_lvi_model
from .train import PAPER_BATCH, case_probabilities, dimensions_of, train_lvi

NETWORKS = {"resnet10-3d": "ResNet10 3D", "resnet10-2d": "ResNet10 2D", "vanilla2d": "VanillaCNN 2D"}  # predict's
SEQUENCE_NAMES = {"DCE": "DCE", "T2": "FS-T2WI"}
DEFAULT_NETWORK, DEFAULT_SEQUENCE = "resnet10-3d", "DCE"  # the paper's best model
EPOCHS, MAX_EPOCHS = 30, 100  # a GUI run; the paper's schedule
LEARNING_RATE = 1e-3  # the paper's
DEMO_TITLE = " + ".join(DEFAULT_MODELS)  # what Compute runs without a cohort's model: both sequences, fused

Progress = Callable[[float, str], None]


def network_title(network: str, sequence: str) -> str:
    """"ResNet10 3D on the DCE"."""
    return f"{NETWORKS[network]} on the {SEQUENCE_NAMES[sequence]}"


def choices() -> list[tuple[str, str]]:
    """(value, title) of every network x sequence a Model section offers, the paper's best first."""
    return [(f"{network}:{sequence}", network_title(network, sequence)) for sequence in SEQUENCES
            for network in NETWORKS]


def check_choice(network: str, sequence: str) -> None:
    if network not in NETWORKS:
        raise InputError(f"Network {network!r}: choose {', '.join(NETWORKS)}")
    if sequence not in SEQUENCES:
        raise InputError(f"Sequence {sequence!r}: choose {' or '.join(SEQUENCES)}")


def choice_arguments(choice: str) -> list[str]:
    """The worker's `cohort-train` options of a Model section's choice ("resnet10-3d:DCE")."""
    network, _, sequence = choice.partition(":")
    check_choice(network, sequence)
    return ["--network", network, "--sequence", sequence]


def with_sequence(rows: list[dict], sequence: str | None) -> tuple[list[dict], int]:
    """The done rows that have `sequence`'s image (the worklist saves a case without its FS-T2WI) and how many are
    left out; all of them for an unknown sequence (a damaged card, refused when the model is loaded)."""
    if sequence not in SEQUENCES:
        return rows, 0
    kept = [row for row in rows if row.get(SEQUENCES[sequence])]
    return kept, len(rows) - len(kept)


def left_out_note(left_out: int, sequence: str) -> str:
    """" (1 done case without its FS-T2WI left out)", or "" for none."""
    return (f" ({counted(left_out, 'done case')} without {'its' if left_out == 1 else 'their'} "
            f"{SEQUENCE_NAMES[sequence]} left out)" if left_out else "")


def check_splits(rows: list[dict], more: str, note: str = "") -> None:
    """Refuse training rows whose val split lacks LVI-negative or LVI-positive patients: the val AUC chooses the
    epoch. `more` says what to do; `note` (`left_out_note`) follows the counts."""
    counts = [len({row["patient_id"] for row in rows if row["split"] == "val" and row["label"] == str(label)})
              for label in (0, 1)]
    if min(counts) < 1:
        raise InputError("Training needs at least one LVI-negative and one LVI-positive case in the val split (about "
                         "15 % of the patients, chosen by patient: their AUC chooses the epoch); it has "
                         f"{counts[0]} LVI-negative and {counts[1]} LVI-positive{note}. {more}")


def train(scratch: Path, name: str, seed: int, epochs: int, network: str, sequence: str, progress: Progress,
          check: Callable[[], None], left_out: int = 0) -> Path:
    """Train `network` on `sequence` of the rows of `scratch`/cases.csv into `scratch` (card id `name`); its card,
    which counts the `left_out` done cases without that sequence."""
    check_choice(network, sequence)
    if not 1 <= epochs <= MAX_EPOCHS:
        raise InputError(f"Epochs {epochs}: choose 1 to {MAX_EPOCHS} (the paper trains {MAX_EPOCHS})")

    def on_epoch(event: dict) -> None:
        check()
        if event.get("step") == "epoch":
            progress(0.1 + 0.85 * event["fraction"], f"epoch {event['epoch']} of {epochs}: validation AUC "
                                                     f"{event['val_auc']:.3f}")

    progress(0.02, f"reading the cases' {SEQUENCE_NAMES[sequence]} boxes around the corrected VOIs")
    config = TrainConfig(epochs=epochs, batch_size=PAPER_BATCH[dimensions_of(network)], learning_rate=LEARNING_RATE,
                         seed=seed, amp=False, show_progress=False)
    card_path = train_lvi(scratch / "cases.csv", sequence, network, scratch, config, model_id=name,
                          progress=on_epoch, arguments={"network": network, "sequence": sequence, "epochs": epochs,
                                                        "seed": seed})
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["training"]["cases_without_sequence"] = left_out
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card_path


def describe(card: dict) -> tuple[str, str]:
    """What a cohort's model was trained on ("lesion VOIs (ResNet10 3D on the DCE)") and the `cohort-train` options
    that train it again."""
    arguments = card["training"]["arguments"]
    note = left_out_note(card["training"].get("cases_without_sequence", 0), arguments["sequence"])
    return (f"lesion VOIs ({network_title(arguments['network'], arguments['sequence'])}){note}",
            f" --network {arguments['network']} --sequence {arguments['sequence']} --epochs {arguments['epochs']}")


def evaluate(card_path: Path, scratch: Path, progress: Progress, check: Callable[[], None]):
    """Probabilities of the test rows of `scratch`/cases.csv by the model: (labels, scores, cutoff, card, extra table
    rows, failed cases). The card's metrics are read as untrusted: a damaged one shows as such in its row."""
    model = load_lvi_model(card_path)
    settings = checked_card(card_path.name, check_lvi_card, model.card)
    sequence, dimensions = model.card["inputs"]["sequence"], model.card["inputs"]["dimensions"]
    progress(0.1, f"reading the held-out cases' {SEQUENCE_NAMES[sequence]} boxes")
    cases = case_inputs(scratch / "cases.csv", sequence, None, dimensions, settings)
    check()
    progress(0.6, "scoring the held-out cases")
    scores = case_probabilities(model.network, cases, next(model.network.parameters()).device)
    card = read_json_limited(card_path, MAX_CARD_BYTES, "Model card")
    extra = [["Network", f"{network_title(model.card['training']['model'], sequence)} ({model.card['id']})"]]
    extra += filter(None, [_validation_auc(card)])
    return (np.array([case["label"] for case in cases]), scores, float(model.card["outputs"]["cutoff"]), card, extra,
            0)


def validation_auc(card: dict) -> float | None:
    """The AUC of a BreastLVI network's val cases at its chosen epoch (its card's metrics.validation.auc.auc); None
    when the card records no validation; CardFieldError when the value is damaged."""
    validation = card_field(card, "metrics.validation", None)
    if validation is None:
        return None
    if not isinstance(validation, dict):
        return section_number(validation, "auc", "metrics.validation", 0, 1)  # refused: not a set of values
    return section_number(validation.get("auc"), "auc", "metrics.validation.auc", 0, 1)


def _validation_auc(card: dict) -> list[str] | None:
    """The table row of the card's validation AUC ("damaged card: ..." when it is not a number in [0, 1]); None
    when the card records none."""
    what = "Validation AUC (training, val split, best epoch)"
    try:
        auc = validation_auc(card)
    except ValueError as exc:
        return [what, f"damaged card: {exc}"]
    return None if auc is None else [what, f"{auc:.3f}"]


def chosen_model(card_path: str | os.PathLike) -> tuple[str, str]:
    """The sequence a BreastLVI classifier card reads and its network's title ("ResNet10 3D on the DCE"), the card
    checked as a prediction checks it."""
    card, path = read_card(card_path)
    checked_card(path.name, check_lvi_card, card)
    sequence = card["inputs"]["sequence"]
    return sequence, network_title(card["training"]["model"], sequence)

