"""Calibration: expected calibration error (ECE) of the scan probabilities on the test folds, before and after
temperature scaling.

A scan's probability is the mean of its slices' ``softmax(logits / T)``, as ``classify`` reports it. Two
temperatures are scored: the one in the network's model card (``calibration.temperature``, fitted by training on a
calibration split of the training subjects) when the card has one, and one fitted here for fold k on the held-out
predictions of the *other* folds' networks — scans of fold k's training subjects, so no test scan of fold k informs
its temperature.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import VARIANT_LABELS, md_table, num, pct, plt_module, summary, write_json
from .context import Context, md_header

from ...calibration import expected_calibration_error, fit_temperature, group_probabilities


def fold_outputs(ctx: Context, variant: str, fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slice logits (N, C), each slice's scan index (N,), each slice's true class (N,) of the fold's test scans."""
    c = ctx.cohort
    pred = ctx.predictions(variant, fold)
    logits = np.concatenate([pred[i][0] for i in pred])
    scans = np.concatenate([np.full(len(pred[i][0]), i) for i in pred])
    return logits, scans, c.classes[scans]


def scan_probabilities(logits: np.ndarray, scans: np.ndarray, labels: np.ndarray, temperature: float):
    """(scan probabilities (S, C), scan labels (S,)), scans in sorted order of their index."""
    ids, first = np.unique(scans, return_index=True)
    return group_probabilities(logits, scans, temperature), labels[first]


def variant_calibration(ctx: Context, variant: str) -> dict:
    """ECE before / with the card's temperature / with the cross-fitted temperature, per fold and pooled."""
    c = ctx.cohort
    bins = ctx.settings.ece_bins
    outputs = [fold_outputs(ctx, variant, k) for k in range(c.n_folds)]
    folds, pooled = [], {"none": [], "card": [], "cross": []}
    for k, (logits, scans, labels) in enumerate(outputs):
        others = [outputs[j] for j in range(c.n_folds) if j != k]
        cross_t = fit_temperature(np.concatenate([o[0] for o in others]), np.concatenate([o[2] for o in others]),
                                  np.concatenate([o[1] for o in others]))
        card_t = ((ctx.model(variant, k).card.get("calibration") or {}).get("temperature"))
        temps = {"none": 1.0, "card": card_t, "cross": cross_t}
        row = {"fold": k + 1, "temperature_card": card_t, "temperature_cross": cross_t}
        for name, t in temps.items():
            if t is None:
                row[f"ece_{name}"] = float("nan")
                continue
            p, y = scan_probabilities(logits, scans, labels, float(t))
            row[f"ece_{name}"] = expected_calibration_error(p, y, bins)
            pooled[name].append((p, y))
        row["n_scans"] = int(len(np.unique(scans)))
        folds.append(row)
    out = {"folds": folds}
    for name, parts in pooled.items():
        if len(parts) == c.n_folds:
            p, y = np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])
            out[f"pooled_{name}"] = {"ece": expected_calibration_error(p, y, bins), "n_scans": int(len(y)),
                                     "accuracy": float((p.argmax(axis=1) == y).mean()),
                                     "mean_confidence": float(p.max(axis=1).mean()),
                                     "reliability": reliability(p, y, bins)}
        else:
            out[f"pooled_{name}"] = None
        out[f"fold_ece_{name}"] = summary([f[f"ece_{name}"] for f in folds])
    return out


def reliability(p: np.ndarray, y: np.ndarray, n_bins: int) -> list[dict]:
    """Per equal-width confidence bin: count, mean confidence, accuracy (the reliability diagram)."""
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    return [{"bin": b, "n": int((bins == b).sum()),
             "confidence": float(conf[bins == b].mean()) if (bins == b).any() else None,
             "accuracy": float(correct[bins == b].mean()) if (bins == b).any() else None} for b in range(n_bins)]


def run_calibration(ctx: Context, out: Path) -> dict:
    """ECE of every network of --networks on the test folds, before and after temperature scaling."""
    s = ctx.settings
    results = {v: variant_calibration(ctx, v) for v in s.networks}

    def pooled(r, name):
        return "—" if r[f"pooled_{name}"] is None else num(r[f"pooled_{name}"]["ece"])

    lines = md_header(ctx, "Calibration — expected calibration error of the scan probabilities")
    lines += [f"Scan probability = mean of the slices' softmax(logits / T), as `classify` reports it; ECE over "
              f"{s.ece_bins} equal-width confidence bins, on the test scans of every fold pooled (target ≤ 0.08), "
              "and the mean of the per-fold ECEs. T = 1: uncalibrated. Card T: the temperature in each fold "
              "network's model card (fitted on subjects held out of its training; — when the card has none). "
              "Cross-fitted T: fitted for fold k on the other folds' held-out predictions (fold k's training "
              "subjects).", "",
              md_table(["Network", "scans", "accuracy (%)", "ECE, T = 1", "ECE, card T", "ECE, cross-fitted T",
                        "fold mean ECE (T = 1 / card / cross)", "temperatures (card; cross)"],
                       [[VARIANT_LABELS.get(v, v), r["pooled_none"]["n_scans"], pct(r["pooled_none"]["accuracy"]),
                         pooled(r, "none"), pooled(r, "card"), pooled(r, "cross"),
                         " / ".join(num(r[f"fold_ece_{n}"]["mean"]) for n in ("none", "card", "cross")),
                         ", ".join(num(f["temperature_card"], 2) for f in r["folds"]) + "; "
                         + ", ".join(num(f["temperature_cross"], 2) for f in r["folds"])]
                        for v, r in results.items()]), ""]
    (out / "calibration.md").write_text("\n".join(lines) + "\n")
    write_json(out / "calibration.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "results": results,
                                          "models": ctx.provenance["models"]})
    _reliability_figure(out / "calibration.png", results, ctx)
    return results


def _reliability_figure(path: Path, results: dict, ctx: Context) -> None:
    plt = plt_module()
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.8), squeeze=False)
    for ax, (variant, r) in zip(axes[0], results.items()):
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8)
        for name, style in (("none", "o-"), ("card", "s-"), ("cross", "^-")):
            pooled = r[f"pooled_{name}"]
            if pooled is None:
                continue
            pts = [(b["confidence"], b["accuracy"]) for b in pooled["reliability"] if b["n"]]
            ax.plot([a for a, _ in pts], [b for _, b in pts], style, ms=4,
                    label=f"T: {name} (ECE {num(pooled['ece'])})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(VARIANT_LABELS.get(variant, variant) + (" (phantom)" if ctx.label == "phantom" else ""),
                     fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
