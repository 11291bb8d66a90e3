"""Cascading model-parameter randomisation (Adebayo et al. 2018) of the maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...constants import CLASSES
from ...errors import InputError
from .. import maps, randomisation
from .common import RANDOMISATION_VARIANTS, VARIANT_LABELS, md_table, num, plt_module, write_json
from .context import Context, md_header


def run_randomisation(ctx: Context, out: Path) -> dict:
    """Cascading model-parameter randomisation (Adebayo et al. 2018) on fold-1 networks and test key frames."""
    c = ctx.cohort
    s = ctx.settings
    te = [int(i) for i in c.folds[0][1] if CLASSES[int(c.classes[int(i)])] in ("DMD", "CMD")]
    if not te:
        te = [int(i) for i in c.folds[0][1]]
    picks = [(i, int(z)) for i in te for z in c.keyframes(i)]
    if not picks:
        raise InputError("fold 1 has no test key frames for the randomisation check")
    sel = np.linspace(0, len(picks) - 1, min(s.randomisation_slices, len(picks))).round().astype(int)
    picks = [picks[j] for j in sorted(set(sel.tolist()))]
    stacks = torch.cat([c.stacks(i)[[z]] for i, z in picks])
    classes = np.array([int(c.classes[i]) for i, _ in picks])
    masks = torch.cat([c.body_model(i)[[z]] for i, z in picks])  # used by leg-pooled networks only

    def own(net, x, cl):
        return maps.icam_maps(net, x, cl, masks=masks)[1].numpy()

    def grad(method):
        return lambda net, x, cl: maps.gradient_maps(net, x, cl, (method,), masks=masks)[method].numpy()

    results = {}
    chosen = [v for v in s.networks if v in RANDOMISATION_VARIANTS or v.endswith("-leg")]
    for variant in chosen or list(s.networks[:1]):
        model = ctx.model(variant, 0)
        net = model.net

        def fat(net, x, cl, normalisation=model.normalisation):
            return maps.fat_maps(net, x, cl, normalisation, masks=masks).numpy()

        functions = {"icam": own, **{m: grad(m) for m in maps.GRADIENT_METHODS}, "fat": fat}
        results[variant] = randomisation.cascading_randomisation(net, stacks, classes, functions,
                                                                 depth=s.randomisation_depth, seed=s.seed + 1000)
    lines = md_header(ctx, "Model-parameter randomisation (Adebayo et al. 2018), cascading")
    lines += [f"{len(picks)} test key frames of fold 1 (DMD/CMD scans), map of the true class. After each step the "
              "listed block and every block above it are re-initialised; Spearman ρ between the trained network's "
              "map and the randomised one, per slice, averaged (displayed map = ReLU). A map that explains the model "
              "must decorrelate; ρ staying high means the map shows the image, not the model.", ""]
    for variant, r in results.items():
        header = ["Map"] + r["steps"]
        rows = []
        for m, v in r["methods"].items():
            name = "own map (" + ("ICAM" if variant.startswith("icam") else "CAM") + ")" if m == "icam" \
                else maps.METHOD_LABELS[m]
            rows.append([name + " — ReLU"] + [num(x, 2) for x in v["relu"]])
            rows.append([name + " — signed"] + [num(x, 2) for x in v["signed"]])
        lines += [f"### {VARIANT_LABELS[variant]}", "", md_table(header, rows), ""]
        for m, v in r["methods"].items():
            last = v["relu"][-1]
            if np.isfinite(last):
                lines.append(f"- {maps.METHOD_LABELS[m] if m != 'icam' else 'own map'}: ρ after the full cascade "
                             f"{num(last, 2)} — {'passes (decorrelates)' if last < 0.5 else '**fails** (stays similar)'}"
                             " at the 0.5 line.")
        lines.append("")
    (out / "randomisation.md").write_text("\n".join(lines) + "\n")
    write_json(out / "randomisation.json", {"cohort": ctx.describe(), "settings": s.as_dict(),
                                            "slices": [{"scan": c.name(i), "slice": z} for i, z in picks],
                                            "results": results})
    plt = plt_module()
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 3.6), squeeze=False)
    for ax, (variant, r) in zip(axes[0], results.items()):
        for m, v in r["methods"].items():
            ax.plot(range(len(r["steps"])), v["relu"], marker="o", label=maps.METHOD_LABELS[m])
        ax.set_xticks(range(len(r["steps"])))
        ax.set_xticklabels(r["steps"], rotation=30, fontsize=7)
        ax.set_ylim(-0.5, 1.05)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_ylabel("Spearman ρ with trained map")
        ax.set_title(VARIANT_LABELS[variant], fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "randomisation.png", dpi=110)
    plt.close(fig)
    return results


