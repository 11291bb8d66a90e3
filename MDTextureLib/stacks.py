"""Three-slice stacks at the model's pixel size, and the exact way back to the native voxel grid.

Paper §3.2: slices k−1, k, k+1 of an axial volume form the three input channels for slice k. Edge slices repeat
their neighbour so every slice gets a prediction.

Scanners differ in matrix and pixel size (0.7-1.5 mm), so each slice is resampled in-plane to a fixed pixel size
(``pixel_mm``, recorded in the model card) on a ``size_px``² window centred on the leg: a millimetre is the same
number of network pixels whatever the scanner. Forward and inverse are the same affine map used in opposite
directions (torch ``affine_grid`` + bilinear ``grid_sample``, half-pixel convention), so a map computed on the
model grid lands on the native grid where the pixels it came from are.

The window sits on the CANONICAL slice (``orientation.Orientation``: the input's axes reordered into the model's
LPS convention). A geometry may carry that Orientation, so ``resample_slices`` takes the input's own array and
``maps_to_native`` returns the input's own array order; and it may mirror x (``mirror_x``: a left leg shown to the
network as the right leg it was trained on) — the mirror is part of the affine, so the way back stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .orientation import Orientation, orientation_for


@dataclass(frozen=True)
class StackGeometry:
    """How the model window sits on the native slice: everything needed to go there and back."""

    native_shape_yx: tuple  # (rows, cols) of a native slice (canonical order when an Orientation is carried)
    spacing_xy_mm: tuple  # native in-plane spacing (x, y), of the canonical slice likewise
    centre_xy_px: tuple  # window centre in native continuous index coordinates (x, y)
    pixel_mm: float  # model pixel size
    size_px: int  # model window side
    mirror_x: bool = False  # the window shows the slice mirrored left-right (a left leg as a right one)
    orientation: Orientation | None = None  # input array order → canonical; None: the input is canonical

    def theta_native_from_model(self) -> torch.Tensor:
        """2×3 affine: normalised model coords → normalised native coords (align_corners=False)."""
        rows, cols = self.native_shape_yx
        ax = self.size_px * self.pixel_mm / (self.spacing_xy_mm[0] * cols) * (-1.0 if self.mirror_x else 1.0)
        ay = self.size_px * self.pixel_mm / (self.spacing_xy_mm[1] * rows)
        tx = (2 * self.centre_xy_px[0] + 1) / cols - 1
        ty = (2 * self.centre_xy_px[1] + 1) / rows - 1
        return torch.tensor([[ax, 0.0, tx], [0.0, ay, ty]], dtype=torch.float32)

    def theta_model_from_native(self) -> torch.Tensor:
        """The inverse affine: normalised native coords → normalised model coords (a mirror is its own inverse)."""
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


def window_for(series, pixel_mm: float, size_px: int, orientation: Orientation | None = None,
               leg_mask_zyx: np.ndarray | None = None, mirror_x: bool = False) -> StackGeometry:
    """The model window on a DixonSeries: ``size_px``² pixels of ``pixel_mm`` on the canonical slices, centred on
    the leg (the body mask, or ``leg_mask_zyx``: one leg's part of it, canonical order), mirrored when asked.

    ``orientation`` defaults to the series grid's own (reordering only; no model card, so no slice averaging).
    """
    orient = orientation if orientation is not None else orientation_for(series)
    mask = leg_mask_zyx if leg_mask_zyx is not None else orient.to_canonical(series.body_mask())
    sx, sy, _ = orient.spacing_xyz_mm
    return StackGeometry(native_shape_yx=tuple(orient.shape_zyx[1:]), spacing_xy_mm=(sx, sy),
                         centre_xy_px=leg_centre_xy_px(mask), pixel_mm=pixel_mm, size_px=size_px,
                         mirror_x=mirror_x, orientation=None if orient.is_identity else orient)


def stack_indices(n_slices: int) -> np.ndarray:
    """(n, 3) indices k−1, k, k+1 clipped to the volume (edges repeat their neighbour; 1 slice repeats itself)."""
    k = np.arange(n_slices)
    return np.clip(np.stack([k - 1, k, k + 1], axis=1), 0, n_slices - 1)


def resample_slices(volume_zyx: np.ndarray | torch.Tensor, geometry: StackGeometry,
                    device: torch.device | str = "cpu", canonical: bool = False) -> torch.Tensor:
    """Every axial slice resampled onto the model window: (Z, S, S) float32, zero outside the native image.

    With an Orientation in ``geometry``, ``volume_zyx`` is in the input's array order and is reordered first
    (unless ``canonical``: it is already in canonical order).
    """
    if geometry.orientation is not None and not canonical:
        if isinstance(volume_zyx, torch.Tensor):
            volume_zyx = volume_zyx.cpu().numpy()
        volume_zyx = np.ascontiguousarray(geometry.orientation.to_canonical(np.asarray(volume_zyx, np.float32)))
    vol = torch.as_tensor(np.asarray(volume_zyx, dtype=np.float32), device=device)
    z = vol.shape[0]
    # Every slice uses the same in-plane map: build the sampling grid once and share it across the batch.
    theta = geometry.theta_native_from_model().to(device)[None]
    grid = F.affine_grid(theta, [1, 1, geometry.size_px, geometry.size_px], align_corners=False)
    return F.grid_sample(vol[:, None], grid.expand(z, -1, -1, -1), mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, 0]


def mask_window(mask_zyx: np.ndarray, geometry: StackGeometry, device: torch.device | str = "cpu",
                canonical: bool = False) -> torch.Tensor:
    """The body mask beside each stack: (Z, 1, S, S) in [0, 1], slice k's mask for stack k (the centre slice, the
    one the stack's answer is about), resampled exactly like the stack (same geometry, bilinear: linear
    interpolation of the 0/1 mask, so pixels on the leg's edge carry the share of the body they cover)."""
    return resample_slices(np.asarray(mask_zyx, dtype=np.float32), geometry, device, canonical)[:, None].clamp(0, 1)


def make_stacks(slices_model: torch.Tensor) -> torch.Tensor:
    """(Z, S, S) resampled slices → (Z, 3, S, S) stacks of slices k−1, k, k+1 (edges as ``stack_indices``), in
    channels-last memory order, the order the CPU convolutions run fastest on.

    The stacks are a sliding window over the edge-padded slices, copied once into channels-last: gathering them by
    index and reordering afterwards took 3-5× as long (two copies of 3·Z slices instead of one).
    """
    z = slices_model.shape[0]
    padded = torch.cat([slices_model[:1], slices_model, slices_model[-1:]]) if z > 1 else slices_model.expand(3, -1, -1)
    windows = padded.unfold(0, 3, 1)  # (Z, S, S, 3): a view, no copy
    return windows.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def maps_to_native(maps: torch.Tensor, geometry: StackGeometry, box_yx: tuple | None = None) -> torch.Tensor:
    """(Z, h, w) maps on the model window (any h, w covering it) → (Z, rows, cols) on the native grid.

    Bilinear; native pixels outside the model window get 0. With an Orientation in ``geometry`` the result is in the
    input's own array order (and shape). ``box_yx`` (row slice, column slice of the canonical slice): only the
    pixels in it are sampled and the rest are 0 — each pixel is sampled on its own, so those in the box have the
    values the whole slice would give them (a caller that keeps only the body computes only the body's box).
    """
    z = maps.shape[0]
    rows, cols = geometry.native_shape_yx
    theta = geometry.theta_model_from_native().to(maps.device)[None]
    grid = F.affine_grid(theta, [1, 1, rows, cols], align_corners=False)
    if box_yx is None:
        native = F.grid_sample(maps[:, None].float(), grid.expand(z, -1, -1, -1), mode="bilinear",
                               padding_mode="zeros", align_corners=False)[:, 0]
    else:
        part = grid[:, box_yx[0], box_yx[1]].contiguous()
        native = torch.zeros((z, rows, cols), dtype=torch.float32, device=maps.device)
        native[:, box_yx[0], box_yx[1]] = F.grid_sample(maps[:, None].float(), part.expand(z, -1, -1, -1),
                                                        mode="bilinear", padding_mode="zeros",
                                                        align_corners=False)[:, 0]
    if geometry.orientation is not None:
        native = torch.from_numpy(geometry.orientation.from_canonical(native.cpu().numpy()))
    return native
