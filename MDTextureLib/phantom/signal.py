"""Dixon water and fat magnitude images from tissue fractions, with the acquisition's imperfections.

Model (facts §2b-§2c): each voxel holds a muscle part (its FF from the disease model) and a non-muscle part (skin,
subcutaneous fat, bone cortex and marrow, fascia, neurovascular fat). Proton-density weighted water and fat
amounts W = PD (1-FF), F = PD FF are blurred by the point-spread function (partial volume at every boundary),
multiplied by the same smooth receive-coil sensitivity, and get complex Gaussian noise before the magnitude is
taken, so low-signal images carry the Rician floor. FF = F / (W + F) from the magnitudes therefore reads a few
percent too high in lean muscle (noise bias, Liu 2007) while the coil shading cancels except through the local SNR.
Relaxation (T1/T2*) weighting is not modelled: it is folded into the proton densities.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .anatomy import AIR, CORTEX, FASCIA_FAT, MARROW, NV_FAT, SKIN, SUBCUT_FAT

#: Muscle water signal at unit coil sensitivity, in scanner-like units.
SIGNAL_SCALE = 1000.0
#: FF is set to 0 where W+F is below this many noise SDs (scanners mask the background the same way).
BACKGROUND_SIGMAS = 6.0


def tissue_tables(marrow_ff: float):
    """Proton density (muscle = 1) and FF of each non-muscle tissue code."""
    pd = np.zeros(7, dtype=np.float32)
    ff = np.zeros(7, dtype=np.float32)
    for code, (p, f) in {AIR: (0.0, 0.0), SKIN: (0.7, 0.12), SUBCUT_FAT: (0.9, 0.93), CORTEX: (0.03, 0.3),
                         MARROW: (0.85, marrow_ff), FASCIA_FAT: (0.8, 0.85), NV_FAT: (0.8, 0.7)}.items():
        pd[code], ff[code] = p, f
    return pd, ff


def true_water_fat(muscle_frac, ff_muscle, tissue, marrow_ff):
    """Noise-free water and fat amounts (muscle water = 1) before the PSF."""
    pd, fft = tissue_tables(marrow_ff)
    other = (1.0 - muscle_frac) * pd[tissue]
    water = muscle_frac * (1.0 - ff_muscle) + other * (1.0 - fft[tissue])
    fat = muscle_frac * ff_muscle + other * fft[tissue]
    return water.astype(np.float32), fat.astype(np.float32)


def coil_sensitivity(shape, pixel_mm, slice_mm, centre_px, outer_radius_mm, rng):
    """Smooth multiplicative receive field (z, y, x): a ring of coil elements around the leg, +-20-40 %.

    Root-sum-of-squares of Gaussian element profiles is brighter near the skin and darker in the middle, like an
    extremity array; a slow fall-off along z models the coil's finite length.
    """
    nz, ny, nx = shape
    n_el = int(rng.integers(4, 9))
    phase = rng.uniform(0, 2 * np.pi)
    ang = phase + 2 * np.pi * np.arange(n_el) / n_el + rng.normal(0, 0.15, n_el)
    ring = outer_radius_mm + 12.0
    width = 0.9 * outer_radius_mm
    gains = rng.uniform(0.7, 1.3, n_el)
    y = (np.arange(ny, dtype=np.float32) - centre_px[0]) * pixel_mm
    x = (np.arange(nx, dtype=np.float32) - centre_px[1]) * pixel_mm
    acc = np.zeros((ny, nx), dtype=np.float32)
    for a, g in zip(ang, gains):
        cy, cx = ring * np.sin(a), ring * np.cos(a)
        prof_y = np.exp(-((y - cy) ** 2) / (2 * width ** 2))[:, None]
        prof_x = np.exp(-((x - cx) ** 2) / (2 * width ** 2))[None, :]
        acc += (g * prof_y * prof_x) ** 2
    log_b = 0.5 * np.log(acc + 1e-12)
    inside = ((y[:, None] ** 2 + x[None, :] ** 2) <= outer_radius_mm ** 2)
    mu, sd = float(log_b[inside].mean()), float(log_b[inside].std()) + 1e-6
    spread = rng.uniform(0.10, 0.20)                # SD of log-sensitivity over the leg
    b2 = np.exp((log_b - mu) / sd * spread).clip(0.4, 2.5)
    zc = (np.arange(nz) - (nz - 1) / 2.0 + rng.normal(0, 2)) * slice_mm
    bz = np.exp(-0.5 * (zc / rng.uniform(120, 220)) ** 2).astype(np.float32)
    return (bz[:, None, None] * b2[None]).astype(np.float32)


def magnitude_dixon(water_true, fat_true, coil, snr, rng, psf_sigma_px=0.5):
    """Noisy magnitude W, F (float32, scanner units) and the noise SD used."""
    sigma = SIGNAL_SCALE / snr
    out = []
    for img in (water_true, fat_true):
        clean = ndimage.gaussian_filter(img, (0, psf_sigma_px, psf_sigma_px)) * coil * np.float32(SIGNAL_SCALE)
        re = clean + np.float32(sigma) * rng.standard_normal(img.shape, dtype=np.float32)
        im = np.float32(sigma) * rng.standard_normal(img.shape, dtype=np.float32)
        out.append(np.hypot(re, im).astype(np.float32))
    return out[0], out[1], sigma


def fat_fraction(water, fat, sigma):
    """FF = F / (W + F) from magnitudes (fraction), 0 in the background."""
    total = water + fat
    ff = np.zeros_like(total)
    fg = total > BACKGROUND_SIGMAS * sigma
    ff[fg] = fat[fg] / total[fg]
    return ff
