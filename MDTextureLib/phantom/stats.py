"""Cohort statistics: the per-class distribution of mean fat fraction, how well it alone classifies, and the
confound audit of :mod:`.confounds` (DMD vs CMD from body traits alone and from first-order FF statistics alone).

The paper's mean-fat-fraction baseline ("MFF (kNN)", Table 1: 48.6 % mean over 4 folds, 3 classes) is re-run here
on the phantom: a k-nearest-neighbour classifier on one number per scan, with subject-level 4-fold cross-validation
(:func:`MDTextureLib.cohort.subject_folds`). A low accuracy means the classes overlap in *amount* of fat, which is
what the phantom is built to reproduce.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..constants import CLASSES, MUSCLE_LABELS
from ..errors import InputError


def read_scan_arrays(record) -> dict:
    """FF, muscle labels, water + fat (when present) and the pixel size of one scan, from its files."""
    if record.muscles is None:
        raise InputError(f"scan folder {record.folder.name} has no muscles.nrrd; cohort statistics need muscle labels")
    img = sitk.ReadImage(str(record.ff))
    out = {"ff": sitk.GetArrayFromImage(img), "labels": sitk.GetArrayFromImage(sitk.ReadImage(str(record.muscles))),
           "pixel_mm": float(np.sqrt(img.GetSpacing()[0] * img.GetSpacing()[1])), "signal": None}
    if record.water is not None and record.fat is not None:
        out["signal"] = (sitk.GetArrayFromImage(sitk.ReadImage(str(record.water)))
                         + sitk.GetArrayFromImage(sitk.ReadImage(str(record.fat))))
    return out


def scan_mean_ff(record, arrays=None) -> dict:
    """Measured mean FF (percent) over all labelled muscles, and over the soleus, from the scan's files."""
    a = arrays or read_scan_arrays(record)
    ff, lab = a["ff"], a["labels"]
    allm = lab > 0
    sol = lab == MUSCLE_LABELS["Sol"]
    return {"all": 100.0 * float(ff[allm].mean()) if allm.any() else float("nan"),
            "Sol": 100.0 * float(ff[sol].mean()) if sol.any() else float("nan")}


def describe(values) -> dict:
    v = np.asarray(values, dtype=float)
    q = np.percentile(v, [0, 25, 50, 75, 100])
    return {"n": int(v.size), "mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(q[0]), "q25": float(q[1]), "median": float(q[2]), "q75": float(q[3]), "max": float(q[4])}


def knn_cv(records, feature, n_folds=4, seed=0, k=5, classes=CLASSES) -> dict:
    """Accuracy of a kNN on ``feature`` (one value per record) with subject-level folds, restricted to ``classes``."""
    from sklearn.neighbors import KNeighborsClassifier

    from .confounds import subject_cv

    x = np.asarray(feature, dtype=float)[:, None]
    result = subject_cv(records, x, classes, n_folds, seed, lambda n_train: KNeighborsClassifier(min(k, n_train)))
    return {**result, "k": k}


def auc(a, b) -> float:
    """Probability that a random value of ``a`` exceeds one of ``b`` (0.5 = complete overlap)."""
    a, b = np.asarray(a, float)[:, None], np.asarray(b, float)[None, :]
    return float((a > b).mean() + 0.5 * (a == b).mean())


def cohort_stats(records, n_folds=4, seed=0, k=5, progress=False) -> dict:
    """Everything cohort-stats reports, as a JSON-ready dict."""
    from tqdm import tqdm
    from .confounds import body_traits, confound_report, first_order_stats

    ffs, body, first = [], [], []
    for r in tqdm(records, desc="reading scans", disable=not progress, leave=False):
        a = read_scan_arrays(r)
        ffs.append(scan_mean_ff(r, a))
        first.append(first_order_stats(a["ff"], a["labels"]))
        # the cortex is found in water + fat; without them (FF-only cohorts) the body-trait audit is left out
        body.append(None if a["signal"] is None else body_traits(a["ff"], a["labels"], a["signal"], a["pixel_mm"]))
    mff = np.array([f["all"] for f in ffs])
    sol = np.array([f["Sol"] for f in ffs])
    by = {c: [i for i, r in enumerate(records) if r.class_name == c] for c in CLASSES}
    present = [c for c in CLASSES if by[c]]
    cues = sorted({r.extra.get("body_cues", "") or "unknown" for r in records})
    out = {
        "scans": len(records), "subjects": len({r.subject for r in records}), "body_cues": ",".join(cues),
        "scans_per_class": {c: len(by[c]) for c in CLASSES},
        "subjects_per_class": {c: len({records[i].subject for i in by[c]}) for c in CLASSES},
        "pattern_families": {f: sum(r.pattern_family == f for r in records)
                             for f in sorted({r.pattern_family for r in records if r.pattern_family})},
        "mean_ff_percent_by_class": {c: describe(mff[by[c]]) for c in present},
        "soleus_ff_percent_by_class": {c: describe(sol[by[c]]) for c in present},
    }
    if by["DMD"] and by["CMD"]:
        out["dmd_vs_cmd_auc_of_mean_ff"] = auc(mff[by["DMD"]], mff[by["CMD"]])
    out["mff_knn"] = knn_cv(records, mff, n_folds, seed, k, tuple(present))
    out["soleus_mff_knn"] = knn_cv(records, sol, n_folds, seed, k, tuple(present))
    if by["DMD"] and by["CMD"]:
        out["mff_knn_dmd_vs_cmd"] = knn_cv(records, mff, n_folds, seed, k, ("DMD", "CMD"))
        out["confounds"] = confound_report(records, None if None in body else body, first, n_folds, seed, k)
        out["confounds"]["targets_texture_cohort"] = {"body_traits": 0.60, "first_order": 0.65, "mff_knn": 0.60}
    out["per_scan"] = [{"subject": r.subject, "scan": r.scan, "class": r.class_name, "subtype": r.subtype,
                        "pattern_family": r.pattern_family, "mean_ff_percent": round(float(a), 3),
                        "soleus_ff_percent": round(float(s), 3), **{n: round(v, 4) for n, v in {**(b or {}), **f}.items()}}
                       for r, a, s, b, f in zip(records, mff, sol, body, first)]
    out["paper_mff_knn_accuracy_percent"] = 48.6
    return out


def histogram_lines(stats: dict, per_scan: list, width: int = 40) -> list:
    """Text histogram of mean FF per class (5 % bins) so the DMD/CMD overlap is visible in a terminal."""
    edges = np.arange(0, 105, 5)
    lines = []
    for c in stats:
        v = np.array([p["mean_ff_percent"] for p in per_scan if p["class"] == c])
        h, _ = np.histogram(v, edges)
        lines.append(f"{c}:")
        for lo, n in zip(edges[:-1], h):
            if n:
                lines.append(f"  {lo:3d}-{lo + 5:3d} % | {'#' * min(n, width)} {n}")
    return lines


def format_report(s: dict) -> str:
    """Markdown report (also printed by the command)."""
    L = ["# Phantom cohort statistics", "",
         f"{s['scans']} scans of {s['subjects']} subjects (body cues: {s.get('body_cues', 'unknown')}); "
         "scans per class " + ", ".join(f"{c} {n}" for c, n in s["scans_per_class"].items()), "",
         "## Whole-muscle mean FF (measured, all 7 muscles), percent", "",
         "| class | n | mean | sd | min | q25 | median | q75 | max |", "|---|---|---|---|---|---|---|---|---|"]
    for c, d in s["mean_ff_percent_by_class"].items():
        L.append(f"| {c} | {d['n']} | {d['mean']:.1f} | {d['sd']:.1f} | {d['min']:.1f} | {d['q25']:.1f} | "
                 f"{d['median']:.1f} | {d['q75']:.1f} | {d['max']:.1f} |")
    if s.get("pattern_families"):
        L += ["Pattern families: " + ", ".join(f"{f} {n}" for f, n in s["pattern_families"].items()), ""]
    L += ["", "```"] + histogram_lines(s["mean_ff_percent_by_class"], s["per_scan"]) + ["```", ""]
    if "dmd_vs_cmd_auc_of_mean_ff" in s:
        L.append(f"DMD vs CMD separability of mean FF (AUC, 0.5 = full overlap): "
                 f"{s['dmd_vs_cmd_auc_of_mean_ff']:.2f}")
        L.append("")
    L += ["## Mean-fat-fraction kNN, subject-level 4-fold cross-validation", "",
          "| feature | classes | k | accuracy mean over folds | min fold | max fold |", "|---|---|---|---|---|---|"]
    for key, name in (("mff_knn", "mean FF, 7 muscles"), ("soleus_mff_knn", "mean FF, soleus"),
                      ("mff_knn_dmd_vs_cmd", "mean FF, 7 muscles")):
        if key in s:
            d = s[key]
            L.append(f"| {name} | {'/'.join(d['classes'])} | {d['k']} | {100 * d['accuracy_mean_over_folds']:.1f} % | "
                     f"{100 * d['accuracy_min_fold']:.1f} % | {100 * d['accuracy_max_fold']:.1f} % |")
    L += ["", f"Paper (Cai et al. 2019, Table 1, MFF (kNN), 3 classes): {s['paper_mff_knn_accuracy_percent']} %.", ""]
    if "confounds" in s:
        L += confound_lines(s["confounds"])
    return "\n".join(L)


def confound_lines(c: dict) -> list:
    """The confound audit as a markdown table: what classifies DMD vs CMD besides the pattern."""
    L = ["## Confound audit: DMD vs CMD without the pattern, subject-level 4-fold cross-validation", "",
         "Measured from the images and labels (not from truth). A cohort that isolates texture keeps these near "
         "chance (50 %); targets for the texture cohort: body traits <= 60 %, first-order statistics <= 65 %, "
         "MFF-kNN 3 classes <= 60 %.", "",
         "| features | classifier | accuracy mean over folds | min fold | max fold |", "|---|---|---|---|---|"]
    for key, name in (("body_traits", "body traits (" + ", ".join(c["body_traits"]["features"]) + ")"),
                      ("first_order", "first-order FF (" + ", ".join(c["first_order"]["features"]) + ")")):
        if "skipped" in c[key]:
            L.append(f"| {name} | skipped: {c[key]['skipped']} | | | |")
            continue
        for method, d in c[key]["dmd_vs_cmd"].items():
            L.append(f"| {name} | {method} | {100 * d['accuracy_mean_over_folds']:.1f} % | "
                     f"{100 * d['accuracy_min_fold']:.1f} % | {100 * d['accuracy_max_fold']:.1f} % |")
    return L + [""]
