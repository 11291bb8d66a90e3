"""Tests of the texture-isolating phantom (body cues), the pattern families and the confound audit of cohort-stats.

Known by construction: in the texture cohort a subject's body traits come from draws that do not look at the class;
the infiltrated-tissue level is one law for every subtype; the FF histogram of a muscle does not depend on the
pattern; the audit's classifiers reproduce a hand-computed nearest-neighbour accuracy.
"""
import csv
import json
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from MDTextureLib.cohort import ScanRecord, read_cohort, subject_folds
from MDTextureLib.errors import InputError
from MDTextureLib.phantom import make_scan, write_cohort
from MDTextureLib.phantom import disease, patterns
from MDTextureLib.phantom.anatomy import AREA_PROFILE, REGIONS, ZFRAC_KNOTS
from MDTextureLib.phantom.confounds import body_traits, cv_accuracy, first_order_stats
from MDTextureLib.phantom.subject import draw_subject

SMALL = dict(matrix=112, pixel_mm=1.5, body_cues="texture")
BODY = ("age", "circumference_cm", "muscle_scale", "fat_mm", "skin_mm", "aspect", "base_ff", "marrow_ff",
        "position", "pattern_scale", "level_u", "egg", "layout")


def _subject(seed, cls, cues):
    return draw_subject(np.random.default_rng([seed, 1, 0]), cls, body_cues=cues)


def test_texture_body_traits_do_not_depend_on_class():
    for seed in range(12):
        subs = [_subject(seed, cls, "texture") for cls in ("DMD", "CMD", "normal")]
        for name in BODY:
            assert len({repr(getattr(s, name)) for s in subs}) == 1, (seed, name, [getattr(s, name) for s in subs])
        dmd, cmd = subs[0], subs[1]
        assert dmd.severity == cmd.severity          # one severity law for every disease subtype
        assert subs[2].severity == 0.0


def test_realistic_keeps_the_class_linked_traits():
    dmd = [_subject(s, "DMD", "realistic") for s in range(30)]
    cmd = [_subject(s, "CMD", "realistic") for s in range(30)]
    assert min(s.muscle_scale for s in dmd) >= 1.0 > 0.95 >= max(s.muscle_scale for s in cmd)   # no overlap
    assert max(s.age for s in dmd) <= 18.0
    assert all(s.layout == () and s.egg == 0.12 and s.pattern_scale == 1.0 for s in dmd + cmd)
    assert {s.pattern_family for s in dmd} == {"dmd-patchy-coarse"}
    assert {s.pattern_family for s in cmd} == {"cmd-rim-muscle", "cmd-diffuse"}
    tex = [_subject(s, "DMD", "texture") for s in range(30)]
    assert min(s.muscle_scale for s in tex) < 0.95 and max(s.muscle_scale for s in tex) > 1.0
    with pytest.raises(InputError):
        draw_subject(np.random.default_rng(0), "DMD", body_cues="confounded")


def test_infiltration_level_and_burden_are_one_law_for_every_subtype():
    levels = [disease.infiltration_level(st, "texture", 0.3) for st in ("DMD", "COL6", "LAMA2")]
    assert levels[0] == levels[1] == levels[2]
    assert disease.infiltration_level("DMD", "realistic") != disease.infiltration_level("COL6", "realistic")
    area = np.array([AREA_PROFILE[r][int(np.argmin(np.abs(ZFRAC_KNOTS - 0.3)))] for r in REGIONS])
    pos = np.full(len(REGIONS), 0.5)
    for sev in (0.1, 0.5, 0.9):
        means = [(disease.target_ff(st, sev, pos, 0.02, "texture") * area).sum() / area.sum()
                 for st in ("DMD", "COL6", "LAMA2")]
        expected = 0.02 + disease.BURDEN_SCALE * sev ** disease.BURDEN_POWER
        assert np.allclose(means, expected, atol=1e-9), (sev, means, expected)
    # which muscles carry the fat still follows the literature: TP least in DMD, TA/EDL least in LAMA2
    dmd = dict(zip(REGIONS, disease.target_ff("DMD", 0.5, pos, 0.02, "texture")))
    lama = dict(zip(REGIONS, disease.target_ff("LAMA2", 0.5, pos, 0.02, "texture")))
    assert dmd["TP"] == min(dmd[m] for m in ("TA", "EDL", "Per", "TP", "Sol", "LG", "MG"))
    assert max(lama["TA"], lama["EDL"]) < min(lama["Sol"], lama["LG"], lama["MG"])


def test_texture_ff_histogram_of_a_muscle_does_not_depend_on_the_pattern():
    rng = np.random.default_rng(0)
    n = 4000
    b = np.full(n, 0.02, np.float32)
    core = np.ones(n, bool)
    level = disease.infiltration_level("DMD", "texture", 0.5)
    patchy = ndimage.gaussian_filter(rng.standard_normal(n), 5)
    rim = np.abs(np.linspace(-1, 1, n)) + 0.01 * rng.standard_normal(n)
    a, inv_a = patterns._fill_muscle(patchy, b, core, 0.3, level)
    c, inv_c = patterns._fill_muscle(rim, b, core, 0.3, level)
    assert np.allclose(np.sort(a), np.sort(c), atol=1e-6) and inv_a.sum() == inv_c.sum()
    assert abs(a.mean() - 0.3) < 1e-3
    assert not np.array_equal(inv_a, inv_c)        # same histogram, different voxels


@pytest.mark.parametrize("family", patterns.ALL_FAMILIES)
def test_every_family_is_recorded_and_belongs_to_its_class(family):
    sub = next(st for st, fams in patterns.PATTERN_FAMILIES.items() if family in fams)
    cls = {"DMD": "DMD", "COL6": "CMD", "LAMA2": "CMD", "none": "normal"}[sub]
    s = make_scan(cls, seed=2, n_slices=4, age=10, severity=0.5, subtype=sub, pattern_family=family, **SMALL)
    assert s.truth["pattern_family"] == family and s.truth["body_cues"] == "texture"
    assert (s.involvement.sum() > 0) == (cls != "normal")
    with pytest.raises(InputError):
        make_scan("DMD" if cls != "DMD" else "CMD", seed=2, n_slices=4, pattern_family=family, **SMALL)


def test_texture_draws_every_family_of_a_class():
    seen = {c: {_subject(s, c, "texture").pattern_family for s in range(60)} for c in ("DMD", "CMD", "normal")}
    assert seen["DMD"] == set(patterns.PATTERN_FAMILIES["DMD"])
    assert seen["CMD"] == set(patterns.PATTERN_FAMILIES["COL6"] + patterns.PATTERN_FAMILIES["LAMA2"])
    assert seen["normal"] == {"normal"}


def _involved_vs_rest_distance(scan, to):
    """Mean in-plane distance (mm) of involved and of uninvolved muscle voxels to the compartment's outer edge
    (``to="edge"``) or to the non-muscle lines and pieces inside it (``to="septa"``)."""
    lab = scan.labels > 0
    plane = np.ones((1, 3, 3), bool)
    inside = ndimage.binary_fill_holes(ndimage.binary_closing(lab, structure=plane, iterations=2), structure=plane)
    keep = inside if to == "edge" else lab | ~inside
    d = ndimage.distance_transform_edt(np.pad(keep, ((0, 0), (1, 1), (1, 1))),
                                       sampling=(1e4,) + scan.spacing_mm[:2])[:, 1:-1, 1:-1]
    inv = scan.involvement > 0
    return d[inv & lab].mean(), d[~inv & lab].mean()


def test_rim_families_follow_their_edges():
    kw = dict(seed=5, n_slices=6, age=10, severity=0.45, subtype="COL6", **SMALL)
    comp = make_scan("CMD", pattern_family="cmd-rim-compartment", **kw)
    inv, rest = _involved_vs_rest_distance(comp, "edge")
    assert inv < 0.5 * rest, (inv, rest)              # fat lies along the compartment's outer edge
    inv, rest = _involved_vs_rest_distance(comp, "septa")
    assert inv > rest, (inv, rest)                    # ... not along the septa
    fas = make_scan("CMD", pattern_family="cmd-rim-fascia", **kw)
    inv, rest = _involved_vs_rest_distance(fas, "septa")
    assert inv < 0.7 * rest, (inv, rest)              # fat tracks the fasciae between muscles


def test_dmd_patch_scale_grows_from_fine_to_confluent():
    sizes = {}
    for fam in patterns.PATTERN_FAMILIES["DMD"]:
        s = make_scan("DMD", seed=6, n_slices=6, age=10, severity=0.35, pattern_family=fam, **SMALL)
        plane = np.zeros((3, 3, 3), bool)
        plane[1] = True                                            # patches counted slice by slice
        lab, n = ndimage.label(s.involvement > 0, structure=plane)
        sizes[fam] = (s.involvement > 0).sum() / max(n, 1)        # mean patch size in voxels
    assert sizes["dmd-patchy-fine"] < sizes["dmd-patchy-coarse"] < sizes["dmd-confluent"], sizes


def test_cohort_records_family_and_body_cues(tmp_path):
    recs = write_cohort(tmp_path / "c", subjects=3, seed=2, n_slices=3, matrix=144, pixel_mm=1.5, workers=1,
                        progress=False, body_cues="realistic")
    with open(tmp_path / "c" / "cohort.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["body_cues"] for r in rows} == {"realistic"}
    for rec, row in zip(recs, rows):
        truth = json.loads(rec.truth.read_text())
        assert rec.pattern_family == row["pattern_family"] == truth["pattern_family"] != ""
        assert rec.pattern_family == patterns.REALISTIC_FAMILY[rec.subtype]
        assert rec.extra["body_cues"] == "realistic"


def test_record_without_family_column_reads_empty(tmp_path):
    (tmp_path / "S1_1").mkdir()
    (tmp_path / "S1_1" / "ff.nrrd").write_bytes(b"")
    (tmp_path / "cohort.csv").write_text("subject,scan,class,folder\nS1,1,DMD,S1_1\n")
    (rec,) = read_cohort(tmp_path)
    assert rec.pattern_family == ""


# ------------------------------------------------------------------------------------------------ confound audit
def _records(n_subjects, scans=2):
    recs = []
    for i in range(n_subjects):
        for j in range(1, scans + 1):
            p = Path(f"/nonexistent/S{i}_{j}")
            recs.append(ScanRecord(f"S{i:03d}", j, ("DMD", "CMD")[i % 2], 10.0, 0.5, p, *(p / f for f in "abcdefg")))
    return recs


def test_cv_accuracy_matches_a_hand_computed_nearest_neighbour():
    recs = _records(16)
    y = np.array([0 if r.class_name == "DMD" else 1 for r in recs])
    separable = y + 0.01 * np.arange(len(recs))
    for method in ("logistic", "knn"):
        assert cv_accuracy(recs, separable, method=method, k=1)["accuracy_mean_over_folds"] == 1.0
    # one random value per subject: with subject-level folds a 1-NN never sees the other scan of the same subject
    rng = np.random.default_rng(3)
    per_subject = {r.subject: rng.normal() for r in recs}
    x = np.array([per_subject[r.subject] for r in recs])
    got = cv_accuracy(recs, x, method="knn", k=1)
    expected = []
    for train, test in subject_folds(recs, 4, 0):
        z = (x - x[train].mean()) / x[train].std()
        pred = [y[train][np.argmin(np.abs(z[train] - z[t]))] for t in test]
        expected.append(np.mean(np.array(pred) == y[test]))
    assert np.isclose(got["accuracy_mean_over_folds"], np.mean(expected))
    assert got["scans"] == len(recs) and len(got["fold_accuracies"]) == 4


def test_first_order_stats_known_values():
    ff = np.zeros((1, 4, 4), np.float32)
    lab = np.zeros((1, 4, 4), np.uint8)
    ff[0, 0, :] = (0.1, 0.2, 0.3, 0.4)
    lab[0, 0, :] = 1
    st = first_order_stats(ff, lab)
    assert np.isclose(st["ff_mean"], 0.25) and np.isclose(st["ff_sd"], np.std([0.1, 0.2, 0.3, 0.4]))
    assert abs(st["ff_skewness"]) < 1e-5 and np.isclose(st["ff_kurtosis"], -1.36, atol=1e-4)


def test_body_traits_measure_a_constructed_leg():
    n, px = 160, 1.0
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    r = np.hypot(yy, xx)
    bone_r = np.hypot(yy, xx - 15)
    ff = np.where(r <= 60, 0.9, 0.0)                    # subcutaneous fat out to 60 mm
    labels = np.where(r <= 50, 1, 0)                   # muscle compartment radius 50 mm
    ff[r <= 50] = 0.05
    bone = bone_r <= 10
    labels[bone] = 0
    ff[bone] = 0.0                                     # cortex: no signal
    ff[bone_r <= 7] = 0.8                              # marrow
    signal = np.where(ff > 0, 1000.0, 0.0)
    ff, labels, signal = (np.repeat(a[None], 3, axis=0) for a in (ff, labels.astype(np.uint8), signal))
    t = body_traits(ff.astype(np.float32), labels, signal, px)
    assert abs(t["leg_area_cm2"] - np.pi * 60 ** 2 / 100) < 1.0
    assert abs(t["subcutaneous_fat_mm"] - 10.0) < 0.6
    assert abs(t["marrow_ff"] - 0.8) < 1e-6
    assert abs(t["muscle_bone_ratio"] - (50 ** 2 - 10 ** 2) / 10 ** 2) < 1.5


def test_cohort_stats_reports_the_audit_and_skips_body_traits_without_water_fat(tmp_path):
    from MDTextureLib.phantom.stats import cohort_stats, format_report

    write_cohort(tmp_path / "c", subjects=6, seed=4, scans_per_subject=1, classes=("DMD", "CMD"), n_slices=3,
                 matrix=144, pixel_mm=1.5, workers=1, progress=False)
    recs = read_cohort(tmp_path / "c")
    st = cohort_stats(recs, n_folds=2, k=1)
    for key in ("body_traits", "first_order"):
        for d in st["confounds"][key]["dmd_vs_cmd"].values():
            assert d["scans"] == 6 and 0.0 <= d["accuracy_mean_over_folds"] <= 1.0
    assert st["body_cues"] == "texture" and sum(st["pattern_families"].values()) == 6
    assert "Confound audit" in format_report(st)
    (recs[0].folder / "water.nrrd").unlink()
    st = cohort_stats(read_cohort(tmp_path / "c"), n_folds=2, k=1)
    assert "skipped" in st["confounds"]["body_traits"] and "dmd_vs_cmd" in st["confounds"]["first_order"]
