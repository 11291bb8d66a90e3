"""Accuracy of a model on a set of scans, through the inference path itself (``classify_volume``).

Scan level: the verdict (arg-max of the mean of the slice probabilities) against the scan's class. Slice level:
the arg-max of every slice's probabilities against its scan's class. Both as in the paper's Tables 1-2, which
report test accuracy of held-out subjects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..constants import CLASSES, SEVERITY_BANDS
from ..inference import classify_volume
from ..modelfile import Model
from .dataset import ScanItem


@dataclass
class Evaluation:
    rows: list  # one dict per scan
    scan_accuracy: float
    slice_accuracy: float
    n_scans: int
    n_slices: int
    confusion: list  # [truth][prediction] counts, classes in CLASSES order, scan level
    slice_confusion: list

    def as_dict(self) -> dict:
        return {"scan_accuracy": self.scan_accuracy, "slice_accuracy": self.slice_accuracy,
                "n_scans": self.n_scans, "n_slices": self.n_slices, "classes": list(CLASSES),
                "confusion_scan": self.confusion, "confusion_slice": self.slice_confusion,
                "per_class_scan_accuracy": per_class_accuracy(self.confusion), "scans": self.rows}


def per_class_accuracy(confusion: list) -> dict:
    out = {}
    for i, c in enumerate(CLASSES):
        total = sum(confusion[i])
        out[c] = round(confusion[i][i] / total, 4) if total else None
    return out


def severity_band(class_name: str, severity: float | None) -> str | None:
    """The band of a scan's severity: 'normal' for the normal class, None when the cohort records none."""
    if class_name == "normal":
        return "normal"
    if severity is None or not math.isfinite(severity):
        return None
    return next(name for edge, name in SEVERITY_BANDS if severity < edge)


def severity_bands() -> list[str]:
    """Every band :func:`severity_band` gives, mildest first."""
    return ["normal"] + [name for _, name in SEVERITY_BANDS]


def accuracy_by(rows: Sequence[dict], key: str, order: Sequence[str] | None = None) -> dict:
    """Scan accuracy of the rows grouped by ``row[key]`` (rows without a value left out), groups in ``order``
    (values not in it after, sorted), else sorted: {value: {"scans", "correct", "accuracy", "truth": {class: count},
    "verdicts": {class: count}}}."""
    out = {}
    for row in rows:
        value = row.get(key)
        if value in (None, ""):
            continue
        g = out.setdefault(value, {"scans": 0, "correct": 0, "truth": {c: 0 for c in CLASSES},
                                   "verdicts": {c: 0 for c in CLASSES}})
        g["scans"] += 1
        g["correct"] += int(bool(row["correct"]))
        g["truth"][row["truth"]] += 1
        g["verdicts"][row["verdict"]] += 1
    for g in out.values():
        g["accuracy"] = round(g["correct"] / g["scans"], 4)
    rank = {v: i for i, v in enumerate(order or ())}
    return {v: out[v] for v in sorted(out, key=lambda v: (rank.get(v, len(rank)), str(v)))}


def markdown_breakdown(groups: dict, title: str) -> str:
    """A table of :func:`accuracy_by`'s groups: scans, accuracy, and what they were called."""
    lines = [f"| {title} | scans | accuracy (%) | " + " | ".join(f"called {c}" for c in CLASSES) + " |",
             "|---|---:|---:|" + "---:|" * len(CLASSES)]
    for name, g in groups.items():
        lines.append(f"| {name} | {g['scans']} | {100 * g['accuracy']:.1f} | "
                     + " | ".join(str(g["verdicts"][c]) for c in CLASSES) + " |")
    return "\n".join(lines)


def evaluate_items(model: Model, items: Sequence[ScanItem], device="cpu", batch_size: int = 16,
                   progress: Callable[[int, int], None] | None = None, precision: str = "auto") -> Evaluation:
    """Classify every scan of ``items`` with ``model`` (network in ``precision``) and count the hits."""
    rows = []
    conf = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    sconf = np.zeros_like(conf)
    for i, item in enumerate(items):
        result = classify_volume(item.load(), model, device=device, batch_size=batch_size, precision=precision)
        truth = CLASSES.index(item.class_name)
        pred = int(np.argmax(result.probabilities))
        slice_pred = result.slice_probabilities.argmax(axis=1)
        conf[truth, pred] += 1
        for p in slice_pred:
            sconf[truth, int(p)] += 1
        rows.append({"subject": item.subject, "scan": item.scan, "truth": item.class_name,
                     "verdict": CLASSES[pred], "correct": pred == truth,
                     "probabilities": {c: round(float(p), 4) for c, p in zip(CLASSES, result.probabilities)},
                     "unfamiliar": result.verdict_leg.unfamiliar if result.legs else None,
                     "n_slices": int(len(slice_pred)),
                     "slices_correct": int((slice_pred == truth).sum())})
        if progress is not None:
            progress(i + 1, len(items))
    n_scans, n_slices = int(conf.sum()), int(sconf.sum())
    return Evaluation(rows=rows, scan_accuracy=round(float(np.trace(conf)) / max(n_scans, 1), 4),
                      slice_accuracy=round(float(np.trace(sconf)) / max(n_slices, 1), 4),
                      n_scans=n_scans, n_slices=n_slices, confusion=conf.tolist(), slice_confusion=sconf.tolist())


def markdown_confusion(confusion: list, title: str = "truth \\ predicted") -> str:
    lines = [f"| {title} | " + " | ".join(CLASSES) + " |", "|---|" + "---:|" * len(CLASSES)]
    for c, row in zip(CLASSES, confusion):
        lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)
