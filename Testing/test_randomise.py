"""Acquisition randomisation (training/randomise.py): shapes, seeds, ranges and what each transform does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from MDTextureLib.training import randomise as rz
from MDTextureLib.training.augment import AugmentConfig, apply_augmentation, sample_params


def leg_stack(size: int = 64, ff: float = 0.5) -> torch.Tensor:
    """(3, S, S): a disc of constant FF ``ff`` (the body) in air (0)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    body = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.4 * size) ** 2
    return (body.float() * ff).expand(3, size, size).clone()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_every_transform_keeps_the_shape_and_the_air():
    x = leg_stack()
    air = x == 0
    config = rz.RandomisationConfig(calibration_p=1, bias_p=1, thickness_p=1, resolution_p=1, noise_p=1)
    y = rz.randomise_stack(x, config, gen())
    assert y.shape == x.shape and (y[air] == 0).all()
    assert y.min() >= 0 and y.max() <= 1 and not torch.equal(x, y)
    for out in (rz.ff_calibration(x, 0.1, 1.1), rz.bias_field(x, rz.smooth_field(64, 64, 0.2, gen())),
                rz.slice_thickness(x, 0.3), rz.in_plane_resolution(x, 2.0), rz.add_noise(x, 0.05, gen())):
        assert out.shape == x.shape


def test_reproducible_from_the_seed():
    x = leg_stack()
    config = rz.RandomisationConfig(calibration_p=1, bias_p=1, thickness_p=1, resolution_p=1, noise_p=1)
    a, b = rz.randomise_stack(x, config, gen(7)), rz.randomise_stack(x, config, gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, rz.randomise_stack(x, config, gen(8)))
    batch = torch.stack([x, x])
    seeds = torch.tensor([7, 8])
    torch.testing.assert_close(rz.randomise_batch(batch, seeds, config)[0], a)  # one image's draws: its seed only


def test_disabled_is_the_identity():
    x = leg_stack()
    assert torch.equal(rz.randomise_stack(x, rz.RandomisationConfig(enabled=False), gen()), x)
    none = rz.RandomisationConfig(calibration_p=0, bias_p=0, thickness_p=0, resolution_p=0, noise_p=0)
    assert torch.equal(rz.randomise_stack(x, none, gen()), x)


def test_offset_and_scale_move_the_body_mean_by_construction():
    x = leg_stack(ff=0.4)
    body = x > 0
    out = rz.ff_calibration(x, 0.05, 1.0)
    assert float(out[body].mean() - x[body].mean()) == pytest.approx(0.05, abs=1e-6)
    assert float(rz.ff_calibration(x, 0.0, 1.2)[body].mean()) == pytest.approx(0.48, abs=1e-6)
    assert (out[~body] == 0).all()


@pytest.mark.parametrize("std", [0.02, 0.05])
def test_gaussian_noise_has_the_requested_std(std):
    x = leg_stack(size=128, ff=0.5)
    body = x > 0
    noisy = rz.add_noise(x, std, gen(1))
    assert float((noisy - x)[body].std()) == pytest.approx(std, rel=0.03)
    assert float((noisy - x)[body].mean()) == pytest.approx(0.0, abs=3 * std / float(body.sum()) ** 0.5)


def test_rician_noise_lifts_low_ff_as_a_magnitude_does():
    # |0 + n1 + i n2| has mean σ·sqrt(π/2) (a Rayleigh distribution): a zero FF inside the body reads positive
    x = leg_stack(size=128, ff=1e-6)
    body = x > 0
    noisy = rz.add_noise(x, 0.05, gen(2), rician=True)
    assert float(noisy[body].mean()) == pytest.approx(0.05 * np.sqrt(np.pi / 2), rel=0.03)


def test_bias_field_is_smooth_multiplicative_and_within_its_amplitude():
    field = rz.smooth_field(64, 64, 0.2, gen(3))
    log_field = field.log()
    assert float(log_field.abs().max()) == pytest.approx(0.2, rel=1e-4)
    assert float(log_field.diff(dim=0).abs().max()) < 0.2 * 4 * np.pi / 63  # no pixel-scale structure
    x = leg_stack(ff=0.5)
    body = x > 0
    torch.testing.assert_close((rz.bias_field(x, field)[body] / x[body]), field.expand(3, 64, 64)[body])


def test_slice_thickness_mixes_neighbours_by_the_weight():
    x = torch.stack([torch.full((8, 8), v) for v in (0.2, 0.4, 0.9)])
    y = rz.slice_thickness(x, 0.5)
    assert float(y[1, 0, 0]) == pytest.approx(0.5 * 0.4 + 0.25 * (0.2 + 0.9))
    assert float(y[0, 0, 0]) == pytest.approx(0.5 * 0.2 + 0.25 * (0.2 + 0.4))  # the missing neighbour: itself
    same = torch.full((3, 8, 8), 0.3)
    torch.testing.assert_close(rz.slice_thickness(same, 0.5), same)


def test_in_plane_resolution_blurs_what_the_coarser_matrix_cannot_hold():
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2).float().expand(3, 32, 32)
    blurred = rz.in_plane_resolution(checker, 2.0)  # a one-pixel checkerboard averages out on a 2-pixel grid
    torch.testing.assert_close(blurred, torch.full_like(checker, 0.5))
    smooth = torch.linspace(0, 1, 32).expand(3, 32, 32)
    assert float((rz.in_plane_resolution(smooth, 2.0) - smooth).abs().max()) < 0.03  # slow changes survive
    assert torch.equal(rz.in_plane_resolution(checker, 1.0), checker)


def test_augmentation_applies_the_randomisation_once_per_image():
    x = leg_stack(size=40).expand(4, 3, 40, 40).clone()
    config = AugmentConfig(enabled=False, randomisation=rz.RandomisationConfig(noise_p=1, calibration_p=0, bias_p=0,
                                                                               thickness_p=0, resolution_p=0))
    params = sample_params(4, 40, config, gen(4))
    out = apply_augmentation(x, params)
    assert not torch.equal(out[0], out[1])  # each image its own noise
    torch.testing.assert_close(out, rz.randomise_batch(x, params.seeds, config.randomisation), atol=1e-5, rtol=0)
    off = sample_params(4, 40, AugmentConfig(enabled=False, randomisation=rz.RandomisationConfig(enabled=False)),
                        gen(4))
    torch.testing.assert_close(apply_augmentation(x, off), x, atol=1e-5, rtol=0)
