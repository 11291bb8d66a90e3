"""Figure 6 of Cai et al. (§4.4): k×k patches (k = 24) cut around the maxima of the heatmaps, embedded in 2-D
with t-SNE (scikit-learn), coloured by class, with the most representative patches of each class.

Patches are cut from the fat-fraction image on the model window (fixed pixel size), centred on local maxima of
the class map upsampled to the window (bilinear, align_corners=False, the same convention as the network's
upsampling). Besides the picture, two numbers make the figure checkable: the k-nearest-neighbour class purity of
the patches (in the embedding and in patch space, leave-one-out) and where the maxima fall (which muscle, and
whether on involved tissue).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PATCH_K = 24


def upsample_to_window(maps_zhw: torch.Tensor, size_px: int) -> np.ndarray:
    """(Z, h, w) maps on the model grid → (Z, S, S) on the model window, ReLU, divided by the volume maximum."""
    m = torch.as_tensor(maps_zhw).float()[:, None]
    up = F.interpolate(m, size=(size_px, size_px), mode="bilinear", align_corners=False)[:, 0].clamp_min(0)
    peak = float(up.max())
    return (up / peak if peak > 0 else up).numpy()


def heatmap_peaks(heat_zyx: np.ndarray, threshold: float = 0.5, min_distance: int = PATCH_K // 2,
                  max_per_slice: int = 3, border: int = PATCH_K // 2) -> np.ndarray:
    """(n, 3) integer (z, y, x) of local maxima ≥ ``threshold`` (heatmap in [0, 1]), at most ``max_per_slice``
    per slice, at least ``min_distance`` apart, and far enough from the border for a patch to fit."""
    from skimage.feature import peak_local_max

    out = []
    for z in range(heat_zyx.shape[0]):
        if heat_zyx[z].max() < threshold:
            continue
        pk = peak_local_max(heat_zyx[z], min_distance=min_distance, threshold_abs=threshold,
                            exclude_border=border, num_peaks=max_per_slice)
        out += [(z, int(y), int(x)) for y, x in pk]
    return np.array(out, dtype=int).reshape(-1, 3)


def cut_patches(image_zyx: np.ndarray, peaks: np.ndarray, k: int = PATCH_K) -> np.ndarray:
    """(n, k, k) patches of ``image_zyx`` whose centre pixel (k/2, k/2) is each peak."""
    h = k // 2
    return np.stack([image_zyx[z, y - h:y - h + k, x - h:x - h + k] for z, y, x in peaks]) if len(peaks) else \
        np.zeros((0, k, k), dtype=np.float32)


def tsne_embedding(patches: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(n, 2) t-SNE of flattened patches (PCA to ≤ 50 dimensions first, as is usual for t-SNE)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(patches, dtype=np.float64).reshape(len(patches), -1)
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 patches, got {n}")
    dims = min(50, n - 1, x.shape[1])
    x = PCA(n_components=dims, random_state=seed).fit_transform(x)
    perp = float(min(perplexity, max((n - 1) / 3.0, 1.0)))
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(x)


def knn_purity(points: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Per point: fraction of its k nearest other points (Euclidean) with the same label (leave-one-out)."""
    from sklearn.neighbors import NearestNeighbors

    pts = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    lab = np.asarray(labels)
    k = min(k, len(pts) - 1)
    if k < 1:
        return np.full(len(pts), np.nan)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(pts).kneighbors(pts)
    return (lab[idx[:, 1:]] == lab[:, None]).mean(axis=1)


def representative(purity: np.ndarray, heat: np.ndarray, labels: np.ndarray, cls: int, n: int = 4) -> list[int]:
    """Indices of the ``n`` patches of class ``cls`` whose neighbourhoods are purest (ties: hottest)."""
    idx = np.flatnonzero(np.asarray(labels) == cls)
    order = np.lexsort((-np.asarray(heat)[idx], -np.asarray(purity)[idx]))
    return [int(i) for i in idx[order[:n]]]
