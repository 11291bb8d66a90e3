"""Table 3: per-muscle texture scores (Eq. 5) next to the phantom's true involvement."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...constants import MUSCLE_LABELS, MUSCLES
from ...scores import texture_scores
from .. import maps
from .common import PAPER_TABLE3_MEANS, VARIANT_LABELS, md_table, num, plt_module, write_json
from .context import Context, md_header


def _scores(ctx: Context, heat: np.ndarray, native) -> tuple[dict, dict]:
    """(texture score per muscle, measured mean FF per muscle) of a native heatmap."""
    names = {v: m for m, v in MUSCLE_LABELS.items()}
    rows = texture_scores(heat, native.labels, names, native.series.ff, native.series.grid.spacing,
                          ctx.settings.score_params)
    return ({r.muscle: r.texture_score for r in rows if r.muscle in MUSCLES},
            {r.muscle: r.mean_ff for r in rows if r.muscle in MUSCLES})


def _involvement(native) -> dict:
    truth_m = native.truth.get("muscles", {})
    return {m: (truth_m.get(m) or {}).get("involved_fraction") for m in MUSCLES}


def _scan_scores(ctx: Context, variant: str, fold: int, i: int) -> tuple[dict, dict, dict]:
    """(texture score per muscle, true involved fraction per muscle, measured mean FF per muscle) of scan i."""
    c = ctx.cohort
    _, class_maps = ctx.predictions(variant, fold)[i]
    native = c.native(i)
    score, ff = _scores(ctx, maps.to_native(class_maps[:, int(c.classes[i])], c.geometry(i)), native)
    return score, _involvement(native), ff


def _map_heatmaps(ctx: Context, variants, fold: int, i: int, native) -> dict:
    """{map name: native heatmap} of scan i: every network's own map (true class) under the volume-maximum rule
    and (``VARIANT|slice``) the per-slice-within-the-leg rule, and the ceiling (the FF image pooled to each
    network's map resolution)."""
    c = ctx.cohort
    out = {}
    for variant in variants:
        class_maps = ctx.predictions(variant, fold)[i][1]
        out[variant] = maps.to_native(class_maps[:, int(c.classes[i])], c.geometry(i))
        out[f"{variant}|slice"] = maps.to_native(class_maps[:, int(c.classes[i])], c.geometry(i), native.body, "slice")
        model = ctx.model(variant, fold)
        masks = c.body_model(i) if maps.uses_mask(model.net) else None
        fat = maps.fat_maps(model.net, c.stacks(i), int(c.classes[i]), model.normalisation, masks=masks)
        out[f"{variant}|fat"] = maps.to_native(fat, c.geometry(i), native.body, "slice")
        size = tuple(class_maps.shape[-2:])
        # The same evidence at the map's resolution (mean positive attribution per map cell): Eq. (5) asks for a
        # tenth of a muscle above half the slice's maximum, which the pixel-sharp fat map almost never gives.
        out[f"{variant}|fat-pooled"] = maps.to_native(maps.pooled_to_map_grid(fat.clamp_min(0), size), c.geometry(i),
                                                      native.body, "slice")
        ceiling = f"ff-pooled-{size[0]}"
        if ceiling not in out:
            out[ceiling] = maps.to_native(maps.pooled_to_map_grid(c.slices(i), size), c.geometry(i))
    return out


def score_pairs(ctx: Context, variants) -> dict:
    """{map name: [(class, muscle, texture score, true involved fraction, muscle mean FF, scan index)]} over every
    test scan of every fold (each with its fold's networks)."""
    c = ctx.cohort
    pairs: dict = {}
    for k, (_, test) in enumerate(c.folds):
        for i in (int(i) for i in test):
            native = c.native(i)
            inv = _involvement(native)
            for name, heat in _map_heatmaps(ctx, variants, k, i, native).items():
                score, ff = _scores(ctx, heat, native)
                pairs.setdefault(name, []).extend(
                    (c.records[i].class_name, m, score[m], inv[m], ff[m], i) for m in MUSCLES
                    if score[m] is not None and inv[m] is not None)
    return pairs


def spearman(pairs, a: int, b: int) -> tuple[float, int]:
    """(Spearman ρ between columns ``a`` and ``b`` of ``pairs``, number of pairs); NaN with fewer than three pairs
    or a column that does not vary (no ranking)."""
    from scipy import stats as sstats

    if len(pairs) < 3:
        return float("nan"), len(pairs)
    x, y = [p[a] for p in pairs], [p[b] for p in pairs]
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), len(pairs)
    return float(sstats.spearmanr(x, y).statistic), len(pairs)


def mean_within_scan_rho(pairs, column: int = 2) -> tuple[float, int]:
    """(mean over scans of Spearman ρ between ``pairs[column]`` and the involved fraction over the scan's own
    muscles, number of scans that entered). Pairs as :func:`score_pairs` gives them (scan index last); a scan
    whose scores or involvement are all equal has no ranking and is left out.

    This is the clinician's question — which of *this patient's* muscles — which ρ over pooled pairs does not
    answer: pooled pairs also rank the scans by severity, so a map can score a high pooled ρ while ranking the
    muscles of every scan at random (the test suite builds such a case)."""
    by_scan: dict = {}
    for p in pairs:
        by_scan.setdefault(p[-1], []).append(p)
    rhos = [r for r in (spearman(scan, column, 3)[0] for scan in by_scan.values()) if np.isfinite(r)]
    return (float(np.mean(rhos)) if rhos else float("nan")), len(rhos)


def _map_name(name: str) -> str:
    if name.startswith("ff-pooled-"):
        size = name.rsplit("-", 1)[1]
        return f"FF image pooled to {size}×{size} (ceiling)"
    if name.endswith("|slice"):
        return VARIANT_LABELS.get(name[:-6], name[:-6]) + ", per slice within the leg"
    if name.endswith("|fat"):
        return VARIANT_LABELS.get(name[:-4], name[:-4]) + " — fat attribution (gradient × FF), per slice"
    if name.endswith("|fat-pooled"):
        variant = name.removesuffix("|fat-pooled")
        return VARIANT_LABELS.get(variant, variant) + " — fat attribution pooled to the map's resolution, per slice"
    return VARIANT_LABELS.get(name, name)


def run_table3(ctx: Context, out: Path, variant: str | None = None) -> dict:
    """Table 3: texture scores (Eq. 5) of 4 DMD and 4 CMD test scans of fold 1 next to the true involvement; and
    the texture score vs involvement correlation over every test scan of every fold (the headline: every network
    of --networks, the ceiling and the muscle mean FF)."""
    c = ctx.cohort
    s = ctx.settings
    variant = variant or s.networks[0]
    te = [int(i) for i in c.folds[0][1]]
    cases = {name: [i for i in te if c.records[i].class_name == name][:s.table3_cases] for name in ("DMD", "CMD")}
    table = {}
    for name, idx in cases.items():
        table[name] = []
        for i in idx:
            score, inv, ff = _scan_scores(ctx, variant, 0, i)
            table[name].append({"scan": c.name(i), "score": score, "involved_fraction": inv, "mean_ff": ff})
    # correlation over all test scans of all folds
    by_map = score_pairs(ctx, tuple(dict.fromkeys((variant,) + tuple(s.networks))))
    pairs = by_map[variant]

    corr = {}
    for group in ("all", "DMD", "CMD", "normal"):
        sel = [p for p in pairs if group == "all" or p[0] == group]
        r_score, n = spearman(sel, 2, 3)
        r_ff, _ = spearman(sel, 4, 3)
        corr[group] = {"n_pairs": n, "spearman_score_vs_involvement": r_score, "spearman_mff_vs_involvement": r_ff}

    # Every map over all pairs (the target's measure) and within the disease scans: normal scans have no involvement,
    # so over all pairs ρ also rewards a map of the class "normal" that leaves the muscles cold; within DMD or CMD
    # scans it says whether the more involved muscles of a scan score higher.
    groups = {"all": None, "DMD + CMD": ("DMD", "CMD"), "DMD": ("DMD",), "CMD": ("CMD",)}

    def rho_by_group(sel, column):
        entry = {}
        for group, classes in groups.items():
            r, n = spearman([q for q in sel if classes is None or q[0] in classes], column, 3)
            entry["spearman_score_vs_involvement" if group == "all" else f"spearman_{group}"] = r
            entry["n_pairs" if group == "all" else f"n_pairs_{group}"] = n
        r, n = mean_within_scan_rho([q for q in sel if q[0] in ("DMD", "CMD")], column)
        entry["spearman_within_scan_DMD + CMD"], entry["n_scans_within_scan_DMD + CMD"] = r, n
        return entry

    headline = {name: rho_by_group(sel, 2) for name, sel in by_map.items()}  # the texture score
    headline["muscle mean FF"] = rho_by_group(pairs, 4)  # the same pairs' measured mean FF

    def mean_row(rows, key):
        return [float(np.mean([r[key][m] for r in rows if r[key][m] is not None]))
                if any(r[key][m] is not None for r in rows) else float("nan") for m in MUSCLES]

    lines = md_header(ctx, f"Table 3 — muscle texture scores (Eq. 5) of {VARIANT_LABELS[variant]}, fold-1 test scans")
    p = s.score_params
    lines += ["### Headline: texture score vs true involved fraction", "",
              "Spearman ρ over every test scan × muscle pair of every fold (target ≥ 0.6). Each network's map under "
              "the volume-maximum rule and under the per-slice-within-the-leg rule. Ceiling: the texture "
              "score of the FF image average-pooled to the map's resolution; muscle mean FF: the number a reader "
              "already has. Pooled pairs also rank the scans by severity; the last column asks only which of a "
              "scan's own muscles are the more involved (Spearman ρ over its seven muscles, mean over the DMD and "
              "CMD scans whose scores are not all equal, n scans in brackets).", "",
              md_table(["map", "pairs", "ρ(score, involvement)", "ρ, DMD + CMD scans", "ρ, DMD", "ρ, CMD",
                        "ρ within a scan, mean (n)"],
                       [[_map_name(name), v["n_pairs"], num(v["spearman_score_vs_involvement"])]
                        + [num(v[f"spearman_{g}"]) for g in ("DMD + CMD", "DMD", "CMD")]
                        + [f"{num(v['spearman_within_scan_DMD + CMD'])} ({v['n_scans_within_scan_DMD + CMD']})"]
                        for name, v in headline.items()]), ""]
    lines += [f"Heatmap = the true class's map, ReLU, on the native grid, divided by its volume maximum; a slice "
              f"counts as highlighted for a muscle when ≥ {p.min_overlap:.0%} of its voxels are ≥ {p.threshold} "
              f"(muscle present: ≥ {p.min_area_mm2} mm²). Each case: texture score, then the phantom's true "
              "involved fraction of the muscle.", ""]
    header = ["Case"] + list(MUSCLES)
    rows = []
    for name in ("DMD", "CMD"):
        rows.append([f"**{name}**"] + [""] * len(MUSCLES))
        for n, r in enumerate(table[name], start=1):
            rows.append([f"Case No.{n} ({r['scan']}) score"] + [num(r["score"][m]) for m in MUSCLES])
            rows.append(["  true involved fraction"] + [num(r["involved_fraction"][m]) for m in MUSCLES])
        if table[name]:
            rows.append([f"{name} mean score"] + [num(v) for v in mean_row(table[name], "score")])
            rows.append([f"{name} mean true involvement"] + [num(v) for v in mean_row(table[name],
                                                                                     "involved_fraction")])
        rows.append([f"paper {name} mean score"] + [f"{v:.3f}" for v in PAPER_TABLE3_MEANS[name]])
    lines += [md_table(header, rows), "",
              "Texture score vs true per-muscle involved fraction, every test scan of every fold "
              "(Spearman ρ over scan × muscle pairs; the measured mean FF of the muscle is the reference a reader "
              "already has):", "",
              md_table(["scans", "pairs", "ρ(texture score, involvement)", "ρ(muscle mean FF, involvement)"],
                       [[g, v["n_pairs"], num(v["spearman_score_vs_involvement"]),
                         num(v["spearman_mff_vs_involvement"])] for g, v in corr.items()]), ""]
    (out / "table3.md").write_text("\n".join(lines) + "\n")
    write_json(out / "table3.json", {"cohort": ctx.describe(), "settings": s.as_dict(), "variant": variant,
                                     "cases": table, "correlation": corr, "headline": headline,
                                     "pairs": [dict(zip(("class", "muscle", "score", "involved_fraction",
                                                         "mean_ff", "scan"), p)) for p in pairs]})
    plt = plt_module()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, name in zip(axes, ("DMD", "CMD")):
        if table[name]:
            x = np.arange(len(MUSCLES))
            ax.bar(x - 0.2, mean_row(table[name], "score"), 0.4, label="texture score (mean)")
            ax.bar(x + 0.2, mean_row(table[name], "involved_fraction"), 0.4, label="true involved fraction")
            ax.plot(x, PAPER_TABLE3_MEANS[name], "k.", label="paper score (mean)")
            ax.set_xticks(x)
            ax.set_xticklabels(MUSCLES)
            ax.set_ylim(0, 1)
        ax.set_title(f"{name}, fold-1 test scans", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "table3.png", dpi=110)
    plt.close(fig)
    return {"correlation": corr}


