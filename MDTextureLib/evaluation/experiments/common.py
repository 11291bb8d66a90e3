"""Shared pieces of the experiments: the paper's numbers, display names, JSON/markdown helpers."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ...scores import ScoreParameters

#: Paper Table 1 (test accuracy %, 4-fold CV: mean, max, min). The caption says "testing error" but the values
#: and the text (§4.1) are accuracies.
PAPER_TABLE1 = {
    "MFF (kNN)": (48.6, 55.4, 39.6), "STP (kNN)": (50.1, 57.4, 45.0), "K-Means (SVM)": (53.2, 58.4, 47.3),
    "STP (SVM)": (54.9, 61.8, 45.6), "VGG16-FC7 (SVM)": (80.6, 86.7, 54.7), "ResNet18-GAP (SVM)": (83.7, 93.2, 76.5),
    "VGG16": (84.1, 91.2, 76.5), "ResNet50": (88.6, 91.6, 83.5), "ResNet34": (89.2, 93.9, 84.6),
    "ResNet18": (90.7, 94.2, 86.1),
}
#: Paper Table 2 (test accuracy %, Fold-1..4 and mean).
PAPER_TABLE2 = {
    "resnet28": (88.7, 94.5, 87.8, 75.6, 86.6), "icam28": (88.4, 90.3, 90.3, 77.9, 86.7),
    "resnet14": (83.2, 94.5, 88.4, 80.8, 86.7), "icam14": (93.3, 96.8, 93.4, 84.6, 91.7),
}
#: Paper Table 3 class means (texture scores, TA..MG).
PAPER_TABLE3_MEANS = {
    "DMD": (0.222, 0.216, 0.303, 0.175, 0.642, 0.728, 0.496),
    "CMD": (0.074, 0.151, 0.591, 0.316, 0.499, 0.183, 0.226),
}
#: Paper §4.2: neurons (of 512) that separate DMD from CMD better than the soleus MFF.
PAPER_NEURONS = {"l2": 91, "chi2": 118, "of": 512}

VARIANT_LABELS = {"resnet7": "ResNet18 (CAM, 7²)", "icam14": "ICAM-14²", "icam28": "ICAM-28²",
                  "resnet14": "ResNet-14²", "resnet28": "ResNet-28²", "icam28-leg": "ICAM-28² leg-pooled",
                  "icam14-leg": "ICAM-14² leg-pooled", "icam56": "ICAM-56²", "icam56-leg": "ICAM-56² leg-pooled",
                  "resnet28-leg": "ResNet-28² leg-pooled"}
TABLE2_VARIANTS = ("resnet28", "icam28", "resnet14", "icam14")
RANDOMISATION_VARIANTS = ("icam28", "resnet7")
#: The class-specific muscles the localisation table names (issue 12): peroneus in DMD, tibialis posterior in CMD.
NAMED_SPECIFIC = {"DMD": ("Per",), "CMD": ("TP",)}
SPECIFIC_MARGIN = 0.10  # involved-fraction difference from which a muscle counts as class-specific


# ------------------------------------------------------------------------------------------------- utilities
def jsonable(obj):
    """numpy / torch / Path / NaN → plain JSON (NaN and inf become null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return round(v, 6) if math.isfinite(v) else None
    if isinstance(obj, Path):
        return obj.name
    if isinstance(obj, ScoreParameters):
        return asdict(obj)
    return obj


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(jsonable(obj), indent=1) + "\n")


def md_table(header: list, rows: list) -> str:
    out = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def pct(v) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def num(v, digits: int = 3) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def summary(values) -> dict:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"mean": float("nan"), "max": float("nan"), "min": float("nan"), "sd": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "max": float(v.max()), "min": float(v.min()),
            "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def plt_module():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cohort_label(data_path) -> str:
    """'phantom' when the cohort was written by the MDTexture phantom generator, else 'cohort'."""
    p = Path(data_path)
    meta = (p if p.is_dir() else p.parent) / "cohort.json"
    try:
        if "phantom" in json.loads(meta.read_text(encoding="utf-8")).get("generator", "").lower():
            return "phantom"
    except (OSError, ValueError, AttributeError):
        pass
    return "cohort"


