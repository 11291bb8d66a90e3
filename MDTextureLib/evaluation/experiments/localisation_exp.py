"""Localisation: every heatmap scored against the phantom's involvement mask (the evaluation the paper could
not do); the metrics themselves live in :mod:`MDTextureLib.evaluation.localisation`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ...constants import CLASSES, MUSCLE_LABELS, MUSCLES
from ...errors import InputError
from ...stacks import maps_to_native
from .. import localisation, maps
from .common import NAMED_SPECIFIC, SPECIFIC_MARGIN, VARIANT_LABELS, md_table, num, plt_module, summary, write_json
from .context import Context, md_header


def class_specific_muscles(ctx: Context, margin: float = SPECIFIC_MARGIN) -> dict:
    """From the phantom's truth: per class, muscles whose mean involved fraction exceeds the other disease class's
    by ``margin`` (class-specific), and muscles involved in both within ``margin`` (shared)."""
    c = ctx.cohort
    inv = {name: {m: [] for m in MUSCLES} for name in ("DMD", "CMD")}
    for i, r in enumerate(c.records):
        if r.class_name not in inv:
            continue
        truth = json.loads(Path(r.truth).read_text(encoding="utf-8")) if getattr(r, "truth", None) else {}
        for m in MUSCLES:
            v = (truth.get("muscles", {}).get(m) or {}).get("involved_fraction")
            if v is not None:
                inv[r.class_name][m].append(float(v))
    mean = {k: {m: (float(np.mean(v)) if v else float("nan")) for m, v in d.items()} for k, d in inv.items()}
    out = {"mean_involved_fraction": mean, "margin": margin}
    for name, other in (("DMD", "CMD"), ("CMD", "DMD")):
        spec = [m for m in MUSCLES if mean[name][m] - mean[other][m] > margin]
        shared = [m for m in MUSCLES if abs(mean[name][m] - mean[other][m]) <= margin
                  and min(mean[name][m], mean[other][m]) > 0.05]
        out[name] = {"specific": spec, "shared": shared}
    return out


def _specific_share(heat: np.ndarray, inv: np.ndarray, labels: np.ndarray, spec: list, shared: list) -> float:
    """Share of the map's mass on involved tissue of (specific ∪ shared) muscles that lies in the specific ones."""
    if not spec or not shared:
        return float("nan")
    in_spec = inv & np.isin(labels, [MUSCLE_LABELS[m] for m in spec])
    in_shared = inv & np.isin(labels, [MUSCLE_LABELS[m] for m in shared])
    a, b = float(heat[in_spec].sum()), float(heat[in_shared].sum())
    return a / (a + b) if a + b > 0 else float("nan")


def specific_ratio(heat: np.ndarray, labels: np.ndarray, muscles) -> float:
    """Map mass share inside the muscles that lies in ``muscles``, over the share a uniform map would give them
    (1 = no preference; the target for the class-specific muscles is ≥ 1.5)."""
    if not muscles:
        return float("nan")
    target = np.isin(labels, [MUSCLE_LABELS[m] for m in muscles])
    return localisation.mass_ratio_to_uniform(heat, target, labels > 0)


def scan_heatmaps(ctx: Context, fold: int, i: int, native) -> tuple[dict, dict]:
    """({(network or "reference", method): native heatmap in [0, 1]}, {network: signed native fat map}) of scan
    ``i`` (test scan of ``fold``), map of its true class: reference rows (random map, FF image, FF pooled to each
    network's map resolution = the ceiling, FF with random signs = the fat map's null), the involvement mask itself
    (the truth as a map: the best any map can do), then per network its own map (volume-maximum rule and the
    per-slice-within-the-leg rule), the fat map and the gradient maps. The signed fat maps (before ReLU and
    scaling, logit units) say whether the fat on the involved tissue argues for the class or against it."""
    c = ctx.cohort
    s = ctx.settings
    cl = int(c.classes[i])
    geometry = c.geometry(i)
    z = native.involvement.shape[0]
    grid = max(1, c.size_px // 8)
    heatmaps = {("reference", "random"): maps.to_native(maps.random_maps((z, grid, grid), s.seed * 100003 + i),
                                                        geometry),
                ("reference", "ff"): np.clip(native.series.ff, 0, 1),
                # The truth itself as a map: what a map that lights exactly the involved tissue scores. Its AUC is 1;
                # its class-specific ratio is the most any map can reach on this cohort.
                ("reference", "involvement"): native.involvement.astype(np.float32),
                # The fat map's null: the fat itself with a coin-flip sign per pixel, shown like the fat map. After
                # ReLU it keeps half the fat at full value, so it localises "well" with no evidence in its signs.
                ("reference", "ff-random-sign"): maps.to_native(maps.random_sign(c.slices(i), s.seed * 100003 + i),
                                                                geometry, native.body, "slice")}
    own = {}
    for variant in s.networks:
        own[variant] = ctx.predictions(variant, fold)[i][1]
        size = tuple(own[variant].shape[-2:])
        key = ("reference", f"ff-pooled-{size[0]}")
        if key not in heatmaps:
            heatmaps[key] = maps.to_native(maps.pooled_to_map_grid(c.slices(i), size), geometry)
    stacks = c.stacks(i)
    signed_fat = {}
    for variant in s.networks:
        model = ctx.model(variant, fold)
        net = model.net
        masks = c.body_model(i) if maps.uses_mask(net) else None
        heatmaps[(variant, "icam")] = maps.to_native(own[variant][:, cl], geometry)
        heatmaps[(variant, "icam-slice")] = maps.to_native(own[variant][:, cl], geometry, native.body, "slice")
        fat = maps.fat_maps(net, stacks, cl, model.normalisation, masks=masks)
        heatmaps[(variant, "fat")] = maps.to_native(fat, geometry, native.body, "slice")
        signed_fat[variant] = maps_to_native(fat, geometry).numpy()
        for m, raw in maps.gradient_maps(net, stacks, cl, masks=masks).items():
            heatmaps[(variant, m)] = maps.to_native(raw, geometry)
    return heatmaps, signed_fat


def run_localisation(ctx: Context, out: Path) -> dict:
    """Score every heatmap against the phantom's involvement mask on every test scan of every fold."""
    c = ctx.cohort
    s = ctx.settings
    spec = class_specific_muscles(ctx)
    records = []
    area_shares = []  # what a map spread evenly over the involved tissue would give
    examples = {}
    t0 = time.perf_counter()
    for k, (_, te) in enumerate(c.folds):
        for i in (int(i) for i in te):
            cl = int(c.classes[i])
            name = CLASSES[cl]
            native = c.native(i)
            inv = native.involvement
            if not inv.any():
                continue  # nothing to point at (normal scans)
            domains = {"muscles": native.muscles, "leg": native.body}
            spacing = float(np.mean(native.series.grid.spacing[:2]))
            tol_px = s.tolerance_mm / spacing
            heatmaps, signed_fat = scan_heatmaps(ctx, k, i, native)
            sp = spec.get(name, {"specific": [], "shared": []})
            area_shares.append({"class": name, "share": _specific_share(np.ones(inv.shape, np.float32), inv,
                                                                          native.labels, sp["specific"],
                                                                          sp["shared"])})
            for (variant, method), heat in heatmaps.items():
                row = {"scan": c.name(i), "index": i, "class": name, "fold": k + 1, "network": variant,
                       "method": method,
                       "specific_share": _specific_share(heat, inv, native.labels, sp["specific"], sp["shared"]),
                       "specific_ratio": specific_ratio(heat, native.labels, NAMED_SPECIFIC.get(name, ())),
                       "specific_ratio_truth": specific_ratio(heat, native.labels, sp["specific"])}
                for dname, dom in domains.items():
                    row[dname] = localisation.scan_metrics(heat, inv, dom, tol_px)
                if method == "fat":
                    row["fat_sign"] = {
                        "involved": localisation.sign_agreement(signed_fat[variant], inv, native.muscles),
                        "uninvolved": localisation.sign_agreement(signed_fat[variant], ~inv, native.muscles)}
                records.append(row)
            if name not in examples and k == 0:
                examples[name] = (i, {key: h for key, h in heatmaps.items()
                                      if key[0] == "reference" or key[0] == s.networks[0] or key[1] == "icam"}, native)
        ctx.log(f"localisation: fold {k + 1} done ({time.perf_counter() - t0:.0f} s, {len(records)} rows)")
    if not records:
        raise InputError("no test scan has an involvement mask: nothing to localise")
    metrics = list(localisation.METRICS) + ["pointing_game_tol"]
    keys = []
    for r in records:
        key = (r["network"], r["method"])
        if key not in keys:
            keys.append(key)
    agg = {}
    for key in keys:
        rows = [r for r in records if (r["network"], r["method"]) == key]
        entry = {}
        for group in ("all", "DMD", "CMD"):
            sel = [r for r in rows if group == "all" or r["class"] == group]
            entry[group] = {d: {m: summary([r[d][m] for r in sel]) for m in metrics} for d in ("muscles", "leg")}
            for extra in ("specific_share", "specific_ratio", "specific_ratio_truth"):
                entry[group][extra] = summary([r[extra] for r in sel])
            if key[1] == "fat":
                entry[group]["fat_sign"] = {part: {q: summary([r["fat_sign"][part][q] for r in sel])
                                                   for q in ("positive_share", "net")}
                                            for part in ("involved", "uninvolved")}
        agg[f"{key[0]}/{key[1]}"] = entry
    lines = md_header(ctx, "Localisation — do the heatmaps point at the involved tissue?")
    lines += ["Every DMD/CMD test scan of every fold (normal scans have no involvement), heatmap of the true class "
              "against the phantom's `involvement` mask (voxels where pathological fat was placed). Pointing games "
              f"per slice (strict, and within {s.tolerance_mm:g} mm), the other metrics on the volume. Domain "
              "'muscles': only labelled muscle voxels are scored (does the map pick the involved part of the "
              "muscles?); domain 'leg': every voxel inside the leg (does it also avoid subcutaneous fat, marrow?). "
              "Gradient methods are computed on the same trained networks at the map stage (the layer whose "
              "resolution the network's own map has). Reference rows: i.i.d. random map on a coarse grid, the "
              "FF image itself, the involvement mask itself (the truth as a map: AUC 1, and the most any map can "
              "give the class-specific muscles on this cohort), and the **ceiling**: the FF image on the model "
              "window average-pooled to a network's map resolution, upsampled and scaled like a map (what a map "
              "of that resolution could show by following fat), and the FF image with a random sign per pixel, "
              "shown like the fat map (the fat map's null: what lighting fat scores with no evidence in the "
              "signs). Own maps are shown under two rules: the volume maximum (as `classify` did so far) and 'per "
              "slice within the leg' (0 outside the body, each slice over its own maximum in the leg). "
              "Mean over scans (n in the JSON).", ""]
    label = map_label
    lines += headline(agg)
    lines += fat_sign_lines(agg)

    cols = ["pointing_game", "pointing_game_tol", "energy_pointing_game", "relevance_mass_accuracy",
            "relevance_rank_accuracy", "pixel_auc"]
    for dname in ("muscles", "leg"):
        lines += [f"### Domain: {dname}, all DMD + CMD scans", "",
                  md_table(["Map"] + [localisation.METRIC_LABELS[m] for m in cols],
                           [[label(key)] + [num(agg[key]["all"][dname][m]["mean"]) for m in cols] for key in agg]),
                  ""]
    lines += ["### Per class (domain: muscles)", "",
              md_table(["Map"] + [f"{g} {localisation.METRIC_LABELS[m]}" for g in ("DMD", "CMD")
                                  for m in ("pointing_game", "relevance_mass_accuracy", "pixel_auc")],
                       [[label(key)] + [num(agg[key][g]["muscles"][m]["mean"]) for g in ("DMD", "CMD")
                                        for m in ("pointing_game", "relevance_mass_accuracy", "pixel_auc")]
                        for key in agg]), ""]
    mean_inv = spec["mean_involved_fraction"]
    lines += ["### Shared vs class-specific involvement", "",
              "Mean true involved fraction per muscle over the cohort:", "",
              md_table(["class"] + list(MUSCLES),
                       [[n] + [num(mean_inv[n][m], 2) for m in MUSCLES] for n in ("DMD", "CMD")]), ""]
    for n in ("DMD", "CMD"):
        lines.append(f"- {n}: class-specific muscles (involved fraction > the other class's + {SPECIFIC_MARGIN}): "
                     f"{', '.join(spec[n]['specific']) or 'none'}; shared (within ±{SPECIFIC_MARGIN}, both > 0.05): "
                     f"{', '.join(spec[n]['shared']) or 'none'}.")
    lines += ["", "Share of each map's mass on involved tissue that falls in the class-specific rather than the shared "
              "muscles (higher = prefers the class-specific regions; compare with the FF image, which weighs all "
              "fat alike):", "",
              md_table(["Map", "DMD", "CMD"],
                       [["involved area (a map uniform over the involvement)"]
                        + [num(summary([a["share"] for a in area_shares if a["class"] == g])["mean"])
                           for g in ("DMD", "CMD")]]
                       + [[label(key)] + [num(agg[key][g]["specific_share"]["mean"]) for g in ("DMD", "CMD")]
                          for key in agg]), ""]
    lines += ["Class-specific muscle share: the map's mass inside the muscles that falls in the class's specific "
              "muscle(s), divided by the share a uniform map would give them (1 = no preference; target ≥ 1.5). "
              f"Named: {', '.join(f'{n} scans → {m}' for n, ms in NAMED_SPECIFIC.items() for m in ms)}; "
              "from the truth: the specific muscles listed above.", "",
              md_table(["Map", "DMD (named)", "CMD (named)", "DMD (truth)", "CMD (truth)"],
                       [[label(key)] + [num(agg[key][g][r]["mean"], 2) for r in ("specific_ratio",
                                                                                 "specific_ratio_truth")
                                        for g in ("DMD", "CMD")] for key in agg]), ""]
    # verdicts written from the numbers
    ff_auc = agg["reference/ff"]["all"]["muscles"]["pixel_auc"]["mean"]
    ff_mass = agg["reference/ff"]["all"]["muscles"]["relevance_mass_accuracy"]["mean"]
    lines.append("Against the FF image (domain muscles, pixel AUC / mass accuracy "
                 f"{num(ff_auc)} / {num(ff_mass)}):")
    for key in agg:
        if key.startswith("reference/"):
            continue
        a = agg[key]["all"]["muscles"]["pixel_auc"]["mean"]
        m = agg[key]["all"]["muscles"]["relevance_mass_accuracy"]["mean"]
        if np.isfinite(a) and np.isfinite(ff_auc):
            better = "better than" if a > ff_auc else "**no better than**"
            lines.append(f"- {label(key)}: AUC {num(a)}, mass {num(m)} — {better} the FF image by AUC.")
    (out / "localisation.md").write_text("\n".join(lines) + "\n")
    write_json(out / "localisation.json", {"cohort": ctx.describe(), "settings": s.as_dict(),
                                           "class_specific": spec, "summary": agg, "scans": records,
                                           "involved_area_specific_share": area_shares,
                                           "models": ctx.provenance["models"]})
    _localisation_figures(out, agg, examples, label, ctx)
    return {"summary": agg}


def map_label(key: str) -> str:
    """Display name of a summary key ``network/method``."""
    net, method = key.split("/")
    if net == "reference":
        if method.startswith("ff-pooled-"):
            size = method.rsplit("-", 1)[1]
            return f"FF image pooled to {size}×{size} (ceiling)"
        return maps.METHOD_LABELS[method]
    base = VARIANT_LABELS.get(net, net)
    return f"{base} — {'own map' if method == 'icam' else maps.METHOD_LABELS[method]}"


def headline(agg: dict) -> list[str]:
    """The issue's targets in one table: in-muscle pixel AUC (≥ 0.75, ceiling ≈ 0.8) and the named class-specific
    muscle ratio (≥ 1.5×), for the reference rows and every network's own map."""
    keys = [k for k in agg if k.startswith("reference/") or k.endswith(("/icam", "/icam-slice", "/fat"))]
    rows = [[map_label(k), num(agg[k]["all"]["muscles"]["pixel_auc"]["mean"]),
             num(agg[k]["DMD"]["specific_ratio"]["mean"], 2), num(agg[k]["CMD"]["specific_ratio"]["mean"], 2)]
            for k in keys]
    return ["### Headline", "",
            "Pixel AUC inside the muscles against `involvement.nrrd` (target ≥ 0.75) and class-specific muscle share "
            "relative to a uniform map (target ≥ 1.5×):", "",
            md_table(["Map", "pixel AUC (muscles)", "DMD → Per ratio", "CMD → TP ratio"], rows), ""]


def fat_sign_lines(agg: dict) -> list[str]:
    """Do the fat maps' signs carry evidence? Their pixel AUC against the random-sign null, and how their signed
    values lean on the involved and the uninvolved muscle tissue."""
    keys = [k for k in agg if k.endswith("/fat")]
    null = agg.get("reference/ff-random-sign")
    if not keys or null is None:
        return []
    null_auc = null["all"]["muscles"]["pixel_auc"]["mean"]
    rows = []
    for k in keys:
        sign = agg[k]["all"]["fat_sign"]
        rows.append([map_label(k), num(agg[k]["all"]["muscles"]["pixel_auc"]["mean"]), num(null_auc),
                     num(sign["involved"]["positive_share"]["mean"]), num(sign["involved"]["net"]["mean"], 2),
                     num(sign["uninvolved"]["positive_share"]["mean"]), num(sign["uninvolved"]["net"]["mean"], 2)])
    lines = ["### Do the fat map's signs mean anything?", "",
             "A gradient × FF map lights fat by construction: after ReLU, any sign pattern keeps some fat at full "
             "value, so its AUC against the involvement says little by itself. The null is the FF image with a "
             "coin-flip sign per pixel, shown like the fat map; a fat map whose signs carry evidence beats it, and "
             "its signed values on the involved muscle tissue argue for the class (positive share well above ½, "
             "net Σ A / Σ |A| near +1).", "",
             md_table(["Map", "pixel AUC (muscles)", "random-sign null", "involved: share > 0", "involved: net",
                       "uninvolved: share > 0", "uninvolved: net"], rows), ""]
    for k, row in zip(keys, rows):
        a = agg[k]["all"]["muscles"]["pixel_auc"]["mean"]
        if np.isfinite(a) and np.isfinite(null_auc):
            verdict = "beats" if a > null_auc else "**does not beat**"
            lines.append(f"- {row[0]}: AUC {num(a)} {verdict} the random-sign null ({num(null_auc)}).")
    return lines + [""]


def _localisation_figures(out: Path, agg: dict, examples: dict, label, ctx: Context) -> None:
    plt = plt_module()
    keys = list(agg)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    for ax, metric in zip(axes, ("pointing_game", "relevance_mass_accuracy", "pixel_auc")):
        vals = [agg[k]["all"]["muscles"][metric]["mean"] for k in keys]
        sds = [agg[k]["all"]["muscles"][metric]["sd"] for k in keys]
        colors = ["0.6" if k.startswith("reference/") else ("tab:red" if k.endswith("/icam") else "tab:blue")
                  for k in keys]
        ax.barh(np.arange(len(keys)), vals, xerr=sds, color=colors, capsize=2)
        ax.set_title(localisation.METRIC_LABELS[metric] + " (muscles)", fontsize=9)
        ax.set_xlim(0, 1)
    axes[0].set_yticks(np.arange(len(keys)))
    axes[0].set_yticklabels([label(k) for k in keys], fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle("Localisation against the involvement mask" + (" (phantom)" if ctx.label == "phantom" else ""),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "localisation.png", dpi=110)
    plt.close(fig)
    if not examples:
        return
    c = ctx.cohort
    n_panels = 3 + min(3, len(ctx.settings.networks))
    fig, axes = plt.subplots(len(examples), n_panels, figsize=(2.6 * n_panels, 2.8 * len(examples)), squeeze=False)
    for row, (name, (i, heats, native)) in zip(axes, examples.items()):
        frames = c.keyframes(i)
        area = native.involvement.sum(axis=(1, 2))
        z = int(np.argmax(area))
        nets = list(ctx.settings.networks)
        panels = [("FF + involvement", None)] + [(VARIANT_LABELS[v], (v, "icam")) for v in nets[:3]]
        panels += [(f"Grad-CAM ({VARIANT_LABELS[nets[0]]} net)", (nets[0], "gradcam")),
                   ("random map", ("reference", "random"))]
        for ax, (title, key) in zip(row, panels):
            ax.imshow(native.series.ff[z], cmap="gray", vmin=0, vmax=1)
            if key is not None and key in heats:
                ax.imshow(heats[key][z], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.contour(native.involvement[z], levels=[0.5], colors="lime", linewidths=0.6)
            ax.set_title(f"{name} {c.name(i)} z={z}: {title}" if key is None else title, fontsize=7)
            ax.axis("off")
        del frames
    fig.tight_layout()
    fig.savefig(out / "localisation_examples.png", dpi=110)
    plt.close(fig)


