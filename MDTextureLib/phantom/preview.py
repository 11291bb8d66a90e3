"""A contact sheet of one mid-calf slice per class (rows) showing water, fat, FF and the muscle labels (columns).

Meant for comparing the phantom with Figure 1 of Cai et al. at a glance. Uses matplotlib's Agg backend only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..constants import MUSCLE_COLORS, MUSCLES


def mid_slice(labels: np.ndarray) -> int:
    """The slice nearest the slab middle among those with the largest labelled muscle area (max girth)."""
    area = (labels > 0).sum(axis=(1, 2))
    ok = np.nonzero(area >= 0.9 * area.max())[0]
    mid = (labels.shape[0] - 1) / 2.0
    return int(ok[np.argmin(np.abs(ok - mid))])


def _crop(labels2d: np.ndarray, margin_frac: float = 0.3):
    """Square crop around the labelled muscles, widened to include the subcutaneous fat and skin."""
    ys, xs = np.nonzero(labels2d > 0)
    if ys.size == 0:
        return slice(None), slice(None)
    h = int(max(ys.max() - ys.min(), xs.max() - xs.min()) * (0.5 + margin_frac)) + 4
    cy, cx = (ys.max() + ys.min()) // 2, (xs.max() + xs.min()) // 2
    return slice(max(cy - h, 0), cy + h), slice(max(cx - h, 0), cx + h)


def render_preview(rows: list, png_path, dpi: int = 80) -> Path:
    """Write the sheet. ``rows``: list of dicts with water, fat, ff, labels (3-D arrays) and a ``title``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    cmap = ListedColormap([(0, 0, 0)] + [MUSCLE_COLORS[m] for m in MUSCLES])
    fig, axes = plt.subplots(len(rows), 4, figsize=(9.2, 2.35 * len(rows) + 0.5), squeeze=False)
    for r, row in enumerate(rows):
        k = mid_slice(row["labels"])
        ys, xs = _crop(row["labels"][k])
        w, f, ff, lab = (row[n][k][ys, xs] for n in ("water", "fat", "ff", "labels"))
        vmax = float(np.percentile(np.concatenate([w.ravel(), f.ravel()]), 99.5))
        panels = [(w, "gray", 0, vmax, "water"), (f, "gray", 0, vmax, "fat"), (ff * 100, "inferno", 0, 100, "FF %"),
                  (lab, cmap, 0, len(MUSCLES), "labels")]
        for c, (img, cm, lo, hi, name) in enumerate(panels):
            ax = axes[r, c]
            im = ax.imshow(img, cmap=cm, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=10)
            if c == 0:
                ax.set_ylabel(row["title"], fontsize=8)
            if c == 2:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
    handles = [Patch(color=MUSCLE_COLORS[m], label=m) for m in MUSCLES]
    fig.legend(handles=handles, loc="lower center", ncol=len(MUSCLES), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=dpi)
    plt.close(fig)
    return png_path


def scan_title(truth: dict) -> str:
    """Row label: class, subtype, age, severity and the measured whole-muscle mean FF."""
    sub = "" if truth["subtype"] in (truth["class"], "none") else f" ({truth['subtype']})"
    fam = truth.get("pattern_family", "")
    fam = f"\n{fam}" if fam and fam != "normal" else ""
    return (f"{truth['class']}{sub}{fam}\nage {truth['age']:.0f} y, sev {truth['severity']:.2f}\n"
            f"mean FF {truth['mean_measured_ff_percent']:.1f} %")
