"""Writing a whole synthetic cohort: subjects, 1-2 scans each, cohort.csv, written atomically.

Seeds: subject i of a cohort with seed S is drawn from ``[S, i, 0]`` and its scan j from ``[S, i, j]``, so a
subject does not change when the cohort grows, and scans can be built in parallel processes in any order.
"""
from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..constants import CLASSES
from ..errors import InputError
from .io import write_scan
from .scan import generate_scan
from .subject import draw_acquisition, draw_subject, follow_up

CSV_COLUMNS = ("subject", "scan", "class", "subtype", "pattern_family", "body_cues", "age", "severity", "n_slices",
               "matrix", "pixel_mm", "fov_mm", "snr", "folder")
#: Share of subjects with a second (follow-up) scan when it is drawn: the paper had 68 scans of 42 subjects.
P_SECOND_SCAN = 0.6


def plan_cohort(subjects: int, seed: int, scans_per_subject=None, classes=CLASSES) -> list:
    """(subject id, class, number of scans, subject index) per subject; classes balanced and shuffled by seed."""
    if subjects < 1:
        raise InputError(f"--subjects must be at least 1, got {subjects}")
    classes = tuple(classes)
    bad = [c for c in classes if c not in CLASSES]
    if bad or not classes:
        raise InputError(f"unknown class(es) {', '.join(bad) or '(none)'}; expected some of {', '.join(CLASSES)}")
    if scans_per_subject is not None and not 1 <= int(scans_per_subject) <= 10:
        raise InputError(f"--scans-per-subject must be 1-10, got {scans_per_subject}")
    order = np.random.default_rng([int(seed), 1_000_003]).permutation(np.arange(subjects) % len(classes))
    plan = []
    for i in range(subjects):
        rng = np.random.default_rng([int(seed), i + 1, 0])
        k = int(scans_per_subject) if scans_per_subject is not None else 1 + int(rng.uniform() < P_SECOND_SCAN)
        plan.append((f"S{i + 1:03d}", classes[int(order[i])], k, i + 1))
    return plan


def _build_subject(job) -> list:
    """Generate and write every scan of one subject; returns its cohort.csv rows (runs in a worker process)."""
    sid, cls, n_scans, index, seed, root, overrides, body_cues = job
    subject = draw_subject(np.random.default_rng([seed, index, 0]), cls, body_cues=body_cues)
    rows = []
    for j in range(1, n_scans + 1):
        if j > 1:
            subject = follow_up(subject, np.random.default_rng([seed, index, 100 + j]))
        acq = draw_acquisition(np.random.default_rng([seed, index, j]), subject, **overrides)
        scan = generate_scan(subject, acq, np.random.default_rng([seed, index, 200 + j]))
        folder = f"{sid}_{j}"
        write_scan(scan, Path(root) / folder)
        g = acq.grid
        rows.append({"subject": sid, "scan": j, "class": cls, "subtype": subject.subtype,
                     "pattern_family": subject.pattern_family, "body_cues": subject.body_cues, "age": subject.age,
                     "severity": subject.severity, "n_slices": g.n_slices, "matrix": g.matrix,
                     "pixel_mm": g.pixel_mm, "fov_mm": round(g.matrix * g.pixel_mm, 2), "snr": round(acq.snr, 2),
                     "folder": folder})
    return rows


def write_cohort(out_dir, subjects: int, seed: int, scans_per_subject=None, classes=CLASSES, n_slices=None,
                 matrix=None, pixel_mm=None, workers=None, progress=True, overwrite=False,
                 body_cues: str = "texture") -> list:
    """Generate a cohort into ``out_dir`` atomically and return its records (``MDTextureLib.cohort.read_cohort``).

    ``body_cues``: ``texture`` (body traits and fat level from one distribution for every class) or ``realistic``
    (the literature's class-linked traits); see :mod:`.subject` and :mod:`.disease`.

    The cohort is written into a hidden sibling folder and renamed into place only when complete, so a failure
    leaves nothing half-written. An existing non-empty ``out_dir`` is an error unless it is an earlier MDTexture
    output and ``overwrite`` is given (:mod:`MDTextureLib.outputs`).
    """
    from ..cohort import read_cohort
    from ..outputs import atomic_dir, check_output_folder

    out = Path(out_dir).absolute()
    check_output_folder(out, overwrite=overwrite)  # before the work: an earlier cohort with --overwrite, or nothing
    plan = plan_cohort(subjects, seed, scans_per_subject, classes)
    overrides = {"n_slices": n_slices, "matrix": matrix, "pixel_mm": pixel_mm}
    # fail early (in this process, with a clear message) if the fixed grid cannot hold the subjects' legs
    for sid, cls, _, index in plan[: min(len(plan), 3)]:
        draw_acquisition(np.random.default_rng([seed, index, 1]),
                         draw_subject(np.random.default_rng([seed, index, 0]), cls, body_cues=body_cues), **overrides)
    with atomic_dir(out, "phantom", overwrite=overwrite) as tmp:
        jobs = [(sid, cls, k, idx, int(seed), str(tmp), overrides, body_cues) for sid, cls, k, idx in plan]
        rows = _run(jobs, workers, progress)
        with open(tmp / "cohort.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        params = {"generator": "MDTexture phantom", "seed": int(seed), "subjects": int(subjects),
                  "scans_per_subject": scans_per_subject, "classes": list(classes), "scans": len(rows),
                  "body_cues": body_cues, **overrides}
        (tmp / "cohort.json").write_text(json.dumps(params, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return read_cohort(out)


def _run(jobs, workers, progress) -> list:
    """Build subjects, in parallel processes when there is more than one core and more than one subject."""
    from tqdm import tqdm

    if workers is None:
        workers = min(len(jobs), os.cpu_count() or 1)
    bar = tqdm(total=len(jobs), desc="phantom subjects", unit="subj", disable=not progress, leave=False)
    results = []
    try:
        if workers <= 1:
            for job in jobs:
                results.append(_build_subject(job))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for res in pool.map(_build_subject, jobs):
                    results.append(res)
                    bar.update()
    finally:
        bar.close()
    return [row for rows in results for row in rows]
