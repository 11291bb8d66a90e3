"""Honest reading of files: truncated or corrupt compressed data, OS errors, the same image given twice, NIfTI
qform/sform disagreement. Each message must name the real cause in one line."""

import builtins
import errno
import os
import shutil
import struct

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import AWKWARD, leg_volume, write_nrrd
from MDTextureLib.errors import InputError
from MDTextureLib.io import load_dixon, read_image


def _volume(n_slices=12):
    """Fractions with no zero slice, so zero-filled slices would be visible."""
    return np.clip(leg_volume(n_slices=n_slices, rows=32, cols=40)["ff"], 0.02, 1.0)


def _write(array, path, compress=True):
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(AWKWARD["spacing"])
    img.SetOrigin(AWKWARD["origin"])
    img.SetDirection(AWKWARD["direction"])
    sitk.WriteImage(img, str(path), compress)
    return path


def _truncate(path, keep=0.7):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def _corrupt(path):
    """Overwrite 64 bytes in the middle of the compressed payload (a bad copy, a disk error)."""
    data = bytearray(path.read_bytes())
    mid = len(data) * 2 // 3
    data[mid:mid + 64] = bytes(64)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("name", ["ff.nii.gz", "ff.nrrd", "ff.mha"])
def test_truncated_compressed_file_is_refused_not_zero_filled(tmp_path, name):
    path = _truncate(_write(_volume(), tmp_path / name))
    with pytest.raises(InputError, match="corrupt or truncated .*compressed data") as info:
        read_image(path, "fat-fraction image")
    assert "\n" not in str(info.value) and name in str(info.value)


@pytest.mark.parametrize("name", ["ff.nii.gz", "ff.nrrd", "ff.mha"])
def test_corrupt_compressed_file_names_the_cause(tmp_path, name):
    """Main read a corrupt gzip NRRD silently (garbage values, then 'is it a fat image?') and a corrupt .nii.gz as
    'not an image file'."""
    path = _corrupt(_write(_volume(), tmp_path / name))
    with pytest.raises(InputError, match="corrupt or truncated .*compressed data") as info:
        load_dixon(ff=path)
    assert "fat image?" not in str(info.value)


def test_truncated_uncompressed_nifti_is_refused(tmp_path):
    path = _truncate(_write(_volume(), tmp_path / "ff.nii", compress=False), keep=0.8)
    with pytest.raises(InputError, match="truncated NIfTI"):
        read_image(path)


def test_whole_compressed_files_still_read_exactly(tmp_path):
    vol = _volume()
    for name in ("ff.nii.gz", "ff.nrrd", "ff.mha"):
        image = read_image(_write(vol, tmp_path / name))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), vol)


def _deny(monkeypatch, denied):
    """Simulate EACCES on one path (tests run as root, where chmod does not stop reading)."""
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(denied):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)


def test_permission_denied_is_named(tmp_path, monkeypatch):
    path = _write(_volume(), tmp_path / "ff.nrrd")
    _deny(monkeypatch, path)
    with pytest.raises(InputError, match="permission denied") as info:
        read_image(path, "fat-fraction image")
    assert "not found" not in str(info.value) and "not an image" not in str(info.value)


def test_permission_denied_on_the_folder_is_named(tmp_path, monkeypatch):
    path = _write(_volume(), tmp_path / "ff.nrrd")
    real_stat = os.stat

    def fake_stat(p, *args, **kwargs):
        if os.fspath(p) == os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(p))
        return real_stat(p, *args, **kwargs)

    monkeypatch.setattr(os, "stat", fake_stat)
    with pytest.raises(InputError, match="permission denied"):
        read_image(path, "fat-fraction image")


def test_not_an_image_says_so(tmp_path):
    (tmp_path / "ff.nii.gz").write_text("hello")
    with pytest.raises(InputError, match="not an image"):
        read_image(tmp_path / "ff.nii.gz")


def test_the_same_file_as_water_and_fat_is_refused(tmp_path):
    vol = leg_volume()
    water = write_nrrd(vol["water"], tmp_path / "water.nrrd")
    with pytest.raises(InputError, match="same file"):
        load_dixon(water=water, fat=water)
    os.symlink(water, tmp_path / "link.nrrd")
    with pytest.raises(InputError, match="same file"):
        load_dixon(water=water, fat=tmp_path / "link.nrrd")
    shutil.copy(water, tmp_path / "copy.nrrd")
    with pytest.raises(InputError, match="identical voxel values"):
        load_dixon(water=water, fat=tmp_path / "copy.nrrd")
    ff = write_nrrd(vol["ff"], tmp_path / "ff.nrrd")
    with pytest.raises(InputError, match="same file"):
        load_dixon(ff=ff, water=ff, fat=water)


def _set_qform_offset(path, shift_ras_mm):
    """Move the qform of a .nii file by ``shift_ras_mm`` (the sform stays): the header then disagrees with itself."""
    data = bytearray(path.read_bytes())
    assert struct.unpack_from("<2h", data, 252) == (1, 1)  # ITK writes qform_code = sform_code = 1
    offset = np.array(struct.unpack_from("<3f", data, 268)) + shift_ras_mm
    struct.pack_into("<3f", data, 268, *offset)
    path.write_bytes(bytes(data))


def test_qform_sform_disagreement_is_warned_with_mm_and_choice(tmp_path):
    vol = leg_volume()
    path = _write(vol["ff"], tmp_path / "ff.nii", compress=False)
    clean = load_dixon(ff=path)
    assert not any("qform" in w for w in clean.warnings)
    _set_qform_offset(path, (25.0, 0.0, 0.0))
    series = load_dixon(ff=path)
    notes = [w for w in series.warnings if "qform" in w]
    assert len(notes) == 1 and "25.0 mm" in notes[0] and "placed with the sform" in notes[0]
    assert series.grid.origin == pytest.approx(clean.grid.origin, abs=1e-3)  # ITK keeps the sform here


def test_qform_sform_check_reads_gzipped_nifti(tmp_path):
    vol = leg_volume()
    raw = _write(vol["ff"], tmp_path / "ff.nii", compress=False)
    _set_qform_offset(raw, (0.0, 0.0, -12.5))
    import gzip
    (tmp_path / "ff.nii.gz").write_bytes(gzip.compress(raw.read_bytes()))
    series = load_dixon(ff=tmp_path / "ff.nii.gz")
    assert any("12.5 mm" in w and "sform" in w for w in series.warnings)


def test_qform_sform_disagreement_of_a_segmentation_is_warned(tmp_path, leg_files):
    from MDTextureLib.labels import read_labels

    series = load_dixon(ff=leg_files["ff"])
    path = _write(leg_volume()["labels"], tmp_path / "muscles.nii", compress=False)
    _set_qform_offset(path, (0.0, 25.0, 0.0))
    labels = read_labels(path, series.grid)
    assert any("segmentation muscles.nii: NIfTI qform and sform disagree by up to 25.0 mm" in w
               for w in labels.warnings)


def test_concatenated_gzip_members_are_whole(tmp_path):
    """bgzip/pigz-style files hold several gzip members; they are one valid file, not a truncated one."""
    import gzip

    vol = _volume()
    raw = _write(vol, tmp_path / "ff.nii", compress=False).read_bytes()
    half = len(raw) // 2
    (tmp_path / "ff.nii.gz").write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(tmp_path / "ff.nii.gz")), vol)
    (tmp_path / "cut.nii.gz").write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:])[:-20])
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_image(tmp_path / "cut.nii.gz")


def test_unreadable_segmentation_folder_and_batch_data_folder_name_the_cause(tmp_path, monkeypatch):
    """Path.exists()/is_dir() raise PermissionError for a folder one may not enter: that must be one line with the
    cause, not a traceback (simulated: tests run as root)."""
    import errno
    from pathlib import Path

    from MDTextureLib.cli import main
    from MDTextureLib.io import Grid
    from MDTextureLib.labels import read_labels

    real_stat = Path.stat

    def stat(self, *a, **k):
        if "locked" in str(self):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_stat(self, *a, **k)

    monkeypatch.setattr(Path, "stat", stat)
    grid = Grid((4, 4, 3), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(InputError, match="cannot read segmentation .*permission denied"):
        read_labels(tmp_path / "locked" / "muscles.nrrd", grid)
    assert main(["batch", "--data", str(tmp_path / "locked"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
