"""Where the fat goes inside each muscle: the pattern families of the published descriptions (facts notes §1c).

Every family ranks the voxels of a muscle by a score S (low = infiltrated first); the infiltrated fraction p of a
muscle is the p-quantile of S, so the *amount* (mean FF, :mod:`.disease`) and the *pattern* (which voxels) are set
independently. Families, recorded per scan as ``pattern_family``:

- ``dmd-patchy-fine`` / ``dmd-patchy-coarse``: a smooth random field thresholded inside each muscle -> scattered
  "moth-eaten" patches (about 2-3 mm / 5 mm) that merge as the amount grows; worse toward the tendons (Hooijmans 2017).
- ``dmd-confluent``: large fields -> fuzzy, confluent ("washed-out") regions with patches at their edge.
- ``cmd-rim-muscle``: a rim along each muscle's boundary ("halo", outside-in, COL6) with an irregular inner edge,
  reaching deeper along the soleus / gastrocnemius interface.
- ``cmd-rim-compartment``: a rim along the muscle compartment's outer edge (the deep fascia): outer parts first.
- ``cmd-rim-fascia``: bands along the intermuscular septa (fasciae between muscles), the muscle's outer edge spared.
- ``cmd-diffuse``: diffuse, fine-grained infiltration through the whole muscle (LAMA2-like, with atrophy).
- ``normal``: only the low, slightly marbled physiological FF.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .anatomy import REGIONS, muscle_extent

PATTERN_FAMILIES = {
    "DMD": ("dmd-patchy-fine", "dmd-patchy-coarse", "dmd-confluent"),
    "COL6": ("cmd-rim-compartment", "cmd-rim-muscle", "cmd-rim-fascia"),
    "LAMA2": ("cmd-diffuse",),
    "none": ("normal",),
}
#: The one family per subtype of the realistic cohort (the patterns the phantom had before families existed).
REALISTIC_FAMILY = {"DMD": "dmd-patchy-coarse", "COL6": "cmd-rim-muscle", "LAMA2": "cmd-diffuse", "none": "normal"}
ALL_FAMILIES = tuple(f for fams in PATTERN_FAMILIES.values() for f in fams)
GASTROCNEMIUS_SIDE = ("Sol", "LG", "MG")
RAGGED = 1.0          # mm of pixel-scale noise on a rim's inner edge (texture cohort)


def check_family(subtype: str, family: str) -> str:
    if family not in PATTERN_FAMILIES.get(subtype, ()):
        raise InputError(f"pattern family {family!r} does not belong to subtype {subtype}; expected one of "
                         f"{', '.join(PATTERN_FAMILIES.get(subtype, ()))}")
    return family


def smooth_field(rng: np.random.Generator, shape, sigma_px) -> np.ndarray:
    """Zero-mean, unit-SD Gaussian random field (float32) with the given smoothing (z, y, x) in voxels."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_px, mode="reflect")
    return (f - f.mean()) / max(float(f.std()), 1e-6)


def _inplane_distance(mask: np.ndarray, pixel_mm: float) -> np.ndarray:
    """In-plane distance (mm) of every True voxel to the nearest False one; the array edge counts as False."""
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    d = ndimage.distance_transform_edt(padded, sampling=(1e4, pixel_mm, pixel_mm))
    return d[:, 1:-1, 1:-1].astype(np.float32)


def family_scores(family, reg, fascia, d_boundary, d_interface, pixel_mm, rng, scale=1.0, ragged=False):
    """Per-voxel score fields of a family over the box: (common score, score for Sol/LG/MG or None).

    The two base fields are always drawn first and in the same order, so a family that needs no more leaves the
    random stream exactly where the phantom always left it (the realistic cohort keeps its images). ``ragged``
    (texture cohort) roughens the rims' inner edges at the pixel scale.
    """
    shape = reg.shape
    coarse = smooth_field(rng, shape, (1.0, 2.0 * scale / pixel_mm, 2.0 * scale / pixel_mm))   # ~5 mm patches
    fine = smooth_field(rng, shape, (0.5, 0.7 / pixel_mm, 0.7 / pixel_mm))                     # speckle / marbling
    if family == "normal":
        return None, None, fine
    if family == "dmd-patchy-coarse":
        return -(0.8 * coarse + 0.45 * fine), None, fine
    if family == "dmd-patchy-fine":
        small = smooth_field(rng, shape, (0.7, 1.0 * scale / pixel_mm, 1.0 * scale / pixel_mm))
        return -(0.8 * small + 0.45 * fine), None, fine
    if family == "dmd-confluent":
        big = smooth_field(rng, shape, (2.0, 5.0 * scale / pixel_mm, 5.0 * scale / pixel_mm))
        return -(0.85 * big + 0.35 * coarse + 0.2 * fine), None, fine
    # the rims' inner edges are ragged at the pixel scale too (RAGGED * fine), as fine as the DMD patches' edges, so
    # the point-spread blur -- which lowers the FF spread of fine patterns -- does not tell rims from patches
    if family == "cmd-rim-muscle":
        rag = RAGGED * fine if ragged else 0.0      # the realistic cohort keeps its smooth rims
        return (d_boundary + 1.2 * coarse + rag, np.minimum(d_boundary, 0.5 * d_interface) + 1.2 * coarse + rag,
                fine)
    if family == "cmd-rim-compartment":
        inside = ndimage.binary_fill_holes(reg > 0, structure=_inplane_cross())
        return _inplane_distance(inside, pixel_mm) + 1.2 * coarse + RAGGED * fine, None, fine
    if family == "cmd-rim-fascia":
        # distance to the septa between muscles; where a slice has no septum the field is flat (noise decides)
        d = _inplane_distance(~fascia, pixel_mm)
        return np.minimum(d, 60.0) + 1.2 * coarse + RAGGED * fine, None, fine
    if family == "cmd-diffuse":
        return -(0.75 * fine + 0.35 * coarse), None, fine
    raise InputError(f"unknown pattern family {family!r}; expected one of {', '.join(ALL_FAMILIES)}")


def _ramp(s: np.ndarray, p: float, fringe: float, rank_ramp: bool) -> np.ndarray:
    """Infiltration weight 0..1 per voxel: 1 in the core (lowest scores), ramping to 0 over the fringe."""
    if rank_ramp:
        q = np.empty(s.size, dtype=np.float32)
        q[np.argsort(s, kind="stable")] = (np.arange(s.size, dtype=np.float32) + 0.5) / s.size
        return np.clip((p - q) / max(p * fringe, 1e-6), 0, 1).astype(np.float32)
    thr = np.quantile(s, p)
    core = np.quantile(s, p * (1 - fringe))
    return np.clip((thr - s) / max(thr - core, 1e-6), 0, 1).astype(np.float32)


def place_disease(region, fascia, d_boundary_mm, d_interface_mm, zfrac, targets, family, base_ff, pixel_mm, level,
                  rng, scale=1.0):
    """Voxel-wise true muscle FF and the involvement mask.

    ``family``: a pattern family; ``level``: :func:`.disease.infiltration_level`; ``scale`` stretches the patch
    size of the random fields. Returns (ff_muscle float32 (z,y,x), involved bool (z,y,x)). ``ff_muscle`` is defined
    on muscle voxels (region>0) and 0 elsewhere. The amounts are calibrated on the muscle voxels outside the fascia
    lines (what the labelmap holds), so the labelled whole-muscle mean equals the target. Arrays outside the
    muscles' bounding box are never touched (speed).
    """
    ff = np.zeros(region.shape, dtype=np.float32)
    involved = np.zeros(region.shape, dtype=bool)
    idx = np.nonzero(region.any(axis=0))
    if idx[0].size == 0:
        return ff, involved
    box = (slice(None), slice(idx[0].min(), idx[0].max() + 1), slice(idx[1].min(), idx[1].max() + 1))
    reg = region[box]
    core_vox = ~fascia[box]
    score_common, score_gas, fine = family_scores(family, reg, fascia[box], d_boundary_mm[box], d_interface_mm[box],
                                                  pixel_mm, rng, scale, level is not None and level["rank_ramp"])
    # Physiological fat: low, slightly marbled (intramuscular fat and fascicle septa).
    base = (base_ff * (1.0 + 0.3 * fine)).clip(0.002, None).astype(np.float32)
    ffb = np.where(reg > 0, base, 0.0).astype(np.float32)
    invb = np.zeros(reg.shape, dtype=bool)
    if score_common is not None:
        for r, name in enumerate(REGIONS):
            m = reg == r + 1
            t = float(targets[r])
            if not m.any() or t - base_ff < 0.003:
                continue
            if family.startswith("dmd-"):
                # Hooijmans 2017: more fat toward the proximal and distal tendons (parabolic along the muscle).
                z0, z1 = muscle_extent(name)
                pos = np.clip((zfrac - z0) / max(z1 - z0, 1e-3), 0, 1)
                end = ((2 * pos - 1) ** 2).astype(np.float32)[:, None, None]
                s = (score_common - 0.7 * end)[m]
            elif score_gas is not None and name in GASTROCNEMIUS_SIDE:
                s = score_gas[m]
            else:
                s = score_common[m]
            ffb[m], invb[m] = _fill_muscle(s, ffb[m], core_vox[m], t, level)
    ff[box] = ffb
    involved[box] = invb
    return ff, involved


def _fill_muscle(s, b, c, t, level):
    """FF of one muscle's voxels (scores ``s``, healthy FF ``b``, core mask ``c``) reaching mean ``t`` on the core."""
    if not c.any():  # a muscle too small to have a core (coarse test grids): use all of it
        c = np.ones_like(c)
    h = level["h0"] + level["h1"] * min(1.0, t / level["t_sat"])
    p = float(np.clip((t - b.mean()) / (0.85 * max(h - b.mean(), 1e-3)), 0.01, 0.97))
    r_ = _ramp(s, p, level["fringe"], level["rank_ramp"])
    bc = float(b[c].mean())
    amp = (t - bc) / max(float(r_[c].mean()), 1e-6)
    for _ in range(4):     # the 0.97 ceiling clips the most severe muscles: re-scale to hit the target
        v = np.clip(b + amp * r_, 0, 0.97)
        gain = (t - bc) / max(float(v[c].mean()) - bc, 1e-6)
        if abs(gain - 1) < 1e-3:
            break
        amp *= gain
    return v, r_ > 0


def _inplane_cross() -> np.ndarray:
    s = np.zeros((1, 3, 3), dtype=bool)
    s[0, 1, :] = s[0, :, 1] = True
    return s
