"""ResNet18 (He et al. 2016), defined here so that running a model needs torch alone.

The definition follows torchvision's ``resnet18`` in everything a caller can see:

* the same attribute and parameter names (``conv1``, ``bn1``, ``layer1.0.conv1.weight``,
  ``layer2.0.downsample.0.weight``, …, ``fc``), so the project's safetensors files and torchvision ImageNet state
  dicts load key for key;
* the same modules created in the same order, each drawing its default initial values from torch's random
  generator as it is created, then the same re-initialisation (convolutions ``kaiming_normal_`` with fan-out and
  ReLU gain, batch norm weight 1 and bias 0) in module order. A network built after ``torch.manual_seed(s)`` is
  therefore the one torchvision would have built, bit for bit, and seeded trainings stay reproducible.

``Testing/test_resnet.py`` holds this module to torchvision's: names, shapes, initial weights and outputs.
Importing torchvision costs about 1.4 s of every ``mdtexture classify`` process; this file costs nothing.
"""

from __future__ import annotations

import torch
from torch import nn

#: Residual blocks per stage of ResNet18.
BLOCKS_PER_LAYER = (2, 2, 2, 2)

#: Output channels per stage.
LAYER_WIDTHS = (64, 128, 256, 512)

#: The ImageNet classifier torchvision ends with; built only so that its random draws happen (see ResNet18).
IMAGENET_CLASSES = 1000


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3×3 convolution, padding 1, no bias (batch norm follows)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution, no bias: the shortcut projection when a block changes width or resolution."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm, plus the input (projected by ``downsample`` when shapes change)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        # Creation order matters: each module draws its default initial values from the generator when made.
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return self.relu(out)


def make_layer(in_channels: int, channels: int, blocks: int, stride: int) -> nn.Sequential:
    """One stage: a first block that may change width and resolution, then ``blocks − 1`` that keep them."""
    downsample = None
    if stride != 1 or in_channels != channels:
        # Made before the block, as torchvision does, so its random draws come first.
        downsample = nn.Sequential(conv1x1(in_channels, channels, stride), nn.BatchNorm2d(channels))
    layers = [BasicBlock(in_channels, channels, stride, downsample)]
    layers += [BasicBlock(channels, channels) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def init_weights(net: nn.Module) -> None:
    """torchvision's ResNet initialisation, in module order: convolutions from N(0, 2 / fan_out), batch norm
    scale 1 and shift 0 (the linear layer keeps its default)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) and m.weight.is_meta:
            # A network built on the meta device (shapes only) has no values to draw; drawing them anyway would
            # import torch's compiler (about 1.4 s) and change nothing.
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class ResNet18(nn.Module):
    """ResNet18 as torchvision defines it: stem (7×7 convolution, batch norm, ReLU, 3×3 max pooling), four stages
    of two basic blocks, global average pooling and an ImageNet classifier ``fc``.

    The MDTexture network keeps the stem and the stages it needs and drops the rest; the whole network is still
    built, so that the random generator is drawn exactly as torchvision draws it (layer4 and the 1000-class
    classifier included, even where they are thrown away).
    """

    def __init__(self, num_classes: int = IMAGENET_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, LAYER_WIDTHS[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(LAYER_WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = LAYER_WIDTHS[0]
        for i, (channels, blocks) in enumerate(zip(LAYER_WIDTHS, BLOCKS_PER_LAYER), start=1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", make_layer(in_channels, channels, blocks, stride))
            in_channels = channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(LAYER_WIDTHS[-1], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
