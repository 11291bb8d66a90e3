#!/usr/bin/env python3
"""Independent calf Dixon phantom: DMD / CMD (COL6-like) / normal scans in the MDTexture cohort format.

A second, deliberately separate generator (it shares no code, no parameters and no shapes with
``MDTextureLib/phantom``), so that a model can be tested on phantom data it was not built around. Everything
here is a phantom: every FF, size and involvement value is invented from published ranges, not measured.

Anatomy is built per slice in a leg-centred frame (a = towards the medial side, b = posterior, both normalised
by the muscle compartment's half-axes): an outline with a few Fourier bumps, a triangular tibia and a round
fibula, compartments cut by straight septa (interosseous membrane, anterior / posterior intermuscular septa,
deep transverse septum), muscles split inside compartments, gastrocnemii as a layer under the posterior skin
that thins distally. Disease is an involvement map in 0..1 (fraction of tissue replaced by fat):
DMD = shot noise of fibre-aligned blobs, calibrated per muscle, worse towards the tendons; CMD (COL6-like) =
outside-in rims from the muscle, compartment or fascial boundaries. Water and fat get a smooth coil shading and
complex Gaussian noise; FF = |F| / (|W| + |F|) as a magnitude Dixon reconstruction gives it.

Usage: python generate.py --out DIR --per-class 6 --seed 0 [--background noise|zero] [--preview]
Arrays are (z, y, x) in LPS: x grows to patient left (medial for this right calf), y to posterior, z superior.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

LABELS = {"TA": 1, "EDL": 2, "Per": 3, "TP": 4, "Sol": 5, "LG": 6, "MG": 7}
UNLABELLED_MUSCLE = 9          # FDL / FHL: muscle tissue, written as 0 in muscles.nrrd
CLASS_NAMES = ("DMD", "CMD", "normal")

# Involvement susceptibility per muscle (fraction of the subject's severity), from the ordering in the notes:
# DMD Per ~ Sol ~ MG > LG >> EDL > TA > TP; COL6 triceps surae first, Per next, TA relatively spared.
DMD_SUSCEPTIBILITY = {"TA": 0.40, "EDL": 0.50, "Per": 1.00, "TP": 0.12, "Sol": 0.90, "LG": 0.80, "MG": 0.95,
                      "other": 0.30}
CMD_SUSCEPTIBILITY = {"TA": 0.20, "EDL": 0.35, "Per": 0.60, "TP": 0.45, "Sol": 1.00, "LG": 0.90, "MG": 0.95,
                      "other": 0.40}
# Level (fraction of tibial length below the knee) of each muscle belly's widest part: disease is worse
# away from it, towards the tendons (parabolic profile along the muscle).
BELLY_LEVEL = {"TA": 0.35, "EDL": 0.40, "Per": 0.35, "TP": 0.40, "Sol": 0.55, "LG": 0.25, "MG": 0.30,
               "other": 0.55}
DMD_FAMILIES = ("moth-eaten-fine", "patchy-coarse", "confluent")
CMD_FAMILIES = ("rim-each-muscle", "rim-compartment", "rim-fascia")


# ----------------------------------------------------------------------------------------------- subjects
def draw_subject(rng, class_name: str) -> dict:
    """Body and disease traits of one phantom subject; body traits overlap between classes on purpose."""
    age_range = {"DMD": (5.0, 15.0), "CMD": (4.0, 28.0), "normal": (5.0, 35.0)}[class_name]
    age = float(rng.uniform(*age_range))
    growth = min(1.0, 0.62 + 0.38 * (age - 4.0) / 12.0)           # calf girth reaches adult size ~16 y
    muscle_scale = {"DMD": rng.uniform(0.95, 1.12), "CMD": rng.uniform(0.82, 1.05),
                    "normal": rng.uniform(0.90, 1.08)}[class_name]   # pseudohypertrophy / atrophy, overlapping
    half_ml_mm = 50.0 * growth * muscle_scale * rng.uniform(0.92, 1.08)  # muscle compartment half-width
    if class_name == "DMD":
        severity = float(np.clip(0.06 * (age - 4.0) + rng.normal(0, 0.10), 0.03, 0.9))
        family = str(rng.choice(DMD_FAMILIES))
    elif class_name == "CMD":
        severity = float(rng.uniform(0.12, 0.75))
        family = str(rng.choice(CMD_FAMILIES))
    else:
        severity, family = 0.0, "normal"
    return {
        "age": round(age, 1), "severity": round(severity, 3), "pattern_family": family,
        "half_ml_mm": half_ml_mm, "ap_ratio": rng.uniform(0.84, 0.96),
        "subcut_mm": rng.uniform(3.0, 9.0) + (2.0 if age > 16 else 0.0),
        "skin_mm": rng.uniform(1.0, 1.8),
        "marrow_ff": float(np.clip(0.55 + 0.03 * age + rng.normal(0, 0.04), 0.5, 0.93)),
        "healthy_ff": rng.uniform(0.015, 0.04) + (0.015 if age > 25 else 0.0),
        "bumps": rng.normal(0, 0.03, size=(4, 2)),                   # Fourier bumps of the outline
        "seed_jitter": rng.normal(0, 0.04, size=(12, 2)),
        "gastro_depth": rng.uniform(0.30, 0.40), "mg_lg_split": rng.uniform(-0.15, 0.05),
        "rotation_rad": np.deg2rad(rng.uniform(-12.0, 12.0)),
    }


def draw_acquisition(rng, subject: dict) -> dict:
    """Pixel size, matrix, slab, SNR and coil shading of one phantom scan."""
    leg_mm = 2.0 * (subject["half_ml_mm"] + subject["subcut_mm"] + subject["skin_mm"])
    fov_mm = leg_mm * rng.uniform(1.45, 2.1)                        # one leg in the field of view
    fitting = [m for m in (192, 224, 256, 288, 320) if 0.7 <= fov_mm / m <= 1.5] or [192]
    matrix = int(rng.choice(fitting))
    pixel_mm = float(np.clip(fov_mm / matrix, 0.7, 1.5))
    slices = int(rng.integers(16, 31))
    return {"pixel_mm": round(pixel_mm, 3), "matrix": matrix, "slices": slices,
            "level_centre": rng.uniform(0.30, 0.45), "tibia_length_mm": 230.0 + 170.0 * min(1.0, subject["age"] / 17),
            "snr": rng.uniform(20.0, 60.0), "shading": rng.normal(0, 0.25, size=6),
            "offset_mm": rng.uniform(-0.12, 0.12, size=2) * matrix * pixel_mm}


# ----------------------------------------------------------------------------------------------- anatomy
def polygon_signed_distance(pa, pb, vertices):
    """Signed distance (negative inside) of points to a convex polygon given counter-clockwise or clockwise."""
    v = np.asarray(vertices, float)
    dist = np.full(pa.shape, np.inf)
    inside = np.ones(pa.shape, bool)
    e1, e2 = v[1] - v[0], v[2] - v[0]
    sign = np.sign(e1[0] * e2[1] - e1[1] * e2[0])
    for i in range(len(v)):
        p0, p1 = v[i], v[(i + 1) % len(v)]
        e = p1 - p0
        t = np.clip(((pa - p0[0]) * e[0] + (pb - p0[1]) * e[1]) / (e @ e), 0, 1)
        dist = np.minimum(dist, np.hypot(pa - p0[0] - t * e[0], pb - p0[1] - t * e[1]))
        inside &= sign * (e[0] * (pb - p0[1]) - e[1] * (pa - p0[0])) >= 0
    return np.where(inside, -dist, dist)


def same_side(pa, pb, p0, p1, reference):
    """Points on the same side of the line through p0 and p1 as the reference point (all in the a, b frame)."""
    def signed(x, y):
        return (p1[0] - p0[0]) * (y - p0[1]) - (p1[1] - p0[1]) * (x - p0[0])
    return np.sign(signed(pa, pb)) == np.sign(signed(*reference))


def outline_terms(subject, pa_mm, pb_mm):
    """Angle-only terms of the outline (the same on every slice: the taper scales both axes alike)."""
    theta = np.arctan2(pb_mm / subject["ap_ratio"], pa_mm)
    bump = sum(c * np.cos((k + 2) * theta) + s * np.sin((k + 2) * theta)
               for k, (c, s) in enumerate(subject["bumps"]))
    anteromedial = np.exp(-((np.angle(np.exp(1j * (theta + 0.93)))) / 0.45) ** 2)  # tibia under the skin there
    return theta, bump, anteromedial


def slice_anatomy(subject, level, pa_mm, pb_mm, angular):
    """Tissue maps of one axial slice at `level` (fraction of tibia below the knee): dict of arrays."""
    half_ml = subject["half_ml_mm"] * (1.0 - 0.9 * max(0.0, level - 0.35) ** 1.6)   # taper distally
    half_ap = half_ml * subject["ap_ratio"]
    a, b = pa_mm / half_ml, pb_mm / half_ap                                         # normalised frame
    theta, bump, anteromedial = angular
    r = np.hypot(a, b) / (1.0 + bump - 0.10 * anteromedial)
    depth_mm = (1.0 - r) * half_ml                                                  # ≈ depth below compartment edge
    subcut = subject["subcut_mm"] * (1.0 - 0.8 * anteromedial) * (1.0 + 0.25 * np.sin(theta))
    compartment = depth_mm > 0
    in_subcut = (depth_mm <= 0) & (depth_mm > -subcut)
    in_skin = (depth_mm <= -subcut) & (depth_mm > -subcut - subject["skin_mm"])
    scale_bone = half_ml / 50.0
    j = subject["seed_jitter"]
    tibia = [(0.20 + j[0, 0], -0.86 + j[0, 1] / 2), (0.58 + j[1, 0], -0.50), (0.06 + j[2, 0], -0.36)]
    tibia_sd = polygon_signed_distance(a * half_ml, b * half_ml, [(x * half_ml, y * half_ml) for x, y in tibia])
    fib_c = np.array([-0.55 + j[3, 0], -0.02 + j[3, 1]])
    fib_r_mm = 6.0 * scale_bone
    fib_sd = np.hypot(a * half_ml - fib_c[0] * half_ml, b * half_ap - fib_c[1] * half_ap) - fib_r_mm
    cortex_mm = 1.5 + 2.5 * scale_bone
    bone = (tibia_sd < 0) | (fib_sd < 0)
    marrow = (tibia_sd < -cortex_mm) | (fib_sd < -0.5 * cortex_mm)
    # Septa: interosseous membrane (tibia's lateral corner → fibula), anterior / posterior intermuscular septa
    # from the fibula to the skin, deep transverse septum from the fibula's back to the tibia's medial corner.
    tib_a, tib_m, tib_l = (np.array(v) for v in tibia)
    fib_back, tib_back = fib_c + np.array([0.0, 0.36]), tib_m + np.array([-0.05, 0.45])
    ant_of_membrane = same_side(a, b, tib_l, fib_c, (-0.2, -0.95))
    lateral_of_tibia = same_side(a, b, tib_a, tib_l, (-0.5, -0.6))
    medial_of_ant_septum = same_side(a, b, fib_c, fib_c + np.array([-0.55, -0.9]), (0.0, -0.8))
    lateral_of_post_septum = same_side(a, b, fib_c, fib_c + np.array([-0.6, 0.75]), (-0.95, -0.3))
    deep_of_transverse = same_side(a, b, fib_back, tib_back, (0.0, -0.1))
    anterior = ant_of_membrane & lateral_of_tibia & medial_of_ant_septum
    lateral = ~medial_of_ant_septum & lateral_of_post_septum
    deep = ~anterior & ~lateral & deep_of_transverse & ~ant_of_membrane | (
        ~lateral & deep_of_transverse & ~lateral_of_tibia & (b > tib_l[1]))
    pocket = ant_of_membrane & ~lateral_of_tibia & (b < tib_m[1])   # in front of the tibia's medial face: fat
    superficial = ~(anterior | lateral | deep | pocket)
    muscle = np.zeros(a.shape, np.uint8)
    inside = compartment & ~bone & ~pocket
    in_subcut |= compartment & pocket & ~bone
    # anterior compartment: TA medial (on the tibia), EDL lateral
    edl_line = same_side(a, b, np.array([-0.36 + j[4, 0], -1.0]), np.array([-0.44 + j[4, 0], -0.2]), (-0.9, -0.5))
    muscle[inside & anterior & ~edl_line] = LABELS["TA"]
    muscle[inside & anterior & edl_line] = LABELS["EDL"]
    muscle[inside & lateral] = LABELS["Per"]
    # deep posterior: TP in the middle, FDL medially (behind the tibia), FHL behind the fibula (distally larger)
    fdl = a > 0.30 + j[5, 0]
    fhl = (a < -0.32 + j[6, 0] + 0.4 * max(0.0, level - 0.45)) & (b > 0.15)
    muscle[inside & deep] = LABELS["TP"]
    muscle[inside & deep & (fdl | fhl)] = UNLABELLED_MUSCLE
    # superficial posterior: gastrocnemii as a layer under the posterior surface, soleus beneath
    taper_mg = np.clip((0.55 - level) / 0.20, 0, 1) ** 0.6
    taper_lg = np.clip((0.46 - level) / 0.18, 0, 1) ** 0.6
    split = subject["mg_lg_split"]
    gastro_depth = subject["gastro_depth"] * np.where(a > split, taper_mg, taper_lg)
    gastro = (r > 1.0 - gastro_depth) & (b > 0.15) & (gastro_depth > 0.02)
    muscle[inside & superficial] = LABELS["Sol"]
    muscle[inside & superficial & gastro & (a > split)] = LABELS["MG"]
    muscle[inside & superficial & gastro & (a <= split)] = LABELS["LG"]
    # Fascia: one-pixel lines where two muscles meet or where a compartment septum runs
    fascia = np.zeros_like(compartment)
    for axis in (0, 1):
        here, there = muscle, np.roll(muscle, -1, axis=axis)
        fascia |= (here != there) & (here > 0) & (there > 0)
    nv_bundle = ((np.hypot(a - 0.05, b - 0.28) < 0.06) | (np.hypot(a + 0.22, b + 0.42) < 0.04)) & inside
    return {"compartment": compartment, "subcut": in_subcut, "skin": in_skin, "bone": bone, "marrow": marrow,
            "muscle": muscle, "fascia": fascia, "nv": nv_bundle, "depth_mm": depth_mm}


def build_anatomy(subject, acq):
    """Stack the slices: (z, y, x) tissue maps for the whole slab; slice 0 is the most distal (inferior)."""
    n, m, px = acq["slices"], acq["matrix"], acq["pixel_mm"]
    coords = (np.arange(m) - (m - 1) / 2) * px
    xx, yy = np.meshgrid(coords - acq["offset_mm"][0], coords - acq["offset_mm"][1])
    c, s = np.cos(subject["rotation_rad"]), np.sin(subject["rotation_rad"])
    pa, pb = c * xx + s * yy, -s * xx + c * yy                         # x → medial (a), y → posterior (b)
    slab_mm = n * 4.0
    levels = acq["level_centre"] + (0.5 - (np.arange(n) + 0.5) / n) * slab_mm / acq["tibia_length_mm"]
    angular = outline_terms(subject, pa, pb)
    slices = [slice_anatomy(subject, lv, pa, pb, angular) for lv in levels]
    volume = {k: np.stack([sl[k] for sl in slices]) for k in slices[0]}
    volume["levels"] = levels
    return volume


# ----------------------------------------------------------------------------------------------- disease
def calibrate_gain(field, target_mean, transfer):
    """Gain g with mean(transfer(g · field)) ≈ target_mean, by bisection on a log scale."""
    if target_mean <= 1e-4 or field.size == 0 or field.max() <= 0:
        return 0.0
    lo, hi = -8.0, 8.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if transfer(np.exp(mid) * field).mean() < target_mean:
            lo = mid
        else:
            hi = mid
    return float(np.exp((lo + hi) / 2))


def muscle_names_of(volume):
    names = dict((v, k) for k, v in LABELS.items())
    names[UNLABELLED_MUSCLE] = "other"
    return names


def length_profile(name, levels, strength):
    """Disease multiplier along the muscle: 1 at the belly, higher towards the tendons (parabolic)."""
    return 1.0 + strength * ((levels - BELLY_LEVEL[name]) / 0.25) ** 2


def dmd_involvement(rng, subject, volume, px_mm):
    """Moth-eaten / patchy / confluent DMD fat: fibre-aligned Gaussian blobs (shot noise), per-muscle calibrated."""
    family, sev = subject["pattern_family"], subject["severity"]
    blob_mm, density = {"moth-eaten-fine": ((1.2, 2.5), 0.012), "patchy-coarse": ((3.0, 6.0), 0.003),
                        "confluent": ((2.5, 5.0), 0.010)}[family]
    muscle = volume["muscle"]
    shape = muscle.shape
    field = np.zeros(shape, np.float32)
    for sigma_mm in np.linspace(*blob_mm, 3):
        per_voxel = density * (px_mm / sigma_mm) ** 2 * (0.4 + sev)
        count = rng.poisson(per_voxel * muscle.size)
        impulses = np.zeros(muscle.size, np.float32)
        np.add.at(impulses, rng.integers(0, muscle.size, count), rng.gamma(2.0, 0.5, count))
        impulses = impulses.reshape(shape)
        sigma_z = rng.uniform(1.0, 2.5)  # slices (4 mm): fat streaks run along the fibres
        field += ndimage.gaussian_filter(impulses, (sigma_z, sigma_mm / px_mm, sigma_mm / px_mm))
    field /= max(float(field[muscle > 0].mean()), 1e-9)
    transfer = (lambda f: 1.0 - np.exp(-f ** 1.5)) if family != "confluent" else (lambda f: 1.0 - np.exp(-f))
    return calibrated_map(rng, subject, volume, field, transfer, DMD_SUSCEPTIBILITY, gradient=0.35)


def cmd_involvement(rng, subject, volume, px_mm):
    """COL6-like outside-in fat: exp(-d/λ) from the muscle, compartment or fascial boundaries, irregular."""
    family, sev = subject["pattern_family"], subject["severity"]
    muscle, sampling = volume["muscle"], (1e4, px_mm, px_mm)   # huge z spacing: in-plane distances only
    if family == "rim-each-muscle":
        d = ndimage.distance_transform_edt((muscle > 0) & ~volume["fascia"], sampling=sampling)
    elif family == "rim-compartment":
        d = ndimage.distance_transform_edt(volume["compartment"], sampling=sampling)
    else:  # rim-fascia: along the septa and the soleus / gastrocnemius plane, not the outer edge
        d = ndimage.distance_transform_edt(~volume["fascia"], sampling=sampling)
    lam_mm = rng.uniform(2.0, 4.5) * (1.0 + 1.5 * sev)           # the rim deepens as the disease advances
    wobble = ndimage.gaussian_filter(rng.normal(size=muscle.shape).astype(np.float32), (1.5, 8 / px_mm, 8 / px_mm))
    wobble = 1.0 + 0.5 * wobble / max(float(wobble.std()), 1e-9)
    speckle = ndimage.gaussian_filter(rng.random(muscle.shape).astype(np.float32), (0.7, 1.0 / px_mm, 1.0 / px_mm))
    field = np.exp(-d / lam_mm) * np.clip(wobble, 0.2, None) * (0.8 + 0.4 * speckle / speckle.max())
    return calibrated_map(rng, subject, volume, field.astype(np.float32), lambda f: 1.0 - np.exp(-f ** 2),
                          CMD_SUSCEPTIBILITY, gradient=0.15)


def calibrated_map(rng, subject, volume, field, transfer, susceptibility, gradient):
    """Per muscle: gain so that the mean involvement is severity × susceptibility (× jitter), times the
    length profile; returns the involvement volume (0 outside muscle)."""
    inv = np.zeros(field.shape, np.float32)
    muscle, levels = volume["muscle"], volume["levels"]
    for value, name in muscle_names_of(volume).items():
        mask = muscle == value
        if not mask.any():
            continue
        target = min(0.92, subject["severity"] * susceptibility[name] * rng.uniform(0.8, 1.2))
        profile = length_profile(name, levels, gradient)[:, None, None]
        weighted = field * profile
        values = weighted[mask]
        sample = values if values.size <= 40000 else rng.choice(values, 40000, replace=False)
        gain = calibrate_gain(sample, target, transfer)
        inv[mask] = transfer(gain * weighted[mask])
    return np.clip(inv, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------- signal
def tissue_fat_fraction(subject, volume, involvement):
    """True FF and proton density per voxel (phantom values)."""
    ff = np.zeros(volume["muscle"].shape, np.float32)
    pd = np.zeros_like(ff)
    healthy = subject["healthy_ff"]
    muscle = volume["muscle"] > 0
    ff[muscle] = healthy + (0.95 - healthy) * involvement[muscle]
    pd[muscle] = 1.0
    ff[volume["fascia"]] = np.maximum(ff[volume["fascia"]], 0.45)
    ff[volume["nv"]] = 0.7
    pd[volume["nv"]] = 0.9
    for key, value, density in (("subcut", 0.93, 0.95), ("skin", 0.25, 0.8), ("marrow", subject["marrow_ff"], 0.9)):
        ff[volume[key]] = value
        pd[volume[key]] = density
    cortex = volume["bone"] & ~volume["marrow"]
    ff[cortex], pd[cortex] = 0.3, 0.03
    return ff, pd


def dixon_signal(rng, acq, ff, pd, background: str):
    """Water, fat (magnitudes with coil shading and complex noise) and the magnitude-reconstructed FF."""
    z, m = ff.shape[0], ff.shape[1]
    # partial volume at tissue edges: a half-pixel blur on the tissue maps before the noise
    water = ndimage.gaussian_filter(pd * (1 - ff), (0.3, 0.5, 0.5))
    fat = ndimage.gaussian_filter(pd * ff, (0.3, 0.5, 0.5))
    u = np.linspace(-1, 1, m)
    uu, vv = np.meshgrid(u, u)
    k = acq["shading"]
    shade = np.exp(k[0] * uu + k[1] * vv + 0.5 * k[2] * uu * vv + 0.5 * k[3] * uu ** 2 + 0.5 * k[4] * vv ** 2)
    shade = shade[None] * (1.0 + 0.05 * k[5] * np.linspace(-1, 1, z))[:, None, None]
    sigma = 1.0 / acq["snr"]

    def noisy(x):
        return np.abs(x * shade + sigma * (rng.normal(size=x.shape) + 1j * rng.normal(size=x.shape))).astype(np.float32)
    w, f = noisy(water), noisy(fat)
    total = w + f
    ff_meas = np.where(total > 0, f / np.maximum(total, 1e-12), 0.0).astype(np.float32)
    if background == "zero":  # scanner-style mask of low-signal voxels
        ff_meas[total < 6 * sigma * float(np.median(shade))] = 0.0
    scale = 1000.0  # arbitrary signal units
    return (w * scale).astype(np.float32), (f * scale).astype(np.float32), np.clip(ff_meas, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------- writing
def write_nrrd(array, path, acq):
    """(z, y, x) array → NRRD in LPS with identity direction, the scan's spacing and an origin at voxel 0."""
    image = sitk.GetImageFromArray(array)
    px = acq["pixel_mm"]
    image.SetSpacing((px, px, 4.0))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    fov = acq["matrix"] * px
    # LPS: +x is the patient's left, so a right calf's field of view is centred at negative x (~9 cm right of
    # the body axis), a little posterior of the table centre, and some 30 cm below the scanner's isocentre.
    image.SetOrigin((-fov / 2 - 90.0, -fov / 2 + 20.0, -300.0))
    sitk.WriteImage(image, str(path), useCompression=True, compressionLevel=1)  # fast: noise compresses badly


def make_scan(rng, class_name, folder: Path, background: str) -> dict:
    subject = draw_subject(rng, class_name)
    acq = draw_acquisition(rng, subject)
    volume = build_anatomy(subject, acq)
    if class_name == "DMD":
        involvement = dmd_involvement(rng, subject, volume, acq["pixel_mm"])
    elif class_name == "CMD":
        involvement = cmd_involvement(rng, subject, volume, acq["pixel_mm"])
    else:
        involvement = np.zeros(volume["muscle"].shape, np.float32)
    ff_true, pd = tissue_fat_fraction(subject, volume, involvement)
    water, fat, ff = dixon_signal(rng, acq, ff_true, pd, background)
    labels = np.where(volume["muscle"] == UNLABELLED_MUSCLE, 0, volume["muscle"])
    labels[volume["fascia"]] = 0
    folder.mkdir(parents=True)
    for name, array in (("water", water), ("fat", fat), ("ff", ff), ("muscles", labels.astype(np.uint8)),
                        ("involvement", involvement.astype(np.float32))):
        write_nrrd(array, folder / f"{name}.nrrd", acq)
    return {"age": subject["age"], "severity": subject["severity"], "pattern_family": subject["pattern_family"],
            "pixel_mm": acq["pixel_mm"], "matrix": acq["matrix"], "slices": acq["slices"],
            "snr": round(acq["snr"], 1), "leg_width_mm": round(2 * (subject["half_ml_mm"] + subject["subcut_mm"]
                                                                     + subject["skin_mm"]), 1)}


def generate(out: Path, per_class: int, seed: int, background: str = "noise") -> list:
    """Write the cohort into a fresh temporary sibling of `out`, then move it into place (whole or nothing)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"refusing to write into non-empty {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".indep-", dir=out.parent))
    rows = []
    try:
        rng = np.random.default_rng(seed)
        for class_name in CLASS_NAMES:
            for i in range(per_class):
                subject_id = f"indep-{class_name.lower()}-{i:02d}"
                folder = f"{subject_id}_scan1"
                info = make_scan(rng, class_name, tmp / folder, background)
                rows.append({"subject": subject_id, "scan": 1, "class": class_name, "folder": folder,
                             "body_cues": "independent-generator", "background": background, **info})
        with open(tmp / "cohort.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (tmp / "generator.json").write_text(json.dumps(
            {"generator": "Resources/IndependentPhantom/generate.py", "seed": seed, "per_class": per_class,
             "background": background, "note": "synthetic phantom data, not measurements"}, indent=1))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows


def write_preview(out: Path, rows, path: Path, n_scans: int = 6):
    """PNG of the middle slice of the first scans of each class: FF, labels, involvement."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    picks = [r for c in CLASS_NAMES for r in [x for x in rows if x["class"] == c][:max(1, n_scans // 3)]]
    fig, axes = plt.subplots(3, len(picks), figsize=(2.6 * len(picks), 8))
    for col, row in enumerate(picks):
        vols = [sitk.GetArrayFromImage(sitk.ReadImage(str(out / row["folder"] / f"{n}.nrrd")))
                for n in ("ff", "muscles", "involvement")]
        k = vols[0].shape[0] // 2
        for r_i, (vol, cmap, vmax) in enumerate(zip(vols, ("gray", "tab10", "magma"), (1, 9, 1))):
            axes[r_i, col].imshow(vol[k], cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
            axes[r_i, col].axis("off")
        axes[0, col].set_title(f"{row['class']} {row['pattern_family']}\n{row['age']} y", fontsize=8)
    fig.suptitle("independent phantom (synthetic): FF / labels / involvement, mid slice", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--background", choices=("noise", "zero"), default="noise",
                        help="FF outside the body: magnitude noise (default) or 0 as a scanner mask writes it")
    parser.add_argument("--preview", type=Path, help="also write a PNG of a few mid slices here")
    args = parser.parse_args(argv)
    start = time.time()
    rows = generate(args.out, args.per_class, args.seed, args.background)
    if args.preview:
        write_preview(args.out, rows, args.preview)
    print(f"wrote {len(rows)} phantom scans to {args.out} in {time.time() - start:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
