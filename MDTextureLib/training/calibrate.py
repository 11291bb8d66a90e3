"""After training: temperature and unfamiliar-input statistics from a calibration split of the training subjects.

``mdtexture train`` holds out a share of the training *subjects* (``--calibration-share``, default 20 %, drawn per
class so every class with two or more subjects gives at least one) before training. The network never sees them;
afterwards their scans' logits fit the temperature (:func:`MDTextureLib.calibration.fit_temperature`, scan-level:
the NLL of each scan's mean slice probability, as inference reports it) and their pooled features set the
unfamiliar threshold, while the class means and covariance of the unfamiliar score come from the scans the network
was trained on. Everything lands in the model: card keys ``calibration`` and ``unfamiliar``, arrays on
``Model.unfamiliar`` (saved under ``unfamiliar.`` in the safetensors file).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import calibration as cal
from ..constants import CLASSES
from ..errors import InputError
from ..modelfile import Model
from ..precision import forward_with_maps, inference_net
from .dataset import SliceDataset

#: Default share of the training subjects held out for calibration.
CALIBRATION_SHARE = 0.2


def calibration_split(items, share: float, seed: int) -> tuple[list[int], list[int]]:
    """(training scan indices, calibration scan indices), split by subject and drawn per class: of a class's n
    subjects, round(share · n) but at least 1 and at most n − 1 go to calibration (none for a one-subject class).
    Raises InputError when the calibration scans would not cover two classes."""
    if not 0 < share < 1:
        raise InputError(f"--calibration-share must lie in (0, 1) (0 disables it), got {share:g}")
    rng = np.random.default_rng(seed)
    held = set()
    for c in CLASSES:
        subjects = sorted({it.subject for it in items if it.class_name == c})
        if len(subjects) < 2:
            continue
        k = min(len(subjects) - 1, max(1, int(round(share * len(subjects)))))
        held.update(rng.permutation(subjects)[:k].tolist())
    calib = [i for i, it in enumerate(items) if it.subject in held]
    if len({items[i].class_name for i in calib}) < 2:
        raise InputError("too few subjects per class to hold out a calibration split covering two classes; "
                         "give more subjects or --calibration-share 0 (no calibrated probabilities, no "
                         "unfamiliar-input score)")
    return [i for i in range(len(items)) if i not in set(calib)], calib


def scan_outputs(model: Model, dataset: SliceDataset, device="cpu", precision: str = "fp32",
                 batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Slice logits (N, C), each slice's scan index (N,), each scan's pooled feature vector — the mean of its
    slices' (S, D) — and each scan's label (S,), from the dataset's stacks normalised as the card says."""
    net = inference_net(model.net, torch.device(device))
    mean, std = model.normalisation
    logits, pooled = [], []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(dataset)))
            x = ((dataset.stacks(idx).to(device) - mean) / std).contiguous(memory_format=torch.channels_last)
            mask = dataset.masks(idx).to(device) if getattr(model.net, "pooling", "image") == "leg" else None
            lg, _, pl = forward_with_maps(net, x, precision, mask)
            logits.append(lg.cpu().numpy())
            pooled.append(pl.cpu().numpy())
    logits, pooled = np.concatenate(logits), np.concatenate(pooled)
    scan_of = dataset.scan_of.numpy()
    n_scans = len(dataset.items)
    per_scan = np.stack([pooled[scan_of == i].mean(axis=0) for i in range(n_scans)])
    labels = np.array([CLASSES.index(it.class_name) for it in dataset.items])
    return logits, scan_of, per_scan, labels


def calibrate_model(model: Model, train_set: SliceDataset, calib_set: SliceDataset, device="cpu",
                    precision: str = "fp32", percentile: float = cal.UNFAMILIAR_PERCENTILE) -> dict:
    """Fit the temperature on ``calib_set`` and the unfamiliar statistics on ``train_set`` (threshold from
    ``calib_set``); write the card keys and ``model.unfamiliar``. Returns the card's two entries."""
    logits, scan_of, calib_features, calib_labels = scan_outputs(model, calib_set, device, precision)
    slice_labels = calib_labels[scan_of]
    temperature = cal.fit_temperature(logits, slice_labels, scan_of)
    calibration = {**cal.calibration_summary(logits, slice_labels, scan_of, temperature),
                   "level": "scan: NLL of each calibration scan's mean over slices of softmax(logits / T)",
                   "split": "subjects held out of training (calibration split)",
                   "subjects": len(calib_set.subjects), "subject_ids": calib_set.subjects}
    _, _, train_features, train_labels = scan_outputs(model, train_set, device, precision)
    stats = cal.fit_unfamiliar(train_features, train_labels, len(CLASSES))
    calib_scores = cal.unfamiliar_scores(calib_features, stats)
    train_scores = cal.unfamiliar_scores(train_features, stats)
    unfamiliar = {"method": cal.UNFAMILIAR_METHOD,
                  "threshold": round(cal.unfamiliar_threshold(calib_scores, percentile), 6),
                  "percentile": percentile,
                  "threshold_rule": f"{percentile:g}th percentile (linear interpolation) of the calibration "
                                    "scans' scores",
                  "n_scans": int(len(calib_scores)), "n_training_scans": int(len(train_scores)),
                  "feature_dim": int(train_features.shape[1]), "shrinkage": round(stats["shrinkage"], 6),
                  "calibration_scores": {"median": round(float(np.median(calib_scores)), 4),
                                         "max": round(float(calib_scores.max()), 4)},
                  "training_scores": {"median": round(float(np.median(train_scores)), 4),
                                      "max": round(float(train_scores.max()), 4)},
                  "arrays": "unfamiliar.means, unfamiliar.precision, unfamiliar.present in the weights file"}
    model.card["calibration"] = calibration
    model.card["unfamiliar"] = unfamiliar
    model.unfamiliar = {k: stats[k] for k in ("means", "precision", "present")}
    return {"calibration": calibration, "unfamiliar": unfamiliar}
