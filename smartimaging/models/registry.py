"""Model registry: a model is `<id>.json` (card) + `<id>.safetensors` (weights) whose sha256 the card records.

A model folder is untrusted input. Loading reads the card (size-limited JSON), keeps every file it names inside the
card's folder, reads the safetensors header (size limits, offsets within the file) and checks that it holds exactly
the tensors of the card's network (built on the meta device, so a hostile architecture allocates nothing) before
the checksum is verified and the weights are loaded strictly; anything else is refused with a :class:`ModelError`.
Weights are never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import InputError, ModelError
from ..io import atomic_files
from ..resources import resource_dir
from .nets import build_network, count_parameters

MODELS_DIR = resource_dir("Models")
CARD_NAME = re.compile(r"[^\\\x00-\x1f]{1,64}")  # a card's id and version: DICOM LO values (AlgorithmName...)
CARD_REQUIRED = ("id", "version", "task", "architecture", "inputs", "outputs", "weights_sha256", "intended_use")
MAX_CARD_BYTES = 1 * 2**20  # cards are a few kB
MAX_WEIGHTS_BYTES = 512 * 2**20  # the demo weights are a few MB; a paper-size network is a few hundred
MAX_SAFETENSORS_HEADER_BYTES = 16 * 2**20
MAX_MODEL_FILE_BYTES = 64 * 2**20  # a fitted radiomics pipeline, XGBoost booster or plain form is well under 10 MB
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SAFETENSORS_ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                          "BOOL": 1}


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


def read_json_limited(path: Path, limit: int, what: str) -> dict:
    """A JSON object from a file of at most `limit` bytes; ModelError otherwise."""
    if not path.is_file():
        raise ModelError(f"{what} not found: {path}. Reinstall SmartImaging or train the model first.")
    if path.stat().st_size > limit:
        raise ModelError(f"{what} {path.name} is {path.stat().st_size / 2**20:.1f} MB; a card is a few kB. "
                         "Refusing to read it.")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelError(f"{what} {path.name} is not valid JSON (damaged file)") from exc
    if not isinstance(content, dict):
        raise ModelError(f"{what} {path.name} is not a model card (no JSON object)")
    return content


def file_in_model_folder(card_path: Path, name) -> Path:
    """The file `name` that a card names, refused unless it is a plain file name inside the card's own folder."""
    folder = card_path.resolve().parent
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ModelError(f"The model card {card_path.name} names the file {name!r}, outside its own folder; a card "
                         "may only name files beside it. Refusing to use it.")
    path = (folder / name).resolve()
    if path.parent != folder:
        raise ModelError(f"The model file {name} of {card_path.name} links outside the model folder. Refusing to "
                         "use it.")
    if not path.is_file():
        raise ModelError(f"The model file {name} named by {card_path.name} is missing. Reinstall SmartImaging or "
                         "retrain the model.")
    return path


def verified_model_file(card_path: Path, name, checksums: dict) -> Path:
    """A file named by a radiomics classifier card: inside the card's folder, within the size limit, matching its
    checksum."""
    path = file_in_model_folder(card_path, name)
    if path.stat().st_size > MAX_MODEL_FILE_BYTES:
        raise ModelError(f"The model file {name} is {path.stat().st_size / 2**20:.0f} MB; the limit is "
                         f"{MAX_MODEL_FILE_BYTES // 2**20} MB. Refusing to use it.")
    if sha256_of(path) != checksums.get(name):
        raise ModelError(f"The model file {name} does not match the checksum in its card: it was modified or "
                         "damaged. Refusing to use it.")
    return path


def read_card(model_id_or_card: str | os.PathLike, directory: str | os.PathLike | None = None) -> tuple[dict, Path]:
    """Card dict and its path; accepts a model id (looked up in `directory`) or a path to a card."""
    candidate = Path(model_id_or_card)
    if candidate.suffix != ".json":
        if not MODEL_ID.fullmatch(str(model_id_or_card)) or ".." in str(model_id_or_card):
            raise ModelError(f"{str(model_id_or_card)!r} is not a model id (letters, digits, '.', '_' and '-') "
                             "or a path to a model card (.json)")
        candidate = Path(directory or models_dir()) / f"{model_id_or_card}.json"
    card = read_json_limited(candidate, MAX_CARD_BYTES, "Model card")
    missing = [key for key in CARD_REQUIRED if key not in card]
    if missing:
        raise ModelError(f"Model card {candidate.name} lacks {', '.join(missing)}")
    if not isinstance(card["architecture"], dict) or not isinstance(card["id"], str):
        raise ModelError(f"Model card {candidate.name} is malformed (architecture or id)")
    if not all(CARD_NAME.fullmatch(str(card[key])) for key in ("id", "version")):
        raise ModelError(f"Model card {candidate.name}: its id and version must each be one value of at most 64 "
                         "characters without backslash or control characters (they name the model in DICOM objects)")
    check_card_id(card, candidate)
    return card, candidate


def check_card_id(card: dict, card_path: Path) -> None:
    """Results name a card's id: a card whose file name says another model (renamed or copied by hand) is not the
    model the reader chose; ModelError naming both."""
    model = card.get("id")
    if model != card_path.stem:
        rename = (f"give it back its name ({model}.json) or " if isinstance(model, str) and MODEL_ID.fullmatch(model)
                  else "")
        raise ModelError(f"The model card {card_path.name} names the model {str(model)[:64]!r}, not "
                         f"{card_path.stem!r} as its file name does (a card copied or renamed by hand). Refusing to "
                         f"use it; {rename}train the model again")


def check_weights_size(path: Path) -> int:
    """The size of a weights file, refused (before anything reads it) above MAX_WEIGHTS_BYTES."""
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise ModelError(f"The weights file {path.name} is {size / 2**20:.0f} MB; the limit is "
                         f"{MAX_WEIGHTS_BYTES // 2**20} MB. Refusing to read it.")
    return size


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header, checked (sizes, dtypes, offsets within the file) before
    anything is allocated."""
    size = check_weights_size(path)
    with open(path, "rb") as f:
        prefix = f.read(8)
        header_bytes = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
        if not 2 <= header_bytes <= min(MAX_SAFETENSORS_HEADER_BYTES, size - 8):
            raise ModelError(f"The weights file {path.name} is not a safetensors file (damaged header)")
        try:
            header = json.loads(f.read(header_bytes))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ModelError(f"The weights file {path.name} has a damaged safetensors header") from exc
    data_bytes, shapes = size - 8 - header_bytes, {}
    try:
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            shape, (start, end) = tuple(int(n) for n in entry["shape"]), entry["data_offsets"]
            expected = math.prod(shape) * SAFETENSORS_ITEM_BYTES[entry["dtype"]]
            if min(shape, default=0) < 0 or not 0 <= start <= end <= data_bytes or end - start != expected:
                raise ValueError(name)
            shapes[name] = shape
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"The weights file {path.name} has an inconsistent safetensors header (tensor sizes or "
                         "offsets outside the file). Refusing to read it.") from exc
    return shapes


def load_model(model_id_or_card: str | os.PathLike, directory=None, device: str | torch.device = "cpu") -> LoadedModel:
    """Verify sha256, build the network from the card, load its weights (strict), eval mode."""
    card, card_path = read_card(model_id_or_card, directory)
    weights = file_in_model_folder(card_path, card.get("weights_file", f"{card['id']}.safetensors"))
    stored = safetensors_shapes(weights)
    try:
        with torch.device("meta"):
            network = build_network(card["architecture"])
    except (KeyError, TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise ModelError(f"Model card {card_path.name} describes a network that cannot be built "
                         f"({exc.__class__.__name__}: {exc})") from exc
    expected = network.state_dict()
    if stored != {name: tuple(t.shape) for name, t in expected.items()}:
        raise ModelError(f"The weights of model '{card['id']}' do not fit the network in its card (other tensor "
                         "names or shapes). Refusing to use them.")
    if sha256_of(weights) != card["weights_sha256"]:
        raise ModelError(f"The weights of model '{card['id']}' do not match the checksum in their model card: "
                         "the file was modified or damaged. Refusing to use it.")
    try:  # the weights replace the meta tensors (no random initialisation to overwrite), in the network's dtypes
        state = {name: tensor.to(expected[name].dtype) for name, tensor in load_file(str(weights)).items()}
        network.load_state_dict(state, strict=True, assign=True)
    except (SafetensorError, RuntimeError) as exc:
        raise ModelError(f"The weights of model '{card['id']}' do not fit the network in its card: {exc}") from exc
    if any(t.is_meta for t in (*network.parameters(), *network.buffers())):
        raise ModelError(f"The network of model '{card['id']}' holds tensors its weights file does not set")
    network.to(device).eval()
    return LoadedModel(card=card, network=network, weights_path=weights)


def check_model_name(model_id: str) -> None:
    """Refuse a model id that is not a plain file name (it names the files written into the output folder)."""
    if not isinstance(model_id, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", model_id):
        raise InputError(f"The model name {model_id!r} must be a plain name of letters, digits, '.', '-' and '_' "
                         "(no folders), e.g. mammo-mass-mine")


def save_model(network: torch.nn.Module, card: dict, directory: str | os.PathLike,
               storage_dtype: torch.dtype | None = None) -> Path:
    """Write `<id>.safetensors` and `<id>.json` (with sha256 and parameter count); returns the card path.

    `storage_dtype` (e.g. torch.float16) stores the floating-point tensors in that type to halve the file; loading
    casts them back to the network's float32.
    """
    check_model_name(card["id"])
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{card['id']}.safetensors"
    card_path = directory / f"{card['id']}.json"
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
    if storage_dtype is not None:
        state = {name: tensor.to(storage_dtype) if tensor.is_floating_point() else tensor
                 for name, tensor in state.items()}
        card = {**card, "weights_storage_dtype": str(storage_dtype).removeprefix("torch.")}
    with atomic_files(weights, card_path) as (weights_temp, card_temp):  # a full disk leaves no half model
        save_file(state, str(weights_temp), metadata={"id": card["id"], "version": str(card["version"])})
        card = {**card, "weights_file": weights.name, "weights_sha256": sha256_of(weights_temp),
                "parameters": count_parameters(network)}
        missing = [key for key in CARD_REQUIRED if key not in card]
        if missing:
            raise ValueError(f"card lacks {missing}")
        card_temp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card_path
