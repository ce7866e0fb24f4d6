"""Pix2Pix (Isola et al. 2017) networks: U-Net generator with skip connections and the PatchGAN discriminator.

Same blocks as the reference implementation (4×4 convolutions with stride 2, batch norm, LeakyReLU 0.2 down,
ReLU up, dropout 0.5 in the innermost ngf×8 up-blocks, tanh output). The reference `unet_256` fails on 384² inputs
because its eight halvings do not divide 384; here the input is reflect-padded to a multiple of 2^depth and the
output cropped back, so any in-plane size works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _UnetBlock(nn.Module):
    """One level: down-convolution, the inner levels, up-convolution; concatenates its input (skip) unless outermost."""

    def __init__(self, outer: int, inner: int, submodule: nn.Module | None = None, outermost: bool = False,
                 in_channels: int | None = None, dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        in_channels = in_channels or outer
        down = [nn.Conv2d(in_channels, inner, 4, 2, 1, bias=False)]
        if outermost:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
            layers = down + [submodule] + up
        elif submodule is None:  # innermost
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
            layers = [nn.LeakyReLU(0.2, True)] + down + up
        else:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
            layers = [nn.LeakyReLU(0.2, True)] + down + [nn.BatchNorm2d(inner), submodule] + up
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """Pix2Pix U-Net with `depth` halvings (8 = the reference unet_256); input padded to a multiple of 2^depth."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ngf: int = 64, depth: int = 8,
                 dropout: bool = True):
        super().__init__()
        if depth < 5:
            raise ValueError("the Pix2Pix U-Net needs at least 5 levels")
        self.multiple = 2**depth
        block = _UnetBlock(ngf * 8, ngf * 8)
        for _ in range(depth - 5):
            block = _UnetBlock(ngf * 8, ngf * 8, block, dropout=dropout)
        block = _UnetBlock(ngf * 4, ngf * 8, block)
        block = _UnetBlock(ngf * 2, ngf * 4, block)
        block = _UnetBlock(ngf, ngf * 2, block)
        self.model = _UnetBlock(out_channels, ngf, block, outermost=True, in_channels=in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode=mode)
        y = self.model(x)
        return y[..., pad_h // 2: pad_h // 2 + height, pad_w // 2: pad_w // 2 + width]


class PatchDiscriminator(nn.Module):
    """PatchGAN: with 3 layers, each output judges a 70×70 patch of input ⊕ output (logits, no sigmoid)."""

    def __init__(self, in_channels: int = 2, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        channels = ndf
        for n in range(1, n_layers + 1):
            previous, channels = channels, ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(previous, channels, 4, stride, 1, bias=False), nn.BatchNorm2d(channels),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(network: nn.Module, gain: float = 0.02) -> nn.Module:
    """The reference initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(module.weight, 0.0, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
    return network
