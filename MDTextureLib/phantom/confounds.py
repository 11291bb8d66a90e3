"""What besides the disease pattern could classify a cohort: body traits and first-order FF statistics.

Both are *measured from the images and labels* (never read from truth.json), so the same code audits any cohort:

- body traits: leg cross-section area, muscle / bone area ratio, subcutaneous fat thickness and marrow FF;
- first-order FF statistics inside the labelled muscles: mean, SD, skewness and excess kurtosis.

Each set feeds a simple classifier on standardised features (logistic regression and kNN) with subject-level folds
(:func:`MDTextureLib.cohort.subject_folds`). On a cohort that isolates texture both should sit near chance for
DMD vs CMD; on the realistic cohort they do not (the confound the texture cohort removes).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

from ..cohort import subject_folds
from ..errors import InputError

BODY_FEATURES = ("leg_area_cm2", "muscle_bone_ratio", "subcutaneous_fat_mm", "marrow_ff")
FIRST_ORDER_FEATURES = ("ff_mean", "ff_sd", "ff_skewness", "ff_kurtosis")
#: Bone pieces smaller than this (mm^2) are neurovascular fat or fascia, not tibia / fibula.
MIN_BONE_MM2 = 40.0
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def body_traits(ff: np.ndarray, labels: np.ndarray, signal: np.ndarray, pixel_mm: float) -> dict:
    """Body traits of one scan (arrays (z, y, x); FF a fraction, 0 in the background; ``signal`` = water + fat
    magnitude), averaged over the slices that hold labelled muscle.

    The leg is the filled non-zero FF; the muscle compartment is the convex hull of the labelled muscles; bone is
    found by its cortex, which gives almost no signal: dark voxels well inside the leg, closed and filled, in
    pieces of at least MIN_BONE_MM2, are tibia and fibula with their marrow.
    """
    from skimage.morphology import convex_hull_image

    px2 = float(pixel_mm) ** 2
    area, ratio, fat_mm, marrow = [], [], [], []
    for k in np.nonzero((labels > 0).any(axis=(1, 2)))[0]:
        lab = labels[k] > 0
        body = ndimage.binary_fill_holes(ff[k] > 0)
        hull = convex_hull_image(lab) & body
        deep = ndimage.binary_erosion(body, structure=_CROSS, iterations=3)
        dark = deep & (signal[k] < 0.35 * float(np.median(signal[k][lab])))
        rings = ndimage.binary_closing(dark, structure=np.ones((3, 3), bool))
        pieces, n = ndimage.label(ndimage.binary_fill_holes(rings), structure=_CROSS)
        sizes = np.bincount(pieces.ravel(), minlength=n + 1) * px2
        sizes[0] = 0
        bone = np.isin(pieces, np.nonzero(sizes >= MIN_BONE_MM2)[0])
        area.append(body.sum() * px2 / 100.0)
        ratio.append(lab.sum() / max(bone.sum(), 1))
        fat_mm.append((np.sqrt(body.sum() * px2 / np.pi) - np.sqrt(hull.sum() * px2 / np.pi)))
        vals = ff[k][bone]
        vals = vals[vals > 0.2]            # the cortex reads ~0 (no signal); the marrow is the fatty inside
        marrow.append(float(np.median(vals)) if vals.size else np.nan)
    if not area:
        raise InputError("no labelled muscle in the scan: body traits need muscle labels")
    return {"leg_area_cm2": float(np.mean(area)), "muscle_bone_ratio": float(np.median(ratio)),
            "subcutaneous_fat_mm": float(np.mean(fat_mm)), "marrow_ff": float(np.nanmedian(marrow))}


def first_order_stats(ff: np.ndarray, labels: np.ndarray) -> dict:
    """Mean, SD, skewness and excess kurtosis of FF over all labelled muscle voxels."""
    v = ff[labels > 0].astype(float)
    if v.size < 4:
        raise InputError("fewer than 4 labelled muscle voxels: first-order statistics need muscle labels")
    return {"ff_mean": float(v.mean()), "ff_sd": float(v.std()), "ff_skewness": float(stats.skew(v)),
            "ff_kurtosis": float(stats.kurtosis(v))}


def subject_cv(records, x, classes, n_folds, seed, make_classifier) -> dict:
    """Accuracy of ``make_classifier()`` (a fresh scikit-learn estimator per fold) on ``x`` (one row per record)
    with subject-level folds, restricted to ``classes``: mean, min and max over folds, and pooled."""
    keep = [i for i, r in enumerate(records) if r.class_name in classes]
    recs = [records[i] for i in keep]
    x = np.asarray(x, dtype=float)[keep]
    y = np.array([classes.index(r.class_name) for r in recs])
    fold_acc, correct = [], np.zeros(len(recs), dtype=bool)
    for train, test in subject_folds(recs, n_folds=n_folds, seed=seed):
        hit = make_classifier(len(train)).fit(x[train], y[train]).predict(x[test]) == y[test]
        correct[test] = hit
        fold_acc.append(float(hit.mean()))
    return {"classes": list(classes), "n_folds": n_folds, "scans": len(recs),
            "accuracy_mean_over_folds": float(np.mean(fold_acc)), "accuracy_min_fold": float(np.min(fold_acc)),
            "accuracy_max_fold": float(np.max(fold_acc)), "accuracy_pooled": float(correct.mean()),
            "fold_accuracies": fold_acc}


def cv_accuracy(records, features, classes=("DMD", "CMD"), n_folds=4, seed=0, method="logistic", k=5) -> dict:
    """Accuracy of a classifier on ``features`` (n_records x n_features) with subject-level folds, restricted to
    ``classes``. Features are standardised on each training fold; ``method`` is ``logistic`` or ``knn``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if method not in ("logistic", "knn"):
        raise InputError(f"unknown classifier {method!r}; expected logistic or knn")
    x = np.asarray(features, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    kept = np.array([r.class_name in classes for r in records])
    x = np.where(np.isfinite(x), x, np.nanmedian(x[kept], axis=0))  # a scan without marrow: the cohort's median

    def make(n_train):
        last = LogisticRegression(max_iter=1000) if method == "logistic" else \
            KNeighborsClassifier(n_neighbors=min(k, n_train))
        return make_pipeline(StandardScaler(), last)

    result = subject_cv(records, x, classes, n_folds, seed, make)
    return {**result, "method": method, "features": int(x.shape[1])}


def confound_report(records, body, first, n_folds=4, seed=0, k=5) -> dict:
    """DMD-vs-CMD accuracies from body traits alone and from first-order statistics alone (both classifiers).
    ``body`` None (no water / fat images): the body-trait audit is left out and says so."""
    out = {}
    for name, table, cols in (("body_traits", body, BODY_FEATURES), ("first_order", first, FIRST_ORDER_FEATURES)):
        if table is None:
            out[name] = {"features": list(cols), "skipped": "no water.nrrd / fat.nrrd: the bone cortex cannot be found"}
            continue
        x = np.array([[row[c] for c in cols] for row in table])
        out[name] = {"features": list(cols),
                     "dmd_vs_cmd": {m: cv_accuracy(records, x, ("DMD", "CMD"), n_folds, seed, m, k)
                                    for m in ("logistic", "knn")}}
    return out
