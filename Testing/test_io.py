"""Reading Dixon series: formats, grids, FF units and derivation, labels and Slicer segmentations."""

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import AWKWARD, leg_volume, write_nrrd
from MDTextureLib.errors import InputError
from MDTextureLib.io import Grid, load_dixon, normalise_ff, read_image
from MDTextureLib.labels import pack_layers, read_labels


def test_fraction_and_percent_are_detected_and_converted(tmp_path):
    vol = leg_volume()
    frac = load_dixon(ff=write_nrrd(vol["ff"], tmp_path / "f.nrrd"))
    pct = load_dixon(ff=write_nrrd(vol["ff"] * 100, tmp_path / "p.nrrd"))
    assert frac.ff_unit == "fraction" and pct.ff_unit == "percent"
    np.testing.assert_allclose(pct.ff, frac.ff, atol=1e-6)
    forced = load_dixon(ff=tmp_path / "p.nrrd", ff_unit="percent")
    np.testing.assert_allclose(forced.ff, frac.ff, atol=1e-6)


def test_nan_and_inf_are_masked_with_a_warning():
    ff = np.full((3, 4, 4), 0.2, np.float32)
    ff[0, 0, 0], ff[1, 1, 1] = np.nan, np.inf
    out, unit = normalise_ff(ff, notes=(notes := []))
    assert out[0, 0, 0] == 0 and out[1, 1, 1] == 0 and out[2, 2, 2] == pytest.approx(0.2)
    assert unit == "fraction" and any("2 NaN/Inf" in n for n in notes)


@pytest.mark.parametrize("values, message", [
    ((-20.0, 50.0), "negative values"),
    ((0.0, 140.0), "above 100 %"),
    ((0.0, 3000.0), "above 100 %"),
])
def test_impossible_fat_fractions_are_refused(values, message):
    ff = np.linspace(*values, 48, dtype=np.float32).reshape(3, 4, 4)
    with pytest.raises(InputError, match=message):
        normalise_ff(ff)


def test_ff_is_derived_from_water_and_fat(leg_files):
    vol = leg_volume()
    derived = load_dixon(water=leg_files["water"], fat=leg_files["fat"])
    assert derived.ff_unit == "derived from water and fat"
    body = vol["water"] + vol["fat"] > 50
    np.testing.assert_allclose(derived.ff[body], vol["ff"][body], atol=1e-5)
    assert (derived.ff[~body] == 0).all()  # background guarded, not 0/0


def test_grids_must_match_and_the_message_names_the_difference(tmp_path):
    vol = leg_volume()
    ff = write_nrrd(vol["ff"], tmp_path / "ff.nrrd")
    other = dict(AWKWARD, spacing=(0.9, 1.2, 4.0))
    water = write_nrrd(vol["water"], tmp_path / "water.nrrd", other)
    fat = write_nrrd(vol["fat"], tmp_path / "fat.nrrd", other)
    with pytest.raises(InputError, match=r"different voxel grids: spacing \(0.9, 1.1, 4\) vs \(0.9, 1.2, 4\)"):
        load_dixon(ff=ff, water=water, fat=fat)
    moved = write_nrrd(vol["water"], tmp_path / "moved.nrrd", dict(AWKWARD, origin=(0, 0, 0)))
    with pytest.raises(InputError, match="origin"):
        load_dixon(ff=ff, water=moved, fat=water)


def test_geometry_is_read_exactly(leg_files):
    series = load_dixon(ff=leg_files["ff"])
    assert series.grid.spacing == pytest.approx(AWKWARD["spacing"])
    assert series.grid.origin == pytest.approx(AWKWARD["origin"])
    assert series.grid.direction == pytest.approx(AWKWARD["direction"])
    assert series.ff.shape == (6, 72, 80)


def test_bad_files_get_one_line_messages(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "absent.nrrd")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match="cannot read image notes.txt") as info:
        read_image(tmp_path / "notes.txt")
    assert "\n" not in str(info.value)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((5, 6), np.float32)), str(tmp_path / "flat.nrrd"))
    with pytest.raises(InputError, match="is 2-D"):
        read_image(tmp_path / "flat.nrrd")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 5, 6), np.float32), isVector=False), str(tmp_path / "t.nrrd"))
    with pytest.raises(InputError, match="is 4-D"):
        read_image(tmp_path / "t.nrrd")
    rgb = sitk.GetImageFromArray(np.zeros((3, 5, 6, 3), np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.nrrd"))
    with pytest.raises(InputError, match="3 components"):
        read_image(tmp_path / "rgb.nrrd")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(tmp_path / "empty_dir")


def test_nifti_and_metaimage_give_the_same_series(tmp_path, leg_files):
    ref = load_dixon(ff=leg_files["ff"])
    img = sitk.ReadImage(str(leg_files["ff"]))
    for name in ("ff.nii.gz", "ff.mha"):
        sitk.WriteImage(img, str(tmp_path / name))
        s = load_dixon(ff=tmp_path / name)
        np.testing.assert_array_equal(s.ff, ref.ff)
        assert s.grid.mismatch(ref.grid) is None


def test_dicom_series_folder(tmp_path):
    vol = (leg_volume(n_slices=4)["ff"] * 1000).astype(np.int16)
    folder = tmp_path / "dicom"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(vol.shape[0]):
        sl = sitk.GetImageFromArray(vol[k])
        sl.SetSpacing((0.8, 0.8))  # the writer takes pixel spacing from the image, not from the tag
        for tag, value in (("0008|0060", "MR"), ("0020|000e", "1.2.826.0.1.3680043.2.1125.1"),
                           ("0020|000d", "1.2.826.0.1.3680043.2.1125.2"), ("0020|0013", str(k + 1)),
                           ("0020|0032", f"-50\\-60\\{k * 4.0}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0028|0030", "0.8\\0.8"), ("0018|0050", "4")):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(sl)
    image = read_image(folder, "fat-fraction image")
    assert image.GetSize() == (80, 72, 4)
    assert image.GetSpacing() == pytest.approx((0.8, 0.8, 4.0))
    assert image.GetOrigin() == pytest.approx((-50, -60, 0))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), vol)


def test_labels_on_a_finer_grid_are_resampled_nearest_neighbour(tmp_path, leg_files):
    series = load_dixon(ff=leg_files["ff"])
    labels = leg_volume()["labels"]
    fine = np.repeat(np.repeat(labels, 2, axis=1), 2, axis=2)
    geom = dict(AWKWARD, spacing=(0.45, 0.55, 4.0))
    # Same physical extent: shift the origin by a quarter voxel of the coarse grid (finer voxel centres).
    d = np.asarray(AWKWARD["direction"]).reshape(3, 3)
    shift = d @ np.array([-0.225, -0.275, 0.0])
    geom["origin"] = tuple(np.asarray(AWKWARD["origin"]) + shift)
    lm = read_labels(write_nrrd(fine, tmp_path / "fine.nrrd", geom), series.grid)
    np.testing.assert_array_equal(lm.labels, labels)
    assert lm.names == {1: "TA", 5: "Sol"}
    assert any("resampled" in w for w in lm.warnings)


def test_segmentation_that_misses_the_image_is_refused(tmp_path, leg_files):
    series = load_dixon(ff=leg_files["ff"])
    far = write_nrrd(leg_volume()["labels"], tmp_path / "far.nrrd", dict(AWKWARD, origin=(500.0, 500.0, 500.0)))
    with pytest.raises(InputError, match="does not overlap"):
        read_labels(far, series.grid)
    empty = write_nrrd(np.zeros((6, 72, 80), np.uint8), tmp_path / "empty.nrrd")
    with pytest.raises(InputError, match="no labelled voxels"):
        read_labels(empty, series.grid)


def _write_seg_nrrd(path, layers_zyx: np.ndarray, grid: Grid, segments) -> None:
    """A Slicer .seg.nrrd through slicerio: ``layers_zyx`` is (z, y, x) or (layer, z, y, x); ``segments`` are
    (name, label value, layer)."""
    import slicerio

    voxels = layers_zyx.transpose(2, 1, 0) if layers_zyx.ndim == 3 else layers_zyx.transpose(3, 2, 1, 0)
    slicerio.write_segmentation(str(path), {
        "voxels": voxels.copy(),  # slicerio uses (i, j, k[, layer])
        "ijkToLPS": grid.ijk_to_lps(),
        "encoding": "gzip",
        "segments": [{"id": f"Segment_{k}", "name": name, "labelValue": value, "layer": layer, "color": [1, 0, 0]}
                     for k, (name, value, layer) in enumerate(segments, start=1)],
    })


def test_slicer_seg_nrrd_names_and_geometry(tmp_path, leg_files):
    series = load_dixon(ff=leg_files["ff"])
    labels = leg_volume()["labels"]
    grid = series.grid
    _write_seg_nrrd(tmp_path / "m.seg.nrrd", labels, grid, [("Tibialis anterior", 1, 0), ("soleus", 5, 0)])
    lm = read_labels(tmp_path / "m.seg.nrrd", grid)
    names = {v: n for v, n in lm.names.items()}
    assert sorted(names.values()) == ["Tibialis anterior", "soleus"]
    by_name = {n: v for v, n in names.items()}
    np.testing.assert_array_equal(lm.labels == by_name["Tibialis anterior"], labels == 1)
    np.testing.assert_array_equal(lm.labels == by_name["soleus"], labels == 5)
    assert not lm.warnings  # same grid: no resampling


def test_slicer_seg_nrrd_with_two_layers_on_a_finer_grid(tmp_path, leg_files):
    """Overlapping segments live in separate layers: merged (later segment wins, with a warning), then resampled
    nearest-neighbour from a 2x finer grid onto the FF grid."""
    series = load_dixon(ff=leg_files["ff"])
    labels = leg_volume()["labels"]
    ta, sol = labels == 1, labels == 5
    grown_ta = ta | np.roll(sol, 1, axis=2) & sol  # TA layer also claims the soleus voxels whose left neighbour is soleus
    fine = lambda a: np.repeat(np.repeat(a, 2, axis=1), 2, axis=2)  # noqa: E731
    layers = np.stack([fine(grown_ta).astype(np.uint8) * 3, fine(sol).astype(np.uint8) * 7])  # (layer, z, y, x)
    d = np.asarray(AWKWARD["direction"]).reshape(3, 3)
    fine_grid = Grid(tuple(int(n) for n in layers.shape[:0:-1]), (0.45, 0.55, 4.0),
                     tuple(np.asarray(AWKWARD["origin"]) + d @ np.array([-0.225, -0.275, 0.0])), AWKWARD["direction"])
    _write_seg_nrrd(tmp_path / "layers.seg.nrrd", layers, fine_grid, [("tib ant", 3, 0), ("Soleus", 7, 1)])
    lm = read_labels(tmp_path / "layers.seg.nrrd", series.grid)
    assert lm.names == {1: "tib ant", 2: "Soleus"}
    np.testing.assert_array_equal(lm.labels == 2, sol)  # the later segment wins the shared voxels
    np.testing.assert_array_equal(lm.labels == 1, ta)
    assert any("overlapping segments" in w for w in lm.warnings)
    assert any("resampled" in w for w in lm.warnings)


def test_grid_image_round_trip():
    g = Grid((4, 3, 2), AWKWARD["spacing"], AWKWARD["origin"], AWKWARD["direction"])
    img = g.image(np.zeros((2, 3, 4), np.float32))
    assert Grid.of(img) == g
    m = g.ijk_to_lps()
    assert np.allclose(m @ [1, 0, 0, 1], list(img.TransformIndexToPhysicalPoint((1, 0, 0))) + [1])
    assert Grid.from_ijk_to_lps(g.size, m) == g


def test_overlapping_segments_keep_their_own_voxels_in_layers(tmp_path, leg_files):
    """Slicer stores overlapping segments in separate layers; each segment keeps all its voxels (``layers``), the
    merged ``labels`` (for outlines) shows the later segment on top."""
    series = load_dixon(ff=leg_files["ff"])
    labels = leg_volume()["labels"]
    sol = labels == 5
    mg = sol & (np.arange(labels.shape[2]) % 2 == 0)  # MG drawn inside the soleus, in its own layer
    layers = np.stack([mg.astype(np.uint8) * 4, (labels == 1) * 1 + sol * 2]).astype(np.uint8)
    _write_seg_nrrd(tmp_path / "ov.seg.nrrd", layers, series.grid, [("MG", 4, 0), ("TA", 1, 1), ("Soleus", 2, 1)])
    lm = read_labels(tmp_path / "ov.seg.nrrd", series.grid)
    assert lm.layers.shape == (2,) + labels.shape and lm.layers.dtype == np.uint16
    assert lm.names == {1: "MG", 2: "TA", 3: "Soleus"}
    np.testing.assert_array_equal(lm.layers[0] == 1, mg)
    np.testing.assert_array_equal(lm.layers[1] == 3, sol)
    np.testing.assert_array_equal(lm.labels == 3, sol)  # the later segment on top
    assert not (lm.labels == 1).any()
    assert any(f"'MG' and 'Soleus' share {int(mg.sum())} voxels" in w for w in lm.warnings)
    # restricting to a region (one leg) works on every layer
    half = np.zeros(labels.shape, bool)
    half[:, :, : labels.shape[2] // 2 + 4] = True
    np.testing.assert_array_equal(lm.restricted_to(half).layers[0] == 1, mg & half)


def test_seg_nrrd_with_zero_spacing_is_refused_in_one_line(tmp_path, leg_files):
    series = load_dixon(ff=leg_files["ff"])
    grid = series.grid
    _write_seg_nrrd(tmp_path / "z.seg.nrrd", leg_volume()["labels"], grid, [("TA", 1, 0), ("Sol", 5, 0)])
    raw = (tmp_path / "z.seg.nrrd").read_bytes()
    head, sep, body = raw.partition(b"\n\n")
    lines = [b"space directions: (0,0,0) (0,0,0) (0,0,4)" if ln.startswith(b"space directions:") else ln
             for ln in head.split(b"\n")]
    (tmp_path / "z.seg.nrrd").write_bytes(b"\n".join(lines) + sep + body)
    with pytest.raises(InputError, match=r"z.seg.nrrd has an invalid voxel grid \(spacing 0, 0, 4 mm") as info:
        read_labels(tmp_path / "z.seg.nrrd", grid)
    assert "\n" not in str(info.value)


def test_seg_nrrd_names_are_read_exactly_as_utf8(tmp_path, leg_files):
    """Slicer writes segment names into the header as UTF-8 bytes; pynrrd decodes the header as ASCII and drops
    every other byte ("Gastrocnmien latral", a CJK name became empty)."""
    series = load_dixon(ff=leg_files["ff"])
    _write_seg_nrrd(tmp_path / "u.seg.nrrd", leg_volume()["labels"], series.grid,
                    [("NAME_A", 1, 0), ("NAME_B", 5, 0)])
    raw = (tmp_path / "u.seg.nrrd").read_bytes()
    head, sep, body = raw.partition(b"\n\n")
    head = head.replace(b"NAME_A", "Gastrocnémien latéral".encode()).replace(b"NAME_B", "比目鱼肌".encode())
    (tmp_path / "u.seg.nrrd").write_bytes(head + sep + body)
    lm = read_labels(tmp_path / "u.seg.nrrd", series.grid)
    assert lm.names == {1: "Gastrocnémien latéral", 2: "比目鱼肌"}


def test_segmentation_partly_outside_the_image_is_noted_with_its_share(tmp_path, leg_files):
    series = load_dixon(ff=leg_files["ff"])
    labels = leg_volume()["labels"]
    # the same labels on a grid moved 3 slices (12 mm) along z: half of the 6 slices fall outside the image
    d = np.asarray(AWKWARD["direction"]).reshape(3, 3)
    moved = dict(AWKWARD, origin=tuple(np.asarray(AWKWARD["origin"]) + d @ np.array([0.0, 0.0, 12.0])))
    lm = read_labels(write_nrrd(labels, tmp_path / "moved.nrrd", moved), series.grid)
    np.testing.assert_array_equal(lm.labels[3:], labels[:3])
    voxel_ml = np.prod(AWKWARD["spacing"]) / 1000
    whole = np.count_nonzero(labels) * voxel_ml
    assert any(f"only 50% of the segmentation ({whole / 2:.1f} of {whole:.1f} mL) lies inside the image" in w
               for w in lm.warnings), lm.warnings
    fine = read_labels(leg_files["muscles"], series.grid)
    assert not fine.warnings


def test_case_outputs_keep_segment_names_exactly(tmp_path, leg_files, model_files):
    """End to end: accented and CJK segment names of a .seg.nrrd reach texture_scores.csv (UTF-8) and
    prediction.json (round-trips exactly); the accented name is matched to its muscle."""
    import csv
    import json

    from MDTextureLib.modelfile import load_model
    from MDTextureLib.pipeline import CaseInputs, CaseOptions, analyse_case, write_case

    series = load_dixon(ff=leg_files["ff"])
    _write_seg_nrrd(tmp_path / "u.seg.nrrd", leg_volume()["labels"], series.grid, [("NAME_A", 1, 0), ("NAME_B", 5, 0)])
    raw = (tmp_path / "u.seg.nrrd").read_bytes()
    head, sep, body = raw.partition(b"\n\n")
    head = head.replace(b"NAME_A", "Gastrocnémien latéral".encode()).replace(b"NAME_B", "股骨".encode())
    (tmp_path / "u.seg.nrrd").write_bytes(head + sep + body)
    case = analyse_case(CaseInputs(ff=str(leg_files["ff"]), segmentation=str(tmp_path / "u.seg.nrrd")),
                        load_model(model_files))
    out = write_case(case, tmp_path / "out", CaseOptions(report=False))  # DejaVu Sans has no CJK glyphs
    rows = {r["muscle"]: r for r in csv.DictReader(open(out / "texture_scores.csv", encoding="utf-8"))}
    assert rows["LG"]["slices_present"] == "6" and rows["股骨"]["slices_present"] == "6"
    pred = json.loads((out / "prediction.json").read_text(encoding="utf-8"))
    segments = {r["muscle"]: r["segments"] for r in pred["texture_scores"]}
    assert segments["LG"] == ["Gastrocnémien latéral"] and segments["股骨"] == ["股骨"]


def test_segments_exported_one_by_one_pack_into_layers_like_slicer():
    a = np.zeros((2, 4, 4), bool)
    a[:, :2] = True
    b = np.zeros_like(a)
    b[:, 1:3] = True  # overlaps a on row 1
    c = np.zeros_like(a)
    c[:, 3] = True  # overlaps nothing: joins the first layer
    layers = pack_layers({1: a, 2: b, 3: c})
    assert layers.shape == (2, 2, 4, 4) and layers.dtype == np.uint16
    np.testing.assert_array_equal(layers[0] == 1, a)
    np.testing.assert_array_equal(layers[1] == 2, b)
    np.testing.assert_array_equal(layers[0] == 3, c)
