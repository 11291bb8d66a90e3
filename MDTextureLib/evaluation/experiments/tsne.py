"""Fig. 6: t-SNE of FF patches at the maxima of the true-class map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...constants import CLASSES, MUSCLES
from ...errors import InputError
from .. import embedding
from ..data import resample_labels
from .common import VARIANT_LABELS, md_table, num, pct, plt_module, write_json
from .context import Context, md_header


def run_tsne(ctx: Context, out: Path, variant: str = "icam28") -> dict:
    """Fig. 6: 24×24 FF patches at the maxima of the true-class map, t-SNE, coloured by class."""
    c = ctx.cohort
    s = ctx.settings
    dmd, cmd = CLASSES.index("DMD"), CLASSES.index("CMD")
    patches, meta = [], []
    for k in range(c.n_folds):
        for i, (_, class_maps) in ctx.predictions(variant, k).items():
            cl = int(c.classes[i])
            if cl not in (dmd, cmd):
                continue
            heat = embedding.upsample_to_window(class_maps[:, cl], c.size_px)
            border = embedding.PATCH_K // 2
            peaks = embedding.heatmap_peaks(heat, border=border,
                                            min_distance=max(2, min(border, c.size_px // 8)))
            if len(peaks) == 0:
                continue
            ff = c.slices(i).numpy()
            lab = c.labels_model(i)
            native = c.native(i)
            inv = resample_labels(native.involvement.astype(np.uint8), c.geometry(i))
            patches.append(embedding.cut_patches(ff, peaks))
            for z, yy, xx in peaks:
                meta.append({"scan": c.name(i), "class": cl, "fold": k + 1, "slice": int(z), "y": int(yy),
                             "x": int(xx), "heat": float(heat[z, yy, xx]), "muscle": int(lab[z, yy, xx]),
                             "involved": bool(inv[z, yy, xx])})
    if not patches:
        raise InputError("no heatmap maxima found on DMD/CMD test scans: nothing to embed")
    patches = np.concatenate(patches)
    rng = np.random.default_rng(s.seed)
    if len(patches) > s.tsne_max_patches:
        keep = np.sort(rng.choice(len(patches), s.tsne_max_patches, replace=False))
        patches, meta = patches[keep], [meta[j] for j in keep]
    labels = np.array([m["class"] for m in meta])
    heat = np.array([m["heat"] for m in meta])
    if len(patches) < 4 or len(set(labels.tolist())) < 2:
        raise InputError(f"{len(patches)} patches of {len(set(labels.tolist()))} class(es): too few for the t-SNE")
    emb = embedding.tsne_embedding(patches, seed=s.seed)
    purity_emb = embedding.knn_purity(emb, labels)
    purity_patch = embedding.knn_purity(patches, labels)
    stats = {}
    for name, cl in (("DMD", dmd), ("CMD", cmd)):
        sel = labels == cl
        muscles = [m["muscle"] for m, keep in zip(meta, sel) if keep]
        counts = {MUSCLES[v - 1] if 1 <= v <= len(MUSCLES) else ("none" if v == 0 else f"label {v}"):
                  int(muscles.count(v)) for v in sorted(set(muscles))}
        stats[name] = {"patches": int(sel.sum()), "purity_embedding": float(purity_emb[sel].mean()),
                       "purity_patch_space": float(purity_patch[sel].mean()),
                       "on_involvement": float(np.mean([m["involved"] for m, keep in zip(meta, sel) if keep])),
                       "muscle_at_maximum": counts}
    rep = {name: embedding.representative(purity_emb, heat, labels, cl) for name, cl in (("DMD", dmd), ("CMD", cmd))}
    lines = md_header(ctx, f"Figure 6 — t-SNE of 24×24 patches at the maxima of the {VARIANT_LABELS[variant]} map")
    lines += [f"{len(patches)} patches (≤ 3 maxima ≥ 0.5 of the volume maximum per slice, true-class map, test scans "
              "of all folds, each scan with its fold's network — or the one --models network), cut from the FF image on "
              "the model window.", "",
              md_table(["", "patches", "10-NN class purity (t-SNE)", "10-NN purity (patch space)",
                        "maxima on involved tissue", "muscle at the maximum"],
                       [[n, v["patches"], num(v["purity_embedding"]), num(v["purity_patch_space"]),
                         pct(v["on_involvement"]) + " %",
                         ", ".join(f"{m} {cnt}" for m, cnt in sorted(v["muscle_at_maximum"].items(),
                                                                     key=lambda t: -t[1]))]
                        for n, v in stats.items()]), "",
              "Purity 0.5 is what two well-mixed classes of equal size give; the paper shows the figure without a "
              "number.", ""]
    (out / "tsne.md").write_text("\n".join(lines) + "\n")
    write_json(out / "tsne.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "variant": variant,
                                   "stats": stats, "representative": {k: [meta[j] for j in v] for k, v in rep.items()},
                                   "points": [{**m, "tsne": [float(e[0]), float(e[1])]} for m, e in zip(meta, emb)]})
    plt = plt_module()
    fig = plt.figure(figsize=(9, 8))
    gs = fig.add_gridspec(3, 8, height_ratios=(4, 4, 1.3))
    ax = fig.add_subplot(gs[:2, :])
    for name, cl, color in (("DMD", dmd, "tab:red"), ("CMD", cmd, "tab:blue")):
        sel = labels == cl
        ax.scatter(emb[sel, 0], emb[sel, 1], s=6, c=color, alpha=0.6, label=f"{name} ({int(sel.sum())})")
    for name, color in (("DMD", "tab:red"), ("CMD", "tab:blue")):
        for j in rep[name]:
            ax.scatter(emb[j, 0], emb[j, 1], s=60, facecolors="none", edgecolors=color, linewidths=1.5)
    ax.legend(fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t-SNE of heatmap-maximum patches ({VARIANT_LABELS[variant]})"
                 + (", phantom" if ctx.label == "phantom" else ""), fontsize=10)
    for col, j in enumerate(rep["DMD"][:4] + rep["CMD"][:4]):
        pa = fig.add_subplot(gs[2, col])
        pa.imshow(patches[j], cmap="gray", vmin=0, vmax=1)
        pa.set_xticks([])
        pa.set_yticks([])
        for sp in pa.spines.values():
            sp.set_edgecolor("tab:red" if labels[j] == dmd else "tab:blue")
            sp.set_linewidth(2)
    fig.tight_layout()
    fig.savefig(out / "tsne.png", dpi=110)
    plt.close(fig)
    return stats


