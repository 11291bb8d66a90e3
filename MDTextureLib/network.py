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
icam56    cut after layer2            layer1+2     56×56
========  ==========================  ===========  ========

``icam56`` is not in the paper: Eq. (1)-(2) one stage earlier, so that a map cell sees a small patch of the leg
(receptive field of layer2 99 px = 79 mm at 0.8 mm pixels, against 211 px for layer3) and the evidence for a
class has to sit near the texture that carries it.

Leg-pooled variants ``icam28-leg``, ``icam14-leg``, ``icam56-leg`` and ``resnet28-leg`` (ours, not the
paper's) have the same trunk, stages and parameters, but the evidence has to come from the leg: the input is set to 0 outside the body (after
normalisation), and each stage is pooled at the map's resolution over the body mask m (the input mask
area-averaged to h×w) instead of over the whole window:

    F_k = Σ_xy m(x, y) g_k(x, y) / Σ_xy m(x, y),   g = f^m, or U(f^n, 2) for the coarse stage

so S^c − b^c = Σ_xy m M^c / Σ_xy m exactly: the logit is the map's mean over the leg, and air cannot carry it.
A sample whose mask is empty (no body in the window) is pooled over the whole window instead (never 0/0);
``empty_mask`` finds such samples so callers can say so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .constants import CLASSES, LEG_VARIANTS, VARIANTS, pooling_of
from .resnet import ResNet18

LAYER_CHANNELS = {"layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}

#: Map side length for a 224×224 input, per variant.
MAP_SIZE_224 = {"icam14": 14, "icam28": 28, "resnet7": 7, "resnet14": 14, "resnet28": 28, "icam14-leg": 14,
                "icam28-leg": 28, "icam56": 56, "icam56-leg": 56, "resnet28-leg": 28}

#: Masks whose total weight at the map's resolution is below this count as empty (pooled over the window).
EMPTY_MASK_WEIGHT = 1e-6


class ICAMNet(nn.Module):
    """ResNet18 trunk (``resnet.ResNet18``: torchvision's definition, names and seeded initialisation) + GAP + one
    linear layer over 1-2 stages."""

    def __init__(self, variant: str = "icam28", num_classes: int = len(CLASSES)):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        self.variant = variant
        self.stages = VARIANTS[variant]
        self.pooling = pooling_of(variant)
        trunk = ResNet18()
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

    def masked_input(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The input the trunk sees: for leg variants 0 outside the body (x · mask), else ``x`` unchanged."""
        if self.pooling != "leg" or mask is None:
            return x
        return x * mask.to(x.dtype)

    def map_mask(self, mask: torch.Tensor, map_size: tuple) -> torch.Tensor:
        """(B, 1, H, W) input-resolution mask → (B, 1, h, w) at the map's resolution, area-averaged (each map cell
        weighs the share of its input pixels that lie in the body)."""
        return F.adaptive_avg_pool2d(mask.float(), map_size)

    def stage_maps(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every stage at the map's (finest stage's) resolution: the fine one as it is, the coarse one U(f, 2)."""
        size = feats[0].shape[-2:]
        return [feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]]

    def pool(self, feats: list[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled feature vector (B, D) the linear layer sees.

        Paper variants, or no mask: GAP of each stage (the mask is ignored). Leg variants with a mask: the
        mask-weighted mean of each stage at the map's resolution (module docstring); a sample with an empty mask
        falls back to the mean over the whole window.
        """
        if self.pooling != "leg" or mask is None:
            return torch.cat([f.mean(dim=(2, 3)) for f in feats], dim=1)
        m = self.map_mask(mask, feats[0].shape[-2:]).to(feats[0].dtype)
        total = m.sum(dim=(2, 3))  # (B, 1)
        empty = total <= EMPTY_MASK_WEIGHT
        m = torch.where(empty[:, :, None, None], torch.ones_like(m), m)
        total = m.sum(dim=(2, 3))
        return torch.cat([(g * m).sum(dim=(2, 3)) / total for g in self.stage_maps(feats)], dim=1)

    def empty_mask(self, mask: torch.Tensor | None, map_size: tuple) -> torch.Tensor | None:
        """(B,) bool: samples a leg variant pooled over the whole window because the mask held no body."""
        if self.pooling != "leg" or mask is None:
            return None
        return self.map_mask(mask, map_size).sum(dim=(1, 2, 3)) <= EMPTY_MASK_WEIGHT

    def logits(self, feats: list[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. (1): pooled stages (GAP, or the leg mean for leg variants), concatenated, one linear layer."""
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

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, C); ``mask`` (B, 1, H, W) in [0, 1]: the body in the window (used by leg variants)."""
        return self.logits(self.features(self.masked_input(x, mask)), mask)

    def forward_with_maps(self, x: torch.Tensor, mask: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, C) and class maps (B, C, h, w) from one pass."""
        feats = self.features(self.masked_input(x, mask))
        return self.logits(feats, mask), self.class_maps(feats)


def infer_variant(state_dict: dict) -> str | None:
    """The paper variant whose parameters have exactly these names and shapes, or None. A leg variant's weights
    are those of its paper variant (``LEG_VARIANTS``): only the model card tells them apart."""
    for variant in (v for v in VARIANTS if v not in LEG_VARIANTS):
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
