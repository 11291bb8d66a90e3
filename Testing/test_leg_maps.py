"""Maps shown and scored sensibly (issue 12): 0 outside the body, scaled per slice inside the leg (or by the
volume), signed maps in logit units on the FF grid; the body mask reaches the network at inference and in
training, moved with the image by the augmentation."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from conftest import AWKWARD, leg_volume, write_nrrd

from MDTextureLib.constants import CLASSES
from MDTextureLib.inference import classify_volume, leg_inputs
from MDTextureLib.io import load_dixon
from MDTextureLib.modelfile import Model, build_model, new_card
from MDTextureLib.stacks import mask_window, window_for


class AirIsEvidence(torch.nn.Module):
    """A stand-in whose class maps are the pooled centre slice plus a constant: positive in the air too, and
    negative in the lean muscle for class 0 (FF − 0.3), so a map that is not zeroed outside the body shows heat
    there and a signed map keeps its negative part."""

    stages = ("layer2", "layer3")

    def forward_with_maps(self, x):
        centre = F.avg_pool2d(x[:, 1:2], 8)
        maps = torch.cat([centre - 0.3, centre + 1.0, centre + 2.0], dim=1)
        return maps.mean(dim=(2, 3)), maps


@pytest.fixture
def graded_series(tmp_path):
    """The conftest leg with its fat fraction scaled down slice by slice (slice k × (k+1)/n), so each slice's
    evidence differs; water and fat given, so the body comes from the magnitude."""
    vol = leg_volume()
    n = vol["ff"].shape[0]
    ff = vol["ff"] * ((np.arange(n) + 1) / n)[:, None, None].astype(np.float32)
    total = vol["water"] + vol["fat"]
    paths = {k: write_nrrd(a, tmp_path / f"{k}.nrrd") for k, a in
             {"ff": ff, "water": total * (1 - ff), "fat": total * ff}.items()}
    return load_dixon(ff=paths["ff"], water=paths["water"], fat=paths["fat"])


def stand_in_model():
    model = Model(net=AirIsEvidence(), card=new_card("icam28"))
    model.card["input"]["normalisation"] = {"mean": 0.0, "std": 1.0}
    return model


def test_heatmap_is_zero_outside_the_body_and_scaled_per_slice(graded_series):
    result = classify_volume(graded_series, stand_in_model(), device="cpu", target_class="CMD")
    body = graded_series.body_mask()
    heat = result.heatmap
    assert heat.shape == graded_series.ff.shape and heat.dtype == np.float32
    assert not heat[~body].any()  # the stand-in's map is ≥ 1 in the air: zeroed, not shown
    assert result.normalisation == "slice"
    np.testing.assert_allclose(heat.max(axis=(1, 2)), 1.0, atol=1e-6)  # every slice reaches 1 inside the leg
    volume = result.heatmap_for("CMD", "volume")
    assert not volume[~body].any() and volume.max() == pytest.approx(1.0)
    peaks = volume.max(axis=(1, 2))
    assert peaks[0] < 0.9 and np.all(np.diff(peaks) > 0)  # slice 0 holds the least evidence
    # both rules are the same map up to one factor per slice
    ratio = volume[heat > 0.2] / heat[heat > 0.2]
    for k in range(heat.shape[0]):
        sel = heat[k] > 0.2
        np.testing.assert_allclose(volume[k][sel] / heat[k][sel], peaks[k], rtol=1e-4)
    assert ratio.min() < ratio.max()
    assert "slice" in result.summary()["heatmap"]["method"]
    with pytest.raises(Exception, match="normalisation"):
        result.heatmap_for("CMD", "global")


def test_signed_heatmap_keeps_logit_units_and_the_ff_geometry(graded_series, tmp_path):
    from MDTextureLib.pipeline import CaseInputs, CaseOptions, analyse_case, write_case

    vol = leg_volume()
    n = vol["ff"].shape[0]
    ff = vol["ff"] * ((np.arange(n) + 1) / n)[:, None, None].astype(np.float32)
    inputs = CaseInputs(ff=str(write_nrrd(ff, tmp_path / "ff.nrrd")))
    case = analyse_case(inputs, stand_in_model(), CaseOptions(device="cpu", target_class="CMD", report=False))
    out = write_case(case, tmp_path / "out", CaseOptions(report=False))
    img = sitk.ReadImage(str(out / "heatmap_signed.nrrd"))
    assert img.GetSpacing() == pytest.approx(AWKWARD["spacing"])
    assert img.GetOrigin() == pytest.approx(AWKWARD["origin"])
    assert img.GetDirection() == pytest.approx(AWKWARD["direction"])
    signed = sitk.GetArrayFromImage(img)
    assert signed.shape == ff.shape
    body = case.series.body_mask()
    assert not signed[~body].any()
    # CMD map = FF + 1 (logit units, positive everywhere): the shown heatmap is it scaled per slice
    assert signed[body].min() > 0.9
    peak = signed.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(case.result.heatmap, signed / peak, atol=1e-5)
    # DMD map = FF − 0.3: negative in lean muscle, kept in the signed map
    dmd = case.result.signed_heatmap_for("DMD")
    assert dmd[body].min() < -0.2 and dmd.max() > 0.1 and not dmd[~body].any()
    assert case.summary["heatmap"]["normalisation"] == "slice"


def test_the_body_mask_reaches_a_leg_pooled_network(graded_series):
    """End to end through classify_volume: for icam28-leg the log-odds between two classes equal the difference
    of their maps' means over the body mask beside each stack (plus the bias difference) — the identity only holds
    if inference passed that mask; the same weights pooled over the window (icam28) break it."""
    leg = build_model("icam28-leg", seed=4)
    with torch.no_grad():
        leg.net.fc.bias.copy_(torch.tensor([0.5, -0.25, 0.0]))
    result = classify_volume(graded_series, leg, device="cpu", precision="fp32")
    _, masks, _, _, _ = leg_inputs(graded_series, leg)
    m = F.adaptive_avg_pool2d(masks, (28, 28)).numpy()
    assert 0.05 < m.mean() < 0.95  # the mask is a real part of the window
    maps = result.class_maps
    leg_mean = (maps * m).sum(axis=(2, 3)) / m.sum(axis=(2, 3))
    bias = leg.net.fc.bias.detach().numpy()
    logp = np.log(result.slice_probabilities)
    np.testing.assert_allclose(logp[:, 0] - logp[:, 1], leg_mean[:, 0] - leg_mean[:, 1] + bias[0] - bias[1],
                               atol=1e-3)
    assert result.pooled is not None and result.pooled.shape == (graded_series.n_slices, 128 + 256)
    assert result.summary()["heatmap"]["pooling"] == "leg"
    paper = Model(net=build_model("icam28", seed=4).net, card=new_card("icam28"))
    paper.net.load_state_dict(leg.net.state_dict())
    other = classify_volume(graded_series, paper, device="cpu", precision="fp32")
    assert np.abs(other.slice_probabilities - result.slice_probabilities).max() > 1e-3


def test_mask_window_follows_the_stack_geometry(graded_series):
    geometry = window_for(graded_series, 2.0, 48)
    body = graded_series.body_mask()
    mask = mask_window(body, geometry)
    assert mask.shape == (graded_series.n_slices, 1, 48, 48) and 0 <= mask.min() and mask.max() <= 1
    # the body's area is kept (bilinear resampling of a 0/1 mask): native area in mm² vs window area in mm²
    sx, sy, _ = graded_series.grid.spacing
    native_mm2 = body[0].sum() * sx * sy
    window_mm2 = float(mask[0].sum()) * 2.0 ** 2
    assert window_mm2 == pytest.approx(native_mm2, rel=0.03)


def test_augmentation_moves_the_mask_with_the_image():
    from MDTextureLib.training.augment import AugmentConfig, apply_augmentation, sample_params, warp_mask
    from MDTextureLib.training.randomise import RandomisationConfig  # geometry only: the image's values stay

    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    mask = (((xx - 20) / 14) ** 2 + ((yy - 34) / 9) ** 2 <= 1).float()[None, None].repeat(6, 1, 1, 1)
    params = sample_params(6, 64, AugmentConfig(scale=(1.1, 1.2), rotation_deg=(-5, 5),
                                                   randomisation=RandomisationConfig(enabled=False)), torch.Generator()
                           .manual_seed(2))
    images = apply_augmentation(mask.repeat(1, 3, 1, 1), params, 56)
    moved = warp_mask(mask, params, 56)
    assert moved.shape == (6, 1, 56, 56)
    torch.testing.assert_close(images[:, 1:2] / params.intensity.float().view(6, 1, 1, 1), moved, atol=1e-5,
                               rtol=1e-5)
    assert (moved - F.interpolate(mask, size=56)).abs().max() > 0.5  # it really moved


def test_training_a_leg_variant_uses_the_body_masks(monkeypatch):
    from test_training import PIXEL, SIZE, easy_series, quick_config

    from MDTextureLib.network import ICAMNet
    from MDTextureLib.training import ScanItem, SliceDataset, train

    items = [ScanItem(f"s{i}", f"s{i}", c, easy_series(c, i)) for i, c in enumerate(CLASSES * 2)]
    dataset = SliceDataset.build(items, pixel_mm=PIXEL, size_px=SIZE)
    masks = dataset.masks(torch.arange(len(dataset)))
    assert masks.shape == (len(dataset), 1, SIZE, SIZE) and 0.1 < float(masks.mean()) < 0.9
    assert dataset.subset([1]).masks(torch.arange(2)).shape == (2, 1, SIZE, SIZE)
    seen = []
    original = ICAMNet.forward

    def spy(self, x, mask=None):
        seen.append(mask)
        return original(self, x, mask)

    monkeypatch.setattr(ICAMNet, "forward", spy)
    result = train(dataset, quick_config(variant="icam28-leg", iterations=2), progress=False)
    assert len(seen) == 2 and all(m is not None and m.shape[1] == 1 and 0 < float(m.mean()) < 1 for m in seen)
    assert result.model.card["map"]["pooling"] == "leg" and result.model.card["variant"] == "icam28-leg"
