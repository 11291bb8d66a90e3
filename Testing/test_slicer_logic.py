"""The MDTexture module's Logic against real Slicer MRML (the ``slicer-core`` package, no application).

Volumes are written as NRRD files with a rotated direction and a non-zero origin, then read by Slicer's own
``vtkMRMLVolumeArchetypeStorageNode``; the muscles come from a ``.seg.nrrd`` read by Slicer's segmentation storage
node. Every number the Logic puts into the scene is compared with what the engine computes from the same files
through its own readers (SimpleITK, slicerio), so a RAS/LPS or array-order slip shows up as a wrong number.

``slicer-core`` is in the ``test`` extra: without it this file fails at import, it does not skip.
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

import slicer  # slicer-core: real MRML, storage nodes, segmentation logic
import slicer.util

from MDTextureLib import slicer_bridge as sb
from MDTextureLib.constants import CLASSES, MUSCLE_COLORS, MUSCLES
from MDTextureLib.errors import InputError
from MDTextureLib.inference import classify_volume
from MDTextureLib.io import Grid, load_dixon
from MDTextureLib.labels import read_labels
from MDTextureLib.modelfile import build_model
from MDTextureLib.scores import ScoreParameters, canonical_muscle, texture_scores, write_scores_csv

def _register_segmentation_converters():
    """What the application's Segmentations module does at startup (slicer-core alone registers no rules)."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    for rule in ("vtkBinaryLabelmapToClosedSurfaceConversionRule", "vtkClosedSurfaceToBinaryLabelmapConversionRule",
                 "vtkClosedSurfaceToFractionalLabelmapConversionRule",
                 "vtkFractionalLabelmapToClosedSurfaceConversionRule"):
        factory.RegisterConverterRule(getattr(slicer, rule)())


_register_segmentation_converters()

NZ, NY, NX = 6, 44, 52
SPACING = (0.9, 1.1, 5.0)  # x, y, z (anisotropic, so a swapped axis changes every number)
ORIGIN_LPS = (31.5, -47.25, 112.0)
_A = math.radians(20.0)
DIRECTION = (math.cos(_A), -math.sin(_A), 0.0,
             math.sin(_A), math.cos(_A), 0.0,
             0.0, 0.0, 1.0)  # rotated 20 degrees about the scanner's z axis

# Segment names as a user might type them, in a shuffled order: the alias table must resolve each.
SEGMENT_NAMES = {  # label value in the file -> (name, muscle)
    1: ("Soleus_R", "Sol"), 2: ("tib ant", "TA"), 3: ("MG", "MG"), 4: ("peroneus longus", "Per"),
    5: ("gastroc lat", "LG"), 6: ("EDL", "EDL"), 7: ("tibialis posterior", "TP"),
}


# ---------------------------------------------------------------------------------------------------------------
# Synthetic Dixon scan on disk


def _synthetic_arrays():
    """(water, fat, ff percent, labels) as (z, y, x) arrays: a calf-like disc with seven muscle wedges."""
    rng = np.random.default_rng(7)
    z, y, x = np.meshgrid(np.arange(NZ), np.arange(NY), np.arange(NX), indexing="ij")
    cy, cx = NY * 0.55, NX * 0.45  # off-centre, so a flip moves the leg
    r = np.hypot((x - cx) * SPACING[0], (y - cy) * SPACING[1])
    theta = np.arctan2(y - cy, x - cx)
    leg = r < 19.0
    muscle_zone = (r > 4.0) & (r < 15.5)
    labels = np.zeros((NZ, NY, NX), np.uint8)
    wedge = ((theta + np.pi) / (2 * np.pi) * 7).astype(int) % 7
    for value in range(1, 8):
        sel = muscle_zone & (wedge == value - 1)
        if value == 3:  # MG only on the upper half of the volume (absent slices must count)
            sel &= z >= NZ // 2
        labels[sel] = value
    ff = np.zeros((NZ, NY, NX), np.float32)
    ff[leg] = 0.9  # subcutaneous fat and marrow
    for value in range(1, 8):
        ff[labels == value] = 0.04 + 0.06 * value + 0.02 * z[labels == value]
    ff[leg & ~muscle_zone & (r < 4.0)] = 0.85
    total = np.where(leg, 1000.0, 8.0).astype(np.float32)
    fat = total * ff + rng.normal(0, 2.0, ff.shape).astype(np.float32)
    water = total * (1 - ff) + rng.normal(0, 2.0, ff.shape).astype(np.float32)
    ff_percent = np.where(leg, ff * 100.0, 0.0).astype(np.float32)
    return np.abs(water), np.abs(fat), ff_percent, labels


def _write_nrrd(array, path):
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(SPACING)
    img.SetOrigin(ORIGIN_LPS)
    img.SetDirection(DIRECTION)
    sitk.WriteImage(img, str(path), True)


def _read_volume(scene, path, name, node_class="vtkMRMLScalarVolumeNode"):
    """What Slicer's 'Add data' does for a volume, with MRML calls only (no slicer.app)."""
    node = scene.AddNewNodeByClass(node_class, name)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1, path
    node.SetAndObserveStorageNodeID(storage.GetID())
    node.CreateDefaultDisplayNodes()
    return node


def _read_segmentation(scene, path, name):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1, path
    node.SetAndObserveStorageNodeID(storage.GetID())
    node.CreateDefaultDisplayNodes()
    return node


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scan")
    water, fat, ff, labels = _synthetic_arrays()
    _write_nrrd(water, folder / "water.nrrd")
    _write_nrrd(fat, folder / "fat.nrrd")
    _write_nrrd(ff, folder / "ff.nrrd")
    _write_nrrd(labels, folder / "labels.nrrd")
    # The .seg.nrrd is written by Slicer's own segmentation storage node from that labelmap, segments renamed.
    scene = slicer.vtkMRMLScene()
    lm = _read_volume(scene, folder / "labels.nrrd", "labels", "vtkMRMLLabelMapVolumeNode")
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "muscles")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(lm, seg)
    segmentation = seg.GetSegmentation()
    by_label = {}
    for i in range(segmentation.GetNumberOfSegments()):
        s = segmentation.GetSegment(segmentation.GetNthSegmentID(i))
        by_label[s.GetLabelValue()] = s
    assert sorted(by_label) == list(range(1, 8))
    for value, (name, muscle) in SEGMENT_NAMES.items():
        by_label[value].SetName(name)
        by_label[value].SetColor(*MUSCLE_COLORS[muscle])
    storage = seg.CreateDefaultStorageNode()
    storage.SetFileName(str(folder / "muscles.seg.nrrd"))
    assert storage.WriteData(seg) == 1
    return folder


@pytest.fixture(scope="module")
def model():
    return build_model("icam28", seed=0)


@pytest.fixture(scope="module")
def engine(scan_dir, model):
    """What the engine computes from the files, with no Slicer involved."""
    series = load_dixon(ff=scan_dir / "ff.nrrd", water=scan_dir / "water.nrrd", fat=scan_dir / "fat.nrrd")
    result = classify_volume(series, model, device="cpu")
    labelmap = read_labels(scan_dir / "muscles.seg.nrrd", series.grid)
    return series, result, labelmap


def _scene_with_inputs(scan_dir, with_ff=True, views=3):
    scene = slicer.vtkMRMLScene()
    for _ in range(views):  # what the application's layout adds: one composite node per slice view
        scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    water = _read_volume(scene, scan_dir / "water.nrrd", "water")
    fat = _read_volume(scene, scan_dir / "fat.nrrd", "fat")
    ff = _read_volume(scene, scan_dir / "ff.nrrd", "ff") if with_ff else None
    return scene, water, fat, ff


def logic_with_inputs(scan_dir, model):
    """(scene, water, ff, Logic, parameter node) with the scan's Dixon volumes chosen, CPU, and the score parameters
    every scene test of the Logic uses."""
    scene, water, fat, ff = _scene_with_inputs(scan_dir)
    logic = sb.MDTextureLogic(scene)
    logic.setModel(model)
    p = logic.getParameterNode()
    p.water, p.fat, p.ff = water, fat, ff
    p.device = "cpu"
    p.threshold, p.minOverlap, p.minAreaMm2 = 0.35, 0.15, 12.0
    return scene, water, ff, logic, p


@pytest.fixture(scope="module")
def classified(scan_dir, model):
    """One scene taken through Classify, Create muscle segments is not used (the file has them), Compute scores."""
    scene, water, ff, logic, p = logic_with_inputs(scan_dir, model)
    calls = []
    result = logic.classify(p, progress=lambda done, total: calls.append((done, total)))
    p.segmentation = _read_segmentation(scene, scan_dir / "muscles.seg.nrrd", "muscles")
    rows = logic.computeScores(p)
    return dict(scene=scene, logic=logic, p=p, result=result, rows=rows, calls=calls, water=water, ff=ff)


# ---------------------------------------------------------------------------------------------------------------
# Volumes: Slicer's reader and the engine's reader agree


def test_volume_node_grid_and_array_equal_the_engine_reading(scan_dir):
    scene, water, fat, ff = _scene_with_inputs(scan_dir)
    image = sitk.ReadImage(str(scan_dir / "ff.nrrd"))
    itk_grid = Grid.of(image)
    node_grid = sb.grid_of_volume(ff)
    assert node_grid.size == (NX, NY, NZ)
    assert itk_grid.mismatch(node_grid) is None
    np.testing.assert_allclose(node_grid.origin, ORIGIN_LPS, atol=1e-6)
    np.testing.assert_allclose(node_grid.direction, DIRECTION, atol=1e-6)
    # Slicer's IJK-to-RAS is the ITK IJK-to-LPS with x and y negated; the origin in RAS is (-L, -P, S).
    ras = sb.ijk_to_ras(ff)
    np.testing.assert_allclose(ras, sb.ras_matrix_of_grid(itk_grid), atol=1e-9)
    np.testing.assert_allclose(ras[:3, 3], (-ORIGIN_LPS[0], -ORIGIN_LPS[1], ORIGIN_LPS[2]), atol=1e-6)
    # The node's (k, j, i) array is the ITK (z, y, x) array, voxel for voxel.
    np.testing.assert_array_equal(sb.array_of_volume(ff), sitk.GetArrayFromImage(image))


def test_series_from_nodes_equals_load_dixon(scan_dir, engine):
    series_ref = engine[0]
    scene, water, fat, ff = _scene_with_inputs(scan_dir)
    series = sb.series_from_nodes(water=water, fat=fat, ff=ff)
    assert series.ff_unit == series_ref.ff_unit == "percent"
    np.testing.assert_array_equal(series.ff, series_ref.ff)
    np.testing.assert_array_equal(series.water, series_ref.water)
    assert series.grid.mismatch(series_ref.grid) is None
    assert 0.0 <= series.ff.min() and series.ff.max() <= 1.0


def test_derived_ff_volume_when_no_ff_selected(scan_dir, model):
    scene, water, fat, _ = _scene_with_inputs(scan_dir, with_ff=False)
    logic = sb.MDTextureLogic(scene)
    p = logic.getParameterNode()
    p.water, p.fat = water, fat
    series = logic.prepareSeries(p)
    ref = load_dixon(water=scan_dir / "water.nrrd", fat=scan_dir / "fat.nrrd")
    assert p.ff is not None and p.ff.GetName() == "water FF"
    np.testing.assert_allclose(sb.array_of_volume(p.ff), ref.ff, atol=1e-7)
    np.testing.assert_allclose(sb.ijk_to_ras(p.ff), sb.ijk_to_ras(water), atol=0)
    assert series.ff_unit == "derived from water and fat"
    # Muscle voxels of label 2 on slice 0 have FF 0.16 by construction; noise is 0.2 % of the signal.
    labels = _synthetic_arrays()[3]
    assert abs(float(np.median(series.ff[0][labels[0] == 2])) - 0.16) < 0.01


def test_grid_mismatch_is_refused(scan_dir, tmp_path):
    scene, water, fat, ff = _scene_with_inputs(scan_dir)
    img = sitk.ReadImage(str(scan_dir / "fat.nrrd"))
    img.SetSpacing((1.0, 1.1, 5.0))
    sitk.WriteImage(img, str(tmp_path / "fat_other.nrrd"))
    other = _read_volume(scene, tmp_path / "fat_other.nrrd", "fat other")
    with pytest.raises(InputError, match="different voxel grids: spacing"):
        sb.series_from_nodes(water=water, fat=other, ff=ff)
    with pytest.raises(InputError, match="select a fat-fraction volume"):
        sb.series_from_nodes(water=water)


# ---------------------------------------------------------------------------------------------------------------
# Classify: heatmap volumes, probabilities, chart, display


def test_classify_progress_and_probabilities(classified, engine):
    result_ref = engine[1]
    p, result = classified["p"], classified["result"]
    assert classified["calls"][-1] == (NZ, NZ)
    np.testing.assert_allclose(result.probabilities, result_ref.probabilities, atol=1e-6)
    assert p.verdict == result_ref.verdict == CLASSES[int(np.argmax(result_ref.probabilities))]
    probs = p.probabilityDict()
    assert list(probs) == list(CLASSES)
    np.testing.assert_allclose([probs[c] for c in CLASSES], result_ref.probabilities, atol=1e-5)
    assert p.modelName == "icam28-untrained"
    # what the network ran in (the parameter node asked for auto) is recorded, said with the verdict and kept with
    # the score table
    from MDTextureLib.precision import PRECISION_NAMES, resolve_precision

    assert p.precision == "auto" and p.precisionUsed == result.precision == resolve_precision("auto", "cpu")
    assert classified["logic"].summaryText(p).endswith(f"[network in {PRECISION_NAMES[p.precisionUsed]}]")
    assert p.scoreTable.GetAttribute("MDTexture.precision") == p.precisionUsed
    table = p.probabilityTable
    assert table.GetNumberOfRows() == NZ
    assert [table.GetColumnName(i) for i in range(4)] == ["slice", *CLASSES]
    for k in range(NZ):
        assert table.GetTable().GetValue(k, 0).ToInt() == k
        for j, c in enumerate(CLASSES):
            assert table.GetTable().GetValue(k, j + 1).ToDouble() == pytest.approx(
                float(result_ref.slice_probabilities[k, j]), abs=1e-6)
    chart = p.probabilityChart
    assert chart.GetNumberOfPlotSeriesNodes() == 3
    ys = sorted(chart.GetNthPlotSeriesNode(i).GetYColumnName() for i in range(3))
    assert ys == sorted(CLASSES)
    assert chart.GetNthPlotSeriesNode(0).GetTableNode() is table
    assert chart.GetYAxisRange() == (0.0, 1.0)


def test_heatmap_nodes_have_ff_geometry_and_engine_values(classified, engine):
    result_ref = engine[1]
    p, ff = classified["p"], classified["ff"]
    ff_matrix = sb.ijk_to_ras(ff)
    for c in CLASSES:
        node = p.heatmap(c)
        assert node.GetName() == f"ff ICAM {c}"
        assert node.GetAttribute("MDTexture.class") == c
        np.testing.assert_array_equal(sb.ijk_to_ras(node), ff_matrix)
        assert node.GetImageData().GetDimensions() == (NX, NY, NZ)
        arr = slicer.util.arrayFromVolume(node)
        assert arr.dtype == np.float32
        np.testing.assert_allclose(arr, result_ref.heatmap_for(c), atol=1e-5)
        assert arr.max() == pytest.approx(1.0, abs=1e-6) and arr.min() >= 0.0
    # The verdict's map is the one shown; the hottest voxel sits at the same physical point in both worlds.
    assert p.viewClass == result_ref.target_class
    heat = result_ref.heatmap_for(p.viewClass)
    k, j, i = np.unravel_index(int(np.argmax(heat)), heat.shape)
    lps = engine[0].grid.ijk_to_lps() @ np.array([i, j, k, 1.0])
    ras = sb.ijk_to_ras(p.heatmap(p.viewClass)) @ np.array([i, j, k, 1.0])
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-6)


def test_heatmap_display_colours_threshold_and_views(classified):
    scene, logic, p = classified["scene"], classified["logic"], classified["p"]
    p.opacity = 0.6
    heat = logic.showHeatmap(p)
    display = heat.GetDisplayNode()
    color = scene.GetNodeByID(display.GetColorNodeID())
    # slicer-core has no file-based Inferno table, so the Logic made its own from the same map.
    assert color.GetName() == sb.FALLBACK_COLOR_NAME and color.GetNumberOfColors() == 256
    import matplotlib

    ref = matplotlib.colormaps["inferno"]
    for i in (0, 64, 128, 200, 255):
        rgba = [0.0] * 4
        color.GetColor(i, rgba)
        np.testing.assert_allclose(rgba[:3], ref(i / 255.0)[:3], atol=0.02)
    assert display.GetApplyThreshold() == 1
    assert display.GetLowerThreshold() == pytest.approx(sb.DEFAULT_DISPLAY_FLOOR)
    assert (display.GetWindow(), display.GetLevel()) == pytest.approx((1.0, 0.5))
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    assert composites.GetNumberOfItems() == 3
    for n in range(3):
        comp = composites.GetItemAsObject(n)
        assert comp.GetForegroundVolumeID() == heat.GetID()
        assert comp.GetBackgroundVolumeID() == classified["ff"].GetID()
        assert comp.GetForegroundOpacity() == pytest.approx(0.6)
    # Another class's map, over water, with a new opacity.
    other = [c for c in CLASSES if c != p.viewClass][0]
    p.background = "Water"
    shown = logic.showHeatmap(p, other)
    logic.setOpacity(0.25, p)
    assert shown is p.heatmap(other) and p.viewClass == other
    comp = composites.GetItemAsObject(0)
    assert comp.GetForegroundVolumeID() == shown.GetID()
    assert comp.GetBackgroundVolumeID() == classified["water"].GetID()
    assert comp.GetForegroundOpacity() == pytest.approx(0.25) and p.opacity == pytest.approx(0.25)
    # Put things back for the tests that follow.
    p.background = "FF"
    logic.showHeatmap(p, classified["result"].target_class)
    assert len([c for c in range(scene.GetNumberOfNodes())
                if scene.GetNthNode(c).GetName() == sb.FALLBACK_COLOR_NAME]) == 1


def test_cancel_leaves_no_new_nodes(scan_dir, model):
    scene, water, fat, _ = _scene_with_inputs(scan_dir, with_ff=False)
    logic = sb.MDTextureLogic(scene)
    logic.setModel(model)
    p = logic.getParameterNode()
    p.water, p.fat, p.device = water, fat, "cpu"
    before = scene.GetNumberOfNodes()
    with pytest.raises(InterruptedError):
        logic.classify(p, cancel=lambda: True)
    assert scene.GetNumberOfNodes() == before
    assert p.ff is None and p.verdict == "" and all(p.heatmap(c) is None for c in CLASSES)


def test_missing_model_file_is_a_clear_error(scan_dir, tmp_path):
    scene, water, fat, ff = _scene_with_inputs(scan_dir)
    logic = sb.MDTextureLogic(scene)
    p = logic.getParameterNode()
    p.water, p.fat, p.ff = water, fat, ff
    p.modelPath = str(tmp_path / "nothing.json")
    with pytest.raises(InputError, match="model card not found"):
        logic.classify(p)


# ---------------------------------------------------------------------------------------------------------------
# Segmentation -> labelmap, texture scores, table


def test_segmentation_exported_against_ff_equals_the_drawn_labels(classified):
    scene, p = classified["scene"], classified["p"]
    labels, names = sb.labels_from_segmentation(scene, p.segmentation, p.ff)
    truth = _synthetic_arrays()[3]
    assert labels.shape == truth.shape == (NZ, NY, NX)
    # Values follow the segments' order; map them back through the names to compare with the drawn labels.
    back = {value: next(v for v, (n, _m) in SEGMENT_NAMES.items() if n == name) for value, name in names.items()}
    remapped = np.zeros_like(truth)
    for value, original in back.items():
        remapped[labels == value] = original
    np.testing.assert_array_equal(remapped, truth)
    assert scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems() == 0  # temporary node removed


def test_a_segment_larger_than_any_muscle_is_said_with_the_scores(classified, tmp_path):
    """A whole-leg segment drawn as 'TA' is scored (as the engine would) and the log says it is no single muscle,
    as ``mdtexture classify`` does for a labelmap; the drawn muscles get no such note."""
    scene, logic, p = classified["scene"], classified["logic"], classified["p"]
    notes = []
    drawn, log = p.segmentation, logic.log
    logic.log = notes.append
    try:
        logic.computeScores(p)
        assert not any("cross-section" in n for n in notes)
        _write_nrrd((sb.array_of_volume(p.ff) > 0).astype(np.uint8), tmp_path / "leg.nrrd")
        lm = _read_volume(scene, tmp_path / "leg.nrrd", "leg", "vtkMRMLLabelMapVolumeNode")
        whole = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "whole leg")
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(lm, whole)
        whole.GetSegmentation().GetNthSegment(0).SetName("TA")
        p.segmentation = whole
        logic.computeScores(p)
        (note,) = [n for n in notes if "cross-section" in n]
        assert note.startswith("segment 'TA' covers") and "whole leg" in note
    finally:
        logic.log = log
        p.segmentation = drawn
        logic.computeScores(p)


def test_scores_refuse_a_heatmap_of_another_ff_volume(classified, scan_dir):
    """Hostile run: after Classify on one FF volume, another FF on the same grid was selected and the scores came
    back from the first volume's heatmap with the second's FF values, with no word. Each heatmap now refers to the
    FF volume it came from; the scores refuse another one, naming both."""
    scene, logic, p = classified["scene"], classified["logic"], classified["p"]
    ff = p.ff
    other = _read_volume(scene, scan_dir / "ff.nrrd", "ff again")
    p.ff = other
    try:
        with pytest.raises(InputError, match=r"computed from the volume 'ff', not from the selected fat-fraction "
                                             r"volume 'ff again': click Classify again"):
            logic.computeScores(p)
    finally:
        p.ff = ff
        scene.RemoveNode(other)
    assert len(logic.computeScores(p)) == 7  # its own FF again: scored


def test_score_table_equals_engine(classified, engine):
    series_ref, result_ref, labelmap = engine
    p, rows = classified["p"], classified["rows"]
    params = ScoreParameters(threshold=0.35, min_overlap=0.15, min_area_mm2=12.0)
    ref = texture_scores(result_ref.heatmap_for(p.viewClass), labelmap.labels, labelmap.names, series_ref.ff,
                         series_ref.grid.spacing, params)
    assert [r.muscle for r in rows] == list(MUSCLES)
    assert len(rows) == len(ref)
    for got, want in zip(rows, ref):
        assert got.muscle == want.muscle and got.label_value == want.label_value
        assert (got.slices_present, got.slices_highlighted) == (want.slices_present, want.slices_highlighted)
        assert got.texture_score == pytest.approx(want.texture_score, abs=1e-12)
        assert got.mean_ff == pytest.approx(want.mean_ff, abs=1e-4)
        assert got.volume_ml == pytest.approx(want.volume_ml, abs=1e-9)
    by = {r.muscle: r for r in rows}
    # Numbers known from construction: MG is drawn on the upper half only; every wedge is in every slice.
    assert by["MG"].slices_present == NZ - NZ // 2 and by["TA"].slices_present == NZ
    truth = _synthetic_arrays()[3]
    voxel_ml = SPACING[0] * SPACING[1] * SPACING[2] / 1000.0
    assert by["Sol"].volume_ml == pytest.approx(int((truth == 1).sum()) * voxel_ml)
    # TA (label 2): FF = 0.16 + 0.02 z, so its mean over z = 0..5 is 21 %.
    assert by["TA"].mean_ff == pytest.approx(21.0, abs=0.5)
    assert any(r.slices_highlighted > 0 for r in rows)  # the threshold is low enough to matter

    table = p.scoreTable
    assert table.GetName() == "ff texture scores"
    from MDTextureLib.constants import TEXTURE_SCORE_CAVEAT

    assert TEXTURE_SCORE_CAVEAT[1:] in table.GetColumnDescription("texture_score")  # the column's tooltip
    names = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
    assert names == ["muscle", "label_value", "slices_present", "slices_highlighted", "texture_score", "mean_ff",
                     "volume_ml", "threshold", "min_overlap", "min_area_mm2"]
    assert table.GetColumnTitle("texture_score") == "Texture score"
    assert table.GetColumnUnitLabel("volume_ml") == "mL"
    assert table.GetColumnUnitLabel("mean_ff") == "%"
    assert table.GetAttribute("MDTexture.threshold") == "0.35"
    assert table.GetAttribute("MDTexture.minOverlap") == "0.15"
    assert table.GetAttribute("MDTexture.minAreaMm2") == "12.0"
    assert table.GetAttribute("MDTexture.heatmapClass") == p.viewClass
    t = table.GetTable()
    for r, row in enumerate(rows):
        assert t.GetValue(r, 0).ToString() == row.muscle
        assert t.GetValue(r, 2).ToInt() == row.slices_present
        assert t.GetValue(r, 7).ToDouble() == 0.35 and t.GetValue(r, 9).ToDouble() == 12.0
    assert sb.rows_from_table(table) == rows


def test_table_export_and_reread_through_storage_node(classified, engine, tmp_path):
    logic, p, rows = classified["logic"], classified["p"], classified["rows"]
    path = logic.exportScores(str(tmp_path / "scores"), p)
    assert path.endswith("scores.csv") and os.path.exists(tmp_path / "scores.schema.csv")
    with open(path, newline="") as fh:
        exported = list(csv.DictReader(fh))
    # The engine's own CSV writer (used by the command line) says the same, column for column.
    write_scores_csv(rows, tmp_path / "engine.csv", p.scoreParameters())
    with open(tmp_path / "engine.csv", newline="") as fh:
        engine_rows = list(csv.DictReader(fh))
    assert list(exported[0]) == list(engine_rows[0])
    for a, b in zip(exported, engine_rows):
        for key in a:
            if key == "muscle":
                assert a[key] == b[key]
            elif b[key] == "":
                assert a[key].lower() == "nan"
            else:
                assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-4), key
    # Re-read with Slicer's table storage node: types, units and values come back.
    node = slicer.vtkMRMLTableNode()
    storage = slicer.vtkMRMLTableStorageNode()
    storage.SetFileName(path)
    assert storage.ReadData(node) == 1
    assert node.GetTable().GetColumnByName("slices_present").GetClassName() in ("vtkIntArray", "vtkTypeInt32Array")
    assert node.GetColumnUnitLabel("volume_ml") == "mL"
    again = sb.rows_from_table(node)
    assert [r.muscle for r in again] == [r.muscle for r in rows]
    for a, b in zip(again, rows):
        assert (a.slices_present, a.slices_highlighted, a.label_value) == (b.slices_present, b.slices_highlighted,
                                                                           b.label_value)
        assert (a.texture_score is None) == (b.texture_score is None)
        if b.texture_score is not None:
            assert a.texture_score == pytest.approx(b.texture_score, abs=1e-9)
        assert a.volume_ml == pytest.approx(b.volume_ml, rel=1e-9)


def test_create_muscle_segments(scan_dir):
    scene, water, fat, ff = _scene_with_inputs(scan_dir)
    logic = sb.MDTextureLogic(scene)
    p = logic.getParameterNode()
    p.ff = ff
    node = logic.createMuscleSegments(p)
    assert p.segmentation is node and node.GetName() == "ff muscles"
    seg = node.GetSegmentation()
    assert sb.segment_names(node) == list(MUSCLES)
    for i, muscle in enumerate(MUSCLES):
        segment = seg.GetSegment(seg.GetNthSegmentID(i))
        np.testing.assert_allclose(segment.GetColor(), MUSCLE_COLORS[muscle], atol=1e-6)
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is ff
    # The segments live on the FF geometry: a painted voxel exports onto the same FF voxel.
    mask = np.zeros((NZ, NY, NX), np.uint8)
    mask[2, 10:13, 20:24] = 1
    # slicer.util.updateSegmentBinaryLabelmapFromArray needs slicer.modules; paint with the static API instead.
    oriented = slicer.vtkOrientedImageData()
    oriented.SetDimensions(NX, NY, NZ)
    oriented.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    m = vtk.vtkMatrix4x4()
    ff.GetIJKToRASMatrix(m)
    oriented.SetImageToWorldMatrix(m)
    from vtk.util.numpy_support import vtk_to_numpy

    vtk_to_numpy(oriented.GetPointData().GetScalars()).reshape(NZ, NY, NX)[:] = mask
    logic_cls = slicer.vtkSlicerSegmentationsModuleLogic
    assert logic_cls.SetBinaryLabelmapToSegment(oriented, node, "Sol", logic_cls.MODE_REPLACE)
    labels, names = sb.labels_from_segmentation(scene, node, ff)
    assert names[5] == "Sol"
    np.testing.assert_array_equal(labels == 5, mask.astype(bool))
    # Run again on a segmentation that already has two muscles under other names: only the missing five come.
    other = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "mine")
    other.GetSegmentation().AddEmptySegment("a", "Soleus_R")
    other.GetSegmentation().AddEmptySegment("b", "tib ant")
    p.segmentation = other
    logic.createMuscleSegments(p)
    assert sb.segment_names(other) == ["Soleus_R", "tib ant", "EDL", "Per", "TP", "LG", "MG"]
    assert {canonical_muscle(n) for n in sb.segment_names(other)} == set(MUSCLES)


# ---------------------------------------------------------------------------------------------------------------
# Parameter node and scene persistence


def test_parameter_node_defaults_and_singleton():
    scene = slicer.vtkMRMLScene()
    logic = sb.MDTextureLogic(scene)
    p = logic.getParameterNode()
    assert p.node.GetAttribute("ModuleName") == "MDTexture"
    assert (p.threshold, p.minOverlap, p.minAreaMm2) == (0.5, 0.1, 10.0)
    assert (p.device, p.targetClass, p.background, p.modelPath, p.opacity) == ("auto", "auto", "FF", "", 0.5)
    assert p.node.GetParameter("Threshold") == "0.5"
    p.threshold = 0.7
    again = sb.MDTextureLogic(scene).getParameterNode()
    assert again.node is p.node and again.threshold == 0.7
    assert scene.GetNodesByClass("vtkMRMLScriptedModuleNode").GetNumberOfItems() == 1
    assert set(sb.MDTextureParameters.parameter_keys()) >= {"ModelPath", "Device", "TargetClass", "Threshold",
                                                              "MinOverlap", "MinAreaMm2", "Opacity", "ViewClass"}


def test_scene_saved_as_mrb_and_reloaded_keeps_everything(classified, tmp_path):
    scene, p, rows = classified["scene"], classified["p"], classified["rows"]
    p.modelPath = "models/icam28.json"
    p.targetClass = "CMD"
    root = tmp_path / "saved"
    root.mkdir()
    scene.SetRootDirectory(str(root))
    scene.SetURL(str(root / "scene.mrml"))
    assert scene.WriteToMRB(str(tmp_path / "study.mrb"))

    loaded = slicer.vtkMRMLScene()
    cache = slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(str(tmp_path / "cache"))
    io_manager = slicer.vtkDataIOManager()
    io_manager.SetCacheManager(cache)
    loaded.SetDataIOManager(io_manager)
    loaded.SetCacheManager(cache)
    assert loaded.ReadFromMRB(str(tmp_path / "study.mrb"))

    q = sb.MDTextureLogic(loaded).getParameterNode()
    assert q.node is not p.node
    for key in sb.MDTextureParameters.parameter_keys():
        assert q.node.GetParameter(key) == p.node.GetParameter(key), key
    assert (q.threshold, q.minOverlap, q.minAreaMm2) == (0.35, 0.15, 12.0)
    assert q.modelPath == "models/icam28.json" and q.targetClass == "CMD" and q.verdict == p.verdict
    assert q.water.GetName() == "water" and q.ff.GetName() == "ff" and q.segmentation.GetName() == "muscles"
    np.testing.assert_array_equal(sb.array_of_volume(q.ff), sb.array_of_volume(p.ff))
    for c in CLASSES:
        np.testing.assert_allclose(sb.ijk_to_ras(q.heatmap(c)), sb.ijk_to_ras(q.ff), atol=1e-9)
        np.testing.assert_allclose(sb.array_of_volume(q.heatmap(c)), sb.array_of_volume(p.heatmap(c)), atol=1e-6)
        assert q.heatmap(c).GetAttribute("MDTexture.class") == c
    again = sb.rows_from_table(q.scoreTable)
    assert [r.muscle for r in again] == [r.muscle for r in rows]
    for a, b in zip(again, rows):
        assert (a.slices_present, a.slices_highlighted) == (b.slices_present, b.slices_highlighted)
        assert (a.texture_score is None and b.texture_score is None) or a.texture_score == pytest.approx(
            b.texture_score, abs=1e-9)
    assert q.scoreTable.GetAttribute("MDTexture.threshold") == "0.35"
    assert q.probabilityChart.GetNumberOfPlotSeriesNodes() == 3
    assert sb.segment_names(q.segmentation) == [n for n, _m in SEGMENT_NAMES.values()]
    # Scores computed on the reloaded scene equal the saved table.
    recomputed = sb.MDTextureLogic(loaded).computeScores(q)
    assert recomputed == rows
