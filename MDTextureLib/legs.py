"""Which legs are in the field of view, where each one is, and which side it is.

Everything here works on CANONICAL arrays (``orientation``: (z, y, x) with x to patient left, y to posterior,
z to superior), so "patient right" is simply "smaller x".

* Two legs: the body mask's column profile (voxels per x column, over all slices and rows) has two humps with a
  valley between them (a gap of air, or the narrow contact of touching calves). The split is the valley's lowest
  column; each leg owns the columns on its side. Their sides follow from their positions (LPS: patient right is −x).
* One leg: its side comes from its anatomy — the fibula lies lateral to the tibia. Both bones are found as rings of
  no signal (cortex: W+F dark, or FF ≈ 0) that enclose marrow; the larger is the tibia. For a right leg the fibula
  lies toward patient right (smaller x) of the tibia; where only the tibia is found, it lies medial of the calf's
  centre. If the bones are not found consistently, the DICOM laterality is used,
  then the user's ``--side``; failing all, the leg is assumed to be a right leg, with a warning.
* A leg cut by the field of view: its outline meets the image's edge. A warning names the edge and the slices
  (the network then sees part of a leg). Where the cut passes through something without signal — a bone's cortex,
  typically the tibia under the skin of the shin — the slice does not vote on the side: the largest bone left in the
  image is then the fibula, and taking it for the tibia reads a right leg as a left one (hostile run: a field of
  view cut 90 rows into the shin was read as a mirrored left leg).

Pure numpy/scipy; nothing here knows the network or files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .body import IN_PLANE_CONNECTIVITY, fill_holes_per_slice, noise_floor

SIDES = ("right", "left")

MIN_LEG_SHARE = 0.15  # each of two legs holds at least this share of the body voxels
VALLEY_RATIO = 0.5  # the valley between two legs is below this share of the smaller hump (one phantom calf: ≥ 0.67)
MIN_LEG_WIDTH_MM = 40.0  # a leg is at least this wide (a child's calf is ~60 mm)
PROFILE_SMOOTH_MM = 6.0  # the column profile is smoothed over this width before looking for humps

DARK_FF = 0.02  # cortical bone reads FF ≈ 0 (no signal); muscle, marrow and fat read more
MIN_BONE_MM2 = 8.0  # cross-section of a child's fibula (ring and marrow) is ≥ ~20 mm²
MAX_BONE_MM2 = 1500.0  # an adult tibia is ~300-600 mm²
MIN_TIBIA_MM2 = 60.0  # a bone alone counts as the tibia from this cross-section (a child's tibia is ≥ ~150 mm²)
DARK_MAGNITUDE = 0.15  # cortical bone's W+F is below this fraction of the body's median (muscle, fat ~0.5-1)
MIN_TIBIA_TO_FIBULA = 1.3  # the tibia's cross-section is 3-6x the fibula's; below this ratio they are not told apart
MIN_LATERAL_MM = 3.0  # the fibula's centre lies this far lateral of the tibia's (typically 15-30 mm)
MIN_SLICES_VOTING = 2  # slices on which both bones are found
MIN_AGREEMENT = 0.75  # share of voting slices that must agree on the side
# A leg whose outline runs along an image edge for this length on a slice is cut there: a cut 2 mm into the skin of
# a 100-mm calf leaves a 28-mm chord; a mask whose rim reaches the edge across 2 mm of air margin, less.
CUT_MIN_MM = 20.0
# Along an edge, dark voxels (no signal) in a run this long are a bone's cortex cut open; lean muscle's noise gives
# single dark voxels (hostile run: 1-3 per edge line, which had made every cut through muscle a "cut bone").
BONE_CUT_DARK_RUN_MM = 3.0
#: The canonical array's edges (rows: y to posterior; columns: x to patient left) as the patient's directions.
EDGE_NAMES = ("anterior", "posterior", "right", "left")


@dataclass(frozen=True)
class Leg:
    """One leg in the canonical volume. ``columns`` = (x0, x1): the canonical columns it owns, or None for all."""

    side: str
    side_source: str  # "position", "anatomy", "DICOM laterality", "--side", "assumed"
    columns: tuple | None
    warnings: tuple = field(default_factory=tuple)


def column_profile(body_zyx: np.ndarray, spacing_x_mm: float) -> np.ndarray:
    """Body voxels per canonical column (summed over slices and rows), smoothed over ``PROFILE_SMOOTH_MM``."""
    profile = np.asarray(body_zyx, bool).sum(axis=(0, 1)).astype(float)
    width = max(1, int(round(PROFILE_SMOOTH_MM / spacing_x_mm)))
    return ndimage.uniform_filter1d(profile, width, mode="constant")


def split_columns(body_zyx: np.ndarray, spacing_x_mm: float) -> int | None:
    """The canonical column where a second leg begins (legs side by side in x), or None for one leg."""
    profile = column_profile(body_zyx, spacing_x_mm)
    total = profile.sum()
    if total <= 0 or profile.size < 3:
        return None
    share = np.cumsum(profile) / total
    candidates = np.flatnonzero((share >= MIN_LEG_SHARE) & (share <= 1 - MIN_LEG_SHARE))
    if candidates.size == 0:
        return None
    lowest = profile[candidates].min()
    valley = candidates[profile[candidates] <= lowest + 1e-9]
    split = int(valley[len(valley) // 2]) + 1  # the middle of a flat gap; the right leg keeps the column itself
    left_peak, right_peak = profile[:split].max(), profile[split:].max()
    if lowest > VALLEY_RATIO * min(left_peak, right_peak):
        return None
    widths = [_width_mm(profile[:split], spacing_x_mm), _width_mm(profile[split:], spacing_x_mm)]
    if min(widths) < MIN_LEG_WIDTH_MM:
        return None
    return split


def _width_mm(profile: np.ndarray, spacing_x_mm: float) -> float:
    """Width of the columns holding at least 10 % of this hump's peak."""
    return float((profile >= 0.1 * profile.max()).sum() * spacing_x_mm)


def bones_of_slice(dark_yx: np.ndarray, leg_yx: np.ndarray, pixel_area_mm2: float) -> list[tuple]:
    """Bone candidates on one canonical slice: rings of no signal inside the leg that enclose something (marrow).

    ``dark_yx``: voxels without signal (cortical bone). Returns [(area_mm2, x_px, y_px), …] largest first.
    """
    return bones_per_slice(dark_yx[None], leg_yx[None], pixel_area_mm2)[0]


def bones_per_slice(dark_zyx: np.ndarray, leg_zyx: np.ndarray, pixel_area_mm2: float) -> list[list[tuple]]:
    """:func:`bones_of_slice` for every slice of a stack: one labelling of the whole stack with in-plane
    connectivity (no component crosses slices), so the cost is one pass, not one per slice."""
    dark = fill_holes_per_slice(leg_zyx) & dark_zyx
    bone = fill_holes_per_slice(dark)
    labels, n = ndimage.label(bone, structure=IN_PLANE_CONNECTIVITY)
    found = [[] for _ in range(bone.shape[0])]
    if n == 0:
        return found
    at = np.flatnonzero(labels)  # the bones' voxels only, in raster order
    label_at = labels.ravel()[at]

    def per_bone(weights=None) -> np.ndarray:
        return np.bincount(label_at, weights=weights, minlength=n + 1)[1:]

    count = np.maximum(per_bone(), 1)
    area = per_bone() * pixel_area_mm2
    enclosed = per_bone((bone & ~dark).ravel()[at])
    zs, ys, xs = np.unravel_index(at, labels.shape)
    # Sums of pixel indices in float64 are exact, so the centres equal those of a slice labelled on its own.
    cz, cx, cy = per_bone(zs) / count, per_bone(xs) / count, per_bone(ys) / count
    keep = (enclosed > 0) & (area >= MIN_BONE_MM2) & (area <= MAX_BONE_MM2)
    for z, a, x, y in zip(cz[keep], area[keep], cx[keep], cy[keep]):
        found[int(z)].append((float(a), float(x), float(y)))
    return [sorted(bones, reverse=True) for bones in found]


def dark_voxels(ff_zyx: np.ndarray, magnitude_zyx: np.ndarray | None = None, body_zyx: np.ndarray | None = None,
                spacing_xyz_mm: tuple = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Voxels without signal: FF below ``DARK_FF``, or, when the magnitude is known, W+F below ``DARK_MAGNITUDE`` of
    the body's median or below the air's noise floor (:func:`body.noise_floor`, with ``body_zyx``): the floor below
    which FF derived from water and fat is 0, so a scanner's own FF map (noise ratios in the cortex, not 0) finds the
    same bones as FF derived here (hostile run: with the scanner's FF beside water and fat no tibia was found)."""
    dark = np.asarray(ff_zyx) < DARK_FF
    if magnitude_zyx is None:
        return dark
    mag = np.asarray(magnitude_zyx, dtype=np.float32)
    body = ~dark
    level = float(np.median(mag[body])) if body.any() else float(np.median(mag))
    threshold = DARK_MAGNITUDE * level
    if body_zyx is not None:
        threshold = max(threshold, noise_floor(mag, body_zyx, spacing_xyz_mm[:2]))
    return dark | (mag < threshold)


def _edges(a: np.ndarray) -> tuple:
    """The four image edges of a (z, y, x) array as (z, n) lines, in :data:`EDGE_NAMES` order."""
    return a[:, 0, :], a[:, -1, :], a[:, :, 0], a[:, :, -1]


def bone_cut_slices(dark_zyx: np.ndarray, leg_zyx: np.ndarray, spacing_xyz_mm: tuple) -> np.ndarray:
    """(z,) bool: slices on which an image edge cuts through something without signal inside the leg — along the
    edge, between the leg's first and last voxel there, a voxel that is not the leg's (dark cortex is outside a
    body mask that cannot close a ring cut open), or a run of dark voxels at least BONE_CUT_DARK_RUN_MM long."""
    cut = np.zeros(leg_zyx.shape[0], bool)
    pixel_mm = (spacing_xyz_mm[0], spacing_xyz_mm[0], spacing_xyz_mm[1], spacing_xyz_mm[1])  # along each edge
    for leg, dark, step in zip(_edges(np.asarray(leg_zyx, bool)), _edges(np.asarray(dark_zyx, bool)), pixel_mm):
        n = leg.shape[1]
        idx = np.arange(n)
        present = leg.any(axis=1)
        first = np.where(present, leg.argmax(axis=1), n)
        last = np.where(present, n - 1 - leg[:, ::-1].argmax(axis=1), -1)
        span = (idx >= first[:, None]) & (idx <= last[:, None])
        cut |= (span & ~leg).any(axis=1)
        run = min(n, max(1, int(np.ceil(BONE_CUT_DARK_RUN_MM / float(step)))))
        windows = np.lib.stride_tricks.sliding_window_view(span & dark, run, axis=1)
        cut |= windows.all(axis=2).any(axis=1)
    return cut


def field_of_view_cut(leg_zyx: np.ndarray, spacing_xyz_mm: tuple) -> str | None:
    """A warning when the leg's outline runs along an image edge (at least CUT_MIN_MM on a slice): the image holds
    part of the leg. None when it does not."""
    sx, sy = float(spacing_xyz_mm[0]), float(spacing_xyz_mm[1])
    leg = np.asarray(leg_zyx, bool)
    present = leg.any(axis=(1, 2))
    if not present.any():
        return None
    cut_slices = np.zeros(leg.shape[0], bool)
    parts = []
    for name, line, pixel_mm in zip(EDGE_NAMES, _edges(leg), (sx, sx, sy, sy)):
        length_mm = line.sum(axis=1) * pixel_mm
        on = length_mm >= CUT_MIN_MM
        if on.any():
            cut_slices |= on
            parts.append(f"{name} edge on {int(on.sum())} slice(s), up to {length_mm.max():.0f} mm")
    if not parts:
        return None
    return (f"the leg is cut by the field of view: its outline runs along the image's {'; '.join(parts)} "
            f"({int(cut_slices.sum())} of {int(present.sum())} slices): the network sees part of the leg, so the "
            "verdict and heatmap may not hold, and muscle outside the image is not scored")


def side_from_bones(dark_zyx: np.ndarray, leg_zyx: np.ndarray, spacing_xyz_mm: tuple) -> tuple[str | None, str]:
    """('right' | 'left' | None, evidence): the side told by the bones, slice by slice.

    The tibia (the largest bone) lies medial of the calf's centre (the bulk of the calf, the triceps surae, lies
    behind the interosseous membrane, between tibia and fibula), and the fibula lateral of the tibia; lateral is
    toward patient right (−x) for a right leg. A slice votes by the tibia alone: the fibula's thin cortex is often
    blurred at 1-1.5 mm pixels and small dark rings in lean muscle can pose as one (on phantoms the tibia's vote was
    never wrong, the fibula's was on ~10 % of slices); a fibula that agrees is reported as evidence. A slice on
    which the field of view cuts a bone (:func:`bone_cut_slices`) does not vote.
    """
    sx, sy = float(spacing_xyz_mm[0]), float(spacing_xyz_mm[1])
    votes = {"right": 0, "left": 0}
    medial_mm, lateral_mm = [], []
    bone_cut = bone_cut_slices(dark_zyx, leg_zyx, spacing_xyz_mm)
    box = ndimage.find_objects(np.asarray(leg_zyx, np.uint8).max(axis=0))  # only the leg's bounding box matters
    if box:
        dark_zyx, leg_zyx = dark_zyx[(slice(None),) + box[0]], leg_zyx[(slice(None),) + box[0]]
    bones_by_slice = bones_per_slice(dark_zyx, leg_zyx, sx * sy)
    for k in range(dark_zyx.shape[0]):
        leg = leg_zyx[k]
        if not leg.any() or bone_cut[k]:
            continue
        bones = bones_by_slice[k]
        if not bones or bones[0][0] < MIN_TIBIA_MM2:
            continue
        tibia_x = bones[0][1]
        offset = (np.nonzero(leg)[1].mean() - tibia_x) * sx  # calf centre − tibia; x grows to patient left
        if abs(offset) < MIN_LATERAL_MM:
            continue
        side = "right" if offset < 0 else "left"
        if len(bones) >= 2 and bones[0][0] >= MIN_TIBIA_TO_FIBULA * bones[1][0]:
            fibula = (bones[1][1] - tibia_x) * sx
            if abs(fibula) >= MIN_LATERAL_MM and (fibula < 0) == (side == "right"):
                lateral_mm.append(abs(fibula))
        votes[side] += 1
        medial_mm.append(abs(offset))
    n = votes["right"] + votes["left"]
    cut_note = (f"; the field of view cuts a bone on {int(bone_cut.sum())} slice(s), which do not vote"
                if bone_cut.any() else "")
    if n < MIN_SLICES_VOTING:
        return None, f"tibia found on {n} of {dark_zyx.shape[0]} slices" + cut_note
    side = max(votes, key=votes.get)
    evidence = f"tibia {np.median(medial_mm):.0f} mm medial of the calf's centre"
    if lateral_mm:
        evidence += f", fibula {np.median(lateral_mm):.0f} mm lateral of the tibia"
    evidence += f"; {votes[side]} of {n} slices agree" + cut_note
    if votes[side] < MIN_AGREEMENT * n:  # the evidence leans one way, but not clearly enough to mirror on it
        return None, evidence + f", fewer than the {MIN_AGREEMENT:.0%} needed to decide"
    return side, evidence


def find_legs(ff_zyx: np.ndarray, body_zyx: np.ndarray, spacing_xyz_mm: tuple, side: str | None = None,
              laterality: str | None = None, magnitude_zyx: np.ndarray | None = None) -> list[Leg]:
    """The legs of a canonical volume, right leg first. ``side``: the user's ``--side`` for a one-leg image;
    ``laterality``: the DICOM laterality ('R'/'L') when known; ``magnitude_zyx``: W+F when known (finds bone)."""
    if side is not None and side not in SIDES:
        from .errors import InputError
        raise InputError(f"unknown side {side!r}; use left or right")
    body = np.asarray(body_zyx, bool)
    dark = dark_voxels(ff_zyx, magnitude_zyx, body, spacing_xyz_mm)
    split = split_columns(body, float(spacing_xyz_mm[0]))
    if split is not None:
        legs = []
        for leg_side, columns in (("right", (0, split)), ("left", (split, body.shape[2]))):
            notes = []
            mask = column_mask(columns, body.shape) & body
            anatomy, evidence = side_from_bones(dark, mask, spacing_xyz_mm)
            if anatomy is not None and anatomy != leg_side:
                notes.append(f"the {leg_side} leg (by its position, patient right is −x) looks like a {anatomy} leg "
                             f"by its bones ({evidence}): check the image's direction matrix")
            if side is not None:
                notes.append(f"--side {side} ignored: two legs in the field of view, sides from their positions")
            cut = field_of_view_cut(mask, spacing_xyz_mm)
            if cut:
                notes.append(cut)
            legs.append(Leg(leg_side, "position", columns, tuple(notes)))
        return legs
    notes = []
    anatomy, evidence = side_from_bones(dark, body, spacing_xyz_mm)
    dicom = {"R": "right", "L": "left"}.get(str(laterality or "").strip().upper()[:1])
    if anatomy is not None:
        chosen, source = anatomy, "anatomy"
        for given, what in ((dicom, "the DICOM laterality"), (side, "--side")):
            if given is not None and given != anatomy:
                notes.append(f"{what} says {given} but the bones say {anatomy} ({evidence}); reading a {anatomy} leg")
    elif dicom is not None:
        chosen, source = dicom, "DICOM laterality"
        if side is not None and side != dicom:
            notes.append(f"--side {side} ignored: the DICOM laterality says {dicom}")
    elif side is not None:
        chosen, source = side, "--side"
    else:
        chosen, source = "right", "assumed"
        notes.append(f"the side of the leg could not be determined ({evidence}; no DICOM laterality, no --side): "
                     "assumed to be a right leg; give --side left if it is a left leg")
    cut = field_of_view_cut(body, spacing_xyz_mm)
    if cut:
        notes.append(cut)
    return [Leg(chosen, source, None, tuple(notes))]


def column_mask(columns: tuple | None, shape_zyx: tuple) -> np.ndarray:
    """Boolean (z, y, x) mask of the canonical columns [x0, x1) (everything for None)."""
    mask = np.zeros(shape_zyx, bool)
    if columns is None:
        mask[...] = True
    else:
        mask[:, :, columns[0]:columns[1]] = True
    return mask

