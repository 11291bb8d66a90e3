"""The canonical orientation the network sees, and the exact way from any stored axis order into it and back.

The model's convention (phantom/anatomy.py, written in every model card under ``orientation``): arrays (z, y, x)
with the column index x growing to patient Left, the row index y to Posterior and the slice index z to Superior
(LPS, an identity direction matrix), holding one RIGHT calf (so its lateral side is at small x, anterior at small y).

A grid's direction cosines say where each voxel axis points. The nearest signed axis permutation maps the stored
array onto (S, P, L) order losslessly (a transpose and flips, a view), and its inverse puts any canonical result back
in the input's own array order, so every output keeps the input's size, spacing, origin and direction.

* Oblique grids get the nearest permutation: up to ``OBLIQUE_WARN_DEG`` silently (planning tilts), up to
  ``OBLIQUE_MAX_DEG`` with a warning stating the angle, beyond that refused (the leg's cross-section would be
  stretched by more than 1/cos 30° = 15 %).
* A non-axial acquisition (its slice axis is not S) becomes axial by the permutation. Its former slice spacing is
  then an in-plane spacing: beyond ``MAX_INPLANE_MM`` (the model was trained on 0.7-1.5 mm pixels) it is refused.
* Whatever the plane, axial slices much thinner than the card's ``slice_mm`` are averaged in groups (a thick slice
  integrates the tissue it spans) into slices of about ``slice_mm``, with a warning stating the resulting
  resolution; results go back to the input's slices by linear interpolation. One volume therefore gives one answer
  however it is stored: 1-mm slices stored axially are read as the same 1-mm slices stored sagittally are.
* Axial slices much thicker than ``slice_mm``, and axial pixels coarser than ``MAX_INPLANE_MM`` (and than twice the
  model window's pixel), cannot be made what the model saw: they are read as they are, with a warning that says so
  (each 3-slice stack spans more of the leg; fine texture is lost in large pixels).

Pure numpy; nothing here reads files or knows the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

#: The model's orientation convention, as written in the model cards (``card["orientation"]``).
CANONICAL = {
    "space": "LPS",
    "array_axes": "(z, y, x): x (column) grows to patient left, y (row) to posterior, z (slice) to superior",
    "direction": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    "leg": "right",
    "lateral": "small x",
    "anterior": "small y",
    "slice_mm": 4.0,
    "note": "inputs are reordered into this orientation, left legs are mirrored in x; outputs go back exactly",
}

OBLIQUE_WARN_DEG = 3.0  # below this a tilt changes the leg's cross-section by < 0.14 %: not worth a warning
OBLIQUE_MAX_DEG = 30.0  # beyond this the nearest permutation would stretch the cross-section by > 15 %
MAX_INPLANE_MM = 2.0  # coarser axial pixels than this (after reordering) are not what the model was trained on
THIN_SLICE_RATIO = 1.5  # axial slices thinner than slice_mm / this are averaged into ~slice_mm slices
THICK_SLICE_RATIO = 1.5  # axial slices thicker than slice_mm × this are read with a warning

_LPS = "LPS"
_PLANE_OF_SLICE_AXIS = {"L": "sagittal", "P": "coronal", "S": "axial"}


@dataclass(frozen=True)
class Orientation:
    """How an input array (z, y, x) becomes the canonical array (S, P, L) and back.

    ``axes[c]`` is the input array axis that becomes canonical array axis ``c`` (0 = S, 1 = P, 2 = L) and
    ``flips[c]`` says whether it is reversed. ``z_weights`` (n_out, n_in), when not None, averages the reordered
    slices into thicker axial slices and ``z_back`` (n_in, n_out) interpolates back.
    """

    input_shape_zyx: tuple
    axes: tuple = (0, 1, 2)
    flips: tuple = (False, False, False)
    reordered_spacing_xyz_mm: tuple = (1.0, 1.0, 1.0)
    obliquity_deg: float = 0.0
    slice_axis: str = "S"  # the LPS axis the input's slices are stacked along
    z_weights: np.ndarray | None = field(default=None, compare=False, repr=False)
    z_back: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def is_identity(self) -> bool:
        return self.axes == (0, 1, 2) and not any(self.flips) and self.z_weights is None

    @property
    def plane(self) -> str:
        """'axial', 'coronal' or 'sagittal': the plane of the input's slices."""
        return _PLANE_OF_SLICE_AXIS[self.slice_axis]

    @property
    def spacing_xyz_mm(self) -> tuple:
        """Spacing of the canonical array (after any slice averaging), (x, y, z) in mm."""
        sx, sy, sz = self.reordered_spacing_xyz_mm
        if self.z_weights is not None:
            sz = sz * self.z_weights.shape[1] / self.z_weights.shape[0]
        return (sx, sy, sz)

    @property
    def shape_zyx(self) -> tuple:
        """Shape of the canonical array."""
        shape = [self.input_shape_zyx[a] for a in self.axes]
        if self.z_weights is not None:
            shape[0] = self.z_weights.shape[0]
        return tuple(shape)

    def reordering(self) -> "Orientation":
        """The same reordering without slice averaging (e.g. for labels, which cannot be averaged)."""
        return Orientation(self.input_shape_zyx, self.axes, self.flips, self.reordered_spacing_xyz_mm,
                           self.obliquity_deg, self.slice_axis)

    def to_canonical(self, array_zyx: np.ndarray) -> np.ndarray:
        """The input array in canonical order (a view unless slices are averaged; then float32)."""
        a = np.asarray(array_zyx)
        if tuple(a.shape[-3:]) != tuple(self.input_shape_zyx):
            raise ValueError(f"array of shape {a.shape} is not on the grid of shape {self.input_shape_zyx}")
        lead = a.ndim - 3  # leading axes (e.g. segment layers) travel along untouched
        a = np.transpose(a, tuple(range(lead)) + tuple(lead + ax for ax in self.axes))
        flip = tuple(lead + c for c in range(3) if self.flips[c])
        if flip:
            a = np.flip(a, flip)
        if self.z_weights is not None:
            a = np.tensordot(self.z_weights, a.astype(np.float32), axes=([1], [lead])).astype(np.float32)
            a = np.moveaxis(a, 0, lead)
        return a

    def from_canonical(self, array_zyx: np.ndarray) -> np.ndarray:
        """A canonical array back in the input's array order (the exact inverse of :meth:`to_canonical`'s reordering;
        averaged slices come back by linear interpolation). Always C-contiguous."""
        a = np.asarray(array_zyx)
        lead = a.ndim - 3
        if self.z_back is not None:
            a = np.moveaxis(np.tensordot(self.z_back, a, axes=([1], [lead])), 0, lead).astype(array_zyx.dtype)
        flip = tuple(lead + c for c in range(3) if self.flips[c])
        if flip:
            a = np.flip(a, flip)
        inverse = tuple(int(i) for i in np.argsort(self.axes))
        a = np.transpose(a, tuple(range(lead)) + tuple(lead + ax for ax in inverse))
        return np.ascontiguousarray(a)

    def describe(self) -> dict:
        """JSON-ready account of what was done (for ``prediction.json``)."""
        return {"plane": self.plane, "reordered": not (self.axes == (0, 1, 2) and not any(self.flips)),
                "axes_from_input": [int(a) for a in self.axes], "flipped": [bool(f) for f in self.flips],
                "obliquity_deg": round(float(self.obliquity_deg), 3),
                "canonical_spacing_mm": [round(float(s), 4) for s in self.spacing_xyz_mm],
                "canonical_shape_zyx": [int(n) for n in self.shape_zyx],
                "slices_averaged": self.z_weights is not None}


def nearest_axes(direction: tuple | np.ndarray) -> tuple[list, list, float]:
    """For each voxel index axis i, j, k: the LPS axis (0, 1, 2) it points nearest to, the sign, and the largest
    angle (degrees) between an index axis and its LPS axis. Raises InputError when two index axes point nearest
    to one LPS axis (an obliquity of 45° or a degenerate matrix)."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    norms = np.linalg.norm(d, axis=0)
    if np.any(norms < 1e-6):
        raise InputError("the image's direction matrix has a zero column; its orientation is unknown")
    d = d / norms
    lps = [int(np.argmax(np.abs(d[:, a]))) for a in range(3)]
    if sorted(lps) != [0, 1, 2]:
        raise InputError("the image's voxel axes are oblique by 45° or more (two axes point nearest to one "
                         f"patient axis, direction {np.round(d.ravel(), 3).tolist()}); resample it to an axial grid")
    signs = [1 if d[lps[a], a] > 0 else -1 for a in range(3)]
    cosines = np.clip([abs(d[lps[a], a]) for a in range(3)], 0.0, 1.0)
    return lps, signs, float(np.degrees(np.arccos(np.min(cosines))))


def orientation_of(shape_zyx: tuple, spacing_xyz_mm: tuple, direction: tuple, slice_mm: float | None = None,
                   notes: list | None = None, window_pixel_mm: float | None = None) -> Orientation:
    """The Orientation of an array of ``shape_zyx`` on a grid with ``spacing_xyz_mm`` and ``direction`` (row-major
    3×3, columns = directions of the i, j, k axes in LPS). ``slice_mm``: the model's axial slice thickness (from the
    card): thin axial slices are averaged towards it, thick ones are warned about; ``window_pixel_mm``: the model
    window's pixel (from the card), for the coarse-pixel warning. Warnings are appended to ``notes``."""
    notes = [] if notes is None else notes
    lps, signs, oblique = nearest_axes(direction)
    if oblique > OBLIQUE_MAX_DEG:
        raise InputError(f"the image is oblique by {oblique:.1f}° to the patient axes (more than "
                         f"{OBLIQUE_MAX_DEG:.0f}°); resample it to an axial grid first")
    if oblique > OBLIQUE_WARN_DEG:
        notes.append(f"the image is oblique by {oblique:.1f}° to the patient axes: read along the nearest axes "
                     "(the leg's cross-section is stretched by "
                     f"{100 * (1 / np.cos(np.radians(oblique)) - 1):.1f} % at most)")
    # canonical array axis c holds LPS axis 2 - c; index axis a is array axis 2 - a
    index_axis_of = {l: a for a, l in enumerate(lps)}
    axes = tuple(2 - index_axis_of[2 - c] for c in range(3))
    flips = tuple(signs[index_axis_of[2 - c]] < 0 for c in range(3))
    spacing = tuple(float(spacing_xyz_mm[index_axis_of[l]]) for l in range(3))  # (x=L, y=P, z=S)
    slice_axis = _LPS[lps[2]]
    orient = Orientation(tuple(int(n) for n in shape_zyx), axes, flips, spacing, oblique, slice_axis)
    plane = _PLANE_OF_SLICE_AXIS[slice_axis]
    inplane = max(spacing[0], spacing[1])
    if plane != "axial" and inplane > MAX_INPLANE_MM:
        raise InputError(f"the image is a {plane} acquisition ({spacing_xyz_mm[2]:.2f} mm between slices): read as "
                         f"axial slices its pixels would be {spacing[0]:.2f} × {spacing[1]:.2f} mm, coarser than the "
                         f"{MAX_INPLANE_MM:.1f} mm MDTexture accepts; give an axial acquisition (or a 3-D one with "
                         f"voxels of at most {MAX_INPLANE_MM:.1f} mm)")
    n_in = orient.shape_zyx[0]
    reordered = "reordered to axial and its" if plane != "axial" else "with its"
    if slice_mm and spacing[2] < slice_mm / THIN_SLICE_RATIO and n_in > 1:
        n_out = max(1, int(round(n_in * spacing[2] / slice_mm)))
        weights, back = slice_averaging(n_in, n_out)
        orient = Orientation(orient.input_shape_zyx, axes, flips, spacing, oblique, slice_axis, weights, back)
        notes.append(f"{plane} acquisition {reordered} {n_in} slices of {spacing[2]:.2f} mm averaged into {n_out} "
                     f"axial slices of {orient.spacing_xyz_mm[2]:.2f} mm (pixels {spacing[0]:.2f} × "
                     f"{spacing[1]:.2f} mm; the model reads stacks of {slice_mm:g}-mm slices); results are "
                     "interpolated back onto the input grid")
    elif plane != "axial":
        notes.append(f"{plane} acquisition reordered to axial: {n_in} slices of {spacing[2]:.2f} mm, pixels "
                     f"{spacing[0]:.2f} × {spacing[1]:.2f} mm")
    if slice_mm and spacing[2] > slice_mm * THICK_SLICE_RATIO and n_in > 1:
        notes.append(f"axial slices {spacing[2]:.2f} mm apart, {spacing[2] / slice_mm:.1f}× the {slice_mm:g} mm the "
                     f"model was trained on: each 3-slice stack spans {3 * spacing[2]:.0f} mm of leg instead of "
                     f"{3 * slice_mm:.0f} mm; the verdict and heatmap may not apply")
    coarse = max(MAX_INPLANE_MM, 2 * window_pixel_mm) if window_pixel_mm else None
    if plane == "axial" and coarse and inplane > coarse:
        notes.append(f"pixels of {spacing[0]:.2f} × {spacing[1]:.2f} mm, coarser than {coarse:.1f} mm (the model "
                     f"reads {window_pixel_mm:g}-mm pixels): the texture it classifies is finer than these pixels "
                     "show; the verdict and heatmap may not apply")
    return orient


def slice_averaging(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_out, n_in) weights averaging ``n_in`` thin slices into ``n_out`` thick ones (each thick slice the mean of
    the thin slices it overlaps, weighted by overlap), and (n_in, n_out) linear interpolation back (half-pixel
    convention: slice centres at (k + 0.5) · thickness)."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    weights = np.zeros((n_out, n_in))
    for o in range(n_out):
        lo, hi = edges[o], edges[o + 1]
        for i in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
            weights[o, i] = max(0.0, min(hi, i + 1) - max(lo, i))
    weights /= weights.sum(axis=1, keepdims=True)
    centres_in = np.arange(n_in) + 0.5
    pos = np.clip(centres_in * n_out / n_in - 0.5, 0, n_out - 1)  # position in thick-slice index units
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_out - 1)
    frac = pos - lo
    back = np.zeros((n_in, n_out))
    back[np.arange(n_in), lo] += 1 - frac
    back[np.arange(n_in), hi] += frac
    return weights.astype(np.float32), back.astype(np.float32)


def orientation_for(series, card: dict | None = None, notes: list | None = None) -> Orientation:
    """The Orientation of a DixonSeries' grid, with the card's axial slice thickness."""
    slice_mm = (card or {}).get("orientation", CANONICAL).get("slice_mm")
    window_pixel_mm = ((card or {}).get("input") or {}).get("pixel_mm")
    grid = series.grid
    return orientation_of(series.ff.shape, grid.spacing, grid.direction, slice_mm=slice_mm, notes=notes,
                          window_pixel_mm=window_pixel_mm)


def model_leg_side(card: dict | None) -> str:
    """The side of the leg the model was trained on ('right' unless its card says otherwise)."""
    side = str(((card or {}).get("orientation") or {}).get("leg", CANONICAL["leg"])).lower()
    if side not in ("left", "right"):
        raise InputError(f"model card names an unknown leg side {side!r} under orientation.leg")
    return side
