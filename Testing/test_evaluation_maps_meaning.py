"""Issue 12 measures in the evaluation: ceiling map, class-specific muscle ratio, per-slice leg normalisation,
leg-pooled networks' masks, calibration error, leave-one-pattern-family-out, and the cohort named in every header.
Numbers are known by construction."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch


# ------------------------------------------------------------------------------------------------ pure measures
def test_mass_ratio_to_uniform_known_values():
    from MDTextureLib.evaluation.localisation import mass_ratio_to_uniform

    labels = np.zeros((1, 4, 4), int)
    labels[0, :2] = 3  # Per: half of the muscle voxels
    labels[0, 2:] = 5
    muscles = labels > 0
    target = labels == 3
    assert mass_ratio_to_uniform(np.ones(labels.shape), target, muscles) == pytest.approx(1.0)
    assert mass_ratio_to_uniform(target.astype(float), target, muscles) == pytest.approx(2.0)
    heat = np.where(target, 3.0, 1.0)  # 3/4 of the mass on half of the voxels
    assert mass_ratio_to_uniform(heat, target, muscles) == pytest.approx(1.5)
    assert np.isnan(mass_ratio_to_uniform(np.zeros(labels.shape), target, muscles))


def test_specific_ratio_uses_the_named_muscles():
    from MDTextureLib.evaluation.experiments.localisation_exp import specific_ratio

    labels = np.zeros((2, 6, 6), int)
    labels[:, :, :2] = 3  # Per
    labels[:, :, 2:4] = 4  # TP
    labels[:, :, 4:] = 5  # Sol
    heat = (labels == 3).astype(float)
    assert specific_ratio(heat, labels, ("Per",)) == pytest.approx(3.0)  # all mass on a third of the muscles
    assert specific_ratio(heat, labels, ("TP",)) == pytest.approx(0.0)
    assert np.isnan(specific_ratio(heat, labels, ()))


def test_pooled_ff_is_the_block_mean():
    from MDTextureLib.evaluation.maps import pooled_to_map_grid

    ff = torch.zeros(2, 8, 8)
    ff[:, :4, :4] = 1.0
    ff[1, 4:, 4:] = 0.5
    pooled = pooled_to_map_grid(ff, (2, 2))
    assert pooled.shape == (2, 2, 2)
    assert pooled[0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert pooled[1].tolist() == [[1.0, 0.0], [0.0, 0.5]]
    assert pooled_to_map_grid(ff, (8, 8)).equal(ff)  # at full resolution the ceiling is the FF image itself


def test_random_sign_keeps_magnitudes_and_flips_about_half():
    from MDTextureLib.evaluation.maps import random_sign

    ff = torch.rand(4, 32, 32) + 0.1
    flipped = random_sign(ff, seed=3)
    assert flipped.abs().equal(ff)  # the fat itself, only the signs drawn
    assert 0.45 < float((flipped > 0).float().mean()) < 0.55
    assert random_sign(ff, seed=3).equal(flipped) and not random_sign(ff, seed=4).equal(flipped)


def test_a_random_sign_fat_map_localises_without_any_evidence():
    """The finding behind the null row: inside the muscles, FF with coin-flip signs scores a pixel AUC far above ½
    against the involvement (half the involved fat survives ReLU at full value), so a fat map's AUC alone does not
    show that its signs mean anything; its sign agreement does (½ and 0 here)."""
    from MDTextureLib.evaluation.localisation import pixel_roc_auc, sign_agreement
    from MDTextureLib.evaluation.maps import random_sign

    rng = np.random.default_rng(0)
    involved = np.zeros((3, 40, 40), bool)
    involved[:, 10:20, 10:30] = True
    ff = np.where(involved, 0.6, 0.03) + rng.normal(0, 0.01, involved.shape)
    signed = random_sign(torch.from_numpy(ff), seed=0).numpy()
    auc = pixel_roc_auc(np.clip(signed, 0, None), involved)
    # the surviving half of the involved fat beats every uninvolved voxel (½ · 1); the zeroed half ties with the
    # uninvolved voxels zeroed too and loses to the rest (½ · ½ · ½): ≈ 0.625 on the voxel grid (resampling a
    # real map to the native grid blurs the signs and leaves fewer exact zeros: 0.81 on the phantom)
    assert 0.58 < auc < 0.67
    lean = sign_agreement(signed, involved)
    assert abs(lean["positive_share"] - 0.5) < 0.03 and abs(lean["net"]) < 0.05
    # a map whose signs are evidence: for the class on the involved tissue, against it elsewhere
    evidence = np.where(involved, np.abs(ff), -np.abs(ff))
    assert sign_agreement(evidence, involved) == {"positive_share": 1.0, "net": 1.0}
    assert sign_agreement(evidence, ~involved) == {"positive_share": 0.0, "net": -1.0}
    assert np.isnan(sign_agreement(evidence, np.zeros_like(involved))["net"])
    assert np.isnan(sign_agreement(np.zeros_like(ff), involved)["net"])


def test_within_scan_rho_sees_what_pooled_pairs_hide():
    """A map that only tracks how diseased the whole scan is — every muscle of a scan scores its severity plus a
    random jitter — correlates well with involvement over pooled scan × muscle pairs, yet ranks the muscles of each
    scan at random; the within-scan ρ says so. A map that ranks each scan's muscles right scores 1 within scans."""
    from scipy import stats
    from MDTextureLib.evaluation.experiments.table3 import mean_within_scan_rho

    rng = np.random.default_rng(0)
    pairs, ranked = [], []
    for scan in range(20):
        severity = rng.uniform(0.05, 0.8)
        involvement = np.clip(severity + rng.normal(0, 0.05, 7), 0, 1)
        for m, inv in enumerate(involvement):
            pairs.append(("DMD", f"M{m}", severity + rng.normal(0, 0.01), float(inv), 0.0, scan))
            ranked.append(("DMD", f"M{m}", float(inv) - severity, float(inv), 0.0, scan))
    pooled = stats.spearmanr([p[2] for p in pairs], [p[3] for p in pairs]).statistic
    within, n = mean_within_scan_rho(pairs)
    assert pooled > 0.8 and abs(within) < 0.2 and n == 20
    assert mean_within_scan_rho(ranked) == (pytest.approx(1.0), 20)
    # scans without a ranking (all scores equal) are left out, not counted as 0
    flat = [p[:2] + (0.5,) + p[3:] for p in pairs[:7]]
    assert mean_within_scan_rho(flat) == (pytest.approx(float("nan"), nan_ok=True), 0)


def test_leg_slice_normalisation_zero_outside_and_one_per_slice(leg_files):
    from MDTextureLib.evaluation.maps import to_native
    from MDTextureLib.io import load_dixon
    from MDTextureLib.stacks import window_for

    series = load_dixon(ff=leg_files["ff"])
    geometry = window_for(series, 3.0, 64)
    z = series.ff.shape[0]
    raw = torch.rand(z, 8, 8) + 0.1
    raw[0] *= 10  # one hot slice: the volume rule makes the others dim, the per-slice rule does not
    body = series.body_mask()
    per_slice = to_native(raw, geometry, body, "slice")
    assert per_slice.shape == series.ff.shape
    assert float(per_slice[~body].max()) == 0.0
    for k in range(z):
        if body[k].any():
            assert float(per_slice[k][body[k]].max()) == pytest.approx(1.0)
    volume = to_native(raw, geometry)
    assert float(volume[1:].max()) < 0.5


# ------------------------------------------------------------------------------------------------ leg networks
class ContractLegNet(torch.nn.Module):
    """The smallest network with the leg-pooling contract: ``net(x, mask)``, ``forward_with_maps(x, mask)``,
    logit = mask-weighted mean of the class map."""

    pooling = "leg"
    stages = ("head",)

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Conv2d(3, 3, 1)
        self.masks_seen = []

    def forward_with_maps(self, x, mask=None):
        if mask is None:
            raise AssertionError("leg network called without its mask")
        self.masks_seen.append(mask.shape)
        maps = self.head(x * mask)
        logits = (maps * mask).sum(dim=(2, 3)) / mask.sum(dim=(2, 3)).clamp_min(1)
        return logits, maps

    def forward(self, x, mask=None):
        return self.forward_with_maps(x, mask)[0]


def test_leg_networks_get_their_masks_and_are_refused_without():
    from MDTextureLib.evaluation import maps

    torch.manual_seed(0)
    net = ContractLegNet()
    x = torch.randn(5, 3, 8, 8)
    mask = torch.zeros(5, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    logits, class_maps = maps.icam_maps(net, x, batch_size=2, masks=mask)
    assert net.masks_seen == [(2, 1, 8, 8), (2, 1, 8, 8), (1, 1, 8, 8)]
    expected = (class_maps * mask).sum(dim=(2, 3)) / 16
    assert torch.allclose(logits, expected, atol=1e-6)  # the mean over the leg, not over the window
    with pytest.raises(ValueError, match="body masks"):
        maps.icam_maps(net, x)
    grads = maps.gradient_maps(net, x, 1, ("gradcam",), layer=net.head, batch_size=2, masks=mask)
    assert grads["gradcam"].shape == (5, 8, 8)


# ------------------------------------------------------------------------------------------------ calibration
def test_ece_known_value_and_temperature_recovered():
    from MDTextureLib.evaluation.experiments.calibration_exp import expected_calibration_error, fit_temperature

    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.3, 0.7]])
    assert expected_calibration_error(p, np.array([0, 1, 1, 1]), 10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.3)
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 3))
    e = np.exp(logits / 2.0)
    labels = np.array([rng.choice(3, p=row / row.sum()) for row in e])  # calibrated at T = 2
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.1)


# ------------------------------------------------------------------------------------------------ end to end
FAMILIES = {"DMD": ("dmd-patchy-fine", "dmd-confluent"), "CMD": ("cmd-rim-muscle", "cmd-diffuse"),
            "normal": ("normal",)}


@pytest.fixture(scope="module")
def family_cohort(tmp_path_factory):
    """12 one-scan subjects: ``plain`` without the pattern_family / body_cues columns (a cohort from elsewhere),
    ``tagged`` with two pattern families per disease class written into cohort.csv."""
    from MDTextureLib.phantom import write_cohort

    root = tmp_path_factory.mktemp("families")
    plain = root / "plain"
    write_cohort(plain, subjects=12, seed=0, n_slices=6, matrix=96, pixel_mm=2.5, workers=1, progress=False,
                 scans_per_subject=1)
    tagged = root / "tagged"
    shutil.copytree(plain, tagged)
    rows = list(csv.DictReader(open(plain / "cohort.csv", newline="")))
    untagged = [{k: v for k, v in r.items() if k not in ("pattern_family", "body_cues")} for r in rows]
    with open(plain / "cohort.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(untagged[0]))
        writer.writeheader()
        writer.writerows(untagged)
    seen = {}
    for r in rows:
        k = seen.get(r["class"], 0)
        seen[r["class"]] = k + 1
        r["pattern_family"] = FAMILIES[r["class"]][k % len(FAMILIES[r["class"]])]
        r["body_cues"] = "texture"
    with open(tagged / "cohort.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {"plain": plain, "tagged": tagged, "rows": rows}


def _parse(argv):
    import argparse

    from MDTextureLib.evaluation import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(argv)


def test_families_hold_out_every_subject_of_the_family(family_cohort, tmp_path):
    threads = torch.get_num_threads()
    out = tmp_path / "fam"
    try:
        args = _parse(["evaluate", "families", "--data", str(family_cohort["tagged"]), "--out", str(out), "--quick",
                       "--folds", "2", "--networks", "icam28", "--iterations", "2", "--threads", "1", "--quiet"])
        assert args.func(args) == 0
    finally:
        torch.set_num_threads(threads)
    assert "body cues: `texture`" in (out / "families.md").read_text()
    data = json.loads((out / "families.json").read_text())
    assert data["settings"]["iterations"] == 2 and data["cohort"]["body_cues"] == "texture"
    family_of = {r["subject"]: r["pattern_family"] for r in family_cohort["rows"]}
    runs = data["runs"]
    assert sorted(r["family"] for r in runs) == sorted(f for c in ("DMD", "CMD") for f in FAMILIES[c])
    for r in runs:
        assert r["fold"] == 1 and r["held_out"]["n"] == 2  # both scans of the family, whatever their fold
        held = [s for s in r["scans"] if s["group"] == "held_out"]
        assert {s["family"] for s in held} == {r["family"]}
        assert all(s["family"] != r["family"] for s in r["scans"] if s["group"] == "in_distribution")
        trained = data["models"][f"icam28_fold1_without-{r['family']}"]["train_subjects"]
        assert trained and all(family_of[s] != r["family"] for s in trained)
        assert 0 <= r["held_out"]["accuracy"] <= 1
    assert (out / "models" / f"icam28_fold1_without-{runs[0]['family']}.json").is_file()


def test_families_needs_the_pattern_family_column_and_header_says_unknown(family_cohort, tmp_path):
    from MDTextureLib.errors import InputError
    from MDTextureLib.evaluation.experiments import Context, Settings
    from MDTextureLib.evaluation.experiments.context import md_header

    args = _parse(["evaluate", "families", "--data", str(family_cohort["plain"]), "--out", str(tmp_path / "o"),
                   "--quick", "--folds", "2", "--quiet"])
    with pytest.raises(InputError, match="pattern_family"):
        args.func(args)
    assert not (tmp_path / "o").exists()
    ctx = Context(family_cohort["plain"], Settings.quick_profile(n_folds=2, quiet=True))
    assert "body cues: `unknown`" in "\n".join(md_header(ctx, "x"))
