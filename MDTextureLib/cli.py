"""The ``mdtexture`` command line. Parsing, progress and output folders only; the work is done elsewhere.

Every failure the user can fix is an :class:`InputError`: one line on stderr (``mdtexture: error: …``), exit 2.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

from . import __version__
from .constants import CLASSES, DEFAULT_HEATMAP_NORMALISATION, FAT_MAP_CAVEAT, HEATMAP_NORMALISATIONS
from .errors import InputError
from .precision import PRECISION_HELP, PRECISIONS
from .scores import ScoreParameters

EPILOG = """\
Typical use:
  mdtexture classify --ff leg_ff.nrrd --segmentation muscles.seg.nrrd --out result/
  mdtexture classify --water water.nii.gz --fat fat.nii.gz --out result/      (FF derived as F/(W+F))
  mdtexture classify --study exam_dicom/ --out result/                       (series picked by DICOM tags)
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
    p.add_argument("--ff-unit", choices=("auto", "fraction", "percent", "permille"), default="auto",
                   help="unit of the fat-fraction images: fraction 0-1, percent 0-100, permille 0-1000 "
                        "(default: detected)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--side", choices=("left", "right"),
                   help="which leg a one-leg image shows, used when its anatomy (tibia medial of the calf) does not "
                        "tell and no DICOM laterality is found (default: detected; else assumed right, warned)")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="M", help="model card (.json) or weights (.safetensors); default: the shipped "
                                                "model under Resources/Models")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the network runs (default: auto = CUDA if available)")
    p.add_argument("--batch-size", type=positive_int, default=16, metavar="N",
                   help="slices per forward pass (default 16)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)


def add_output_args(p: argparse.ArgumentParser, purpose: str = "", **out_kwargs) -> None:
    """``--out`` and ``--overwrite`` with the one rule of :mod:`MDTextureLib.outputs` in their help."""
    from .outputs import OUT_HELP, OVERWRITE_HELP

    out_kwargs.setdefault("metavar", "DIR")
    help_text = (f"{purpose}; " if purpose else "") + OUT_HELP
    help_text += f" (default: {out_kwargs['default']})" if out_kwargs.get("default") else ""
    p.add_argument("--out", help=help_text, **out_kwargs)
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)


def _add_score_args(p: argparse.ArgumentParser) -> None:
    d = ScoreParameters()
    p.add_argument("--threshold", type=float, default=d.threshold,
                   help=f"heatmap value from which a voxel is highlighted (default {d.threshold})")
    p.add_argument("--min-overlap", type=float, default=d.min_overlap,
                   help=f"fraction of a muscle's voxels on a slice that must be highlighted (default {d.min_overlap})")
    p.add_argument("--min-area-mm2", type=float, default=d.min_area_mm2,
                   help=f"muscle area from which a slice counts as containing it (default {d.min_area_mm2} mm²)")
    p.add_argument("--target-class", choices=CLASSES, help="class whose ICAM becomes the heatmap (default: verdict)")
    p.add_argument("--heatmap-scaling", choices=HEATMAP_NORMALISATIONS, default=DEFAULT_HEATMAP_NORMALISATION,
                   help="scale the heatmap to 0-1 by its maximum inside the leg on each axial slice (slice, default) "
                        "or over the volume (volume, the rule before issue 12); the texture scores use it")
    p.add_argument("--fat-map", action="store_true",
                   help="also write fat_map.nrrd: the fat attribution of the heatmap's class (gradient of its logit "
                        "times each pixel's fat; one backward pass per class more). The texture scores still come "
                        "from the ICAM heatmap. Caveat: " + FAT_MAP_CAVEAT)
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


def model_input_paths(path: str | None) -> list:
    """The files a model argument reads (its card and weights; the shipped model's when none is given), so that
    no output folder is ever placed over them."""
    from .modelfile import default_model_path

    path = path or default_model_path()
    if not path:
        return []
    path = Path(path)
    return [path] + [path.with_suffix(s) for s in (".json", ".safetensors") if path.suffix in (".json", ".safetensors")]


def _case_options(args):
    from .pipeline import CaseOptions

    return CaseOptions(target_class=args.target_class, device=args.device, batch_size=args.batch_size,
                       params=_score_params(args), report=not args.no_report, precision=args.precision,
                       heatmap_normalisation=getattr(args, "heatmap_scaling", DEFAULT_HEATMAP_NORMALISATION),
                       fat_map=getattr(args, "fat_map", False))


def _print_warnings(warnings: list) -> None:
    for w in warnings:
        print(f"mdtexture: warning: {w}", file=sys.stderr)


def cmd_classify(args) -> int:
    from .outputs import check_output_folder
    from .pipeline import CaseInputs, analyse_case, write_case

    if args.study and (args.ff or args.water or args.fat):
        raise InputError("give either --study or --ff/--water/--fat, not both")
    if args.series and not args.study:
        raise InputError("--series chooses series within --study DIR; give --study")
    reads = [args.ff, args.water, args.fat, args.study, args.segmentation, *model_input_paths(args.model)]
    check_output_folder(args.out, reads, args.overwrite)  # refuse before minutes of work, not after
    model = load_model_arg(args.model)
    options = _case_options(args)
    inputs = CaseInputs(ff=args.ff, water=args.water, fat=args.fat, segmentation=args.segmentation,
                        ff_unit=args.ff_unit, study=args.study, series=tuple(args.series or ()), side=args.side)
    bar = _Progress("classifying", args.quiet)
    try:
        case = analyse_case(inputs, model, options, progress=bar)
    finally:
        bar.close()
    _print_warnings(case.summary["warnings"])
    _print_study_series(case.summary["inputs"])
    out = write_case(case, args.out, options, title=Path(args.ff or args.water or args.study).name,
                     overwrite=args.overwrite, inputs=reads, command="classify")
    probs = ", ".join(f"{c} {p:.3f}" for c, p in case.summary["probabilities"].items())
    print(f"verdict: {case.summary['verdict']}  ({probs})")
    print(f"wrote {out}/: prediction.json, heatmap.nrrd, heatmap_signed.nrrd"
          + (", texture_scores.csv" if case.scores is not None else "") + (", report.png" if options.report else ""))
    return 0


def _print_study_series(inputs: dict) -> None:
    """Which DICOM series of a study were found and used (stderr; prediction.json has the same under "inputs")."""
    used = {s["key"]: role for role, s in inputs.get("study_series_used", {}).items()}
    for s in inputs.get("study_series_found", []):
        mark = f"used as {used[s['key']]:>5}" if s["key"] in used else "not used     "
        role = f"{s['role']} ({s['rule']})" if s["role"] else "no Dixon role in its tags"
        print(f"mdtexture: series {mark}: {s['key']} '{s['description']}' ImageType {s['image_type'] or '-'}, "
              f"{s['n_slices']} slices -> {role}", file=sys.stderr)


def find_case_files(folder: Path) -> dict:
    """Inputs of one subject folder: ff/water/fat images and a muscle segmentation, by conventional names; a folder
    without such images that holds DICOM files is a study (water / fat / FF series picked by their tags)."""
    def first(*stems):
        for stem in stems:
            for ext in (".nrrd", ".nii.gz", ".nii", ".mha", ".mhd"):
                if (folder / f"{stem}{ext}").exists():
                    return str(folder / f"{stem}{ext}")
            if (folder / stem).is_dir():
                return str(folder / stem)
        return None

    seg = folder / "muscles.seg.nrrd"
    files = {"ff": first("ff", "fat_fraction", "FF"), "water": first("water", "W"), "fat": first("fat", "F"),
             "segmentation": str(seg) if seg.exists() else first("muscles", "labels", "segmentation")}
    if not (files["ff"] or files["water"] or files["fat"]):
        from .dicom import looks_like_dicom_folder
        if looks_like_dicom_folder(folder):
            files["study"] = str(folder)
    return files


def cmd_batch(args) -> int:
    from .batch import run_subjects
    from .filecheck import os_error_message
    from .outputs import atomic_dir, check_output_folder
    from .pipeline import CaseInputs

    data = Path(args.data)
    try:
        if not data.is_dir():
            raise InputError(f"data folder not found: {data}")
        subjects = sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
        cases = [(p, find_case_files(p)) for p in subjects]
    except OSError as exc:  # e.g. an unreadable data folder: the cause in one line, not a traceback
        raise InputError(os_error_message(exc, "data folder", data)) from None
    cases = [(p, f) for p, f in cases if f["ff"] or (f["water"] and f["fat"]) or f.get("study")]
    if not cases:
        raise InputError(f"no subject folders with ff.* or water.*+fat.* images or DICOM files under {data}")
    # every folder and file read (subject folders may be symbolic links to elsewhere), and the model
    reads = [data, *subjects, *(v for _, f in cases for v in f.values()), *model_input_paths(args.model)]
    check_output_folder(args.out, reads, args.overwrite)
    model = load_model_arg(args.model)
    options = _case_options(args)
    from tqdm import tqdm

    subjects = [(folder.name, CaseInputs(ff_unit=args.ff_unit, side=args.side, **files)) for folder, files in cases]
    with atomic_dir(args.out, "batch", overwrite=args.overwrite, inputs=reads) as tmp:
        rows = []
        with tqdm(total=len(subjects), desc="subjects", file=sys.stderr, disable=args.quiet, delay=1.0) as bar:
            def report(name, case, error):  # called in subject order
                rows.append(_summary_row(name, case) if error is None else _error_row(name, error, tmp, args.out))
                bar.update(1)

            # the next subject is read and the previous one written while the network runs (MDTextureLib.batch)
            run_subjects(subjects, model, options, tmp, report)
        columns = ["subject", "verdict"] + [f"p_{c}" for c in CLASSES] + ["calibrated", "unfamiliar_score",
                                                                        "unfamiliar", "n_slices", "ff_unit"]
        columns += sorted({k for r in rows for k in r if k.startswith("score_")}, key=_score_col_order)
        columns += ["legs", "warnings", "error"]
        with open(tmp / "summary.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
    failures = sum(1 for row in rows if row["error"])
    print(f"classified {len(cases) - failures}/{len(cases)} subjects; wrote {args.out}/summary.csv")
    return 1 if failures else 0


def _summary_row(name: str, case) -> dict:
    """A classified subject's row of summary.csv."""
    row = {"subject": name, "verdict": case.summary["verdict"], "n_slices": case.summary["n_slices"],
           "ff_unit": case.summary["ff_unit_detected"], "error": ""}
    row.update({f"p_{c}": f"{p:.4f}" for c, p in case.summary["probabilities"].items()})
    unfamiliar = case.summary.get("unfamiliar")
    row.update(calibrated="yes" if case.summary.get("calibrated") else "no",
               unfamiliar_score="" if not unfamiliar else f"{unfamiliar['score']:.2f}",
               unfamiliar="" if not unfamiliar else ("FLAGGED" if unfamiliar["flagged"] else "no"))
    for s in case.scores or []:
        row[f"score_{s.muscle}"] = "" if s.texture_score is None else f"{s.texture_score:.4f}"
    row["legs"] = "; ".join(f"{leg['side']} {leg['verdict']} {max(leg['probabilities'].values()):.2f}"
                            for leg in case.summary.get("legs") or [])
    row["warnings"] = " | ".join(case.summary["warnings"])
    return row


def _error_row(name: str, error: BaseException, tmp: Path, out: str) -> dict:
    """A failed subject's row (any failure is this subject's row; the others go on), also said on stderr."""
    # name where the subject's folder was to go, not the temporary folder it was being written to
    message = _one_line(error).replace(str(tmp), out)
    print(f"mdtexture: error: {name}: {message}", file=sys.stderr)
    return {"subject": name, "verdict": "", "error": message}


def _one_line(exc: BaseException) -> str:
    """An error as one CSV-safe line: the user's message as is, anything unexpected with its type."""
    text = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _score_col_order(col: str):
    from .constants import MUSCLES

    name = col[len("score_"):]
    return (MUSCLES.index(name) if name in MUSCLES else len(MUSCLES), name)


def cmd_demo(args) -> int:
    from .outputs import atomic_dir, check_output_folder
    from .phantom import make_scan, write_scan
    from .pipeline import CaseInputs, analyse_case, write_case

    out = Path(args.out)
    reads = model_input_paths(args.model)
    check_output_folder(out, reads, args.overwrite)
    model = load_model_arg(args.model, allow_untrained=True)
    options = _case_options(args)
    t0 = time.perf_counter()
    # slices, matrix and pixel size drawn like a scanner
    scan = make_scan(args.phantom_class, seed=args.seed, body_cues=args.body_cues)
    with atomic_dir(out, "demo", overwrite=args.overwrite, inputs=reads) as tmp:
        write_scan(scan, tmp / "input")
        bar = _Progress("classifying", args.quiet)
        try:
            case = analyse_case(CaseInputs(ff=str(tmp / "input" / "ff.nrrd"),
                                           segmentation=str(tmp / "input" / "muscles.seg.nrrd")), model, options,
                                progress=bar)
        finally:
            bar.close()
        write_case(case, tmp / "result", options, title=f"phantom {args.phantom_class} (synthetic)", command="demo")
    _print_warnings(case.summary["warnings"])
    probs = ", ".join(f"{c} {p:.3f}" for c, p in case.summary["probabilities"].items())
    print(f"phantom class (truth): {args.phantom_class}; model {model.name}")
    print(f"verdict: {case.summary['verdict']}  ({probs})   [synthetic phantom, not a clinical result]")
    print(f"texture scores (Eq. 5) from the heatmap of {case.summary['target_class']}:")
    for s in case.scores:
        score = "absent" if s.texture_score is None else f"{s.texture_score:.2f}"
        print(f"  {s.muscle:>4}: texture score {score:>6}  mean FF {s.mean_ff or 0:5.1f} %  {s.volume_ml:6.1f} mL")
    written = ", ".join(sorted(p.name for p in (out / "result").iterdir() if not p.name.startswith(".")))
    print(f"wrote {out}/input (phantom water/fat/ff/muscles) and {out}/result ({written}) in "
          f"{time.perf_counter() - t0:.1f} s")
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
                                   "(on the FF grid, values 0-1, 0 outside the body), heatmap_signed.nrrd (the same "
                                   "map in logit units), texture_scores.csv (with --segmentation) and "
                                   "report.png into --out.")
    p.add_argument("--ff", metavar="FF", help="fat-fraction image (fraction 0-1 or percent, detected)")
    p.add_argument("--water", metavar="W", help="water image (with --fat, FF is derived when --ff is absent)")
    p.add_argument("--fat", metavar="F", help="fat image")
    p.add_argument("--segmentation", metavar="SEG", help="muscle labelmap or Slicer .seg.nrrd (TA=1 … MG=7, or "
                                                         "segments named after the muscles)")
    p.add_argument("--study", metavar="DIR", help="DICOM study folder (searched recursively): the water / fat / FF "
                                                  "series are picked by their DICOM tags and listed")
    p.add_argument("--series", metavar="KEY", action="append",
                   help="with --study: use this series (key or UID as listed; repeatable); ROLE=KEY (ROLE ff, water "
                        "or fat) gives the role when the tags do not")
    add_output_args(p, required=True)
    _add_input_args(p)
    _add_model_args(p)
    _add_score_args(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("batch", help="classify every subject folder under --data; one summary CSV",
                       description="Each subfolder of --data holding ff.* (or water.* and fat.*, or the DICOM "
                                   "files of a study: series picked by their tags as with classify --study) and "
                                   "optionally muscles.seg.nrrd / muscles.* is classified into --out/<subject>/; "
                                   "--out/summary.csv has one row per subject. A subject that fails for any "
                                   "reason is a row with its error (the others are still written) and makes the "
                                   "exit status 1.")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="folder of subject folders (only read; --out must lie outside it)")
    add_output_args(p, required=True)
    _add_input_args(p)
    _add_model_args(p)
    _add_score_args(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("demo", help="make a synthetic phantom scan and run the whole pipeline on it",
                       description="Generates one synthetic lower-leg Dixon scan (phantom) with muscle labels, "
                                   "classifies it with the shipped model (or an untrained one if none is shipped) "
                                   "and writes everything under --out.")
    add_output_args(p, default="demo_output")
    p.add_argument("--phantom-class", choices=CLASSES, default="DMD")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--body-cues", choices=("texture", "realistic"), default="texture",
                   help="the phantom cohort the scan is drawn from (default texture, the shipped models' training "
                        "cohort; realistic: class-linked body traits, which the shipped models flag as unfamiliar)")
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
    from .web import cli as web_cli

    return [phantom_cli, training_cli, evaluation_cli, bench, web_cli]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .outputs import Terminated, signals_raise

    try:
        with signals_raise():  # SIGTERM/SIGHUP clean up like Ctrl-C: no temporary folder is left behind
            return int(args.func(args) or 0)
    except InputError as exc:
        print(f"mdtexture: error: {exc}", file=sys.stderr)
        return 2
    except InterruptedError as exc:
        print(f"mdtexture: {exc}", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"mdtexture: stopped by {exc}; nothing half-written was left", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("mdtexture: interrupted", file=sys.stderr)
        return 130


def exit_process(code: int):
    """End the process once its work is done, without tearing the interpreter down.

    Every output is written and closed by now (outputs.atomic_dir), and freeing torch's, numpy's and matplotlib's
    objects one by one before exiting costs about 0.4 s of a 3 s ``classify`` for nothing. What a normal exit does
    that matters still happens, in CPython's order: thread pools left open are told to stop and threads still
    running are waited for, atexit handlers run (temporary folders are removed, logging flushed) and both streams
    are flushed — and output that could not be written makes the exit status 120, as Python's own exit does.
    """
    import atexit
    import threading

    threading._shutdown()  # what the interpreter's exit calls: wakes idle pool workers (serve's asyncio), then joins
    atexit._run_exitfuncs()  # CPython's own exit path runs these; os._exit alone would skip them
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError) as exc:  # a full disk or a broken pipe: the output is lost, say so if we can
            code = code or 120
            try:
                os.write(2, f"mdtexture: could not write the output: {exc}\n".encode())
            except OSError:
                pass
    os._exit(code)


def run() -> None:
    """The ``mdtexture`` console script: :func:`main`, then :func:`exit_process`. An exception that escapes main
    (a bug) takes the normal way out, with its traceback."""
    exit_process(main())


if __name__ == "__main__":
    run()
