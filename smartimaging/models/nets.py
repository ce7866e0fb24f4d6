"""Networks built from a model card's `architecture` block (MONAI's BasicUNet and ResNet, re-implemented without
importing MONAI in :mod:`.unet` and :mod:`.resnet`), and the checks of model-card fields that no checksum covers.

A model folder is untrusted input: the registry verifies the weights' sha256, but a card's other fields are plain
JSON that anyone can edit. :func:`check_architecture` bounds every hyper-parameter before a network is built (even on
the meta device a hostile depth costs minutes); the tasks check the fields they use with :func:`card_number`,
:func:`card_sizes` and friends, inside :func:`checked_card`, which turns a bad field into one :class:`ModelError`
naming the card and the field.

Architecture bounds (generous for any network these papers use; the demo networks are far inside them):
- channel counts (in/out channels, classes, U-Net features, ngf x 8, head channels, hidden units): 1 to 4096;
  network inputs and outputs: 1 to 16 channels or classes;
- depth of the Pix2Pix U-Net: 5 to 10 halvings; ResNet widen_factor: above 0, at most 8; dropout: 0 to 1;
- input sizes: 1 to 512 voxels a side and at most 2^24 voxels in all (VanillaCNN: 32 to 512, five halvings);
- first convolution: stride 1 to 4, kernel 1 to 15.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from ..errors import InputError, ModelError
from .resnet import ResNet
from .unet import UPSAMPLING, BasicUNet

MAX_CHANNELS = 4096
MAX_IO_CHANNELS = 16
MAX_SIDE = 512
MAX_VOXELS = 2**24
PIX2PIX_DEPTH = (5, 10)
MAX_WIDEN_FACTOR = 8.0
ACTIVATIONS = ("relu", "leakyrelu", "prelu", "elu", "gelu")
NORMS = ("batch", "instance")
DAMAGED = "The card was edited or damaged; reinstall SmartImaging or retrain the model."
T = TypeVar("T")


class CardFieldError(ValueError):
    """One model-card field is missing or outside its documented range; the message starts with its dotted name."""


_MISSING = object()


def card_field(record: dict, path: str, default=_MISSING):
    """The value at a dotted `path` of a card ("inputs.preprocessing.margin_mm"); `default` when absent, else
    CardFieldError."""
    value = record
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            if default is not _MISSING:
                return default
            raise CardFieldError(f"{path} is missing")
        value = value[key]
    return value


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def card_number(value, path: str, low: float, high: float, unit: str = "", integer: bool = False,
                low_open: bool = False) -> float | int:
    """`value` as a finite number (an int when `integer`) within [low, high] (low excluded when `low_open`)."""
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not float(value).is_integer()):
        raise CardFieldError(f"{path} is {_shown(value)}, not {kind}; expected {low:g} to {high:g}{unit}")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number) or number > high or number < low or (low_open and number == low):
        bound = f"above {low:g} and at most {high:g}" if low_open else f"{low:g} to {high:g}"
        raise CardFieldError(f"{path} is {_shown(number)}; expected {bound}{unit}")
    return int(number) if integer else number


def section_number(section, key: str, where: str, low: float, high: float, default=_MISSING) -> float:
    """The number `section[key]` of a card, `where` being the section's dotted place ("metrics.honest_auc"), within
    [low, high]; CardFieldError naming it."""
    if not isinstance(section, dict):
        raise CardFieldError(f"{where} is {_shown(section)}, not a set of values")
    if key not in section and default is _MISSING:
        raise CardFieldError(f"{where}.{key} is missing")
    return card_number(section.get(key, default), f"{where}.{key}", low, high)


def card_sizes(value, path: str, count: int, low: int = 1, high: int = MAX_SIDE,
               max_total: int = MAX_VOXELS) -> tuple[int, ...]:
    """`count` whole numbers in [low, high] whose product is at most `max_total` (a patch or input size)."""
    if not isinstance(value, list | tuple) or len(value) != count:
        raise CardFieldError(f"{path} is {_shown(value)}; expected {count} sizes of {low} to {high}")
    sizes = tuple(card_number(v, f"{path}[{i}]", low, high, integer=True) for i, v in enumerate(value))
    if math.prod(sizes) > max_total:
        raise CardFieldError(f"{path} is {list(sizes)}: {math.prod(sizes)} voxels; expected at most {max_total}")
    return sizes


def card_choice(value, path: str, choices) -> object:
    """`value` when it is one of `choices`."""
    if isinstance(value, bool) != any(isinstance(c, bool) for c in choices) or value not in choices:
        raise CardFieldError(f"{path} is {_shown(value)}; expected one of {', '.join(map(_shown, choices))}")
    return value


def card_text(value, path: str, max_length: int = 200) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise CardFieldError(f"{path} is {_shown(value)}; expected a text of 1 to {max_length} characters")
    return value


def checked_card(card_name: str, check: Callable[[dict], T], card: dict) -> T:
    """`check(card)`, a bad field refused as one ModelError naming the card and the field."""
    try:
        return check(card)
    except CardFieldError as exc:
        raise ModelError(f"Model card {card_name}: {exc}. {DAMAGED}") from None


def _get(params: dict, key: str, default, low, high, integer=True, low_open=False):
    return card_number(params.get(key, default), f"architecture.{key}", low, high, integer=integer,
                       low_open=low_open)


def check_architecture(architecture, channels: bool = True) -> dict:
    """Bound every hyper-parameter of a card's `architecture` block (see the module docstring); CardFieldError on
    the first one outside its range or an unknown network.

    `channels=False` (what :func:`build_network` checks) leaves out the channel counts: they cost nothing on the meta
    device, and a network wider than its weights is refused by the registry's tensor-shape check. Depth and input
    sizes are always bounded (they cost time or memory even before the weights are compared)."""
    def width(key, default, high=MAX_CHANNELS):
        if channels:
            _get(p, key, default, 1, high)

    if not isinstance(architecture, dict):
        raise CardFieldError(f"architecture is {_shown(architecture)}; expected an object with a name")
    name, p = architecture.get("name"), architecture
    if name not in BUILDERS:
        raise CardFieldError(f"architecture.name is {_shown(name)}; expected one of {', '.join(sorted(BUILDERS))}")
    width("in_channels", 1, MAX_IO_CHANNELS)
    if "dropout" in p and name != "pix2pix_unet":
        _get(p, "dropout", 0.0, 0.0, 1.0, integer=False)
    if name.startswith("resnet"):
        _get(p, "widen_factor", 1.0, 0.0, MAX_WIDEN_FACTOR, integer=False, low_open=True)
        _get(p, "conv1_stride", 2, 1, 4)
    if name in ("resnet10", "resnet18", "resnet34"):
        card_choice(p.get("spatial_dims", 2), "architecture.spatial_dims", (2, 3))
        width("num_classes", None, MAX_IO_CHANNELS)
        _get(p, "conv1_size", 7, 1, 15)
    elif name == "resnet10_3d_convpool":
        width("num_classes", 1, MAX_IO_CHANNELS)
        width("head_channels", 128)
        card_sizes(p.get("input_size", [16, 64, 64]), "architecture.input_size", 3)
    elif name == "basic_unet":
        card_choice(p.get("spatial_dims", 2), "architecture.spatial_dims", (2, 3))
        width("out_channels", None, MAX_IO_CHANNELS)
        features = p.get("features")
        if not isinstance(features, list | tuple) or len(features) != 6:
            raise CardFieldError(f"architecture.features is {_shown(features)}; expected 6 channel counts")
        for i, value in enumerate(features if channels else ()):
            card_number(value, f"architecture.features[{i}]", 1, MAX_CHANNELS, integer=True)
        card_choice(p.get("act", "relu"), "architecture.act", ACTIVATIONS)
        card_choice(p.get("norm", "batch"), "architecture.norm", NORMS)
        card_choice(p.get("upsample", "deconv"), "architecture.upsample", UPSAMPLING)
    elif name == "pix2pix_unet":
        width("out_channels", 1, MAX_IO_CHANNELS)
        width("ngf", 64, MAX_CHANNELS // 8)
        _get(p, "depth", 8, *PIX2PIX_DEPTH)
        card_choice(p.get("dropout", True), "architecture.dropout", (True, False))
    elif name == "vanilla_cnn_2d":
        width("num_classes", 1, MAX_IO_CHANNELS)
        width("features", 32, MAX_CHANNELS // 16)  # five blocks double it four times
        _get(p, "input_size", 64, 32, MAX_SIDE)
        width("hidden", 512)
    return architecture


def _resnet(depth: int, params: dict) -> nn.Module:
    return ResNet(
        depth,
        spatial_dims=params.get("spatial_dims", 2),
        n_input_channels=params.get("in_channels", 1),
        num_classes=params["num_classes"],
        widen_factor=params.get("widen_factor", 1.0),
        conv1_t_stride=params.get("conv1_stride", 2),
        conv1_t_size=params.get("conv1_size", 7),
    )


def _basic_unet(params: dict) -> nn.Module:
    return BasicUNet(
        spatial_dims=params.get("spatial_dims", 2),
        in_channels=params.get("in_channels", 1),
        out_channels=params["out_channels"],
        features=tuple(params["features"]),
        act=params.get("act", "relu"),
        norm=params.get("norm", "batch"),
        dropout=params.get("dropout", 0.0),
        upsample=params.get("upsample", "deconv"),
    )


def _pix2pix_unet(params: dict) -> nn.Module:
    from .pix2pix import UnetGenerator

    return UnetGenerator(params.get("in_channels", 1), params.get("out_channels", 1), params.get("ngf", 64),
                         params.get("depth", 8), params.get("dropout", True))


def _vanilla_cnn_2d(params: dict) -> nn.Module:
    from .lvi import VanillaCNN

    return VanillaCNN(params.get("in_channels", 1), params.get("num_classes", 1), params.get("features", 32),
                      params.get("input_size", 64), params.get("hidden", 512), params.get("dropout", 0.5))


def _resnet10_3d_convpool(params: dict) -> nn.Module:
    from .lvi import ResNet10ConvPool3D

    return ResNet10ConvPool3D(params.get("in_channels", 1), params.get("num_classes", 1),
                              params.get("widen_factor", 1.0), tuple(params.get("input_size", (16, 64, 64))),
                              params.get("conv1_stride", 2), params.get("head_channels", 128))


BUILDERS = {
    "pix2pix_unet": _pix2pix_unet,
    "vanilla_cnn_2d": _vanilla_cnn_2d,
    "resnet10_3d_convpool": _resnet10_3d_convpool,
    "resnet10": lambda p: _resnet(10, p),
    "resnet18": lambda p: _resnet(18, p),
    "resnet34": lambda p: _resnet(34, p),
    "basic_unet": _basic_unet,
}


def build_network(architecture: dict) -> nn.Module:
    """Build an untrained network from `{"name": ..., **hyper-parameters}`, bounded by :func:`check_architecture`
    (CardFieldError, a ValueError, beyond the bounds)."""
    check_architecture(architecture, channels=False)
    return BUILDERS[architecture["name"]](architecture)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mirror_averaged(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
    """The mean of `predict` over one input `x` (channels first) and its mirror images along two of its spatial
    `axes`; `predict` maps a batch (n, *x.shape) to per-pixel outputs (n, *x.shape[1:]), each flipped back."""
    flips = [(), (axes[0],), (axes[1],), tuple(axes)]
    outputs = predict(np.stack([np.flip(x, flip) if flip else x for flip in flips]))
    return np.mean([np.flip(output, tuple(a - 1 for a in flip)) if flip else output
                    for output, flip in zip(outputs, flips, strict=True)], axis=0)


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; a named device must exist on this machine (InputError)."""
    if requested != "auto":
        try:
            device = torch.device(requested)
        except (RuntimeError, TypeError):
            raise InputError(f"'{requested}' is not a device: give auto, cpu, cuda, cuda:N or mps") from None
        mps = getattr(torch.backends, "mps", None)
        available = {"cpu": True, "cuda": torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count(),
                     "mps": bool(mps and mps.is_available())}
        if not available.get(device.type, False):
            raise InputError(f"The device {requested} is not available on this machine; use auto or cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def fold_batch_norms(network: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a convolution (in module order) into it; eval mode only.

    Works for the sequential (transposed) conv → norm blocks of the ResNet and BasicUNet and of the Pix2Pix U-Net;
    tests check the output is unchanged.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    network.eval()
    leaves = [(name, module) for name, module in network.named_modules() if not list(module.children())]
    for (_, conv), (norm_name, norm) in zip(leaves, leaves[1:], strict=False):
        transposed = isinstance(conv, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d)
        if (transposed or isinstance(conv, nn.Conv1d | nn.Conv2d | nn.Conv3d)) and isinstance(
                norm, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d) and norm.num_features == conv.out_channels:
            # torch's fuse_conv_bn_eval on a deep copy of the convolution; in place here (the copies cost more
            # than the folding on small networks)
            conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, norm.running_mean, norm.running_var,
                                                          norm.eps, norm.weight, norm.bias, transposed)
            network.set_submodule(norm_name, nn.Identity())
    return network


def prepare_for_inference(network: nn.Module, device: torch.device) -> nn.Module:
    """Eval mode, batch norms folded, channels-last memory on CPU (≈2× faster convolutions there)."""
    network = fold_batch_norms(network.eval())
    if device.type == "cpu":
        network = network.to(memory_format=torch.channels_last)
    return network
