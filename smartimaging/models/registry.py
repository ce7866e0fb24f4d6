"""Model registry: a model is `<id>.json` (card) + `<id>.safetensors` (weights) whose sha256 the card records.

Loading verifies the checksum, builds the network from the card and loads the tensors strictly; anything else is
refused with a :class:`ModelError`. Weights are never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import ModelError
from .nets import build_network, count_parameters

MODELS_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Models"
CARD_REQUIRED = ("id", "version", "task", "architecture", "inputs", "outputs", "weights_sha256", "intended_use")


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class LoadedModel:
    card: dict
    network: torch.nn.Module
    weights_path: Path

    @property
    def provenance(self) -> dict:
        return {"id": self.card["id"], "version": self.card["version"], "sha256": self.card["weights_sha256"]}


def models_dir() -> Path:
    """The folder searched for models: $SMARTIMAGING_MODELS_DIR or the bundled Resources/Models."""
    return Path(os.environ.get("SMARTIMAGING_MODELS_DIR", MODELS_DIR))


def read_card(model_id_or_card: str | os.PathLike, directory: str | os.PathLike | None = None) -> tuple[dict, Path]:
    """Card dict and its path; accepts a model id (looked up in `directory`) or a path to a card."""
    candidate = Path(model_id_or_card)
    if candidate.suffix != ".json":
        candidate = Path(directory or models_dir()) / f"{model_id_or_card}.json"
    if not candidate.is_file():
        raise ModelError(f"Model card not found: {candidate}. Reinstall SmartImaging or train the model first.")
    try:
        card = json.loads(candidate.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"Model card {candidate.name} is not valid JSON (damaged file)") from exc
    missing = [key for key in CARD_REQUIRED if key not in card]
    if missing:
        raise ModelError(f"Model card {candidate.name} lacks {', '.join(missing)}")
    return card, candidate


def load_model(model_id_or_card: str | os.PathLike, directory=None, device: str | torch.device = "cpu") -> LoadedModel:
    """Verify sha256, build the network from the card, load its weights (strict), eval mode."""
    card, card_path = read_card(model_id_or_card, directory)
    weights = card_path.with_name(card.get("weights_file", f"{card['id']}.safetensors"))
    if not weights.is_file():
        raise ModelError(f"The weights of model '{card['id']}' are missing ({weights}). Reinstall SmartImaging "
                         "or retrain the model with the train command.")
    if sha256_of(weights) != card["weights_sha256"]:
        raise ModelError(f"The weights of model '{card['id']}' do not match the checksum in their model card: "
                         "the file was modified or damaged. Refusing to use it.")
    network = build_network(card["architecture"])
    try:
        state = load_file(str(weights))
        network.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError) as exc:
        raise ModelError(f"The weights of model '{card['id']}' do not fit the network in its card: {exc}") from exc
    network.to(device).eval()
    return LoadedModel(card=card, network=network, weights_path=weights)


def save_model(network: torch.nn.Module, card: dict, directory: str | os.PathLike,
               storage_dtype: torch.dtype | None = None) -> Path:
    """Write `<id>.safetensors` and `<id>.json` (with sha256 and parameter count); returns the card path.

    `storage_dtype` (e.g. torch.float16) stores the floating-point tensors in that type to halve the file; loading
    casts them back to the network's float32.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{card['id']}.safetensors"
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
    if storage_dtype is not None:
        state = {name: tensor.to(storage_dtype) if tensor.is_floating_point() else tensor
                 for name, tensor in state.items()}
        card = {**card, "weights_storage_dtype": str(storage_dtype).removeprefix("torch.")}
    save_file(state, str(weights), metadata={"id": card["id"], "version": str(card["version"])})
    card = {**card, "weights_file": weights.name, "weights_sha256": sha256_of(weights),
            "parameters": count_parameters(network)}
    missing = [key for key in CARD_REQUIRED if key not in card]
    if missing:
        raise ValueError(f"card lacks {missing}")
    card_path = directory / f"{card['id']}.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card_path
