"""Muscle segmentations: a labelmap (any image format) or a Slicer ``.seg.nrrd`` brought onto the FF grid as
Slicer stores it, one layer per set of non-overlapping segments (:class:`LabelMap`), with segment names read exactly.

Everything here is in ITK's physical space (LPS, millimetres); arrays are (z, y, x) or (L, z, y, x).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import filecheck
from .errors import InputError
from .io import Grid, _first_line, read_image

# A segmentation losing more than this share of its volume when brought onto the image grid lies partly outside it.
LABELS_OUTSIDE_IMAGE_SHARE = 0.10


@dataclass
class LabelMap:
    """Muscle labels on an image grid, as Slicer stores them: ``layers`` (L, z, y, x), segments within one layer do
    not overlap, segments in different layers may. Label values are unique across layers (1, 2, … in segment order
    for a ``.seg.nrrd``; the file's own values for a plain labelmap) and ``names`` maps value → segment name exactly
    as given (UTF-8)."""

    layers: np.ndarray  # (L, z, y, x) uint16
    names: dict
    warnings: list = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        """One (z, y, x) map for drawing outlines: where segments overlap, the later segment (higher value) is on top.
        Scores use :attr:`layers`, never this."""
        return self.layers[0] if self.layers.shape[0] == 1 else self.layers.max(axis=0)

    def restricted_to(self, mask_zyx: np.ndarray) -> "LabelMap":
        """The same segments with every voxel outside ``mask_zyx`` (e.g. one leg) unlabelled."""
        return LabelMap(np.where(mask_zyx, self.layers, 0).astype(np.uint16), dict(self.names), list(self.warnings))


def pack_layers(masks: dict) -> np.ndarray:
    """{label value: (z, y, x) bool mask} → (L, z, y, x) uint16 layers, as Slicer packs segments: each segment goes
    into the first layer where it overlaps nothing, else into a new layer. For segments exported one by one (the
    Slicer module), so that overlapping segments keep all their voxels."""
    layers: list[np.ndarray] = []
    for value, mask in masks.items():
        mask = np.asarray(mask, bool)
        layer = next((layer for layer in layers if not (layer[mask] > 0).any()), None)
        if layer is None:
            layer = np.zeros(mask.shape, np.uint16)
            layers.append(layer)
        layer[mask] = value
    if not layers:
        raise ValueError("no segments to pack")
    return np.stack(layers)


def read_labels(path: str | os.PathLike, grid: Grid) -> LabelMap:
    """Read a muscle labelmap (any image format) or a Slicer ``.seg.nrrd`` and bring it onto ``grid``.

    Labels on another grid in the same physical space are resampled nearest-neighbour (each layer on its own).
    Raises InputError when nothing of the segmentation falls on the image.
    """
    p = Path(path)
    try:
        found = p.exists()
    except OSError as exc:  # e.g. permission denied on its folder: the cause, not a traceback
        raise InputError(filecheck.os_error_message(exc, "segmentation", p)) from None
    if not found:
        raise InputError(f"segmentation not found: {p}")
    notes: list[str] = []
    if p.name.lower().endswith(".seg.nrrd"):
        layers, label_grid, names = _read_slicer_segmentation(p)
    else:
        image = read_image(p, "segmentation", notes)
        values = np.unique(sitk.GetArrayViewFromImage(image))
        if not np.allclose(values, np.round(values)):
            raise InputError(f"segmentation {p.name} has non-integer values; a labelmap is needed")
        if values.min() < 0:  # e.g. background -1: read as unsigned it would become a label 65535 over the air
            raise InputError(f"segmentation {p.name} has negative values ({values.min():g}); a labelmap holds 0 for "
                             "the background and positive values for the muscles (1-7: TA, EDL, Per, TP, Sol, LG, MG)")
        layers = sitk.GetArrayFromImage(sitk.Cast(image, sitk.sitkUInt16))[None]
        label_grid, names = Grid.of(image), {}
    if label_grid.mismatch(grid):
        # Only here is an ITK image needed; the usual case (segmentation drawn on the FF grid) stays in numpy.
        drawn_ml = np.count_nonzero(layers) * label_grid.voxel_volume_mm3 / 1000.0
        reference = grid.image(np.zeros(grid.shape_zyx, np.uint8))
        layers = np.stack([sitk.GetArrayFromImage(sitk.Resample(label_grid.image(np.ascontiguousarray(layer)),
                                                                reference, sitk.Transform(), sitk.sitkNearestNeighbor,
                                                                0, sitk.sitkUInt16))
                           for layer in layers])
        notes.append("segmentation resampled (nearest neighbour) onto the fat-fraction grid")
        kept_ml = np.count_nonzero(layers) * grid.voxel_volume_mm3 / 1000.0
        # Nearest-neighbour resampling changes a volume by a few % at most; more lost means the labels lie
        # (partly) outside the image's field of view.
        if drawn_ml > 0 and kept_ml < (1.0 - LABELS_OUTSIDE_IMAGE_SHARE) * drawn_ml:
            notes.append(f"only {kept_ml / drawn_ml:.0%} of the segmentation ({kept_ml:.1f} of {drawn_ml:.1f} mL) "
                         "lies inside the image; the rest is outside its field of view and not scored")
    layers = np.ascontiguousarray(layers, dtype=np.uint16)
    if not layers.any():
        raise InputError(f"segmentation {p.name} has no labelled voxels on the image grid "
                         "(empty, or it does not overlap the image)")
    if not names:  # a plain labelmap: name the values present after resampling
        from .constants import MUSCLES
        from .labelcheck import convention_warning
        present = [int(v) for v in np.flatnonzero(np.bincount(layers.ravel())) if v != 0]
        names = {v: (MUSCLES[v - 1] if 1 <= v <= len(MUSCLES) else f"label_{v}") for v in present}
        unnamed = convention_warning(names)
        if unnamed:
            notes.append(unnamed)
    overlap = _overlap_note(layers, names)
    if overlap:
        notes.append(overlap)
    return LabelMap(layers=layers, names=names, warnings=notes)


def _overlap_note(layers: np.ndarray, names: dict) -> str | None:
    """A note naming the segments that share voxels (only possible across layers), or None."""
    if layers.shape[0] < 2:
        return None
    n_values = int(layers.max()) + 1
    pairs = np.zeros(n_values * n_values, np.int64)
    for a in range(layers.shape[0]):
        for b in range(a + 1, layers.shape[0]):
            both = (layers[a] > 0) & (layers[b] > 0)
            if both.any():
                lo = np.minimum(layers[a][both], layers[b][both]).astype(np.int64)
                hi = np.maximum(layers[a][both], layers[b][both]).astype(np.int64)
                pairs += np.bincount(lo * n_values + hi, minlength=pairs.size)
    shared = [(int(i) // n_values, int(i) % n_values, int(pairs[i])) for i in np.flatnonzero(pairs)]
    if not shared:
        return None
    listed = ", ".join(f"{names.get(a, a)!r} and {names.get(b, b)!r} share {n} voxels" for a, b, n in shared[:4])
    more = f" (and {len(shared) - 4} more pairs)" if len(shared) > 4 else ""
    return f"overlapping segments: {listed}{more}; each segment is scored on its own voxels"


def _read_slicer_segmentation(path: Path) -> tuple[np.ndarray, Grid, dict]:
    """A ``.seg.nrrd`` → ((L, z, y, x) labels, their grid in LPS, {value: segment name}).

    Each layer keeps its own voxels; file label values are renumbered 1, 2, … in segment order, so values are
    unique across layers. Names are read from the header as UTF-8 (Slicer writes them so; pynrrd drops non-ASCII).
    """
    import slicerio

    try:
        seg = slicerio.read_segmentation(str(path))
    except Exception as exc:  # slicerio raises plain exceptions for malformed headers
        raise InputError(f"cannot read segmentation {path.name}: {_first_line(exc)}") from None
    voxels = np.asarray(seg["voxels"])  # (i, j, k[, layer]) as pynrrd reads it
    if voxels.ndim == 3:
        voxels = voxels[None]
    elif voxels.ndim == 4 and voxels.shape[0] > 8 and voxels.shape[3] <= 8:
        voxels = np.moveaxis(voxels, 3, 0)  # defensive: layer axis last
    if voxels.ndim != 4:
        raise InputError(f"segmentation {path.name} is {voxels.ndim - 1}-D; a 3-D segmentation is needed")
    voxels = voxels.transpose(0, 3, 2, 1)  # (layer, z, y, x); a view (pynrrd's arrays are Fortran-ordered)
    ijk_to_lps = np.asarray(seg["ijkToLPS"], dtype=float)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    if not np.all(np.isfinite(ijk_to_lps)) or np.any(spacing <= 0) or abs(np.linalg.det(ijk_to_lps[:3, :3])) < 1e-12:
        raise InputError(f"segmentation {path.name} has an invalid voxel grid (spacing "
                         f"{', '.join(f'{s:.4g}' for s in spacing)} mm, or axes not independent) in its "
                         "'space directions'; export it again from the tool that drew it")
    segments = list(seg["segments"])
    exact_names = _segment_names_utf8(path)
    names: dict[int, str] = {}
    layers = np.zeros(voxels.shape, np.uint16)
    for layer in range(voxels.shape[0]):
        # One lookup table per layer: file label value → our value (1, 2, … in segment order).
        lut = np.zeros(max(int(voxels[layer].max()), max((int(s.get("labelValue", 1)) for s in segments), default=0))
                       + 1, dtype=np.uint16)
        for value, segment in enumerate(segments, start=1):
            if int(segment.get("layer", 0) or 0) == layer:
                lut[int(segment.get("labelValue", 1))] = value
                given = segment.get("name", segment.get("id", f"Segment_{value}"))
                names[value] = exact_names.get(value - 1, str(given))
        layers[layer] = lut[voxels[layer]]
    return layers, Grid.from_ijk_to_lps(layers.shape[:0:-1], ijk_to_lps), names


def _segment_names_utf8(path: Path) -> dict:
    """{segment position (0, 1, … as slicerio orders the segments: by header index): name}, decoded as UTF-8 from the
    raw header lines ``SegmentN_Name:=…`` (Latin-1 when the bytes are no UTF-8)."""
    indices, names = set(), {}
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.rstrip()  # NRRD: trailing whitespace is ignored
            if not line:
                break  # the blank line ends the header
            match = re.match(rb"Segment([0-9]+)_([A-Za-z]+):=(.*)$", line)
            if not match:
                continue
            indices.add(int(match.group(1)))
            if match.group(2) == b"Name":
                try:
                    names[int(match.group(1))] = match.group(3).decode("utf-8")
                except UnicodeDecodeError:  # an old writer in a Latin-1 locale
                    names[int(match.group(1))] = match.group(3).decode("latin-1")
    return {position: names[index] for position, index in enumerate(sorted(indices)) if index in names}
