"""The faster ways of computing the steps around the network give the results of the plain ways, exactly.

Each test holds a fast path (whole-stack labelling, labelling within a box, one resampling for several volumes)
to the plain computation written out literally here, on phantom scans and on masks built to hit the corners
(components of equal size, specks everywhere, empty and full masks)."""

import numpy as np
import pytest
from scipy import ndimage

from MDTextureLib.body import IN_PLANE_CONNECTIVITY, clean_mask, fill_holes_per_slice
from MDTextureLib.legs import MAX_BONE_MM2, MIN_BONE_MM2, bones_of_slice, bones_per_slice, dark_voxels
from MDTextureLib.phantom import make_scan


@pytest.fixture(scope="module")
def scans():
    return [make_scan(cls, seed=seed, n_slices=8, matrix=144, pixel_mm=240.0 / 144)
            for cls in ("DMD", "CMD", "normal") for seed in (0, 1)]


# ------------------------------------------------------------------------------------------------------ bones
def bones_one_slice_literally(dark_yx, leg_yx, pixel_area_mm2):
    """The bone candidates of one slice, computed on that slice alone (the per-slice way)."""
    dark = fill_holes_per_slice(leg_yx[None])[0] & dark_yx
    bone = fill_holes_per_slice(dark[None])[0]
    labels, n = ndimage.label(bone)
    out = []
    for i in range(1, n + 1):
        part = labels == i
        area = part.sum() * pixel_area_mm2
        ys, xs = np.nonzero(part)
        if (bone & ~dark)[part].any() and MIN_BONE_MM2 <= area <= MAX_BONE_MM2:
            out.append((float(area), float(xs.mean()), float(ys.mean())))
    return sorted(out, reverse=True)


def test_bones_of_a_stack_are_those_of_each_slice_alone(scans):
    found = 0
    for scan in scans:
        body = scan.ff > 0
        dark = dark_voxels(scan.ff)
        stack = bones_per_slice(dark, body, 1.5)
        assert len(stack) == scan.ff.shape[0]
        for k in range(scan.ff.shape[0]):
            literal = bones_one_slice_literally(dark[k], body[k], 1.5)
            assert [b[0] for b in stack[k]] == [b[0] for b in literal]
            np.testing.assert_allclose([b[1:] for b in stack[k]], [b[1:] for b in literal], rtol=0, atol=1e-12)
            assert bones_of_slice(dark[k], body[k], 1.5) == stack[k]
            found += len(literal)
    assert found > 4 * len(scans)  # bones on most slices: the comparison is not one of empty lists


def test_bones_stay_on_their_own_slice():
    """A ring on slice 0 and one on slice 2 at other places: each slice reports its own ring, at its own centre;
    a ring stacked over the same place on slices 1 and 2 is not merged across them."""
    yy, xx = np.mgrid[0:60, 0:60]
    def ring(cy, cx):
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        return (d2 < 6 ** 2) & (d2 >= 4 ** 2)
    leg = np.ones((3, 60, 60), bool)
    leg[:, 0, :] = leg[:, -1, :] = leg[:, :, 0] = leg[:, :, -1] = False
    dark = np.zeros((3, 60, 60), bool)
    dark[0] = ring(20, 30)
    dark[1] = ring(40, 15)
    dark[2] = ring(40, 15) | ring(20, 45)
    bones = bones_per_slice(dark, leg, 1.0)
    area = float((ring(20, 30) | ndimage.binary_fill_holes(ring(20, 30))).sum())
    assert bones[0] == [(area, 30.0, 20.0)]
    assert bones[1] == [(area, 15.0, 40.0)]
    assert sorted(b[1:] for b in bones[2]) == [(15.0, 40.0), (45.0, 20.0)]


# ------------------------------------------------------------------------------------------------ clean_mask
def clean_mask_literally(mask, spacing_xy_mm, min_island_mm2=100.0, max_components=2):
    """clean_mask's rule on the whole field of view, written out step by step."""
    from MDTextureLib.body import CLOSE_MM, MIN_SECOND_COMPONENT_FRACTION, _grow, _shrink

    mask = np.asarray(mask, bool).copy()
    min_px = max(1, int(np.ceil(min_island_mm2 / (spacing_xy_mm[0] * spacing_xy_mm[1]))))
    labels, n = ndimage.label(mask, structure=IN_PLANE_CONNECTIVITY)
    for i in range(1, n + 1):
        if (labels == i).sum() < min_px:
            mask[labels == i] = False
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(labels.ravel())[1:]
        order = np.argsort(sizes)[::-1]
        keep = [order[0]] + [i for i in order[1:max_components]
                             if sizes[i] >= MIN_SECOND_COMPONENT_FRACTION * sizes[order[0]]]
        mask = np.isin(labels, np.asarray(keep) + 1)
    close_px = max(1, int(round(CLOSE_MM / min(spacing_xy_mm))))
    return fill_holes_per_slice(mask | _shrink(_grow(mask, close_px), close_px))


def corner_masks():
    rng = np.random.default_rng(5)
    for _ in range(12):  # blocks of equal sizes (ties in the component order), in various places
        m = np.zeros((5, 70, 80), bool)
        for _ in range(rng.integers(1, 6)):
            z, y, x, h = rng.integers(0, 4), rng.integers(0, 55), rng.integers(0, 65), rng.integers(9, 15)
            m[z:z + 2, y:y + h, x:x + h] = True
        yield m
    yield rng.random((4, 60, 60)) > 0.55  # specks everywhere
    yield np.zeros((3, 30, 30), bool)
    yield np.ones((3, 30, 30), bool)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.7, 0.7), (2.0, 1.0)])
def test_clean_mask_is_the_whole_field_of_view_rule(scans, spacing):
    masks = [s.ff != 0 for s in scans] + [s.ff > 0.3 for s in scans] + list(corner_masks())
    for mask in masks:
        np.testing.assert_array_equal(clean_mask(mask, spacing), clean_mask_literally(mask, spacing))
    for mask in list(corner_masks())[:6]:
        np.testing.assert_array_equal(clean_mask(mask, spacing, max_components=3),
                                      clean_mask_literally(mask, spacing, max_components=3))


# ---------------------------------------------------------------------------------------- labels off the body
def outside_shares_literally(layers, body):
    layers = layers[None] if layers.ndim == 3 else layers
    per_value = {}
    for v in range(1, int(layers.max()) + 1):
        voxels = (layers == v).any(axis=0)
        if voxels.any():
            per_value[v] = float((voxels & ~body).sum() / voxels.sum())
    labelled = (layers > 0).any(axis=0)
    return per_value, float((labelled & ~body).sum() / labelled.sum()) if labelled.any() else 0.0


def test_outside_body_shares_count_every_labelled_voxel(scans):
    from MDTextureLib.labelcheck import outside_body_shares

    for scan in scans[:3]:
        body = scan.ff > 0
        labels = np.asarray(scan.labels).astype(np.uint16)
        shifted = np.roll(labels, 25, axis=2)
        two_layers = np.stack([labels, np.where(np.roll(labels, -9, axis=1) > 0, 9, 0).astype(np.uint16)])
        for layers in (labels, shifted, two_layers, np.zeros_like(labels)):
            per, overall = outside_body_shares(layers, body)
            per_literal, overall_literal = outside_shares_literally(layers, body)
            assert per == per_literal and overall == overall_literal
            if layers is shifted:
                assert overall > 0.05  # the comparison includes labels off the body


# ------------------------------------------------------------------------------------------------- heatmaps
@pytest.mark.parametrize("storage", ["axial", "flipped", "coronal"])
def test_heatmaps_sampled_in_the_body_box_equal_the_whole_slice(scans, storage, monkeypatch):
    """Only the body's box of the native slice is sampled back from the model window; every heatmap (each class,
    ReLU and signed, per slice and per volume) equals the one sampled over the whole slice, also when the input is
    stored in another order (the box is found on the canonical slice)."""
    from MDTextureLib import inference
    from MDTextureLib.io import Grid, series_from_arrays
    from MDTextureLib.modelfile import build_model
    from test_orientation import stored

    s = scans[0]
    axes, flips = {"axial": ((0, 1, 2), (False, False, False)), "flipped": ((0, 1, 2), (False, True, True)),
                   "coronal": ((1, 0, 2), (False, True, False))}[storage]
    ff, geometry = stored(s.ff, s.spacing_mm, s.origin_mm, axes, flips)
    series = series_from_arrays(Grid(ff.shape[::-1], *geometry), ff=ff)
    result = inference.classify_volume(series, build_model("icam28", seed=3), device="cpu", precision="fp32")

    def every_map(r):
        r._heatmaps.clear()
        return [r.heatmap, r.heatmap_signed] + [r.heatmap_for(c, n) for c in ("DMD", "CMD", "normal")
                                                for n in ("slice", "volume")] + [r.signed_heatmap_for("CMD")]

    boxed = every_map(result)
    assert inference._region_box(result.body, result.geometry) is not None
    monkeypatch.setattr(inference, "_region_box", lambda region, geometry: None)
    whole = every_map(result)
    for a, b in zip(boxed, whole):
        np.testing.assert_array_equal(a, b)
    assert boxed[0].max() == 1.0 and (boxed[1] != 0).mean() > 0.05  # maps with content, not zeros


def test_mirrored_labels_check_counts_columns_like_one_mask_per_segment(scans):
    """The lateral/medial test sees each segment's mean column exactly as one mask per segment gives it."""
    from MDTextureLib import labelcheck
    from MDTextureLib.constants import MUSCLE_LABELS

    names = {v: m for m, v in MUSCLE_LABELS.items()}
    checked = 0
    for scan in scans[:3]:
        labels = np.asarray(scan.labels).astype(np.uint16)
        for layers in (labels, labels[:, :, ::-1], np.stack([labels, np.zeros_like(labels)])):
            for side in ("right", "left"):
                got = labelcheck.mirrored_labels_warning(layers, names, side)
                # literally: the mean column of each muscle from its own mask
                lay = layers if layers.ndim == 4 else layers[None]
                mean_x = {m: np.nonzero(lay == v)[-1].mean() for v, m in names.items() if (lay == v).any()}
                wrong = [(lat, med) for lat, med in labelcheck.LATERAL_OF
                         if (mean_x[lat] > mean_x[med]) == (side == "right")]
                assert (got is not None) == (len(wrong) == len(labelcheck.LATERAL_OF)), (side, wrong, got)
                checked += got is not None
    assert checked >= 3  # some of the cases are mirrored: both answers are compared


def test_body_mask_from_ff_reads_nan_and_inf_as_zero(scans):
    """Non-finite voxels are 0 to the FF route, whether the map holds any (copied and cleaned) or not (read as is)."""
    from MDTextureLib.body import body_mask_from_ff

    ff = scans[1].ff.astype(np.float32)
    dirty = ff.copy()
    dirty[0, :3, :3], dirty[1, 5, 5], dirty[2, 0, :4] = np.nan, np.inf, -np.inf
    zeroed = np.where(np.isfinite(dirty), dirty, 0.0).astype(np.float32)
    spacing = scans[1].spacing_mm[:2]
    np.testing.assert_array_equal(body_mask_from_ff(dirty, spacing), body_mask_from_ff(zeroed, spacing))
    before = ff.copy()
    assert body_mask_from_ff(ff, spacing).any()
    np.testing.assert_array_equal(ff, before)  # the input is never written to
