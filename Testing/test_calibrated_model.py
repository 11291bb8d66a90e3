"""Calibrated models end to end: arrays stored beside the weights, temperature and unfamiliar score at inference,
old models unchanged, and ``mdtexture train`` with a calibration split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from MDTextureLib import calibration as cal
from MDTextureLib.errors import InputError
from MDTextureLib.inference import classify_volume
from MDTextureLib.io import load_dixon
from MDTextureLib.modelfile import build_model, load_model, save_model, sha256_of


def planted_stats(dim: int, centre: float, threshold: float, n_classes: int = 3) -> dict:
    """Unfamiliar statistics with every class mean at ``centre`` and an identity precision: the score of a feature
    vector f is ||f − centre||."""
    return {"means": np.full((n_classes, dim), centre, np.float32), "precision": np.eye(dim, dtype=np.float32),
            "present": np.ones(n_classes, bool)}


def calibrated(model, temperature: float, stats: dict, threshold: float):
    model.card["calibration"] = {"temperature": temperature}
    model.card["unfamiliar"] = {"method": "test", "threshold": threshold, "percentile": 99.0}
    model.unfamiliar = stats
    return model


def test_unfamiliar_arrays_travel_in_the_weights_file_and_are_stripped(tmp_path):
    model = calibrated(build_model("icam28", seed=0), 1.7, planted_stats(384, 0.5, 3.0), 3.0)
    weights, card = save_model(model, tmp_path / "m")
    from safetensors.torch import load_file

    keys = set(load_file(str(weights)))
    assert {"unfamiliar.means", "unfamiliar.precision", "unfamiliar.present"} <= keys
    assert json.loads(card.read_text())["sha256"] == sha256_of(weights)  # the hash covers the arrays
    loaded = load_model(card)
    assert loaded.temperature == pytest.approx(1.7)
    np.testing.assert_array_equal(loaded.unfamiliar["precision"], np.eye(384))
    assert loaded.unfamiliar_stats["threshold"] == 3.0
    for k, v in model.net.state_dict().items():
        torch.testing.assert_close(loaded.net.state_dict()[k], v)

    # a card that promises the arrays while the file lacks them is refused
    old = build_model("icam28", seed=0)
    w2, c2 = save_model(old, tmp_path / "old")
    card2 = json.loads(c2.read_text())
    card2["unfamiliar"] = {"method": "test", "threshold": 3.0}
    c2.write_text(json.dumps(card2))
    with pytest.raises(InputError, match="lacks its arrays"):
        load_model(c2)


def test_old_models_say_uncalibrated_and_have_no_score(leg_files):
    series = load_dixon(ff=leg_files["ff"])
    result = classify_volume(series, build_model("icam28", seed=0), device="cpu")
    s = result.summary()
    assert s["calibrated"] is False and s["temperature"] is None and s["unfamiliar"] is None
    assert s["legs"][0]["unfamiliar"] is None
    assert not any("unfamiliar" in w for w in s["warnings"])


def test_temperature_divides_the_logits_and_the_score_flags_far_features(leg_files):
    series = load_dixon(ff=leg_files["ff"])
    plain = classify_volume(series, build_model("icam28", seed=0), device="cpu")
    # the network's own pooled features, to plant a training distribution right on them
    from MDTextureLib.inference import leg_inputs
    from MDTextureLib.precision import forward_with_maps, inference_net

    model = build_model("icam28", seed=0)
    with torch.inference_mode():
        stacks = leg_inputs(series, model, "cpu")[0]
        logits, _, pooled = forward_with_maps(inference_net(model.net, torch.device("cpu")), stacks, "fp32")
    leg_feature = pooled.mean(0).numpy()

    near = calibrated(build_model("icam28", seed=0), 2.5, {**planted_stats(384, 0.0, 1.0),
                                                          "means": np.tile(leg_feature + 0.1, (3, 1))}, 5.0)
    result = classify_volume(series, near, device="cpu")
    expected = cal.softmax(logits.numpy(), 2.5)
    np.testing.assert_allclose(result.slice_probabilities, expected, atol=3e-4)  # batching moves logits ~1e-4
    np.testing.assert_allclose(result.probabilities, expected.mean(0), atol=3e-4)
    assert np.abs(plain.slice_probabilities - expected).max() > 10 * 3e-4  # the temperature made a difference
    assert result.verdict == plain.verdict  # a temperature never changes the verdict
    s = result.summary()
    assert s["calibrated"] is True and s["temperature"] == 2.5
    assert s["unfamiliar"]["score"] == pytest.approx(0.1 * np.sqrt(384), rel=0.02)
    assert s["unfamiliar"]["flagged"] is False and not any("unfamiliar" in w for w in s["warnings"])

    far = calibrated(build_model("icam28", seed=0), 2.5, {**planted_stats(384, 0.0, 1.0),
                                                         "means": np.tile(leg_feature + 1.0, (3, 1))}, 5.0)
    s = classify_volume(series, far, device="cpu").summary()
    assert s["unfamiliar"] == {"score": pytest.approx(np.sqrt(384), rel=0.02), "threshold": 5.0, "flagged": True}
    assert s["legs"][0]["unfamiliar"]["flagged"] is True
    assert any(w.startswith("unfamiliar input") for w in s["warnings"])


@pytest.fixture(scope="module")
def six_subjects(tmp_path_factory):
    from MDTextureLib.phantom.cohort import write_cohort

    out = tmp_path_factory.mktemp("cohort") / "six"
    write_cohort(out, subjects=6, seed=5, n_slices=4, matrix=64, pixel_mm=3.0, workers=1, progress=False)
    return out


def test_train_holds_out_subjects_and_writes_calibration(six_subjects, tmp_path):
    import argparse

    from MDTextureLib.cohort import read_cohort
    from MDTextureLib.training.cli import register

    parser = argparse.ArgumentParser(prog="mdtexture")
    register(parser.add_subparsers(dest="command"))
    stem = tmp_path / "m"
    args = parser.parse_args(["train", "--data", str(six_subjects), "--out", str(stem), "--iterations", "2",
                              "--size-px", "64", "--pixel-mm", "3.0", "--quiet", "--precision", "fp32"])
    assert args.func(args) == 0
    card = json.loads(stem.with_suffix(".json").read_text())
    c, u = card["calibration"], card["unfamiliar"]
    assert c["temperature"] > 0 and {"nll_before", "nll_after", "ece_before", "ece_after", "n_scans"} <= set(c)
    assert c["nll_after"] <= c["nll_before"] + 1e-9  # T = 1 is among the candidates of the fit
    records = list(read_cohort(six_subjects / "cohort.csv"))
    held = set(c["subject_ids"])
    assert c["n_scans"] == sum(r.subject in held for r in records) == u["n_scans"]
    assert card["training"]["data"]["scans"] == len(records) - c["n_scans"]  # never trained on the held-out ones
    assert u["threshold"] > 0 and u["percentile"] == 99.0 and u["feature_dim"] == 384
    assert card["training"]["randomisation"]["enabled"] is True
    assert "--calibration-share 0.2" in card["training"]["command"]
    model = load_model(stem)
    assert model.unfamiliar_stats is not None and model.temperature == pytest.approx(c["temperature"])

    args = parser.parse_args(["train", "--data", str(six_subjects), "--out", str(tmp_path / "n"), "--iterations",
                              "1", "--size-px", "64", "--pixel-mm", "3.0", "--quiet", "--precision", "fp32",
                              "--calibration-share", "0", "--no-randomise"])
    assert args.func(args) == 0
    card = json.loads((tmp_path / "n.json").read_text())
    assert card["calibration"] is None and card["unfamiliar"] is None
    assert card["training"]["randomisation"]["enabled"] is False and "--no-randomise" in card["training"]["command"]
    assert load_model(tmp_path / "n").unfamiliar_stats is None


def test_calibration_split_is_by_subject_and_per_class():
    from types import SimpleNamespace

    from MDTextureLib.training.calibrate import calibration_split

    items = [SimpleNamespace(subject=f"{c}{s}", class_name=c) for c in ("DMD", "CMD", "normal") for s in range(10)
             for _ in range(2)]  # 10 subjects per class, two scans each
    train, calib = calibration_split(items, 0.2, seed=0)
    held = {items[i].subject for i in calib}
    assert len(held) == 6 and {items[i].subject for i in train}.isdisjoint(held)  # 2 of 10 subjects per class
    assert sorted(train + calib) == list(range(len(items))) and len(calib) == 12
    assert calibration_split(items, 0.2, seed=0) == (train, calib) != calibration_split(items, 0.2, seed=1)
    lonely = [SimpleNamespace(subject="a", class_name="DMD"), SimpleNamespace(subject="b", class_name="CMD"),
              SimpleNamespace(subject="c", class_name="CMD")]
    with pytest.raises(InputError, match="calibration-share 0"):
        calibration_split(lonely, 0.2, seed=0)  # only CMD could give a subject: one class is no calibration


def test_crossval_folds_calibrate_on_their_own_training_subjects():
    from test_training import PIXEL, SIZE, easy_series

    from MDTextureLib.constants import CLASSES
    from MDTextureLib.training import ScanItem, TrainConfig
    from MDTextureLib.training.crossval import cross_validate

    items = [ScanItem(f"s{i}", f"s{i}", c, easy_series(c, i)) for i, c in enumerate(CLASSES * 3)]
    folds = [([j for j in range(9) if j // 3 != k], [3 * k, 3 * k + 1, 3 * k + 2]) for k in range(3)]
    config = TrainConfig(variant="icam28", iterations=2, lr_steps=((0, 1e-2),), pixel_mm=PIXEL, size_px=SIZE)
    out = cross_validate(items, folds, [config], device="cpu", progress=False, log=lambda s: None,
                         calibration_share=0.3)["icam28"]["folds"]
    for fold in out:
        assert set(fold["calibration_subjects"]) <= set(fold["train_subjects"])  # never a test subject
        assert set(fold["calibration_subjects"]).isdisjoint(fold["test_subjects"])
        assert fold["temperature"] > 0 and 0 <= fold["test_ece"] <= 1 and 0 <= fold["test_flagged_unfamiliar"] <= 1
