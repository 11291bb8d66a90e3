"""Leave one pattern family out: does the network recognise a disease pattern it never saw, and does it know?

For each disease pattern family F of the cohort (cohort.csv ``pattern_family``; ``normal`` is never held out) and
each of the first ``family_folds`` subject folds k: a network (the first of --networks) is trained on fold k's
training subjects minus every subject with a scan of family F (``Context.family_model``). It is tested on

- every scan of family F (none of their subjects was trained on), and
- fold k's test scans of the other families (in-distribution: the same generator, families it saw),

and, as the reference, fold k's usual network (trained with F) is tested on fold k's test scans of family F.
When the network carries an unfamiliar-input score (card key ``unfamiliar``), each scan is also classified the way
``mdtexture classify`` does (:func:`MDTextureLib.inference.classify_volume`) and its legs' ``unfamiliar.flagged``
counted: a held-out family should be flagged more often than the in-distribution scans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...constants import CLASSES
from ...errors import InputError
from .common import VARIANT_LABELS, md_table, pct, plt_module, write_json
from ...calibration import softmax
from .context import Context, md_header


def scan_correct(ctx: Context, net, i: int) -> bool:
    """Whether ``net``'s scan verdict (arg max of the mean slice probability) on scan ``i`` is its true class."""
    logits, _ = ctx.scan_outputs(net, i)
    return int(softmax(logits).mean(axis=0).argmax()) == int(ctx.cohort.classes[i])


def scan_unfamiliar(ctx: Context, model, i: int) -> dict | None:
    """{score, threshold, flagged} of scan ``i`` as ``classify`` reports it (the highest-scoring leg), or None when
    the model has no unfamiliar-input statistics."""
    if not model.card.get("unfamiliar"):
        return None
    from ...inference import classify_volume

    legs = [leg.get("unfamiliar") for leg in classify_volume(ctx.cohort.series(i), model, device="cpu")
            .summary()["legs"]]
    legs = [u for u in legs if u]
    return max(legs, key=lambda u: u["score"]) if legs else None


def rate(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def family_run(ctx: Context, variant: str, family: str, fold: int) -> dict:
    """One (held-out family, fold): accuracy and flagged rates on the held-out family and in distribution."""
    c = ctx.cohort
    held_subjects = {c.subjects[i] for i in range(len(c)) if c.pattern_family(i) == family}
    held = [i for i in range(len(c)) if c.pattern_family(i) == family]
    in_dist = [int(i) for i in c.folds[fold][1] if c.subjects[int(i)] not in held_subjects]
    model = ctx.family_model(variant, fold, family)
    rows = []
    for group, scans in (("held_out", held), ("in_distribution", in_dist)):
        for i in scans:
            u = scan_unfamiliar(ctx, model, i)
            rows.append({"scan": c.name(i), "group": group, "class": CLASSES[int(c.classes[i])],
                         "family": c.pattern_family(i), "correct": scan_correct(ctx, model.net, i),
                         "unfamiliar": u, "flagged": None if u is None else bool(u["flagged"])})
    seen = [int(i) for i in c.folds[fold][1] if c.pattern_family(int(i)) == family]
    reference = ctx.model(variant, fold).net
    out = {"family": family, "fold": fold + 1, "n_held_out_subjects": len(held_subjects), "scans": rows,
           "seen_accuracy": rate([scan_correct(ctx, reference, i) for i in seen]), "n_seen": len(seen),
           "has_unfamiliar_score": bool(model.card.get("unfamiliar"))}
    for group in ("held_out", "in_distribution"):
        sel = [r for r in rows if r["group"] == group]
        out[group] = {"n": len(sel), "accuracy": rate([r["correct"] for r in sel]),
                      "flagged_rate": rate([r["flagged"] for r in sel])}
    return out


def held_out_families(ctx: Context) -> list[str]:
    """Disease pattern families of the cohort that can be held out: every class keeps training subjects."""
    c = ctx.cohort
    families = sorted({c.pattern_family(i) for i in range(len(c))} - {""})
    if not families:
        raise InputError("the cohort records no pattern_family (cohort.csv column): write it with the current "
                         "`mdtexture phantom`")
    usable = []
    for family in families:
        if family == "normal":
            continue
        held = {c.subjects[i] for i in range(len(c)) if c.pattern_family(i) == family}
        left = {int(c.classes[i]) for i in range(len(c)) if c.subjects[i] not in held}
        if len(left) == len(CLASSES):
            usable.append(family)
        else:
            ctx.log(f"families: {family} not held out (its class would have no training subject left)")
    if not usable:
        raise InputError("no pattern family can be held out without emptying a class")
    return usable


def run_families(ctx: Context, out: Path) -> dict:
    """Leave-one-pattern-family-out accuracy and unfamiliar-flag rates (module docstring)."""
    c = ctx.cohort
    s = ctx.settings
    variant = s.networks[0]
    folds = range(min(s.family_folds, c.n_folds))
    runs = [family_run(ctx, variant, f, k) for f in held_out_families(ctx) for k in folds]
    lines = md_header(ctx, f"Leave one pattern family out — {VARIANT_LABELS.get(variant, variant)}")
    lines += [f"Per held-out pattern family and fold (first {len(folds)} of {c.n_folds}): a network trained "
              f"without any subject of that family ({s.iterations} iterations), tested on all of the family's scans "
              "('held out') and on the fold's test scans of the other families ('in distribution'); 'seen' is the "
              "fold's usual network (trained with the family) on the fold's test scans of the family. Flagged: "
              "share of scans whose `unfamiliar.flagged` is true, as `classify` reports it (— when the network "
              "has no unfamiliar-input score).", "",
              md_table(["held-out family", "fold", "scans", "accuracy held out", "accuracy seen",
                        "accuracy in distribution", "flagged held out", "flagged in distribution"],
                       [[r["family"], r["fold"], r["held_out"]["n"], pct(r["held_out"]["accuracy"]),
                         pct(r["seen_accuracy"]), pct(r["in_distribution"]["accuracy"]),
                         pct(r["held_out"]["flagged_rate"]), pct(r["in_distribution"]["flagged_rate"])]
                        for r in runs]), ""]
    total = {g: {"accuracy": rate([x["correct"] for r in runs for x in r["scans"] if x["group"] == g]),
                 "flagged_rate": rate([x["flagged"] for r in runs for x in r["scans"] if x["group"] == g])}
             for g in ("held_out", "in_distribution")}
    lines.append(f"Over all runs: accuracy held out {pct(total['held_out']['accuracy'])} % vs in distribution "
                 f"{pct(total['in_distribution']['accuracy'])} %; flagged unfamiliar "
                 f"{pct(total['held_out']['flagged_rate'])} % vs {pct(total['in_distribution']['flagged_rate'])} % "
                 "(target: held out flagged more often).")
    (out / "families.md").write_text("\n".join(lines) + "\n")
    write_json(out / "families.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "variant": variant,
                                       "runs": runs, "total": total, "models": ctx.provenance["models"]})
    _figure(out / "families.png", runs, ctx)
    return {"runs": runs, "total": total}


def _figure(path: Path, runs: list, ctx: Context) -> None:
    plt = plt_module()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(runs))
    names = [f"{r['family']}\nfold {r['fold']}" for r in runs]
    for ax, key, title in ((axes[0], "accuracy", "scan accuracy"), (axes[1], "flagged_rate", "flagged unfamiliar")):
        for j, (group, label) in enumerate((("held_out", "held-out family"), ("in_distribution", "in distribution"))):
            vals = [100 * r[group][key] if np.isfinite(r[group][key]) else 0.0 for r in runs]
            ax.bar(x + (j - 0.5) * 0.4, vals, 0.4, label=label)
        ax.set_xticks(x)
        ax.set_xticklabels(names, fontsize=7, rotation=30, ha="right")
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.set_title(title + (" (phantom)" if ctx.label == "phantom" else ""), fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
