"""The training set: every axial slice of every scan as a 3-slice fat-fraction stack on the model's window.

Each scan is read and resampled exactly as :func:`MDTextureLib.inference.classify_volume` does it (same
``StackGeometry``: leg centred by the body-mask centroid, ``pixel_mm`` and ``size_px`` of the model card, bilinear,
zero outside the image), once, and kept in memory as raw fat fraction, with the body mask on the same window
(``stacks.mask_window``; kept as uint8, 0-255, a quarter of the FF's memory) for leg-pooled variants. A batch is
then an index gather (slices k−1, k, k+1 of the same scan) — no file is touched during training. Normalisation
``(x − mean) / std`` is applied after augmentation, because the intensity augmentation scales the fat fraction itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from ..constants import CLASSES
from ..errors import InputError
from ..io import DixonSeries, load_dixon
from ..stacks import mask_window, resample_slices, stack_indices, window_for


@dataclass
class ScanItem:
    """One scan to train or test on: who, which class, and its fat-fraction series (or the file to read)."""

    subject: str
    scan: str
    class_name: str
    series: DixonSeries | None = None
    ff_path: str | None = None

    def load(self) -> DixonSeries:
        if self.series is not None:
            return self.series
        if not self.ff_path:
            raise InputError(f"scan {self.scan} of subject {self.subject} has no fat-fraction image")
        return load_dixon(ff=self.ff_path)


def record_ff_path(record) -> str:
    """The fat-fraction file of a cohort record (``ScanRecord``)."""
    for attr in ("ff", "ff_path"):
        value = getattr(record, attr, None)
        if value:
            return str(value)
    paths = getattr(record, "paths", None)
    if isinstance(paths, dict) and paths.get("ff"):
        return str(paths["ff"])
    folder = getattr(record, "folder", None)
    if folder:
        for ext in (".nrrd", ".nii.gz", ".nii", ".mha"):
            candidate = Path(folder) / f"ff{ext}"
            if candidate.exists():
                return str(candidate)
    raise InputError(f"cohort record {getattr(record, 'scan', record)!r} names no fat-fraction image")


def items_from_records(records: Sequence) -> list[ScanItem]:
    """Cohort records → scan items (files are read later, once, by :meth:`SliceDataset.build`)."""
    items = []
    for r in records:
        if r.class_name not in CLASSES:
            raise InputError(f"cohort record {r.scan}: unknown class {r.class_name!r}; expected one of "
                             f"{', '.join(CLASSES)}")
        folder = getattr(r, "folder", None)
        scan = Path(folder).name if folder else f"{r.subject}_{r.scan}"
        items.append(ScanItem(subject=str(r.subject), scan=scan, class_name=r.class_name,
                              ff_path=record_ff_path(r)))
    return items


def window_slices(series: DixonSeries, pixel_mm: float, size_px: int) -> torch.Tensor:
    """(Z, S, S) raw fat fraction on the model window — the same resampling as ``classify_volume``."""
    geometry = window_for(series, pixel_mm, size_px)
    with torch.no_grad():
        return resample_slices(series.ff, geometry).contiguous()


def window_body(series: DixonSeries, pixel_mm: float, size_px: int) -> torch.Tensor:
    """(Z, S, S) uint8 body mask on the model window (0-255 for 0-1), the same geometry as ``window_slices``."""
    geometry = window_for(series, pixel_mm, size_px)
    with torch.no_grad():
        return (mask_window(series.body_mask(), geometry)[:, 0] * 255).round().to(torch.uint8).contiguous()


class SliceDataset:
    """All slices of a set of scans, cached in memory. ``stacks(idx)`` gathers (B, 3, S, S) raw FF stacks."""

    def __init__(self, items: Sequence[ScanItem], slices: Sequence[torch.Tensor], pixel_mm: float, size_px: int,
                 bodies: Sequence[torch.Tensor] | None = None):
        if not items:
            raise InputError("no scans to train on")
        self.items = list(items)
        self.pixel_mm, self.size_px = float(pixel_mm), int(size_px)
        self.volume = torch.cat(list(slices)).float()  # (N, S, S)
        # (N, S, S) uint8 body mask on the window, or None (datasets built from bare slices: no leg pooling)
        self.body = torch.cat(list(bodies)).to(torch.uint8) if bodies is not None else None
        if self.body is not None and self.body.shape != self.volume.shape:
            raise ValueError(f"body masks {tuple(self.body.shape)} do not match the slices {tuple(self.volume.shape)}")
        neighbours, labels, scan_of, start = [], [], [], 0
        for i, (item, s) in enumerate(zip(self.items, slices)):
            n = int(s.shape[0])
            neighbours.append(torch.as_tensor(stack_indices(n)) + start)
            labels += [CLASSES.index(item.class_name)] * n
            scan_of += [i] * n
            start += n
        self.neighbours = torch.cat(neighbours)  # (N, 3) global slice indices k-1, k, k+1 within one scan
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.scan_of = torch.tensor(scan_of, dtype=torch.long)

    @classmethod
    def build(cls, items: Iterable[ScanItem], pixel_mm: float, size_px: int,
              progress: Callable[[int, int], None] | None = None) -> "SliceDataset":
        items = list(items)
        slices, bodies = [], []
        for i, item in enumerate(items):
            series = item.load()
            slices.append(window_slices(series, pixel_mm, size_px))
            bodies.append(window_body(series, pixel_mm, size_px))
            if progress is not None:
                progress(i + 1, len(items))
        # Keep only the metadata: the resampled slices are all training needs (and what DDP children receive).
        return cls([replace(it, series=None) for it in items], slices, pixel_mm, size_px, bodies)

    def subset(self, scan_indices: Sequence[int]) -> "SliceDataset":
        """The scans ``scan_indices`` (positions in ``items``) as a dataset of their own, without re-reading files."""
        scan_indices = [int(i) for i in scan_indices]
        slices = [self.volume[self.scan_of == i] for i in scan_indices]
        bodies = None if self.body is None else [self.body[self.scan_of == i] for i in scan_indices]
        return SliceDataset([self.items[i] for i in scan_indices], slices, self.pixel_mm, self.size_px, bodies)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def stacks(self, idx: torch.Tensor) -> torch.Tensor:
        """Raw fat-fraction stacks (B, 3, S, S) of the slices ``idx``."""
        return self.volume[self.neighbours[idx]]

    def masks(self, idx: torch.Tensor) -> torch.Tensor:
        """Body masks (B, 1, S, S) in [0, 1] beside the stacks ``idx`` (slice k's own mask, as at inference)."""
        if self.body is None:
            raise InputError("this dataset was built without body masks; a leg-pooled variant needs them")
        return self.body[idx][:, None].float() / 255.0

    @property
    def subjects(self) -> list[str]:
        return sorted({it.subject for it in self.items})

    def class_counts(self) -> dict:
        counts = torch.bincount(self.labels, minlength=len(CLASSES)).tolist()
        scans = [sum(it.class_name == c for it in self.items) for c in CLASSES]
        return {c: {"scans": s, "slices": n} for c, s, n in zip(CLASSES, scans, counts)}

    def describe(self) -> dict:
        return {"subjects": len(self.subjects), "scans": len(self.items), "slices": len(self),
                "classes": self.class_counts(), "pixel_mm": self.pixel_mm, "size_px": self.size_px,
                "memory_mb": round(self.volume.numel() * 4 / 2**20, 1)}


def resolve_cohort(path: str | os.PathLike) -> Path:
    """A cohort given as its CSV or as the folder holding ``cohort.csv``."""
    p = Path(path)
    if p.is_dir():
        p = p / "cohort.csv"
    if not p.exists():
        raise InputError(f"cohort not found: {p} (give cohort.csv or the folder holding it; make one with "
                         "`mdtexture phantom --out DIR`)")
    return p


def load_records(path: str | os.PathLike) -> list:
    from ..cohort import read_cohort

    records = list(read_cohort(resolve_cohort(path)))
    if not records:
        raise InputError(f"cohort {path} lists no scans")
    return records


def labels_array(items: Sequence[ScanItem]) -> np.ndarray:
    return np.array([CLASSES.index(it.class_name) for it in items])
