"""3-slice stacks, the model-pixel resampling and its inverse."""

import numpy as np
import pytest
import torch

from MDTextureLib.stacks import (StackGeometry, leg_centre_xy_px, make_stacks, maps_to_native, resample_slices,
                                 stack_indices)


def test_stack_indices_repeat_edges():
    assert stack_indices(1).tolist() == [[0, 0, 0]]
    assert stack_indices(2).tolist() == [[0, 0, 1], [0, 1, 1]]
    assert stack_indices(4).tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def test_make_stacks_puts_neighbours_in_channels():
    slices = torch.arange(5, dtype=torch.float32)[:, None, None].expand(5, 4, 4)
    stacks = make_stacks(slices)
    assert stacks.shape == (5, 3, 4, 4)
    assert stacks[2, :, 0, 0].tolist() == [1.0, 2.0, 3.0]
    assert stacks[0, :, 0, 0].tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("n_slices", [1, 2, 3, 7])
def test_make_stacks_is_the_index_gather_in_channels_last_order(n_slices):
    """The sliding-window stacks are exactly slices[stack_indices], already in the layout the network runs on."""
    slices = torch.randn(n_slices, 6, 5)
    stacks = make_stacks(slices)
    assert torch.equal(stacks, slices[torch.as_tensor(stack_indices(n_slices))])
    assert stacks.is_contiguous(memory_format=torch.channels_last)


def _disc(rows, cols, spacing_mm, radius_mm, centre_mm):
    yy, xx = np.mgrid[0:rows, 0:cols]
    x_mm, y_mm = (xx + 0.5) * spacing_mm[0], (yy + 0.5) * spacing_mm[1]
    return (((x_mm - centre_mm[0]) ** 2 + (y_mm - centre_mm[1]) ** 2) < radius_mm ** 2).astype(np.float32)


@pytest.mark.parametrize("spacing", [(0.7, 0.7), (1.4, 1.4), (1.0, 0.8)])
def test_physical_size_is_the_same_on_every_scanner(spacing):
    """A 40 mm disc covers the same number of model pixels whatever the native pixel size."""
    fov = 200.0
    rows, cols = int(fov / spacing[1]), int(fov / spacing[0])
    disc = _disc(rows, cols, spacing, 40.0, (100.0, 100.0))[None]
    geo = StackGeometry((rows, cols), spacing, leg_centre_xy_px(disc > 0), pixel_mm=0.8, size_px=224)
    on_model = resample_slices(disc, geo)[0].numpy()
    expected_px = np.pi * 40.0 ** 2 / 0.8 ** 2
    assert on_model.sum() == pytest.approx(expected_px, rel=0.02)
    # and it is centred in the window
    ys, xs = np.nonzero(on_model > 0.5)
    assert abs(xs.mean() - 111.5) < 1.0 and abs(ys.mean() - 111.5) < 1.0


def test_round_trip_returns_to_the_same_place():
    """Native → model window → native: a smooth image comes back where it was (interior, bilinear error only)."""
    rows, cols, spacing = 150, 170, (1.1, 0.9)
    yy, xx = np.mgrid[0:rows, 0:cols]
    img = (np.sin(xx / 9.0) * np.cos(yy / 7.0)).astype(np.float32)[None]
    geo = StackGeometry((rows, cols), spacing, (84.5, 74.5), pixel_mm=0.8, size_px=256)  # window 205 mm ⊃ image
    back = maps_to_native(resample_slices(img, geo), geo)[0].numpy()
    inner = np.s_[20:-20, 20:-20]
    assert np.abs(back[inner] - img[0][inner]).max() < 0.02


def test_a_coarse_map_lands_on_the_native_voxels_it_came_from():
    """A single hot cell of a 28×28 map returns to the native pixels under that cell's physical footprint."""
    rows, cols, spacing = 200, 220, (0.75, 0.75)
    geo = StackGeometry((rows, cols), spacing, (100.0, 90.0), pixel_mm=0.8, size_px=224)
    cam = torch.zeros(1, 28, 28)
    cam[0, 20, 5] = 1.0  # row 20, col 5: model pixels rows 160..167, cols 40..47
    native = maps_to_native(cam, geo)[0].numpy()
    ys, xs = np.unravel_index(np.argmax(native), native.shape)
    # Physical offset of the cell centre from the window centre, in native pixels.
    cx_model, cy_model = (5 + 0.5) * 8, (20 + 0.5) * 8
    x_exp = 100.0 + (cx_model - 112) * 0.8 / 0.75
    y_exp = 90.0 + (cy_model - 112) * 0.8 / 0.75
    assert abs(xs - x_exp) <= 1.0 and abs(ys - y_exp) <= 1.0


def test_outside_the_window_is_zero_and_empty_mask_centres():
    geo = StackGeometry((400, 400), (1.0, 1.0), (199.5, 199.5), pixel_mm=0.5, size_px=100)
    native = maps_to_native(torch.ones(1, 10, 10), geo)[0].numpy()
    assert native[0, 0] == 0 and native[200, 200] == pytest.approx(1.0)
    assert leg_centre_xy_px(np.zeros((2, 10, 20), bool)) == (9.5, 4.5)
