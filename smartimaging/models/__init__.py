"""Network definitions and the model registry (cards + safetensors weights + sha256)."""

from .nets import build_network
from .registry import MODELS_DIR, LoadedModel, load_model, save_model

__all__ = ["MODELS_DIR", "LoadedModel", "build_network", "load_model", "save_model"]
