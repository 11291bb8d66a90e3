"""Leg-pooled variants: the logit is the map's mean over the body mask (exactly), air cannot carry evidence."""

import json

import numpy as np
import pytest
import torch

from MDTextureLib.constants import LEG_VARIANTS, VARIANTS
from MDTextureLib.errors import InputError
from MDTextureLib.modelfile import build_model, load_model, save_model
from MDTextureLib.network import MAP_SIZE_224, ICAMNet


def disc_masks(side: int = 224) -> torch.Tensor:
    """Two different non-rectangular masks: a tilted ellipse off-centre, and a ring (a hole in the middle)."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    u, v = (xx - 100) * np.cos(0.5) + (yy - 120) * np.sin(0.5), -(xx - 100) * np.sin(0.5) + (yy - 120) * np.cos(0.5)
    ellipse = (u / 70) ** 2 + (v / 40) ** 2 <= 1
    r = np.hypot(xx - 130, yy - 110)
    ring = (r <= 60) & (r >= 25)
    return torch.from_numpy(np.stack([ellipse, ring])[:, None].astype(np.float32))


@pytest.fixture(scope="module")
def x224():
    torch.manual_seed(11)
    return torch.randn(2, 3, 224, 224)


@pytest.mark.parametrize("variant", list(LEG_VARIANTS))
def test_map_mean_over_the_leg_equals_logit_minus_bias(variant, x224):
    """Σ m M^c / Σ m = S^c − b^c for each sample's own mask (m: the mask area-averaged to the map's size)."""
    torch.manual_seed(12)
    net = ICAMNet(variant).eval()
    mask = disc_masks()
    with torch.no_grad():
        net.fc.bias.uniform_(-3, 3)
        logits, maps = net.forward_with_maps(x224, mask)
    side = MAP_SIZE_224[variant]
    assert maps.shape == (2, 3, side, side)
    m = torch.nn.functional.avg_pool2d(mask, 224 // side)  # block means: what the map cell covers
    leg_mean = (maps * m).sum(dim=(2, 3)) / m.sum(dim=(2, 3))
    torch.testing.assert_close(leg_mean, logits - net.fc.bias, atol=1e-5, rtol=1e-5)
    # ... and not the window mean (the identity would be trivially true if the mask were ignored)
    assert (maps.mean(dim=(2, 3)) - (logits - net.fc.bias)).abs().max() > 1e-2
    # the batch is pooled per sample: each one alone gives the same logits
    with torch.no_grad():
        for i in range(2):
            torch.testing.assert_close(net(x224[i:i + 1], mask[i:i + 1]), logits[i:i + 1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", list(LEG_VARIANTS))
def test_nothing_outside_the_body_changes_the_answer(variant, x224):
    """Input outside the body is set to 0, so changing it leaves logits and in-leg maps unchanged."""
    torch.manual_seed(13)
    net = ICAMNet(variant).eval()
    mask = disc_masks()
    other = torch.where(mask > 0, x224, 5 * torch.randn_like(x224))
    with torch.no_grad():
        a, _ = net.forward_with_maps(x224, mask)
        b, _ = net.forward_with_maps(other, mask)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_paper_variants_ignore_the_mask(x224):
    torch.manual_seed(14)
    net = ICAMNet("icam28").eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x224, disc_masks()), net(x224))


def test_an_empty_mask_pools_the_window_not_nan(x224):
    torch.manual_seed(15)
    net = ICAMNet("icam28-leg").eval()
    mask = disc_masks()
    mask[1] = 0
    with torch.no_grad():
        logits = net(x224, mask)
        assert torch.isfinite(logits).all()
        # an empty mask zeroes the whole input and pools the whole window
        torch.testing.assert_close(logits[1:], net(torch.zeros_like(x224[1:])), atol=1e-5, rtol=1e-5)
    assert net.empty_mask(mask, (28, 28)).tolist() == [False, True]
    assert ICAMNet("icam28").empty_mask(mask, (28, 28)) is None


def test_leg_variants_share_the_paper_weights_and_the_card_tells_them_apart(tmp_path):
    model = build_model("icam28-leg", seed=3)
    assert model.card["map"]["pooling"] == "leg" and model.net.pooling == "leg"
    save_model(model, tmp_path / "leg")
    loaded = load_model(tmp_path / "leg")
    assert loaded.net.variant == "icam28-leg" and loaded.net.pooling == "leg"
    # an old card (no map.pooling) of a paper variant still loads as image pooling
    old = build_model("icam14", seed=3)
    save_model(old, tmp_path / "old")
    card = json.loads((tmp_path / "old.json").read_text())
    del card["map"]["pooling"]
    (tmp_path / "old.json").write_text(json.dumps(card))
    assert load_model(tmp_path / "old").net.pooling == "image"
    # a card whose pooling contradicts its variant is refused, not guessed
    card["map"]["pooling"] = "leg"
    (tmp_path / "old.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="pooling"):
        load_model(tmp_path / "old")


def test_leg_variants_are_listed():
    assert {"icam28-leg", "icam14-leg"} <= set(VARIANTS)
    assert VARIANTS["icam28-leg"] == VARIANTS["icam28"] and VARIANTS["icam14-leg"] == VARIANTS["icam14"]
