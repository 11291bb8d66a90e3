"""The fat attribution map in the module's Logic (real MRML, slicer-core): one volume per class on the FF grid with
the engine's values, shown as the overlay on request, never used for the texture scores.

The scan, model and helpers are those of ``test_slicer_logic.py`` (a rotated, anisotropic grid read by Slicer's own
storage nodes), so a geometry slip shows up as a wrong number here too.
"""

from __future__ import annotations

import numpy as np
import pytest

import slicer

from MDTextureLib import slicer_bridge as sb
from MDTextureLib.constants import CLASSES
from MDTextureLib.errors import InputError
from MDTextureLib.inference import classify_volume
from MDTextureLib.io import load_dixon

from test_slicer_logic import NX, NY, NZ, _read_segmentation, logic_with_inputs, model, scan_dir  # noqa: F401


def _logic_on(scan_dir, model, fat_map):  # noqa: F811
    scene, _water, _ff, logic, p = logic_with_inputs(scan_dir, model)
    scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())  # what the Colors module does in the app
    p.fatMap = fat_map
    return scene, logic, p


@pytest.fixture(scope="module")
def fat_classified(scan_dir, model):  # noqa: F811
    scene, logic, p = _logic_on(scan_dir, model, fat_map=True)
    result = logic.classify(p)
    p.segmentation = _read_segmentation(scene, scan_dir / "muscles.seg.nrrd", "muscles")
    rows = logic.computeScores(p)
    return dict(scene=scene, logic=logic, p=p, result=result, rows=rows)


@pytest.fixture(scope="module")
def engine_fat(scan_dir, model):  # noqa: F811
    series = load_dixon(ff=scan_dir / "ff.nrrd", water=scan_dir / "water.nrrd", fat=scan_dir / "fat.nrrd")
    return classify_volume(series, model, device="cpu", fat_map=True)


def test_fat_parameters_default_off_and_read_back_as_booleans():
    p = sb.MDTextureLogic(slicer.vtkMRMLScene()).getParameterNode()
    assert p.fatMap is False and p.overlay == "icam"
    p.fatMap = True
    assert p.fatMap is True and p.node.GetParameter("FatMap") == "True"
    p.fatMap = False  # stored as the text "False", which bool() alone would read as True
    assert p.fatMap is False
    assert {"FatMap", "Overlay"} <= set(sb.MDTextureParameters.parameter_keys())


def test_fat_map_volumes_have_ff_geometry_and_engine_values(fat_classified, engine_fat):
    p = fat_classified["p"]
    ff_matrix = sb.ijk_to_ras(p.ff)
    for c in CLASSES:
        node = p.fatHeatmap(c)
        assert node.GetName() == f"ff fat attribution {c}"
        assert node.GetAttribute("MDTexture.class") == c and node.GetAttribute("MDTexture.overlay") == "fat"
        np.testing.assert_array_equal(sb.ijk_to_ras(node), ff_matrix)  # spacing, origin and direction
        assert node.GetImageData().GetDimensions() == (NX, NY, NZ)
        fat = slicer.util.arrayFromVolume(node)
        want = engine_fat.fat_heatmap_for(c)
        assert fat.dtype == np.float32 and fat.max() > 0
        np.testing.assert_allclose(fat, want, atol=1e-5)
        # not the ICAM under another name: the two maps differ somewhere inside the body
        assert np.abs(fat - slicer.util.arrayFromVolume(p.heatmap(c))).max() > 0.05
    # the ICAM volumes are still the engine's ICAM
    np.testing.assert_allclose(slicer.util.arrayFromVolume(p.heatmap(p.viewClass)),
                               engine_fat.heatmap_for(p.viewClass), atol=1e-5)


def test_fat_overlay_is_shown_with_its_legend_and_the_scores_stay_the_icams(fat_classified):
    scene, logic, p, rows = (fat_classified[k] for k in ("scene", "logic", "p", "rows"))
    shown = logic.showHeatmap(p, overlay="fat")
    fat = p.fatHeatmap(p.viewClass)
    assert shown is fat and p.overlay == "fat" and logic.currentOverlay(p) is fat
    composites = sb.nodes_of_class(scene, "vtkMRMLSliceCompositeNode")
    assert all(comp.GetForegroundVolumeID() == fat.GetID() for comp in composites)
    legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(fat)
    assert legend.GetTitleText() == f"fat attribution {p.viewClass}" and legend.GetVisibility()
    assert fat.GetDisplayNode().GetLowerThreshold() == pytest.approx(p.displayFloor)
    # Texture scores with the fat overlay on screen: the ICAM's table, unchanged.
    assert logic.currentHeatmap(p) is p.heatmap(p.viewClass)
    assert logic.computeScores(p) == rows
    assert p.scoreTable.GetAttribute("MDTexture.heatmap") == p.heatmap(p.viewClass).GetName()
    other = [c for c in CLASSES if c != p.viewClass][0]
    assert logic.showHeatmap(p, other) is p.fatHeatmap(other)  # another class keeps the chosen overlay
    back = logic.showHeatmap(p, fat_classified["result"].target_class, overlay="icam")
    assert back is p.heatmap(p.viewClass) and not legend.GetVisibility()
    assert slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(back).GetTitleText() == f"ICAM {p.viewClass}"
    with pytest.raises(InputError, match="unknown overlay"):
        logic.showHeatmap(p, overlay="gradcam")


def test_classify_without_the_fat_map_removes_the_earlier_one_and_shows_the_icam(scan_dir, model):  # noqa: F811
    scene, logic, p = _logic_on(scan_dir, model, fat_map=True)
    logic.classify(p)
    logic.showHeatmap(p, overlay="fat")
    old = [p.fatHeatmap(c).GetID() for c in CLASSES]
    p.fatMap = False
    logic.classify(p)  # a new run without it: the old fat maps belong to another run and must not stay
    assert all(p.fatHeatmap(c) is None and scene.GetNodeByID(i) is None for c, i in zip(CLASSES, old))
    assert p.overlay == "icam" and logic.currentOverlay(p) is p.heatmap(p.viewClass)
    view_class = p.viewClass
    with pytest.raises(InputError, match="Fat attribution map"):
        logic.showHeatmap(p, [c for c in CLASSES if c != view_class][0], overlay="fat")
    assert (p.overlay, p.viewClass) == ("icam", view_class)  # refused: nothing changed
