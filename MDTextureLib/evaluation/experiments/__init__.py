"""The experiments of Cai et al. on a cohort (normally the phantom), and the localisation evaluation the paper
could not do, one module per experiment. Each ``run_*`` function writes ``NAME.md``, ``NAME.json`` and
``NAME*.png`` into a folder.

Protocol shared by every experiment:

- subject-level stratified 4-fold cross-validation from :func:`MDTextureLib.cohort.subject_folds` (seed
  ``fold_seed``), the same folds for every method;
- one network per (variant, fold), trained on the training subjects with the project's training loop
  (:func:`MDTextureLib.training.loop.train`, the paper's §3.2/§3.4 protocol, iteration budget ``iterations``), or
  loaded from ``--models`` (``VARIANT_foldK.json``, the names ``mdtexture crossval --keep-models`` writes);
- classification images are the *key frames* (slices showing the soleus) of the held-out scans; scan-level
  accuracy (the verdict of the whole volume) is reported next to it;
- heatmaps are the map of the scan's true class.

Modules: :mod:`.common` (the paper's numbers, helpers), :mod:`.context` (cohort, fold networks, the markdown
header), :mod:`.table1`, :mod:`.table2`, :mod:`.neurons` (Fig. 3), :mod:`.tsne` (Fig. 6), :mod:`.table3`,
:mod:`.localisation_exp`, :mod:`.randomisation_exp`, :mod:`.calibration_exp` (ECE), :mod:`.families` (leave one
pattern family out; run by name only).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..settings import EXPERIMENTS, EXTRA_EXPERIMENTS, LOCALISATION_VARIANTS, Settings  # noqa: F401 (re-exported)
from .calibration_exp import run_calibration
from .common import md_table, write_json
from .context import Context, learning_rate_steps  # noqa: F401 (re-exported)
from .families import run_families
from .localisation_exp import run_localisation
from .neurons import run_neurons
from .randomisation_exp import run_randomisation
from .table1 import run_table1
from .table2 import run_table2
from .table3 import run_table3
from .tsne import run_tsne

RUNNERS = {"table1": run_table1, "table2": run_table2, "neurons": run_neurons, "tsne": run_tsne,
           "table3": run_table3, "localisation": run_localisation, "randomisation": run_randomisation,
           "calibration": run_calibration, "families": run_families}


def run(ctx: Context, experiments, out: Path, subfolders: bool) -> dict:
    """Run ``experiments`` in order into ``out`` (one subfolder each when ``subfolders``); returns timings."""
    timings = {}
    summaries = []
    t_all = time.perf_counter()
    for name in experiments:
        target = out / name if subfolders else out
        target.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        ctx.log(f"{name}: start")
        RUNNERS[name](ctx, target)
        timings[name] = round(time.perf_counter() - t0, 1)
        ctx.log(f"{name}: done in {timings[name]:.0f} s")
        summaries.append((name, target / f"{name}.md"))
    timings["total"] = round(time.perf_counter() - t_all, 1)
    meta = {"experiments": list(experiments), "settings": ctx.settings.as_dict(), "cohort": ctx.describe(),
            "wall_s": timings, "models": ctx.provenance["models"], "warnings": ctx.provenance["warnings"],
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    write_json(out / "run.json", meta)
    if subfolders:
        parts = [p.read_text() for _, p in summaries]
        timing_lines = ["## Wall time", "", md_table(["experiment", "s"], [[k, v] for k, v in timings.items()]), ""]
        (out / "summary.md").write_text("\n\n".join(parts) + "\n" + "\n".join(timing_lines) + "\n")
    return timings
