"""``mdtexture train``, ``mdtexture crossval`` and ``mdtexture evaluate-model``.

Registered into the main command line by ``register(subparsers)``; each handler returns an exit status and raises
:class:`MDTextureLib.errors.InputError` for bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

from ..cli import add_output_args, positive_int
from ..errors import InputError
from ..constants import VARIANTS
from ..precision import PRECISION_HELP, PRECISIONS

DATA_HELP = "cohort: cohort.csv or the folder holding it (e.g. made by `mdtexture phantom --out DIR`)"


def _bar(desc: str, quiet: bool):
    """A progress callback (done, total) drawing a tqdm bar on stderr; returns (callback, close)."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    state = {}

    def cb(done, total):
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=desc, file=sys.stderr, delay=1.0, leave=False)
        state["bar"].n = done
        state["bar"].refresh()

    return cb, lambda: state["bar"].close() if "bar" in state else None


def _add_training_args(p: argparse.ArgumentParser) -> None:
    from ..constants import DEFAULT_PIXEL_MM, DEFAULT_SIZE_PX

    g = p.add_argument_group("training (defaults: the paper's §3.4 protocol)")
    g.add_argument("--iterations", type=positive_int, default=5000, help="SGD iterations (default 5000)")
    g.add_argument("--lr-steps", metavar="IT:LR,...",
                   help="learning-rate schedule as iteration:rate pairs from 0. Default with --imagenet: the paper's "
                        "0:1e-4,S:1e-5 with S = 80 %% of --iterations (0:1e-4,4000:1e-5 for 5000); from scratch ten "
                        "times that, 0:1e-3,S:1e-4 (the paper's rates barely move a random network)")
    g.add_argument("--batch-size", type=positive_int, default=8, help="mini-batch size (default 8); under torchrun "
                                                                      "the global batch, split over the processes")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9; the paper does not say)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="SGD weight decay (default 0)")
    g.add_argument("--seed", type=int, default=0, help="seeds initialisation, shuffling and augmentation (default 0)")
    g.add_argument("--imagenet", metavar="FILE", help="initialise the trunk from a local torchvision ResNet18 "
                                                      "ImageNet file (.pth or .safetensors); nothing is downloaded. "
                                                      "Default: from scratch")
    g.add_argument("--no-augment", action="store_true", help="train without the §3.2 augmentation")
    g.add_argument("--randomise", action=argparse.BooleanOptionalAction, default=True,
                   help="acquisition randomisation: noise, bias field, in-plane resolution, slice thickness, FF "
                        "calibration offset/scale (training/randomise.py; settings in the card's "
                        "training.randomisation). Default on")
    g.add_argument("--pixel-mm", type=float, default=DEFAULT_PIXEL_MM,
                   help=f"model pixel size in mm (default {DEFAULT_PIXEL_MM})")
    g.add_argument("--size-px", type=int, default=DEFAULT_SIZE_PX,
                   help=f"model window / crop side in pixels (default {DEFAULT_SIZE_PX})")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to train (default auto: CUDA if available)")
    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help=PRECISION_HELP + "; bf16 runs the forward pass and loss under autocast, weights and "
                                         "optimiser in float32")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _config(args, variant: str):
    from .augment import AugmentConfig
    from .loop import TrainConfig, default_lr_steps, parse_lr_steps
    from .randomise import RandomisationConfig

    if variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if args.pixel_mm <= 0:
        raise InputError("--pixel-mm must be positive")
    steps = (parse_lr_steps(args.lr_steps, args.iterations) if args.lr_steps
             else default_lr_steps(args.iterations, pretrained=bool(args.imagenet)))
    if args.imagenet and not Path(args.imagenet).exists():
        raise InputError(f"ImageNet weights not found: {args.imagenet}")
    config = TrainConfig(variant=variant, iterations=args.iterations, lr_steps=steps, batch_size=args.batch_size,
                         momentum=args.momentum, weight_decay=args.weight_decay, seed=args.seed,
                         pixel_mm=args.pixel_mm, size_px=args.size_px,
                         augment=AugmentConfig(enabled=not args.no_augment,
                                               randomisation=RandomisationConfig(enabled=args.randomise)),
                         imagenet=args.imagenet,
                         name=getattr(args, "name", None), precision=args.precision)
    config.check()
    return config


def _load_items(data: str):
    from .dataset import items_from_records, load_records

    records = load_records(data)
    return records, items_from_records(records)


def _build_dataset(items, config, quiet: bool):
    from .dataset import SliceDataset

    cb, close = _bar("reading scans", quiet)
    try:
        return SliceDataset.build(items, config.pixel_mm, config.size_px, progress=cb)
    finally:
        close()


def _name(path) -> str:
    return Path(path).name or str(path)


def _schedule(config) -> str:
    return ",".join(f"{i}:{lr:g}" for i, lr in config.lr_steps)


def training_command(args, config, command: str = "train", variants=None) -> str:
    """The effective command, every training setting spelled out and file paths cut to their last component
    (cards and reports must not carry machine paths)."""
    parts = ["mdtexture", command, "--data", _name(args.data)]
    if command == "crossval":
        parts += ["--folds", str(args.folds), "--fold-seed", str(args.fold_seed), "--variant", *variants]
        if args.calibration_share:
            parts += ["--calibration-share", f"{args.calibration_share:g}"]
    else:
        parts += ["--variant", config.variant]
    parts += ["--out", _name(args.out), "--iterations", str(config.iterations), "--lr-steps", _schedule(config),
              "--batch-size", str(config.batch_size), "--seed", str(config.seed)]
    if config.momentum != 0.9:
        parts += ["--momentum", f"{config.momentum:g}"]
    if config.weight_decay:
        parts += ["--weight-decay", f"{config.weight_decay:g}"]
    if config.imagenet:
        parts += ["--imagenet", _name(config.imagenet)]
    if not config.augment.enabled:
        parts.append("--no-augment")
    if not config.augment.randomisation.enabled:
        parts.append("--no-randomise")
    from ..constants import DEFAULT_PIXEL_MM, DEFAULT_SIZE_PX

    if config.pixel_mm != DEFAULT_PIXEL_MM:
        parts += ["--pixel-mm", f"{config.pixel_mm:g}"]
    if config.size_px != DEFAULT_SIZE_PX:
        parts += ["--size-px", str(config.size_px)]
    parts += ["--precision", config.precision]
    if command == "train":
        parts += ["--calibration-share", f"{args.calibration_share:g}"]
    if getattr(args, "half", False):
        parts.append("--half")
    return shlex.join(parts)


def cmd_train(args) -> int:
    from dataclasses import replace

    import torch

    from ..inference import pick_device
    from ..precision import resolve_precision
    from .ddp import barrier, context_from_env, shutdown
    from .loop import save_trained, train

    config = _config(args, args.variant)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.suffix in (".json", ".safetensors"):
        out = out.with_suffix("")
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give the model's path stem, e.g. {out / args.variant}")
    _check_model_out(out, args.overwrite)
    ctx = context_from_env(args.device)
    try:
        device = ctx.device if ctx is not None else pick_device(args.device)
        config = replace(config, precision=resolve_precision(config.precision, device))
        main = ctx is None or ctx.is_main
        records, items = _load_items(args.data)
        calib_set = None
        if args.calibration_share:  # the same subjects on every DDP rank: the split is seeded by --seed
            from .calibrate import calibration_split

            train_idx, calib_idx = calibration_split(items, args.calibration_share, config.seed)
        dataset = _build_dataset(items, config, args.quiet or not main)
        if args.calibration_share:
            dataset, calib_set = dataset.subset(train_idx), dataset.subset(calib_idx)
        if main:
            d = dataset.describe()
            print(f"training {config.variant} on {d['scans']} scans / {d['slices']} slices of {d['subjects']} "
                  f"subjects ({d['memory_mb']} MB cached), {config.iterations} iterations, batch "
                  f"{config.batch_size}, lr steps {list(config.lr_steps)}, device {device}, precision "
                  f"{config.precision}"
                  + (f", {ctx.world_size} processes ({ctx.backend})" if ctx else ""), file=sys.stderr)
        result = train(dataset, config, device=device, progress=not args.quiet, dist=ctx)
        if main:
            _calibrate(result.model, dataset, calib_set, device, config.precision)
            tr = result.model.card["training"]
            tr["command"] = training_command(args, config)
            if ctx is not None:
                tr["command"] = f"torchrun --nproc-per-node {ctx.world_size} -m MDTextureLib.cli " + \
                    tr["command"].split(" ", 1)[1]
            tr["data_source"] = args.data_note or f"cohort {Path(args.data).name}"
            result.model.card["intended_use"] = args.intended_use
            paths = save_trained(result, out, half=args.half,
                                 title=f"{config.variant}: {config.iterations} iterations, "
                                       f"{result.wall_s / 60:.1f} min ({args.data_note or Path(args.data).name})")
            print(f"trained {config.variant} in {result.wall_s:.0f} s "
                  f"({result.wall_s / config.iterations:.2f} s/it); final running training accuracy "
                  f"{result.log['final_running_accuracy']:.3f}, loss {result.log['final_running_loss']:.3f}")
            print(f"wrote {paths['weights']}, {paths['card'].name}, {paths['log'].name}, {paths['curve'].name}")
        barrier(ctx)
    finally:
        shutdown(ctx)
    return 0


def _calibrate(model, train_set, calib_set, device, precision: str) -> None:
    """Temperature and unfamiliar-input statistics from the calibration split (card keys left null without one)."""
    if calib_set is None:
        model.card["calibration"] = model.card["unfamiliar"] = None
        print("no calibration split (--calibration-share 0): probabilities uncalibrated, no unfamiliar-input score",
              file=sys.stderr)
        return
    from .calibrate import calibrate_model

    fit = calibrate_model(model, train_set, calib_set, device=device, precision=precision)
    c, u = fit["calibration"], fit["unfamiliar"]
    print(f"calibration on {c['n_scans']} held-out scans of {c['subjects']} subjects: temperature "
          f"{c['temperature']:.3f}, NLL {c['nll_before']:.3f} → {c['nll_after']:.3f}, ECE {c['ece_before']:.3f} → "
          f"{c['ece_after']:.3f}; unfamiliar threshold {u['threshold']:.2f} ({u['threshold_rule']})",
          file=sys.stderr)


def _check_model_out(stem: Path, overwrite: bool) -> None:
    """MODEL.* files are replaced only when MODEL.json is an MDTexture model card and --overwrite is given."""
    from ..outputs import check_output_files

    card = stem.with_suffix(".json")
    try:
        ours = {"variant", "sha256", "weights_file"} <= set(json.loads(card.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        ours = False
    files = [stem.with_suffix(".safetensors"), card] + [stem.parent / f"{stem.name}.training.{ext}"
                                                        for ext in ("json", "png")]
    check_output_files(files, overwrite, ours, what="model")


def _parse_variants(values: list) -> list:
    out = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip()]
    for v in out:
        if v not in VARIANTS:
            raise InputError(f"unknown variant {v!r}; choose one of {', '.join(VARIANTS)}")
    return out


def cmd_crossval(args) -> int:
    from dataclasses import replace

    import torch

    from ..cohort import subject_folds
    from ..inference import pick_device
    from ..outputs import atomic_dir, check_output_folder
    from ..precision import resolve_precision
    from .crossval import check_folds, cross_validate, write_report

    check_output_folder(args.out, [args.data, args.imagenet], args.overwrite)  # before reading the cohort
    variants = _parse_variants(args.variant)
    configs = [_config(args, v) for v in variants]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    configs = [replace(c, precision=resolve_precision(c.precision, device)) for c in configs]
    records, items = _load_items(args.data)
    n_subjects = len({it.subject for it in items})
    if args.folds < 2:
        raise InputError("--folds must be at least 2")
    if n_subjects < args.folds:
        raise InputError(f"{n_subjects} subjects cannot be split into {args.folds} folds")
    folds = [(list(map(int, tr)), list(map(int, te))) for tr, te in subject_folds(records, n_folds=args.folds,
                                                                                  seed=args.fold_seed)]
    check_folds(items, folds)
    dataset = _build_dataset(items, configs[0], args.quiet)
    t0 = time.perf_counter()
    with atomic_dir(args.out, "crossval", overwrite=args.overwrite,
                    inputs=[args.data, args.imagenet]) as tmp:
        results = cross_validate(items, folds, configs, dataset=dataset, device=device, progress=not args.quiet,
                                 models_dir=(tmp / "models") if args.keep_models else None,
                                 log=lambda s: print(s, file=sys.stderr),
                                 calibration_share=args.calibration_share)
        meta = {"command": training_command(args, configs[0], "crossval", variants), "data_source": args.data_note or Path(args.data).name,
                "folds": args.folds, "fold_seed": args.fold_seed, "split": "by subject, stratified by class",
                "subjects": n_subjects, "scans": len(items), "slices": len(dataset),
                "precision": configs[0].precision,
                "wall_time_s": round(time.perf_counter() - t0, 1)}
        header = (f"## {args.folds}-fold subject-level cross-validation\n\n"
                  f"Data: {meta['data_source']} ({n_subjects} subjects, {len(items)} scans, {len(dataset)} slices). "
                  f"Command: `{meta['command']}`. Wall time {meta['wall_time_s'] / 60:.1f} min.")
        write_report(results, meta, tmp, header)
    for card_path in args.record_in_card or []:
        _record_crossval(Path(card_path), results, meta)
    for v, r in results.items():
        print(f"{v}: scan accuracy mean {r['scan']['mean']:.3f} (max {r['scan']['max']:.3f}, min "
              f"{r['scan']['min']:.3f}); slice accuracy mean {r['slice']['mean']:.3f}")
    print(f"wrote {args.out}/crossval.md and crossval.json")
    return 0


def _record_crossval(card_path: Path, results: dict, meta: dict) -> None:
    """Add this cross-validation's figures for the card's variant to the card (``metrics.crossval``)."""
    if card_path.suffix != ".json":
        card_path = card_path.with_suffix(".json")
    if not card_path.exists():
        print(f"mdtexture: warning: model card {card_path} not found; cross-validation figures not recorded",
              file=sys.stderr)
        return
    card = json.loads(card_path.read_text(encoding="utf-8"))
    r = results.get(card.get("variant"))
    if r is None:
        print(f"mdtexture: warning: {card_path.name} is a {card.get('variant')} model, which this cross-validation "
              "did not train; nothing recorded", file=sys.stderr)
        return
    card["metrics"] = {**(card.get("metrics") or {}), "crossval": {
        **meta, "scan_accuracy": r["scan"], "slice_accuracy": r["slice"],
        "per_fold_scan_accuracy": [f["scan_accuracy"] for f in r["folds"]],
        "per_fold_slice_accuracy": [f["slice_accuracy"] for f in r["folds"]],
        "iterations_per_fold": r["config"]["iterations"],
        "note": "one model per fold trained on that fold's training subjects; the shipped weights are a separate "
                "model trained on every subject of the training cohort"}}
    tmp = card_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    tmp.replace(card_path)
    print(f"recorded the cross-validation figures in {card_path.name} (metrics.crossval)")


def cmd_evaluate_model(args) -> int:
    from ..cli import load_model_arg, model_input_paths
    from ..inference import pick_device
    from ..outputs import atomic_dir, check_output_folder
    from ..precision import resolve_precision
    from .evaluate import (accuracy_by, evaluate_items, markdown_breakdown, markdown_confusion, per_class_accuracy,
                           severity_band, severity_bands)

    if args.out:
        check_output_folder(args.out, [args.data, *model_input_paths(args.model)], args.overwrite)
    model = load_model_arg(args.model)
    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    records, items = _load_items(args.data)
    cb, close = _bar("evaluating", args.quiet)
    t0 = time.perf_counter()
    try:
        ev = evaluate_items(model, items, device=device, batch_size=args.batch_size, progress=cb,
                            precision=precision)
    finally:
        close()
    for row, record in zip(ev.rows, records):  # items_from_records keeps the records' order
        severity = float(record.severity)
        row.update(severity=None if not math.isfinite(severity) else round(severity, 4),
                   severity_band=severity_band(record.class_name, severity),
                   pattern_family=record.pattern_family or None)
    # Where the misses are: by disease severity and by the phantom's pattern family (cohorts that record them).
    breakdown = {"by_severity": accuracy_by(ev.rows, "severity_band", severity_bands()),
                 "by_pattern_family": accuracy_by(ev.rows, "pattern_family", ["normal"])}
    command = shlex.join(["mdtexture", "evaluate-model", "--model", _name(model.path) if model.path else "(shipped)",
                          "--data", _name(args.data), "--precision", precision])
    source = args.data_note or Path(args.data).name
    metrics = {"data_source": source, "command": command, "subjects": len({it.subject for it in items}),
               "scan_accuracy": ev.scan_accuracy, "slice_accuracy": ev.slice_accuracy, "n_scans": ev.n_scans,
               "n_slices": ev.n_slices, "confusion_scan": ev.confusion, "precision": precision,
               "per_class_scan_accuracy": per_class_accuracy(ev.confusion),
               **{k: v for k, v in breakdown.items() if v},
               "wall_time_s": round(time.perf_counter() - t0, 1)}
    print(f"model {model.name} ({model.sha256[:12]}…) on {source}: scan accuracy {ev.scan_accuracy:.3f} "
          f"({ev.n_scans} scans), slice accuracy {ev.slice_accuracy:.3f} ({ev.n_slices} slices)")
    print(markdown_confusion(ev.confusion))
    if args.out:
        with atomic_dir(args.out, "evaluate-model", overwrite=args.overwrite,
                        inputs=[args.data, *model_input_paths(args.model)]) as tmp:
            (tmp / "evaluation.json").write_text(json.dumps({**metrics, "model": model.name,
                                                             "sha256": model.sha256,
                                                             "scans": ev.rows}, indent=2) + "\n")
            (tmp / "evaluation.md").write_text(
                f"Model `{model.name}` on {source}: scan accuracy {100 * ev.scan_accuracy:.1f} % "
                f"({ev.n_scans} scans), slice accuracy {100 * ev.slice_accuracy:.1f} % ({ev.n_slices} slices).\n\n"
                f"Command: `{command}`\n\n" + markdown_confusion(ev.confusion) + "\n"
                + "".join(f"\n{markdown_breakdown(groups, title)}\n" for title, groups in
                          (("severity", breakdown["by_severity"]), ("pattern family", breakdown["by_pattern_family"]))
                          if groups))
        print(f"wrote {args.out}/evaluation.json and evaluation.md")
    if args.record_in_card:
        if model.path is None:
            raise InputError("--record-in-card needs a model file (--model or a shipped model)")
        card = json.loads(Path(model.path).read_text(encoding="utf-8"))
        held = [m for m in (card.get("metrics") or {}).get("held_out", []) if m.get("data_source") != source]
        card["metrics"] = {**(card.get("metrics") or {}), "held_out": held + [metrics]}
        tmp_path = Path(model.path).with_suffix(".json.tmp")
        tmp_path.write_text(json.dumps(card, indent=2) + "\n")
        tmp_path.replace(model.path)
        print(f"recorded the figures in {Path(model.path).name} (metrics.held_out)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a network on a cohort (paper §3.2/§3.4 protocol); write weights + model card",
        description="Train an ICAM-ResNet18 variant on every slice of a cohort with the protocol of Cai et al. "
                    "(3-slice FF stacks; resize ×[1, 1.2], rotation ±5°, intensity ×[0.8, 1.2], crop; SGD, batch 8, "
                    "lr 1e-4 then 1e-5 for the last 20 % when fine-tuning --imagenet weights, ten times that from "
                    "scratch). Writes MODEL.safetensors, MODEL.json (card), "
                    "MODEL.training.json (log) and MODEL.training.png (curve). Runs under torchrun for "
                    "DistributedDataParallel: torchrun --nproc-per-node N -m MDTextureLib.cli train ...")
    p.add_argument("--data", required=True, metavar="COHORT", help=DATA_HELP)
    p.add_argument("--variant", default="icam28", choices=tuple(VARIANTS), help="network variant (default icam28)")
    p.add_argument("--out", required=True, metavar="MODEL", help="path stem of the model, e.g. models/icam28; "
                                                                 "MODEL.* must not exist, unless they are an "
                                                                 "earlier MDTexture model and --overwrite is given")
    p.add_argument("--overwrite", action="store_true", help="replace MODEL.* if MODEL.json is an MDTexture model card")
    p.add_argument("--name", help="model name in the card (default: the variant)")
    p.add_argument("--half", action="store_true", help="store the weights as float16 (half the size)")
    p.add_argument("--data-note", metavar="TEXT", help="how the data were made, recorded in the card "
                                                       "(e.g. the phantom command)")
    p.add_argument("--intended-use", default="research; not for clinical use", metavar="TEXT",
                   help="intended-use statement for the card")
    p.add_argument("--calibration-share", type=float, default=0.2, metavar="F",
                   help="share of the subjects held out of training (per class, at least one subject of each class "
                        "with two or more) to fit the probability temperature and the unfamiliar-input threshold "
                        "(default 0.2; 0: no calibration, no unfamiliar score)")
    _add_training_args(p)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser(
        "crossval", help="subject-level k-fold cross-validation: train one model per fold, test on held-out subjects",
        description="Split the cohort by subject (stratified by class; no subject on both sides), train one model "
                    "per fold and variant, and report per-fold, mean, max and min test accuracy at scan and slice "
                    "level (as Tables 1-2 of Cai et al.) into OUT/crossval.md and OUT/crossval.json.")
    p.add_argument("--data", required=True, metavar="COHORT", help=DATA_HELP)
    p.add_argument("--folds", type=int, default=4, help="number of folds (default 4)")
    p.add_argument("--fold-seed", type=int, default=0, help="seed of the subject split (default 0)")
    p.add_argument("--variant", nargs="+", default=["icam28"], metavar="V",
                   help=f"one or more of {', '.join(VARIANTS)} (default icam28)")
    add_output_args(p, required=True)
    p.add_argument("--keep-models", action="store_true", help="also write each fold's model under OUT/models/")
    p.add_argument("--data-note", metavar="TEXT", help="how the data were made, recorded in the report")
    p.add_argument("--record-in-card", nargs="+", metavar="CARD",
                   help="add the figures of the card's variant to these model cards (metrics.crossval) at the end")
    p.add_argument("--calibration-share", type=float, default=0.0, metavar="F",
                   help="hold this share of each fold's training subjects out to calibrate the fold's model "
                        "(temperature, unfamiliar threshold) and report test ECE and the share of test scans "
                        "flagged unfamiliar per fold (default 0: off, every training subject trains)")
    _add_training_args(p)
    p.set_defaults(func=cmd_crossval)

    p = subparsers.add_parser(
        "evaluate-model", help="scan- and slice-level accuracy of a model on a labelled cohort",
        description="Classify every scan of a cohort through the normal inference path and report scan-level "
                    "(volume verdict) and slice-level accuracy with the confusion matrix.")
    p.add_argument("--data", required=True, metavar="COHORT", help=DATA_HELP)
    p.add_argument("--model", metavar="M", help="model card or weights (default: the shipped model)")
    add_output_args(p, purpose="also write DIR/evaluation.json and evaluation.md")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--batch-size", type=positive_int, default=16, help="slices per forward pass (default 16)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    p.add_argument("--data-note", metavar="TEXT", help="how the data were made, recorded with the figures")
    p.add_argument("--record-in-card", action="store_true",
                   help="add the figures to the model card's metrics.held_out (weights and sha256 unchanged)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate_model)


if __name__ == "__main__":  # python -m MDTextureLib.training.cli train … (e.g. under torchrun) = mdtexture train …
    from ..cli import main

    sys.exit(main())
