"""classify_volume: probabilities, verdict, and a heatmap that lands where the evidence is."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import leg_volume
from MDTextureLib.constants import CLASSES
from MDTextureLib.errors import InputError
from MDTextureLib.inference import classify_volume
from MDTextureLib.io import load_dixon
from MDTextureLib.modelfile import Model, build_model, new_card


class FatIsEvidence(torch.nn.Module):
    """A stand-in network whose class maps are the (normalised) centre slice itself, pooled to 28×28.

    For class c the map is (c+1)·FF, so the DMD map peaks where the fat is; logits are the maps' means, as in ICAM.
    If the heatmap comes back to the native grid transposed, flipped or shifted, it no longer matches the FF image.
    """

    stages = ("layer2", "layer3")

    def forward_with_maps(self, x):
        centre = F.avg_pool2d(x[:, 1:2], 8)  # (B,1,28,28)
        maps = torch.cat([centre * (c + 1) for c in range(3)], dim=1)
        return maps.mean(dim=(2, 3)), maps


@pytest.fixture
def series(leg_files):
    return load_dixon(ff=leg_files["ff"])


def test_heatmap_points_where_the_fat_is(series):
    model = Model(net=FatIsEvidence(), card=new_card("icam28"))
    model.card["input"]["normalisation"] = {"mean": 0.0, "std": 1.0}
    result = classify_volume(series, model, device="cpu", target_class="DMD")
    heat = result.heatmap
    assert heat.shape == series.ff.shape and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    body = series.ff > 0
    corr = np.corrcoef(heat[body], series.ff[body])[0, 1]
    assert corr > 0.7, corr  # smoothed by the 8-px pooling of the 28² map; a transposed map scores ~0
    # the fatty blob inside the muscle is hotter than the lean muscle around it
    vol = leg_volume()
    blob = (vol["ff"] > 0.5) & (vol["labels"] > 0)
    lean = (vol["labels"] > 0) & (vol["ff"] < 0.2)
    assert heat[blob].mean() > 2 * heat[lean].mean()


def test_probabilities_verdict_and_class_maps(series):
    model = build_model("icam28", seed=0)
    result = classify_volume(series, model, device="cpu")
    assert result.slice_probabilities.shape == (series.n_slices, 3)
    np.testing.assert_allclose(result.slice_probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(result.probabilities, result.slice_probabilities.mean(axis=0), atol=1e-6)
    assert result.verdict == CLASSES[int(np.argmax(result.probabilities))]
    assert result.target_class == result.verdict
    assert result.class_maps.shape == (series.n_slices, 3, 28, 28)
    assert any("untrained" in w for w in result.warnings)
    for c in CLASSES:
        h = result.heatmap_for(c)
        assert h.shape == series.ff.shape and 0 <= h.min() and h.max() <= 1.0
    other = [c for c in CLASSES if c != result.verdict][0]
    chosen = classify_volume(series, model, device="cpu", target_class=other)
    assert chosen.target_class == other
    np.testing.assert_array_equal(chosen.heatmap, result.heatmap_for(other))


def test_batching_does_not_change_the_answer(series):
    model = build_model("icam14", seed=1)
    a = classify_volume(series, model, device="cpu", batch_size=1)
    b = classify_volume(series, model, device="cpu", batch_size=16)
    np.testing.assert_allclose(a.slice_probabilities, b.slice_probabilities, atol=1e-5)
    np.testing.assert_allclose(a.class_maps, b.class_maps, atol=1e-4)


@pytest.mark.parametrize("n_slices", [1, 2])
def test_fewer_than_three_slices_still_classify(tmp_path, n_slices):
    from conftest import write_nrrd

    path = write_nrrd(leg_volume(n_slices=n_slices)["ff"], tmp_path / "ff.nrrd")
    s = load_dixon(ff=path)
    assert any("repeat the edge slice" in w for w in s.warnings)
    result = classify_volume(s, build_model("icam28"), device="cpu")
    assert result.slice_probabilities.shape == (n_slices, 3)
    assert result.heatmap.shape == s.ff.shape


def test_cancel_and_bad_arguments(series):
    model = build_model("icam28")
    with pytest.raises(InterruptedError):
        classify_volume(series, model, device="cpu", cancel=lambda: True)
    with pytest.raises(InputError, match="unknown target class"):
        classify_volume(series, model, device="cpu", target_class="BMD")
    seen = []
    classify_volume(series, model, device="cpu", batch_size=4, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 6), (4, 6), (6, 6)]
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            classify_volume(series, model, device="cuda")


class Says(torch.nn.Module):
    """A stand-in network that gives every slice the same verdict (logit 5 for one class), with flat maps."""

    stages = ("layer2", "layer3")

    def __init__(self, class_name: str):
        super().__init__()
        self.index = CLASSES.index(class_name)

    def forward_with_maps(self, x):
        logits = torch.zeros(x.shape[0], 3)
        logits[:, self.index] = 5.0
        return logits, torch.ones(x.shape[0], 3, 28, 28)


def _card_with_slight_disease_record(called_normal: int, scans: int = 14) -> dict:
    from MDTextureLib.constants import SEVERITY_BANDS

    card = new_card("icam28")
    verdicts = {"DMD": scans - called_normal, "CMD": 0, "normal": called_normal}
    card["metrics"] = {"held_out": [
        {"data_source": "test cohort", "by_severity": {SEVERITY_BANDS[0][1]: {"scans": scans, "verdicts": verdicts}}},
        {"data_source": "older record without a breakdown"}]}
    return card


@pytest.mark.parametrize("says, called_normal, noted", [("normal", 5, True), ("DMD", 5, False), ("normal", 0, False)])
def test_a_normal_verdict_carries_what_the_model_was_measured_to_miss(series, says, called_normal, noted):
    """The demo's DMD phantom (slight disease) is called normal: a normal verdict says, from the model card, how many
    held-out phantom scans with slight disease the model called normal; other verdicts and clean records say nothing."""
    model = Model(net=Says(says), card=_card_with_slight_disease_record(called_normal))
    result = classify_volume(series, model, device="cpu")
    assert result.verdict == says
    notes = [w for w in result.warnings if "does not rule out slight disease" in w]
    if noted:
        assert notes == ["a normal verdict does not rule out slight disease: of 14 held-out phantom scans with slight "
                         "disease (leg FF at most 3 % above normal), this model called 5 normal (model card)"]
    else:
        assert notes == []


def test_the_slight_disease_note_reaches_prediction_json(leg_files, tmp_path):
    """The note travels with the other warnings: prediction.json (hence report.png, summary.csv and the apps)."""
    import json

    from MDTextureLib.pipeline import CaseInputs, CaseOptions, analyse_case, write_case

    model = Model(net=Says("normal"), card=_card_with_slight_disease_record(5))
    options = CaseOptions(device="cpu", report=False)
    write_case(analyse_case(CaseInputs(ff=str(leg_files["ff"])), model, options), tmp_path / "out", options)
    summary = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert summary["verdict"] == "normal"
    assert any(w.startswith("a normal verdict does not rule out slight disease: of 14") for w in summary["warnings"])


def test_a_verdict_names_the_pattern_families_of_another_class_it_mostly_took_for_its_own():
    """Summed over the card's held-out records: diffuse CMD called DMD in 4 of 5 scans is named on a DMD verdict;
    a family called DMD in 1 of 4 is not, nor are DMD's own families, nor a record without class counts."""
    from MDTextureLib.modelcard import pattern_family_notes, verdict_notes

    def group(truth, scans, **verdicts):
        return {"scans": scans, "truth": {"DMD": 0, "CMD": 0, "normal": 0, truth: scans},
                "verdicts": {"DMD": 0, "CMD": 0, "normal": 0, **verdicts}}

    card = {"metrics": {"held_out": [
        {"by_pattern_family": {"cmd-diffuse": group("CMD", 4, DMD=3, CMD=1),
                               "cmd-rim": group("CMD", 4, DMD=1, CMD=3), "dmd-patchy": group("DMD", 3, DMD=3)}},
        {"by_pattern_family": {"cmd-diffuse": group("CMD", 1, DMD=1)}},
        {"by_pattern_family": {"cmd-rim": {"scans": 9, "verdicts": {"DMD": 9, "CMD": 0, "normal": 0}}}}]}}
    assert pattern_family_notes(card, "DMD") == [
        "a DMD verdict does not rule out CMD with the phantom's cmd-diffuse pattern: of 5 held-out phantom scans of "
        "that pattern, this model called 4 DMD (model card)"]
    assert pattern_family_notes(card, "CMD") == [] and verdict_notes(card, "normal") == []
    assert verdict_notes(card, "DMD") == pattern_family_notes(card, "DMD")
