"""Histogram distances of Cai et al. §4.2 and the GAP-neuron analysis behind Figure 3.

Each "neuron" (one entry of the GAP layer) is a one-number weak classifier. Its outputs over the DMD images and
over the CMD images are binned into two normalised ``n``-bin histograms (n = 20 in the paper) on a common range,
and compared with

    ℓ²(h_d, h_c) = sqrt( Σ_i (h_d(i) − h_c(i))² )                                   (Eq. 3)
    χ²(h_d, h_c) = ½ Σ_i (h_d(i) − h_c(i))² / (h_d(i) + h_c(i))    (0/0 terms are 0)  (Eq. 4)

A larger distance means the neuron tells DMD from CMD better. The same is done for the soleus mean fat fraction
(MFF); the paper counts 91 (ℓ²) and 118 (χ²) of 512 neurons that beat MFF.

For normalised histograms: identical → both 0; disjoint supports → χ² = 1 exactly and
ℓ² = sqrt(Σ h_d² + Σ h_c²) (√2 when each histogram is a single bin).
"""

from __future__ import annotations

import numpy as np

N_BINS = 20


def normalised_histograms(groups: list, bins: int = N_BINS, value_range: tuple | None = None) -> list[np.ndarray]:
    """One normalised histogram (sums to 1) per group of values, all on the same ``bins`` bins.

    The common range is ``value_range`` or the min/max over all groups. A group with no values gets all-zero
    counts (and is flagged by the caller). A range of zero width is widened by ±0.5 so every value lands in a bin.
    """
    arrays = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    if value_range is None:
        values = np.concatenate([a for a in arrays if a.size] or [np.zeros(1)])
        lo, hi = float(values.min()), float(values.max())
    else:
        lo, hi = map(float, value_range)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    out = []
    for a in arrays:
        counts, _ = np.histogram(a, bins=edges)
        total = counts.sum()
        out.append(counts / total if total else counts.astype(np.float64))
    return out


def l2_distance(h1, h2) -> float:
    """Eq. (3): Euclidean distance between two histograms."""
    a, b = np.asarray(h1, dtype=np.float64), np.asarray(h2, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"histograms of different lengths: {a.shape} vs {b.shape}")
    return float(np.sqrt(np.sum((a - b) ** 2)))


def chi2_distance(h1, h2) -> float:
    """Eq. (4): ½ Σ (a − b)² / (a + b), bins empty in both histograms contributing 0."""
    a, b = np.asarray(h1, dtype=np.float64), np.asarray(h2, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"histograms of different lengths: {a.shape} vs {b.shape}")
    s = a + b
    num = (a - b) ** 2
    terms = np.divide(num, s, out=np.zeros_like(s), where=s > 0)
    return float(0.5 * terms.sum())


def separation(values_a, values_b, bins: int = N_BINS) -> dict:
    """ℓ² and χ² between the normalised histograms of two groups of one scalar."""
    ha, hb = normalised_histograms([values_a, values_b], bins)
    return {"l2": l2_distance(ha, hb), "chi2": chi2_distance(ha, hb)}


def neuron_analysis(activations: np.ndarray, classes: np.ndarray, mff: np.ndarray, class_a: int = 0,
                    class_b: int = 1, bins: int = N_BINS) -> dict:
    """§4.2: every GAP neuron's DMD-vs-CMD separation against that of the soleus MFF.

    ``activations`` (n_images, n_neurons), ``classes`` (n_images,) class indices, ``mff`` (n_images,) the soleus
    mean FF of each image. Returns per-neuron distances, MFF's distances, how many neurons beat MFF under each
    distance (strictly larger distance) and the indices of the best neurons.
    """
    acts = np.asarray(activations, dtype=np.float64)
    cls = np.asarray(classes)
    mff = np.asarray(mff, dtype=np.float64)
    if acts.ndim != 2 or acts.shape[0] != cls.shape[0] or mff.shape[0] != cls.shape[0]:
        raise ValueError("activations (n, k), classes (n,) and mff (n,) must describe the same images")
    a, b = cls == class_a, cls == class_b
    if not a.any() or not b.any():
        raise ValueError("both classes need at least one image")
    l2 = np.empty(acts.shape[1])
    chi2 = np.empty(acts.shape[1])
    for k in range(acts.shape[1]):
        s = separation(acts[a, k], acts[b, k], bins)
        l2[k], chi2[k] = s["l2"], s["chi2"]
    ref = separation(mff[a], mff[b], bins)
    return {
        "n_neurons": int(acts.shape[1]),
        "n_images": {"a": int(a.sum()), "b": int(b.sum())},
        "l2": l2,
        "chi2": chi2,
        "mff_l2": ref["l2"],
        "mff_chi2": ref["chi2"],
        "n_better_l2": int((l2 > ref["l2"]).sum()),
        "n_better_chi2": int((chi2 > ref["chi2"]).sum()),
        "best_l2": [int(i) for i in np.argsort(-l2)[:10]],
        "best_chi2": [int(i) for i in np.argsort(-chi2)[:10]],
    }


def normalised_activation_matrix(activations: np.ndarray) -> np.ndarray:
    """Figure 3 (left): every neuron centred on its mean over the images and divided by its largest |deviation|,
    so each column lies in [−1, 1] (ResNet's GAP outputs follow a ReLU, so they are ≥ 0 before centring)."""
    acts = np.asarray(activations, dtype=np.float64)
    centred = acts - acts.mean(axis=0, keepdims=True)
    scale = np.abs(centred).max(axis=0, keepdims=True)
    return np.divide(centred, scale, out=np.zeros_like(centred), where=scale > 0)
