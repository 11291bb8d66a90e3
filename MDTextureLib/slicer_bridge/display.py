"""Heatmap volumes and their display: colour table, threshold, slice-view layers, colour legend, layout."""

from __future__ import annotations

import numpy as np

import slicer

from ..errors import InputError
from .volumes import ATTRIBUTE_PREFIX, grid_of_volume, nodes_of_class, set_volume_array

#: Heatmap voxels below this value are transparent in the slice views (display only, not the score threshold).
DEFAULT_DISPLAY_FLOOR = 0.1

#: Slicer's file-based Inferno table (present in the application, absent from slicer-core).
SLICER_INFERNO_ID = "vtkMRMLColorTableNodeFileInferno.txt"
FALLBACK_COLOR_NAME = "MDTexture Inferno"

# Matplotlib's "inferno" colour map sampled at 33 evenly spaced points (RGB 0..1); linear interpolation between
# them stays within 0.02 of the full map. Used only where Slicer's own Inferno table is missing.
_INFERNO_ANCHORS = (
    (0.001, 0.000, 0.014), (0.014, 0.011, 0.072), (0.042, 0.028, 0.141), (0.082, 0.043, 0.215),
    (0.129, 0.047, 0.291), (0.183, 0.040, 0.355), (0.238, 0.037, 0.396), (0.291, 0.046, 0.419),
    (0.342, 0.062, 0.429), (0.391, 0.081, 0.433), (0.441, 0.099, 0.432), (0.491, 0.117, 0.426),
    (0.541, 0.135, 0.415), (0.591, 0.153, 0.400), (0.640, 0.171, 0.381), (0.689, 0.192, 0.358),
    (0.736, 0.216, 0.330), (0.781, 0.243, 0.300), (0.822, 0.275, 0.266), (0.861, 0.312, 0.231),
    (0.894, 0.353, 0.194), (0.923, 0.399, 0.155), (0.947, 0.449, 0.115), (0.965, 0.502, 0.074),
    (0.978, 0.558, 0.035), (0.986, 0.616, 0.026), (0.988, 0.675, 0.065), (0.984, 0.736, 0.130),
    (0.975, 0.798, 0.206), (0.961, 0.859, 0.298), (0.948, 0.917, 0.411), (0.955, 0.966, 0.540),
    (0.988, 0.998, 0.645),
)


#: Slicer's four-up layout with a table and a plot view (vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView): the
#: slice views, the score table and the probability plot on one screen.
LAYOUT_FOUR_UP_PLOT_TABLE = 38


#: How each overlay is named in node names and legend titles.
OVERLAY_TITLES = {"icam": "ICAM", "fat": "fat attribution"}

_METHODS = {
    "icam": "ICAM (Cai et al. Eq. 2), ReLU, 0 outside the body, scaled to [0, 1] by its maximum inside the leg on each "
            "axial slice",
    "fat": "fat attribution (gradient of the class logit x the slice's fat against a fat-free slice), ReLU, "
           "scaled to [0, 1] like the ICAM heatmap; not used for the texture scores",
}


def heatmap_name(ff_node, class_name: str, overlay: str = "icam") -> str:
    return f"{ff_node.GetName()} {OVERLAY_TITLES[overlay]} {class_name}"


def inferno_rgb(n: int = 256) -> np.ndarray:
    """(n, 3) RGB in 0..1 interpolated from the inferno anchors."""
    anchors = np.asarray(_INFERNO_ANCHORS)
    xs = np.linspace(0.0, 1.0, len(anchors))
    fine = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(fine, xs, anchors[:, c]) for c in range(3)], axis=1)


def heatmap_color_node(scene):
    """Slicer's Inferno colour table when the scene has it, else a user table made once from the same map."""
    node = scene.GetNodeByID(SLICER_INFERNO_ID)
    if node is not None:
        return node
    node = scene.GetSingletonNode(FALLBACK_COLOR_NAME, "vtkMRMLColorTableNode")
    if node is not None:
        return node
    node = slicer.vtkMRMLColorTableNode()
    node.SetName(FALLBACK_COLOR_NAME)
    node.SetSingletonTag(FALLBACK_COLOR_NAME)
    node.SetTypeToUser()
    rgb = inferno_rgb(256)
    node.SetNumberOfColors(len(rgb))
    for i, (r, g, b) in enumerate(rgb):
        node.SetColor(i, f"inferno{i:03d}", float(r), float(g), float(b), 1.0)
    node.SetAttribute("Category", "MDTexture")
    scene.AddNode(node)
    return node


def style_heatmap(scene, heat_node, floor: float = DEFAULT_DISPLAY_FLOOR) -> None:
    """Inferno, fixed 0..1 window, voxels below ``floor`` transparent, smooth interpolation."""
    if heat_node.GetDisplayNode() is None:
        heat_node.CreateDefaultDisplayNodes()
    display = heat_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(heatmap_color_node(scene).GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.AutoThresholdOff()
    display.SetThreshold(float(floor), 1.0)
    display.ApplyThresholdOn()
    display.SetInterpolate(1)


#: The node reference from a heatmap volume to the FF volume it was computed from.
SOURCE_FF_REFERENCE = "MDTextureSourceFF"


def heatmap_node(scene, ff_node, heatmap_zyx: np.ndarray, class_name: str, node=None, floor=DEFAULT_DISPLAY_FLOOR,
                 model_name: str = "", model_sha256: str = "", overlay: str = "icam"):
    """The ICAM heatmap (``overlay`` "icam") or fat attribution ("fat") of ``class_name`` as a volume with exactly
    the FF volume's geometry."""
    grid = grid_of_volume(ff_node)
    if tuple(heatmap_zyx.shape) != grid.shape_zyx:
        raise InputError(f"heatmap shape {heatmap_zyx.shape} differs from the FF volume {grid.shape_zyx}")
    node = set_volume_array(scene, node, heatmap_zyx.astype(np.float32), ff_node,
                            heatmap_name(ff_node, class_name, overlay))
    node.SetAttribute(ATTRIBUTE_PREFIX + "class", class_name)
    node.SetAttribute(ATTRIBUTE_PREFIX + "model", model_name)
    node.SetAttribute(ATTRIBUTE_PREFIX + "modelSha256", model_sha256)
    node.SetAttribute(ATTRIBUTE_PREFIX + "overlay", overlay)
    node.SetAttribute(ATTRIBUTE_PREFIX + "method", _METHODS[overlay])
    # which FF volume the map was computed from (a reference, so a saved and reloaded scene keeps it): the scores
    # refuse a heatmap of one volume with the FF values of another
    node.SetNodeReferenceID(SOURCE_FF_REFERENCE, ff_node.GetID())
    style_heatmap(scene, node, floor)
    return node


def show_in_slice_views(scene, background_node, foreground_node, opacity: float) -> int:
    """Background and foreground (with opacity) in every slice view of the scene; returns the number of views."""
    composites = nodes_of_class(scene, "vtkMRMLSliceCompositeNode")
    for comp in composites:
        if background_node is not None:
            comp.SetBackgroundVolumeID(background_node.GetID())
        comp.SetForegroundVolumeID(foreground_node.GetID() if foreground_node is not None else None)
        comp.SetForegroundOpacity(float(opacity))
    return len(composites)


def set_foreground_opacity(scene, opacity: float) -> None:
    for comp in nodes_of_class(scene, "vtkMRMLSliceCompositeNode"):
        comp.SetForegroundOpacity(float(opacity))


def show_color_legend(heat_node, title: str = "ICAM heatmap"):
    """Slicer's colour legend (the bar with its 0..1 scale) beside the heatmap in the slice views; made once and
    reused. Returns the legend display node, or None where the scene cannot make one (the Colors module registers
    the node class; slicer-core alone does not)."""
    scene = heat_node.GetScene()
    if scene is None or not scene.IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):
        return None
    legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(heat_node)
    if legend is None:
        legend = slicer.vtkSlicerColorLogic.AddDefaultColorLegendDisplayNode(heat_node)
    if legend is None:
        return None
    legend.SetTitleText(title)
    legend.SetLabelFormat("%.1f")
    legend.SetVisibility(True)
    return legend
