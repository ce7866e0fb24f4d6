"""MONAI's `BasicUNet` (monai 1.6.1, `monai/networks/nets/basic_unet.py`) without importing MONAI.

Same modules in the same order, so the parameter names (`conv_0.conv_0.conv.weight`, `upcat_4.upsample.deconv.bias`,
...), the forward pass and the random initialisation under a given seed are MONAI's: cards trained with MONAI's
network load unchanged (tested against MONAI on every shipped card). Importing any `monai.*` module runs MONAI's
top-level `__init__` (about 3 s on two cores); inference needs only these few layers.

Supported options are the ones a card may name: activations relu / leakyrelu / prelu / elu / gelu (MONAI's defaults
for each), norms batch / instance (MONAI's: instance without affine parameters), upsampling by transposed
convolution (`deconv`) or linear interpolation (`nontrainable`, with MONAI's 1×1 pre-convolution when the channel
count changes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leakyrelu": nn.LeakyReLU, "prelu": nn.PReLU, "elu": nn.ELU, "gelu": nn.GELU}
UPSAMPLING = ("deconv", "nontrainable")


def _layer(kind: str, spatial_dims: int):
    return getattr(nn, f"{kind}{spatial_dims}d")


def _norm(name: str, spatial_dims: int, channels: int) -> nn.Module:
    return _layer("BatchNorm" if name == "batch" else "InstanceNorm", spatial_dims)(channels)


class _Convolution(nn.Sequential):
    """MONAI `Convolution` as BasicUNet uses it: 3×3 convolution, then `adn` = norm, dropout, activation."""

    def __init__(self, spatial_dims: int, in_chns: int, out_chns: int, act: str, norm: str, bias: bool,
                 dropout: float):
        super().__init__()
        self.add_module("conv", _layer("Conv", spatial_dims)(in_chns, out_chns, 3, padding=1, bias=bias))
        adn = nn.Sequential()
        adn.add_module("N", _norm(norm, spatial_dims, out_chns))
        adn.add_module("D", nn.Dropout(dropout))
        adn.add_module("A", ACTIVATIONS[act]())
        self.add_module("adn", adn)


class TwoConv(nn.Sequential):
    def __init__(self, spatial_dims, in_chns, out_chns, act, norm, bias, dropout):
        super().__init__()
        self.add_module("conv_0", _Convolution(spatial_dims, in_chns, out_chns, act, norm, bias, dropout))
        self.add_module("conv_1", _Convolution(spatial_dims, out_chns, out_chns, act, norm, bias, dropout))


class Down(nn.Sequential):
    def __init__(self, spatial_dims, in_chns, out_chns, act, norm, bias, dropout):
        super().__init__()
        self.add_module("max_pooling", _layer("MaxPool", spatial_dims)(kernel_size=2))
        self.add_module("convs", TwoConv(spatial_dims, in_chns, out_chns, act, norm, bias, dropout))


class UpCat(nn.Module):
    """Upsample ×2, pad to the encoder map (odd sizes), concatenate [encoder, upsampled], two convolutions."""

    def __init__(self, spatial_dims, in_chns, cat_chns, out_chns, act, norm, bias, dropout, upsample="deconv",
                 halves=True):
        super().__init__()
        up_chns = in_chns // 2 if halves else in_chns
        self.upsample = nn.Sequential()
        if upsample == "deconv":
            self.upsample.add_module("deconv", _layer("ConvTranspose", spatial_dims)(in_chns, up_chns, 2, stride=2))
        else:
            if up_chns != in_chns:
                self.upsample.add_module("preconv", _layer("Conv", spatial_dims)(in_chns, up_chns, 1))
            mode = ("linear", "bilinear", "trilinear")[spatial_dims - 1]
            self.upsample.add_module("upsample_non_trainable",
                                     nn.Upsample(scale_factor=(2.0,) * spatial_dims, mode=mode, align_corners=True))
        self.convs = TwoConv(spatial_dims, cat_chns + up_chns, out_chns, act, norm, bias, dropout)

    def forward(self, x: torch.Tensor, x_e: torch.Tensor) -> torch.Tensor:
        x_0 = self.upsample(x)
        pad = [0] * (2 * (x.dim() - 2))
        for i in range(x.dim() - 2):
            if x_e.shape[-i - 1] != x_0.shape[-i - 1]:
                pad[2 * i + 1] = 1
        x_0 = F.pad(x_0, pad, "replicate")
        return self.convs(torch.cat([x_e, x_0], dim=1))


class BasicUNet(nn.Module):
    """Five-level U-Net: `features` = five encoder widths + the width after the last upsampling."""

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 2,
                 features=(32, 32, 64, 128, 256, 32), act: str = "relu", norm: str = "batch", bias: bool = True,
                 dropout: float = 0.0, upsample: str = "deconv"):
        super().__init__()
        if act not in ACTIVATIONS or norm not in ("batch", "instance") or upsample not in UPSAMPLING:
            raise ValueError(f"unsupported BasicUNet option: act={act}, norm={norm}, upsample={upsample}")
        f = tuple(features)
        args = (act, norm, bias, dropout)
        self.conv_0 = TwoConv(spatial_dims, in_channels, f[0], *args)
        self.down_1 = Down(spatial_dims, f[0], f[1], *args)
        self.down_2 = Down(spatial_dims, f[1], f[2], *args)
        self.down_3 = Down(spatial_dims, f[2], f[3], *args)
        self.down_4 = Down(spatial_dims, f[3], f[4], *args)
        self.upcat_4 = UpCat(spatial_dims, f[4], f[3], f[3], *args, upsample)
        self.upcat_3 = UpCat(spatial_dims, f[3], f[2], f[2], *args, upsample)
        self.upcat_2 = UpCat(spatial_dims, f[2], f[1], f[1], *args, upsample)
        self.upcat_1 = UpCat(spatial_dims, f[1], f[0], f[5], *args, upsample, halves=False)
        self.final_conv = _layer("Conv", spatial_dims)(f[5], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.conv_0(x)
        x1 = self.down_1(x0)
        x2 = self.down_2(x1)
        x3 = self.down_3(x2)
        x4 = self.down_4(x3)
        u4 = self.upcat_4(x4, x3)
        u3 = self.upcat_3(u4, x2)
        u2 = self.upcat_2(u3, x1)
        u1 = self.upcat_1(u2, x0)
        return self.final_conv(u1)
