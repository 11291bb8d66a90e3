"""Stand-in for :mod:`MDTextureLib.calibration` on a build that lacks it (same names, same meaning): temperature
scaling of scan probabilities and the expected calibration error. Delete once that module is merged; the calibration
experiment imports the project's module first.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

T_MIN, T_MAX = 0.05, 20.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def group_probabilities(logits: np.ndarray, groups: np.ndarray | None, temperature: float = 1.0) -> np.ndarray:
    """Per group (scan), the mean of its slices' ``softmax(logits / T)``, groups in sorted order of their ids."""
    p = softmax(logits, temperature)
    if groups is None:
        return p
    ids, inverse = np.unique(np.asarray(groups), return_inverse=True)
    sums = np.zeros((len(ids), p.shape[1]))
    np.add.at(sums, inverse, p)
    return sums / np.bincount(inverse, minlength=len(ids))[:, None]


def fit_temperature(logits: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None) -> float:
    """T in [T_MIN, T_MAX] minimising the NLL of the group probabilities' true classes (labels per slice)."""
    labels = np.asarray(labels)
    if groups is None:
        targets = labels
    else:
        _, first = np.unique(np.asarray(groups), return_index=True)
        targets = labels[first]

    def nll(beta: float) -> float:
        p = group_probabilities(logits, groups, 1.0 / beta)[np.arange(len(targets)), targets]
        return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))

    res = minimize_scalar(nll, bounds=(1.0 / T_MAX, 1.0 / T_MIN), method="bounded", options={"xatol": 1e-6})
    return float(1.0 / res.x)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """Σ_b (n_b / N) |accuracy_b − mean confidence_b| over equal-width bins [i/n, (i+1)/n) (the last includes 1)."""
    p = np.asarray(probabilities, dtype=np.float64)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    return float(sum((bins == b).mean() * abs(correct[bins == b].mean() - confidence[bins == b].mean())
                     for b in range(n_bins) if (bins == b).any()))
