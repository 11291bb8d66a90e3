"""Does a segmentation lie on this image? Labels shifted, mirrored or of the other leg are flagged with numbers;
labels as drawn are not."""

import numpy as np
import pytest

from conftest import AWKWARD, leg_volume, write_nrrd
from MDTextureLib.io import Grid, series_from_arrays
from MDTextureLib.labelcheck import label_warnings, outside_body_shares
from MDTextureLib.phantom.scan import make_scan


def _shifted(labels: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``labels`` moved by (dy, dx) voxels in-plane; what leaves the grid is lost."""
    out = np.zeros_like(labels)
    ny, nx = labels.shape[1:]
    out[:, max(dy, 0):ny + min(dy, 0), max(dx, 0):nx + min(dx, 0)] = \
        labels[:, max(-dy, 0):ny + min(-dy, 0), max(-dx, 0):nx + min(-dx, 0)]
    return out


def test_shares_and_thresholds_on_a_hand_built_case():
    body = np.zeros((2, 10, 10), bool)
    body[:, :, :5] = True
    labels = np.zeros((2, 10, 10), np.uint16)
    labels[:, 0:5, 0:5] = 1  # 50 voxels inside
    labels[:, 5:10, 0:5] = 2  # 50 voxels inside ...
    labels[0, 5, 5] = 2  # ... and 1 outside: 1/51 = 2 %
    per, overall = outside_body_shares(labels, body)
    assert per == pytest.approx({1: 0.0, 2: 1 / 51}) and overall == pytest.approx(1 / 101)
    assert label_warnings(labels, {1: "TA", 2: "Sol"}, body) == []
    labels[:, 5:8, 5] = 2  # 5 more outside: Sol 6/56 = 10.7 % ≥ 10 %, overall 6/106 = 5.7 %
    (warning,) = label_warnings(labels, {1: "TA", 2: "Sol"}, body)
    assert "6% of its labelled voxels lie outside the body (per segment: Sol 11%)" in warning
    # a layer on top of the body counts once overall, per segment on its own
    layers = np.stack([labels, np.where(body, 3, 0).astype(np.uint16)])
    per, overall = outside_body_shares(layers, body)
    assert per[3] == 0.0 and overall == pytest.approx(6 / 106)  # not 6 / 206


@pytest.mark.parametrize("cls, seed", [("DMD", 1), ("CMD", 2), ("normal", 1)])
def test_phantom_labels_shifted_mirrored_or_of_the_other_leg_are_flagged(cls, seed):
    scan = make_scan(cls, seed=seed, n_slices=3)
    d20 = int(round(20.0 / scan.spacing_mm[0]))
    ff, labels = _shifted(scan.ff, 0, d20), _shifted(scan.labels, 0, d20)  # the leg 20 mm off the image centre
    grid = Grid(ff.shape[::-1], scan.spacing_mm, scan.origin_mm, scan.direction)
    body = series_from_arrays(grid, ff=ff).body_mask()
    names = {1: "TA", 2: "EDL", 3: "Per", 4: "TP", 5: "Sol", 6: "LG", 7: "MG"}
    assert label_warnings(labels, names, body) == []  # as drawn: no voxel in air
    d = int(round(30.0 / scan.spacing_mm[0]))
    for dy, dx in ((0, d), (0, -d), (d, 0), (-d, 0)):  # 30 mm in four directions
        (warning,) = label_warnings(_shifted(labels, dy, dx), names, body)
        share = int(warning.split(": ")[1].split("%")[0])
        assert share >= 10, warning
    # mirrored left-right about the image centre (a viewer's flipped convention): 40 mm off and mirrored
    (warning,) = label_warnings(labels[:, :, ::-1], names, body)
    # the other leg's labels: mirrored about a sagittal plane 60 mm medial of this leg (legs 120 mm apart); what
    # stays in the field of view lies in air
    centre_x = int(np.round(np.nonzero(labels)[2].mean()))
    plane = centre_x - int(round(60.0 / scan.spacing_mm[0]))
    cols = np.arange(labels.shape[2])
    src = 2 * plane - cols
    ok = (src >= 0) & (src < labels.shape[2])
    other = np.zeros_like(labels)
    other[:, :, cols[ok]] = labels[:, :, src[ok]]
    assert other.any()
    (warning,) = label_warnings(other, names, body)
    assert "100% of its labelled voxels lie outside the body" in warning


def test_pipeline_puts_the_warning_into_the_summary(tmp_path, leg_files, model_files):
    from MDTextureLib.modelfile import load_model
    from MDTextureLib.pipeline import CaseInputs, analyse_case

    vol = leg_volume()
    shifted = write_nrrd(_shifted(vol["labels"], 0, 33), tmp_path / "shifted.nrrd")  # 33 px × 0.9 mm ≈ 30 mm
    model = load_model(model_files)
    case = analyse_case(CaseInputs(ff=str(leg_files["ff"]), segmentation=str(shifted)), model)
    assert any("does not fit this image" in w for w in case.summary["warnings"])
    assert case.labels.warnings == [w for w in case.summary["warnings"] if w in case.labels.warnings]
    good = analyse_case(CaseInputs(ff=str(leg_files["ff"]), segmentation=str(leg_files["muscles"])), model)
    assert not any("does not fit" in w for w in good.summary["warnings"])


def test_labels_on_a_grid_moved_30_mm_are_flagged_after_resampling(tmp_path, leg_files):
    """The issue's case: the labelmap's origin is 30 mm off, so it is resampled (a generic note) and lands half in
    air; the check names the share."""
    from MDTextureLib.io import load_dixon
    from MDTextureLib.labels import read_labels

    series = load_dixon(ff=leg_files["ff"])
    d = np.asarray(AWKWARD["direction"]).reshape(3, 3)
    moved = dict(AWKWARD, origin=tuple(np.asarray(AWKWARD["origin"]) + d @ np.array([30.0, 0.0, 0.0])))
    lm = read_labels(write_nrrd(leg_volume()["labels"], tmp_path / "moved.nrrd", moved), series.grid)
    assert any("resampled" in w for w in lm.warnings)
    (warning,) = label_warnings(lm.layers, lm.names, series.body_mask())
    assert "lie outside the body (per segment: Sol" in warning


def test_labels_mirrored_inside_the_leg_are_flagged_and_a_true_left_leg_is_not(tmp_path, model_files):
    """Hostile run: the labels mirrored in x (the other leg's, or a converter's flip) stay inside the body, so no
    warning came, and Per went 0 → 0.70, LG 0 → 0.85. Lateral muscles (LG, Per) lying medial of their partners
    (MG, TP) give it away; the same phantom stored as a left leg (image and labels mirrored) is not flagged."""
    from MDTextureLib.modelfile import load_model
    from MDTextureLib.pipeline import CaseInputs, CaseOptions, analyse_case

    scan = make_scan("DMD", seed=3, n_slices=6)
    geometry = {"spacing": scan.spacing_mm, "origin": scan.origin_mm, "direction": scan.direction}
    ff = write_nrrd(scan.ff, tmp_path / "ff.nrrd", geometry)
    cases = {"right": (ff, scan.labels), "mirrored labels": (ff, scan.labels[:, :, ::-1]),
             "left leg": (write_nrrd(np.ascontiguousarray(scan.ff[:, :, ::-1]), tmp_path / "left_ff.nrrd", geometry),
                          scan.labels[:, :, ::-1])}
    model = load_model(model_files)
    warned = {}
    for name, (ff_path, labels) in cases.items():
        seg = write_nrrd(np.ascontiguousarray(labels).astype(np.uint16), tmp_path / f"{name}.nrrd", geometry)
        case = analyse_case(CaseInputs(ff=str(ff_path), segmentation=str(seg)), model, CaseOptions(report=False))
        warned[name] = [w for w in case.summary["warnings"] if "looks mirrored" in w]
        if name == "left leg":
            assert case.summary["legs"][0]["side"] == "left"
    assert warned["right"] == [] and warned["left leg"] == []
    assert len(warned["mirrored labels"]) == 1 and "LG lies medial of MG" in warned["mirrored labels"][0]


def test_a_binary_mask_relabelled_values_or_a_negative_background_are_never_scored_as_muscles(tmp_path):
    """Hostile run: a binary muscle mask (every muscle value 1) was scored as TA (331 mL, score 1.0) with no
    warning; values 10-70 gave seven empty muscle rows and label_N rows, unexplained; a background of -1 became a
    'label_65535' over the air. Now: the binary mask is named as what it may be and flagged as covering more of the
    leg than any one muscle; values outside 1-7 are explained; a negative value is refused. The drawn labels get
    none of these warnings."""
    from MDTextureLib.errors import InputError
    from MDTextureLib.pipeline import CaseInputs, read_case

    scan = make_scan("DMD", seed=3, n_slices=6)
    geometry = {"spacing": scan.spacing_mm, "origin": scan.origin_mm, "direction": scan.direction}
    ff = str(write_nrrd(scan.ff, tmp_path / "ff.nrrd", geometry))

    def warnings_for(name, labels):
        seg = write_nrrd(np.ascontiguousarray(labels), tmp_path / f"{name}.nrrd", geometry)
        return read_case(CaseInputs(ff=ff, segmentation=str(seg))).labels.warnings

    assert warnings_for("drawn", scan.labels.astype(np.uint16)) == []
    (binary,) = warnings_for("binary", (scan.labels > 0).astype(np.uint8))
    assert "holds one segment only, value 1 (TA)" in binary and "binary mask" in binary
    # a TA drawn alone (hostile run, round 2: it had been warned as a possible binary mask) is a TA
    assert warnings_for("ta alone", (scan.labels == 1).astype(np.uint8)) == []
    # a whole-leg mask, even with the muscles' own values beside it: more of the leg than any one muscle covers
    leg = np.where(scan.ff > 0, 5, 0).astype(np.uint16)
    (size,) = warnings_for("leg", leg)
    share = int(size.split("covers ")[1].split("%")[0])
    assert share > 90 and "'Sol' (value 5)" in size
    tens = warnings_for("tens", (scan.labels * 10).astype(np.uint16))
    assert any("holds none of the values 1-7" in w and "but 10, 20, 30" in w for w in tens)
    background = np.where(scan.labels > 0, scan.labels.astype(np.int16), np.int16(-1))
    with pytest.raises(InputError, match=r"negative values \(-1\)"):
        warnings_for("negative", background)


def test_segment_share_of_its_own_leg_on_a_hand_built_two_leg_case():
    """Each segment is measured against the body component it lies in, on the slices it is drawn on: two legs
    count apart, and slices the segment does not reach do not dilute it."""
    from MDTextureLib.labelcheck import segment_shares_of_leg, segment_size_warnings

    body = np.zeros((4, 20, 40), bool)
    body[:, 2:18, 2:18] = True  # leg one: 256 voxels per slice
    body[:, 2:18, 22:38] = True  # leg two
    labels = np.zeros(body.shape, np.uint16)
    labels[1:3, 4:12, 4:12] = 1  # 64 of 256 on slices 1-2: 25 %
    labels[0, 2:18, 22:34] = 2  # 192 of 256 on slice 0 of leg two: 75 %
    assert segment_shares_of_leg(labels, body) == pytest.approx({1: 0.25, 2: 0.75})
    (warning,) = segment_size_warnings(labels, {1: "TA", 2: "Sol"}, body)
    assert "'Sol' (value 2) covers 75% of the leg's cross-section" in warning
