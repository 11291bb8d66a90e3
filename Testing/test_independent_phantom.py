"""The independent phantom generator (Resources/IndependentPhantom): cohort format, LPS geometry, anatomy
orientation, and involvement that shows in the FF where it should. All numbers here are phantom numbers."""
import importlib.util
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from MDTextureLib.cohort import read_cohort
from MDTextureLib.constants import MUSCLE_LABELS

SCRIPT = Path(__file__).resolve().parents[1] / "Resources" / "IndependentPhantom" / "generate.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("independent_phantom", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("indep") / "cohort"
    load_generator().generate(out, per_class=1, seed=3)
    return out, read_cohort(out)


def array(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_shares_no_code_with_the_project_phantom():
    import ast
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.startswith("MDTextureLib") or name.startswith(".") for name in imported)
    assert imported <= {"argparse", "csv", "json", "os", "shutil", "sys", "tempfile", "time", "pathlib",
                        "numpy", "SimpleITK", "scipy", "matplotlib", "matplotlib.pyplot", "__future__"}


def test_cohort_lists_one_scan_per_class_with_all_files(cohort):
    out, records = cohort
    assert sorted(r.class_name for r in records) == ["CMD", "DMD", "normal"]
    for r in records:
        assert r.water and r.fat and r.muscles and r.involvement
        assert r.pattern_family  # read by cohort.read_cohort into its own field
        assert 4 <= r.age <= 35


def test_geometry_is_lps_with_realistic_sampling(cohort):
    for r in cohort[1]:
        image = sitk.ReadImage(str(r.ff))
        assert image.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        sx, sy, sz = image.GetSpacing()
        assert sx == sy and 0.7 <= sx <= 1.5 and sz == 4.0
        nx, ny, nz = image.GetSize()
        assert nx == ny and 192 <= nx <= 320 and 16 <= nz <= 30
        centre_x_mm = image.TransformContinuousIndexToPhysicalPoint(((nx - 1) / 2, (ny - 1) / 2, 0))[0]
        assert centre_x_mm < -50  # a right calf lies on the patient's right: negative x in LPS
        header = nrrd.read_header(str(r.ff))
        assert header["space"] == "left-posterior-superior"
        for other in (r.water, r.fat, r.muscles, r.involvement):
            o = sitk.ReadImage(str(other))
            assert (o.GetSize(), o.GetSpacing(), o.GetOrigin()) == (image.GetSize(), image.GetSpacing(),
                                                                  image.GetOrigin())


def test_values_in_range_and_labels_known(cohort):
    for r in cohort[1]:
        ff, labels, inv = array(r.ff), array(r.muscles), array(r.involvement)
        assert np.isfinite(ff).all() and ff.min() >= 0 and ff.max() <= 1
        assert set(np.unique(labels)) == {0, *MUSCLE_LABELS.values()}
        assert inv.min() >= 0 and inv.max() <= 1
        assert not inv[labels == 0].any() or r.class_name != "normal"


def centroid(labels, name):
    z, y, x = np.nonzero(labels == MUSCLE_LABELS[name])
    return y.mean(), x.mean()


def test_right_calf_in_lps(cohort):
    """Anterior is small y (TA in front of the soleus); lateral is small x for a right leg (Per left of MG)."""
    for r in cohort[1]:
        labels = array(r.muscles)
        assert centroid(labels, "TA")[0] < centroid(labels, "TP")[0] < centroid(labels, "Sol")[0]
        assert centroid(labels, "Per")[1] < centroid(labels, "TA")[1]
        assert centroid(labels, "LG")[1] < centroid(labels, "MG")[1]


def test_involvement_drives_ff_in_diseased_muscles(cohort):
    for r in cohort[1]:
        ff, labels, inv = array(r.ff), array(r.muscles), array(r.involvement)
        muscle = labels > 0
        if r.class_name == "normal":
            assert not inv.any()
            assert np.median(ff[muscle]) < 0.10
            continue
        high, low = muscle & (inv > 0.6), muscle & (inv < 0.05)
        assert high.sum() > 500 and low.sum() > 500
        assert ff[high].mean() - ff[low].mean() > 0.4
        assert np.corrcoef(ff[muscle], inv[muscle])[0, 1] > 0.8


def mean_involvement(labels, inv, name):
    return inv[labels == MUSCLE_LABELS[name]].mean()


def test_class_specific_muscles(cohort):
    """DMD spares TP relative to Per; COL6-like CMD spares TA relative to the soleus."""
    by_class = {r.class_name: r for r in cohort[1]}
    dmd, cmd = by_class["DMD"], by_class["CMD"]
    labels, inv = array(dmd.muscles), array(dmd.involvement)
    assert mean_involvement(labels, inv, "TP") < 0.5 * mean_involvement(labels, inv, "Per")
    labels, inv = array(cmd.muscles), array(cmd.involvement)
    assert mean_involvement(labels, inv, "TA") < 0.5 * mean_involvement(labels, inv, "Sol")


def test_cmd_is_outside_in_and_dmd_is_not():
    """On one adult anatomy (enough deep soleus to compare): soleus involvement within 2 mm of its edge over that
    deeper than 6 mm is about 1 for every DMD family and well above it for every CMD family."""
    gen = load_generator()
    rng = np.random.default_rng(1)
    subject = gen.draw_subject(rng, "DMD")
    subject.update(half_ml_mm=55.0, severity=0.4, rotation_rad=0.0)
    acq = gen.draw_acquisition(rng, subject)
    acq.update(pixel_mm=1.0, matrix=192, slices=16, offset_mm=np.zeros(2))
    volume = gen.build_anatomy(subject, acq)
    sol = volume["muscle"] == MUSCLE_LABELS["Sol"]
    depth = ndimage.distance_transform_edt(sol, sampling=(1e4, 1.0, 1.0))
    assert (sol & (depth > 6)).sum() > 5000
    for family in gen.DMD_FAMILIES + gen.CMD_FAMILIES:
        subject["pattern_family"] = family
        make = gen.dmd_involvement if family in gen.DMD_FAMILIES else gen.cmd_involvement
        inv = make(np.random.default_rng(2), subject, volume, 1.0)
        ratio = inv[sol & (depth <= 2)].mean() / inv[sol & (depth > 6)].mean()
        if family in gen.DMD_FAMILIES:
            assert 0.5 < ratio < 1.5, (family, ratio)
        else:
            assert ratio > 2.0, (family, ratio)


def test_refuses_a_non_empty_output(cohort):
    with pytest.raises(SystemExit):
        load_generator().generate(cohort[0], per_class=1, seed=0)
