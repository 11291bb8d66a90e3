"""Training-time augmentation of Cai et al. §3.2, done for a whole batch with one ``affine_grid`` + ``grid_sample``.

Per image, in the paper's order:

1. resize by a factor ``s`` drawn from [1.0, 1.2] (a zoom in: the leg gets bigger on the same pixel grid),
2. rotate by an angle drawn from [−5°, 5°] about the centre of the resized image,
3. multiply every pixel by an intensity factor drawn from [0.8, 1.2] (one factor per image),
4. crop a ``crop_px``² window (224 in the paper) at a random position inside the resized image.

Geometry 1, 2 and 4 compose into one affine map from the output crop to the input window. In normalised
coordinates (``align_corners=False``, the input window spans [−1, 1]), an output point ``p`` lies at ``k·p + c``
in the rotated, resized frame, with ``k = crop_px / (s·size_px)`` and the crop centre ``c`` uniform in
[−(1 − k), 1 − k] per axis; undoing the rotation gives the input point ``R(−α)(k·p + c)``. Everything outside the
input window samples as 0 (air in a fat-fraction image), as at inference.

The intensity factor multiplies the fat fraction before the model's normalisation ``(x − mean) / std``, so it
scales the image, not the normalised values. The body mask of a leg-pooled variant is moved by the same affine
(``warp_mask``: bilinear, 0 outside the window, no intensity factor), so it stays on the leg it outlines.

Before the geometry, each image goes through the acquisition randomisation of :mod:`.randomise` (noise, bias
field, resolution, slice thickness, FF calibration) when ``config.randomisation`` is enabled, with a generator
seeded per image from the batch's draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .randomise import RandomisationConfig, randomise_batch


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random factors; ``crop_px=None`` crops to the input window size (224 for shipped models)."""

    scale: tuple = (1.0, 1.2)
    rotation_deg: tuple = (-5.0, 5.0)
    intensity: tuple = (0.8, 1.2)
    crop_px: int | None = None
    enabled: bool = True
    randomisation: RandomisationConfig = RandomisationConfig()  # acquisition randomisation (its own switch)

    def as_dict(self) -> dict:
        return {"resize_factor": list(self.scale), "rotation_deg": list(self.rotation_deg),
                "intensity_scale": list(self.intensity), "crop_px": self.crop_px, "enabled": self.enabled}


@dataclass
class AugmentParams:
    """The factors drawn for one batch, each of shape (B,)."""

    scale: torch.Tensor
    angle_deg: torch.Tensor
    intensity: torch.Tensor
    centre_x: torch.Tensor  # crop centre, normalised, in the rotated resized frame
    centre_y: torch.Tensor
    seeds: torch.Tensor | None = None  # per image: seeds the acquisition randomisation
    randomisation: RandomisationConfig | None = None  # None: no acquisition randomisation

    def __getitem__(self, idx) -> "AugmentParams":
        return AugmentParams(self.scale[idx], self.angle_deg[idx], self.intensity[idx], self.centre_x[idx],
                             self.centre_y[idx], None if self.seeds is None else self.seeds[idx], self.randomisation)


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def sample_params(n: int, size_px: int, config: AugmentConfig, generator: torch.Generator) -> AugmentParams:
    """Draw the factors for ``n`` images of side ``size_px`` (always the same number of draws, so runs with and
    without augmentation consume the generator identically)."""
    crop = config.crop_px or size_px
    scale = _uniform(n, *config.scale, generator)
    angle = _uniform(n, *config.rotation_deg, generator)
    intensity = _uniform(n, *config.intensity, generator)
    slack = (1.0 - crop / (scale * size_px)).clamp_min(0.0)  # how far the crop centre may move
    cx = (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * slack
    cy = (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * slack
    seeds = torch.randint(0, 2**62, (n,), generator=generator)
    randomisation = config.randomisation if config.randomisation.enabled else None
    if not config.enabled:
        ones, zeros = torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        return AugmentParams(ones, zeros, ones.clone(), zeros.clone(), zeros.clone(), seeds, randomisation)
    return AugmentParams(scale, angle, intensity, cx, cy, seeds, randomisation)


def theta_for(params: AugmentParams, size_px: int, crop_px: int) -> torch.Tensor:
    """(B, 2, 3) affine from normalised output-crop coordinates to normalised input coordinates."""
    k = crop_px / (params.scale * size_px)
    a = params.angle_deg * (math.pi / 180.0)
    cos, sin = torch.cos(a), torch.sin(a)
    # R(−a) = [[cos, sin], [−sin, cos]]; input = R(−a) (k p + c)
    theta = torch.stack([
        torch.stack([cos * k, sin * k, cos * params.centre_x + sin * params.centre_y], dim=1),
        torch.stack([-sin * k, cos * k, -sin * params.centre_x + cos * params.centre_y], dim=1),
    ], dim=1)
    return theta.float()


def apply_augmentation(images: torch.Tensor, params: AugmentParams, crop_px: int | None = None) -> torch.Tensor:
    """Warp, scale and crop a batch (B, C, S, S) of fat-fraction stacks → (B, C, crop, crop)."""
    b, c, h, w = images.shape
    if h != w:
        raise ValueError(f"augmentation expects square windows, got {h}×{w}")
    crop = crop_px or h
    if params.randomisation is not None:
        images = randomise_batch(images, params.seeds, params.randomisation)
    theta = theta_for(params, h, crop).to(images.device)
    grid = F.affine_grid(theta, [b, c, crop, crop], align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped * params.intensity.to(device=images.device, dtype=images.dtype).view(b, 1, 1, 1)


def warp_mask(mask: torch.Tensor, params: AugmentParams, crop_px: int | None = None) -> torch.Tensor:
    """The body masks (B, 1, S, S) moved exactly as ``apply_augmentation`` moves their stacks (same affine,
    bilinear, 0 outside the window) but not intensity-scaled: (B, 1, crop, crop) in [0, 1]."""
    b, _, h, w = mask.shape
    crop = crop_px or h
    theta = theta_for(params, h, crop).to(mask.device)
    grid = F.affine_grid(theta, [b, 1, crop, crop], align_corners=False)
    return F.grid_sample(mask.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Draw factors for the batch and apply them (see the module docstring)."""
    params = sample_params(images.shape[0], images.shape[-1], config, generator)
    return apply_augmentation(images, params, config.crop_px)
