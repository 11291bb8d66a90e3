"""Who is scanned and how: subject traits (class, age, severity, leg size) and scanner/session settings.

Numbers come from the facts notes §2a-§2b: calf circumference 24-30 cm in children of 6-12 y and 34-39 cm in adults;
subcutaneous fat 4-15 mm (thicker in DMD); ML/AP elongation 5-10 %; 3T extremity protocols with a 150-240 mm FOV,
matrix 192-320, 0.7-1.5 mm pixels, 4 mm slices, 16-35 slices; muscle water SNR 20-60.

``body_cues``: ``realistic`` links body traits to the class as the literature does (DMD: young boys, calf
pseudohypertrophy, thicker fat; CMD: atrophy; normal: all ages). ``texture`` (default) draws every body trait -- age,
leg size, muscle scale, subcutaneous fat, skin, marrow FF, aspect, base FF -- from one distribution for every class,
and adds anatomy jitter (leg shape, muscle layout), so that only the disease pattern tells the classes apart.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..constants import CLASSES
from ..errors import InputError
from .anatomy import N_REGIONS, REGIONS, GridSpec, LegSpec, leg_half_extent_mm
from .disease import BODY_CUES, SUBTYPES
from .patterns import PATTERN_FAMILIES, REALISTIC_FAMILY, check_family

MATRICES = (192, 224, 256, 288, 320)
PIXEL_RANGE_MM = (0.7, 1.5)
FOV_RANGE_MM = (150.0, 240.0)
SLICE_MM = 4.0
N_SLICES_RANGE = (16, 35)
AGE_RANGE = {"DMD": (5.0, 18.0), "COL6": (5.0, 35.0), "LAMA2": (5.0, 18.0), "none": (5.0, 55.0)}


@dataclass(frozen=True)
class Subject:
    class_name: str
    subtype: str            # DMD, COL6, LAMA2 or none
    age: float              # years at this scan
    severity: float         # 0 (nearly normal) .. 1 (end stage); 0 for normal subjects
    severity_offset: float  # subject's deviation from the age trend (DMD), kept across follow-ups
    circumference_cm: float
    muscle_scale: float     # >1 pseudohypertrophy (DMD), <1 atrophy (CMD)
    fat_mm: float
    skin_mm: float
    aspect: float
    base_ff: float          # physiological muscle FF (fraction)
    marrow_ff: float
    position: tuple         # per region, where the subject sits inside the class's FF range (0..1)
    body_cues: str = "texture"
    pattern_family: str = "normal"
    pattern_scale: float = 1.0      # stretches the patch size of the pattern's random fields
    level_u: float = 0.5            # where the infiltrated tissue's peak FF sits in the common range (texture)
    egg: float = 0.12               # calf narrower anteriorly than posteriorly (anatomy)
    layout: tuple = ()              # per region (du, dv, area scale): muscle layout jitter; () = the atlas layout


def dmd_severity(age: float, offset: float) -> float:
    """DMD severity grows with age, placing the facts' age groups on the severity knots of disease.py:
    early ambulatory (5-7 y) ~0.1, late ambulatory (8-12 y, midpoint 10 y) 0.5, non-ambulant (>12 y) ~0.9."""
    return float(np.clip((age - 5.0) / 10.0 + offset, 0.02, 1.0))


def texture_age(u) -> float:
    """One age distribution for every class (texture cohort): mostly children (8.7 +- 2.0 y, 5-13, as ImagingDMD),
    a quarter teenagers and young adults (12-30 y)."""
    z = float(np.sqrt(-2 * np.log(max(u[1], 1e-12))) * np.cos(2 * np.pi * u[11]))   # Box-Muller
    return float(np.clip(8.7 + 2.0 * z, 5.0, 13.0)) if u[0] < 0.75 else 12.0 + 18.0 * u[1]


def draw_subject(rng: np.random.Generator, class_name: str, age=None, severity=None, subtype=None,
                 body_cues: str = "texture", pattern_family=None) -> Subject:
    """Draw one subject of ``class_name``; given values override the draws (validated)."""
    if class_name not in CLASSES:
        raise InputError(f"unknown class {class_name!r}; expected one of {', '.join(CLASSES)}")
    if body_cues not in BODY_CUES:
        raise InputError(f"body cues {body_cues!r} unknown; expected one of {', '.join(BODY_CUES)}")
    # Always consume the same draws in the same order, so overriding one value does not shift the others; the
    # draws added for the texture cohort come after the original ones, so the realistic cohort keeps its subjects.
    u = rng.uniform(size=12)
    pos_noise = rng.normal(0.0, 0.2, len(REGIONS))
    x = rng.uniform(size=8)
    layout_noise = rng.normal(size=(N_REGIONS, 3))
    if subtype is None:
        # COL6-RD probably dominates the paper's CMD class (facts §0); LAMA2-like cases are mixed in.
        subtype = {"DMD": "DMD", "normal": "none"}.get(class_name) or ("COL6" if u[0] < 0.75 else "LAMA2")
    if subtype not in SUBTYPES[class_name]:
        raise InputError(f"subtype {subtype!r} does not belong to class {class_name}; "
                         f"expected one of {', '.join(SUBTYPES[class_name])}")
    texture = body_cues == "texture"
    if pattern_family is None:
        fams = PATTERN_FAMILIES[subtype]
        pattern_family = fams[min(int(x[2] * len(fams)), len(fams) - 1)] if texture else REALISTIC_FAMILY[subtype]
    check_family(subtype, pattern_family)
    if age is None:
        age = texture_age(u) if texture else _realistic_age(u, subtype)
    if not 2.0 <= float(age) <= 90.0:
        raise InputError(f"age {age} is outside 2-90 years")
    age = float(age)
    offset = 0.12 * (2 * u[2] - 1)        # subjects progress at different rates
    if severity is None:
        if subtype == "none":
            severity = 0.0
        elif texture:
            # one severity law for every subtype; about 40 % is mild enough to overlap normal in mean FF
            severity = 0.03 + 0.92 * u[3] ** 2.0
        elif subtype == "DMD":
            severity = dmd_severity(age, offset)
        else:
            severity = 0.05 + 0.9 * u[3]
    if not 0.0 <= float(severity) <= 1.0:
        raise InputError(f"severity {severity} is outside 0-1")
    if subtype == "none":
        severity = 0.0
    # calf circumference with age (24-30 cm at 6-12 y, ~36 cm adult) and +-6 % between subjects
    circ = (22.0 + 14.0 * (1.0 - np.exp(-(age - 4.0) / 7.0))) * (1.0 + 0.06 * np.sqrt(3) * (2 * u[4] - 1))
    fat = (4.0 + 6.0 * u[6]) if age < 15 else (4.0 + 10.0 * u[6])
    skin = 1.0 + 0.5 * min(1.0, age / 15.0) + 0.3 * u[7]
    aspect = 0.05 + 0.05 * u[8]
    base_ff = float(np.clip(0.018 + 0.00035 * (age - 5.0) + 0.006 * (u[9] - 0.5), 0.01, 0.05))
    marrow_ff = float(0.55 + 0.37 * (1.0 - np.exp(-(age - 3.0) / 9.0)))
    position = tuple(np.clip(u[10] + pos_noise, 0.0, 1.0).round(4))
    extra = {}
    if texture:
        scale = 0.80 + 0.32 * u[5]                      # from atrophy to pseudohypertrophy, whatever the class
        fat *= 1.0 + 0.4 * x[0]
        marrow_ff = float(np.clip(marrow_ff + 0.08 * (x[1] - 0.5), 0.5, 0.95))
        # healthy muscle FF varies between people (facts §1b: 3 +- 1 % child, 4 +- 1.5 % adult)
        base_ff = float(np.clip(base_ff + 0.03 * (x[6] - 0.5), 0.01, 0.05))
        layout = tuple((round(0.04 * a, 4), round(0.04 * b, 4), round(float(np.exp(0.12 * c)), 4))
                       for a, b, c in layout_noise)
        extra = dict(pattern_scale=round(0.75 + 0.5 * x[3], 4), level_u=round(float(x[4]), 4),
                     egg=round(0.06 + 0.12 * x[5], 4), layout=layout)
    else:
        scale = {"DMD": 1.0 + 0.12 * u[5], "COL6": 0.82 + 0.13 * u[5], "LAMA2": 0.75 + 0.15 * u[5],
                 "none": 1.0}[subtype]
        fat *= {"DMD": 1.3, "LAMA2": 1.4}.get(subtype, 1.0)
    return Subject(class_name, subtype, round(age, 2), round(float(severity), 4), offset, float(circ), float(scale),
                   float(fat), float(skin), float(aspect), base_ff, marrow_ff, position, body_cues, pattern_family,
                   **extra)


def _realistic_age(u, subtype) -> float:
    """Ages by subtype (realistic cohort)."""
    if subtype == "DMD":
        # ImagingDMD-like: mostly ambulatory boys, 8.7 +- 2.0 y (5-13), plus some non-ambulant teenagers
        z = float(np.sqrt(-2 * np.log(max(u[1], 1e-12))) * np.cos(2 * np.pi * u[11]))   # Box-Muller
        return float(np.clip(8.7 + 2.0 * z, 5.0, 13.0)) if u[0] < 0.8 else 12.0 + 6.0 * u[1]
    lo, hi = AGE_RANGE[subtype]
    return lo + u[1] * (hi - lo)


def follow_up(subject: Subject, rng: np.random.Generator) -> Subject:
    """The same subject about a year later: older, and more severe (realistic DMD: by the age trend; otherwise slowly)."""
    dt = rng.uniform(0.8, 1.5)
    age = subject.age + dt
    if subject.subtype == "none":
        sev = 0.0
    elif subject.subtype == "DMD" and subject.body_cues == "realistic":
        sev = dmd_severity(age, subject.severity_offset)
    else:
        sev = min(1.0, subject.severity + 0.04 * dt)
    return replace(subject, age=round(age, 2), severity=round(sev, 4))


def leg_geometry(subject: Subject) -> tuple:
    """(compartment radius at max girth, bone scale, leg length) in mm from the subject's traits."""
    outer_r = subject.circumference_cm * 10.0 / (2 * np.pi)
    comp_r = (outer_r - subject.fat_mm - subject.skin_mm) / (1 + subject.aspect / 2) * subject.muscle_scale
    bone_scale = outer_r * 2 / 116.0
    return comp_r, bone_scale, 390.0 * bone_scale ** 1.3


@dataclass(frozen=True)
class Acquisition:
    grid: GridSpec
    leg: LegSpec
    snr: float
    z_origin_mm: float


def draw_acquisition(rng: np.random.Generator, subject: Subject, n_slices=None, matrix=None, pixel_mm=None):
    """Scanner / session: FOV, matrix, pixel size, slab length and position, leg placement, SNR."""
    u = rng.uniform(size=10)
    nrm = rng.normal(size=5)
    comp_r, bone_scale, leg_len = leg_geometry(subject)
    fat_tib = 1.0 + 2.0 * u[0]
    probe = LegSpec(comp_r, subject.fat_mm, fat_tib, subject.skin_mm, bone_scale, leg_len, subject.aspect,
                    (0.0, 0.0), (0.0, 0.0), 0.0)
    need_mm = 2 * probe.outer_radius_mm * 1.18 + 20.0        # leg + margins for placement and drift
    if n_slices is None:
        n_slices = int(N_SLICES_RANGE[0] + np.floor(u[1] * (N_SLICES_RANGE[1] - N_SLICES_RANGE[0] + 1)))
    n_slices = int(n_slices)
    if not 3 <= n_slices <= 200:
        raise InputError(f"n_slices {n_slices} is outside 3-200")
    if matrix is None and pixel_mm is None:
        fov = max(FOV_RANGE_MM[0], need_mm) + u[2] * max(0.0, FOV_RANGE_MM[1] - max(FOV_RANGE_MM[0], need_mm))
        ok = [m for m in MATRICES if PIXEL_RANGE_MM[0] <= fov / m <= PIXEL_RANGE_MM[1]]
        matrix = ok[int(u[3] * len(ok))]
        pixel_mm = round(fov / matrix, 3)
    elif pixel_mm is None:
        fov = max(FOV_RANGE_MM[0], need_mm) + u[2] * 30.0
        pixel_mm = round(float(np.clip(fov / int(matrix), *PIXEL_RANGE_MM)), 3)
    elif matrix is None:
        fov = max(FOV_RANGE_MM[0], need_mm) + u[2] * 30.0
        matrix = int(np.ceil(fov / float(pixel_mm) / 16.0) * 16)
    matrix, pixel_mm = int(matrix), float(pixel_mm)
    if matrix < 16 or pixel_mm <= 0:
        raise InputError(f"matrix {matrix} / pixel size {pixel_mm} mm are not valid")
    fov = matrix * pixel_mm
    drift = (0.15 * nrm[0], 0.15 * nrm[1])
    probe = replace(probe, drift_mm_per_slice=drift)
    half = leg_half_extent_mm(probe, GridSpec(matrix, pixel_mm, n_slices, SLICE_MM, 0.4)) + 2 * pixel_mm
    if fov / 2 < half:
        raise InputError(f"a {fov:.0f} mm field of view ({matrix} x {pixel_mm} mm) is too small for this leg "
                         f"(diameter {2 * probe.outer_radius_mm:.0f} mm); use a larger matrix or pixel size")
    # slab centred near max girth, kept between the knee and the tendinous distal third
    half_f = (n_slices - 1) / 2.0 * SLICE_MM / leg_len
    centre = 0.33 + 0.12 * u[4]
    centre = float(np.clip(centre, 0.03 + half_f, max(0.03 + half_f, 0.75 - half_f)))
    slack = max(0.0, fov / 2 - half)
    off = tuple(float(np.clip(0.04 * fov * n, -slack, slack)) for n in nrm[2:4])
    leg = LegSpec(comp_r, subject.fat_mm, fat_tib, subject.skin_mm, bone_scale, leg_len, subject.aspect,
                  off, drift, float(6.0 * nrm[4]), subject.egg, subject.layout)
    grid = GridSpec(matrix, pixel_mm, n_slices, SLICE_MM, centre)
    snr = 20.0 + 40.0 * u[5]
    z_origin = -100.0 - 200.0 * u[6]
    return Acquisition(grid, leg, float(snr), round(float(z_origin), 1))
