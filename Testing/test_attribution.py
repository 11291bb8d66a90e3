"""Fat attribution (gradient × FF against a fat-free slice): exact on a network whose answer we know, zero where
there is no fat, and back on the native grid where the evidence-carrying fat is."""

import json

import numpy as np
import pytest
import torch

from MDTextureLib.attribution import fat_attribution, fat_free_level
from MDTextureLib.errors import InputError
from MDTextureLib.inference import classify_volume
from MDTextureLib.io import load_dixon
from MDTextureLib.modelfile import Model, build_model, new_card

MEAN, STD = 0.2, 0.3


class LeftFatIsDMD(torch.nn.Module):
    """Logits linear in the centre slice's normalised FF u: DMD = Σ over the LEFT half of the window of w·u, CMD = Σ
    over the right half of −u, normal = 0. Its gradient × (u − u_0) is known exactly: w·FF/std on the left half
    for DMD, 0 on the right half; −FF/std on the right half for CMD."""

    stages = ("layer2",)

    def __init__(self, weight: float = 2.0):
        super().__init__()
        self.weight = weight

    def forward_with_maps(self, x):
        u = x[:, 1]
        half = u.shape[-1] // 2
        dmd = self.weight * u[..., :half].sum(dim=(1, 2))
        cmd = -u[..., half:].sum(dim=(1, 2))
        logits = torch.stack([dmd, cmd, torch.zeros_like(dmd)], dim=1)
        return logits, torch.zeros(x.shape[0], 3, 28, 28)


def _stacks(ff: torch.Tensor) -> torch.Tensor:
    """(B, H, W) FF → normalised (B, 3, H, W) stacks (the same slice in the three channels)."""
    u = (ff - MEAN) / STD
    return torch.stack([u, u, u], dim=1)


def test_linear_network_gives_its_exact_attribution():
    g = torch.Generator().manual_seed(0)
    ff = torch.rand(2, 16, 16, generator=g)
    ff[:, :4] = 0.0  # a fat-free band: nothing to attribute there
    maps = fat_attribution(LeftFatIsDMD(), _stacks(ff), None, MEAN, STD)
    assert maps.shape == (2, 3, 16, 16) and maps.dtype == torch.float32
    expected_dmd = torch.zeros_like(ff)
    expected_dmd[..., :8] = 2.0 * ff[..., :8] / STD
    expected_cmd = torch.zeros_like(ff)
    expected_cmd[..., 8:] = -ff[..., 8:] / STD
    torch.testing.assert_close(maps[:, 0], expected_dmd, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(maps[:, 1], expected_cmd, atol=1e-5, rtol=1e-5)
    assert torch.count_nonzero(maps[:, 2]) == 0
    assert torch.count_nonzero(maps[:, :, :4]) == 0  # no fat, no attribution
    # completeness (exact for a linear network): the map sums to the logit's change from a fat-free slice
    net = LeftFatIsDMD()
    u0 = torch.full_like(ff, float(fat_free_level(MEAN, STD)))
    change = net.forward_with_maps(_stacks(ff))[0] - net.forward_with_maps(torch.stack([u0] * 3, dim=1))[0]
    torch.testing.assert_close(maps.sum(dim=(2, 3)), change, atol=1e-3, rtol=1e-5)


def test_one_class_per_slice_picks_that_class():
    ff = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    every = fat_attribution(LeftFatIsDMD(), _stacks(ff), None, MEAN, STD)
    chosen = fat_attribution(LeftFatIsDMD(), _stacks(ff), torch.tensor([0, 1, 2]), MEAN, STD)
    for b, c in enumerate((0, 1, 2)):
        torch.testing.assert_close(chosen[b], every[b, c])


def test_works_on_inference_tensors_and_leaves_no_gradient():
    net = build_model("icam28-leg", seed=0).net.eval()
    with torch.inference_mode():
        x = torch.randn(2, 3, 64, 64)
        mask = torch.zeros(2, 1, 64, 64)
        mask[..., 16:48, 16:48] = 1
        maps = fat_attribution(net, x, None, MEAN, STD, mask=mask)
    assert maps.shape == (2, 3, 64, 64) and torch.isfinite(maps).all()
    # the leg-pooled network sets its input to 0 outside the body: no gradient, no attribution there
    assert torch.count_nonzero(maps[..., :16, :]) == 0
    assert all(p.grad is None for p in net.parameters())


@pytest.fixture
def series(leg_files):
    return load_dixon(ff=leg_files["ff"])


def test_classify_fat_map_lights_the_evidence_fat_on_the_native_grid(series):
    """The stand-in counts the LEFT half of the model window (canonical x) as DMD evidence: the DMD heatmap must be
    the fat of that half, 0 in the other half and wherever there is no fat."""
    model = Model(net=LeftFatIsDMD(), card=new_card("icam28"))
    model.card["input"]["normalisation"] = {"mean": MEAN, "std": STD}
    result = classify_volume(series, model, device="cpu", target_class="DMD", fat_map=True)
    heat = result.fat_heatmap
    assert heat.shape == series.ff.shape and heat.dtype == np.float32
    assert result.summary()["fat_map"]["file"] == "fat_map.nrrd"
    from scipy import ndimage
    # lean muscle (FF 5 %) away from fat: about 0.05 / 0.9 of the rim's heat on the hot half, never more
    lean = np.stack([ndimage.binary_erosion((s < 0.07) & b, iterations=3)
                     for s, b in zip(series.ff, series.body_mask())])
    assert lean.sum() > 100 and heat[lean].max() < 0.1, heat[lean].max()
    # the fatty rim (FF 90 %), away from its edges: hot (≈ 1) on the window's left half, 0 on its right half
    rim = np.stack([ndimage.binary_erosion(s > 0.85, iterations=2) for s in series.ff])
    hot, cold = (heat[rim] > 0.8).mean(), (heat[rim] < 0.05).mean()
    assert 0.25 < hot < 0.75 and 0.25 < cold < 0.75 and hot + cold > 0.9, (hot, cold)
    # the CMD map is the right half's fat, negative (fat there argues against CMD): ReLU leaves nothing
    assert result.fat_heatmap_for("CMD").max() == 0
    with pytest.raises(InputError, match="no fat attribution"):
        classify_volume(series, model, device="cpu").fat_heatmap


def test_fat_map_does_not_change_the_answer(series):
    model = build_model("icam28", seed=0)
    a = classify_volume(series, model, device="cpu")
    b = classify_volume(series, model, device="cpu", fat_map=True)
    np.testing.assert_allclose(a.slice_probabilities, b.slice_probabilities, atol=1e-6)
    np.testing.assert_array_equal(a.class_maps, b.class_maps)
    np.testing.assert_array_equal(a.heatmap, b.heatmap)  # the heatmap (and so the texture scores) stay the ICAM's
    assert b.fat_maps.shape == (series.n_slices, 3, model.size_px, model.size_px)
    assert a.summary()["fat_map"] is None and b.summary()["fat_map"]["method"].startswith("fat attribution")


def test_cli_writes_the_fat_map_on_the_ff_grid(leg_files, model_files, tmp_path):
    import SimpleITK as sitk

    from MDTextureLib.cli import main

    out = tmp_path / "out"
    assert main(["classify", "--ff", str(leg_files["ff"]), "--model", str(model_files), "--out", str(out),
                 "--fat-map", "--no-report"]) == 0
    fat_image, ff_image = sitk.ReadImage(str(out / "fat_map.nrrd")), sitk.ReadImage(str(leg_files["ff"]))
    for what in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(fat_image, what)() == getattr(ff_image, what)(), what
    fat = sitk.GetArrayFromImage(fat_image)
    assert 0 <= fat.min() and fat.max() <= 1
    entry = json.loads((out / "prediction.json").read_text())["fat_map"]
    assert entry["file"] == "fat_map.nrrd"
    # the measured limitation travels with the map: no better than the FF image with random signs on the phantom
    from MDTextureLib.constants import FAT_MAP_CAVEAT

    assert entry["caveat"] == FAT_MAP_CAVEAT and "random sign" in entry["caveat"]
    assert "moved the network" not in entry["use"]  # the claim the measurement withdrew
    plain = tmp_path / "plain"
    assert main(["classify", "--ff", str(leg_files["ff"]), "--model", str(model_files), "--out", str(plain),
                 "--no-report"]) == 0
    assert not (plain / "fat_map.nrrd").exists()
