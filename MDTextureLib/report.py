"""The one-page picture of a result: FF slices with the heatmap, the per-slice probability curve, the scores."""

from __future__ import annotations

import os

import numpy as np

from .constants import CLASSES, TEXTURE_SCORE_MEANING

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
                 label_names: dict | None = None, leg_scores: dict | None = None) -> None:
    """Write ``report.png`` (see :func:`report_figure`)."""
    report_figure(ff, heatmap, result_summary, spacing_mm, scores, title, labels, label_names, leg_scores).savefig(path)


def report_figure(ff: np.ndarray, heatmap: np.ndarray, result_summary: dict, spacing_mm: tuple,
                  scores: list | None = None, title: str = "", labels: np.ndarray | None = None,
                  label_names: dict | None = None, leg_scores: dict | None = None):
    """The report as a matplotlib Figure: FF slices with the heatmap overlaid (and muscle outlines when ``labels``
    are given), slice probabilities, texture scores as bars, and every warning of ``result_summary`` in a text block
    under them. With two legs (``result_summary["legs"]``) the curves and bars are drawn per leg (right solid, left
    dashed / hatched) and the title gives each leg's verdict.

    A plain ``Figure`` drawn by the Agg canvas, never registered with pyplot: pyplot's figure list is shared by every
    thread, while a figure of its own may be drawn in any one thread (``batch`` writes reports in a writer thread).
    Nothing to close; the figure goes when the last reference does."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    slices = pick_slices(ff.shape[0])
    n_cols = max(len(slices), 3)
    notes = warning_lines(result_summary.get("warnings") or [], width=int(13 * 3.0 * n_cols))  # 8 pt: ~14 chars/inch
    notes_in = 0.16 * len(notes) + (0.2 if notes else 0.0)  # figure height the text block needs
    height_in = 7.2 + notes_in
    fig = Figure(figsize=(3.0 * n_cols, height_in), dpi=90)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, n_cols, height_ratios=[1.0, 1.0])
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
    legs = result_summary.get("legs") or []
    curves = [(leg["side"] + " leg ", leg["per_slice"], style) for leg, style in zip(legs, ("-", "--"))]
    if len(curves) < 2:
        curves = [("", result_summary["per_slice"], "-")]
    for name, per_slice, style in curves:
        ks = [row["slice"] for row in per_slice]
        for c in CLASSES:
            ax.plot(ks, [row[c] for row in per_slice], style, marker="o", ms=3, color=CLASS_COLOURS[c],
                    label=f"{name}{c}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("axial slice")
    ax.set_ylabel("probability")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    if scores:
        ax2 = fig.add_subplot(grid[1, half:])
        by_leg = list(leg_scores.items()) if leg_scores and len(legs) > 1 else [("", scores)]
        width = 0.8 / len(by_leg)
        verdict_of = {leg["side"]: leg["target_class"] for leg in legs}
        for i, (side, rows) in enumerate(by_leg):
            xs = np.arange(len(rows)) + (i - (len(by_leg) - 1) / 2) * width
            vals = [r.texture_score if r.texture_score is not None else 0.0 for r in rows]
            colour = CLASS_COLOURS.get(verdict_of.get(side, result_summary["target_class"]), "grey")
            bars = ax2.bar(xs, vals, width=width, color=colour, hatch="//" if side == "left" else None,
                           label=f"{side} leg" if side else None)
            for bar, r in zip(bars, rows):
                if r.texture_score is None:
                    ax2.text(bar.get_x() + bar.get_width() / 2, 0.02, "absent", ha="center", fontsize=7,
                             rotation=90)
        ax2.set_xticks(np.arange(len(by_leg[0][1])), [r.muscle for r in by_leg[0][1]])
        if len(by_leg) > 1:
            ax2.legend(fontsize=8, loc="best")
        ax2.set_ylim(0, 1.05)
        ax2.set_ylabel("texture score (Eq. 5)")
        ax2.set_title(TEXTURE_SCORE_MEANING, fontsize=7)  # what the bars are not: see constants.TEXTURE_SCORE_CAVEAT
        ax2.tick_params(axis="x", labelsize=8)
    probs = result_summary["probabilities"]
    verdict = result_summary["verdict"]
    head = f"{title}  verdict: {verdict}  (" + ", ".join(f"{c} {probs[c]:.2f}" for c in CLASSES) + ")"
    if len(legs) > 1:
        head += "  | " + ", ".join(f"{leg['side']} leg {leg['verdict']}" for leg in legs)
    leg_targets = {leg["target_class"] for leg in legs}
    if len(leg_targets) > 1:  # each leg's heatmap shows its own verdict's class, scaled to that leg's maximum
        head += "   heatmap: each leg's ICAM of " + ", ".join(f"{leg['target_class']} ({leg['side']})" for leg in legs)
    else:
        head += f"   heatmap: ICAM of {result_summary['target_class']}"
    fig.suptitle(head.strip(), fontsize=10)
    # A fixed layout in inches (title, axis labels, the warnings' block under the plots): the text sizes are fixed,
    # and matplotlib's tight_layout would measure every tick label for a third of the report's time.
    width_in = 3.0 * n_cols
    fig.subplots_adjust(left=0.6 / width_in, right=1 - 0.15 / width_in, top=1 - 0.45 / height_in,
                        bottom=(notes_in + 0.6) / height_in, wspace=0.28, hspace=0.15)
    if notes:
        # Warnings in dark red under the plots: a result with warnings must not look like one without.
        fig.text(0.01, (notes_in - 0.05) / height_in, "\n".join(notes), ha="left", va="top", fontsize=8,
                 color="#8b0000", family="monospace")
    return fig
