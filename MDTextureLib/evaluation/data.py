"""The cohort as the experiments see it: records, subject-level folds, every scan on the model window once, and
native-grid arrays (labels, involvement, FF) read on demand.

The model window is computed exactly as training and inference compute it (``training.dataset.window_slices``,
the same ``StackGeometry`` as ``classify_volume``), so a classical feature, a network input and a heatmap all refer
to the same pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..constants import CLASSES, MUSCLE_LABELS
from ..errors import InputError
from ..io import DixonSeries, load_dixon, read_image
from ..labels import read_labels
from ..modelfile import DEFAULT_NORMALISATION, DEFAULT_PIXEL_MM, DEFAULT_SIZE_PX
from ..stacks import StackGeometry, window_for

#: Muscles whose ROIs feed the classical texture methods (paper §3.5: soleus, lateral and medial gastrocnemius).
ROI_MUSCLES = ("Sol", "LG", "MG")
#: A slice is a key frame (an image of the classification experiments) when it shows at least this much soleus.
KEYFRAME_MIN_SOLEUS_MM2 = 100.0


def record_path(record, key: str, required: bool = True) -> str | None:
    """The file ``key`` (ff, water, fat, muscles, involvement, truth) of a cohort record, whatever way the record
    stores it: an attribute ``key`` / ``key_path``, a ``paths`` dict, or a conventionally named file in ``folder``."""
    for attr in (key, f"{key}_path"):
        value = getattr(record, attr, None)
        if isinstance(value, (str, Path)) and str(value):
            return str(value)
    paths = getattr(record, "paths", None)
    if isinstance(paths, dict) and paths.get(key):
        return str(paths[key])
    folder = getattr(record, "folder", None)
    if folder:
        stems = {"muscles": ("muscles.seg.nrrd", "muscles.nrrd", "labels.nrrd"), "truth": ("truth.json",)}
        for name in stems.get(key, ()) + tuple(f"{key}{ext}" for ext in (".nrrd", ".nii.gz", ".nii", ".mha")):
            candidate = Path(folder) / name
            if candidate.exists():
                return str(candidate)
    if required:
        raise InputError(f"cohort record {getattr(record, 'scan', record)!r} has no {key} file")
    return None


def record_text(record, name: str, default: str = "") -> str:
    """A per-scan cohort.csv column that may be a ``ScanRecord`` field (``pattern_family``) or only an extra column
    (``body_cues``): the field when set, else ``record.extra[name]``, else ``default``."""
    value = getattr(record, name, None)
    if value is None or str(value).strip() == "":
        value = (getattr(record, "extra", None) or {}).get(name)
    return str(value).strip() if value is not None and str(value).strip() else default


def fold_pairs(folds, n_records: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds as [(train_indices, test_indices)], from that form, from [test_indices] or from one fold id per scan."""
    folds = list(folds)
    if len(folds) == n_records and all(np.ndim(f) == 0 for f in folds):
        ids = np.asarray(folds, dtype=int)
        return [(np.flatnonzero(ids != k), np.flatnonzero(ids == k)) for k in sorted(set(ids.tolist()))]
    out = []
    for f in folds:
        if isinstance(f, tuple) and len(f) == 2:
            out.append((np.asarray(f[0], dtype=int), np.asarray(f[1], dtype=int)))
        else:
            test = np.asarray(f, dtype=int)
            out.append((np.setdiff1d(np.arange(n_records), test), test))
    return out


def resample_labels(labels_zyx: np.ndarray, geometry: StackGeometry) -> np.ndarray:
    """An integer volume on the model window (nearest neighbour, same affine as the images), (Z, S, S) uint8."""
    vol = torch.as_tensor(np.asarray(labels_zyx, dtype=np.float32))
    z = vol.shape[0]
    theta = geometry.theta_native_from_model().expand(z, 2, 3)
    grid = F.affine_grid(theta, [z, 1, geometry.size_px, geometry.size_px], align_corners=False)
    out = F.grid_sample(vol[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]
    return out.round().to(torch.uint8).numpy()


@dataclass
class NativeScan:
    """One scan on its own voxel grid: FF (fraction), muscle labels, involvement mask, body mask, truth."""

    series: DixonSeries
    labels: np.ndarray
    involvement: np.ndarray
    truth: dict
    geometry: StackGeometry

    @property
    def body(self) -> np.ndarray:
        return self.series.body_mask()

    @property
    def muscles(self) -> np.ndarray:
        return self.labels > 0


class CohortData:
    """Records, folds and every scan's model-window FF (shared with training: one ``SliceDataset``)."""

    def __init__(self, records: Sequence, folds, pixel_mm: float = DEFAULT_PIXEL_MM, size_px: int = DEFAULT_SIZE_PX,
                 normalisation: tuple = (DEFAULT_NORMALISATION["mean"], DEFAULT_NORMALISATION["std"]),
                 progress=None):
        from ..training.dataset import SliceDataset, items_from_records

        self.records = list(records)
        if not self.records:
            raise InputError("the cohort lists no scans")
        self.items = items_from_records(self.records)
        self.folds = fold_pairs(folds, len(self.records))
        self.pixel_mm, self.size_px = float(pixel_mm), int(size_px)
        self.normalisation = tuple(float(v) for v in normalisation)
        self.dataset = SliceDataset.build(self.items, self.pixel_mm, self.size_px, progress=progress)
        self.classes = np.array([CLASSES.index(r.class_name) for r in self.records])
        self.subjects = np.array([str(r.subject) for r in self.records])
        self._labels_model: dict[int, np.ndarray] = {}
        self._body_model: dict[int, torch.Tensor] = {}
        self._geometry: dict[int, StackGeometry] = {}

    @classmethod
    def from_path(cls, path, n_folds: int = 4, seed: int = 0, **kw) -> "CohortData":
        from ..cohort import subject_folds
        from ..training.dataset import load_records

        records = load_records(path)
        return cls(records, subject_folds(records, n_folds=n_folds, seed=seed), **kw)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    def name(self, i: int) -> str:
        r = self.records[i]
        return f"{r.subject}/{r.scan}" if str(r.scan) != str(r.subject) else str(r.scan)

    def slices(self, i: int) -> torch.Tensor:
        """Raw FF of scan ``i`` on the model window, (Z, S, S)."""
        return self.dataset.volume[self.dataset.scan_of == i]

    def stacks(self, i: int) -> torch.Tensor:
        """Normalised network input of scan ``i``: (Z, 3, S, S), as ``classify_volume`` builds it."""
        mean, std = self.normalisation
        idx = torch.nonzero(self.dataset.scan_of == i)[:, 0]
        return (self.dataset.stacks(idx) - mean) / std

    def masks(self, i: int) -> torch.Tensor:
        """Body masks beside the stacks of scan ``i``: (Z, 1, S, S) in [0, 1], as ``classify_volume`` builds them
        (what a leg-pooled network needs with ``stacks(i)``)."""
        idx = torch.nonzero(self.dataset.scan_of == i)[:, 0]
        return self.dataset.masks(idx)

    def series(self, i: int) -> DixonSeries:
        return load_dixon(ff=record_path(self.records[i], "ff"))

    def geometry(self, i: int, series: DixonSeries | None = None) -> StackGeometry:
        if i not in self._geometry:
            s = series if series is not None else self.series(i)
            self._geometry[i] = window_for(s, self.pixel_mm, self.size_px)
        return self._geometry[i]

    def native(self, i: int) -> NativeScan:
        """FF, labels, involvement and truth of scan ``i`` on its native grid (read now, not cached)."""
        rec = self.records[i]
        series = self.series(i)
        labels = read_labels(record_path(rec, "muscles"), series.grid).labels
        inv_path = record_path(rec, "involvement")
        import SimpleITK as sitk

        involvement = sitk.GetArrayFromImage(read_image(inv_path, "involvement mask")) > 0
        if involvement.shape != series.ff.shape:
            raise InputError(f"involvement mask of {self.name(i)} is {involvement.shape}, FF is {series.ff.shape}")
        truth_path = record_path(rec, "truth", required=False)
        truth = json.loads(Path(truth_path).read_text(encoding="utf-8")) if truth_path else {}
        return NativeScan(series=series, labels=labels, involvement=involvement, truth=truth,
                          geometry=self.geometry(i, series))

    def labels_model(self, i: int) -> np.ndarray:
        """Muscle labels of scan ``i`` on the model window (nearest neighbour), (Z, S, S) uint8; cached."""
        if i not in self._labels_model:
            series = self.series(i)
            labels = read_labels(record_path(self.records[i], "muscles"), series.grid).labels
            self._labels_model[i] = resample_labels(labels, self.geometry(i, series))
        return self._labels_model[i]

    def body_model(self, i: int) -> torch.Tensor:
        """Body (leg) mask of scan ``i`` on the model window, (Z, 1, S, S) float in {0, 1}: the ``mask`` that
        leg-pooled networks take beside their input (nearest neighbour, the images' affine); cached."""
        if i not in self._body_model:
            series = self.series(i)
            body = resample_labels(series.body_mask().astype(np.uint8), self.geometry(i, series))
            self._body_model[i] = torch.from_numpy(body[:, None].astype(np.float32))
        return self._body_model[i]

    def pattern_family(self, i: int) -> str:
        """The scan's disease-pattern family (cohort.csv ``pattern_family``; "" when the cohort has none)."""
        return record_text(self.records[i], "pattern_family")

    def keyframes(self, i: int, min_soleus_mm2: float = KEYFRAME_MIN_SOLEUS_MM2) -> np.ndarray:
        """Slices of scan ``i`` that show the soleus (the images every Table-1 method is tested on)."""
        lab = self.labels_model(i)
        area = (lab == MUSCLE_LABELS["Sol"]).sum(axis=(1, 2)) * self.pixel_mm ** 2
        return np.flatnonzero(area >= min_soleus_mm2)
