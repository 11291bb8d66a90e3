"""DICOM as scanners export Dixon: series split by their tags, slice gaps refused, studies scanned and the water /
fat / FF series picked by vendor conventions. Test files are written with pydicom (32 x 40 x 6, int16 with a
RescaleSlope), following each convention claimed in MDTextureLib/dicom.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MDTextureLib.dicom import choose_series, load_study, role_from_tags, scan_folder
from MDTextureLib.errors import InputError
from MDTextureLib.io import load_dixon, read_image

pydicom = pytest.importorskip("pydicom")

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
PIXEL_MM = (0.8, 0.7)  # (x, y): columns 0.8 mm apart, rows 0.7 mm apart
STEP_MM = 4.0
ORIGIN = (-12.5, -20.0, 30.0)
ROTATED = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0)  # rows run along +y, columns along -x: a 90 degree in-plane rotation


def dixon_volumes(n_slices=6, rows=32, cols=40):
    """water, fat (arbitrary units) and FF (percent) with no two slices alike; FF = fat / (water + fat)."""
    z, y, x = np.mgrid[0:n_slices, 0:rows, 0:cols].astype(np.float64)
    ff = 0.05 + 0.8 * (x / cols) * (0.5 + 0.5 * z / n_slices)  # fraction, 0.05 .. 0.85
    radius = np.sqrt(((x - cols / 2) / (cols * 0.36)) ** 2 + ((y - rows / 2) / (rows * 0.36)) ** 2)  # air around it
    body = radius < 1
    ff = np.where(radius > 0.55, 0.92, ff)  # a subcutaneous fat rim, as in a leg (else it reads as a water/fat swap)
    total = np.where(body, 200.0, 2.0)
    return {"water": total * (1 - ff), "fat": total * ff, "ff": 100 * ff * body}


def write_series(folder: Path, volume_zyx: np.ndarray, *, uid: str, description: str, image_type: str,
                 positions_mm=None, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), slope: float = 0.01,
                 intercept: float = -100.0, manufacturer: str = "SIEMENS", philips_type: str | None = None,
                 first_instance: int = 1, name_prefix: str = "", study_uid: str | None = None) -> np.ndarray:
    """One DICOM MR file per slice; returns the values a reader must find (stored integers × slope + intercept)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    stored = np.round((volume_zyx - intercept) / slope).astype(np.int16)
    o = np.asarray(orientation, dtype=float)
    normal = np.cross(o[:3], o[3:])
    n = volume_zyx.shape[0]
    positions_mm = STEP_MM * np.arange(n) if positions_mm is None else np.asarray(positions_mm, dtype=float)
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.Manufacturer = "MR", manufacturer
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid or STUDY_UID, uid
        ds.SeriesDescription, ds.ImageType = description, image_type.split("\\")
        ds.InstanceNumber = first_instance + k
        ds.ImagePositionPatient = [f"{v:.4f}" for v in np.asarray(ORIGIN) + positions_mm[k] * normal]
        ds.ImageOrientationPatient = [f"{v:g}" for v in orientation]
        ds.PixelSpacing = [f"{PIXEL_MM[1]:g}", f"{PIXEL_MM[0]:g}"]  # (row spacing, column spacing)
        ds.SliceThickness = f"{STEP_MM:g}"
        ds.Rows, ds.Columns = volume_zyx.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        if philips_type is not None:
            block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
            block.add_new(0x11, "CS", philips_type)
        ds.PixelData = stored[k].tobytes()
        ds.save_as(folder / f"{name_prefix}{first_instance + k:04d}.dcm", enforce_file_format=True)
    return stored.astype(np.float64) * slope + intercept


def test_series_is_read_with_its_geometry_and_rescaled_values(tmp_path):
    vol = dixon_volumes()
    expected = write_series(tmp_path / "ff", vol["ff"], uid="1.2.3.1", description="FF", image_type="DERIVED\\PRIMARY",
                            orientation=ROTATED)
    image = read_image(tmp_path / "ff", "fat-fraction image")
    assert image.GetSize() == (40, 32, 6)
    assert image.GetSpacing() == pytest.approx((*PIXEL_MM, STEP_MM))
    assert image.GetOrigin() == pytest.approx(ORIGIN)
    assert image.GetDirection() == pytest.approx((0, -1, 0, 1, 0, 0, 0, 0, 1))  # columns: row dir, col dir, normal
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), expected, atol=1e-4)


def test_shuffled_slice_files_are_sorted_by_position(tmp_path):
    vol = dixon_volumes()
    order = [3, 0, 5, 1, 4, 2]  # file names (instance numbers) no longer follow the position
    expected = write_series(tmp_path / "s", vol["ff"][order], uid="1.2.3.2", description="FF",
                            image_type="DERIVED", positions_mm=STEP_MM * np.array(order, dtype=float))
    image = read_image(tmp_path / "s")
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), expected[np.argsort(order)], atol=1e-4)


def test_a_missing_slice_is_refused_with_the_gap_named(tmp_path):
    """Main read 5 of 6 slices on a stretched 5 mm grid: every slice after the gap drifted by up to a slice."""
    vol = dixon_volumes()
    write_series(tmp_path / "ff", vol["ff"], uid="1.2.3.3", description="t1_dixon_FF", image_type="DERIVED")
    (tmp_path / "ff" / "0004.dcm").unlink()  # the 4th slice (at 12 mm) is lost
    with pytest.raises(InputError, match=r"gap of 8.00 mm between slices 3 and 4 of 5 .* 4.00 mm apart: 1 slice"):
        read_image(tmp_path / "ff", "fat-fraction image")


def test_slightly_uneven_spacing_is_warned_and_strongly_uneven_refused(tmp_path):
    vol = dixon_volumes()
    slight = STEP_MM * np.arange(6) + np.array([0, 0, 0.3, 0, 0, 0])
    write_series(tmp_path / "a", vol["ff"], uid="1.2.3.4", description="FF", image_type="DERIVED",
                 positions_mm=slight)
    notes = []
    image = read_image(tmp_path / "a", "fat-fraction image", notes)
    assert image.GetSpacing()[2] == pytest.approx(STEP_MM)
    assert len(notes) == 1 and "uneven" in notes[0] and "slice 3 displaced by +0.30 mm" in notes[0]
    strong = STEP_MM * np.arange(6) + np.array([0, 0, 1.6, 0, 0, 0])
    write_series(tmp_path / "b", vol["ff"], uid="1.2.3.5", description="FF", image_type="DERIVED",
                 positions_mm=strong)
    with pytest.raises(InputError, match=r"uneven slice spacing .* slice 3 lies \+1.60 mm off"):
        read_image(tmp_path / "b")


def _interleaved_water_fat(folder: Path, vol: dict, philips: bool = False) -> dict:
    """Water and fat under one SeriesInstanceUID, instance numbers interleaved (as some vendors export them)."""
    uid = "1.2.3.10"
    kw = dict(uid=uid, description="mDIXON W+F" if philips else "t1_vibe_dixon", manufacturer=(
        "Philips" if philips else "SIEMENS"))
    if philips:  # Philips: the public ImageType does not say; the private MR image type does
        w = write_series(folder, vol["water"], image_type="ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", philips_type="W",
                         first_instance=1, name_prefix="a", **kw)
        f = write_series(folder, vol["fat"], image_type="ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", philips_type="F",
                         first_instance=101, name_prefix="b", **kw)
    else:
        w = write_series(folder, vol["water"], image_type="DERIVED\\PRIMARY\\DIXON\\W", name_prefix="a", **kw)
        f = write_series(folder, vol["fat"], image_type="DERIVED\\PRIMARY\\DIXON\\F", first_instance=101,
                         name_prefix="b", **kw)
    return {"water": w, "fat": f}


@pytest.mark.parametrize("philips", [False, True])
def test_water_and_fat_in_one_series_are_split_by_their_tags(tmp_path, philips):
    """Main read such a folder as one interleaved volume (12 slices, FF = 0.5 everywhere)."""
    vol = dixon_volumes()
    expected = _interleaved_water_fat(tmp_path / "dixon", vol, philips)
    series = load_dixon(water=tmp_path / "dixon", fat=tmp_path / "dixon")
    assert series.grid.size == (40, 32, 6)
    assert series.grid.spacing == pytest.approx((*PIXEL_MM, STEP_MM))
    np.testing.assert_allclose(series.water, expected["water"], atol=1e-4)
    np.testing.assert_allclose(series.fat, expected["fat"], atol=1e-4)
    assert any("holds 2 image types" in w for w in series.warnings)
    with pytest.raises(InputError, match="holds 2 image types .* need exactly one fat-fraction image part"):
        load_dixon(ff=tmp_path / "dixon")


def test_two_images_per_position_that_tags_cannot_split_are_refused(tmp_path):
    vol = dixon_volumes()
    for name, prefix in (("water", "a"), ("fat", "b")):
        write_series(tmp_path / "x", vol[name], uid="1.2.3.11", description="dixon", image_type="DERIVED\\PRIMARY",
                     name_prefix=prefix, first_instance=1 if prefix == "a" else 101)
    with pytest.raises(InputError, match="two images at one slice position"):
        read_image(tmp_path / "x", "water image")


def test_the_same_dicom_series_as_water_and_fat_is_refused(tmp_path):
    vol = dixon_volumes()
    write_series(tmp_path / "w", vol["water"], uid="1.2.3.12", description="water", image_type="DERIVED\\W")
    shutil.copytree(tmp_path / "w", tmp_path / "w_copy")
    with pytest.raises(InputError, match="identical voxel values"):
        load_dixon(water=tmp_path / "w", fat=tmp_path / "w_copy")


@pytest.mark.parametrize("image_type, philips, description, role", [
    ("ORIGINAL\\PRIMARY\\M\\DIXON\\W", None, "t1_vibe_dixon_tra_W", "water"),  # Siemens
    ("ORIGINAL\\PRIMARY\\M\\DIXON\\F", None, "t1_vibe_dixon_tra_F", "fat"),
    ("DERIVED\\PRIMARY\\DIXON\\FF", None, "t1_vibe_dixon_tra_FF", "ff"),
    ("ORIGINAL\\PRIMARY\\M\\ND", None, "t1_vibe_dixon_tra_W", "water"),  # Siemens, description only
    ("ORIGINAL\\PRIMARY\\M\\ND", None, "t1_vibe_dixon_tra_opp", "out-of-phase"),
    ("ORIGINAL\\PRIMARY\\M\\ND", None, "t1_vibe_dixon_tra_in", "in-phase"),
    ("ORIGINAL\\PRIMARY\\M\\ND", None, "Dixon FatFraction", "ff"),
    ("ORIGINAL\\PRIMARY\\W\\W", None, "mDIXON", "water"),  # Philips
    ("ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", "F", "mDIXON", "fat"),  # Philips private
    ("DERIVED\\PRIMARY\\IDEAL\\WATER", None, "Ax IDEAL", "water"),  # GE
    ("DERIVED\\PRIMARY\\OTHER", None, "FAT: Ax IDEAL", "fat"),
    ("DERIVED\\PRIMARY\\OTHER", None, "FAT FRACTION: Ax IDEAL IQ", "ff"),
    ("ORIGINAL\\PRIMARY\\M\\ND", None, "t2_tse_tra", None),
    ("ORIGINAL\\PRIMARY\\M\\ND", None, "T2 TSE fat sat", None),  # fat-suppressed, not a fat image
    ("ORIGINAL\\PRIMARY\\M\\ND", None, "t1_fl3d_water_excitation", None),
    ("ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", None, "T1 FFE", None),
    ("DERIVED\\PRIMARY\\W\\F", None, "odd", None),  # two roles at once: none
])
def test_roles_from_vendor_conventions(image_type, philips, description, role):
    got, rule = role_from_tags(image_type.split("\\"), [philips] if philips else [], description)
    assert got == role, rule


def _siemens_study(root: Path, vol: dict, with_ff=True) -> dict:
    """One examination as a Siemens scanner exports it: localizer, a T2, Dixon in/opp/W/F (and FF), one folder
    per series with scanner-like names."""
    root.mkdir(parents=True)
    out = {}
    write_series(root / "001_localizer", vol["water"][:3], uid="1.2.3.20", description="localizer",
                 image_type="ORIGINAL\\PRIMARY\\M\\ND")
    write_series(root / "002_t2", vol["water"], uid="1.2.3.21", description="t2_tse_tra",
                 image_type="ORIGINAL\\PRIMARY\\M\\ND")
    write_series(root / "003_in", vol["water"] + vol["fat"], uid="1.2.3.22", description="t1_vibe_dixon_tra_in",
                 image_type="ORIGINAL\\PRIMARY\\M\\DIXON\\IN_PHASE")
    out["water"] = write_series(root / "005_W", vol["water"], uid="1.2.3.24", description="t1_vibe_dixon_tra_W",
                                image_type="DERIVED\\PRIMARY\\DIXON\\W")
    out["fat"] = write_series(root / "006_F", vol["fat"], uid="1.2.3.25", description="t1_vibe_dixon_tra_F",
                              image_type="DERIVED\\PRIMARY\\DIXON\\F")
    if with_ff:
        out["ff"] = write_series(root / "007_FF", vol["ff"], uid="1.2.3.26", description="t1_vibe_dixon_tra_FF",
                                 image_type="DERIVED\\PRIMARY\\DIXON\\FF", slope=0.1, intercept=0.0)
    (root / "DICOMDIR.txt").write_text("not dicom")
    return out


def test_study_picks_ff_water_and_fat_by_tags(tmp_path):
    vol = dixon_volumes()
    expected = _siemens_study(tmp_path / "study", vol)
    series, facts = load_study(tmp_path / "study")
    used = facts["study_series_used"]
    assert {r: s["series_instance_uid"] for r, s in used.items()} == {"ff": "1.2.3.26", "water": "1.2.3.24",
                                                                      "fat": "1.2.3.25"}
    assert used["ff"]["rule"] == "ImageType 'FF'"
    assert len(facts["study_series_found"]) == 6 and facts["study_files_ignored"] == 1
    assert series.ff_unit == "percent"
    np.testing.assert_allclose(series.ff, expected["ff"] / 100, atol=1e-4)
    np.testing.assert_allclose(series.water, expected["water"], atol=1e-4)
    assert series.grid.origin == pytest.approx(ORIGIN)
    assert series.grid.spacing == pytest.approx((*PIXEL_MM, STEP_MM))


def test_study_without_ff_derives_it_from_water_and_fat(tmp_path):
    vol = dixon_volumes()
    expected = _siemens_study(tmp_path / "study", vol, with_ff=False)
    series, facts = load_study(tmp_path / "study")
    assert set(facts["study_series_used"]) == {"water", "fat"}
    assert series.ff_unit == "derived from water and fat"
    body = expected["water"] + expected["fat"] > 100
    np.testing.assert_allclose(series.ff[body], (expected["fat"] / (expected["water"] + expected["fat"]))[body],
                               atol=1e-4)


def test_ge_study_by_descriptions(tmp_path):
    vol = dixon_volumes()
    w = write_series(tmp_path / "ge" / "s5", vol["water"], uid="1.2.840.113619.5", description="WATER: Ax IDEAL",
                     image_type="DERIVED\\PRIMARY\\OTHER", manufacturer="GE MEDICAL SYSTEMS")
    f = write_series(tmp_path / "ge" / "s6", vol["fat"], uid="1.2.840.113619.6", description="FAT: Ax IDEAL",
                     image_type="DERIVED\\PRIMARY\\OTHER", manufacturer="GE MEDICAL SYSTEMS")
    series, facts = load_study(tmp_path / "ge")
    assert facts["study_series_used"]["water"]["rule"] == "description 'WATER: Ax IDEAL'"
    np.testing.assert_allclose(series.water, w, atol=1e-4)
    np.testing.assert_allclose(series.fat, f, atol=1e-4)


def test_philips_study_with_water_and_fat_under_one_uid(tmp_path):
    vol = dixon_volumes()
    expected = _interleaved_water_fat(tmp_path / "philips" / "DICOM", vol, philips=True)
    series, facts = load_study(tmp_path / "philips")
    used = facts["study_series_used"]
    assert {used["water"]["key"], used["fat"]["key"]} == {"1.2.3.10/1", "1.2.3.10/2"}  # one UID, two parts
    assert used["water"]["rule"] == "Philips (2005,1011) 'W'"
    np.testing.assert_allclose(series.fat, expected["fat"], atol=1e-4)


def test_ambiguous_study_stops_with_the_list_and_how_to_choose(tmp_path):
    vol = dixon_volumes()
    _siemens_study(tmp_path / "study", vol, with_ff=False)
    write_series(tmp_path / "study" / "015_W", vol["water"] * 0.9, uid="1.2.3.34",
                 description="t1_vibe_dixon_tra_W (repeat)", image_type="DERIVED\\PRIMARY\\DIXON\\W")
    with pytest.raises(InputError) as info:
        load_study(tmp_path / "study")
    msg = str(info.value)
    assert "2 water and 1 fat series" in msg and "--series" in msg and "\n" not in msg
    for uid in ("1.2.3.24", "1.2.3.25", "1.2.3.34", "1.2.3.21"):
        assert uid in msg
    series, facts = load_study(tmp_path / "study", choices=("1.2.3.34", "1.2.3.25"))
    assert facts["study_series_used"]["water"]["series_instance_uid"] == "1.2.3.34"
    # a series whose tags say nothing can be given a role
    series, facts = load_study(tmp_path / "study", choices=("water=1.2.3.21", "fat=1.2.3.25"))
    assert facts["study_series_used"]["water"]["description"] == "t2_tse_tra"
    with pytest.raises(InputError, match="no water/fat/FF role in its tags"):
        load_study(tmp_path / "study", choices=("1.2.3.21", "1.2.3.25"))


def test_study_with_no_dixon_series_says_so(tmp_path):
    vol = dixon_volumes()
    write_series(tmp_path / "st" / "a", vol["water"], uid="1.2.3.40", description="t2_tse_tra",
                 image_type="ORIGINAL\\PRIMARY\\M\\ND")
    with pytest.raises(InputError, match="no series is tagged as water, fat or fat fraction.*t2_tse_tra"):
        load_study(tmp_path / "st")
    found, ignored = scan_folder(tmp_path / "st")
    with pytest.raises(InputError, match="the role before '=' must be"):
        choose_series(found, ("bone=1.2.3.40",))


def _cli(argv, capsys):
    from MDTextureLib.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_classify_study_says_which_series_it_used(tmp_path, model_files, capsys):
    import json

    vol = dixon_volumes()
    _siemens_study(tmp_path / "study", vol)
    code, out, err = _cli(["classify", "--study", tmp_path / "study", "--model", model_files, "--out",
                           tmp_path / "res", "--no-report", "--quiet"], capsys)
    assert code == 0, err
    assert "series used as    ff: 1.2.3.26 't1_vibe_dixon_tra_FF'" in err
    assert "series not used     : 1.2.3.21 't2_tse_tra'" in err
    pred = json.loads((tmp_path / "res" / "prediction.json").read_text())
    assert pred["inputs"]["study"] == "study"
    assert pred["inputs"]["study_series_used"]["water"]["series_instance_uid"] == "1.2.3.24"
    assert pred["ff_unit_detected"] == "percent"
    heat = sitk.ReadImage(str(tmp_path / "res" / "heatmap.nrrd"))
    assert heat.GetSize() == (40, 32, 6) and heat.GetOrigin() == pytest.approx(ORIGIN)


def test_classify_study_ambiguous_or_mixed_options_is_one_line(tmp_path, model_files, capsys):
    vol = dixon_volumes()
    _siemens_study(tmp_path / "study", vol, with_ff=False)
    write_series(tmp_path / "study" / "015_W", vol["water"] * 0.9, uid="1.2.3.34", description="t1_dixon_W (repeat)",
                 image_type="DERIVED\\PRIMARY\\DIXON\\W")
    base = ["--model", model_files, "--out", tmp_path / "res", "--no-report", "--quiet"]
    code, _, err = _cli(["classify", "--study", tmp_path / "study", *base], capsys)
    errors = [ln for ln in err.splitlines() if ln.startswith("mdtexture: error:")]
    assert code == 2 and len(errors) == 1 and "--series" in errors[0] and "1.2.3.34" in errors[0]
    assert not (tmp_path / "res").exists()
    code, _, err = _cli(["classify", "--study", tmp_path / "study", "--series", "1.2.3.34", "--series", "fat=1.2.3.25",
                         *base], capsys)
    assert code == 0, err
    code, _, err = _cli(["classify", "--study", tmp_path / "study", "--ff", tmp_path / "x.nrrd", *base], capsys)
    assert code == 2 and "either --study or --ff" in err


def test_batch_over_study_folders(tmp_path, model_files, capsys):
    import csv

    from conftest import leg_volume, write_nrrd

    vol = dixon_volumes()
    _siemens_study(tmp_path / "data" / "s1_dicom", vol)
    (tmp_path / "data" / "s2_nrrd").mkdir()
    write_nrrd(leg_volume()["ff"], tmp_path / "data" / "s2_nrrd" / "ff.nrrd")
    code, _, err = _cli(["batch", "--data", tmp_path / "data", "--model", model_files, "--out", tmp_path / "res",
                         "--no-report", "--quiet"], capsys)
    assert code == 0, err
    rows = {r["subject"]: r for r in csv.DictReader(open(tmp_path / "res" / "summary.csv"))}
    assert set(rows) == {"s1_dicom", "s2_nrrd"} and all(r["error"] == "" for r in rows.values())
    assert rows["s1_dicom"]["n_slices"] == "6" and rows["s1_dicom"]["ff_unit"] == "percent"


def test_one_dicom_file_or_an_unreadable_one_gets_a_message_naming_it(tmp_path, monkeypatch):
    import builtins
    import errno
    import os

    vol = dixon_volumes()
    write_series(tmp_path / "s", vol["ff"], uid="1.2.3.50", description="FF", image_type="DERIVED\\FF")
    with pytest.raises(InputError, match="one DICOM file holding one slice; give the folder of its series"):
        read_image(tmp_path / "s" / "0001.dcm")
    denied = tmp_path / "s" / "0003.dcm"
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):  # EACCES on one slice (tests run as root: chmod would not stop reading)
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) == os.fspath(denied):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(InputError, match="0003.dcm: permission denied"):
        read_image(tmp_path / "s")


def test_multi_frame_file_is_refused_with_a_way_forward(tmp_path):
    vol = dixon_volumes(n_slices=1)
    write_series(tmp_path / "mf", vol["ff"], uid="1.2.3.60", description="FF", image_type="DERIVED\\FF")
    path = tmp_path / "mf" / "0001.dcm"
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 6  # an enhanced (multi-frame) file, as Philips and recent Siemens export
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError, match="multi-frame.*6 frames.*convert it"):
        read_image(tmp_path / "mf")


def test_slices_lost_at_an_end_are_warned_when_images_in_acquisition_says_so(tmp_path):
    vol = dixon_volumes()
    write_series(tmp_path / "s", vol["ff"], uid="1.2.3.70", description="FF", image_type="DERIVED\\FF")
    for f in sorted((tmp_path / "s").iterdir()):
        ds = pydicom.dcmread(f)
        ds.ImagesInAcquisition = 7  # the scanner made 7; the last one never arrived
        ds.save_as(f, enforce_file_format=True)
    notes = []
    image = read_image(tmp_path / "s", "fat-fraction image", notes)
    assert image.GetSize()[2] == 6
    assert any("6 slices where ImagesInAcquisition (0020,1002) says 7" in n for n in notes)


def test_series_of_two_examinations_are_never_combined(tmp_path):
    """Hostile run: one folder held two studies; water from one and fat from the other, chosen with --series, gave a
    confident verdict with no word. Series of different studies (StudyInstanceUID) are refused whether chosen by
    hand or by their tags; series of one study are read as before."""
    vol = dixon_volumes()
    root = tmp_path / "two"
    write_series(root / "a_W", vol["water"], uid="1.2.3.24", description="dixon_W",
                 image_type="DERIVED\\PRIMARY\\DIXON\\W")
    write_series(root / "b_F", vol["fat"], uid="1.2.4.25", description="dixon_F",
                 image_type="DERIVED\\PRIMARY\\DIXON\\F", study_uid="1.2.4")
    with pytest.raises(InputError, match=r"come from different examinations .*water image 1\.2\.3\.24 .*fat image "
                                         r"1\.2\.4\.25 \(StudyInstanceUID 1\.2\.4\)"):
        load_study(root, choices=("water=1.2.3.24", "fat=1.2.4.25"))
    with pytest.raises(InputError, match="different examinations"):
        load_study(root)  # one water and one fat series by their tags: the same pair, the same refusal
    write_series(root / "a_F", vol["fat"], uid="1.2.3.25", description="dixon_F",
                 image_type="DERIVED\\PRIMARY\\DIXON\\F")
    series, facts = load_study(root, choices=("water=1.2.3.24", "fat=1.2.3.25"))
    assert facts["study_series_used"]["fat"]["series_instance_uid"] == "1.2.3.25"
