"""§4.2 / Fig. 3: GAP neurons of the trained ResNet18 against the soleus mean fat fraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...constants import CLASSES
from ...errors import InputError
from .. import baselines, distances
from .common import PAPER_NEURONS, md_table, num, pct, plt_module, write_json
from .context import Context, deep_accuracy, md_header


def run_neurons(ctx: Context, out: Path) -> dict:
    """§4.2 / Fig. 3: GAP neurons of the trained ResNet18 vs the soleus MFF (Eq. 3-4, 20 bins)."""
    c = ctx.cohort
    s = ctx.settings
    per_fold = []
    data = {}
    for k, (_, te) in enumerate(c.folds):
        net = ctx.model("resnet7", k).net
        acts, cls, mff = [], [], []
        for i in te:
            frames = c.keyframes(int(i))
            if len(frames) == 0:
                continue
            acts.append(baselines.gap_features(net, c.stacks(int(i))[frames]))
            cls += [int(c.classes[i])] * len(frames)
            mff.append(baselines.mff_feature(c.slices(int(i))[frames].numpy(), c.labels_model(int(i))[frames])[:, 0])
        acts, cls, mff = np.concatenate(acts), np.array(cls), np.concatenate(mff)
        data[k] = (acts, cls, mff)
        dmd, cmd = CLASSES.index("DMD"), CLASSES.index("CMD")
        if (cls == dmd).any() and (cls == cmd).any():
            a = distances.neuron_analysis(acts, cls, mff, dmd, cmd)
        else:
            a = None
        per_fold.append(a)
    accuracy = [f["keyframe_accuracy"] for f in deep_accuracy(ctx, "resnet7")]
    valid = [k for k in range(c.n_folds) if per_fold[k] is not None]
    if not valid:
        raise InputError("no fold has both DMD and CMD test images: the neuron analysis needs both")
    chosen = max(valid, key=lambda k: accuracy[k])
    a = per_fold[chosen]
    acts, cls, mff = data[chosen]
    lines = md_header(ctx, "Figure 3 / §4.2 — GAP neurons of ResNet18 vs the soleus mean fat fraction")
    lines += [f"Test key frames of fold {chosen + 1} (the fold with the highest ResNet18 test accuracy, "
              f"{pct(accuracy[chosen])} %, as the paper picks its lowest-error fold): "
              f"{a['n_images']['a']} DMD and {a['n_images']['b']} CMD images, {a['n_neurons']} neurons. "
              "Normalised 20-bin histograms on a common range per neuron; a larger distance separates better.", "",
              md_table(["", "ℓ² (Eq. 3)", "χ² (Eq. 4)"],
                       [["soleus MFF", num(a["mff_l2"]), num(a["mff_chi2"])],
                        ["neurons better than MFF", f"{a['n_better_l2']} / {a['n_neurons']}",
                         f"{a['n_better_chi2']} / {a['n_neurons']}"],
                        ["median neuron", num(float(np.median(a["l2"]))), num(float(np.median(a["chi2"])))],
                        ["best neuron", f"{num(float(a['l2'].max()))} (#{a['best_l2'][0]})",
                         f"{num(float(a['chi2'].max()))} (#{a['best_chi2'][0]})"],
                        ["paper: neurons better than MFF", f"{PAPER_NEURONS['l2']} / 512",
                         f"{PAPER_NEURONS['chi2']} / 512"]]), "",
              "All folds (neurons better than MFF, ℓ² / χ²): " + ", ".join(
                  f"fold {k + 1}: {p['n_better_l2']} / {p['n_better_chi2']}" if p else f"fold {k + 1}: —"
                  for k, p in enumerate(per_fold)) + ".", ""]
    (out / "neurons.md").write_text("\n".join(lines) + "\n")
    write_json(out / "neurons.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "fold": chosen + 1,
                                      "fold_accuracy": accuracy, "analysis": a,
                                      "per_fold": [None if p is None else {k: v for k, v in p.items()
                                                                           if k not in ("l2", "chi2")}
                                                   for p in per_fold]})
    _neuron_figure(out / "neurons.png", acts, cls, mff, a, chosen)
    return {"fold": chosen + 1, "n_better_l2": a["n_better_l2"], "n_better_chi2": a["n_better_chi2"],
            "mff_l2": a["mff_l2"], "mff_chi2": a["mff_chi2"]}


def _neuron_figure(path, acts, cls, mff, a, fold) -> None:
    plt = plt_module()
    order = [CLASSES.index(x) for x in ("CMD", "DMD", "normal")]  # the paper's row order
    norm = distances.normalised_activation_matrix(acts)
    fig = plt.figure(figsize=(11, 5))
    gs = fig.add_gridspec(3, 2, width_ratios=(2.2, 1))
    for r, k in enumerate(order):
        ax = fig.add_subplot(gs[r, 0])
        rows = norm[cls == k]
        if len(rows):
            ax.imshow(rows, aspect="auto", cmap="bwr", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_ylabel(f"{CLASSES[k]}\n(n={len(rows)})", fontsize=8)
        ax.set_yticks([])
        if r < 2:
            ax.set_xticks([])
    ax.set_xlabel("GAP neuron (normalised activation, −1 … 1)", fontsize=8)
    best = a["best_chi2"][:3]
    for r, (values, title) in enumerate([(acts[:, best[0]], f"neuron #{best[0]}"),
                                         (acts[:, best[1]] if len(best) > 1 else acts[:, best[0]],
                                          f"neuron #{best[1] if len(best) > 1 else best[0]}"),
                                         (mff, "soleus MFF")]):
        ax = fig.add_subplot(gs[r, 1])
        groups = [values[cls == k] for k in range(len(CLASSES))]
        ax.boxplot([g if len(g) else [np.nan] for g in groups], tick_labels=list(CLASSES))
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"GAP neurons of ResNet18, test key frames of fold {fold + 1}: {a['n_better_l2']} (ℓ²) / "
                 f"{a['n_better_chi2']} (χ²) of {a['n_neurons']} neurons beat the soleus MFF", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


