"""Calibrated probabilities and the "unfamiliar input" score: pure numpy, no torch.

**Temperature scaling** (Guo et al. 2017). One number T > 0 divides every logit before the softmax; it changes no
verdict (the arg max is unchanged) but how sure the probabilities are. T is fitted on scans the network was not
trained on (a calibration split of the training subjects) by minimising the negative log-likelihood of their true
classes. A scan's (leg's) probability is the mean of its slices' probabilities, as at inference, so
:func:`fit_temperature` takes slice logits with the scan each slice belongs to and fits the NLL of the scan
probabilities ``mean_k softmax(z_k / T)``; without groups it is the textbook slice-level fit. The NLL is minimised
over β = 1/T in [1/T_MAX, 1/T_MIN] by golden-section search (for ungrouped logits the NLL is convex in β, so the
minimum found is the global one).

**Expected calibration error** (Naeini et al. 2015, Guo et al. 2017): confidences (the largest probability) are put
into ``n_bins`` equal-width bins [i/n, (i+1)/n) (the last bin includes 1); ECE = Σ_b (n_b / N) |accuracy_b −
mean confidence_b|. 0 for perfectly calibrated predictions (up to sampling noise), larger when the network is over-
or under-confident.

**Unfamiliar input score** (after Lee et al. 2018). Each scan (leg) is summarised by its pooled feature vector: the
mean over its slices of the vector the network's linear layer sees (global average pools of the map stages). On the
training scans we fit one Gaussian per class with a shared covariance: class means, and the within-class covariance
of the features, each dimension first scaled by its within-class standard deviation (with a variance floor of
``VARIANCE_FLOOR`` × the mean variance, so a channel that never fired in training counts but cannot blow up), then
shrunk towards the identity with the Ledoit–Wolf formula (there are fewer scans than dimensions). A scan's score is
its Mahalanobis distance to the nearest class mean. The threshold is a high percentile (default the 99th) of the
scores of the calibration split's scans — scans the network did not train on, so their distances are not
flattered by over-fitting; a score above it says the input is less like the training data than 99 % of unseen
in-distribution scans.
"""

from __future__ import annotations

import math

import numpy as np

#: Bounds of the fitted temperature.
T_MIN, T_MAX = 0.05, 20.0
#: Default number of equal-width confidence bins of the ECE.
ECE_BINS = 10
#: Default percentile of the calibration scans' scores used as the unfamiliar threshold.
UNFAMILIAR_PERCENTILE = 99.0
#: Variance floor of a feature dimension, as a share of the mean variance over dimensions.
VARIANCE_FLOOR = 1e-2

UNFAMILIAR_METHOD = ("Mahalanobis distance of the leg's pooled feature vector (mean of its slices' GAP vectors) to "
                     "the nearest class mean; class-conditional Gaussians with a shared Ledoit-Wolf-shrunk "
                     "covariance on per-dimension standardised features, fitted on the training scans")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def group_probabilities(logits: np.ndarray, groups: np.ndarray | None, temperature: float = 1.0
                        ) -> np.ndarray:
    """Per group (scan), the mean of its slices' ``softmax(logits / T)``; groups in sorted order of their ids.
    Without groups, every row is its own group."""
    p = softmax(logits, temperature)
    if groups is None:
        return p
    ids, inverse = np.unique(np.asarray(groups), return_inverse=True)
    sums = np.zeros((len(ids), p.shape[1]))
    np.add.at(sums, inverse, p)
    return sums / np.bincount(inverse, minlength=len(ids))[:, None]


def group_labels(labels: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """The label of each group (its slices must agree), in the order of :func:`group_probabilities`."""
    labels = np.asarray(labels)
    if groups is None:
        return labels
    ids, first, inverse = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
    out = labels[first]
    if np.any(out[inverse] != labels):
        raise ValueError("slices of one group carry different labels")
    return out


def nll(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    p = np.asarray(probabilities)[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None,
                    tol: float = 1e-6) -> float:
    """T in [T_MIN, T_MAX] minimising the NLL of ``group_probabilities(logits, groups, T)`` (module docstring).

    ``logits`` (N, C); ``labels`` (N,) class indices (per slice; equal within a group); ``groups`` (N,) scan ids.
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    targets = group_labels(labels, groups)

    def loss(beta: float) -> float:
        return nll(group_probabilities(logits, groups, 1.0 / beta), targets)

    lo, hi = 1.0 / T_MAX, 1.0 / T_MIN
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo + (1 - ratio) * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    while hi - lo > tol * max(1.0, lo):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - ratio) * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    candidates = [(loss(lo), lo), (fa, a), (fb, b), (loss(hi), hi)]
    return float(1.0 / min(candidates)[1])


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE over ``n_bins`` equal-width confidence bins (module docstring). ``probabilities`` (N, C)."""
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if len(p) == 0:
        raise ValueError("no predictions")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(np.float64)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        inside = bins == b
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def calibration_summary(logits: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, temperature: float,
                        n_bins: int = ECE_BINS) -> dict:
    """NLL and ECE of the group probabilities before (T = 1) and after temperature scaling."""
    targets = group_labels(labels, groups)
    before, after = group_probabilities(logits, groups, 1.0), group_probabilities(logits, groups, temperature)
    return {"temperature": round(float(temperature), 6),
            "nll_before": round(nll(before, targets), 6), "nll_after": round(nll(after, targets), 6),
            "ece_before": round(expected_calibration_error(before, targets, n_bins), 6),
            "ece_after": round(expected_calibration_error(after, targets, n_bins), 6),
            "ece_bins": n_bins, "n_scans": int(len(targets))}


# --- unfamiliar inputs ---------------------------------------------------------------------------------------------

def ledoit_wolf(centred: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit–Wolf (2004) shrinkage of the covariance of rows ``centred`` (n, p) towards μ·I; (covariance, δ)."""
    x = np.asarray(centred, dtype=np.float64)
    n, p = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / p
    if mu <= 0:  # every row zero: nothing to estimate
        return np.eye(p), 1.0
    d2 = float(np.sum((s - mu * np.eye(p)) ** 2))
    # b̄² = (1/n²) Σ_k ||x_k x_kᵀ − S||²_F with ||x xᵀ − S||² = ||x||⁴ − 2 xᵀSx + ||S||²
    sq = np.sum(x * x, axis=1)
    b2 = float(np.sum(sq ** 2 - 2 * np.einsum("ki,ij,kj->k", x, s, x) + np.sum(s * s))) / n ** 2
    shrinkage = 1.0 if d2 == 0 else min(max(b2, 0.0), d2) / d2
    return shrinkage * mu * np.eye(p) + (1 - shrinkage) * s, float(shrinkage)


def fit_unfamiliar(features: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    """Class means (C, D), the shared precision matrix (D, D) in feature units, which classes were seen, and the
    shrinkage, from training scans' pooled features (N, D) and labels (N,). See the module docstring."""
    x = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    present = np.array([np.any(labels == c) for c in range(n_classes)])
    if x.ndim != 2 or len(x) < 2:
        raise ValueError("need at least two feature vectors")
    means = np.zeros((n_classes, x.shape[1]))
    for c in np.flatnonzero(present):
        means[c] = x[labels == c].mean(axis=0)
    centred = x - means[labels]
    var = centred.var(axis=0)
    # no spread within any class (one scan per class): unit scales and, below, the identity — a Euclidean distance
    scale = np.sqrt(var + VARIANCE_FLOOR * var.mean()) if var.mean() > 0 else np.ones_like(var)
    cov, shrinkage = ledoit_wolf(centred / scale)
    precision = np.linalg.inv(cov) / np.outer(scale, scale)
    return {"means": means.astype(np.float32), "precision": ((precision + precision.T) / 2).astype(np.float32),
            "present": present, "shrinkage": shrinkage}


def unfamiliar_scores(features: np.ndarray, stats: dict) -> np.ndarray:
    """Mahalanobis distance of each row of ``features`` (N, D) to the nearest seen class mean."""
    x = np.atleast_2d(np.asarray(features, dtype=np.float64))
    means = np.asarray(stats["means"], dtype=np.float64)[np.asarray(stats["present"], dtype=bool)]
    precision = np.asarray(stats["precision"], dtype=np.float64)
    diff = x[:, None, :] - means[None]  # (N, C, D)
    d2 = np.einsum("ncd,de,nce->nc", diff, precision, diff)
    return np.sqrt(np.clip(d2, 0.0, None)).min(axis=1)


def unfamiliar_threshold(calibration_scores: np.ndarray, percentile: float = UNFAMILIAR_PERCENTILE) -> float:
    """The ``percentile``-th percentile (linear interpolation) of the calibration scans' scores."""
    scores = np.asarray(calibration_scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("no calibration scores")
    return float(np.percentile(scores, percentile))
