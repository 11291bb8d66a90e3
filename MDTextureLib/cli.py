"""The ``mdtexture`` command line. Parsing, progress and output folders only; the work is done elsewhere.

Every failure the user can fix is an :class:`InputError`: one line on stderr (``mdtexture: error: …``), exit 2.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from . import __version__
from .constants import CLASSES
from .errors import InputError
from .precision import PRECISION_HELP, PRECISIONS
from .scores import ScoreParameters

EPILOG = """\
Typical use:
  mdtexture classify --ff leg_ff.nrrd --segmentation muscles.seg.nrrd --out result/
  mdtexture classify --water water.nii.gz --fat fat.nii.gz --out result/      (FF derived as F/(W+F))
  mdtexture batch --data subjects/ --out results/
  mdtexture demo                                                              (phantom in, everything out)
Images: NRRD, NIfTI, MetaImage or a DICOM series folder; all inputs on one voxel grid.
Phantom (synthetic) data and the shipped demonstration models are for research and testing, not clinical use.
"""


class _Progress:
    """A tqdm bar on stderr, shown only when the work lasts more than a second."""

    def __init__(self, desc: str, quiet: bool = False):
        self.desc, self.quiet, self.bar = desc, quiet, None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=self.desc, unit="slice", file=sys.stderr, mininterval=0.2,
                            delay=1.0, leave=False)
        self.bar.n = done
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def positive_int(text: str) -> int:
    """argparse type for counts (subjects, iterations, folds, …): an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_input_args(p: argparse.ArgumentParser) -> None:
    """Options every command that reads Dixon images shares."""
    p.add_argument("--ff-unit", choices=("auto", "fraction", "percent"), default="auto",
                   help="unit of the fat-fraction images (default: detected)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="M", help="model card (.json) or weights (.safetensors); default: the shipped "
                                                "model under Resources/Models")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the network runs (default: auto = CUDA if available)")
    p.add_argument("--batch-size", type=int, default=16, help="slices per forward pass (default 16)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)


def _add_score_args(p: argparse.ArgumentParser) -> None:
    d = ScoreParameters()
    p.add_argument("--threshold", type=float, default=d.threshold,
                   help=f"heatmap value from which a voxel is highlighted (default {d.threshold})")
    p.add_argument("--min-overlap", type=float, default=d.min_overlap,
                   help=f"fraction of a muscle's voxels on a slice that must be highlighted (default {d.min_overlap})")
    p.add_argument("--min-area-mm2", type=float, default=d.min_area_mm2,
                   help=f"muscle area from which a slice counts as containing it (default {d.min_area_mm2} mm²)")
    p.add_argument("--target-class", choices=CLASSES, help="class whose ICAM becomes the heatmap (default: verdict)")
    p.add_argument("--no-report", action="store_true", help="skip report.png")


def _score_params(args) -> ScoreParameters:
    try:
        return ScoreParameters(args.threshold, args.min_overlap, args.min_area_mm2)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def load_model_arg(path: str | None, device: str = "cpu", allow_untrained: bool = False):
    """The model named on the command line, else the shipped one; an untrained model only if allowed."""
    from .modelfile import build_model, default_model_path, load_model

    if path:
        return load_model(path, device="cpu")
    default = default_model_path()
    if default is not None:
        return load_model(default, device="cpu")
    if allow_untrained:
        print("mdtexture: warning: no shipped model found under Resources/Models; using an UNTRAINED network "
              "(random weights) so the pipeline can run: its verdict means nothing", file=sys.stderr)
        return build_model()
    raise InputError("no model given and none shipped under Resources/Models; pass --model")


def _case_options(args):
    from .pipeline import CaseOptions

    return CaseOptions(target_class=args.target_class, device=args.device, batch_size=args.batch_size,
                       params=_score_params(args), report=not args.no_report, precision=args.precision)


def _print_warnings(warnings: list) -> None:
    for w in warnings:
        print(f"mdtexture: warning: {w}", file=sys.stderr)


def cmd_classify(args) -> int:
    from .pipeline import CaseInputs, analyse_case, write_case

    model = load_model_arg(args.model)
    options = _case_options(args)
    inputs = CaseInputs(ff=args.ff, water=args.water, fat=args.fat, segmentation=args.segmentation,
                        ff_unit=args.ff_unit)
    bar = _Progress("classifying", args.quiet)
    try:
        case = analyse_case(inputs, model, options, progress=bar)
    finally:
        bar.close()
    _print_warnings(case.summary["warnings"])
    out = write_case(case, args.out, options, title=Path(args.ff or args.water).name)
    probs = ", ".join(f"{c} {p:.3f}" for c, p in case.summary["probabilities"].items())
    print(f"verdict: {case.summary['verdict']}  ({probs})")
    print(f"wrote {out}/: prediction.json, heatmap.nrrd"
          + (", texture_scores.csv" if case.scores is not None else "") + (", report.png" if options.report else ""))
    return 0


def find_case_files(folder: Path) -> dict:
    """Inputs of one subject folder: ff/water/fat images and a muscle segmentation, by conventional names."""
    def first(*stems):
        for stem in stems:
            for ext in (".nrrd", ".nii.gz", ".nii", ".mha", ".mhd"):
                if (folder / f"{stem}{ext}").exists():
                    return str(folder / f"{stem}{ext}")
            if (folder / stem).is_dir():
                return str(folder / stem)
        return None

    seg = folder / "muscles.seg.nrrd"
    return {"ff": first("ff", "fat_fraction", "FF"), "water": first("water", "W"), "fat": first("fat", "F"),
            "segmentation": str(seg) if seg.exists() else first("muscles", "labels", "segmentation")}


def cmd_batch(args) -> int:
    from .outputs import atomic_dir
    from .pipeline import CaseInputs, analyse_case, write_case

    data = Path(args.data)
    if not data.is_dir():
        raise InputError(f"data folder not found: {data}")
    subjects = sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    cases = [(p, find_case_files(p)) for p in subjects]
    cases = [(p, f) for p, f in cases if f["ff"] or (f["water"] and f["fat"])]
    if not cases:
        raise InputError(f"no subject folders with ff.* or water.*+fat.* images under {data}")
    model = load_model_arg(args.model)
    options = _case_options(args)
    from tqdm import tqdm

    failures = 0
    with atomic_dir(args.out) as tmp:
        rows = []
        for folder, files in tqdm(cases, desc="subjects", file=sys.stderr, disable=args.quiet, delay=1.0):
            row = {"subject": folder.name}
            try:
                case = analyse_case(CaseInputs(ff_unit=args.ff_unit, **files), model, options)
                write_case(case, tmp / folder.name, options, title=folder.name)
                row.update(verdict=case.summary["verdict"], n_slices=case.summary["n_slices"],
                           ff_unit=case.summary["ff_unit_detected"], error="")
                row.update({f"p_{c}": f"{p:.4f}" for c, p in case.summary["probabilities"].items()})
                for s in case.scores or []:
                    row[f"score_{s.muscle}"] = "" if s.texture_score is None else f"{s.texture_score:.4f}"
            except InputError as exc:
                failures += 1
                row.update(verdict="", error=str(exc))
                print(f"mdtexture: error: {folder.name}: {exc}", file=sys.stderr)
            rows.append(row)
        columns = ["subject", "verdict"] + [f"p_{c}" for c in CLASSES] + ["n_slices", "ff_unit"]
        columns += sorted({k for r in rows for k in r if k.startswith("score_")}, key=_score_col_order) + ["error"]
        with open(tmp / "summary.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
    print(f"classified {len(cases) - failures}/{len(cases)} subjects; wrote {args.out}/summary.csv")
    return 1 if failures else 0


def _score_col_order(col: str):
    from .constants import MUSCLES

    name = col[len("score_"):]
    return (MUSCLES.index(name) if name in MUSCLES else len(MUSCLES), name)


def cmd_demo(args) -> int:
    from .outputs import atomic_dir
    from .phantom import make_scan, write_scan
    from .pipeline import CaseInputs, analyse_case, write_case

    out = Path(args.out)
    model = load_model_arg(args.model, allow_untrained=True)
    options = _case_options(args)
    t0 = time.perf_counter()
    scan = make_scan(args.phantom_class, seed=args.seed)  # slices, matrix and pixel size drawn like a scanner
    with atomic_dir(out) as tmp:
        write_scan(scan, tmp / "input")
        bar = _Progress("classifying", args.quiet)
        try:
            case = analyse_case(CaseInputs(ff=str(tmp / "input" / "ff.nrrd"),
                                           segmentation=str(tmp / "input" / "muscles.seg.nrrd")), model, options,
                                progress=bar)
        finally:
            bar.close()
        write_case(case, tmp / "result", options, title=f"phantom {args.phantom_class} (synthetic)")
    _print_warnings(case.summary["warnings"])
    probs = ", ".join(f"{c} {p:.3f}" for c, p in case.summary["probabilities"].items())
    print(f"phantom class (truth): {args.phantom_class}; model {model.name}")
    print(f"verdict: {case.summary['verdict']}  ({probs})   [synthetic phantom, not a clinical result]")
    for s in case.scores:
        score = "absent" if s.texture_score is None else f"{s.texture_score:.2f}"
        print(f"  {s.muscle:>4}: texture score {score:>6}  mean FF {s.mean_ff or 0:5.1f} %  {s.volume_ml:6.1f} mL")
    print(f"wrote {out}/input (phantom water/fat/ff/muscles) and {out}/result "
          f"(prediction.json, heatmap.nrrd, texture_scores.csv, report.png) in {time.perf_counter() - t0:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdtexture", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Muscular dystrophy texture analysis in lower-leg Dixon MRI (DMD / CMD / normal), after "
                    "Cai et al.: ICAM-ResNet18 verdict, heatmap volume and per-muscle texture scores.")
    parser.add_argument("--version", action="version", version=f"mdtexture {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("classify", help="classify one Dixon volume; write verdict, heatmap, scores and a picture",
                       description="Classify one lower-leg Dixon volume and write prediction.json, heatmap.nrrd "
                                   "(on the FF grid, values 0-1), texture_scores.csv (with --segmentation) and "
                                   "report.png into --out.")
    p.add_argument("--ff", metavar="FF", help="fat-fraction image (fraction 0-1 or percent, detected)")
    p.add_argument("--water", metavar="W", help="water image (with --fat, FF is derived when --ff is absent)")
    p.add_argument("--fat", metavar="F", help="fat image")
    p.add_argument("--segmentation", metavar="SEG", help="muscle labelmap or Slicer .seg.nrrd (TA=1 … MG=7, or "
                                                         "segments named after the muscles)")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (replaced as a whole)")
    _add_input_args(p)
    _add_model_args(p)
    _add_score_args(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("batch", help="classify every subject folder under --data; one summary CSV",
                       description="Each subfolder of --data holding ff.* (or water.* and fat.*) and optionally "
                                   "muscles.seg.nrrd / muscles.* is classified into --out/<subject>/; "
                                   "--out/summary.csv has one row per subject. Failed subjects are listed with "
                                   "their error and make the exit status 1.")
    p.add_argument("--data", required=True, metavar="DIR")
    p.add_argument("--out", required=True, metavar="DIR")
    _add_input_args(p)
    _add_model_args(p)
    _add_score_args(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("demo", help="make a synthetic phantom scan and run the whole pipeline on it",
                       description="Generates one synthetic lower-leg Dixon scan (phantom) with muscle labels, "
                                   "classifies it with the shipped model (or an untrained one if none is shipped) "
                                   "and writes everything under --out.")
    p.add_argument("--out", default="demo_output", metavar="DIR", help="default: demo_output")
    p.add_argument("--phantom-class", choices=CLASSES, default="DMD")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quiet", action="store_true")
    _add_model_args(p)
    _add_score_args(p)
    p.set_defaults(func=cmd_demo)

    for module in _subcommand_modules():
        module.register(sub)
    return parser


def _subcommand_modules():
    """Modules that add their own subcommands (phantom, training, evaluation, benchmark)."""
    from . import bench
    from .evaluation import cli as evaluation_cli
    from .phantom import cli as phantom_cli
    from .training import cli as training_cli

    return [phantom_cli, training_cli, evaluation_cli, bench]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"mdtexture: error: {exc}", file=sys.stderr)
        return 2
    except InterruptedError as exc:
        print(f"mdtexture: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("mdtexture: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
