"""Training: augmentation, dataset, the quick learning profile, determinism, subject folds, DDP, saved models, CLI."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

from MDTextureLib.constants import CLASSES
from MDTextureLib.errors import InputError
from MDTextureLib.io import DixonSeries, Grid
from MDTextureLib.training import (AugmentConfig, ScanItem, SliceDataset, TrainConfig, apply_augmentation,
                                   default_lr_steps, parse_lr_steps, sample_params, train)
from MDTextureLib.training.crossval import check_folds, markdown_report
from MDTextureLib.training.loop import EpochSampler, lr_at

SIZE, PIXEL = 32, 4.0  # 128 mm windows: the 84 mm test legs fit, and a step costs a few ms


def easy_series(class_name: str, seed: int, n_slices: int = 6, matrix: int = 48, pixel_mm: float = 2.5):
    """A crude leg whose muscle fat fraction tells the class apart (normal 4 %, CMD 30 %, DMD 60 %), with noise,
    a random offset and a fatty rim: the "easy split" on which a working loop must learn within tens of steps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:matrix, 0:matrix]
    r = (((xx - matrix / 2 + rng.normal(0, 2)) / (matrix * 0.35)) ** 2
         + ((yy - matrix / 2 + rng.normal(0, 2)) / (matrix * 0.30)) ** 2)
    body, muscle = r < 1, r < 0.65
    ff = np.zeros((n_slices, matrix, matrix), np.float32)
    ff[:, body] = 0.9
    base = {"normal": 0.04, "CMD": 0.3, "DMD": 0.6}[class_name]
    noise = rng.normal(0, 0.05, ff.shape)
    ff[:, muscle] = np.clip(base + noise[:, muscle], 0, 1)
    grid = Grid((matrix, matrix, n_slices), (pixel_mm, pixel_mm, 4.0), (0.0, 0.0, 0.0),
                (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return DixonSeries(ff=ff, grid=grid, ff_unit="fraction")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread here: these networks are tiny, and on a shared 2-core machine a second thread mostly waits
    at barriers (a 40-step profile took 1.4 s on one thread and 28 s on two under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def easy_dataset():
    items = [ScanItem(f"s{i}", f"s{i}", c, easy_series(c, i)) for i, c in enumerate(CLASSES * 3)]
    return SliceDataset.build(items, pixel_mm=PIXEL, size_px=SIZE)


def quick_config(**kw) -> TrainConfig:
    base = dict(variant="icam28", iterations=4, lr_steps=((0, 1e-2),), batch_size=8, seed=0, pixel_mm=PIXEL,
                size_px=SIZE)
    base.update(kw)
    return TrainConfig(**base)


# --- augmentation ------------------------------------------------------------------------------------------------

def test_augmentation_factors_stay_in_the_paper_ranges():
    g = torch.Generator().manual_seed(3)
    p = sample_params(4000, 224, AugmentConfig(), g)
    assert 1.0 <= p.scale.min() and p.scale.max() <= 1.2 and p.scale.max() > 1.18
    assert -5.0 <= p.angle_deg.min() and p.angle_deg.max() <= 5.0 and p.angle_deg.min() < -4.9
    assert 0.8 <= p.intensity.min() and p.intensity.max() <= 1.2 and p.intensity.max() > 1.19
    slack = 1 - 1 / p.scale  # the crop (224 of 224·s) may move by at most this, normalised
    assert (p.centre_x.abs() <= slack + 1e-12).all() and (p.centre_y.abs() <= slack + 1e-12).all()


def test_augmentation_shapes_identity_and_crop():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 40, 40)
    assert apply_augmentation(x, sample_params(5, 40, AugmentConfig(), g)).shape == (5, 3, 40, 40)
    cfg = AugmentConfig(crop_px=24)
    assert apply_augmentation(x, sample_params(5, 40, cfg, g), crop_px=24).shape == (5, 3, 24, 24)
    from MDTextureLib.training.randomise import RandomisationConfig

    off = sample_params(5, 40, AugmentConfig(enabled=False, randomisation=RandomisationConfig(enabled=False)), g)
    torch.testing.assert_close(apply_augmentation(x, off), x, atol=1e-5, rtol=0)


def test_augmentation_zooms_rotates_and_scales_intensity():
    from MDTextureLib.training.augment import AugmentParams

    img = torch.zeros(1, 1, 100, 100)
    img[..., 30:70, 30:70] = 0.5  # a centred 40-px square
    one = torch.ones(1, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    zoomed = apply_augmentation(img, AugmentParams(one * 1.2, zero, one * 0.8, zero, zero))
    side = (zoomed[0, 0, 50] > 0.2).sum().item()
    assert abs(side - 48) <= 1  # 40 px × 1.2
    assert math.isclose(zoomed.max().item(), 0.4, rel_tol=1e-5)  # 0.5 × intensity 0.8
    turned = apply_augmentation(img, AugmentParams(one, one * 5.0, one, zero, zero))
    assert turned[0, 0, 31, 31].item() < 0.5 < turned[0, 0, 50, 50].item() + 1e-6  # corners cut by rotation
    assert not torch.allclose(turned, img)


# --- schedule and sampling -----------------------------------------------------------------------------------------

def test_learning_rate_schedule():
    assert default_lr_steps(5000) == ((0, 1e-4), (4000, 1e-5))
    assert default_lr_steps(2000) == ((0, 1e-4), (1600, 1e-5))
    assert default_lr_steps(2000, pretrained=False) == ((0, 1e-3), (1600, 1e-4))  # from scratch
    steps = parse_lr_steps("0:1e-3, 10:1e-4", 20)
    assert steps == ((0, 1e-3), (10, 1e-4)) and lr_at(steps, 9) == 1e-3 and lr_at(steps, 10) == 1e-4
    assert parse_lr_steps("5e-3", 10) == ((0, 5e-3),)
    for bad in ("10:1e-3", "0:1e-3,0:1e-4", "0:1e-3,30:1e-4", "0:abc", "0:-1"):
        with pytest.raises(InputError):
            parse_lr_steps(bad, 20)


def test_epoch_sampler_visits_every_slice_once_per_epoch():
    s = EpochSampler(10, torch.Generator().manual_seed(0))
    first = s.next(8).tolist() + s.next(2).tolist()
    assert sorted(first) == list(range(10))
    assert sorted(s.next(10).tolist()) == list(range(10))


# --- dataset --------------------------------------------------------------------------------------------------------

def test_dataset_stacks_are_the_inference_inputs(easy_dataset):
    """Training sees exactly what classify_volume feeds the network (same window, resampling and stacks)."""
    from MDTextureLib.stacks import StackGeometry, leg_centre_xy_px, make_stacks, resample_slices

    series = easy_series("CMD", 4)
    geo = StackGeometry(series.ff.shape[1:], series.grid.spacing[:2], leg_centre_xy_px(series.body_mask()),
                        PIXEL, SIZE)
    expected = make_stacks(resample_slices(series.ff, geo))
    idx = torch.nonzero(easy_dataset.scan_of == 4)[:, 0]
    torch.testing.assert_close(easy_dataset.stacks(idx), expected)
    assert (easy_dataset.labels[idx] == CLASSES.index("CMD")).all()
    assert len(easy_dataset) == 54 and easy_dataset.describe()["classes"]["DMD"]["scans"] == 3
    sub = easy_dataset.subset([4, 0])
    assert len(sub) == 12 and sub.items[0].scan == "s4"
    torch.testing.assert_close(sub.stacks(torch.arange(6)), expected)


# --- the quick profile: the loop learns -------------------------------------------------------------------------------

def test_quick_profile_loss_falls_and_accuracy_rises(easy_dataset):
    result = train(easy_dataset, quick_config(iterations=40), progress=False)
    h = result.log["history"]
    assert len(h["loss"]) == 40
    assert np.mean(h["loss"][-10:]) < 0.6 * np.mean(h["loss"][:10])
    assert np.mean(h["accuracy"][-10:]) > 0.6  # chance is 1/3
    card = result.model.card
    assert card["training"]["iterations"] == 40 and "momentum 0.9" in card["training"]["optimizer"]
    assert card["input"]["size_px"] == SIZE and not result.model.net.training


def test_same_seed_same_weights_other_seed_other_weights(easy_dataset):
    a = train(easy_dataset, quick_config(iterations=3), progress=False).model.net.state_dict()
    b = train(easy_dataset, quick_config(iterations=3), progress=False).model.net.state_dict()
    c = train(easy_dataset, quick_config(iterations=3, seed=1), progress=False).model.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# --- subject-level folds --------------------------------------------------------------------------------------------

def test_subject_folds_never_share_a_subject(tiny_cohort):
    from MDTextureLib.cohort import read_cohort, subject_folds
    from MDTextureLib.training.dataset import items_from_records

    records = read_cohort(tiny_cohort)
    items = items_from_records(records)
    folds = subject_folds(records, n_folds=2, seed=0)
    check_folds(items, folds)
    for tr, te in folds:
        assert not {records[i].subject for i in tr} & {records[i].subject for i in te}
    leaky = [(list(range(len(items))), [0])] + [([], list(range(1, len(items))))]
    with pytest.raises(InputError):
        check_folds(items, leaky)


def test_accuracy_by_severity_band_counts_hits_and_verdicts():
    from MDTextureLib.training.evaluate import accuracy_by, severity_band

    assert severity_band("normal", 0.0) == "normal"
    assert severity_band("DMD", 0.05).startswith("slight") and severity_band("CMD", 0.15).startswith("moderate")
    assert severity_band("DMD", 0.9).startswith("marked") and severity_band("DMD", float("nan")) is None
    rows = [{"band": "a", "truth": "DMD", "correct": True, "verdict": "DMD"},
            {"band": "a", "truth": "DMD", "correct": False, "verdict": "normal"},
            {"band": "b", "truth": "CMD", "correct": False, "verdict": "DMD"},
            {"band": None, "truth": "DMD", "correct": True, "verdict": "DMD"}]
    groups = accuracy_by(rows, "band")
    assert list(groups) == ["a", "b"] and list(accuracy_by(rows, "band", ["b"])) == ["b", "a"]
    assert groups["a"]["scans"] == 2 and groups["a"]["accuracy"] == 0.5
    assert groups["a"]["verdicts"] == {"DMD": 1, "CMD": 0, "normal": 1} and groups["b"]["accuracy"] == 0.0
    assert groups["a"]["truth"] == {"DMD": 2, "CMD": 0, "normal": 0} and groups["b"]["truth"]["CMD"] == 1


def test_markdown_report_has_fold_columns_and_paper_column():
    res = {"icam14": {"folds": [{"scan_accuracy": 1.0, "slice_accuracy": 0.9}, {"scan_accuracy": 0.5,
                                                                              "slice_accuracy": 0.7}],
                      "scan": {"mean": 0.75, "max": 1.0, "min": 0.5}, "slice": {"mean": 0.8, "max": 0.9, "min": 0.7}}}
    md = markdown_report(res, 2)
    assert "| icam14 | 100.0 | 50.0 | 75.0 | 100.0 | 50.0 | 91.7 |" in md and "slice level" in md


# --- DDP ------------------------------------------------------------------------------------------------------------

def test_ddp_two_cpu_processes_end_with_identical_weights(easy_dataset):
    from MDTextureLib.training.ddp import spawn_training

    states = spawn_training(easy_dataset, quick_config(iterations=3), world_size=2, threads=1)
    assert len(states) == 2
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    start = quick_config()
    torch.manual_seed(start.seed)
    from MDTextureLib.network import ICAMNet

    init = ICAMNet("icam28").state_dict()
    assert not torch.equal(init["fc.weight"], states[0]["fc.weight"])  # they did train


# --- saving, loading, the command line -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    """Four phantom subjects (some with two scans), 4 slices of 64×64 at 3 mm: seconds to write."""
    from MDTextureLib.phantom.cohort import write_cohort

    out = tmp_path_factory.mktemp("cohort") / "tiny"
    write_cohort(out, subjects=4, seed=5, n_slices=4, matrix=64, pixel_mm=3.0, workers=1, progress=False)
    return out


def _run_cli(argv: list) -> int:
    from MDTextureLib.training.cli import register

    parser = argparse.ArgumentParser(prog="mdtexture")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_train_command_writes_a_loadable_model_with_log_and_curve(tiny_cohort, tmp_path, capsys):
    from MDTextureLib.modelfile import load_model, sha256_of

    stem = tmp_path / "models" / "tiny_icam28"
    rc = _run_cli(["train", "--data", str(tiny_cohort), "--variant", "icam28", "--out", str(stem),
                   "--iterations", "3", "--size-px", "64", "--pixel-mm", "3.0", "--half", "--quiet",
                   "--lr-steps", "0:1e-3,2:1e-4", "--data-note", "phantom test cohort", "--precision", "fp32",
                   "--calibration-share", "0"])
    assert rc == 0
    model = load_model(stem.with_suffix(".json"))
    card = json.loads(stem.with_suffix(".json").read_text())
    assert card["sha256"] == sha256_of(stem.with_suffix(".safetensors")) == model.sha256
    assert card["weights_dtype"] == "float16" and model.size_px == 64 and model.trained
    tr = card["training"]
    assert tr["iterations"] == 3 and tr["lr_steps"][1] == {"from_iteration": 2, "lr": 1e-4}
    assert tr["command"] == ("mdtexture train --data tiny --variant icam28 --out tiny_icam28 --iterations 3 "
                             "--lr-steps 0:0.001,2:0.0001 --batch-size 8 --seed 0 --pixel-mm 3 --size-px 64 "
                             "--precision fp32 --calibration-share 0 --half")
    assert tr["precision"] == "fp32"
    assert tr["data_source"] == "phantom test cohort" and tr["data"]["scans"] == 6
    log = json.loads((stem.parent / "tiny_icam28.training.json").read_text())
    assert len(log["history"]["loss"]) == 3 and log["model"]["sha256"] == card["sha256"]
    assert (stem.parent / "tiny_icam28.training.png").stat().st_size > 1000
    assert sorted(p.name for p in stem.parent.iterdir()) == [
        "tiny_icam28.json", "tiny_icam28.safetensors", "tiny_icam28.training.json", "tiny_icam28.training.png"]

    out = tmp_path / "eval"
    rc = _run_cli(["evaluate-model", "--model", str(stem.with_suffix(".json")), "--data", str(tiny_cohort),
                   "--out", str(out), "--device", "cpu", "--quiet", "--record-in-card"])
    assert rc == 0
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["n_scans"] == 6 and 0 <= ev["scan_accuracy"] <= 1 and len(ev["scans"]) == 6
    assert "scan accuracy" in capsys.readouterr().out
    # Where the misses are: every scan in one severity band and one pattern family, as the cohort says.
    import csv
    from MDTextureLib.training.evaluate import severity_band
    cohort = {r["folder"]: r for r in csv.DictReader((tiny_cohort / "cohort.csv").open())}
    for row in ev["scans"]:
        assert row["severity_band"] == severity_band(row["truth"], float(cohort[row["scan"]]["severity"]))
        assert row["pattern_family"] == cohort[row["scan"]]["pattern_family"]
    for key in ("by_severity", "by_pattern_family"):
        assert sum(g["scans"] for g in ev[key].values()) == 6
        assert sum(g["correct"] for g in ev[key].values()) == sum(r["correct"] for r in ev["scans"])
    assert "| severity | scans |" in (out / "evaluation.md").read_text()
    card2 = json.loads(stem.with_suffix(".json").read_text())
    assert card2["metrics"]["held_out"][0]["n_scans"] == 6 and card2["sha256"] == card["sha256"]
    load_model(stem.with_suffix(".json"))  # still loads


def test_crossval_command_writes_tables(tiny_cohort, tmp_path):
    from MDTextureLib.modelfile import build_model, load_model, save_model

    _, card_path = save_model(build_model("icam14"), tmp_path / "shipped_icam14")
    out = tmp_path / "cv"
    rc = _run_cli(["crossval", "--data", str(tiny_cohort), "--folds", "2", "--variant", "icam14", "--out", str(out),
                   "--iterations", "2", "--size-px", "64", "--pixel-mm", "3.0", "--quiet", "--device", "cpu",
                   "--record-in-card", str(card_path), str(tmp_path / "absent.json")])
    assert rc == 0
    cv = json.loads(card_path.read_text())["metrics"]["crossval"]
    assert cv["folds"] == 2 and cv["iterations_per_fold"] == 2 and len(cv["per_fold_scan_accuracy"]) == 2
    assert cv["command"].startswith("mdtexture crossval --data tiny --folds 2 --fold-seed 0 --variant icam14 ")
    load_model(card_path)  # the weights and their sha256 are untouched
    res = json.loads((out / "crossval.json").read_text())
    folds = res["results"]["icam14"]["folds"]
    assert len(folds) == 2 and sum(f["n_test_scans"] for f in folds) == 6
    for f in folds:
        assert not set(f["train_subjects"]) & set(f["test_subjects"])
    md = (out / "crossval.md").read_text()
    assert "Fold-1 | Fold-2 | Mean | Max | Min" in md and "| icam14 |" in md


def test_bad_input_is_an_input_error(tiny_cohort, tmp_path):
    with pytest.raises(InputError):
        _run_cli(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m"), "--iterations", "2"])
    with pytest.raises(InputError):
        _run_cli(["train", "--data", str(tiny_cohort), "--out", str(tmp_path / "m"), "--iterations", "10",
                  "--lr-steps", "0:1e-3,20:1e-4"])
    with pytest.raises(InputError):
        _run_cli(["crossval", "--data", str(tiny_cohort), "--out", str(tmp_path / "cv"), "--folds", "9"])
