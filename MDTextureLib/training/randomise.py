"""Domain randomisation over the acquisition: what another scanner, protocol or FF calibration would change.

The §3.2 augmentation moves the leg (resize, rotation, crop) and scales its intensity; this module changes how the
leg was *acquired*, so that the network cannot lean on one generator's (one scanner's) noise level, sharpness,
slice profile or FF calibration. Each transform is a pure function of a training stack ``(3, H, W)`` of fat
fractions (slices k−1, k, k+1, before normalisation; 0 outside the body, as the pipeline gives them) and a
``torch.Generator``; :func:`randomise_stack` applies them in acquisition order, each with its own probability:

1. **FF calibration** ``ff · scale + offset`` (another Dixon fitting / fat model shifts and stretches every FF),
2. **bias field**: a smooth multiplicative field ``exp(g(x, y))`` with ``|g| ≤ amplitude`` (residual B0/B1 and
   coil shading that the fat/water ratio does not cancel); one field for the three slices (it varies slowly in z),
3. **slice thickness**: each slice mixed with its neighbours, ``(1 − w) x_k + w/2 (x_{k−1} + x_{k+1})`` (a thicker
   slice profile's partial volume; the outer slices, whose second neighbour the stack does not hold, reuse
   themselves in its place),
4. **in-plane resolution**: area-downsampled by a factor f and bilinearly upsampled back (a coarser matrix),
5. **noise**: Gaussian, or Rician-like ``|ff + n₁ + i n₂|`` (the magnitude-image bias that lifts low FF values).

Afterwards the values are clipped to [0, 1] (what ``ffcheck`` does to a real FF map) and everything outside the
body is 0 again (the pipeline masks the body after acquisition). The body is ``body`` when given, otherwise every
non-zero pixel (the FF of air is exactly 0 in a stack).

All settings live in :class:`RandomisationConfig`, which training writes into the model card under
``training.randomisation``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RandomisationConfig:
    """Probability and range of each acquisition transform (ranges are drawn uniformly)."""

    enabled: bool = True
    calibration_p: float = 0.5
    ff_offset: tuple = (-0.05, 0.05)  # added to the FF fraction
    ff_scale: tuple = (0.9, 1.1)  # multiplies the FF fraction
    bias_p: float = 0.5
    bias_amplitude: tuple = (0.0, 0.2)  # max |log field|: 0.2 → the field lies in [0.82, 1.22]
    thickness_p: float = 0.3
    thickness_weight: tuple = (0.0, 0.5)  # w: share of the slice taken from its two neighbours
    resolution_p: float = 0.3
    resolution_factor: tuple = (1.0, 2.5)  # in-plane pixel size multiplied by f
    noise_p: float = 0.5
    noise_std: tuple = (0.0, 0.05)  # in FF fraction
    rician_p: float = 0.5  # given noise: Rician-like rather than Gaussian

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def _uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _happens(p: float, generator: torch.Generator) -> bool:
    return float(torch.rand((), generator=generator, dtype=torch.float64)) < p


def body_of(stack: torch.Tensor) -> torch.Tensor:
    """Pixels inside the body: the non-zero ones (air is exactly 0 in a fat-fraction stack)."""
    return stack != 0


def ff_calibration(stack: torch.Tensor, offset: float, scale: float, body: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """``stack · scale + offset`` inside the body, 0 outside (not clipped: :func:`randomise_stack` clips once)."""
    body = body_of(stack) if body is None else body
    return torch.where(body, stack * scale + offset, torch.zeros_like(stack))


def smooth_field(height: int, width: int, amplitude: float, generator: torch.Generator,
                 order: int = 2) -> torch.Tensor:
    """(H, W) field ``exp(g)``, ``g`` a random sum of cosines up to ``order`` cycles per half window, scaled so that
    max |g| = ``amplitude`` exactly (a constant field 1 when amplitude is 0)."""
    y = torch.linspace(0.0, 1.0, height, dtype=torch.float64).view(-1, 1)
    x = torch.linspace(0.0, 1.0, width, dtype=torch.float64).view(1, -1)
    g = torch.zeros(height, width, dtype=torch.float64)
    for i in range(order + 1):
        for j in range(order + 1):
            if i == j == 0:
                continue
            c = float(torch.randn((), generator=generator, dtype=torch.float64)) / (1 + i * i + j * j)
            g += c * torch.cos(math.pi * i * y) * torch.cos(math.pi * j * x)
    peak = float(g.abs().max())
    if peak == 0 or amplitude == 0:
        return torch.ones(height, width, dtype=torch.float32)
    return torch.exp(g * (amplitude / peak)).float()


def bias_field(stack: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """The stack times one (H, W) field, the same for the three slices (air stays 0)."""
    return stack * field.to(device=stack.device, dtype=stack.dtype)


def slice_thickness(stack: torch.Tensor, weight: float) -> torch.Tensor:
    """Each slice ``(1 − w) x_k + w/2 (x_{k−1} + x_{k+1})``; an outer slice stands in for its missing neighbour."""
    below = torch.cat([stack[:1], stack[:-1]])  # x_{k−1}, slice 0 reusing itself
    above = torch.cat([stack[1:], stack[-1:]])  # x_{k+1}, the last slice reusing itself
    return (1 - weight) * stack + 0.5 * weight * (below + above)


def in_plane_resolution(stack: torch.Tensor, factor: float) -> torch.Tensor:
    """Area-downsample by ``factor`` (a coarser matrix) and bilinearly upsample back to the stack's size."""
    h, w = stack.shape[-2:]
    small = (max(1, round(h / factor)), max(1, round(w / factor)))
    if small == (h, w):
        return stack.clone()
    coarse = F.interpolate(stack[None], size=small, mode="area")
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]


def add_noise(stack: torch.Tensor, std: float, generator: torch.Generator, rician: bool = False,
              body: torch.Tensor | None = None) -> torch.Tensor:
    """Gaussian noise of ``std`` inside the body, or Rician-like ``|x + n₁ + i n₂|`` (both n of ``std``)."""
    body = body_of(stack) if body is None else body
    n1 = torch.randn(stack.shape, generator=generator).to(stack) * std
    if rician:
        n2 = torch.randn(stack.shape, generator=generator).to(stack) * std
        noisy = torch.sqrt((stack + n1) ** 2 + n2 ** 2)
    else:
        noisy = stack + n1
    return torch.where(body, noisy, torch.zeros_like(stack))


def randomise_stack(stack: torch.Tensor, config: RandomisationConfig, generator: torch.Generator,
                    body: torch.Tensor | None = None) -> torch.Tensor:
    """One training stack (3, H, W) of FF fractions through the enabled transforms (module docstring), each with
    its probability. The same number of draws decides whether each transform happens, whatever is decided."""
    if not config.enabled:
        return stack
    body = body_of(stack) if body is None else body
    out = stack
    if _happens(config.calibration_p, generator):
        out = ff_calibration(out, _uniform(*config.ff_offset, generator), _uniform(*config.ff_scale, generator),
                             body)
    if _happens(config.bias_p, generator):
        out = bias_field(out, smooth_field(*out.shape[-2:], _uniform(*config.bias_amplitude, generator), generator))
    if _happens(config.thickness_p, generator):
        out = slice_thickness(out, _uniform(*config.thickness_weight, generator))
    if _happens(config.resolution_p, generator):
        out = in_plane_resolution(out, _uniform(*config.resolution_factor, generator))
    if _happens(config.noise_p, generator):
        out = add_noise(out, _uniform(*config.noise_std, generator), generator,
                        rician=_happens(config.rician_p, generator), body=body)
    return torch.where(body, out.clamp(0.0, 1.0), torch.zeros_like(out))


def randomise_batch(images: torch.Tensor, seeds: torch.Tensor, config: RandomisationConfig) -> torch.Tensor:
    """(B, 3, H, W) stacks, each randomised with its own generator seeded by ``seeds[b]`` (so an image's draws do
    not depend on the batch it sits in, nor on the number of DDP processes)."""
    if not config.enabled:
        return images
    out = [randomise_stack(img, config, torch.Generator().manual_seed(int(s))) for img, s in zip(images, seeds)]
    return torch.stack(out)
