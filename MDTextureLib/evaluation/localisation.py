"""Localisation metrics: how well a heatmap ``L`` points at a ground-truth mask ``G``.

All functions take a non-negative map and a boolean mask of the same shape (2-D slice or 3-D volume) and an
optional boolean ``domain`` (the pixels that are scored at all, e.g. the leg; default: every pixel). Pixels outside
the domain are ignored, as if the image were cropped to it. Every metric returns NaN when it is undefined (empty
mask in the domain, or a mask that covers the whole domain where the metric needs negatives).

Definitions (sources: Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016; Wang et al.,
"Score-CAM", CVPR-W 2020; Arras, Osman & Samek, "CLEVR-XAI", Information Fusion 81, 2022; as summarised in the
project notes on CAM anchors):

pointing game
    the maximum of ``L`` is a *hit* when it lies within ``tolerance_px`` pixels of ``G`` (tolerance 0: on ``G``).
    Ties are resolved as the expectation over a uniformly random choice among the maximal pixels, i.e. the score is
    the fraction of maximal pixels that are hits. (Quantus counts a hit if *any* maximal pixel is in G, which lets a
    constant map score 1; the expectation gives a constant map the chance level |G|/N instead.)
energy-based pointing game
    ``L`` is min-max normalised over the domain, then Σ_{p∈G} L_p / Σ_p L_p.
relevance-mass accuracy
    Σ_{p∈G} R_p / Σ_p R_p with R = max(L, 0) (no min-max normalisation).
relevance-rank accuracy
    K = |G|; P_K = the K highest-ranked pixels; |P_K ∩ G| / K. Ties at the K-th value are shared out in
    expectation (a constant map scores |G|/N, the chance level).
pixel ROC-AUC
    the area under the ROC curve of ``L`` as a pixel score for ``G`` (equal to scikit-learn's ``roc_auc_score``); the
    probability that a random G pixel scores above a random non-G pixel, ties counting ½. Invariant to monotone
    rescaling of ``L``; a constant map scores 0.5, ``1 − G`` scores 0.

For a perfect map (``L = G``) all five are 1.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

METRICS = ("pointing_game", "energy_pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy",
           "pixel_auc")

METRIC_LABELS = {
    "pointing_game": "PG",
    "pointing_game_tol": "PG±tol",
    "energy_pointing_game": "energy PG",
    "relevance_mass_accuracy": "mass acc.",
    "relevance_rank_accuracy": "rank acc.",
    "pixel_auc": "pixel AUC",
}


def _prepare(heatmap, mask, domain=None):
    heat = np.asarray(heatmap, dtype=np.float32)
    gt = np.asarray(mask).astype(bool)
    if heat.shape != gt.shape:
        raise ValueError(f"heatmap {heat.shape} and mask {gt.shape} must have the same shape")
    if domain is None:
        dom = np.ones(gt.shape, dtype=bool)
    else:
        dom = np.asarray(domain).astype(bool)
        if dom.shape != gt.shape:
            raise ValueError(f"domain {dom.shape} and mask {gt.shape} must have the same shape")
    if not np.all(np.isfinite(heat[dom])):
        raise ValueError("heatmap has NaN or infinite values inside the domain")
    return heat, gt & dom, dom


def pointing_game(heatmap, mask, domain=None, tolerance_px: float = 0.0) -> float:
    """Expected hit (0..1) of the heatmap's maximum on the mask, within ``tolerance_px`` (Euclidean, in pixels)."""
    heat, gt, dom = _prepare(heatmap, mask, domain)
    if not gt.any():
        return float("nan")
    values = heat[dom]
    peak = values.max()
    maximal = dom & (heat == peak)
    if tolerance_px > 0:
        # distance of every pixel to the nearest mask pixel (mask pixels have distance 0)
        dist = ndimage.distance_transform_edt(~gt)
        target = dist <= tolerance_px
    else:
        target = gt
    return float((maximal & target).sum() / maximal.sum())


def energy_pointing_game(heatmap, mask, domain=None) -> float:
    """Share of the min-max normalised heatmap's energy that falls on the mask."""
    heat, gt, dom = _prepare(heatmap, mask, domain)
    if not gt.any():
        return float("nan")
    values = heat[dom]
    lo, hi = values.min(), values.max()
    if hi <= lo:
        # a constant map carries no information; its energy is spread uniformly
        return float(gt.sum() / dom.sum())
    norm = (heat - lo) / (hi - lo)
    return float(norm[gt].sum() / norm[dom].sum())


def relevance_mass_accuracy(heatmap, mask, domain=None) -> float:
    """Share of the positive relevance that falls on the mask (NaN when the map has no positive relevance)."""
    heat, gt, dom = _prepare(heatmap, mask, domain)
    if not gt.any():
        return float("nan")
    rel = np.clip(heat, 0, None)
    total = rel[dom].sum()
    if total <= 0:
        return float("nan")
    return float(rel[gt].sum() / total)


def relevance_rank_accuracy(heatmap, mask, domain=None) -> float:
    """Fraction of the |G| top-ranked pixels that are in G, ties at the cut shared out in expectation."""
    heat, gt, dom = _prepare(heatmap, mask, domain)
    k = int(gt.sum())
    if k == 0:
        return float("nan")
    values = heat[dom]
    inside = gt[dom]
    kth = np.partition(values, values.size - k)[values.size - k]  # K-th largest value
    above = values > kth
    tied = values == kth
    need = k - int(above.sum())  # how many of the tied pixels make it into the top K
    hits = float(inside[above].sum())
    n_tied = int(tied.sum())
    if need > 0 and n_tied > 0:
        hits += need * float(inside[tied].sum()) / n_tied
    return hits / k


def pixel_roc_auc(heatmap, mask, domain=None) -> float:
    """Pixel-level ROC-AUC of the heatmap as a score for the mask (NaN when either class is absent).

    Computed as the Mann-Whitney statistic with mid-ranks for ties, which is the value of scikit-learn's
    ``roc_auc_score`` (the test suite checks the two agree) at a fraction of its time on a million pixels.
    """
    heat, gt, dom = _prepare(heatmap, mask, domain)
    labels = gt[dom]
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(heat[dom], return_inverse=True, return_counts=True)
    # mid-rank (1-based) of every distinct value: ranks below it + (count + 1) / 2
    mid = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = float(mid[inverse.ravel()][labels].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def all_metrics(heatmap, mask, domain=None, tolerance_px: float = 0.0) -> dict:
    """Every metric of this module for one map/mask pair (volume-level)."""
    out = {
        "pointing_game": pointing_game(heatmap, mask, domain),
        "energy_pointing_game": energy_pointing_game(heatmap, mask, domain),
        "relevance_mass_accuracy": relevance_mass_accuracy(heatmap, mask, domain),
        "relevance_rank_accuracy": relevance_rank_accuracy(heatmap, mask, domain),
        "pixel_auc": pixel_roc_auc(heatmap, mask, domain),
    }
    if tolerance_px > 0:
        out["pointing_game_tol"] = pointing_game(heatmap, mask, domain, tolerance_px)
    return out


def slice_pointing_game(heatmap_zyx, mask_zyx, domain_zyx=None, tolerance_px: float = 0.0) -> float:
    """Pointing game per axial slice, averaged over the slices whose mask is non-empty (NaN if there are none).

    The paper's images are slices, so the pointing game is played per slice; the other metrics are computed on
    the whole volume.
    """
    heat = np.asarray(heatmap_zyx)
    gt = np.asarray(mask_zyx).astype(bool)
    dom = np.ones(gt.shape, bool) if domain_zyx is None else np.asarray(domain_zyx).astype(bool)
    scores = []
    for k in range(gt.shape[0]):
        if (gt[k] & dom[k]).any():
            # tolerance in-plane only: distances are measured within the slice
            scores.append(pointing_game(heat[k], gt[k], dom[k], tolerance_px))
    return float(np.mean(scores)) if scores else float("nan")


def scan_metrics(heatmap_zyx, mask_zyx, domain_zyx=None, tolerance_px: float = 0.0) -> dict:
    """The metrics used by the localisation experiment for one scan: pointing games per slice (averaged over
    slices with involvement), the rest on the volume."""
    out = all_metrics(heatmap_zyx, mask_zyx, domain_zyx)
    out["pointing_game"] = slice_pointing_game(heatmap_zyx, mask_zyx, domain_zyx, 0.0)
    if tolerance_px > 0:
        out["pointing_game_tol"] = slice_pointing_game(heatmap_zyx, mask_zyx, domain_zyx, tolerance_px)
    return out


def mass_ratio_to_uniform(heatmap, mask, domain=None) -> float:
    """The relevance-mass share on ``mask`` divided by the share a uniform map would give (|mask| / |domain|):
    1 = no preference, 2 = twice the uniform share. Used for the class-specific muscles (``mask`` = those muscles,
    ``domain`` = all muscles). NaN when the mask is empty in the domain or the map has no mass there."""
    heat, gt, dom = _prepare(heatmap, mask, domain)
    uniform = float((gt & dom).sum()) / max(float(dom.sum()), 1.0)
    share = relevance_mass_accuracy(heat, gt, dom)
    return share / uniform if uniform > 0 and np.isfinite(share) else float("nan")



def sign_agreement(signed_map, mask, domain=None) -> dict:
    """How a *signed* attribution (e.g. the fat map before ReLU) leans on ``mask`` inside ``domain``:

    ``positive_share``
        the fraction of mask voxels with attribution > 0 (voxels that argue *for* the class);
    ``net``
        Σ A / Σ |A| over the mask voxels, in [−1, 1]: +1 when every voxel of the mask argues for the class, 0 when
        for and against cancel, −1 when all argue against (NaN when the mask carries no attribution).

    A map whose signs carry evidence about ``mask`` gives a positive share well above ½ and a net near +1; a map
    whose signs are noise gives about ½ and 0 — and still scores a pixel AUC well above ½ after ReLU whenever its
    magnitude follows the image (see the random-sign reference row of the localisation experiment).
    """
    a = np.asarray(signed_map, dtype=np.float64)
    sel = np.asarray(mask).astype(bool)
    if domain is not None:
        sel = sel & np.asarray(domain).astype(bool)
    if not sel.any():
        return {"positive_share": float("nan"), "net": float("nan")}
    v = a[sel]
    total = float(np.abs(v).sum())
    return {"positive_share": float((v > 0).mean()), "net": float(v.sum() / total) if total > 0 else float("nan")}
