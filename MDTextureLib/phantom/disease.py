"""Fatty infiltration: how much fat each muscle gets (by class, severity, age) and where it is placed.

Amounts come from the per-muscle fat-fraction table of the facts notes (§1b, *true* FF in percent; the Dixon noise
floor is added later by the signal model). Placement follows the published patterns (§1c):

- DMD: a smooth random field thresholded inside each muscle -> scattered "moth-eaten" patches that merge and become
  confluent ("washed-out") as the amount grows; worse toward the muscle's proximal and distal ends.
- CMD, COL6-like: a rim along each muscle's boundary ("halo", outside-in) with an irregular inner edge, reaching deeper
  along the soleus / gastrocnemius interface.
- CMD, LAMA2-like: diffuse, fine-grained infiltration through the whole muscle (with atrophy, set in subject.py).
- normal: only the low, slightly marbled physiological FF.

Every pattern is ranked by a per-voxel score S (low = infiltrated first); the infiltrated fraction p of a muscle
is the p-quantile of S, so the *amount* (mean FF) and the *pattern* (which voxels) are set independently. That is
what lets DMD and CMD overlap in mean FF while differing in texture and location.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..constants import MUSCLES
from .anatomy import REGIONS, muscle_extent

# Per-muscle true FF ranges in percent (low, high), facts §1b. FDL/FHL (unlabelled) follow TP.
DMD_EARLY = {"TA": (4, 7), "EDL": (4, 8), "Per": (8, 15), "TP": (3, 5), "Sol": (5, 12), "LG": (5, 10), "MG": (6, 12)}
DMD_LATE = {"TA": (6, 15), "EDL": (8, 20), "Per": (15, 40), "TP": (4, 8), "Sol": (10, 30), "LG": (10, 30), "MG": (12, 35)}
DMD_NONAMB = {"TA": (15, 45), "EDL": (20, 55), "Per": (40, 80), "TP": (8, 30), "Sol": (35, 75), "LG": (35, 75),
              "MG": (40, 80)}
COL6 = {"TA": (10, 35), "EDL": (10, 35), "Per": (15, 45), "TP": (8, 25), "Sol": (20, 55), "LG": (20, 55), "MG": (20, 60)}
LAMA2 = {"TA": (5, 20), "EDL": (5, 20), "Per": (15, 45), "TP": (10, 35), "Sol": (25, 65), "LG": (25, 65), "MG": (25, 65)}

SUBTYPES = {"DMD": ("DMD",), "CMD": ("COL6", "LAMA2"), "normal": ("none",)}

# Pattern parameters: peak FF of infiltrated tissue h(T) = h0 + h1 * min(1, T / t_sat), and the share of the
# infiltrated voxels that forms a soft fringe (FF ramping up from the healthy level).
PATTERN = {
    "DMD": dict(h0=0.45, h1=0.45, t_sat=0.70, fringe=0.30),
    "COL6": dict(h0=0.60, h1=0.30, t_sat=0.60, fringe=0.50),
    "LAMA2": dict(h0=0.25, h1=0.50, t_sat=0.65, fringe=0.60),
}


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


def target_ff(subtype: str, severity: float, position: np.ndarray, base_ff: float) -> np.ndarray:
    """Whole-muscle true mean FF (fraction) of every region (REGIONS order) for one subject.

    ``position`` (one value in 0..1 per region) places the subject inside each muscle's range at its severity.
    """
    out = np.full(len(REGIONS), base_ff, dtype=float)
    if subtype == "none":
        return out
    for r, name in enumerate(REGIONS):
        muscle = name if name in MUSCLES else "TP"
        s, lo, hi = severity_knots(subtype, muscle)
        low, high = np.interp(severity, s, lo), np.interp(severity, s, hi)
        out[r] = max(base_ff, (low + position[r] * (high - low)) / 100.0)
    return out


def smooth_field(rng: np.random.Generator, shape, sigma_px) -> np.ndarray:
    """Zero-mean, unit-SD Gaussian random field (float32) with the given smoothing (z, y, x) in voxels."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_px, mode="reflect")
    return (f - f.mean()) / max(float(f.std()), 1e-6)


def place_disease(region, fascia, d_boundary_mm, d_interface_mm, zfrac, targets, subtype, base_ff, pixel_mm, slice_mm,
                  rng):
    """Voxel-wise true muscle FF and the involvement mask.

    Returns (ff_muscle float32 (z,y,x), involved bool (z,y,x)). ``ff_muscle`` is defined on muscle voxels (region>0)
    and 0 elsewhere. The amounts are calibrated on the muscle voxels outside the fascia lines (what the labelmap
    holds), so the labelled whole-muscle mean equals the target. Arrays outside the muscles' bounding box are never touched (speed).
    """
    ff = np.zeros(region.shape, dtype=np.float32)
    involved = np.zeros(region.shape, dtype=bool)
    idx = np.nonzero(region.any(axis=0))
    if idx[0].size == 0:
        return ff, involved
    box = (slice(None), slice(idx[0].min(), idx[0].max() + 1), slice(idx[1].min(), idx[1].max() + 1))
    reg = region[box]
    core_vox = ~fascia[box]
    shape = reg.shape
    # Fields are drawn in a fixed order whatever the class, so the seed -> stream mapping is simple.
    coarse = smooth_field(rng, shape, (1.0, 2.0 / pixel_mm, 2.0 / pixel_mm))     # ~5 mm patches, elongated in z
    fine = smooth_field(rng, shape, (0.5, 0.7 / pixel_mm, 0.7 / pixel_mm))       # speckle / marbling
    # Physiological fat: low, slightly marbled (intramuscular fat and fascicle septa).
    base = (base_ff * (1.0 + 0.3 * fine)).clip(0.002, None).astype(np.float32)
    ffb = np.where(reg > 0, base, 0.0).astype(np.float32)
    invb = np.zeros(shape, dtype=bool)
    if subtype != "none":
        if subtype == "DMD":
            score_common = -(0.8 * coarse + 0.45 * fine)
        elif subtype == "COL6":
            d = d_boundary_mm[box]
            dint = d_interface_mm[box]
            score_common = d + 1.2 * coarse
            score_gas = np.minimum(d, 0.5 * dint) + 1.2 * coarse      # deeper along the Sol/gastrocnemius fascia
        else:   # LAMA2
            score_common = -(0.75 * fine + 0.35 * coarse)
        par = PATTERN[subtype]
        for r, name in enumerate(REGIONS):
            m = reg == r + 1
            n = int(m.sum())
            t = float(targets[r])
            if n == 0 or t - base_ff < 0.003:
                continue
            if subtype == "DMD":
                # Hooijmans 2017: more fat toward the proximal and distal tendons (parabolic along the muscle).
                z0, z1 = muscle_extent(name)
                pos = np.clip((zfrac - z0) / max(z1 - z0, 1e-3), 0, 1)
                end = ((2 * pos - 1) ** 2).astype(np.float32)[:, None, None]
                s = (score_common - 0.7 * end)[m]
            elif subtype == "COL6" and name in ("Sol", "LG", "MG"):
                s = score_gas[m]
            else:
                s = score_common[m]
            b = ffb[m]
            c = core_vox[m]
            if not c.any():  # a muscle too small to have a core (coarse test grids): use all of it
                c = np.ones_like(c)
            h = par["h0"] + par["h1"] * min(1.0, t / par["t_sat"])
            p = float(np.clip((t - b.mean()) / (0.85 * max(h - b.mean(), 1e-3)), 0.01, 0.97))
            thr = np.quantile(s, p)
            core = np.quantile(s, p * (1 - par["fringe"]))
            r_ = np.clip((thr - s) / max(thr - core, 1e-6), 0, 1).astype(np.float32)
            bc = float(b[c].mean())
            amp = (t - bc) / max(float(r_[c].mean()), 1e-6)
            for _ in range(4):     # the 0.97 ceiling clips the most severe muscles: re-scale to hit the target
                v = np.clip(b + amp * r_, 0, 0.97)
                gain = (t - bc) / max(float(v[c].mean()) - bc, 1e-6)
                if abs(gain - 1) < 1e-3:
                    break
                amp *= gain
            ffb[m] = v
            invb[m] = r_ > 0
    ff[box] = ffb
    involved[box] = invb
    return ff, involved
