"""Canonical leg orientation: the same phantom stored in any axis order, flipped, rotated, mirrored into a left leg or
as a sagittal series gives the same answer, and every output goes back exactly onto the input's grid."""

from functools import lru_cache

import numpy as np
import pytest
import SimpleITK as sitk

from MDTextureLib.errors import InputError
from MDTextureLib.io import Grid, series_from_arrays
from MDTextureLib.modelfile import default_model_path, load_model
from MDTextureLib.phantom import make_scan
from MDTextureLib.pipeline import CaseInputs, CaseOptions, analyse_case


@lru_cache(maxsize=None)
def shipped_model():
    return load_model(default_model_path())


@lru_cache(maxsize=None)
def phantom(cls="DMD", seed=1):
    return make_scan(cls, seed=seed, n_slices=8, matrix=144, pixel_mm=1.2)


def stored(array_zyx, spacing, origin, axes=(0, 1, 2), flips=(False, False, False)):
    """The same voxels stored another way: new array = flip(transpose(array, axes), flips), with the grid (spacing,
    origin, direction) that keeps every voxel at its physical place. The input grid has an identity direction."""
    new = np.flip(np.transpose(array_zyx, axes), [a for a in range(3) if flips[a]])
    old_shape = array_zyx.shape
    direction = np.zeros((3, 3))
    new_spacing, corner = [0.0] * 3, [0] * 3  # corner: old (z, y, x) index of the new array's first voxel
    for new_axis in range(3):
        old_axis = axes[new_axis]
        index_axis, old_index_axis = 2 - new_axis, 2 - old_axis  # array axis a ↔ index axis 2 - a
        direction[old_index_axis, index_axis] = -1.0 if flips[new_axis] else 1.0
        new_spacing[index_axis] = spacing[old_index_axis]
        corner[old_axis] = old_shape[old_axis] - 1 if flips[new_axis] else 0
    first = np.asarray(origin) + np.asarray(spacing) * np.asarray(corner[::-1], float)
    return np.ascontiguousarray(new), (tuple(new_spacing), tuple(first), tuple(direction.ravel()))


def write(array, geometry, path):
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(geometry[0])
    img.SetOrigin(geometry[1])
    img.SetDirection(geometry[2])
    sitk.WriteImage(img, str(path))
    return str(path)


def case_of(tmp_path, name, ff, labels, geometry, side=None):
    folder = tmp_path / name
    folder.mkdir()
    inputs = CaseInputs(ff=write(ff, geometry, folder / "ff.nrrd"),
                        segmentation=write(labels.astype(np.uint16), geometry, folder / "muscles.nrrd"))
    if side is not None:
        inputs.side = side
    # float32: the heatmaps are compared voxel by voxel (bfloat16 sums a mirrored leg in another order)
    return analyse_case(inputs, shipped_model(), CaseOptions(precision="fp32"))


def scores_of(case):
    return {s.muscle: s.texture_score for s in case.scores}


# (name, axes, flips): a NIfTI converter's x and y flips, a 90° in-plane rotation, a sagittal series
STORAGES = [
    ("converter xy flip", (0, 1, 2), (False, True, True)),
    ("90 deg in-plane rotation", (0, 2, 1), (False, True, False)),
    ("sagittal series", (2, 0, 1), (False, True, False)),
]


def test_the_same_phantom_stored_four_ways_gives_one_answer(tmp_path):
    """Acceptance (issue 11): identity, a converter's axis flips, a 90° in-plane rotation in the direction matrix
    and the mirror image placed as a left leg give the same verdict, probabilities within 0.02 and texture scores
    within 0.05; every heatmap is on its own input grid and is the reference heatmap stored the same way."""
    s = phantom()
    origin = s.origin_mm
    ref = case_of(tmp_path, "identity", s.ff, s.labels, (s.spacing_mm, origin, s.direction))
    ref_scores = scores_of(ref)
    variants = []
    for name, axes, flips in STORAGES:
        ff, geometry = stored(s.ff, s.spacing_mm, origin, axes, flips)
        labels, _ = stored(s.labels, s.spacing_mm, origin, axes, flips)
        expected_heat, _ = stored(ref.result.heatmap, s.spacing_mm, origin, axes, flips)
        variants.append((name, ff, labels, geometry, expected_heat))
    # a left leg: the right one mirrored in x and placed at +x (patient left), identity direction
    left_origin = (abs(origin[0]) + 40.0, origin[1], origin[2])
    variants.append(("left leg", s.ff[:, :, ::-1], s.labels[:, :, ::-1], (s.spacing_mm, left_origin, s.direction),
                     ref.result.heatmap[:, :, ::-1]))
    for name, ff, labels, geometry, expected_heat in variants:
        case = case_of(tmp_path, name.replace(" ", "_"), ff, labels, geometry)
        assert case.summary["verdict"] == ref.summary["verdict"], name
        np.testing.assert_allclose(case.result.probabilities, ref.result.probabilities, atol=0.02, err_msg=name)
        for muscle, score in scores_of(case).items():
            if ref_scores[muscle] is None:
                assert score is None, (name, muscle)
            else:
                assert abs(score - ref_scores[muscle]) <= 0.05, (name, muscle, score, ref_scores[muscle])
        heat = case.result.heatmap
        assert heat.shape == ff.shape and case.series.grid.spacing == pytest.approx(geometry[0])
        np.testing.assert_allclose(heat, expected_heat, atol=1e-4, err_msg=name)
    assert ref.result.legs[0].side == "right" and ref.result.legs[0].side_source == "anatomy"
    assert case.result.legs[0].side == "left" and case.result.legs[0].geometry.mirror_x


def test_a_sagittal_acquisition_is_refused_or_resampled_never_read_as_axial():
    """Thick sagittal slices (3.6 mm along x) cannot become axial pixels: refused with the numbers. Thin ones
    (a 3-D acquisition, 1 mm along z here) are reordered and averaged into the card's 4 mm axial slices, and then
    give the axial original's answer."""
    s = phantom()
    model = shipped_model()
    axes, flips = (2, 0, 1), (False, True, False)  # slices along L, rows along S (head up), columns along P
    thick, geometry = stored(s.ff[:, :, ::3], (3.6, 1.2, 4.0), s.origin_mm, axes, flips)
    with pytest.raises(InputError, match=r"sagittal acquisition .*3\.60 × 1\.20 mm"):  # refused as it is read
        series_from_arrays(Grid(thick.shape[::-1], *geometry), ff=thick)

    from MDTextureLib.inference import classify_volume
    axial = classify_volume(series_from_arrays(Grid(s.ff.shape[::-1], s.spacing_mm, s.origin_mm, s.direction),
                                               ff=s.ff), model, device="cpu", precision="fp32")
    # a coronal series of the same voxels (slices along P, rows along S head up, columns along L) reads the same
    coronal, geometry = stored(s.ff, s.spacing_mm, s.origin_mm, (1, 0, 2), (False, True, False))
    result = classify_volume(series_from_arrays(Grid(coronal.shape[::-1], *geometry), ff=coronal), model,
                             device="cpu", precision="fp32")
    np.testing.assert_allclose(result.probabilities, axial.probabilities, atol=1e-4)
    assert any("coronal acquisition reordered to axial" in w for w in result.warnings)
    thin_zyx = np.repeat(s.ff, 4, axis=0)  # 32 slices of 1 mm, each 4 mm slice = the mean of its 4 thin ones
    thin, geometry = stored(thin_zyx, (1.2, 1.2, 1.0), s.origin_mm, axes, flips)
    series = series_from_arrays(Grid(thin.shape[::-1], *geometry), ff=thin)
    result = classify_volume(series, model, device="cpu", precision="fp32")
    assert result.verdict == axial.verdict
    np.testing.assert_allclose(result.probabilities, axial.probabilities, atol=0.02)
    assert result.slice_probabilities.shape == (8, 3)
    assert any("sagittal acquisition reordered to axial" in w and "8 axial slices of 4.00 mm" in w
               for w in result.warnings)
    assert result.heatmap.shape == thin.shape


def test_thin_thick_and_coarse_axial_slices_are_read_as_the_model_needs_or_said():
    """Finding (hostile run): the same 1-mm volume gave DMD 0.69 stored axially and 0.87 stored sagittally (averaged
    into 4-mm slices), and 12-mm slices or 3.3-mm pixels ran with no word. Now thin axial slices are averaged as
    thin sagittal ones are — one answer however the volume is stored — and thick slices and coarse pixels are read
    with a warning that names them."""
    from MDTextureLib.inference import classify_volume

    s = phantom()
    model = shipped_model()
    axial = classify_volume(series_from_arrays(Grid(s.ff.shape[::-1], s.spacing_mm, s.origin_mm, s.direction),
                                               ff=s.ff), model, device="cpu", precision="fp32")
    thin_zyx = np.repeat(s.ff, 4, axis=0)  # 32 slices of 1 mm, each 4 mm slice = the mean of its 4 thin ones
    thin = classify_volume(series_from_arrays(Grid(thin_zyx.shape[::-1], (1.2, 1.2, 1.0), s.origin_mm, s.direction),
                                              ff=thin_zyx), model, device="cpu", precision="fp32")
    sagittal, geometry = stored(thin_zyx, (1.2, 1.2, 1.0), s.origin_mm, (2, 0, 1), (False, True, False))
    thin_sagittal = classify_volume(series_from_arrays(Grid(sagittal.shape[::-1], *geometry), ff=sagittal), model,
                                    device="cpu", precision="fp32")
    np.testing.assert_allclose(thin.probabilities, thin_sagittal.probabilities, atol=1e-4)
    np.testing.assert_allclose(thin.probabilities, axial.probabilities, atol=0.02)
    assert thin.slice_probabilities.shape == (8, 3) and thin.heatmap.shape == thin_zyx.shape
    assert any("axial acquisition with its 32 slices of 1.00 mm averaged into 8 axial slices of 4.00 mm" in w
               for w in thin.warnings)
    assert not any("slices" in w and "mm" in w for w in axial.warnings)  # 4-mm slices: nothing to say
    # every third slice: 12 mm apart, read as it is, with the reason the answer may not hold
    thick = classify_volume(series_from_arrays(Grid(s.ff[::3].shape[::-1], (1.2, 1.2, 12.0), s.origin_mm,
                                                    s.direction), ff=s.ff[::3]), model, device="cpu")
    assert thick.slice_probabilities.shape == (3, 3)
    assert any("axial slices 12.00 mm apart, 3.0× the 4 mm" in w and "spans 36 mm" in w for w in thick.warnings)
    # 3.6-mm pixels (every third column and row): warned, as a sagittal series with such pixels is refused
    coarse_zyx = s.ff[:, ::3, ::3]
    coarse = classify_volume(series_from_arrays(Grid(coarse_zyx.shape[::-1], (3.6, 3.6, 4.0), s.origin_mm,
                                                     s.direction), ff=coarse_zyx), model, device="cpu")
    assert any("pixels of 3.60 × 3.60 mm, coarser than 2.0 mm" in w for w in coarse.warnings)


def test_orientation_round_trip_and_oblique_limits():
    from MDTextureLib.orientation import orientation_of, slice_averaging

    rng = np.random.default_rng(0)
    a = rng.random((3, 4, 5)).astype(np.float32)
    notes = []
    # direction: i → −P, j → +S, k → +L (a coronal-like storage), slightly oblique (5°)
    c, s_ = np.cos(np.radians(5)), np.sin(np.radians(5))
    d = np.array([[0, 0, 1], [-c, s_, 0], [s_, c, 0]], float)
    orient = orientation_of(a.shape, (1.0, 1.5, 1.1), tuple(d.ravel()), notes=notes)
    canonical = orient.to_canonical(a)
    assert canonical.shape == (4, 5, 3) and orient.spacing_xyz_mm == (1.1, 1.0, 1.5)
    np.testing.assert_array_equal(orient.from_canonical(canonical), a)
    assert orient.slice_axis == "L" and any("oblique by 5.0°" in n for n in notes)
    assert any("sagittal acquisition reordered to axial" in n for n in notes)
    tilted = np.array([[1, 0, 0], [0, np.cos(0.7), -np.sin(0.7)], [0, np.sin(0.7), np.cos(0.7)]])  # 40°
    with pytest.raises(InputError, match="oblique by 40.1°"):
        orientation_of(a.shape, (1, 1, 1), tuple(tilted.ravel()))
    weights, back = slice_averaging(8, 2)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(back.sum(axis=1), 1.0)


def test_a_mirrored_window_is_the_mirror_image_and_goes_back_exactly():
    import torch

    from MDTextureLib.stacks import StackGeometry, maps_to_native, resample_slices

    rows, cols = 90, 110
    yy, xx = np.mgrid[0:rows, 0:cols]
    img = (np.sin(xx / 7.0) * np.cos(yy / 5.0) + xx / cols).astype(np.float32)[None]
    plain = StackGeometry((rows, cols), (1.0, 1.0), (54.5, 44.5), pixel_mm=1.0, size_px=128)
    mirror = StackGeometry((rows, cols), (1.0, 1.0), (54.5, 44.5), pixel_mm=1.0, size_px=128, mirror_x=True)
    seen = resample_slices(img, mirror)
    torch.testing.assert_close(seen, torch.flip(resample_slices(img, plain), dims=[2]), atol=1e-5, rtol=0)
    np.testing.assert_allclose(maps_to_native(seen, mirror)[0].numpy(), img[0], atol=1e-4)  # float32 rounding
