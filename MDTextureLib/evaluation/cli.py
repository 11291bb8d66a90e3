"""``mdtexture evaluate {table1|table2|neurons|tsne|table3|localisation|randomisation|all}``.

Each experiment writes markdown + JSON + PNG into ``--out`` (replaced as a whole, atomically); ``all`` writes one
subfolder per experiment plus ``summary.md`` and ``run.json`` (settings, models, wall time). Networks trained
during a run are kept under ``OUT/models`` (reuse them with ``--models OUT/models``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import InputError
from ..precision import PRECISION_HELP, PRECISIONS

DESCRIPTION = """\
Reproduce the experiments of Cai et al. on a cohort (normally the synthetic phantom: `mdtexture phantom`) and
score the heatmaps against the phantom's involvement masks. Subject-level 4-fold CV, the same folds for every
method. Networks come from --models (VARIANT_foldK.json, as `mdtexture crossval --keep-models` writes them) or
are trained here for --iterations each (5 variants x 4 folds for `all`).

  table1         classical baselines (MFF, STP, K-Means, ResNet18-GAP + SVM) and the trained networks
  table2         ResNet vs ICAM at map sizes 28x28 and 14x14, per fold
  neurons        Fig. 3 / sect. 4.2: GAP neurons vs soleus MFF (l2 and chi2 of 20-bin histograms)
  tsne           Fig. 6: t-SNE of 24x24 patches at heatmap maxima
  table3         muscle texture scores next to the phantom's true involvement; score-vs-truth correlation
  localisation   pointing game, energy pointing game, relevance mass/rank accuracy, pixel AUC against the
                 involvement mask, for ICAM, CAM, Grad-CAM, Grad-CAM++, LayerCAM, a random map and the FF image
  randomisation  cascading model-parameter randomisation (Adebayo et al. 2018), Spearman rank correlation
  calibration    expected calibration error of scan probabilities on the test folds, before and after
                 temperature scaling (the card's temperature; and one fitted on the other folds' held-out scans)
  all            everything above, one subfolder each, plus summary.md and run.json
  families       leave one pattern family out (cohort.csv pattern_family): accuracy on the held-out family's
                 scans and how often they are flagged unfamiliar, vs in-distribution test scans (not in `all`:
                 it trains one network per family and fold)
"""

EPILOG = """\
Budget (2-core CPU): `evaluate all` on the default phantom cohort (48 subjects, 76 scans) needs 20 networks
(5 variants x 4 folds, 300 iterations of batch 8). Measured: 1.1 s per iteration for the full ResNet18 variants
(resnet7, icam14), 0.85 s for icam28/resnet14 and 0.6 s for resnet28 on one thread, i.e. about 100 min to train
all 20 one after another, and 15 min for everything else (features, K-Means, SVM searches, inference, Grad-CAM
family, metrics). Faster: train them in two `mdtexture crossval ... --keep-models` runs side by side (one thread
each, about 50 min) and pass the fold models with --models (README, Experiments).
Leg-pooled networks (--networks icam28-leg icam14-leg ...) add rows to table1, localisation, table3, calibration
and randomisation: 4 more networks per variant. `families` trains one network per held-out pattern family and
--family-folds (7 disease families x 1 fold = 7 networks at --iterations each) plus fold 1's usual network, and
classifies every tested scan once more through `classify` when the network has an unfamiliar-input score.
Use --threads 1 when another job shares the CPU (threads competing for cores slow PyTorch down many-fold).
--quick runs a tiny profile (64-px window, 3 iterations) to check that everything runs; its numbers mean nothing.
Results on phantom data are synthetic, not clinical.
"""


def register(subparsers) -> None:
    from ..cli import add_output_args
    from .settings import EXPERIMENTS, EXTRA_EXPERIMENTS, NETWORK_CHOICES, Settings

    d = Settings()
    p = subparsers.add_parser("evaluate", help="reproduce the paper's experiments and score the heatmaps "
                                               "(tables, figures) on a cohort",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=EXPERIMENTS + EXTRA_EXPERIMENTS + ("all",),
                   help="which experiment (or all; families only by name)")
    p.add_argument("--data", required=True, metavar="COHORT", help="cohort folder (with cohort.csv) or the CSV")
    add_output_args(p, required=True)
    p.add_argument("--models", metavar="DIR", help="folder of trained fold models VARIANT_foldK.json (from "
                                                   "`mdtexture crossval --keep-models` or an earlier evaluate run's "
                                                   "OUT/models); missing ones are trained. crossval*.json reports in it "
                                                   "(or crossval.json beside it) must show this run's folds")
    p.add_argument("--iterations", type=int, help=f"training iterations per network and fold (default "
                                                  f"{d.iterations}; --quick: 3)")
    p.add_argument("--lr-steps", metavar="IT:LR,...", help="learning-rate schedule (default: 1e-3 then 1e-4 for the "
                                                           "last 20 %% from scratch; with --imagenet the paper's "
                                                           "1e-4 then 1e-5)")
    p.add_argument("--batch-size", type=int, help=f"training mini-batch (default {d.batch_size})")
    p.add_argument("--folds", type=int, default=d.n_folds, help=f"number of folds (default {d.n_folds})")
    p.add_argument("--fold-seed", type=int, default=d.fold_seed, help="seed of the subject split (default 0)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of training, K-Means, t-SNE, random maps")
    p.add_argument("--kmeans-k", type=int, help=f"K-Means dictionary size (default {d.kmeans_k}; paper 900)")
    p.add_argument("--imagenet", metavar="FILE", help="local torchvision ResNet18 ImageNet weights for the "
                                                      "ResNet18-GAP row and network initialisation")
    p.add_argument("--networks", nargs="+", metavar="V", choices=NETWORK_CHOICES,
                   help="networks whose maps localisation, randomisation and table3 score, and the extra rows of "
                        "table1 (leg-pooled variants), calibration and families (first one) use (default icam28 "
                        "icam14 resnet7; choices " + ", ".join(NETWORK_CHOICES) + ")")
    p.add_argument("--calibration-share", type=float, default=d.calibration_share,
                   help="share of each fold's training subjects held out to fit the temperature and the unfamiliar "
                        f"threshold of the networks trained here, as `mdtexture train` (default {d.calibration_share}; "
                        "0: none)")
    p.add_argument("--family-folds", type=int, default=d.family_folds,
                   help=f"families: subject folds run per held-out pattern family (default {d.family_folds})")
    p.add_argument("--quick", action="store_true", help="tiny smoke-test profile (numbers mean nothing)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help=PRECISION_HELP + "; applies to the networks trained here (the maps are scored in float32)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=handler)


def settings_from_args(args):
    from ..precision import resolve_precision
    from .settings import Settings

    common = {"n_folds": args.folds, "fold_seed": args.fold_seed, "seed": args.seed, "imagenet": args.imagenet,
              "lr_steps": args.lr_steps, "quiet": args.quiet, "calibration_share": args.calibration_share,
              "family_folds": args.family_folds,
              "precision": resolve_precision(args.precision, "cpu")}  # evaluation trains on the CPU
    if args.networks:
        common["networks"] = tuple(dict.fromkeys(args.networks))
    optional = {"iterations": args.iterations, "batch_size": args.batch_size, "kmeans_k": args.kmeans_k}
    if args.iterations is not None and args.iterations < 1:
        raise InputError("--iterations must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if args.kmeans_k is not None and args.kmeans_k < 2:
        raise InputError("--kmeans-k must be at least 2")
    if not 0 <= args.calibration_share < 1:
        raise InputError("--calibration-share must lie in [0, 1)")
    if args.family_folds < 1:
        raise InputError("--family-folds must be at least 1")
    if args.folds < 2:
        raise InputError("--folds must be at least 2")
    if args.imagenet and not Path(args.imagenet).is_file():
        raise InputError(f"ImageNet weights not found: {args.imagenet}")
    if args.quick:
        return Settings.quick_profile(**common, **optional)
    return Settings(**common, **{k: v for k, v in optional.items() if v is not None})


def handler(args) -> int:
    import torch

    from ..outputs import atomic_dir
    from .experiments import EXPERIMENTS, Context, run

    if args.threads:
        torch.set_num_threads(int(args.threads))
    settings = settings_from_args(args)
    experiments = EXPERIMENTS if args.experiment == "all" else (args.experiment,)
    t0 = time.perf_counter()
    with atomic_dir(args.out, "evaluate", overwrite=args.overwrite,
                    inputs=[args.data, args.models, args.imagenet]) as tmp:
        ctx = Context(args.data, settings, models_dir=args.models, store_dir=tmp / "models")
        timings = run(ctx, experiments, tmp, subfolders=args.experiment == "all")
    wall = time.perf_counter() - t0
    if not args.quiet:
        what = "phantom (synthetic) results" if ctx.label == "phantom" else "results"
        print(f"wrote {what} of {', '.join(experiments)} to {args.out}/ in {wall:.0f} s "
              f"(" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items() if k != "total") + ")",
              file=sys.stderr)
    return 0
