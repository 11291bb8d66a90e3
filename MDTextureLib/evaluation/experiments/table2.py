"""Table 2: ResNet vs ICAM at the same map size (28², 14²)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import PAPER_TABLE2, TABLE2_VARIANTS, VARIANT_LABELS, md_table, pct, plt_module, summary, write_json
from .context import Context, deep_accuracy, md_header


def run_table2(ctx: Context, out: Path) -> dict:
    """Table 2: ResNet vs ICAM at the same map size (28², 14²), per fold and mean."""
    c = ctx.cohort
    s = ctx.settings
    results = {}
    for variant in TABLE2_VARIANTS:
        folds = deep_accuracy(ctx, variant)
        results[variant] = {"folds": folds, "keyframe": summary([f["keyframe_accuracy"] for f in folds]),
                            "scan": summary([f["scan_accuracy"] for f in folds]),
                            "slice": summary([f["slice_accuracy"] for f in folds]),
                            "paper": PAPER_TABLE2[variant]}
    header = ["Map size", "Method"] + [f"Fold-{k + 1}" for k in range(c.n_folds)] + ["Mean", "scan-level mean",
                                                                                      "paper folds → mean"]
    rows = []
    for variant in TABLE2_VARIANTS:
        r = results[variant]
        rows.append([f"{variant[-2:]}×{variant[-2:]}", "ICAM" if variant.startswith("icam") else "ResNet"]
                    + [pct(f["keyframe_accuracy"]) for f in r["folds"]] + [pct(r["keyframe"]["mean"]),
                                                                           pct(r["scan"]["mean"]),
                                                                           " / ".join(f"{v:.1f}" for v in r["paper"])])
    lines = md_header(ctx, "Table 2 — ResNet vs ICAM at equal map size, test accuracy (%)")
    lines += ["Key-frame test accuracy per fold. ResNet-28² / ResNet-14² are ResNet18 cut after layer2 / layer3; "
              "ICAM-28² / ICAM-14² add the next stage through the shared linear head (Eq. 1).", "",
              md_table(header, rows), ""]
    for size in ("28", "14"):
        a, b = results[f"icam{size}"]["keyframe"]["mean"], results[f"resnet{size}"]["keyframe"]["mean"]
        if np.isfinite(a) and np.isfinite(b):
            verdict = "beats" if a > b else ("ties with" if a == b else "does **not** beat")
            lines.append(f"- {size}²: ICAM {verdict} ResNet ({pct(a)} vs {pct(b)} %); paper: "
                         f"{PAPER_TABLE2['icam' + size][-1]} vs {PAPER_TABLE2['resnet' + size][-1]} %.")
    (out / "table2.md").write_text("\n".join(lines) + "\n")
    write_json(out / "table2.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "results": results,
                                     "models": ctx.provenance["models"]})
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(c.n_folds)
    for j, variant in enumerate(TABLE2_VARIANTS):
        ax.bar(x + (j - 1.5) * 0.2, [100 * f["keyframe_accuracy"] for f in results[variant]["folds"]], 0.2,
               label=VARIANT_LABELS[variant])
    ax.set_xticks(x)
    ax.set_xticklabels([f"Fold-{k + 1}" for k in range(c.n_folds)])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Table 2" + (" (phantom)" if ctx.label == "phantom" else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "table2.png", dpi=110)
    plt.close(fig)
    return results


