"""The body (leg) mask: which voxels of a Dixon image hold tissue and which hold air.

One mask serves everything downstream: FF is derived inside it, the model window is centred on it, the legs are
found in it, and the user is told how much of the image it covers. Pure functions on (z, y, x) arrays; in-plane
spacings (x, y) in mm.

Two routes:

* **magnitude** (water + fat known): air holds only noise, tissue holds signal; Otsu's threshold on W + F splits the
  two, and the rim (skin, partial-volume voxels) is recovered out to a noise floor measured in the air itself.
* **fat fraction alone**: the FF of air noise is anywhere in 0–1, so FF's value cannot tell air from tissue (diseased
  muscle reads 50 % too). What does is texture: noise is white, so neighbouring air voxels differ by a large jump
  about 70 % of the time, while in tissue neighbours agree except across the boundaries between structures (a few
  jumps in a window). A voxel is body when few of the neighbour pairs around it jump. Maps whose air is masked to 0 by
  the scanner pass the same test (pairs with a zero voxel are not counted).

Both routes end in :func:`clean_mask`: small islands removed (mm²), the largest connected components kept (up to two:
a field of view may hold both legs, which are split later), narrow gaps closed and holes filled per slice (marrow,
cortex, vessels).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Components smaller than this in a slice are specks of noise or markers, not a leg (a child's ankle is ~1500 mm²).
MIN_ISLAND_MM2 = 100.0
#: Up to two components (two legs) are kept; the second only if it is at least this fraction of the largest's volume.
MIN_SECOND_COMPONENT_FRACTION = 0.05
#: Gaps up to about twice this (mm) in a slice's outline are closed before holes are filled.
CLOSE_MM = 2.0
#: Magnitude route: air's W + F is the sum of two Rayleigh noise magnitudes, median ≈ 2.45 noise SDs; a voxel is
#: above the noise floor from 2.5 × that median (≈ 6 SDs, the floor scanners and our phantom use).
NOISE_FLOOR_TIMES_AIR_MEDIAN = 2.5
#: Magnitude route: the rim below Otsu's threshold but above the noise floor is recovered this far out (mm).
RIM_MM = 3.0
#: Magnitude route: a rim voxel holds at least this fraction of the tissue's median, also where no air is measured.
RIM_MIN_FRACTION_OF_TISSUE = 0.1
#: FF route: two neighbours "jump" when their FF differs by more than this fraction of full scale (tissue noise is
#: 2–5 %; air noise differs by more than this in ~70 % of pairs).
JUMP_FRACTION_OF_SCALE = 0.10
#: FF route: window half-width (pixels) over which jumps are counted, and the share of jumping pairs from which a
#: voxel is air (tissue: median 0.05–0.25, 99th percentile ~0.65 in diseased muscle; air: median 0.72, 1st pct 0.54).
JUMP_WINDOW_RADIUS_PX = 2
MAX_JUMP_SHARE = 0.45
#: FF route: a slice's non-zero component at most this many times the smooth core it holds is taken whole.
WHOLE_COMPONENT_MAX_TIMES_CORE = 1.5


#: Connectivity within a slice only (4-neighbours in y, x; none across z): per-slice components in one labelling.
IN_PLANE_CONNECTIVITY = np.array([np.zeros((3, 3), bool), ndimage.generate_binary_structure(2, 1),
                                  np.zeros((3, 3), bool)])


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximal between-class variance) of ``values`` on a ``bins``-bin histogram."""
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts)
    w1 = w0[-1] - w0
    s0 = np.cumsum(counts * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:][int(np.argmax(between[:-1]))])


def _grow(mask_zyx: np.ndarray, radius_px: int) -> np.ndarray:
    """Dilation by a (2r+1)² square within each slice (separable, so fast; slices may be 4 mm apart: never across)."""
    r = max(int(radius_px), 0)
    return ndimage.maximum_filter(mask_zyx, size=(1, 2 * r + 1, 2 * r + 1), mode="constant", cval=False)


def _shrink(mask_zyx: np.ndarray, radius_px: int) -> np.ndarray:
    """Erosion by a (2r+1)² square within each slice; outside the image counts as air. (Counted as inside, a closing
    near an image edge stuck the mask to it and grew it into the air along the edge — hostile run: a leg 1-2 mm from
    the edge read as cut by the field of view, its side lost, its verdict changed.)"""
    r = max(int(radius_px), 0)
    return ndimage.minimum_filter(mask_zyx, size=(1, 2 * r + 1, 2 * r + 1), mode="constant", cval=False)


def clean_mask(mask_zyx: np.ndarray, spacing_xy_mm: tuple, min_island_mm2: float = MIN_ISLAND_MM2,
               max_components: int = 2) -> np.ndarray:
    """Islands below ``min_island_mm2`` removed per slice, the largest 3-D components kept (up to
    ``max_components``; a further one only when ≥ MIN_SECOND_COMPONENT_FRACTION of the largest), gaps closed and
    holes filled per slice."""
    mask = np.asarray(mask_zyx, dtype=bool).copy()
    pixel_mm2 = float(spacing_xy_mm[0]) * float(spacing_xy_mm[1])
    min_px = max(1, int(np.ceil(min_island_mm2 / pixel_mm2)))
    labels, n = ndimage.label(mask, structure=IN_PLANE_CONNECTIVITY)  # per-slice components, all slices at once
    if n:
        large = np.bincount(labels.ravel()) >= min_px
        large[0] = False
        mask = large[labels]
    # The 3-D components of what is left, labelled within its in-plane box: nothing outside the box is connected to
    # anything, and cropping keeps the raster order, so the labels (and which components are kept) are the same.
    box = _box_with_margin(mask, 0)
    labels, n = ndimage.label(mask[box])
    if n > 1:
        sizes = np.bincount(labels.ravel())[1:]
        order = np.argsort(sizes)[::-1]
        keep = [order[0]] + [i for i in order[1:max_components]
                             if sizes[i] >= MIN_SECOND_COMPONENT_FRACTION * sizes[order[0]]]
        mask = np.zeros_like(mask)
        mask[box] = np.isin(labels, np.asarray(keep) + 1)
    # Closing first: a thin bridge of tissue between a bone and the skin may be missing, which would open the bone's
    # cortex ring to the outside and keep the marrow from being filled.
    close_px = max(1, int(round(CLOSE_MM / min(float(spacing_xy_mm[0]), float(spacing_xy_mm[1])))))
    # Closing and hole filling within the mask's in-plane box and a margin wider than the closing, so that the cost
    # is the leg's, not the field of view's (same result: nothing outside the margin can change).
    box = _box_with_margin(mask, close_px + 2)
    out = np.zeros_like(mask)
    part = mask[box]
    out[box] = fill_holes_per_slice(part | _shrink(_grow(part, close_px), close_px))
    return out


def _box_with_margin(mask_zyx: np.ndarray, margin_px: int) -> tuple:
    """(all slices, rows, columns) slices of the in-plane bounding box of ``mask_zyx`` grown by ``margin_px`` and
    clipped to the image; the whole image when the mask is empty."""
    plane = mask_zyx.any(axis=0)
    if not plane.any():
        return (slice(None), slice(None), slice(None))
    ys, xs = np.nonzero(plane.any(axis=1))[0], np.nonzero(plane.any(axis=0))[0]
    return (slice(None), slice(max(ys[0] - margin_px, 0), ys[-1] + margin_px + 1),
            slice(max(xs[0] - margin_px, 0), xs[-1] + margin_px + 1))


def fill_holes_per_slice(mask_zyx: np.ndarray) -> np.ndarray:
    """Each slice's holes filled: background regions (in-plane connected) that do not reach the slice's border."""
    mask = np.asarray(mask_zyx, dtype=bool)
    labels, n = ndimage.label(~mask, structure=IN_PLANE_CONNECTIVITY)
    if not n:
        return mask.copy()
    border = np.zeros(n + 1, bool)
    for edge in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        border[np.unique(edge)] = True
    border[0] = True  # label 0 is the mask itself
    return mask | ~border[labels]


def noise_floor(magnitude_zyx: np.ndarray, tissue_zyx: np.ndarray, spacing_xy_mm: tuple) -> float:
    """The magnitude from which a voxel holds signal, measured in the air: NOISE_FLOOR_TIMES_AIR_MEDIAN × the median
    of the voxels outside the tissue's in-plane bounding box grown by RIM_MM + 2 pixels. A field of view cropped
    tight around the leg (a few mm of air: Slicer's Crop Volume, a scanner's small FOV) leaves no air there; then the
    air is the image's outermost row and column of every slice, where they are not tissue (hostile run: without a
    floor the rim grew into the air on all four edges, which then read as a leg cut by the field of view). 0 when
    there is no air to measure either way (the body fills the field of view, or the scanner set the air to 0)."""
    plane = np.asarray(tissue_zyx).any(axis=0)
    if not plane.any():
        return 0.0
    r = int(np.ceil(RIM_MM / min(spacing_xy_mm[:2]))) + 2
    ys, xs = np.nonzero(plane)
    air = np.ones(plane.shape, bool)
    air[max(ys.min() - r, 0):ys.max() + r + 1, max(xs.min() - r, 0):xs.max() + r + 1] = False
    if air.sum() * magnitude_zyx.shape[0] >= 100:
        return NOISE_FLOOR_TIMES_AIR_MEDIAN * float(np.median(magnitude_zyx[:, air]))
    frame = np.zeros(magnitude_zyx.shape, bool)
    frame[:, [0, -1], :] = True
    frame[:, :, [0, -1]] = True
    frame &= ~np.asarray(tissue_zyx, bool)
    if frame.sum() < 100:
        return 0.0
    return NOISE_FLOOR_TIMES_AIR_MEDIAN * float(np.median(magnitude_zyx[frame]))


def body_mask_from_magnitude(magnitude_zyx: np.ndarray, spacing_xy_mm: tuple) -> np.ndarray:
    """Body from a magnitude image (W + F): Otsu on the magnitude (top 0.5 % clipped so bright spots do not pull
    the threshold up), the rim above the air's noise floor within RIM_MM added, then :func:`clean_mask`."""
    m = np.abs(np.nan_to_num(np.asarray(magnitude_zyx, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0))
    top = float(np.percentile(m, 99.5))
    if top <= 0:
        return np.zeros(m.shape, bool)
    clipped = np.minimum(m, top)
    # Otsu on a subsample: the histogram of a million voxels is the histogram of the volume.
    step = max(1, clipped.size // 1_000_000)
    tissue = m > otsu_threshold(clipped.ravel()[::step])
    # Where no air can be measured (the body fills the field of view) the floor would be 0 and the rim would take
    # in any non-zero air: a rim voxel must hold at least a tenth of the tissue's median signal in any case.
    tissue_median = float(np.median(m[tissue])) if tissue.any() else 0.0
    floor = max(noise_floor(m, tissue, spacing_xy_mm), RIM_MIN_FRACTION_OF_TISSUE * tissue_median)
    rim_px = int(np.ceil(RIM_MM / min(spacing_xy_mm[:2])))
    near = _grow(tissue, rim_px)
    return clean_mask(tissue | (near & (m > floor)), spacing_xy_mm)


def jump_share(ff_zyx: np.ndarray, jump: float, radius_px: int = JUMP_WINDOW_RADIUS_PX) -> np.ndarray:
    """Per voxel, the share of in-plane neighbour pairs within a (2r+1)² window whose values differ by more than
    ``jump``. Pairs involving an exact 0 (masked background) do not count; a voxel with no pair gets 1."""
    ff = np.asarray(ff_zyx, dtype=np.float32)
    nonzero = ff != 0
    jumps = np.zeros(ff.shape, np.float32)
    pairs = np.zeros(ff.shape, np.float32)
    for axis in (1, 2):
        a = tuple(slice(1, None) if ax == axis else slice(None) for ax in range(3))
        b = tuple(slice(None, -1) if ax == axis else slice(None) for ax in range(3))
        valid = nonzero[a] & nonzero[b]
        jumped = valid & (np.abs(ff[a] - ff[b]) > jump)
        for side in (a, b):
            jumps[side] += jumped
            pairs[side] += valid
    size = (1, 2 * radius_px + 1, 2 * radius_px + 1)
    j = ndimage.uniform_filter(jumps, size, mode="constant")
    p = ndimage.uniform_filter(pairs, size, mode="constant")
    return np.where(p > 1e-6, j / np.maximum(p, 1e-6), 1.0).astype(np.float32)


def air_fill_value(image_zyx: np.ndarray) -> float:
    """The value that fills the air, when more than half of the image's border pixels (every slice's four edges)
    hold one same value; 0 otherwise (noisy air has no such value, and 0 is what masked maps use)."""
    a = np.asarray(image_zyx)
    border = np.concatenate([a[:, 0, :].ravel(), a[:, -1, :].ravel(), a[:, :, 0].ravel(), a[:, :, -1].ravel()])
    values, counts = np.unique(border, return_counts=True)
    if counts.size and counts.max() > 0.5 * border.size:
        return float(values[int(np.argmax(counts))])
    return 0.0


def _air_is_filled(image_zyx: np.ndarray, fill: float) -> bool:
    """Whether the air holds ``fill`` throughout: over 90 % of every slice's border pixels do."""
    a = np.asarray(image_zyx)
    for edge in (a[:, 0, :], a[:, -1, :], a[:, :, 0], a[:, :, -1]):
        if np.mean(edge == fill) <= 0.9:
            return False
    return True


def body_mask_from_ff(ff_zyx: np.ndarray, spacing_xy_mm: tuple, full_scale: float = 1.0) -> np.ndarray:
    """Body from a fat-fraction image alone (``full_scale``: 1 for fractions, 100 for percent, …): non-zero voxels
    where few neighbour pairs jump (see the module text), the boundary pixels that the window straddles recovered
    among non-zero voxels, then :func:`clean_mask`."""
    ff = np.asarray(ff_zyx, dtype=np.float32)
    if not np.isfinite(ff).all():  # the usual input is finite already (io.series_from_arrays): no copy then
        ff = np.nan_to_num(ff, nan=0.0, posinf=0.0, neginf=0.0)
    # Air set to one value by the scanner or a converter (0, or 100 %, or anything) is not body, however smooth.
    fill = air_fill_value(ff)
    nonzero = ff != fill
    if _air_is_filled(ff, fill):
        # Masked air (the usual export, and the phantom's): the body is the rest, no texture needed (and ~3x faster).
        return clean_mask(nonzero, spacing_xy_mm)
    smooth = nonzero & (jump_share(ff, JUMP_FRACTION_OF_SCALE * float(full_scale)) <= MAX_JUMP_SHARE)
    smooth = ndimage.binary_opening(smooth, structure=IN_PLANE_CONNECTIVITY)  # lone air pixels that happened to agree
    grown = _grow(smooth, JUMP_WINDOW_RADIUS_PX) & nonzero
    # Where the scanner masked the air to 0, a slice's non-zero component around the smooth core is the body itself
    # (rim and rough diseased patches included): take it whole. Where the air is noise, the non-zero component is the
    # whole slice, far larger than the core: keep the grown core.
    labels, n = ndimage.label(nonzero, structure=IN_PLANE_CONNECTIVITY)
    if n:
        area = np.bincount(labels.ravel(), minlength=n + 1)
        core = np.bincount(labels[smooth], minlength=n + 1)
        whole = (core > 0) & (area <= WHOLE_COMPONENT_MAX_TIMES_CORE * core)
        whole[0] = False
        grown |= whole[labels]
    return clean_mask(grown, spacing_xy_mm)
