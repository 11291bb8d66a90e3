"""Three-slice stacks at the model's pixel size, and the exact way back to the native voxel grid.

Paper §3.2: slices k−1, k, k+1 of an axial volume form the three input channels for slice k. Edge slices repeat
their neighbour so every slice gets a prediction.

Scanners differ in matrix and pixel size (0.7-1.5 mm), so each slice is resampled in-plane to a fixed pixel size
(``pixel_mm``, recorded in the model card) on a ``size_px``² window centred on the leg: a millimetre is the same
number of network pixels whatever the scanner. Forward and inverse are the same affine map used in opposite
directions (torch ``affine_grid`` + bilinear ``grid_sample``, half-pixel convention), so a map computed on the
model grid lands on the native grid where the pixels it came from are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class StackGeometry:
    """How the model window sits on the native slice: everything needed to go there and back."""

    native_shape_yx: tuple  # (rows, cols) of a native slice
    spacing_xy_mm: tuple  # native in-plane spacing (x, y)
    centre_xy_px: tuple  # window centre in native continuous index coordinates (x, y)
    pixel_mm: float  # model pixel size
    size_px: int  # model window side

    def theta_native_from_model(self) -> torch.Tensor:
        """2×3 affine: normalised model coords → normalised native coords (align_corners=False)."""
        rows, cols = self.native_shape_yx
        ax = self.size_px * self.pixel_mm / (self.spacing_xy_mm[0] * cols)
        ay = self.size_px * self.pixel_mm / (self.spacing_xy_mm[1] * rows)
        tx = (2 * self.centre_xy_px[0] + 1) / cols - 1
        ty = (2 * self.centre_xy_px[1] + 1) / rows - 1
        return torch.tensor([[ax, 0.0, tx], [0.0, ay, ty]], dtype=torch.float32)

    def theta_model_from_native(self) -> torch.Tensor:
        """The inverse affine: normalised native coords → normalised model coords."""
        (ax, _, tx), (_, ay, ty) = self.theta_native_from_model().tolist()
        return torch.tensor([[1 / ax, 0.0, -tx / ax], [0.0, 1 / ay, -ty / ay]], dtype=torch.float32)


def leg_centre_xy_px(mask_zyx: np.ndarray) -> tuple:
    """Centroid (x, y) in native index coordinates of the in-plane union of ``mask_zyx``; image centre if empty."""
    plane = np.asarray(mask_zyx).any(axis=0)
    rows, cols = plane.shape
    if not plane.any():
        return ((cols - 1) / 2.0, (rows - 1) / 2.0)
    ys, xs = np.nonzero(plane)
    return (float(xs.mean()), float(ys.mean()))


def window_for(series, pixel_mm: float, size_px: int) -> StackGeometry:
    """The model window on a DixonSeries: ``size_px``² pixels of ``pixel_mm``, centred on the leg's body mask."""
    return StackGeometry(native_shape_yx=tuple(series.ff.shape[1:]), spacing_xy_mm=tuple(series.grid.spacing[:2]),
                         centre_xy_px=leg_centre_xy_px(series.body_mask()), pixel_mm=pixel_mm, size_px=size_px)


def stack_indices(n_slices: int) -> np.ndarray:
    """(n, 3) indices k−1, k, k+1 clipped to the volume (edges repeat their neighbour; 1 slice repeats itself)."""
    k = np.arange(n_slices)
    return np.clip(np.stack([k - 1, k, k + 1], axis=1), 0, n_slices - 1)


def resample_slices(volume_zyx: np.ndarray | torch.Tensor, geometry: StackGeometry,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """Every axial slice resampled onto the model window: (Z, S, S) float32, zero outside the native image."""
    vol = torch.as_tensor(np.asarray(volume_zyx, dtype=np.float32), device=device)
    z = vol.shape[0]
    # Every slice uses the same in-plane map: build the sampling grid once and share it across the batch.
    theta = geometry.theta_native_from_model().to(device)[None]
    grid = F.affine_grid(theta, [1, 1, geometry.size_px, geometry.size_px], align_corners=False)
    return F.grid_sample(vol[:, None], grid.expand(z, -1, -1, -1), mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, 0]


def make_stacks(slices_model: torch.Tensor) -> torch.Tensor:
    """(Z, S, S) resampled slices → (Z, 3, S, S) stacks of slices k−1, k, k+1."""
    idx = torch.as_tensor(stack_indices(slices_model.shape[0]), device=slices_model.device)
    return slices_model[idx]


def maps_to_native(maps: torch.Tensor, geometry: StackGeometry) -> torch.Tensor:
    """(Z, h, w) maps on the model window (any h, w covering it) → (Z, rows, cols) on the native grid.

    Bilinear; native pixels outside the model window get 0.
    """
    z = maps.shape[0]
    rows, cols = geometry.native_shape_yx
    theta = geometry.theta_model_from_native().to(maps.device)[None]
    grid = F.affine_grid(theta, [1, 1, rows, cols], align_corners=False)
    return F.grid_sample(maps[:, None].float(), grid.expand(z, -1, -1, -1), mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, 0]
