"""Both legs: a field of view with two legs is split, each leg classified in its own window as it would be alone, the
heatmap covers both, scores per leg; one leg's side from its anatomy, the user, or a warned assumption."""

import csv
import json
from functools import lru_cache

import numpy as np
import pytest

from MDTextureLib.inference import classify_volume
from MDTextureLib.io import Grid, series_from_arrays
from MDTextureLib.modelfile import default_model_path, load_model
from MDTextureLib.phantom import make_scan

MATRIX, PIXEL_MM = 144, 1.2
# A DMD / normal pair the shipped model tells apart: these tests are about each leg keeping its own verdict, not
# about accuracy (the model card measures that; a weak texture-trained model may call a normal phantom DMD).
NORMAL_SEED = 1


@lru_cache(maxsize=None)
def shipped_model():
    return load_model(default_model_path())


@lru_cache(maxsize=None)
def phantom(cls, seed):
    return make_scan(cls, seed=seed, n_slices=8, matrix=MATRIX, pixel_mm=PIXEL_MM)


def series_of(ff, origin_x=None):
    half = (MATRIX - 1) / 2.0 * PIXEL_MM
    grid = Grid(ff.shape[::-1], (PIXEL_MM, PIXEL_MM, 4.0), (-half if origin_x is None else origin_x, -half, 0.0),
                (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    return series_from_arrays(grid, ff=np.ascontiguousarray(ff))


@lru_cache(maxsize=None)
def alone(side):
    """Each phantom classified alone, as a right leg (the normal one unmirrored)."""
    s = phantom("DMD", 1) if side == "right" else phantom("normal", NORMAL_SEED)
    return classify_volume(series_of(s.ff), shipped_model(), device="cpu")


def both_legs():
    """A DMD right leg at −x and a normal left leg (a mirrored phantom) at +x, in one 288-column volume."""
    dmd, normal = phantom("DMD", 1), phantom("normal", NORMAL_SEED)
    ff = np.concatenate([dmd.ff, normal.ff[:, :, ::-1]], axis=2)
    labels = np.concatenate([dmd.labels, normal.labels[:, :, ::-1]], axis=2)
    return dmd, normal, ff, labels


def test_two_legs_each_get_their_own_verdict():
    """Acceptance (issue 11): each leg's verdict in the two-leg volume equals that leg's verdict alone; the heatmap
    covers both legs (each leg's part is its heatmap alone, moved), the top-level verdict is the more abnormal leg's
    and the disagreement is warned."""
    dmd, normal, ff, _ = both_legs()
    model = shipped_model()
    alone_result = {side: alone(side) for side in ("right", "left")}
    assert alone_result["right"].verdict == "DMD" and alone_result["left"].verdict == "normal"
    both = classify_volume(series_of(ff, origin_x=-MATRIX * PIXEL_MM), model, device="cpu")
    assert [leg.side for leg in both.legs] == ["right", "left"]
    assert [leg.side_source for leg in both.legs] == ["position", "position"]
    for leg in both.legs:
        assert leg.verdict == alone_result[leg.side].verdict, leg.side
        np.testing.assert_allclose(leg.probabilities, alone_result[leg.side].probabilities, atol=0.02)
    assert both.verdict == "DMD"
    assert any("legs disagree" in w and "right leg DMD" in w and "left leg normal" in w for w in both.warnings)
    heat = both.heatmap
    assert heat.shape == ff.shape
    # the same up to a sub-pixel shift of the window (a few noise voxels in the air change the leg's centroid)
    own_maps = (alone_result["right"].heatmap, alone_result["left"].heatmap[:, :, ::-1])
    for part, own in zip((heat[:, :, :MATRIX], heat[:, :, MATRIX:]), own_maps):
        assert np.abs(part - own).max() < 0.05 and np.abs(part - own).mean() < 1e-3
        assert np.corrcoef(part.ravel(), own.ravel())[0, 1] > 0.999
    legs = both.summary()["legs"]
    assert [(leg["side"], leg["verdict"]) for leg in legs] == [("right", "DMD"), ("left", "normal")]
    assert len(legs[0]["per_slice"]) == 8 and legs[1]["mirrored"] is True


def test_two_legs_scores_per_leg_in_json_and_csv(tmp_path):
    """Texture scores per leg and muscle when the segmentation covers both legs; the CSV gets a leg column."""
    from test_orientation import write

    from MDTextureLib.pipeline import CaseInputs, analyse_case, write_case
    from MDTextureLib.scores import texture_scores

    dmd, _, ff, labels = both_legs()
    geometry = ((PIXEL_MM, PIXEL_MM, 4.0), (-MATRIX * PIXEL_MM, -85.8, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    inputs = CaseInputs(ff=write(ff, geometry, tmp_path / "ff.nrrd"),
                        segmentation=write(labels.astype(np.uint16), geometry, tmp_path / "muscles.nrrd"))
    case = analyse_case(inputs, shipped_model())
    assert sorted(case.leg_scores) == ["left", "right"]
    names = {v: m for v, m in enumerate(("TA", "EDL", "Per", "TP", "Sol", "LG", "MG"), start=1)}
    # Exactly the right leg's own part of the two-leg heatmap on the right leg's labels ...
    expected = texture_scores(case.result.heatmap[:, :, :MATRIX], dmd.labels, names, dmd.ff, (PIXEL_MM, PIXEL_MM, 4.0))
    # ... and close to the leg classified alone: the heatmaps differ by a sub-pixel shift of the window, which may
    # move a muscle's share above the threshold across on a slice (Eq. 5 is a step function; 8 slices here).
    alone_scores = texture_scores(alone("right").heatmap, dmd.labels, names, dmd.ff, (PIXEL_MM, PIXEL_MM, 4.0))
    for got, want, single in zip(case.leg_scores["right"], expected, alone_scores):
        assert got.muscle == want.muscle == single.muscle
        assert got.texture_score == want.texture_score
        assert abs(got.texture_score - single.texture_score) <= 2 / 8 + 1e-9
    write_case(case, tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert [leg["side"] for leg in summary["legs"]] == ["right", "left"]
    assert all(len(leg["texture_scores"]) == 7 for leg in summary["legs"])
    with open(tmp_path / "out" / "texture_scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 14 and {r["leg"] for r in rows} == {"right", "left"}


def test_one_leg_side_from_anatomy_option_or_assumed():
    from MDTextureLib.legs import find_legs

    s = phantom("normal", 0)
    body = s.ff > 0
    spacing = (PIXEL_MM, PIXEL_MM, 4.0)
    assert [(leg.side, leg.side_source) for leg in find_legs(s.ff, body, spacing)] == [("right", "anatomy")]
    mirrored = find_legs(s.ff[:, :, ::-1], body[:, :, ::-1], spacing, side="right")
    assert (mirrored[0].side, mirrored[0].side_source) == ("left", "anatomy")
    assert any("--side says right but the bones say left" in w for w in mirrored[0].warnings)
    # a leg without visible bones: DICOM laterality, then --side, then assumed right with a warning
    blob = np.zeros((4, 60, 60), np.float32)
    blob[:, 10:50, 10:50] = 0.3
    assert find_legs(blob, blob > 0, spacing, laterality="L")[0].side_source == "DICOM laterality"
    assert find_legs(blob, blob > 0, spacing, side="left")[0].side == "left"
    assumed = find_legs(blob, blob > 0, spacing)[0]
    assert (assumed.side, assumed.side_source) == ("right", "assumed")
    assert any("could not be determined" in w for w in assumed.warnings)


def test_cli_side_option_reaches_the_result(tmp_path):
    """``classify --side left`` on a one-leg image whose bones do not show: the leg is read as a left leg."""
    from test_orientation import write

    from MDTextureLib.cli import main

    blob = np.zeros((4, 60, 60), np.float32)
    blob[:, 10:50, 10:50] = 0.3
    ff = write(blob, ((1.2, 1.2, 4.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)), tmp_path / "ff.nrrd")
    assert main(["classify", "--ff", ff, "--out", str(tmp_path / "out"), "--side", "left", "--quiet",
                 "--no-report", "--device", "cpu"]) == 0
    leg = json.loads((tmp_path / "out" / "prediction.json").read_text())["legs"][0]
    assert (leg["side"], leg["side_from"], leg["mirrored"]) == ("left", "--side", True)


def disc_volume(centres_mm, radius_mm=55.0, cols=300, rows=160, pixel_mm=1.0):
    yy, xx = np.mgrid[0:rows, 0:cols] * pixel_mm
    plane = np.zeros((rows, cols), bool)
    for cx in centres_mm:
        plane |= (xx - cx) ** 2 + (yy - rows * pixel_mm / 2) ** 2 < radius_mm ** 2
    return np.repeat(plane[None], 3, axis=0)


@pytest.mark.parametrize("gap_mm, split", [(30.0, True), (0.0, True), (-8.0, True), (-60.0, False)])
def test_two_calves_are_split_apart_or_touching_and_one_is_not(gap_mm, split):
    """Two 110 mm calves 30 mm apart, touching, or pressed 8 mm into each other are two legs, split between them;
    60 mm of overlap is one wide body, not split."""
    from MDTextureLib.legs import split_columns

    left_centre = 70.0
    right_centre = left_centre + 110.0 + gap_mm
    body = disc_volume([left_centre, right_centre])
    found = split_columns(body, 1.0)
    if not split:
        assert found is None
    else:
        assert found is not None and abs(found - (left_centre + right_centre) / 2) <= 2


def test_one_phantom_leg_is_never_split():
    from MDTextureLib.legs import split_columns

    for cls, seed in (("DMD", 1), ("CMD", 2), ("normal", 0)):
        s = phantom(cls, seed)
        assert split_columns(s.ff > 0, PIXEL_MM) is None, cls


def test_dicom_laterality_is_read_from_the_series(tmp_path):
    import SimpleITK as sitk

    from MDTextureLib.dicom import laterality as dicom_laterality

    folder = tmp_path / "dicom"
    folder.mkdir()
    for k in range(2):
        img = sitk.GetImageFromArray(np.zeros((4, 4), np.int16))
        img.SetOrigin((0.0, 0.0, 4.0 * k))
        for tag, value in (("0020|0060", "L"), ("0020|000e", "1.2.3"), ("0020|0013", str(k + 1)),
                           ("0020|0032", f"0\\0\\{4 * k}"), ("0008|0060", "MR")):
            img.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"{k}.dcm"))
        writer.Execute(img)
    assert dicom_laterality(str(folder)) == "L"
    assert dicom_laterality(str(tmp_path / "nothing")) is None


def test_a_leg_cut_by_the_field_of_view_is_said_and_a_cut_tibia_does_not_pick_the_side():
    """Hostile run: a field of view that cut 90 rows into the shin made a right leg 'left' by anatomy (the fibula,
    the largest bone left, taken for the tibia) and the leg was mirrored, with no word of the cut. Now a slice on
    which the image edge cuts a bone does not vote on the side, and the cut is a warning that reaches the result.
    A cut that spares the bones keeps the side from anatomy (with the warning); the whole leg gets neither."""
    from MDTextureLib.legs import find_legs

    s = make_scan("CMD", seed=2, n_slices=8)
    spacing = s.spacing_mm

    def cropped(rows):
        ff = np.ascontiguousarray(s.ff[:, rows:, :])
        origin = (s.origin_mm[0], s.origin_mm[1] + rows * spacing[1], s.origin_mm[2])
        return series_from_arrays(Grid(ff.shape[::-1], spacing, origin, s.direction), ff=ff)

    whole = find_legs(s.ff, cropped(0).body_mask(), spacing)[0]
    assert (whole.side, whole.side_source) == ("right", "anatomy") and whole.warnings == ()
    shallow = cropped(80)  # into the shin's fat, short of the tibia's cortex
    (leg,) = find_legs(shallow.ff, shallow.body_mask(), spacing)
    assert (leg.side, leg.side_source) == ("right", "anatomy")
    assert any("cut by the field of view" in w and "anterior edge" in w for w in leg.warnings)
    deep = cropped(90)
    (leg,) = find_legs(deep.ff, deep.body_mask(), spacing)
    assert leg.side_source != "anatomy" and leg.side == "right"  # assumed, and said so; never mirrored to "left"
    assert any("the field of view cuts a bone on 8 slice(s)" in w for w in leg.warnings)
    result = classify_volume(deep, shipped_model(), device="cpu")
    assert any("cut by the field of view" in w for w in result.summary()["warnings"])
    assert result.summary()["legs"][0]["mirrored"] is False


def _cropped(scan, rows=slice(None), cols=slice(None)):
    """The scan's water, fat and FF over ``rows`` × ``cols`` of every slice, on a grid that keeps each voxel in place."""
    y0, x0 = rows.start or 0, cols.start or 0
    origin = (scan.origin_mm[0] + x0 * scan.spacing_mm[0], scan.origin_mm[1] + y0 * scan.spacing_mm[1],
              scan.origin_mm[2])
    arrays = {k: np.ascontiguousarray(getattr(scan, k)[:, rows, cols]) for k in ("water", "fat", "ff")}
    return Grid(arrays["ff"].shape[::-1], scan.spacing_mm, origin, scan.direction), arrays


def test_a_tight_field_of_view_is_no_cut_and_a_cut_through_muscle_keeps_the_side():
    """Hostile run, round 2: (1) water and fat cropped to 3 mm of air around the leg (Slicer's Crop Volume) left no
    air outside the leg's box to measure the noise in, the body mask grew into the air up to every edge, the leg
    read as cut on four edges, its side was lost and DMD fell from 0.91 to 0.58; (2) a cut 10 mm into the calf's
    muscle, far from any bone, was taken for a cut bone (lean muscle's single noisy dark voxels), so a left leg was
    assumed right and left unmirrored. Now the noise is measured on the image's outer rows and columns, and only a
    gap in the leg or a dark run of 3 mm along the edge is a cut bone."""
    from MDTextureLib.legs import find_legs

    s = make_scan("DMD", seed=1, pixel_mm=1.0, matrix=192)
    grid, a = _cropped(s)
    whole = classify_volume(series_from_arrays(grid, water=a["water"], fat=a["fat"]), shipped_model(), device="cpu",
                            precision="fp32")
    body = whole.body
    ys, xs = np.nonzero(body.any(axis=0))
    grid, a = _cropped(s, slice(ys.min() - 3, ys.max() + 4), slice(xs.min() - 3, xs.max() + 4))
    tight = classify_volume(series_from_arrays(grid, water=a["water"], fat=a["fat"]), shipped_model(), device="cpu",
                            precision="fp32")
    np.testing.assert_allclose(tight.probabilities, whole.probabilities, atol=0.01)
    assert (tight.legs[0].side, tight.legs[0].side_source) == ("right", "anatomy")
    assert not any("cut by the field of view" in w for w in tight.warnings)
    # round 3: 1 mm of air — the mask's closing had stuck to the edges (outside counted as inside) and grown along
    # them, a false cut on two edges
    grid, a = _cropped(s, slice(ys.min() - 1, ys.max() + 2), slice(xs.min() - 1, xs.max() + 2))
    closest = classify_volume(series_from_arrays(grid, water=a["water"], fat=a["fat"]), shipped_model(),
                              device="cpu", precision="fp32")
    np.testing.assert_allclose(closest.probabilities, whole.probabilities, atol=0.01)
    assert not any("cut by the field of view" in w for w in closest.warnings)
    # a left leg (the scan mirrored) cut 10 mm into the calf at its back, through the gastrocnemius: still a left
    # leg by its bones, and a cut leg by its outline; by FF alone and by water and fat
    left = make_scan("DMD", seed=1, pixel_mm=1.0, matrix=192)
    for k in ("water", "fat", "ff"):
        setattr(left, k, getattr(left, k)[:, :, ::-1])
    for route in ("ff", "water and fat"):
        def leg_cut_at_the_back(depth_px):
            grid, a = _cropped(left, slice(0, ys.max() + 1 - depth_px))
            series = (series_from_arrays(grid, ff=a["ff"]) if route == "ff" else
                      series_from_arrays(grid, water=a["water"], fat=a["fat"]))
            magnitude = None if route == "ff" else np.abs(series.water) + np.abs(series.fat)
            (leg,) = find_legs(series.ff, series.body_mask(), s.spacing_mm, magnitude_zyx=magnitude)
            assert (leg.side, leg.side_source) == ("left", "anatomy"), (route, depth_px, leg.warnings)
            assert not any("cuts a bone" in w for w in leg.warnings), (route, depth_px)
            return leg

        assert any("posterior edge" in w for w in leg_cut_at_the_back(10).warnings)
        # round 3: a cut 3 mm into the subcutaneous fat — the closing grew dim air voxels along the edge, read as a
        # cut bone's dark cortex; the side was lost
        leg_cut_at_the_back(3)


def test_a_scanners_ff_beside_water_and_fat_finds_the_bones_as_derived_ff_does():
    """Hostile run, round 2: the scanner's FF map (F / (W + F) everywhere, so the cortex holds noise ratios, not 0)
    given with water and fat found no tibia, and the leg was assumed right; FF derived from the same water and fat
    found it. The cortex is now dark below the air's noise floor of W + F in both."""
    s = make_scan("DMD", seed=1, pixel_mm=1.0, matrix=192)
    scanner_ff = (np.abs(s.fat) / np.maximum(np.abs(s.water) + np.abs(s.fat), 1e-6)).astype(np.float32)
    for mirror in (False, True):
        flip = (lambda a: np.ascontiguousarray(a[:, :, ::-1])) if mirror else (lambda a: a)
        grid = Grid(s.ff.shape[::-1], s.spacing_mm, s.origin_mm, s.direction)
        result = classify_volume(series_from_arrays(grid, ff=flip(scanner_ff), water=flip(s.water), fat=flip(s.fat)),
                                 shipped_model(), device="cpu")
        leg = result.legs[0]
        assert (leg.side, leg.side_source) == ("left" if mirror else "right", "anatomy"), leg.warnings


def test_a_scanners_ff_alone_cropped_to_a_few_mm_of_noisy_air_reads_as_uncropped():
    """Hostile run, round 3: a scanner's FF map (noise in the air) of a normal child's leg, cropped to 5 mm of air,
    read DMD 0.49 where uncropped it read normal 0.79: the mask's closing kept air noise along the edges as body."""
    s = make_scan("normal", 3, age=5, matrix=128, n_slices=8)
    scanner_ff = (np.abs(s.fat) / np.maximum(np.abs(s.water) + np.abs(s.fat), 1e-6)).astype(np.float32)
    s.ff = scanner_ff
    grid, a = _cropped(s)
    whole = classify_volume(series_from_arrays(grid, ff=a["ff"]), shipped_model(), device="cpu", precision="fp32")
    grid, a = _cropped(s, slice(31, 91), slice(37, 101))
    crop = classify_volume(series_from_arrays(grid, ff=a["ff"]), shipped_model(), device="cpu", precision="fp32")
    assert whole.verdict == crop.verdict == "normal"
    np.testing.assert_allclose(crop.probabilities, whole.probabilities, atol=0.02)
