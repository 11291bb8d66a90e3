"""ResNet18 with the improved class activation map (ICAM) head of Cai et al., Eq. (1)-(2).

Two feature stages, m (finer, M channels) and n (coarser, N channels, half the resolution), are each
global-average-pooled, concatenated and fed to one linear layer W ∈ R^{(M+N)×C}:

    S^c = Σ_k w_k^c F_k^m + Σ_k w_{k+M}^c F_k^n                      (1)
    M^c = Σ_k w_k^c f_k^m + Σ_k w_{k+M}^c U(f_k^n, 2)                (2)

with F = spatial mean of f and U bilinear ×2 (align_corners=False). Because that upsampling preserves the mean,
mean_xy(M^c) = S^c − b^c exactly; ``Testing/test_network.py`` checks it.

Variants are named as in Table 2 of the paper:

========  ==========================  ===========  ========
variant   trunk                       stages        map
========  ==========================  ===========  ========
icam14    full ResNet18               layer3+4     14×14
icam28    ResNet18 cut after layer3   layer2+3     28×28
resnet7   full ResNet18               layer4       7×7 (CAM)
resnet14  cut after layer3            layer3       14×14
resnet28  cut after layer2            layer2       28×28
========  ==========================  ===========  ========
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import resnet18

from .constants import CLASSES, VARIANTS

LAYER_CHANNELS = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}

#: Map side length for a 224×224 input, per variant.
MAP_SIZE_224 = {"icam14": 14, "icam28": 28, "resnet7": 7, "resnet14": 14, "resnet28": 28}


class ICAMNet(nn.Module):
    """ResNet18 trunk (torchvision's definition, same parameter names) + GAP + one linear layer over 1-2 stages."""

    def __init__(self, variant: str = "icam28", num_classes: int = len(CLASSES)):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.stages = VARIANTS[variant]
        trunk = resnet18(weights=None)
        # Keep torchvision's attribute names so ImageNet state dicts load key for key.
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        depth = max(int(s[-1]) for s in self.stages)
        self.layer_names = tuple(f"layer{i}" for i in range(1, depth + 1))
        for name in self.layer_names:
            setattr(self, name, getattr(trunk, name))
        self.fc = nn.Linear(sum(LAYER_CHANNELS[s] for s in self.stages), num_classes)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps of ``self.stages`` (finest first)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = {}
        for name in self.layer_names:
            x = getattr(self, name)(x)
            out[name] = x
        return [out[s] for s in self.stages]

    def pool(self, feats: list[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled feature vector (B, D) the linear layer sees: GAP (a mean) of each stage, concatenated."""
        if mask is not None:
            raise NotImplementedError("masked pooling belongs to the leg variants")
        return torch.cat([f.mean(dim=(2, 3)) for f in feats], dim=1)

    def logits(self, feats: list[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. (1): one linear layer on the pooled features."""
        return self.fc(self.pool(feats, mask))

    def class_maps(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Eq. (2): one map per class at the finest stage's resolution, shape (B, C, h, w).

        The coarse stage's channels are weighted first and the per-class sum upsampled after: bilinear
        upsampling is linear, so U(Σ_k w_k f_k) = Σ_k w_k U(f_k), with C instead of N maps to upsample.
        """
        weights = torch.split(self.fc.weight, [f.shape[1] for f in feats], dim=1)
        fine = torch.einsum("ck,bkhw->bchw", weights[0], feats[0])
        if len(feats) == 1:
            return fine
        coarse = torch.einsum("ck,bkhw->bchw", weights[1], feats[1])
        return fine + F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(x))

    def forward_with_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, C) and class maps (B, C, h, w) from one pass."""
        feats = self.features(x)
        return self.logits(feats), self.class_maps(feats)


def infer_variant(state_dict: dict) -> str | None:
    """The variant whose parameters have exactly these names and shapes, or None."""
    for variant in VARIANTS:
        with torch.device("meta"):  # shapes only: no memory, no random initialisation (0.1 s per network saved)
            reference = ICAMNet(variant).state_dict()
        if set(reference) == set(state_dict) and all(
                tuple(reference[k].shape) == tuple(state_dict[k].shape) for k in reference):
            return variant
    return None


def load_imagenet_trunk(model: ICAMNet, state_dict: dict) -> list[str]:
    """Copy a torchvision ResNet18 ImageNet state dict into the trunk of ``model`` (fc is left as it is).

    Returns the names of the trunk parameters that were loaded. Raises ValueError when the file is not a
    ResNet18 state dict.
    """
    own = model.state_dict()
    loaded = [k for k in own if not k.startswith("fc.") and k in state_dict]
    missing = [k for k in own if not k.startswith("fc.") and k not in state_dict]
    if missing:
        raise ValueError(f"not a torchvision ResNet18 state dict: {len(missing)} trunk tensors missing "
                         f"(e.g. {missing[0]})")
    for k in loaded:
        if tuple(state_dict[k].shape) != tuple(own[k].shape):
            raise ValueError(f"not a torchvision ResNet18 state dict: {k} has shape {tuple(state_dict[k].shape)}")
    model.load_state_dict({k: state_dict[k] for k in loaded}, strict=False)
    return loaded
