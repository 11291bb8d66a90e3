"""Muscle texture score (Cai et al. Eq. 5, §4.4) and the per-muscle table.

For muscle i: m_i = number of axial slices where the muscle is present (area ≥ ``min_area_mm2``), n_i = number of
those slices where at least ``min_overlap`` of the muscle's voxels lie in the highlighted region
(heatmap ≥ ``threshold``), and s_i = n_i / m_i. A muscle present on no slice has no score (None), not 0.

Segment names are matched to the seven calf muscles through the alias table of :mod:`.musclenames`; names that match
none are scored under their own name. Every segment is scored on its own voxels, also where segments overlap (as
Slicer's Segment Statistics does): labels come as one (z, y, x) map or as Slicer's layers (L, z, y, x).
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from .constants import MUSCLE_LABELS, MUSCLES
from .musclenames import canonical_muscle


@dataclass(frozen=True)
class ScoreParameters:
    """The three choices a texture-score table depends on; they travel with every table."""

    threshold: float = 0.5  # heatmap value (0..1) from which a voxel counts as highlighted
    min_overlap: float = 0.10  # fraction of a muscle's voxels on a slice that must be highlighted
    min_area_mm2: float = 10.0  # muscle area from which a slice counts as containing the muscle

    def __post_init__(self):
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 0.0 < self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be in (0, 1], got {self.min_overlap}")
        if self.min_area_mm2 < 0:
            raise ValueError(f"min_area_mm2 must be ≥ 0, got {self.min_area_mm2}")


@dataclass(frozen=True)
class MuscleScore:
    muscle: str
    label_value: int | None
    slices_present: int
    slices_highlighted: int
    texture_score: float | None
    mean_ff: float | None  # percent, over all the muscle's voxels
    volume_ml: float
    # The segment names scored in this row, exactly as given: provenance, not part of the score (a table re-read
    # from Slicer, which has no such column, still equals the engine's rows).
    segments: tuple = field(default=(), compare=False)


COLUMNS = ("muscle", "label_value", "slices_present", "slices_highlighted", "texture_score", "mean_ff", "volume_ml")
PARAMETER_COLUMNS = ("threshold", "min_overlap", "min_area_mm2")


def texture_scores(heatmap: np.ndarray, labels: np.ndarray, names: dict, ff: np.ndarray, spacing_mm: tuple,
                   params: ScoreParameters = ScoreParameters()) -> list[MuscleScore]:
    """One row per muscle: the seven calf muscles in canonical order (absent ones with no score), then any
    segments whose names match none of them, under their own name.

    ``heatmap`` (0..1) and ``ff`` (fraction) are (z, y, x) arrays on one grid; ``labels`` is a (z, y, x) labelmap
    or Slicer's layers (L, z, y, x) on that grid, label values unique across layers; ``spacing_mm`` is (x, y, z);
    ``names`` maps label value → segment name. Segments that resolve to the same muscle (e.g. peroneus longus and
    brevis) are scored together, each voxel once; a voxel in two segments of different muscles counts for both.
    """
    layers = labels[None] if labels.ndim == 3 else labels
    if not (heatmap.shape == layers.shape[1:] == ff.shape) or layers.ndim != 4:
        raise ValueError(f"heatmap {heatmap.shape}, labels {labels.shape} and FF {ff.shape} must share one grid")
    groups: dict[str, list[int]] = {}
    for value, name in sorted(names.items()):
        groups.setdefault(canonical_muscle(name) or str(name) or f"label_{value}", []).append(int(value))
    order = list(MUSCLES) + sorted(k for k in groups if k not in MUSCLES)
    # Label value → row (1-based; 0 = not scored), then per voxel and layer the row it counts for. A voxel that one
    # row holds in two layers (longus and brevis overlapping) counts once: later layers drop what earlier ones hold.
    lut = np.zeros(max(int(layers.max()), max(names, default=0)) + 1, np.int64)
    for row, muscle in enumerate(order, start=1):
        lut[groups.get(muscle, [])] = row
    n_rows = len(order) + 1
    pixel_area_mm2 = float(spacing_mm[0] * spacing_mm[1])
    voxel_ml = pixel_area_mm2 * float(spacing_mm[2]) / 1000.0
    # Voxel counts, highlighted counts and FF sums per (slice, row), over the labelled voxels only (a small part).
    size = heatmap.shape[0] * n_rows
    area_px, hot_px, ff_sum = np.zeros(size), np.zeros(size), np.zeros(size)
    heat_flat, ff_flat = heatmap.ravel(), ff.ravel()
    for k, layer in enumerate(layers):
        flat = np.flatnonzero(layer)
        rows_here = lut[layer.ravel()[flat]]
        for earlier in layers[:k]:
            rows_here[lut[earlier.ravel()[flat]] == rows_here] = 0
        keep = rows_here > 0
        flat, rows_here = flat[keep], rows_here[keep]
        index = flat // (heatmap.shape[1] * heatmap.shape[2]) * n_rows + rows_here
        area_px += np.bincount(index, minlength=size)
        hot_px += np.bincount(index, weights=heat_flat[flat] >= params.threshold, minlength=size)
        ff_sum += np.bincount(index, weights=ff_flat[flat].astype(np.float64), minlength=size)
    area_px, hot_px, ff_sum = (a.reshape(-1, n_rows) for a in (area_px, hot_px, ff_sum))
    rows = []
    for row, muscle in enumerate(order, start=1):
        area, hot_row = area_px[:, row], hot_px[:, row]
        present = area * pixel_area_mm2 >= max(params.min_area_mm2, 1e-9)
        highlighted = present & (hot_row >= params.min_overlap * area)
        m, n = int(present.sum()), int(highlighted.sum())
        voxels = int(area.sum())
        values = groups.get(muscle, [])
        rows.append(MuscleScore(
            muscle=muscle, label_value=MUSCLE_LABELS.get(muscle, values[0] if values else None),
            slices_present=m, slices_highlighted=n, texture_score=(n / m) if m else None,
            mean_ff=float(ff_sum[:, row].sum() / voxels * 100.0) if voxels else None,
            volume_ml=voxels * voxel_ml, segments=tuple(str(names[v]) for v in values)))
    return rows


def write_scores_csv(rows: list[MuscleScore] | dict, path: str | os.PathLike, params: ScoreParameters) -> None:
    """UTF-8 CSV with :data:`COLUMNS` then the parameters (threshold, min_overlap, min_area_mm2) on every row.
    A segment that matches no muscle is listed under its name exactly as given (any script).

    ``rows`` may also be {leg side: rows} (a field of view with two legs): the table then starts with a ``leg``
    column."""
    by_leg = rows if isinstance(rows, dict) else {None: rows}
    leg_column = ("leg",) if isinstance(rows, dict) else ()
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(leg_column + COLUMNS + PARAMETER_COLUMNS)
        for side, leg_rows in by_leg.items():
            for row in leg_rows:
                writer.writerow(([side] if leg_column else []) + [_cell(getattr(row, c)) for c in COLUMNS]
                                + [params.threshold, params.min_overlap, params.min_area_mm2])


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def scores_as_dicts(rows: list[MuscleScore]) -> list[dict]:
    return [dict(asdict(r), segments=list(r.segments)) for r in rows]


def normal_class_warning(scored_classes: dict) -> str | None:
    """The warning when texture scores come from the heatmap of the class ``normal`` (``scored_classes``: leg side,
    or "" for one leg → the class whose heatmap scored it), else None. Eq. (5) counts where a map is high; on the
    map of ``normal`` that is the evidence for normal tissue, which a reader would take for disease texture."""
    normal = [side for side, class_name in scored_classes.items() if class_name == "normal"]
    if not normal:
        return None
    where = "" if normal == [""] else f" ({' and '.join(s + ' leg' for s in normal)})"
    return (f"the texture scores{where} come from the heatmap of the class normal: they show where the evidence for "
            "normal tissue lies, not disease texture; for a disease's scores use that class's heatmap "
            "(--target-class DMD or CMD; in Slicer and the browser app, show that class before computing scores)")
