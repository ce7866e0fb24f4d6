"""BreastLVI networks as the paper describes them.

- VanillaCNN (2D): five blocks of 3×3 convolution (stride 1, padding 1) + ReLU + 2×2 max-pool, each doubling the
  feature maps and halving the size, then flatten → FC 512 → dropout → FC to the output.
- ResNet10 (2D): MONAI's `resnet10` with `spatial_dims=2` (:class:`.resnet.ResNet`, built by `nets.build_network`).
- ResNet10 (3D): MONAI's 3D `resnet10` (:class:`.resnet.ResNet`) whose final global average pooling is replaced by
  two conv–pool layers (3×3×3 convolution, batch norm, ReLU, 2×2×2 max-pool, the same kernel settings as the rest),
  then FC.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .resnet import ResNet


class VanillaCNN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 1, features: int = 32, input_size: int = 64,
                 hidden: int = 512, dropout: float = 0.5, blocks: int = 5):
        super().__init__()
        layers, channels = [], in_channels
        for block in range(blocks):
            width = features * 2**block
            layers += [nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        side = input_size // 2**blocks
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels * side * side, hidden), nn.ReLU(inplace=True),
                                        nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _head_side(n: int, conv1_stride: int) -> int:
    """Side of the conv-pool head's output for an input side `n` (computed, not run: a forward pass on the meta
    device, where the registry builds networks, imports torch._dynamo and sympy, ~1.5 s)."""
    n = (n - 1) // conv1_stride + 1  # 7×7×7 stem, padding 3
    for _ in range(4):  # 3×3×3 max-pool and the stride-2 layers 2-4, all padding 1
        n = (n - 1) // 2 + 1
    for _ in range(2):  # 2×2×2 max-pools, ceil mode
        n = (n + 1) // 2
    return n


class ResNet10ConvPool3D(nn.Module):
    """MONAI 3D ResNet10 trunk + two conv–pool layers instead of the global average pooling + FC."""

    def __init__(self, in_channels: int = 1, num_classes: int = 1, widen_factor: float = 1.0,
                 input_size: tuple[int, int, int] = (16, 64, 64), conv1_stride: int = 2, head_channels: int = 128):
        super().__init__()
        trunk = ResNet(10, spatial_dims=3, n_input_channels=in_channels, num_classes=num_classes,
                       widen_factor=widen_factor, conv1_t_stride=conv1_stride)
        self.trunk = nn.Sequential(trunk.conv1, trunk.bn1, trunk.act, trunk.maxpool, trunk.layer1, trunk.layer2,
                                   trunk.layer3, trunk.layer4)
        channels = trunk.fc.in_features
        self.head = nn.Sequential(
            nn.Conv3d(channels, head_channels, 3, 1, 1, bias=False), nn.BatchNorm3d(head_channels), nn.ReLU(True),
            nn.MaxPool3d(2, ceil_mode=True),
            nn.Conv3d(head_channels, head_channels, 3, 1, 1, bias=False), nn.BatchNorm3d(head_channels), nn.ReLU(True),
            nn.MaxPool3d(2, ceil_mode=True), nn.Flatten())
        self.fc = nn.Linear(head_channels * math.prod(_head_side(n, conv1_stride) for n in input_size), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.trunk(x)))
