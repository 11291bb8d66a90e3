"""Fat-fraction plausibility: degenerate images, units (robust to outliers), out-of-range values, water/fat swaps.

Every check goes through the public routes (``series_from_arrays``, ``normalise_ff``, the CLI parser), on phantom scans
whose truth is known by construction (the phantom's subcutaneous fat is fat; a swap is made by hand).
"""

import numpy as np
import pytest

from conftest import grid_of, leg_volume, true_body
from MDTextureLib.errors import InputError
from MDTextureLib.io import Grid, normalise_ff, series_from_arrays
from MDTextureLib.phantom import make_scan


@pytest.fixture(scope="module")
def dmd27():
    """A DMD phantom of 27 slices (the length of the issue's swap example)."""
    return make_scan("DMD", seed=1, n_slices=27)


@pytest.fixture(scope="module")
def normal6():
    return make_scan("normal", seed=2, n_slices=6)


# --- degenerate images -------------------------------------------------------------------------------------------

def test_all_zero_ff_is_refused_with_the_voxel_count(normal6):
    with pytest.raises(InputError, match=r"all zero \(\d+ voxels\)"):
        series_from_arrays(grid_of(normal6), ff=np.zeros_like(normal6.ff))


def test_constant_ff_is_refused_naming_the_value(normal6):
    with pytest.raises(InputError, match="same value 1 in all"):
        series_from_arrays(grid_of(normal6), ff=np.ones_like(normal6.ff))


def test_a_labelmap_given_as_ff_is_refused(normal6):
    with pytest.raises(InputError, match=r"8 distinct integer values \(0, 1, 2, 3, 4, 5, 6, 7\).*labelmap"):
        series_from_arrays(grid_of(normal6), ff=normal6.labels.astype(np.float32))


def test_fractions_only_between_the_sampled_voxels_still_mean_no_labelmap():
    """The fractional-value check looks at a sparse sample first; a volume whose sample happens to hold integers
    alone is judged on every voxel (here: integers everywhere but one voxel off the sample)."""
    from MDTextureLib.ffcheck import FRACTION_SAMPLE_STEP, refuse_degenerate

    ff = np.zeros((4, 64, 64), np.float32)
    ff[:, 16:48, 16:48] = 3.0
    ff.ravel()[FRACTION_SAMPLE_STEP + 1] = 0.5
    refuse_degenerate(ff)  # not refused: one fractional value is no labelmap
    ff.ravel()[FRACTION_SAMPLE_STEP + 1] = 2.0
    with pytest.raises(InputError, match="labelmap"):
        refuse_degenerate(ff)


# --- units -------------------------------------------------------------------------------------------------------

def test_nine_outliers_neither_flip_a_fraction_map_to_percent_nor_block_it(normal6):
    ff = normal6.ff.copy()
    body = true_body(normal6).ravel()
    idx = np.flatnonzero((ff.ravel() > 0.5) & body)[::997][:9]
    ff.ravel()[idx] = 2.5
    series = series_from_arrays(grid_of(normal6), ff=ff)
    assert series.ff_unit == "fraction"
    clipped = [w for w in series.warnings if "clipped" in w]
    assert len(clipped) == 1 and "9 voxels above 100 % (up to 250 %)" in clipped[0], series.warnings
    assert np.all(series.ff.ravel()[idx] == 1.0)
    body[idx] = False
    np.testing.assert_array_equal(series.ff.ravel()[body], normal6.ff.ravel()[body])


def test_percent_with_nine_voxels_at_112_is_clipped_with_a_count(normal6):
    pct = normal6.ff * 100
    idx = np.flatnonzero((pct.ravel() > 50) & true_body(normal6).ravel())[::991][:9]
    pct.ravel()[idx] = 112.0
    series = series_from_arrays(grid_of(normal6), ff=pct)
    assert series.ff_unit == "percent"
    assert any("9 voxels above 100 % (up to 112 %)" in w for w in series.warnings), series.warnings
    assert float(series.ff.max()) == 1.0


def test_per_mille_is_detected_and_can_be_forced(normal6):
    permille = normal6.ff * 1000
    series = series_from_arrays(grid_of(normal6), ff=permille)
    assert series.ff_unit == "permille"
    body = true_body(normal6)
    np.testing.assert_allclose(series.ff[body], normal6.ff[body], atol=1e-6)
    forced, unit = normalise_ff(permille, "permille")
    assert unit == "permille"
    np.testing.assert_allclose(forced, normal6.ff, atol=1e-6)


def test_an_ambiguous_scale_is_refused_with_the_way_forward(normal6):
    with pytest.raises(InputError, match=r"99 % of the body is below 2\d\d.*above 100 % as percent \(in \d+\.\d % "
                                         r"of the body\).*pass --ff-unit percent or --ff-unit permille"):
        series_from_arrays(grid_of(normal6), ff=normal6.ff * 300)


def test_permille_is_a_choice_on_the_command_line():
    from MDTextureLib.cli import build_parser

    args = build_parser().parse_args(["classify", "--ff", "x.nrrd", "--ff-unit", "permille", "--out", "o"])
    assert args.ff_unit == "permille"


def test_mostly_out_of_range_ff_is_refused_with_the_share(normal6):
    ff = normal6.ff.copy()
    ff[normal6.ff > 0.5] = 1.4  # all subcutaneous fat and marrow at 140 %: a wrong scaling, not outliers
    with pytest.raises(InputError, match=r"above 100 % \(up to 140 %\) in \d+\.\d % of the body"):
        series_from_arrays(grid_of(normal6), ff=ff)


# --- water / fat swaps -------------------------------------------------------------------------------------------

def test_a_body_wide_swap_is_refused_on_both_routes(dmd27):
    with pytest.raises(InputError, match=r"swapped in 2\d of 2\d judged slices \(subcutaneous fat reads FF \d+ %"):
        series_from_arrays(grid_of(dmd27), water=dmd27.fat, fat=dmd27.water)
    with pytest.raises(InputError, match="swapped"):
        series_from_arrays(grid_of(dmd27), ff=np.where(dmd27.ff > 0, 1 - dmd27.ff, 0).astype(np.float32))


@pytest.mark.parametrize("route", ["ff", "water and fat"])
def test_a_partial_swap_names_exactly_the_swapped_slices(dmd27, route):
    swapped = [9, 10, 11, 12, 13, 14, 15]  # 7 of 27, as in the issue
    water, fat = dmd27.water.copy(), dmd27.fat.copy()
    water[swapped], fat[swapped] = dmd27.fat[swapped], dmd27.water[swapped]
    if route == "ff":
        ff = dmd27.ff.copy()
        ff[swapped] = np.where(ff[swapped] > 0, 1 - ff[swapped], 0)
        series = series_from_arrays(grid_of(dmd27), ff=ff)
    else:
        series = series_from_arrays(grid_of(dmd27), water=water, fat=fat)
    notes = [w for w in series.warnings if "swapped" in w]
    assert len(notes) == 1, series.warnings
    assert "swapped in 7 of 27 slices (slices 9, 10, 11, 12, 13, 14, 15;" in notes[0]


@pytest.mark.parametrize("cls", ["DMD", "CMD", "normal"])
def test_no_swap_is_seen_in_untouched_phantoms(cls):
    scan = make_scan(cls, seed=4, n_slices=8)
    for series in (series_from_arrays(grid_of(scan), ff=scan.ff),
                   series_from_arrays(grid_of(scan), water=scan.water, fat=scan.fat)):
        assert not [w for w in series.warnings if "swapped" in w]


def test_a_forced_unit_that_the_values_contradict_is_warned():
    """Hostile run: a fraction map forced as percent (or a percent map as per mille) gave CMD 0.999 with no
    warning. Forcing the unit the values read as stays silent."""
    ff = leg_volume()["ff"]
    grid = Grid(ff.shape[::-1], (1.0, 1.0, 4.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    forced = series_from_arrays(grid, ff=ff, ff_unit="percent")
    assert any("FF unit forced to percent" in w and "read as fraction" in w for w in forced.warnings), forced.warnings
    per_mille = series_from_arrays(grid, ff=ff * 100, ff_unit="permille")
    assert any("forced to permille" in w and "read as percent" in w for w in per_mille.warnings)
    agreed = series_from_arrays(grid, ff=ff, ff_unit="fraction")
    assert not any("forced" in w for w in agreed.warnings)


def test_a_body_wide_swap_says_how_to_give_the_series_the_other_way_round_for_a_study_too():
    """Hostile run: the refusal advised --water FAT --fat WATER, which --study does not take; it now names the
    --series form as well."""
    from MDTextureLib.errors import InputError
    from MDTextureLib.ffcheck import SwapCheck, report_swap

    check = SwapCheck(tuple(range(10)), 10, 0.1, 0.6)
    with pytest.raises(InputError) as refused:
        report_swap(check, 10, [], derived=True)
    assert "--water FAT --fat WATER" in str(refused.value) and "--series water=KEY --series fat=KEY" in str(refused.value)
