"""MONAI's ResNet with basic blocks (monai 1.6.1, `monai/networks/nets/resnet.py`: `resnet10/18/34`, shortcut B,
batch norm, ReLU) without importing MONAI.

Same modules in the same order, so the parameter names, the forward pass and the random initialisation under a
given seed (MONAI's Kaiming-normal convolutions, unit batch norms, zero linear bias) are MONAI's; tested against
MONAI on every shipped card. Importing any `monai.*` module runs MONAI's top-level `__init__` (about 3 s on two
cores).
"""

from __future__ import annotations

import torch
from torch import nn

BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
WIDTHS = (64, 128, 256, 512)


def _layer(kind: str, spatial_dims: int):
    return getattr(nn, f"{kind}{spatial_dims}d")


class ResNetBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, spatial_dims: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        conv, norm = _layer("Conv", spatial_dims), _layer("BatchNorm", spatial_dims)
        self.conv1 = conv(in_planes, planes, kernel_size=3, padding=1, stride=stride, bias=False)
        self.bn1 = norm(planes)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = conv(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))
        out += x if self.downsample is None else self.downsample(x)
        return self.act(out)


class ResNet(nn.Module):
    def __init__(self, depth: int, spatial_dims: int = 3, n_input_channels: int = 3, conv1_t_size: int = 7,
                 conv1_t_stride: int = 1, widen_factor: float = 1.0, num_classes: int = 400):
        super().__init__()
        conv, norm = _layer("Conv", spatial_dims), _layer("BatchNorm", spatial_dims)
        widths = [int(w * widen_factor) for w in WIDTHS]
        self.in_planes = widths[0]
        self.conv1 = conv(n_input_channels, self.in_planes, kernel_size=conv1_t_size, stride=conv1_t_stride,
                          padding=conv1_t_size // 2, bias=False)
        self.bn1 = norm(self.in_planes)
        self.act = nn.ReLU(inplace=True)
        self.maxpool = _layer("MaxPool", spatial_dims)(kernel_size=3, stride=2, padding=1)
        for i, (width, blocks) in enumerate(zip(widths, BLOCKS[depth], strict=True)):
            setattr(self, f"layer{i + 1}", self._make_layer(width, blocks, spatial_dims, 1 if i == 0 else 2))
        self.avgpool = _layer("AdaptiveAvgPool", spatial_dims)(1)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            weight = getattr(m, "weight", None)
            if weight is None or weight.is_meta:
                continue  # nothing to initialise on the meta device (its normal_ imports torch._dynamo: ~1 s)
            if isinstance(m, conv):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, norm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, spatial_dims: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_planes != planes:
            downsample = nn.Sequential(_layer("Conv", spatial_dims)(self.in_planes, planes, kernel_size=1,
                                                                     stride=stride),
                                       _layer("BatchNorm", spatial_dims)(planes))
        layers = [ResNetBlock(self.in_planes, planes, spatial_dims, stride, downsample)]
        self.in_planes = planes
        layers += [ResNetBlock(planes, planes, spatial_dims) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        return self.fc(x.view(x.size(0), -1))
