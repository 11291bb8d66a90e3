"""Scene-level operations of the Slicer Logic (issue 13): what each leaves in the scene, per-segment scores with
overlaps, terminology, outputs folder, colour legend, DICOM roles, the Segment Statistics plugin, the phantom.
Real MRML (slicer-core); no Qt."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import vtk

import slicer
import slicer.util

from MDTextureLib import slicer_bridge as sb
from MDTextureLib.constants import CLASSES, MUSCLES
from MDTextureLib.errors import InputError
from MDTextureLib.scores import ScoreParameters, texture_scores

from slicer_widget_fixtures import STUBS, application_scene, register_segmentation_converters

register_segmentation_converters()

SHAPE = (5, 20, 24)  # z, y, x
SPACING = (1.2, 0.8, 4.0)


def _volume(scene, array, name, node_class="vtkMRMLScalarVolumeNode"):
    node = scene.AddNewNodeByClass(node_class, name)
    node.SetSpacing(*SPACING)
    node.SetOrigin(10.0, -20.0, 30.0)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.CreateDefaultDisplayNodes()
    return node


def _segment(segmentation, reference, name, mask):
    """A segment holding ``mask`` (z, y, x) on the reference grid, added with MRML calls only."""
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(*mask.shape[::-1])
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    m = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(m)
    image.SetImageToWorldMatrix(m)
    from vtk.util.numpy_support import vtk_to_numpy

    vtk_to_numpy(image.GetPointData().GetScalars()).reshape(mask.shape)[:] = mask.astype(np.uint8)
    return segmentation.AddSegmentFromBinaryLabelmapRepresentation(image, name, [0.5, 0.5, 0.5])


@pytest.fixture
def scored_scene():
    """FF, a heatmap (set as classified), and two OVERLAPPING muscle segments drawn on the FF grid."""
    scene = application_scene()
    logic = sb.MDTextureLogic(scene)
    p = logic.getParameterNode()
    ff = np.full(SHAPE, 0.1, np.float32)
    ff[:, :, 12:] = 0.5
    p.ff = _volume(scene, ff, "ff")
    heat = np.zeros(SHAPE, np.float32)
    heat[:, :10, :] = 0.9  # the top half is highlighted
    p.setHeatmap("DMD", _volume(scene, heat, "ff ICAM DMD"))
    p.viewClass = "DMD"
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "muscles")
    seg.SetReferenceImageGeometryParameterFromVolumeNode(p.ff)
    ta = np.zeros(SHAPE, bool)
    ta[:, 2:12, 2:14] = True  # 10 x 12 per slice; rows 2..9 of it highlighted
    sol = np.zeros(SHAPE, bool)
    sol[:, 8:18, 8:22] = True  # overlaps TA on rows 8..11, columns 8..13
    sol[3:, ...] = False  # Sol on slices 0-2 only
    _segment(seg, p.ff, "tibialis anterior", ta)
    _segment(seg, p.ff, "Soleus", sol)
    p.segmentation = seg
    return types.SimpleNamespace(scene=scene, logic=logic, p=p, ta=ta, sol=sol, ff=ff, heat=heat)


def _node_names(scene):
    return sorted(scene.GetNthNode(i).GetName() or "" for i in range(scene.GetNumberOfNodes()))


def test_overlapping_segments_are_each_scored_on_their_own_mask(scored_scene):
    """Finding 6: one merged export gave the overlap to one segment only."""
    s = scored_scene
    assert (s.ta & s.sol).sum() == 3 * 4 * 6  # they do overlap
    rows = {r.muscle: r for r in s.logic.computeScores(s.p)}
    voxel_ml = float(np.prod(SPACING)) / 1000.0
    assert rows["TA"].volume_ml == pytest.approx(s.ta.sum() * voxel_ml)
    assert rows["Sol"].volume_ml == pytest.approx(s.sol.sum() * voxel_ml)
    params = s.p.scoreParameters()
    for muscle, mask in (("TA", s.ta), ("Sol", s.sol)):
        want = next(r for r in texture_scores(s.heat, mask.astype(np.uint8), {1: muscle}, s.ff, SPACING, params)
                    if r.muscle == muscle)
        assert rows[muscle] == want
    # Known by construction: TA has 8 of its 10 rows highlighted on every slice (80 % >= 10 %): score 1 on 5 slices.
    assert (rows["TA"].slices_present, rows["TA"].slices_highlighted, rows["TA"].texture_score) == (5, 5, 1.0)
    # Sol: rows 8..9 of 8..17 highlighted = 20 % on slices 0-2.
    assert (rows["Sol"].slices_present, rows["Sol"].texture_score) == (3, 1.0)
    assert rows["TA"].mean_ff == pytest.approx(100 * (0.1 * 10 + 0.5 * 2) / 12, abs=1e-4)


def test_scores_leave_no_colour_table_or_other_node_behind(scored_scene):
    """Finding 3: every Compute texture scores added a '<labelmap>_ColorTable' node."""
    s = scored_scene
    before = _node_names(s.scene)
    s.logic.computeScores(s.p)
    s.logic.computeScores(s.p)  # twice: the same table is reused
    added = sorted(set(_node_names(s.scene)) - set(before))
    assert added == ["ff texture scores"]
    assert not any(n.endswith("_ColorTable") for n in _node_names(s.scene))


class _SceneRecordingCollections:
    """The scene, with every collection GetNodesByClass hands out kept, to look at its reference count."""

    def __init__(self, scene):
        self._scene, self.collections = scene, []

    def GetNodesByClass(self, class_name):
        collection = self._scene.GetNodesByClass(class_name)
        self.collections.append(collection)
        return collection

    def __getattr__(self, name):
        return getattr(self._scene, name)


def test_opacity_changes_release_the_node_collections():
    """Finding 7: GetNodesByClass without UnRegister leaked one vtkCollection per opacity-slider tick."""
    scene = application_scene()
    recording = _SceneRecordingCollections(scene)
    logic = sb.MDTextureLogic(recording)
    logic.setOpacity(0.3)
    assert len(recording.collections) == 1
    # Only our own reference is left; the leak showed as 2 (the C++ New() was never released).
    assert recording.collections[0].GetReferenceCount() == 1
    for comp in sb.nodes_of_class(scene, "vtkMRMLSliceCompositeNode"):
        assert comp.GetForegroundOpacity() == pytest.approx(0.3)


def test_parameter_node_keeps_its_module_name_after_a_scene_close():
    scene = application_scene()
    logic = sb.MDTextureLogic(scene)
    p = logic.getParameterNode()
    p.threshold = 0.7
    scene.Clear(0)  # File / Close scene keeps singletons but resets them
    q = logic.getParameterNode()
    assert q.node.GetAttribute("ModuleName") == "MDTexture"
    assert q.threshold == ScoreParameters().threshold and q.node.GetName() == "MDTexture"


def test_classify_here_with_the_input_removed_midway_is_a_clear_error(scored_scene):
    """Finding 5 (in-process path): the scene changes while the engine runs (events pumped between batches)."""
    from MDTextureLib.modelfile import build_model

    s = scored_scene
    s.logic.setModel(build_model("icam28", seed=0))
    s.p.device = "cpu"
    ff = s.p.ff

    def progress(done, total):
        if done == 0 and s.scene.GetNodeByID(ff.GetID()) is not None:
            s.scene.RemoveNode(ff)
    with pytest.raises(InputError, match="fat-fraction volume was removed or replaced while classifying"):
        s.logic.classify(s.p, progress=progress)
    assert s.p.verdict == "" and s.p.probabilityTable is None


def test_created_segments_carry_standard_terminology():
    scene = application_scene()
    logic = sb.MDTextureLogic(scene)
    p = logic.getParameterNode()
    p.ff = _volume(scene, np.zeros(SHAPE, np.float32), "ff")
    node = logic.createMuscleSegments(p)
    seg = node.GetSegmentation()
    for i in range(seg.GetNumberOfSegments()):
        tag = vtk.reference("")
        assert seg.GetSegment(seg.GetNthSegmentID(i)).GetTag("TerminologyEntry", tag)
        parts = str(tag).split("~")
        assert len(parts) == 7
        assert parts[1:3] == ["SCT^123037004^Anatomical Structure", "SCT^102292000^Muscle of lower limb"]
        assert parts[5] == "SCT^30021000^Lower leg"


def test_outputs_are_grouped_in_one_subject_hierarchy_folder(scored_scene):
    s = scored_scene
    s.logic.computeScores(s.p)
    folder = s.logic.groupOutputs(s.p)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(s.scene)
    assert sh.GetItemName(folder) == "MDTexture ff"
    for node in (s.p.heatmap("DMD"), s.p.scoreTable):
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == folder
    assert sh.GetItemParent(sh.GetItemByDataNode(s.p.ff)) != folder  # the input stays where it was
    assert s.logic.groupOutputs(s.p) == folder  # one folder, reused


def test_heatmap_shows_with_a_colour_legend(scored_scene):
    s = scored_scene
    heat = s.logic.showHeatmap(s.p)
    legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(heat)
    assert legend is not None and legend.GetVisibility() and legend.GetTitleText() == "ICAM DMD"
    s.logic.showHeatmap(s.p)
    assert len(sb.nodes_of_class(s.scene, "vtkMRMLColorLegendDisplayNode")) == 1


@pytest.mark.parametrize("image_type, description, role", [
    ("DERIVED\\PRIMARY\\DIXON\\WATER", "t1_vibe_dixon_tra_W", "water"),
    ("DERIVED\\PRIMARY\\DIXON\\FAT", "t1_vibe_dixon_tra_F", "fat"),
    ("DERIVED\\PRIMARY\\FF\\FAT_FRACTION", "", "ff"),
    ("ORIGINAL\\PRIMARY\\M\\IN_PHASE", "dixon W", None),  # an in-phase image is none of the three
    ("ORIGINAL\\PRIMARY\\M", "WATER: mDIXON", "water"),
    ("", "leg fat fraction", "ff"),
    ("", "T2 STIR", None),
])
def test_dixon_role_from_dicom_tags(image_type, description, role):
    assert sb.dixon_role(image_type, description) == role


def test_inputs_picked_by_dicom_tags_before_names(monkeypatch):
    scene = application_scene()
    water = _volume(scene, np.zeros(SHAPE, np.float32), "601: series A")
    fat = _volume(scene, np.zeros(SHAPE, np.float32), "602: series B")
    named = _volume(scene, np.zeros(SHAPE, np.float32), "water (another scan)")
    files = {"1.2.3.1": "/dicom/a.dcm", "1.2.3.2": "/dicom/b.dcm"}
    tags = {("/dicom/a.dcm", "0008,0008"): "DERIVED\\PRIMARY\\DIXON\\WATER",
            ("/dicom/b.dcm", "0008,0008"): "DERIVED\\PRIMARY\\DIXON\\FAT"}
    water.SetAttribute("DICOM.instanceUIDs", "1.2.3.1 1.2.3.9")
    fat.SetAttribute("DICOM.instanceUIDs", "1.2.3.2")
    database = types.SimpleNamespace(fileForInstance=files.get,
                                     fileValue=lambda path, tag: tags.get((path, tag), ""))
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    p = sb.MDTextureLogic(scene).getParameterNode()
    found = sb.MDTextureLogic(scene).guessInputs(p)
    assert found == {"water": water, "fat": fat} and p.water is water and p.fat is fat and p.ff is None
    assert named is not p.water


def test_segment_statistics_plugin_reports_the_table_numbers(scored_scene):
    sys.path.insert(0, str(STUBS))
    try:
        from SegmentStatisticsPlugins import SegmentStatisticsPluginBase
    finally:
        sys.path.remove(str(STUBS))
    from MDTextureLib.slicer_bridge.segment_statistics import plugin_class

    s = scored_scene
    rows = {r.muscle: r for r in s.logic.computeScores(s.p)}
    plugin = plugin_class(SegmentStatisticsPluginBase)()
    assert type(plugin).__name__ == "MDTextureSegmentStatisticsPlugin"
    stats_parameters = s.scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "SegmentStatistics")
    stats_parameters.SetParameter("Segmentation", s.p.segmentation.GetID())
    plugin.setParameterNode(stats_parameters)
    assert stats_parameters.GetParameter("MDTextureSegmentStatisticsPlugin.texture_score.enabled") == "True"
    info = plugin.getMeasurementInfo("texture_score")
    assert info["name"] == "Texture score" and info["units"] == "" and "Eq. 5" in info["description"]
    from MDTextureLib.constants import TEXTURE_SCORE_CAVEAT

    assert TEXTURE_SCORE_CAVEAT in info["description"]  # the measurement says what it is not
    assert plugin.getMeasurementInfo("slices_present")["units"] == "slices"
    seg = s.p.segmentation.GetSegmentation()
    old_scene = getattr(slicer, "mrmlScene", None)
    slicer.mrmlScene = s.scene  # the plugin, like Slicer's own, works on the application's scene
    try:
        for i, muscle in enumerate(("TA", "Sol")):
            got = plugin.computeStatistics(seg.GetNthSegmentID(i))
            assert got == {"texture_score": rows[muscle].texture_score,
                           "slices_present": rows[muscle].slices_present,
                           "slices_highlighted": rows[muscle].slices_highlighted}
        stats_parameters.SetParameter("MDTextureSegmentStatisticsPlugin.texture_score.enabled", "False")
        assert "texture_score" not in plugin.computeStatistics(seg.GetNthSegmentID(0))
    finally:
        if old_scene is None:
            del slicer.mrmlScene
        else:
            slicer.mrmlScene = old_scene


def test_phantom_enters_the_scene_with_its_ground_truth():
    scene = application_scene()
    nodes = sb.load_phantom(scene, "CMD", seed=3, n_slices=4, matrix=64, pixel_mm=3.0)
    scan = nodes["scan"]
    assert scan.truth["class"] == "CMD"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(nodes["ff"]), scan.ff)
    grid = sb.grid_of_volume(nodes["ff"])
    np.testing.assert_allclose(grid.spacing, scan.spacing_mm)
    np.testing.assert_allclose(grid.origin, scan.origin_mm)
    masks = sb.segment_masks(nodes["segmentation"], nodes["ff"])
    assert [n for n, _m in masks] == list(MUSCLES)
    for value, (_name, mask) in enumerate(masks, start=1):
        np.testing.assert_array_equal(mask, scan.labels == value)
    assert not any(n.endswith("labels") or n.endswith("_ColorTable") for n in _node_names(scene))
    assert set(CLASSES) >= {scan.truth["class"]}


def test_scores_of_the_normal_map_say_they_are_not_disease_texture(scored_scene):
    """Texture scores computed on the heatmap of the class normal (the verdict of a normal scan, or the class the user
    shows) are read as disease texture; the Logic says what they are, once per computation, and not for DMD."""
    s = scored_scene
    notes = []
    s.logic.log = notes.append
    s.logic.computeScores(s.p)
    assert notes == []
    s.p.setHeatmap("normal", s.p.heatmap("DMD"))
    s.p.viewClass = "normal"
    s.logic.computeScores(s.p)
    assert len(notes) == 1 and "heatmap of the class normal" in notes[0] and "not disease texture" in notes[0]
