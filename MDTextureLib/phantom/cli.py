"""Commands ``mdtexture phantom`` (generate a cohort) and ``mdtexture cohort-stats`` (describe one).

``register(subparsers)`` adds both to the main command line; ``python -m MDTextureLib.phantom.cli`` runs them alone.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..constants import CLASSES
from ..cli import add_output_args, positive_int
from ..errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "phantom", help="generate a synthetic lower-leg Dixon cohort (DMD / CMD / normal) with ground truth",
        description="Writes OUT/cohort.csv and one folder per scan (water, fat, ff, muscles labelmap, "
                    "muscles.seg.nrrd, involvement mask, truth.json). Same seed, same bytes.")
    add_output_args(p, required=True)
    p.add_argument("--subjects", type=positive_int, required=True, help="number of subjects (classes balanced)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--scans-per-subject", type=positive_int, default=None,
                   help="scans per subject; default: 1 or 2 drawn per subject (60 %% get a follow-up scan)")
    p.add_argument("--classes", nargs="+", choices=CLASSES, default=list(CLASSES), help="classes to include")
    p.add_argument("--slices", type=positive_int, default=None, help="fix the number of 4 mm slices (default 16-35)")
    p.add_argument("--matrix", type=positive_int, default=None, help="fix the in-plane matrix (default 192-320)")
    p.add_argument("--pixel-mm", type=float, default=None, help="fix the in-plane pixel size (default 0.7-1.5 mm)")
    p.add_argument("--body-cues", choices=("texture", "realistic"), default="texture",
                   help="texture (default): body traits and fat level drawn from one distribution for every class, so "
                        "only the spatial pattern and which muscles are involved tell the classes apart; realistic: "
                        "the literature's class-linked body traits (DMD pseudohypertrophy, CMD atrophy, ages by class)")
    p.add_argument("--workers", type=positive_int, default=None, help="processes (default: CPU cores)")
    p.add_argument("--preview", default=None, metavar="PNG", help="also write a sheet of one mid-calf slice per class")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_phantom)

    s = subparsers.add_parser(
        "cohort-stats", help="per-class mean-FF distribution, mean-FF kNN accuracy and the confound audit of a cohort",
        description="Reads a cohort folder, prints the distribution of whole-muscle mean FF per class, the "
                    "accuracy of a mean-FF k-nearest-neighbour classifier, and DMD-vs-CMD accuracy from body traits "
                    "alone and from first-order FF statistics alone (subject-level 4-fold cross-validation).")
    s.add_argument("--data", required=True, help="cohort folder (with cohort.csv)")
    add_output_args(s, purpose="write cohort_stats.json and cohort_stats.md here")
    s.add_argument("--k", type=positive_int, default=5, help="neighbours (default 5)")
    s.add_argument("--folds", type=positive_int, default=4, help="cross-validation folds (default 4)")
    s.add_argument("--seed", type=int, default=0, help="fold shuffling seed (default 0)")
    s.set_defaults(func=run_stats)


def run_phantom(args) -> int:
    from .cohort import write_cohort

    if args.pixel_mm is not None and not 0.05 <= args.pixel_mm <= 10:
        raise InputError(f"--pixel-mm {args.pixel_mm} is outside 0.05-10 mm")
    if args.preview and not str(args.preview).lower().endswith(".png"):
        raise InputError(f"--preview must name a .png file, got {args.preview}")
    t0 = time.time()
    records = write_cohort(args.out, subjects=args.subjects, seed=args.seed, scans_per_subject=args.scans_per_subject,
                           classes=tuple(args.classes), n_slices=args.slices, matrix=args.matrix,
                           pixel_mm=args.pixel_mm, workers=args.workers, progress=not args.quiet,
                           overwrite=args.overwrite, body_cues=args.body_cues)
    counts = {c: sum(r.class_name == c for r in records) for c in CLASSES if c in args.classes}
    print(f"wrote {len(records)} scans of {len({r.subject for r in records})} subjects to {args.out} "
          f"({', '.join(f'{c} {n}' for c, n in counts.items())}) in {time.time() - t0:.1f} s")
    if args.preview:
        path = write_preview_from_cohort(records, args.preview)
        print(f"wrote preview {path}")
    return 0


def write_preview_from_cohort(records, png_path):
    """Sheet with the first scan of each pattern family in the cohort (of each class when the cohort has no
    families), read back from its files. Without families a COL6-like CMD scan is preferred: its rim is the hallmark
    to compare with DMD."""
    import SimpleITK as sitk
    from .patterns import ALL_FAMILIES
    from .preview import render_preview, scan_title

    picks = []
    if any(r.pattern_family for r in records):
        for fam in ALL_FAMILIES:
            picks += [r for r in records if r.pattern_family == fam][:1]
    else:
        for c in CLASSES:
            pick = [r for r in records if r.class_name == c]
            pick = [r for r in pick if r.subtype == "COL6"] or pick if c == "CMD" else pick
            picks += pick[:1]
    rows = []
    for rec in picks:
        arr = {k: sitk.GetArrayFromImage(sitk.ReadImage(str(getattr(rec, k)))) for k in ("water", "fat", "ff")}
        arr["labels"] = sitk.GetArrayFromImage(sitk.ReadImage(str(rec.muscles)))
        with open(rec.truth, encoding="utf-8") as fh:
            arr["title"] = f"{rec.subject}_{rec.scan}: " + scan_title(json.load(fh))
        rows.append(arr)
    tmp = Path(str(png_path) + ".partial.png")
    render_preview(rows, tmp)
    os.replace(tmp, png_path)
    return Path(png_path)


def run_stats(args) -> int:
    from ..cohort import read_cohort
    from ..outputs import check_output_folder
    from .stats import cohort_stats, format_report

    if args.out:
        check_output_folder(args.out, [args.data], args.overwrite)
    records = read_cohort(args.data)
    stats = cohort_stats(records, n_folds=args.folds, seed=args.seed, k=args.k, progress=sys.stderr.isatty())
    report = format_report(stats)
    print(report)
    if args.out:
        from ..outputs import atomic_dir

        with atomic_dir(args.out, "cohort-stats", overwrite=args.overwrite, inputs=[args.data]) as tmp:
            (tmp / "cohort_stats.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
            (tmp / "cohort_stats.md").write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":  # python -m MDTextureLib.phantom.cli phantom … is the same as mdtexture phantom …
    from ..cli import main

    sys.exit(main())
