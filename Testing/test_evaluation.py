"""Experiments and localisation evaluation: numbers that must hold by construction, and a --quick end-to-end run."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import pytest
import torch

from MDTextureLib.evaluation import baselines, distances, localisation, maps, randomisation
from MDTextureLib.evaluation.localisation import (energy_pointing_game, pixel_roc_auc, pointing_game,
                                                  relevance_mass_accuracy, relevance_rank_accuracy, scan_metrics)


def _blob_mask(shape=(5, 40, 48), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    zz, yy, xx = np.mgrid[:shape[0], :shape[1], :shape[2]]
    for _ in range(3):
        cz, cy, cx = rng.integers(0, shape[0]), rng.integers(8, shape[1] - 8), rng.integers(8, shape[2] - 8)
        mask |= ((yy - cy) ** 2 + (xx - cx) ** 2 < 36) & (abs(zz - cz) <= 1)
    return mask


# ---------------------------------------------------------------------------------------------- localisation
def test_perfect_map_scores_one_everywhere():
    mask = _blob_mask()
    domain = np.ones(mask.shape, bool)
    domain[:, :, :3] = False  # a domain that is not everything
    result = scan_metrics(mask.astype(np.float32), mask, domain, tolerance_px=3)
    assert set(result) == set(localisation.METRICS) | {"pointing_game_tol"}
    for name, value in result.items():
        assert value == pytest.approx(1.0), name
    # a smooth map peaked inside the mask still hits and ranks well, but is not perfect
    smooth = mask.astype(np.float32) + 0.1
    assert pixel_roc_auc(smooth, mask) == pytest.approx(1.0)
    assert relevance_mass_accuracy(smooth, mask) < 1.0


def test_constant_map_is_chance_and_inverted_map_is_zero():
    mask = _blob_mask(seed=1)
    share = mask.sum() / mask.size
    const = np.full(mask.shape, 0.7, np.float32)
    assert pixel_roc_auc(const, mask) == pytest.approx(0.5)
    assert relevance_rank_accuracy(const, mask) == pytest.approx(share)
    assert pointing_game(const, mask) == pytest.approx(share)  # expected hit under random tie-breaking
    assert energy_pointing_game(const, mask) == pytest.approx(share)
    assert relevance_mass_accuracy(const, mask) == pytest.approx(share)
    inverted = 1.0 - mask.astype(np.float32)
    assert pixel_roc_auc(inverted, mask) == pytest.approx(0.0)
    assert relevance_mass_accuracy(inverted, mask) == pytest.approx(0.0)
    assert relevance_rank_accuracy(inverted, mask) == pytest.approx(0.0)
    assert pointing_game(inverted, mask) == pytest.approx(0.0)


def test_auc_equals_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    mask = rng.random((4, 30, 30)) < 0.2
    heat = np.round(rng.random(mask.shape) + 0.3 * mask, 1)  # coarse values: many ties
    domain = rng.random(mask.shape) < 0.7
    assert pixel_roc_auc(heat, mask, domain) == pytest.approx(roc_auc_score(mask[domain], heat[domain]), abs=1e-9)


def test_domain_and_tolerance():
    mask = np.zeros((20, 20), bool)
    mask[5:8, 5:8] = True
    heat = np.zeros((20, 20), np.float32)
    heat[5:8, 5:8] = 0.5
    heat[15, 15] = 1.0  # the global maximum, outside the mask
    assert pointing_game(heat, mask) == 0.0
    domain = np.ones_like(mask)
    domain[15, 15] = False  # out of the domain, the maximum no longer counts
    assert pointing_game(heat, mask, domain) == 1.0
    heat2 = np.zeros((20, 20), np.float32)
    heat2[7, 11] = 1.0  # 4 px right of the mask's edge (column 7)
    assert pointing_game(heat2, mask, tolerance_px=3.9) == 0.0
    assert pointing_game(heat2, mask, tolerance_px=4.0) == 1.0
    empty = np.zeros_like(mask)
    assert math.isnan(pointing_game(heat, empty)) and math.isnan(pixel_roc_auc(heat, empty))


def test_rank_accuracy_counts_the_top_k():
    mask = np.zeros(10, bool)
    mask[:4] = True
    heat = np.array([9, 8, 1, 0, 7, 6, 2, 3, 4, 5], np.float32)  # top 4: indices 0, 1, 4, 5 → 2 in the mask
    assert relevance_rank_accuracy(heat, mask) == pytest.approx(0.5)
    assert relevance_mass_accuracy(heat, mask) == pytest.approx(18 / 45)


# ---------------------------------------------------------------------------------------------- distances
def test_histogram_distances_known_values():
    h = np.array([0.2, 0.3, 0.5, 0.0])
    assert distances.l2_distance(h, h) == 0.0 and distances.chi2_distance(h, h) == 0.0
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])  # disjoint single bins
    assert distances.chi2_distance(a, b) == pytest.approx(1.0)
    assert distances.l2_distance(a, b) == pytest.approx(math.sqrt(2))
    u = np.r_[np.full(10, 0.1), np.zeros(10)]  # disjoint, each uniform over 10 bins
    v = u[::-1]
    assert distances.chi2_distance(u, v) == pytest.approx(1.0)
    assert distances.l2_distance(u, v) == pytest.approx(math.sqrt(0.2))
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])  # half overlap
    assert distances.l2_distance(p, q) == pytest.approx(math.sqrt(0.5))
    assert distances.chi2_distance(p, q) == pytest.approx(0.5)


def test_normalised_histograms_share_bins_and_sum_to_one():
    ha, hb = distances.normalised_histograms([[0, 0, 1], [9, 10]], bins=20)
    assert ha.shape == hb.shape == (20,)
    assert ha.sum() == pytest.approx(1) and hb.sum() == pytest.approx(1)
    assert distances.chi2_distance(ha, hb) == pytest.approx(1.0)  # separated values: disjoint histograms


def test_neuron_analysis_counts_neurons_beating_mff():
    rng = np.random.default_rng(0)
    cls = np.repeat([0, 1], 50)
    mff = rng.normal(0.3, 0.1, 100)  # same distribution in both classes: weak
    acts = rng.normal(0, 1, (100, 6))
    acts[:, 2] += 6 * cls  # neuron 2 separates perfectly
    acts[:, 4] += 6 * cls
    a = distances.neuron_analysis(acts, cls, mff)
    assert a["best_chi2"][0] in (2, 4) and a["chi2"][2] == pytest.approx(1.0)
    assert a["n_better_chi2"] >= 2 and a["n_better_l2"] >= 2
    assert a["mff_chi2"] < 0.5
    norm = distances.normalised_activation_matrix(acts)
    assert norm.min() >= -1 and norm.max() <= 1 and np.allclose(np.abs(norm).max(axis=0), 1)


# ---------------------------------------------------------------------------------------------- baselines
def test_knn_on_separable_mff_is_perfect():
    rng = np.random.default_rng(1)
    subjects = np.repeat(np.arange(12), 5)
    y = subjects % 3
    mff = (0.1 + 0.3 * y + rng.normal(0, 0.01, y.size))[:, None]
    train = subjects < 8
    pred, chosen = baselines.fit_predict("knn", mff[train], y[train], subjects[train], mff[~train])
    assert (pred == y[~train]).mean() == 1.0
    assert "n_neighbors" in chosen
    pred, _ = baselines.fit_predict("svm", mff[train], y[train], subjects[train], mff[~train])
    assert (pred == y[~train]).mean() == 1.0
    shuffled = rng.permutation(y[train])  # labels unrelated to the feature: no longer perfect
    pred, _ = baselines.fit_predict("knn", mff[train], shuffled, subjects[train], mff[~train])
    assert (pred == y[~train]).mean() < 1.0


def test_stp_and_patches_on_a_uniform_roi():
    ff = np.full((40, 40), 0.42, np.float32)
    roi = np.zeros((40, 40), bool)
    roi[5:35, 5:35] = True
    f = baselines.stp_feature(ff, roi)
    assert f.shape == (baselines.HIST_BINS + len(baselines.GLCM_PROPS) * len(baselines.GLCM_DISTANCES),)
    assert f[:baselines.HIST_BINS].max() == pytest.approx(1.0)  # one grey level
    contrast = f[baselines.HIST_BINS:baselines.HIST_BINS + 3]
    assert np.allclose(contrast, 0.0)  # no grey-level differences inside the ROI (the border is dropped)
    p = baselines.image_patches(ff, roi, np.random.default_rng(0))
    assert p.shape[1] == baselines.PATCH ** 2 and len(p) > 0 and np.allclose(p, 0)
    bag = baselines.BagOfPatches(k=4, seed=0).fit([np.random.default_rng(1).normal(size=(50, 324))])
    h = bag.transform([np.random.default_rng(2).normal(size=(20, 324)), np.zeros((0, 324))])
    assert h.shape == (2, 4) and h[0].sum() == pytest.approx(1.0) and h[1].sum() == 0


# ---------------------------------------------------------------------------------------------- maps
def test_gradcam_at_layer4_equals_our_cam():
    """cam_anchors §0.2: at the pre-GAP layer Grad-CAM = CAM / (h·w) — checks our maps and the library wiring."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from MDTextureLib.modelfile import build_model

    net = build_model("resnet7", seed=0).net
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    classes = np.array([0, 1, 2])
    _, cam = maps.icam_maps(net, x, classes)
    raw = maps.gradient_maps(net, x, classes)
    h, w = cam.shape[-2:]
    assert torch.allclose(raw["gradcam"] * (h * w), cam, atol=1e-4, rtol=1e-4)
    # the library's own end product (ReLU, min-max, bilinear resize) equals ours post-processed the same way
    with GradCAM(model=net, target_layers=[net.layer4]) as library:
        lib = library(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes])
    ours = cam.clamp_min(0)
    ours = ours - ours.amin(dim=(1, 2), keepdim=True)
    ours = ours / (1e-7 + ours.amax(dim=(1, 2), keepdim=True))
    ours = torch.nn.functional.interpolate(ours[:, None], size=(96, 96), mode="bilinear", align_corners=False)[:, 0]
    assert np.allclose(lib, ours.numpy(), atol=2e-3)


def test_gradcam_is_not_icam_on_the_two_stage_head():
    """cam_anchors §0.2: for ICAM the layer-3 gradient also flows through layer4, so Grad-CAM ≠ ICAM there."""
    from MDTextureLib.modelfile import build_model

    net = build_model("icam14", seed=0).net
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    _, own = maps.icam_maps(net, x, 0)
    raw = maps.gradient_maps(net, x, 0, ("gradcam",))["gradcam"]
    assert raw.shape == own.shape
    corr = np.corrcoef(own.ravel(), raw.ravel())[0, 1]
    assert corr < 0.999


def test_to_native_is_the_engines_heatmap(leg_files):
    from MDTextureLib.constants import CLASSES
    from MDTextureLib.inference import classify_volume
    from MDTextureLib.io import load_dixon
    from MDTextureLib.modelfile import build_model

    series = load_dixon(ff=leg_files["ff"])
    result = classify_volume(series, build_model("icam28", seed=0), device="cpu")
    for c, name in enumerate(CLASSES):
        ours = maps.to_native(torch.from_numpy(result.class_maps[:, c]), result.geometry, series.body_mask(),
                              "slice")
        assert np.allclose(ours, result.heatmap_for(name), atol=1e-6)
        old = maps.to_native(torch.from_numpy(result.class_maps[:, c]), result.geometry)  # the rule before issue 12
        assert np.allclose(np.where(series.body_mask(), old, 0) / max(old[series.body_mask()].max(), 1e-12),
                           result.heatmap_for(name, "volume"), atol=1e-6)
    r = maps.to_native(maps.random_maps((series.n_slices, 28, 28), seed=0), result.geometry)
    assert r.shape == series.ff.shape and r.max() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- randomisation
def test_cascading_randomisation_decorrelates_cam():
    from MDTextureLib.modelfile import build_model

    net = build_model("resnet7", seed=0).net
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(2))  # 7×7 maps
    fns = {"icam": lambda n, s, c: maps.icam_maps(n, s, c)[1].numpy()}
    r = randomisation.cascading_randomisation(net, x, 0, fns, depth=3, seed=7)
    assert r["steps"] == ["trained", "fc", "layer4.1", "layer4.0"]
    rho = r["methods"]["icam"]["signed"]
    assert rho[0] == 1.0 and all(np.isfinite(rho))
    # re-initialised weights give other maps: ρ drops far below 1 (were nothing re-initialised, it would stay 1)
    assert np.mean(rho[1:]) < 0.5 and max(rho[1:]) < 0.9
    # the cascade works on a copy: the caller's network is untouched
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert randomisation.spearman(np.arange(10), np.arange(10)) == pytest.approx(1.0)
    steps = randomisation.cascade_steps(build_model("icam28", seed=0).net)
    assert [s for s, _ in steps][:3] == ["fc", "layer3.1", "layer3.0"]


# ---------------------------------------------------------------------------------------------- end to end
def _parse(argv):
    from MDTextureLib.evaluation import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    from MDTextureLib.phantom import write_cohort

    out = tmp_path_factory.mktemp("cohort") / "tiny"
    write_cohort(out, subjects=12, seed=0, n_slices=6, matrix=96, pixel_mm=2.5, workers=1, progress=False,
                 scans_per_subject=1)
    return out


def test_quick_evaluate_all_end_to_end(tiny_cohort, tmp_path):
    from MDTextureLib.evaluation.experiments import EXPERIMENTS

    threads = torch.get_num_threads()
    out = tmp_path / "eval"
    try:
        args = _parse(["evaluate", "all", "--data", str(tiny_cohort), "--out", str(out), "--quick", "--folds", "2",
                       "--threads", "1", "--quiet"])
        assert args.func(args) == 0
        for name in EXPERIMENTS:
            assert (out / name / f"{name}.md").read_text().startswith("# ")
            data = json.loads((out / name / f"{name}.json").read_text())
            assert data["settings"]["quick"] is True
            assert (out / name / f"{name}.png").stat().st_size > 1000
        assert "Phantom (synthetic) results" in (out / "summary.md").read_text()
        run = json.loads((out / "run.json").read_text())
        assert set(run["wall_s"]) == set(EXPERIMENTS) | {"total"}
        assert len(list((out / "models").glob("*_fold*.json"))) == 5 * 2  # 5 variants × 2 folds
        table1 = json.loads((out / "table1" / "table1.json").read_text())["results"]
        assert {"MFF (kNN)", "STP (kNN)", "STP (SVM)", "K-Means (SVM)", "ResNet18", "ICAM-14²", "ICAM-28²"} <= set(table1)
        for r in table1.values():
            assert len(r["folds"]) == 2 and 0 <= r["keyframe"]["mean"] <= 1
        loc = json.loads((out / "localisation" / "localisation.json").read_text())
        ff_row = loc["summary"]["reference/ff"]["all"]["muscles"]
        assert 0.5 < ff_row["pixel_auc"]["mean"] <= 1  # fat marks involvement in the phantom
        assert {"icam28/icam", "icam28/gradcam", "icam14/layercam", "resnet7/gradcam++",
                "reference/random"} <= set(loc["summary"])
        ceiling = loc["summary"]["reference/ff-pooled-8"]  # the FF image pooled to ICAM-28's map grid (8² on 64 px)
        assert 0 <= ceiling["all"]["muscles"]["pixel_auc"]["mean"] <= 1
        truth = loc["summary"]["reference/involvement"]  # the involvement mask as a map: the best any map can do
        assert truth["all"]["muscles"]["pixel_auc"]["mean"] == 1.0
        assert truth["all"]["muscles"]["relevance_mass_accuracy"]["mean"] == 1.0
        per_scan = [r["specific_ratio"] for r in loc["scans"]
                    if r["network"] == "reference" and r["method"] == "involvement" and r["class"] == "DMD"]
        assert truth["DMD"]["specific_ratio"]["mean"] == pytest.approx(_truth_ratios(tiny_cohort, "DMD", "Per"))
        assert len(per_scan) == truth["DMD"]["specific_ratio"]["n"]
        uniform = loc["summary"]["reference/random"]["DMD"]["specific_ratio"]["mean"]
        assert 0.5 < uniform < 1.5  # a structureless map gives Per about its voxel share
        assert "### Headline" in (out / "localisation" / "localisation.md").read_text()
        # the fat map is judged against its null (FF with random signs) and by how its signs lean
        null = loc["summary"]["reference/ff-random-sign"]["all"]["muscles"]["pixel_auc"]["mean"]
        assert 0.5 < null <= 1
        lean = loc["summary"]["icam28/fat"]["all"]["fat_sign"]
        assert 0 <= lean["involved"]["positive_share"]["mean"] <= 1 and -1 <= lean["involved"]["net"]["mean"] <= 1
        assert lean["involved"]["net"]["n"] == loc["summary"]["icam28/fat"]["all"]["muscles"]["pixel_auc"]["n"]
        assert "### Do the fat map's signs mean anything?" in (out / "localisation" / "localisation.md").read_text()
        t3 = json.loads((out / "table3" / "table3.json").read_text())["headline"]
        assert {"icam28", "icam28|slice", "icam28|fat", "icam28|fat-pooled", "ff-pooled-8",
                "muscle mean FF"} <= set(t3)
        t3_pairs = json.loads((out / "table3" / "table3.json").read_text())["pairs"]  # the first network's own map
        assert t3["icam28"]["n_pairs_DMD"] == sum(p["class"] == "DMD" for p in t3_pairs)
        assert t3["icam28"]["n_pairs_DMD + CMD"] == sum(p["class"] in ("DMD", "CMD") for p in t3_pairs)
        # the within-scan ranking: at most one entry per DMD/CMD test scan
        n_disease_scans = len({p["scan"] for p in t3_pairs if p["class"] in ("DMD", "CMD")})
        assert 0 <= t3["muscle mean FF"]["n_scans_within_scan_DMD + CMD"] <= n_disease_scans
        assert "ρ within a scan" in (out / "table3" / "table3.md").read_text()
        cal = json.loads((out / "calibration" / "calibration.json").read_text())["results"]["icam28"]
        assert cal["pooled_none"]["n_scans"] == 12 and 0 <= cal["pooled_none"]["ece"] <= 1
        assert "body cues: `texture`" in (out / "calibration" / "calibration.md").read_text()  # the phantom's default
        # plain CAM and Grad-CAM at layer4 give the same heatmap, so the same scores
        cam, grad = loc["summary"]["resnet7/icam"]["all"]["muscles"], loc["summary"]["resnet7/gradcam"]["all"]["muscles"]
        assert cam["pixel_auc"]["mean"] == pytest.approx(grad["pixel_auc"]["mean"], abs=1e-4)
        # a second run reuses the stored networks instead of training
        again = tmp_path / "again"
        args = _parse(["evaluate", "table2", "--data", str(tiny_cohort), "--out", str(again), "--quick", "--folds", "2",
                       "--models", str(out / "models"), "--threads", "1", "--quiet"])
        assert args.func(args) == 0
        models = json.loads((again / "table2.json").read_text())["models"]
        assert models and all(m["source"].endswith(".json") for m in models.values())
        t2_first = json.loads((out / "table2" / "table2.json").read_text())["results"]
        t2_again = json.loads((again / "table2.json").read_text())["results"]
        assert t2_first["icam28"]["keyframe"] == t2_again["icam28"]["keyframe"]
        # --networks restricts which maps are scored; the reference rows stay
        only = tmp_path / "only"
        args = _parse(["evaluate", "localisation", "--data", str(tiny_cohort), "--out", str(only), "--quick",
                       "--folds", "2", "--models", str(out / "models"), "--networks", "icam28", "--threads", "1",
                       "--quiet"])
        assert args.func(args) == 0
        keys = set(json.loads((only / "localisation.json").read_text())["summary"])
        assert keys == {"reference/random", "reference/ff", "reference/involvement", "reference/ff-pooled-8",
                        "reference/ff-random-sign", "icam28/icam", "icam28/icam-slice", "icam28/gradcam", "icam28/gradcam++", "icam28/layercam",
                        "icam28/fat"}
    finally:
        torch.set_num_threads(threads)


def _truth_ratios(cohort_dir, class_name: str, muscle: str) -> float:
    """Mean over the cohort's involved ``class_name`` scans of (share of the involved voxels inside the muscles that
    lie in ``muscle``) / (share of the muscle voxels that ``muscle`` holds), computed here from the files."""
    import csv

    from MDTextureLib.constants import MUSCLE_LABELS

    ratios = []
    folder = Path(cohort_dir) if Path(cohort_dir).is_dir() else Path(cohort_dir).parent
    for row in csv.DictReader(open(folder / "cohort.csv")):
        if row["class"] != class_name:
            continue
        inv = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / row["folder"] / "involvement.nrrd"))) > 0
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / row["folder"] / "muscles.nrrd")))
        muscles, target = labels > 0, labels == MUSCLE_LABELS[muscle]
        if not (inv & muscles).any():
            continue
        share = (inv & target).sum() / (inv & muscles).sum()
        ratios.append(share / (target.sum() / muscles.sum()))
    return float(np.mean(ratios))


def test_evaluate_errors_are_input_errors(tiny_cohort, tmp_path):
    from MDTextureLib.errors import InputError

    args = _parse(["evaluate", "table1", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"),
                   "--quick", "--quiet"])
    with pytest.raises(InputError):
        args.func(args)
    args = _parse(["evaluate", "table1", "--data", str(tiny_cohort), "--out", str(tmp_path / "o"), "--quick",
                   "--folds", "5", "--quiet"])
    with pytest.raises(InputError):  # 4 subjects per class cannot fill 5 folds
        args.func(args)
    args = _parse(["evaluate", "table2", "--data", str(tiny_cohort), "--out", str(tmp_path / "o"), "--quick",
                   "--models", str(tmp_path / "no_models"), "--quiet"])
    with pytest.raises(InputError):
        args.func(args)
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_models_from_other_folds_are_refused(tiny_cohort, tmp_path):
    """Fold networks merged from several `crossval` runs keep their reports as crossval*.json; every one is checked
    against this run's folds, since a network tested on subjects it was trained on would inflate every number."""
    from MDTextureLib.errors import InputError
    from MDTextureLib.evaluation.experiments import Context, Settings

    settings = Settings.quick_profile(n_folds=2, quiet=True)
    c = Context(tiny_cohort, settings).cohort
    ours = [{"fold": k + 1, "test_subjects": sorted(set(c.subjects[te].tolist()))} for k, (_, te) in enumerate(c.folds)]
    models = tmp_path / "models"
    models.mkdir()
    (models / "crossval_a.json").write_text(json.dumps({"results": {"resnet7": {"folds": ours}}}))
    (models / "crossval_b.json").write_text(json.dumps({"results": {"icam28": {"folds": ours}}}))
    assert Context(tiny_cohort, settings, models_dir=models).cohort.n_folds == 2  # same folds: accepted
    swapped = [dict(ours[0], test_subjects=ours[1]["test_subjects"]), dict(ours[1], test_subjects=ours[0]["test_subjects"])]
    (models / "crossval_b.json").write_text(json.dumps({"results": {"icam28": {"folds": swapped}}}))
    with pytest.raises(InputError, match="crossval_b.json, icam28 fold 1"):
        Context(tiny_cohort, settings, models_dir=models).cohort
