"""Subject-level k-fold cross-validation (paper §3.1: "we randomly split MRI scans at subject level and run
experiments under 4-fold cross-validation protocol").

For each fold one model is trained on the training subjects' scans and tested on the held-out subjects' scans
(no subject on both sides); per-fold, mean, max and min test accuracy are reported at scan level (verdict of the
volume) and at slice level, as the paper's Tables 1-2 do, as a markdown table and a JSON file.

With ``calibration_share`` > 0 each fold holds a calibration split out of its *training* subjects
(:func:`.calibrate.calibration_split`), trains on the rest and fits the temperature and unfamiliar statistics on
it; the fold then also reports the expected calibration error of its test scans (scan level, calibrated
probabilities) and the share of its test scans flagged unfamiliar.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from .. import calibration as cal
from ..constants import CLASSES
from ..errors import InputError
from .dataset import ScanItem, SliceDataset
from .evaluate import evaluate_items
from .loop import TrainConfig, save_trained, train

#: The paper's Table 2 (4-fold CV, mean test accuracy %), for side-by-side tables. Not a target for phantoms.
PAPER_TABLE2 = {"resnet28": 86.6, "icam28": 86.7, "resnet14": 86.7, "icam14": 91.7}
#: The paper's Table 1 row for the full ResNet18 (= our resnet7): mean, max, min.
PAPER_TABLE1_RESNET18 = (90.7, 94.2, 86.1)


def check_folds(items: Sequence[ScanItem], folds: Sequence[tuple]) -> None:
    """Raise AssertionError-free InputError if a subject sits in both train and test of a fold, or a scan is never
    tested exactly once."""
    tested = []
    for k, (tr, te) in enumerate(folds, start=1):
        a = {items[i].subject for i in tr}
        b = {items[i].subject for i in te}
        if a & b:
            raise InputError(f"fold {k}: subjects {sorted(a & b)[:3]} are in both training and test sets")
        if not len(te):
            raise InputError(f"fold {k} has no test scans (too few subjects for the number of folds)")
        tested += list(te)
    if sorted(tested) != list(range(len(items))):
        raise InputError("the folds do not test every scan exactly once")


def summarise(values: Sequence[float]) -> dict:
    vals = [float(v) for v in values]
    return {"mean": round(sum(vals) / len(vals), 4), "max": round(max(vals), 4), "min": round(min(vals), 4)}


def cross_validate(items: Sequence[ScanItem], folds: Sequence[tuple], configs: Sequence[TrainConfig],
                   dataset: SliceDataset | None = None, device="cpu", progress: bool = True,
                   models_dir: Path | None = None, log: Callable[[str], None] = print,
                   calibration_share: float = 0.0) -> dict:
    """Train and test one model per fold for each configuration (variant). ``folds`` = [(train_idx, test_idx)]."""
    check_folds(items, folds)
    if dataset is None:
        dataset = SliceDataset.build(items, configs[0].pixel_mm, configs[0].size_px)
    results = {}
    for config in configs:
        per_fold = []
        for k, (tr, te) in enumerate(folds, start=1):
            calib_set = None
            if calibration_share:
                from .calibrate import calibrate_model, calibration_split

                fit, held = calibration_split([items[i] for i in tr], calibration_share, config.seed)
                train_set, calib_set = dataset.subset([tr[i] for i in fit]), dataset.subset([tr[i] for i in held])
            else:
                train_set = dataset.subset(tr)
            t0 = time.perf_counter()
            cfg = replace(config, name=f"{config.name or config.variant}-fold{k}")
            trained = train(train_set, cfg, device=device, progress=progress)
            if calib_set is not None:
                calibrate_model(trained.model, train_set, calib_set, device=device, precision=trained.log["precision"])
            wall = time.perf_counter() - t0
            if models_dir is not None:
                save_trained(trained, Path(models_dir) / f"{config.variant}_fold{k}")
            ev = evaluate_items(trained.model, [items[i] for i in te], device=device, precision=config.precision)
            per_fold.append({
                "fold": k,
                "train_subjects": sorted({items[i].subject for i in tr}),
                "test_subjects": sorted({items[i].subject for i in te}),
                "n_train_scans": len(tr), "n_test_scans": ev.n_scans, "n_test_slices": ev.n_slices,
                "scan_accuracy": ev.scan_accuracy, "slice_accuracy": ev.slice_accuracy,
                "confusion_scan": ev.confusion,
                "final_training_accuracy": trained.log["final_running_accuracy"],
                "train_wall_s": round(wall, 1),
                **(_calibration_figures(trained.model, ev.rows) if calib_set is not None else {}),
            })
            log(f"{config.variant} fold {k}/{len(folds)}: scan accuracy {ev.scan_accuracy:.3f} "
                f"({ev.n_scans} scans), slice accuracy {ev.slice_accuracy:.3f} ({ev.n_slices} slices), "
                f"trained in {wall:.0f} s")
        results[config.variant] = {
            "config": config.as_dict(),
            "folds": per_fold,
            "scan": summarise([f["scan_accuracy"] for f in per_fold]),
            "slice": summarise([f["slice_accuracy"] for f in per_fold]),
        }
    return results


def _calibration_figures(model, rows: list) -> dict:
    """The fold's temperature, the ECE of its test scans' (calibrated) probabilities and the share flagged
    unfamiliar."""
    probabilities = [[r["probabilities"][c] for c in CLASSES] for r in rows]
    truth = [CLASSES.index(r["truth"]) for r in rows]
    flagged = [bool(r["unfamiliar"] and r["unfamiliar"]["flagged"]) for r in rows]
    return {"temperature": model.card["calibration"]["temperature"],
            "calibration_subjects": model.card["calibration"]["subject_ids"],
            "test_ece": round(cal.expected_calibration_error(probabilities, truth), 4),
            "test_flagged_unfamiliar": round(sum(flagged) / max(len(flagged), 1), 4)}


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def markdown_report(results: dict, n_folds: int, header: str = "") -> str:
    """Tables 1-2 style: one row per variant, Fold-1..k, Mean, Max, Min; scan level then slice level."""
    lines = []
    if header:
        lines += [header, ""]
    for level, what in (("scan", "scan level (verdict of the volume)"), ("slice", "slice level")):
        lines.append(f"### Test accuracy (%), {what}")
        lines.append("")
        cols = [f"Fold-{k}" for k in range(1, n_folds + 1)] + ["Mean", "Max", "Min"]
        if level == "scan":
            cols.append("paper Table 2 mean")
        lines.append("| variant | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---:|" * len(cols))
        for variant, r in results.items():
            cells = [_pct(f[f"{level}_accuracy"]) for f in r["folds"]]
            s = r[level]
            cells += [_pct(s["mean"]), _pct(s["max"]), _pct(s["min"])]
            if level == "scan":
                paper = PAPER_TABLE2.get(variant)
                cells.append(f"{paper:.1f}" if paper is not None else "—")
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_report(results: dict, meta: dict, out_dir: Path, header: str) -> None:
    out_dir = Path(out_dir)
    n_folds = meta["folds"]
    (out_dir / "crossval.json").write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    (out_dir / "crossval.md").write_text(markdown_report(results, n_folds, header) + "\n")
