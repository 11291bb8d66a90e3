"""The one-page picture of a result: FF slices with the heatmap, the per-slice probability curve, the scores."""

from __future__ import annotations

import os

import numpy as np

from .constants import CLASSES

CLASS_COLOURS = {"DMD": "#d62728", "CMD": "#1f77b4", "normal": "#2ca02c"}


def pick_slices(n_slices: int, count: int = 4) -> list[int]:
    """``count`` evenly spaced interior slices (all of them when there are fewer)."""
    if n_slices <= count:
        return list(range(n_slices))
    return [int(round(x)) for x in np.linspace(0, n_slices - 1, count + 2)[1:-1]]


def _outline_muscles(ax, labels_2d: np.ndarray, names: dict) -> None:
    """Thin outlines of each labelled muscle in its display colour (grey when the name is no calf muscle)."""
    from .constants import MUSCLE_COLORS
    from .scores import canonical_muscle

    for value in np.unique(labels_2d):
        if value == 0:
            continue
        colour = MUSCLE_COLORS.get(canonical_muscle(str(names.get(int(value), ""))) or "", (0.7, 0.7, 0.7))
        ax.contour(labels_2d == value, levels=[0.5], colors=[colour], linewidths=0.6)


def warning_lines(warnings: list, width: int) -> list[str]:
    """The warnings as display lines: a heading with their count, then each warning wrapped at ``width`` characters
    (at spaces only, so joining the lines with spaces gives the warning back)."""
    import textwrap

    if not warnings:
        return []
    lines = [f"{len(warnings)} warning{'s' if len(warnings) > 1 else ''} (also in prediction.json):"]
    for w in warnings:
        wrapped = textwrap.wrap(str(w), width=width, break_long_words=False, break_on_hyphens=False)
        lines += ["• " + wrapped[0]] + ["  " + part for part in wrapped[1:]]
    return lines


def write_report(path: str | os.PathLike, ff: np.ndarray, heatmap: np.ndarray, result_summary: dict,
                 spacing_mm: tuple, scores: list | None = None, title: str = "", labels: np.ndarray | None = None,
                 label_names: dict | None = None) -> None:
    """Write ``report.png`` (see :func:`report_figure`)."""
    import matplotlib.pyplot as plt

    fig = report_figure(ff, heatmap, result_summary, spacing_mm, scores, title, labels, label_names)
    fig.savefig(path)
    plt.close(fig)


def report_figure(ff: np.ndarray, heatmap: np.ndarray, result_summary: dict, spacing_mm: tuple,
                  scores: list | None = None, title: str = "", labels: np.ndarray | None = None,
                  label_names: dict | None = None):
    """The report as a matplotlib Figure: FF slices with the heatmap overlaid (and muscle outlines when ``labels``
    are given), slice probabilities, texture scores as bars, and every warning of ``result_summary`` in a text block
    under them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = pick_slices(ff.shape[0])
    n_cols = max(len(slices), 3)
    notes = warning_lines(result_summary.get("warnings") or [], width=int(13 * 3.0 * n_cols))  # 8 pt: ~14 chars/inch
    notes_in = 0.16 * len(notes) + (0.2 if notes else 0.0)  # figure height the text block needs
    height_in = 7.2 + notes_in
    fig = plt.figure(figsize=(3.0 * n_cols, height_in), dpi=90)
    grid = fig.add_gridspec(2, n_cols, height_ratios=[1.25, 1.0])
    aspect = spacing_mm[1] / spacing_mm[0]
    for col, k in enumerate(slices):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(ff[k] * 100, cmap="gray", vmin=0, vmax=100, aspect=aspect)
        hm = np.ma.masked_less(heatmap[k], 0.2)  # cold regions transparent
        ax.imshow(hm, cmap="inferno", vmin=0, vmax=1, alpha=0.55, aspect=aspect)
        if labels is not None:
            _outline_muscles(ax, labels[k], label_names or {})
        ax.set_title(f"slice {k}", fontsize=9)
        ax.axis("off")
    n_bottom = 2 if scores else 1
    half = max(len(slices), 3) // n_bottom
    ax = fig.add_subplot(grid[1, :half] if scores else grid[1, :])
    per_slice = result_summary["per_slice"]
    ks = [row["slice"] for row in per_slice]
    for c in CLASSES:
        ax.plot(ks, [row[c] for row in per_slice], marker="o", ms=3, color=CLASS_COLOURS[c], label=c)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("axial slice")
    ax.set_ylabel("probability")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    if scores:
        ax2 = fig.add_subplot(grid[1, half:])
        names = [r.muscle for r in scores]
        vals = [r.texture_score if r.texture_score is not None else 0.0 for r in scores]
        bars = ax2.bar(names, vals, color=CLASS_COLOURS.get(result_summary["target_class"], "grey"))
        for bar, r in zip(bars, scores):
            if r.texture_score is None:
                ax2.text(bar.get_x() + bar.get_width() / 2, 0.02, "absent", ha="center", fontsize=7, rotation=90)
        ax2.set_ylim(0, 1.05)
        ax2.set_ylabel("texture score (Eq. 5)")
        ax2.tick_params(axis="x", labelsize=8)
    probs = result_summary["probabilities"]
    verdict = result_summary["verdict"]
    head = f"{title}  verdict: {verdict}  (" + ", ".join(f"{c} {probs[c]:.2f}" for c in CLASSES) + ")"
    head += f"   heatmap: ICAM of {result_summary['target_class']}"
    fig.suptitle(head.strip(), fontsize=10)
    fig.tight_layout(rect=(0, notes_in / height_in, 1, 1))  # the plots above the warnings' block
    if notes:
        # Warnings in dark red under the plots: a result with warnings must not look like one without.
        fig.text(0.01, (notes_in - 0.05) / height_in, "\n".join(notes), ha="left", va="top", fontsize=8,
                 color="#8b0000", family="monospace")
    return fig
