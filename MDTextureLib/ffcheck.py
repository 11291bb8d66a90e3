"""Is this a plausible fat-fraction map? Unit, range, degenerate images and water/fat swaps.

A fat-fraction (FF) map that is not one (a labelmap, an empty or constant image), is in an unexpected unit, or had its
water and fat swapped by the reconstruction gives a confident wrong verdict, so each of these is refused (InputError,
one line with the numbers) or warned about. Statistics are taken over the body (:mod:`.body`), robustly (percentiles,
medians), so that a few outlier voxels neither flip the unit nor block the run. Pure functions on (z, y, x) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .errors import InputError

#: Full scale of each unit: the value that means 100 % fat.
UNIT_SCALES = {"fraction": 1.0, "percent": 100.0, "permille": 1000.0}
UNIT_CHOICES = ("auto",) + tuple(UNIT_SCALES)

#: Unit detection on the 99th percentile of the body's FF: up to 1.5 a fraction, up to 105 percent, from 500 to 1050
#: per mille (subcutaneous fat, ~900 ‰, always fills the top percentile). Between 105 and 500 it could be percent with
#: much out of range or a scaled map: ambiguous, the user says which.
FRACTION_MAX = 1.5
PERCENT_MAX = 105.0
PERMILLE_MIN, PERMILLE_MAX = 500.0, 1050.0
#: Voxels further than this (as a fraction) outside 0–100 % are "clearly out of range"; up to OUT_OF_RANGE_MAX_SHARE of
#: the body may be (outliers, signed reconstructions: clipped with a warning); more is refused.
OUT_OF_RANGE_MARGIN = 0.05
OUT_OF_RANGE_MAX_SHARE = 0.01
#: An image with at most this many distinct values, all integers, is a labelmap rather than an FF map.
LABEL_MAX_DISTINCT = 32
#: Statistics need this many voxels of body; with fewer, all non-zero voxels are used.
MIN_BODY_VOXELS = 100

#: Swap check: the subcutaneous shell is the body between SHELL_MM and SHELL_MM + SHELL_DEPTH_MM deep (below 2 mm: skin,
#: partial volume, and the body mask's own uncertainty of a pixel or two); deep tissue lies beyond DEEP_MM.
#: Subcutaneous fat reads ≥ 75 % FF in the correct orientation; swapped it reads ≤ 25 % (phantoms of every class: shell
#: median ≥ 0.79 correct, ≤ 0.21 swapped). A slice is swapped when its shell's median FF is below SHELL_SWAPPED_BELOW
#: and the deep tissue reads fatter than the shell by DEEP_ABOVE_SHELL: a thin fat layer leaves mostly lean muscle in
#: the shell, which reads low too, but then deep muscle reads no fatter. Conservative: a swap in severely fatty muscle
#: (swapped, it reads as lean as the swapped fat) is not seen.
SHELL_MM = 2.0
SHELL_DEPTH_MM = 4.0
DEEP_MM = 8.0
SHELL_SWAPPED_BELOW = 0.30
DEEP_ABOVE_SHELL = 0.20
MIN_SHELL_VOXELS = 30
#: A swap in at least this share of the judged slices is body-wide (refused); fewer swapped slices are warned about.
BODY_WIDE_SWAP_SHARE = 0.8


#: Stride of the voxel sample in which :func:`refuse_degenerate` looks for a fractional value first.
FRACTION_SAMPLE_STEP = 997


def refuse_degenerate(ff: np.ndarray, what: str = "fat-fraction image") -> None:
    """InputError for an FF image that is all zero, one constant value, or a labelmap (few distinct integers).
    ``ff`` holds finite values only."""
    n = int(ff.size)
    if not np.any(ff):
        raise InputError(f"{what} is all zero ({n} voxels): nothing to classify")
    lo, hi = float(ff.min()), float(ff.max())
    if lo == hi:
        raise InputError(f"{what} has the same value {lo:.4g} in all {n} voxels: not a fat-fraction map")
    # Any fractional value: no labelmap (and no costly np.unique). A fat-fraction map shows one among a few thousand
    # voxels spread over the volume, so the whole volume is rounded only when that sample holds integers alone.
    sample = ff.ravel()[::FRACTION_SAMPLE_STEP]
    if not np.array_equal(sample, np.round(sample)) or not np.array_equal(ff, np.round(ff)):
        return
    values = np.unique(ff)
    if values.size <= LABEL_MAX_DISTINCT:
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (", …" if values.size > 8 else "")
        raise InputError(f"{what} holds only {values.size} distinct integer values ({shown}): it looks like a "
                         "labelmap; give segmentations with --segmentation and a fat-fraction map with --ff")


def body_values(ff: np.ndarray, body: np.ndarray | None) -> np.ndarray:
    """The FF values statistics are taken on: the body's, or every non-zero voxel's when the body is too small."""
    if body is not None and int(np.count_nonzero(body)) >= MIN_BODY_VOXELS:
        return ff[body]
    nonzero = ff[ff != 0]
    return nonzero if nonzero.size else ff.ravel()


def detect_unit(ff: np.ndarray, body: np.ndarray | None, what: str = "fat-fraction image") -> str:
    """'fraction', 'percent' or 'permille' from the 99th percentile of the body's FF; InputError when none fits."""
    values = body_values(ff, body)
    p99 = float(np.percentile(values, 99))
    top = float(values.max())
    if p99 <= FRACTION_MAX:
        return "fraction"
    if p99 <= PERCENT_MAX:
        return "percent"
    if PERMILLE_MIN <= p99 <= PERMILLE_MAX:
        return "permille"
    stats = f"99 % of the body is below {p99:.4g} (maximum {top:.4g})"
    if p99 < PERMILLE_MIN:
        over = 100.0 * float(np.mean(values > 100.0))  # as percent: the share of the body above 100 %
        raise InputError(f"{what}: {stats}, above 100 % as percent (in {over:.1f} % of the body) and low for per "
                         "mille; if the data are right, pass --ff-unit percent or --ff-unit permille")
    raise InputError(f"{what}: {stats}, above 100 % in any unit (fraction, percent, per mille): is it a water or fat "
                     "image? give those with --water and --fat")


def note_forced_unit(ff: np.ndarray, body: np.ndarray | None, unit: str, notes: list) -> None:
    """A warning when the unit the user forced is not the one the values read as (a fraction forced as percent
    turns every muscle lean: a confident wrong verdict)."""
    try:
        detected = detect_unit(ff, body)
    except InputError:
        detected = None
    if detected == unit:
        return
    p99 = float(np.percentile(body_values(ff, body), 99))
    reads = f"read as {detected}" if detected else "fits no unit"
    notes.append(f"FF unit forced to {unit}, but 99 % of the body is below {p99:.4g}, which {reads}; as {unit} "
                 f"that is {100 * p99 / UNIT_SCALES[unit]:.3g} %: if the unit is wrong, so is the verdict")


def clip_to_range(fraction: np.ndarray, body: np.ndarray | None, unit: str, notes: list,
                  what: str = "fat-fraction image") -> np.ndarray:
    """Clip ``fraction`` to [0, 1] in place, with a note counting the clipped voxels. InputError when more than
    OUT_OF_RANGE_MAX_SHARE of the body lies clearly (by more than OUT_OF_RANGE_MARGIN) outside 0–100 %."""
    values = body_values(fraction, body)
    lo, hi = float(fraction.min()), float(fraction.max())
    clearly_low = float(np.mean(values < -OUT_OF_RANGE_MARGIN))
    clearly_high = float(np.mean(values > 1 + OUT_OF_RANGE_MARGIN))
    if clearly_low > OUT_OF_RANGE_MAX_SHARE:
        raise InputError(f"{what} ({unit}) has negative values (down to {lo * 100:.3g} %) in {100 * clearly_low:.1f} % "
                         f"of the body (at most {100 * OUT_OF_RANGE_MAX_SHARE:g} % are accepted): a signed or offset "
                         "map? give the magnitude-based fat fraction")
    if clearly_high > OUT_OF_RANGE_MAX_SHARE:
        raise InputError(f"{what} ({unit}) has values above 100 % (up to {hi * 100:.4g} %) in {100 * clearly_high:.1f} "
                         f"% of the body (at most {100 * OUT_OF_RANGE_MAX_SHARE:g} % are accepted); if the unit is "
                         "wrong, pass --ff-unit fraction, percent or permille")
    below, above = int(np.count_nonzero(fraction < 0)), int(np.count_nonzero(fraction > 1))
    if below or above:
        parts = ([f"{below} voxels below 0 (down to {lo * 100:.3g} %) clipped to 0"] if below else []) + \
                ([f"{above} voxels above 100 % (up to {hi * 100:.4g} %) clipped to 100 %"] if above else [])
        notes.append(f"{what}: {' and '.join(parts)}")
        np.clip(fraction, 0.0, 1.0, out=fraction)
    return fraction


@dataclass(frozen=True)
class SwapCheck:
    """Per-slice water/fat swap check: which slices look swapped, how many could be judged, and the medians that
    decided (subcutaneous shell and deep tissue FF over the swapped slices, fractions)."""

    swapped_slices: tuple
    judged_slices: int
    shell_ff: float | None
    deep_ff: float | None

    @property
    def body_wide(self) -> bool:
        return (len(self.swapped_slices) >= 1 and self.judged_slices > 0
                and len(self.swapped_slices) >= BODY_WIDE_SWAP_SHARE * self.judged_slices)


def check_swap(fraction: np.ndarray, body: np.ndarray, spacing_xy_mm: tuple) -> SwapCheck:
    """Which slices look water/fat swapped: their subcutaneous shell reads as water (low FF) while deeper tissue
    reads clearly fatter. Slices without enough shell or deep tissue are not judged."""
    # Work in the body's bounding box (a margin of one pixel of air where there is air): the distance transforms cost
    # what the box holds, not the whole field of view.
    ys, xs = np.nonzero(body.any(axis=0))
    if ys.size == 0:
        return SwapCheck((), 0, None, None)
    box = (slice(None), slice(max(ys.min() - 1, 0), ys.max() + 2), slice(max(xs.min() - 1, 0), xs.max() + 2))
    body, fraction = body[box], fraction[box]
    sampling = (float(spacing_xy_mm[1]), float(spacing_xy_mm[0]))  # (row, column) = (y, x)
    swapped, shells, deeps, judged = [], [], [], 0
    for k in range(fraction.shape[0]):
        if not body[k].any():
            continue
        # Depth below the skin. Edge padding: a body cut by the image border has no skin there, its depth keeps growing.
        depth = ndimage.distance_transform_edt(np.pad(body[k], 1, mode="edge"), sampling=sampling)[1:-1, 1:-1]
        shell = body[k] & (depth > SHELL_MM) & (depth <= SHELL_MM + SHELL_DEPTH_MM)
        deep = body[k] & (depth > DEEP_MM)
        if np.count_nonzero(shell) < MIN_SHELL_VOXELS or np.count_nonzero(deep) < MIN_SHELL_VOXELS:
            continue
        judged += 1
        shell_ff, deep_ff = float(np.median(fraction[k][shell])), float(np.median(fraction[k][deep]))
        if shell_ff < SHELL_SWAPPED_BELOW and deep_ff >= shell_ff + DEEP_ABOVE_SHELL:
            swapped.append(k)
            shells.append(shell_ff)
            deeps.append(deep_ff)
    return SwapCheck(tuple(swapped), judged, float(np.median(shells)) if shells else None,
                     float(np.median(deeps)) if deeps else None)


def format_slices(slices: tuple, limit: int = 12) -> str:
    """'3, 4, 5' or '3, 4, 5, … (20 in all)'."""
    shown = ", ".join(str(k) for k in slices[:limit])
    return shown + (f", … ({len(slices)} in all)" if len(slices) > limit else "")


def report_swap(check: SwapCheck, n_slices: int, notes: list, derived: bool) -> None:
    """InputError for a body-wide swap; a note naming the slices for a partial one; nothing otherwise."""
    if not check.swapped_slices:
        return
    n = len(check.swapped_slices)
    evidence = (f"subcutaneous fat reads FF {100 * check.shell_ff:.0f} %, deeper tissue {100 * check.deep_ff:.0f} % "
                "(median)")
    if check.body_wide:
        fix = ("give the images the other way round (--water FAT --fat WATER; for a --study, --series water=KEY "
               "--series fat=KEY with the two series' keys exchanged)" if derived else
               "the map looks like 1 − FF; derive FF from the water and fat images, checking which is which")
        raise InputError(f"water and fat look swapped in {n} of {check.judged_slices} judged slices "
                         f"({evidence}): {fix}")
    notes.append(f"water and fat look swapped in {n} of {n_slices} slices (slices {format_slices(check.swapped_slices)}"
                 f"; {evidence}): a Dixon reconstruction swap; the verdict and heatmap on those slices are unreliable")
