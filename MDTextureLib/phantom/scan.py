"""One synthetic Dixon scan: subject + acquisition -> anatomy -> disease -> signal, with its ground truth."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..constants import MUSCLES
from .anatomy import build_anatomy, expected_presence
from .disease import infiltration_level, target_ff
from .patterns import place_disease
from .signal import coil_sensitivity, fat_fraction, magnitude_dixon, true_water_fat
from .subject import Acquisition, Subject, draw_acquisition, draw_subject


@dataclass
class Scan:
    """Arrays are (z, y, x) = (slice, row, column); slice 0 is the most distal (z grows superior, LPS)."""
    water: np.ndarray           # float32, scanner units
    fat: np.ndarray             # float32
    ff: np.ndarray              # float32 fraction 0..1, 0 in the background
    labels: np.ndarray          # uint8, TA=1 ... MG=7
    involvement: np.ndarray     # uint8, 1 where pathological fat was placed
    spacing_mm: tuple           # (x, y, z)
    origin_mm: tuple            # LPS
    direction: tuple            # 9-tuple, row-major
    truth: dict
    ff_true: np.ndarray = field(repr=False, default=None)   # float32 noise-free FF of the muscle tissue
    zfrac: np.ndarray = field(repr=False, default=None)     # position along the leg of each slice (0 knee, 1 ankle)


def generate_scan(subject: Subject, acq: Acquisition, rng: np.random.Generator) -> Scan:
    """Build the images of ``subject`` under ``acq``; ``rng`` drives the disease pattern, coil and noise."""
    grid, leg = acq.grid, acq.leg
    anat = build_anatomy(leg, grid)
    targets = target_ff(subject.subtype, subject.severity, np.asarray(subject.position), subject.base_ff,
                        subject.body_cues)
    level = infiltration_level(subject.subtype, subject.body_cues, subject.level_u) if subject.subtype != "none" else None
    ff_m, involved = place_disease(anat.region, anat.fascia, anat.d_boundary_mm, anat.d_interface_mm, anat.zfrac,
                                   targets, subject.pattern_family, subject.base_ff, grid.pixel_mm, level, rng,
                                   subject.pattern_scale)
    w_true, f_true = true_water_fat(anat.muscle_frac, ff_m, anat.tissue, subject.marrow_ff)
    centre_px = ((grid.matrix - 1) / 2.0 + leg.centre_mm[1] / grid.pixel_mm,
                 (grid.matrix - 1) / 2.0 + leg.centre_mm[0] / grid.pixel_mm)
    coil = coil_sensitivity(w_true.shape, grid.pixel_mm, grid.slice_mm, centre_px, leg.outer_radius_mm, rng)
    water, fat, sigma = magnitude_dixon(w_true, f_true, coil, acq.snr, rng)
    ff = fat_fraction(water, fat, sigma)
    labels = anat.labels
    involvement = (involved & (labels > 0)).astype(np.uint8)

    muscles = {}
    flat_labels = labels.ravel()
    counts = np.bincount(flat_labels, minlength=8)
    sum_true = np.bincount(flat_labels, weights=ff_m.ravel(), minlength=8)
    sum_meas = np.bincount(flat_labels, weights=ff.ravel(), minlength=8)
    sum_inv = np.bincount(flat_labels, weights=involvement.ravel(), minlength=8)
    voxel_ml = grid.pixel_mm ** 2 * grid.slice_mm / 1000.0
    present = expected_presence(anat.zfrac)
    for i, name in enumerate(MUSCLES, start=1):
        n = int(counts[i])
        muscles[name] = {
            "voxels": n,
            "volume_ml": round(n * voxel_ml, 3),
            "true_ff_percent": round(100.0 * sum_true[i] / n, 3) if n else None,
            "measured_ff_percent": round(100.0 * sum_meas[i] / n, 3) if n else None,
            "involved_fraction": round(float(sum_inv[i] / n), 4) if n else None,
            "target_ff_percent": round(100.0 * float(targets[i - 1]), 3),
            "slices": [int(k) for k in np.nonzero(present[:, i - 1])[0]],
        }
    lab = flat_labels > 0
    truth = {
        "class": subject.class_name,
        "subtype": subject.subtype,
        "pattern_family": subject.pattern_family,
        "body_cues": subject.body_cues,
        "age": subject.age,
        "severity": subject.severity,
        "base_ff_percent": round(100.0 * subject.base_ff, 3),
        "mean_true_ff_percent": round(100.0 * float(sum_true[1:].sum() / max(lab.sum(), 1)), 3),
        "mean_measured_ff_percent": round(100.0 * float(sum_meas[1:].sum() / max(lab.sum(), 1)), 3),
        "muscles": muscles,
        "acquisition": {
            "matrix": grid.matrix, "pixel_mm": grid.pixel_mm, "n_slices": grid.n_slices,
            "slice_mm": grid.slice_mm, "fov_mm": round(grid.matrix * grid.pixel_mm, 2), "snr": round(acq.snr, 2),
            "noise_sd": round(float(sigma), 4),
        },
        "leg": {
            "circumference_cm": round(subject.circumference_cm, 2),
            "compartment_radius_mm": round(leg.compartment_radius_mm, 2),
            "subcutaneous_fat_mm": round(leg.fat_mm, 2), "leg_length_mm": round(leg.leg_length_mm, 1),
            "rotation_deg": round(leg.rotation_deg, 2), "centre_mm": [round(c, 2) for c in leg.centre_mm],
            "zfrac_first_last_slice": [round(float(anat.zfrac[0]), 4), round(float(anat.zfrac[-1]), 4)],
        },
    }
    spacing = (grid.pixel_mm, grid.pixel_mm, grid.slice_mm)
    half = (grid.matrix - 1) / 2.0 * grid.pixel_mm
    origin = (-half, -half, acq.z_origin_mm)
    direction = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    return Scan(water, fat, ff, labels, involvement, spacing, origin, direction, truth, ff_m, anat.zfrac)


#: ``make_scan``'s cohort when none is named: the realistic one, which the shipped models were trained on, so the
#: demo, the Slicer self-test and the tests that classify a single phantom scan keep meeting their training data.
#: Cohorts (``write_cohort``, ``mdtexture phantom``) default to ``texture``. Switch this when the shipped models are
#: retrained on the texture cohort.
SCAN_BODY_CUES = "realistic"


def make_scan(class_name: str, seed: int = 0, n_slices=None, matrix=None, pixel_mm=None, age=None, severity=None,
              subtype=None, body_cues: str = SCAN_BODY_CUES, pattern_family=None) -> Scan:
    """One scan of a new subject of ``class_name``. Every argument left as None is drawn from ``seed``;
    ``body_cues``: ``texture`` or ``realistic`` (:mod:`.subject`)."""
    subject = draw_subject(np.random.default_rng([int(seed), 0]), class_name, age, severity, subtype, body_cues,
                           pattern_family)
    acq = draw_acquisition(np.random.default_rng([int(seed), 1]), subject, n_slices, matrix, pixel_mm)
    return generate_scan(subject, acq, np.random.default_rng([int(seed), 2]))
