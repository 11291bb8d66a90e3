"""Tests of the synthetic calf Dixon phantom: anatomy, disease amounts and patterns, signal, files, determinism."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from MDTextureLib.constants import MUSCLE_COLORS, MUSCLE_LABELS, MUSCLES
from MDTextureLib.errors import InputError
from MDTextureLib.phantom import make_scan, write_cohort, write_scan
from MDTextureLib.phantom import disease
from MDTextureLib.phantom.anatomy import GridSpec, LegSpec, build_anatomy, expected_presence
from MDTextureLib.phantom.signal import fat_fraction, magnitude_dixon

SMALL = dict(matrix=112, pixel_mm=1.5)         # 168 mm FOV: fits a child's calf, keeps tests fast
REAL = dict(SMALL, body_cues="realistic")      # the literature's amounts and one pattern per subtype


@pytest.fixture(scope="module")
def scans():
    """One small scan per class/subtype of the realistic cohort, made once for the module."""
    return {
        "normal": make_scan("normal", seed=11, n_slices=24, age=9, **REAL),
        "DMD": make_scan("DMD", seed=12, n_slices=24, age=10, severity=0.6, **REAL),
        "COL6": make_scan("CMD", seed=13, n_slices=24, age=10, severity=0.6, subtype="COL6", **REAL),
        "LAMA2": make_scan("CMD", seed=14, n_slices=24, age=10, severity=0.6, subtype="LAMA2", **REAL),
    }


def _leg(**kw):
    base = dict(compartment_radius_mm=45.0, fat_mm=6.0, fat_over_tibia_mm=2.0, skin_mm=1.5, bone_scale=0.9,
                leg_length_mm=340.0, aspect=0.07, centre_mm=(2.0, -3.0), drift_mm_per_slice=(0.1, 0.0),
                rotation_deg=4.0)
    base.update(kw)
    return LegSpec(**base)


# ------------------------------------------------------------------------------------------------ anatomy
def test_muscles_present_exactly_where_anatomy_says(scans):
    for scan in scans.values():
        expected = expected_presence(scan.zfrac)
        for k in range(scan.labels.shape[0]):
            found = np.isin(np.arange(1, 8), np.unique(scan.labels[k]))
            assert (found == expected[k]).all(), (k, scan.zfrac[k], found, expected[k])
        assert set(np.unique(scan.labels)) <= set(range(8))


def test_gastrocnemius_ends_distally_while_soleus_grows():
    # slab of 36 x 4 mm centred at zfrac 0.42 on a 340 mm leg: zfrac 0.21 (proximal) .. 0.63 (distal)
    grid = GridSpec(matrix=128, pixel_mm=1.3, n_slices=36, slice_mm=4.0, slab_centre_frac=0.42)
    anat = build_anatomy(_leg(), grid)
    area = np.stack([(anat.labels == MUSCLE_LABELS[m]).sum(axis=(1, 2)) for m in MUSCLES], axis=1)
    z = anat.zfrac
    lg, mg, sol = area[:, MUSCLES.index("LG")], area[:, MUSCLES.index("MG")], area[:, MUSCLES.index("Sol")]
    assert (lg[z > 0.45] == 0).all() and (lg[z < 0.3] > 0).all()       # LG ends first (~0.42-0.45)
    assert (mg[z > 0.55] == 0).all() and (mg[z < 0.45] > 0).all()      # MG ends around mid-calf
    prox, dist = np.argmin(np.abs(z - 0.25)), np.argmin(np.abs(z - 0.55))
    assert sol[dist] > 1.2 * sol[prox]                                 # soleus grows distally
    assert mg[prox] > lg[prox]                                         # MG is the larger head


def test_area_fractions_and_positions_at_max_girth():
    grid = GridSpec(matrix=128, pixel_mm=1.3, n_slices=3, slice_mm=4.0, slab_centre_frac=0.30)
    anat = build_anatomy(_leg(rotation_deg=0.0, centre_mm=(0.0, 0.0)), grid)
    lab = anat.labels[1]
    total = (anat.region[1] > 0).sum()
    frac = {m: (lab == MUSCLE_LABELS[m]).sum() / total for m in MUSCLES}
    # facts §2a share of the muscle compartment; the labels lose the fascia lines, hence the lower bounds
    for m, (lo, hi) in {"Sol": (0.20, 0.32), "MG": (0.14, 0.24), "LG": (0.07, 0.13), "TA": (0.08, 0.14),
                        "Per": (0.06, 0.11), "TP": (0.05, 0.10), "EDL": (0.03, 0.07)}.items():
        assert lo <= frac[m] <= hi, (m, frac[m])
    cy, cx = {}, {}
    for m in MUSCLES:
        ys, xs = np.nonzero(lab == MUSCLE_LABELS[m])
        cy[m], cx[m] = ys.mean(), xs.mean()
    # rows grow posterior; columns grow toward patient left = medial for this right leg
    assert cy["TA"] < cy["TP"] < cy["Sol"] < cy["MG"] and cy["EDL"] < cy["Sol"]
    assert cx["MG"] > cx["LG"] and cx["Per"] < cx["TA"] and cx["Per"] < cx["TP"]
    # muscles do not overlap and the fascia lines separate them: no two labels touch in 4-connectivity
    for axis in (0, 1):
        a, b = lab, np.roll(lab, 1, axis=axis)
        assert not ((a > 0) & (b > 0) & (a != b)).any()


def test_leg_size_grows_with_age():
    child = make_scan("normal", seed=5, n_slices=8, age=6, **SMALL)
    adult = make_scan("normal", seed=5, n_slices=8, age=40, matrix=192, pixel_mm=1.0)
    a_child = (child.labels > 0).sum() * 1.5 ** 2 / 8
    a_adult = (adult.labels > 0).sum() * 1.0 ** 2 / 8
    assert a_adult > 1.6 * a_child
    assert child.truth["leg"]["circumference_cm"] < 28 < 31 < adult.truth["leg"]["circumference_cm"]


# ------------------------------------------------------------------------------------------------ disease
def _true(scan, m):
    return scan.truth["muscles"][m]["true_ff_percent"]


def test_normal_ff_low_and_noise_floor_lifts_measured(scans):
    s = scans["normal"]
    for m in MUSCLES:
        t, meas = _true(s, m), s.truth["muscles"][m]["measured_ff_percent"]
        assert 1.0 <= t <= 4.0                      # MRS healthy ~2 %
        assert 2.0 <= meas <= 8.0                   # Dixon reads 3-8 % (facts §1b notes)
        assert meas > t + 0.5                       # Rician floor + partial volume lift FF
    assert s.involvement.sum() == 0


@pytest.mark.parametrize("subtype,table,severity", [("DMD", disease.DMD_NONAMB, 0.9), ("COL6", disease.COL6, 0.6),
                                                    ("LAMA2", disease.LAMA2, 0.6)])
def test_disease_ff_within_stated_ranges(subtype, table, severity):
    cls = "DMD" if subtype == "DMD" else "CMD"
    for seed in (1, 2):
        s = make_scan(cls, seed=seed, n_slices=10, age=12, severity=severity, subtype=subtype, **REAL)
        for m in MUSCLES:
            lo, hi = table[m]
            assert lo - 0.5 <= _true(s, m) <= hi + 0.5, (subtype, m, _true(s, m))
            # measured whole-muscle FF follows the truth closely once there is real fat
            assert abs(s.truth["muscles"][m]["measured_ff_percent"] - _true(s, m)) < 6.0


def test_dmd_muscle_ranking_tp_spared():
    s = make_scan("DMD", seed=4, n_slices=10, age=10, severity=0.5, **REAL)
    tp = _true(s, "TP")
    assert all(tp < _true(s, m) for m in ("Per", "Sol", "LG", "MG"))
    assert min(_true(s, m) for m in ("Per", "MG")) > max(_true(s, m) for m in ("TA", "TP"))


def test_dmd_severity_grows_with_age():
    young = make_scan("DMD", seed=8, n_slices=6, age=5.5, **REAL)
    old = make_scan("DMD", seed=8, n_slices=6, age=12.5, **REAL)
    assert old.truth["severity"] > young.truth["severity"] + 0.5
    assert old.truth["mean_true_ff_percent"] > 2 * young.truth["mean_true_ff_percent"]
    assert young.truth["mean_true_ff_percent"] < 8.0      # mild DMD looks nearly normal


def _rim_ratio(scan, near_mm=3.0, deep_mm=6.0):
    """Involved share of muscle voxels within ``near_mm`` of their muscle's edge over that share deeper than
    ``deep_mm``: >1 when infiltration runs along the boundary (rim), ~1 when it is spread through the muscle."""
    lab = scan.labels
    inner = np.zeros(lab.shape, dtype=bool)
    for m in range(1, 8):
        inner |= ndimage.binary_erosion(lab == m, structure=np.ones((1, 3, 3), bool))
    d = ndimage.distance_transform_edt(inner, sampling=(1e4, scan.spacing_mm[1], scan.spacing_mm[0]))
    inv = scan.involvement > 0
    near, deep = (d <= near_mm) & (lab > 0), (d > deep_mm) & (lab > 0)
    return inv[near].mean() / max(inv[deep].mean(), 1e-6)


def test_involvement_inside_muscles_and_pattern_by_class(scans):
    for name, s in scans.items():
        assert s.involvement.dtype == np.uint8 and set(np.unique(s.involvement)) <= {0, 1}
        assert not (s.involvement.astype(bool) & (s.labels == 0)).any()
    rim, dmd = _rim_ratio(scans["COL6"]), _rim_ratio(scans["DMD"])
    assert rim > 2.0, rim                      # COL6: involvement concentrated at the muscle rim
    assert 0.7 < dmd < 1.4, dmd                # DMD: patchy throughout
    # LAMA2-like: diffuse, most of the muscle slightly fatty
    lama = scans["LAMA2"]
    assert lama.involvement.sum() / (lama.labels > 0).sum() > 0.5


def test_dmd_patches_are_many_and_scattered(scans):
    s = scans["DMD"]
    k = s.labels.shape[0] // 2
    sol = (s.labels[k] == MUSCLE_LABELS["Sol"]) & (s.involvement[k] > 0)
    n_patches = ndimage.label(sol)[1]
    assert n_patches >= 3


# ------------------------------------------------------------------------------------------------ signal
def test_rician_floor_and_background():
    rng = np.random.default_rng(0)
    shape = (2, 64, 64)
    w = np.zeros(shape, np.float32)
    f = np.zeros(shape, np.float32)
    w[:, 16:48, 16:48], f[:, 16:48, 16:48] = 0.98, 0.02          # lean muscle, true FF 2 %
    coil = np.ones(shape, np.float32)
    bias = {}
    for snr in (8.0, 80.0):
        W, F, sigma = magnitude_dixon(w, f, coil, snr, rng)
        ff = fat_fraction(W, F, sigma)
        bias[snr] = ff[:, 20:44, 20:44].mean() - 0.02
        assert (ff[:, :8, :8] == 0).mean() > 0.99                 # air is masked to 0
    assert bias[8.0] > 0.05 and 0 < bias[80.0] < 0.02            # bias grows as SNR falls


def test_coil_shading_cancels_in_ff(scans):
    s = scans["normal"]
    lab = s.labels > 0
    # water varies across the leg (shading) much more than FF does
    cv_w = s.water[lab].std() / s.water[lab].mean()
    assert cv_w > 0.08
    assert s.ff.dtype == np.float32 and 0.0 <= s.ff.min() and s.ff.max() <= 1.0


# ------------------------------------------------------------------------------------------------ API and files
def test_api_shapes_and_validation():
    s = make_scan("DMD", seed=3, n_slices=20, matrix=192, pixel_mm=1.0)
    for a in (s.water, s.fat, s.ff):
        assert a.dtype == np.float32 and a.shape == (20, 192, 192)
    assert s.labels.dtype == np.uint8 and s.involvement.dtype == np.uint8
    assert s.spacing_mm == (1.0, 1.0, 4.0) and len(s.direction) == 9 and len(s.origin_mm) == 3
    assert s.truth["class"] == "DMD" and set(s.truth["muscles"]) == set(MUSCLES)
    with pytest.raises(InputError):
        make_scan("BMD", seed=1)
    with pytest.raises(InputError):
        make_scan("DMD", seed=1, severity=1.5)
    with pytest.raises(InputError):
        make_scan("normal", seed=1, age=40, matrix=64, pixel_mm=1.0)          # FOV too small for the leg
    with pytest.raises(InputError):
        make_scan("DMD", seed=1, subtype="COL6")


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_files_geometry_segmentation_and_determinism(tmp_path):
    scan = make_scan("CMD", seed=21, n_slices=6, age=9, **SMALL)
    a, b = write_scan(scan, tmp_path / "a"), write_scan(make_scan("CMD", seed=21, n_slices=6, age=9, **SMALL),
                                                         tmp_path / "b")
    assert _digest(a) == _digest(b)
    c = write_scan(make_scan("CMD", seed=22, n_slices=6, age=9, **SMALL), tmp_path / "c")
    assert _digest(c)["water.nrrd"] != _digest(a)["water.nrrd"]
    assert sorted(_digest(a)) == sorted(["water.nrrd", "fat.nrrd", "ff.nrrd", "muscles.nrrd", "muscles.seg.nrrd",
                                         "involvement.nrrd", "truth.json"])
    geo = None
    for name, dtype in (("water", sitk.sitkFloat32), ("fat", sitk.sitkFloat32), ("ff", sitk.sitkFloat32),
                        ("muscles", sitk.sitkUInt8), ("involvement", sitk.sitkUInt8)):
        img = sitk.ReadImage(str(a / f"{name}.nrrd"))
        assert img.GetPixelID() == dtype
        g = (img.GetSize(), img.GetSpacing(), img.GetOrigin(), img.GetDirection())
        geo = geo or g
        assert g == geo
    assert geo[0] == (112, 112, 6) and np.allclose(geo[1], (1.5, 1.5, 4.0))
    assert np.allclose(geo[2], scan.origin_mm) and np.allclose(geo[3], np.eye(3).ravel())
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(a / "ff.nrrd"))), scan.ff)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(a / "muscles.nrrd"))), scan.labels)

    import slicerio
    seg = slicerio.read_segmentation(str(a / "muscles.seg.nrrd"))
    assert seg["voxels"].ndim == 3                                       # one layer: no overlapping segments
    assert np.array_equal(np.transpose(seg["voxels"], (2, 1, 0)), scan.labels)
    ijk = np.asarray(seg["ijkToLPS"])
    assert np.allclose(np.diag(ijk)[:3], (1.5, 1.5, 4.0)) and np.allclose(ijk[:3, 3], scan.origin_mm)
    by_name = {s["name"]: s for s in seg["segments"]}
    assert list(by_name) == list(MUSCLES)
    for m in MUSCLES:
        assert by_name[m]["labelValue"] == MUSCLE_LABELS[m]
        assert np.allclose(by_name[m]["color"], MUSCLE_COLORS[m])

    truth = json.loads((a / "truth.json").read_text())
    assert truth["class"] == "CMD" and truth["subtype"] in ("COL6", "LAMA2")


def test_segmentation_readable_by_slicer_core(tmp_path):
    slicer = pytest.importorskip("slicer")   # installed with the test extra; importorskip only guards odd setups
    scan = make_scan("normal", seed=2, n_slices=4, age=8, **SMALL)
    write_scan(scan, tmp_path)
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(tmp_path / "muscles.seg.nrrd"))
    assert storage.ReadData(node) == 1
    seg = node.GetSegmentation()
    assert seg.GetNumberOfSegments() == 7
    names = [seg.GetNthSegment(i).GetName() for i in range(7)]
    values = [seg.GetNthSegment(i).GetLabelValue() for i in range(7)]
    assert names == list(MUSCLES) and values == [MUSCLE_LABELS[m] for m in MUSCLES]


def test_cohort_is_deterministic_atomic_and_grouped(tmp_path, monkeypatch):
    adult = dict(matrix=144, pixel_mm=1.5)     # 216 mm: any adult calf fits
    kw = dict(subjects=4, seed=5, n_slices=4, workers=1, progress=False, **adult)
    r1 = write_cohort(tmp_path / "c1", **kw)
    write_cohort(tmp_path / "c2", **kw)
    for f in sorted((tmp_path / "c1").rglob("*")):
        if f.is_file() and f.name != ".mdtexture-output.json":  # the output manifest records the time
            assert f.read_bytes() == (tmp_path / "c2" / f.relative_to(tmp_path / "c1")).read_bytes(), f
    assert len(r1) >= 4 and {r.subject for r in r1} == {"S001", "S002", "S003", "S004"}
    header = (tmp_path / "c1" / "cohort.csv").read_text().splitlines()[0].split(",")
    for col in ("subject", "scan", "class", "age", "severity", "subtype", "pattern_family", "body_cues", "n_slices",
                "matrix", "pixel_mm", "folder"):
        assert col in header
    # a second scan is a follow-up of the same subject: same class, older
    two = write_cohort(tmp_path / "c3", subjects=3, seed=1, scans_per_subject=2, n_slices=4, workers=1,
                       progress=False, **adult)
    for sid in {r.subject for r in two}:
        s1, s2 = sorted((r for r in two if r.subject == sid), key=lambda r: r.scan)
        assert s1.class_name == s2.class_name and s2.age > s1.age
    # non-empty target refused; a failure mid-way leaves neither the target nor a partial folder
    with pytest.raises(InputError):
        write_cohort(tmp_path / "c1", **kw)
    import MDTextureLib.phantom.cohort as pc
    calls = []

    def boom(scan, folder):
        calls.append(folder)
        if len(calls) > 1:
            raise RuntimeError("disk full")
        return write_scan(scan, folder)
    monkeypatch.setattr(pc, "write_scan", boom)
    with pytest.raises(RuntimeError):
        write_cohort(tmp_path / "c4", **kw)
    assert not (tmp_path / "c4").exists()
    assert [p.name for p in tmp_path.iterdir() if "c4" in p.name] == []


def test_preview_png(tmp_path):
    from MDTextureLib.phantom.preview import render_preview, scan_title
    rows = []
    for cls in ("DMD", "CMD", "normal"):
        s = make_scan(cls, seed=1, n_slices=5, age=9, **SMALL)
        rows.append(dict(water=s.water, fat=s.fat, ff=s.ff, labels=s.labels, title=scan_title(s.truth)))
    out = render_preview(rows, tmp_path / "p.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(data) < 400_000


def test_rim_statistic_separates_patterns_at_every_severity():
    for sev in (0.2, 0.5, 0.8):
        col6 = make_scan("CMD", seed=31, n_slices=6, age=10, severity=sev, subtype="COL6", **REAL)
        dmd = make_scan("DMD", seed=31, n_slices=6, age=10, severity=sev, **REAL)
        assert _rim_ratio(col6) > 1.5 * _rim_ratio(dmd), sev
