"""Muscle texture score (Cai et al. Eq. 5, §4.4) and the per-muscle table.

For muscle i: m_i = number of axial slices where the muscle is present (area ≥ ``min_area_mm2``), n_i = number of
those slices where at least ``min_overlap`` of the muscle's voxels lie in the highlighted region
(heatmap ≥ ``threshold``), and s_i = n_i / m_i. A muscle present on no slice has no score (None), not 0.

Segment names are matched to the seven calf muscles through a tolerant alias table; names that match none are
scored under their own name.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import asdict, dataclass

import numpy as np

from .constants import MUSCLE_LABELS, MUSCLES

# Abbreviations expanded before matching, so "tib ant", "gastroc lat" and "ext dig long" all resolve.
_WORD_EXPANSIONS = {
    "tib": "tibialis", "ant": "anterior", "post": "posterior", "lat": "lateral", "med": "medial",
    "gastroc": "gastrocnemius", "gastrocn": "gastrocnemius", "gas": "gastrocnemius", "ext": "extensor",
    "dig": "digitorum", "long": "longus", "brev": "brevis", "per": "peroneus", "peron": "peroneus",
    "lateralis": "lateral", "medialis": "medial", "peronei": "peroneus", "peroneal": "peroneus",
    "peroneals": "peroneus", "peroneous": "peroneus", "fibularis": "peroneus", "fibular": "peroneus",
}
# Words that say nothing about which muscle it is.
_NOISE_WORDS = {"m", "mm", "muscle", "muscles", "musculus", "left", "right", "l", "r", "lt", "rt", "head", "the",
                "and", "of", "calf", "leg", "seg", "segment"}

_ALIASES = {
    "TA": ["ta", "tibialis anterior", "anterior tibialis", "tibialis anticus"],
    "EDL": ["edl", "extensor digitorum longus", "extensor digitorum", "edl ehl",
            "extensor digitorum longus extensor hallucis longus"],
    "Per": ["per", "pe", "pl", "pb", "peroneus", "peroneus longus", "peroneus brevis",
            "peroneus longus brevis", "peroneus longus peroneus brevis"],
    "TP": ["tp", "tibialis posterior", "posterior tibialis", "tibialis posticus"],
    "Sol": ["sol", "so", "soleus"],
    "LG": ["lg", "gl", "lateral gastrocnemius", "gastrocnemius lateral", "lgas"],
    "MG": ["mg", "gm", "medial gastrocnemius", "gastrocnemius medial", "mgas"],
}


def _tokens(name: str) -> tuple:
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))  # camelCase → words
    words = re.sub(r"[^a-z0-9]+", " ", words.lower()).split()
    words = [_WORD_EXPANSIONS.get(w, w) for w in words if w not in _NOISE_WORDS and not w.isdigit()]
    return tuple(words)


_LOOKUP = {}
for _muscle, _names in _ALIASES.items():
    for _alias in _names + [_muscle]:
        _LOOKUP[frozenset(_tokens(_alias))] = _muscle


def canonical_muscle(name: str) -> str | None:
    """'Soleus_R' → 'Sol', 'tib ant' → 'TA', 'peroneus longus' → 'Per'; None when the name is no calf muscle."""
    tokens = _tokens(name)
    return _LOOKUP.get(frozenset(tokens)) if tokens else None


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


COLUMNS = ("muscle", "label_value", "slices_present", "slices_highlighted", "texture_score", "mean_ff", "volume_ml")


def texture_scores(heatmap: np.ndarray, labels: np.ndarray, names: dict, ff: np.ndarray, spacing_mm: tuple,
                   params: ScoreParameters = ScoreParameters()) -> list[MuscleScore]:
    """One row per muscle: the seven calf muscles in canonical order (absent ones with no score), then any
    segments whose names match none of them, under their own name.

    ``heatmap`` (0..1), ``labels`` (integer) and ``ff`` (fraction) are (z, y, x) arrays on one grid;
    ``spacing_mm`` is (x, y, z); ``names`` maps label value → segment name. Segments that resolve to the same
    muscle (e.g. peroneus longus and brevis) are scored together.
    """
    if not (heatmap.shape == labels.shape == ff.shape):
        raise ValueError(f"heatmap {heatmap.shape}, labels {labels.shape} and FF {ff.shape} must share one grid")
    groups: dict[str, list[int]] = {}
    for value, name in sorted(names.items()):
        groups.setdefault(canonical_muscle(name) or str(name), []).append(int(value))
    pixel_area_mm2 = float(spacing_mm[0] * spacing_mm[1])
    voxel_ml = pixel_area_mm2 * float(spacing_mm[2]) / 1000.0
    # One pass over the volume: voxel counts, highlighted counts and FF sums per (slice, label value).
    # Only labelled voxels matter, a small part of the volume.
    n_labels = int(labels.max()) + 1 if labels.size else 1
    flat = np.flatnonzero(labels)
    slice_of = flat // (labels.shape[1] * labels.shape[2])
    index = slice_of * n_labels + labels.ravel()[flat]
    size = labels.shape[0] * n_labels
    area_px = np.bincount(index, minlength=size).reshape(-1, n_labels)
    hot_px = np.bincount(index, weights=heatmap.ravel()[flat] >= params.threshold, minlength=size)
    hot_px = hot_px.reshape(-1, n_labels)
    ff_sum = np.bincount(index, weights=ff.ravel()[flat].astype(np.float64), minlength=size).reshape(-1, n_labels)
    order = list(MUSCLES) + sorted(k for k in groups if k not in MUSCLES)
    rows = []
    for muscle in order:
        values = [v for v in groups.get(muscle, []) if v < n_labels]
        area = area_px[:, values].sum(axis=1)
        hot = hot_px[:, values].sum(axis=1)
        present = area * pixel_area_mm2 >= max(params.min_area_mm2, 1e-9)
        highlighted = present & (hot >= params.min_overlap * area)
        m, n = int(present.sum()), int(highlighted.sum())
        voxels = int(area.sum())
        label_value = MUSCLE_LABELS.get(muscle, groups[muscle][0] if groups.get(muscle) else None)
        rows.append(MuscleScore(
            muscle=muscle, label_value=label_value, slices_present=m, slices_highlighted=n,
            texture_score=(n / m) if m else None,
            mean_ff=float(ff_sum[:, values].sum() / voxels * 100.0) if voxels else None,
            volume_ml=voxels * voxel_ml))
    return rows


def write_scores_csv(rows: list[MuscleScore], path: str | os.PathLike, params: ScoreParameters) -> None:
    """CSV with :data:`COLUMNS` then the parameters (threshold, min_overlap, min_area_mm2) on every row."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS + ("threshold", "min_overlap", "min_area_mm2"))
        for row in rows:
            writer.writerow([_cell(getattr(row, c)) for c in COLUMNS]
                            + [params.threshold, params.min_overlap, params.min_area_mm2])


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def scores_as_dicts(rows: list[MuscleScore]) -> list[dict]:
    return [asdict(r) for r in rows]
