"""Small pictures and rows for the page, made on the server as plain SVG / HTML text: the per-slice probability
chart, the heatmap's colour legend, and the texture-score table rows."""

from __future__ import annotations

from html import escape

import numpy as np

from ..constants import CLASSES
from ..slicer_bridge.display import inferno_rgb
from ..slicer_bridge.tables import PLOT_COLORS


def css_color(rgb) -> str:
    r, g, b = (int(round(255 * float(v))) for v in rgb[:3])
    return f"rgb({r},{g},{b})"


def probability_chart_svg(slice_probabilities: np.ndarray, width_px: int = 300, height_px: int = 140) -> str:
    """One line per class over the axial slices (y: probability 0..1), with a legend."""
    probs = np.asarray(slice_probabilities, float)
    if probs.size == 0:
        return ""
    left, right, top, bottom = 30, 8, 8, 30
    w, h = width_px - left - right, height_px - top - bottom
    n = probs.shape[0]

    def x(k):
        return left + (w * k / (n - 1) if n > 1 else w / 2)

    def y(v):
        return top + h * (1.0 - float(v))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_px}" height="{height_px}" '
             f'id="probability-chart" role="img" aria-label="per-slice class probabilities">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#888"/>']
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end" '
                     f'fill="currentColor">{v:.1f}</text>')
    parts.append(f'<text x="{left + w / 2:.1f}" y="{height_px - 4}" font-size="10" text-anchor="middle" '
                 f'fill="currentColor">axial slice (0 … {n - 1})</text>')
    for j, c in enumerate(CLASSES):
        points = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in enumerate(probs[:, j]))
        color = css_color(PLOT_COLORS[c])
        parts.append(f'<polyline class="prob-{c}" fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{left + 6 + 60 * j}" y="{top + 12}" font-size="10" fill="{color}">{c}</text>')
    parts.append("</svg>")
    return "".join(parts)


def legend_html(title: str, floor: float, n_stops: int = 11) -> str:
    """A horizontal inferno bar from 0 to 1 with its scale; values below ``floor`` are transparent in the view."""
    rgb = inferno_rgb(n_stops)
    stops = ", ".join(f"{css_color(c)} {100 * i / (n_stops - 1):.0f}%" for i, c in enumerate(rgb))
    return (f'<div id="heatmap-legend"><div style="font-size:12px">{escape(title)} (0 … 1; below {floor:.2f} not '
            f'shown)</div><div style="height:12px;border:1px solid #888;background:linear-gradient(to right, '
            f'{stops})"></div><div style="display:flex;justify-content:space-between;font-size:11px">'
            '<span>0</span><span>0.5</span><span>1</span></div></div>')


def score_row(row, leg: str = "") -> dict:
    """One texture-score row for the page's table (the CSV's 4 decimals); ``leg``: its side with two legs."""
    return {"leg": leg, "muscle": row.muscle,
            "score": "absent" if row.texture_score is None else f"{row.texture_score:.4f}",
            "slices": f"{row.slices_highlighted} / {row.slices_present}",
            "mean_ff": "" if row.mean_ff is None else f"{row.mean_ff:.4f}",
            "volume_ml": f"{row.volume_ml:.4f}"}
