"""How much fat each muscle gets: per-muscle amounts by subtype and severity, and the level of infiltrated tissue.

Amounts come from the per-muscle fat-fraction table of the facts notes (§1b, *true* FF in percent; the Dixon noise
floor is added later by the signal model). Where the fat is placed inside a muscle is :mod:`.patterns`' business.

Two cohorts (``body_cues``):

- ``realistic``: the literature's class-linked amounts (DMD by age and severity, COL6 / LAMA2 by their tables) and a
  peak FF of infiltrated tissue that differs by subtype. First-order FF statistics then separate the classes.
- ``texture`` (default): the amount is drawn from ONE distribution for every subtype — a leg-level burden set by the
  severity — and spread over the muscles by the subtype's *relative* involvement (which muscles, from the same
  tables); the peak FF of infiltrated tissue and the share of soft fringe are the same for every subtype. Classes
  then differ by the spatial pattern and by which muscles carry the fat, and mild disease overlaps normal.
"""
from __future__ import annotations

import numpy as np

from ..constants import MUSCLES
from .anatomy import AREA_PROFILE, REGIONS, ZFRAC_KNOTS

# Per-muscle true FF ranges in percent (low, high), facts §1b. FDL/FHL (unlabelled) follow TP.
DMD_EARLY = {"TA": (4, 7), "EDL": (4, 8), "Per": (8, 15), "TP": (3, 5), "Sol": (5, 12), "LG": (5, 10), "MG": (6, 12)}
DMD_LATE = {"TA": (6, 15), "EDL": (8, 20), "Per": (15, 40), "TP": (4, 8), "Sol": (10, 30), "LG": (10, 30), "MG": (12, 35)}
DMD_NONAMB = {"TA": (15, 45), "EDL": (20, 55), "Per": (40, 80), "TP": (8, 30), "Sol": (35, 75), "LG": (35, 75),
              "MG": (40, 80)}
COL6 = {"TA": (10, 35), "EDL": (10, 35), "Per": (15, 45), "TP": (8, 25), "Sol": (20, 55), "LG": (20, 55), "MG": (20, 60)}
LAMA2 = {"TA": (5, 20), "EDL": (5, 20), "Per": (15, 45), "TP": (10, 35), "Sol": (25, 65), "LG": (25, 65), "MG": (25, 65)}

SUBTYPES = {"DMD": ("DMD",), "CMD": ("COL6", "LAMA2"), "normal": ("none",)}
BODY_CUES = ("texture", "realistic")

# Level of infiltrated tissue: peak FF h(T) = h0 + h1 * min(1, T / t_sat) for a muscle of mean FF T, and the share
# of the infiltrated voxels that forms a soft fringe (FF ramping up from the healthy level). ``rank_ramp``: the
# fringe ramps with the voxel's rank rather than its pattern score, so the FF histogram of a muscle is the same
# whatever the pattern (texture cohort).
PATTERN = {      # realistic cohort: one level per subtype (the confound the texture cohort removes)
    "DMD": dict(h0=0.45, h1=0.45, t_sat=0.70, fringe=0.30, rank_ramp=False),
    "COL6": dict(h0=0.60, h1=0.30, t_sat=0.60, fringe=0.50, rank_ramp=False),
    "LAMA2": dict(h0=0.25, h1=0.50, t_sat=0.65, fringe=0.60, rank_ramp=False),
}
COMMON_LEVEL = dict(h0=0.42, h1=0.42, t_sat=0.65, fringe=0.45, rank_ramp=True)   # texture cohort: every subtype
#: Texture cohort: the leg's mean excess FF (fraction) is BURDEN_SCALE * severity ** BURDEN_POWER (0.1 -> +1.5 %,
#: 0.5 -> +20 %, 0.9 -> +52 %), whatever the subtype.
BURDEN_SCALE, BURDEN_POWER = 0.62, 1.6
INVOLVEMENT_POWER = 0.6


def severity_knots(subtype: str, muscle: str):
    """(severity, low %, high %) knots of a muscle's whole-muscle true FF for a subtype (healthy at severity 0)."""
    healthy = (2.0, 3.0)
    if subtype == "DMD":
        e, l, n = DMD_EARLY[muscle], DMD_LATE[muscle], DMD_NONAMB[muscle]
        return (0.0, 0.15, 0.5, 0.9, 1.0), (healthy[0], e[0], l[0], n[0], n[0] + 0.2 * (n[1] - n[0])), \
               (healthy[1], e[1], l[1], 0.8 * n[1] + 0.2 * n[0], n[1])
    table = COL6 if subtype == "COL6" else LAMA2
    lo, hi = table[muscle]
    w = hi - lo
    return (0.0, 0.25, 1.0), (healthy[0], lo, lo + 0.5 * w), (healthy[1], lo + 0.3 * w, hi)


def involvement_weights(subtype: str) -> np.ndarray:
    """Relative involvement of every region (REGIONS order) for a subtype: the midpoints of its facts table (DMD:
    the late-ambulatory column) to the power INVOLVEMENT_POWER, normalised so that the area-weighted mean at max
    girth is 1. The power < 1 keeps the ranking of the muscles (TP spared in DMD, TA/EDL in LAMA2) while keeping
    the spread of FF between muscles -- a first-order statistic -- alike across subtypes."""
    table = {"DMD": DMD_LATE, "COL6": COL6, "LAMA2": LAMA2}[subtype]
    mid = np.array([np.mean(table[name if name in MUSCLES else "TP"]) for name in REGIONS]) ** INVOLVEMENT_POWER
    area = np.array([AREA_PROFILE[name][int(np.argmin(np.abs(ZFRAC_KNOTS - 0.3)))] for name in REGIONS])
    return mid / float((mid * area).sum() / area.sum())


def target_ff(subtype: str, severity: float, position: np.ndarray, base_ff: float,
              body_cues: str = "realistic") -> np.ndarray:
    """Whole-muscle true mean FF (fraction) of every region (REGIONS order) for one subject.

    ``position`` (one value in 0..1 per region) places the subject inside each muscle's range at its severity
    (realistic) or scales the muscle's share of the burden by 0.75-1.25 (texture).
    """
    out = np.full(len(REGIONS), base_ff, dtype=float)
    if subtype == "none":
        return out
    if body_cues == "texture":
        burden = BURDEN_SCALE * float(severity) ** BURDEN_POWER
        share = involvement_weights(subtype) * (0.75 + 0.5 * np.asarray(position, dtype=float))
        return np.minimum(base_ff + burden * share, 0.88)
    for r, name in enumerate(REGIONS):
        muscle = name if name in MUSCLES else "TP"
        s, lo, hi = severity_knots(subtype, muscle)
        low, high = np.interp(severity, s, lo), np.interp(severity, s, hi)
        out[r] = max(base_ff, (low + position[r] * (high - low)) / 100.0)
    return out


def infiltration_level(subtype: str, body_cues: str, level_u: float = 0.5) -> dict:
    """Peak-FF law and fringe of infiltrated tissue: by subtype (realistic) or one law for all, shifted by
    +-0.05 in peak FF per subject with ``level_u`` in 0..1 (texture)."""
    if body_cues == "texture":
        return dict(COMMON_LEVEL, h0=COMMON_LEVEL["h0"] + 0.1 * (float(level_u) - 0.5))
    return dict(PATTERN[subtype])
