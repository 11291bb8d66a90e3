"""The 3D Slicer side of MDTexture without Qt: MRML nodes <-> engine, and the module's Logic.

Everything the MDTexture module does to the scene lives here, so it runs (and is tested) with Slicer's core
libraries alone: the ``slicer-core`` package outside the application, or the application itself. This module
imports neither ``qt`` nor ``ctk``; torch is imported only when a model is loaded or a volume is classified, so the
module's panel opens before torch is installed.

Geometry: Slicer volume nodes are in RAS, the engine (ITK) is in LPS. The voxel array of a volume node
(``slicer.util.arrayFromVolume``) is indexed (k, j, i), which is the engine's (z, y, x) for the same IJK, so arrays
are never transposed; only the IJK-to-physical matrix changes sign on its first two rows (RAS = diag(-1,-1,1) LPS).
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Optional

import numpy as np
import vtk

import slicer
import slicer.util

from .constants import CLASSES, MUSCLE_COLORS, MUSCLE_FULL_NAMES, MUSCLES
from .errors import InputError
from .io import DixonSeries, Grid, normalise_ff, series_from_arrays
from .scores import COLUMNS, MuscleScore, ScoreParameters, canonical_muscle, texture_scores

MODULE_NAME = "MDTexture"
ATTRIBUTE_PREFIX = "MDTexture."
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse

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

# Texture-score table: engine column name -> (title shown in Slicer, unit, VTK array class).
TABLE_COLUMNS = {
    "muscle": ("Muscle", "", vtk.vtkStringArray),
    "label_value": ("Label value", "", vtk.vtkIntArray),
    "slices_present": ("Slices present", "", vtk.vtkIntArray),
    "slices_highlighted": ("Slices highlighted", "", vtk.vtkIntArray),
    "texture_score": ("Texture score", "", vtk.vtkDoubleArray),
    "mean_ff": ("Mean FF", "%", vtk.vtkDoubleArray),
    "volume_ml": ("Volume", "mL", vtk.vtkDoubleArray),
    "threshold": ("Heatmap threshold", "", vtk.vtkDoubleArray),
    "min_overlap": ("Minimum overlap", "", vtk.vtkDoubleArray),
    "min_area_mm2": ("Minimum area", "mm2", vtk.vtkDoubleArray),
}
PARAMETER_COLUMNS = ("threshold", "min_overlap", "min_area_mm2")
assert tuple(TABLE_COLUMNS) == COLUMNS + PARAMETER_COLUMNS

PLOT_COLORS = {"DMD": (0.85, 0.20, 0.15), "CMD": (0.15, 0.45, 0.85), "normal": (0.20, 0.65, 0.25)}


# ---------------------------------------------------------------------------------------------------------------
# Volumes <-> engine


def ijk_to_ras(volume_node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


def grid_of_volume(volume_node) -> Grid:
    """The engine's Grid (LPS) of a volume node (RAS)."""
    image = volume_node.GetImageData()
    if image is None:
        raise InputError(f"volume {volume_node.GetName()} has no voxels")
    return Grid.from_ijk_to_lps(image.GetDimensions(), LPS_FROM_RAS @ ijk_to_ras(volume_node))


def ras_matrix_of_grid(grid: Grid) -> np.ndarray:
    """IJK-to-RAS 4x4 of an engine Grid."""
    return LPS_FROM_RAS @ grid.ijk_to_lps()


def array_of_volume(volume_node, what: str = "volume") -> np.ndarray:
    """A float32 copy of a scalar volume's voxels, (k, j, i) = (z, y, x)."""
    image = volume_node.GetImageData() if volume_node is not None else None
    if image is None:
        raise InputError(f"the {what} has no voxels")
    if image.GetNumberOfScalarComponents() != 1:
        raise InputError(f"the {what} {volume_node.GetName()} has {image.GetNumberOfScalarComponents()} components "
                         "per voxel; a scalar volume is needed")
    dims = image.GetDimensions()
    if min(dims) < 1 or dims[2] < 1:
        raise InputError(f"the {what} {volume_node.GetName()} is empty")
    return np.array(slicer.util.arrayFromVolume(volume_node), dtype=np.float32, copy=True)


def _transform_id(node) -> str:
    return node.GetTransformNodeID() or ""


def series_from_nodes(water=None, fat=None, ff=None, ff_unit: str = "auto") -> DixonSeries:
    """A DixonSeries from Slicer volume nodes, like ``io.load_dixon`` does from files.

    FF alone, FF with water and fat, or water and fat alone (FF derived) are accepted. All given volumes must share
    one voxel grid and one parent transform.
    """
    if ff is None and (water is None or fat is None):
        raise InputError("select a fat-fraction volume, or both the water and the fat volumes")
    given = [(what, node) for what, node in (("fat-fraction volume", ff), ("water volume", water),
                                            ("fat volume", fat)) if node is not None]
    grids = {what: grid_of_volume(node) for what, node in given}
    first_what, first_node = given[0]
    for what, node in given[1:]:
        diff = grids[first_what].mismatch(grids[what])
        if diff:
            raise InputError(f"{first_what} {first_node.GetName()} and {what} {node.GetName()} are on different "
                             f"voxel grids: {diff}; resample one onto the other first")
        if _transform_id(node) != _transform_id(first_node):
            raise InputError(f"{first_what} and {what} are under different transforms; harden them first")
    arrays = {what: array_of_volume(node, what) for what, node in given}
    return series_from_arrays(grids[first_what], ff=arrays.get("fat-fraction volume"),
                              water=arrays.get("water volume"), fat=arrays.get("fat volume"), ff_unit=ff_unit)


def copy_geometry(target_node, source_node) -> None:
    """Give ``target_node`` exactly the IJK-to-RAS matrix and parent transform of ``source_node``."""
    m = vtk.vtkMatrix4x4()
    source_node.GetIJKToRASMatrix(m)
    target_node.SetIJKToRASMatrix(m)
    target_node.SetAndObserveTransformNodeID(source_node.GetTransformNodeID())


def set_volume_array(scene, node, array_zyx: np.ndarray, like_node, name: str, node_class: str = "vtkMRMLScalarVolumeNode"):
    """Create (or reuse) ``node`` holding ``array_zyx`` on ``like_node``'s geometry; returns the node."""
    if node is None:
        node = scene.AddNewNodeByClass(node_class, name)
    else:
        node.SetName(name)
    copy_geometry(node, like_node)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array_zyx))
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def derived_ff_node(scene, series: DixonSeries, water_node, node=None):
    """A volume node with the FF the engine derived from water and fat (fraction 0..1, on the water geometry)."""
    node = set_volume_array(scene, node, series.ff.astype(np.float32), water_node, f"{water_node.GetName()} FF")
    node.SetAttribute(ATTRIBUTE_PREFIX + "unit", "fraction")
    node.SetAttribute(ATTRIBUTE_PREFIX + "derivedFrom", "water and fat: F/(W+F)")
    display = node.GetDisplayNode()
    if display is not None:
        if not display.GetColorNodeID() and scene.GetNodeByID("vtkMRMLColorTableNodeGrey") is not None:
            display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)
    return node


# ---------------------------------------------------------------------------------------------------------------
# Heatmap volumes and their display


def heatmap_name(ff_node, class_name: str) -> str:
    return f"{ff_node.GetName()} ICAM {class_name}"


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


def heatmap_node(scene, ff_node, heatmap_zyx: np.ndarray, class_name: str, node=None, floor=DEFAULT_DISPLAY_FLOOR,
                 model_name: str = "", model_sha256: str = ""):
    """The ICAM heatmap of ``class_name`` as a volume with exactly the FF volume's geometry."""
    grid = grid_of_volume(ff_node)
    if tuple(heatmap_zyx.shape) != grid.shape_zyx:
        raise InputError(f"heatmap shape {heatmap_zyx.shape} differs from the FF volume {grid.shape_zyx}")
    node = set_volume_array(scene, node, heatmap_zyx.astype(np.float32), ff_node, heatmap_name(ff_node, class_name))
    node.SetAttribute(ATTRIBUTE_PREFIX + "class", class_name)
    node.SetAttribute(ATTRIBUTE_PREFIX + "model", model_name)
    node.SetAttribute(ATTRIBUTE_PREFIX + "modelSha256", model_sha256)
    node.SetAttribute(ATTRIBUTE_PREFIX + "method", "ICAM (Cai et al. Eq. 2), ReLU, scaled to [0, 1] by its volume "
                                                  "maximum")
    style_heatmap(scene, node, floor)
    return node


def show_in_slice_views(scene, background_node, foreground_node, opacity: float) -> int:
    """Background and foreground (with opacity) in every slice view of the scene; returns the number of views."""
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    count = 0
    for i in range(composites.GetNumberOfItems()):
        comp = composites.GetItemAsObject(i)
        if background_node is not None:
            comp.SetBackgroundVolumeID(background_node.GetID())
        comp.SetForegroundVolumeID(foreground_node.GetID() if foreground_node is not None else None)
        comp.SetForegroundOpacity(float(opacity))
        count += 1
    return count


def set_foreground_opacity(scene, opacity: float) -> None:
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    for i in range(composites.GetNumberOfItems()):
        composites.GetItemAsObject(i).SetForegroundOpacity(float(opacity))


# ---------------------------------------------------------------------------------------------------------------
# Per-slice probabilities: table and plot


def probability_table(scene, slice_probabilities: np.ndarray, name: str, node=None):
    """Table: slice, DMD, CMD, normal (one row per axial slice)."""
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    else:
        node.SetName(name)
    was = node.StartModify()
    node.RemoveAllColumns()
    table = node.GetTable()
    col = vtk.vtkIntArray()
    col.SetName("slice")
    table.AddColumn(col)
    for c in CLASSES:
        col = vtk.vtkDoubleArray()
        col.SetName(c)
        table.AddColumn(col)
    table.SetNumberOfRows(int(slice_probabilities.shape[0]))
    for k, row in enumerate(np.asarray(slice_probabilities, dtype=float)):
        table.SetValue(k, 0, vtk.vtkVariant(int(k)))
        for j, p in enumerate(row):
            table.SetValue(k, j + 1, vtk.vtkVariant(float(p)))
    table.Modified()
    node.EndModify(was)
    return node


def probability_chart(scene, table_node, title: str, chart=None):
    """A plot chart with one line per class over the slices; reuses the chart and its series when given."""
    if chart is None:
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", title)
    chart.SetName(title)
    existing = {}
    for i in range(chart.GetNumberOfPlotSeriesNodes()):
        s = chart.GetNthPlotSeriesNode(i)
        if s is not None:
            existing[s.GetYColumnName()] = s
    for c in CLASSES:
        series = existing.get(c)
        if series is None:
            series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{title} {c}")
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName("slice")
        series.SetYColumnName(c)
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
        series.SetColor(*PLOT_COLORS[c])
    chart.SetTitle(title)
    chart.SetXAxisTitle("axial slice")
    chart.SetYAxisTitle("probability")
    chart.SetYAxisRangeAuto(False)
    chart.SetYAxisRange(0.0, 1.0)
    return chart


# ---------------------------------------------------------------------------------------------------------------
# Segmentations


def segment_names(segmentation_node) -> list:
    seg = segmentation_node.GetSegmentation()
    return [seg.GetSegment(seg.GetNthSegmentID(i)).GetName() for i in range(seg.GetNumberOfSegments())]


def labels_from_segmentation(scene, segmentation_node, reference_node) -> tuple:
    """(labels (z, y, x) uint16 on the reference volume's grid, {label value: segment name}).

    Every segment (visible or not) is exported with vtkSlicerSegmentationsModuleLogic against the reference volume;
    segment n (in the segmentation's order) gets label value n.
    """
    seg = segmentation_node.GetSegmentation()
    n = seg.GetNumberOfSegments()
    if n == 0:
        raise InputError(f"segmentation {segmentation_node.GetName()} has no segments")
    segmentation_node.CreateBinaryLabelmapRepresentation()
    ids = vtk.vtkStringArray()
    names = {}
    for i in range(n):
        sid = seg.GetNthSegmentID(i)
        ids.InsertNextValue(sid)
        names[i + 1] = seg.GetSegment(sid).GetName()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "MDTexture temporary labelmap")
    labelmap.SetHideFromEditors(True)
    try:
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        ok = logic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, reference_node,
                                                slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
        if not ok or labelmap.GetImageData() is None:
            raise InputError(f"could not export segmentation {segmentation_node.GetName()} onto "
                             f"{reference_node.GetName()}")
        diff = grid_of_volume(reference_node).mismatch(grid_of_volume(labelmap))
        if diff:
            raise InputError(f"exported labelmap is not on the FF grid ({diff})")
        labels = np.array(slicer.util.arrayFromVolume(labelmap), dtype=np.uint16, copy=True)
    finally:
        display = labelmap.GetDisplayNode()
        if display is not None:
            scene.RemoveNode(display)
        scene.RemoveNode(labelmap)
    return labels, names


def create_muscle_segments(scene, reference_node, segmentation_node=None, name: Optional[str] = None):
    """Add the seven calf muscles as named, coloured, empty segments (those not already present under any alias)."""
    if segmentation_node is None:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                                    name or f"{reference_node.GetName()} muscles")
        segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    role = segmentation_node.GetReferenceImageGeometryReferenceRole()
    segmentation_node.SetNodeReferenceID(role, reference_node.GetID())
    seg = segmentation_node.GetSegmentation()
    present = {canonical_muscle(n) for n in segment_names(segmentation_node)}
    added = []
    for muscle in MUSCLES:
        if muscle in present:
            continue
        sid = muscle if seg.GetSegment(muscle) is None else seg.GenerateUniqueSegmentID(muscle)
        seg.AddEmptySegment(sid, muscle, list(MUSCLE_COLORS[muscle]))
        segment = seg.GetSegment(sid)
        segment.SetTag(ATTRIBUTE_PREFIX + "fullName", MUSCLE_FULL_NAMES[muscle])
        added.append(muscle)
    return segmentation_node, added


# ---------------------------------------------------------------------------------------------------------------
# Texture-score table


def fill_score_table(table_node, rows: list, params: ScoreParameters, attributes: Optional[dict] = None) -> None:
    """Write the engine's rows (and the parameters, on every row) into ``table_node``."""
    was = table_node.StartModify()
    table_node.RemoveAllColumns()
    table = table_node.GetTable()
    for name, (title, unit, cls) in TABLE_COLUMNS.items():
        col = cls()
        col.SetName(name)
        table.AddColumn(col)
    table.SetNumberOfRows(len(rows))
    for r, row in enumerate(rows):
        values = [getattr(row, c) for c in COLUMNS] + [params.threshold, params.min_overlap, params.min_area_mm2]
        for c, (name, value) in enumerate(zip(TABLE_COLUMNS, values)):
            cls = TABLE_COLUMNS[name][2]
            if cls is vtk.vtkStringArray:
                v = vtk.vtkVariant(str(value))
            elif cls is vtk.vtkIntArray:
                v = vtk.vtkVariant(int(value) if value is not None else -1)
            else:
                v = vtk.vtkVariant(float(value) if value is not None else math.nan)
            table.SetValue(r, c, v)
    for name, (title, unit, _cls) in TABLE_COLUMNS.items():
        if hasattr(table_node, "SetColumnTitle"):
            table_node.SetColumnTitle(name, title)
        if unit:
            table_node.SetColumnUnitLabel(name, unit)
    if hasattr(table_node, "SetUseColumnTitleAsColumnHeader"):
        table_node.SetUseColumnTitleAsColumnHeader(True)
    for key, value in {"threshold": params.threshold, "minOverlap": params.min_overlap,
                       "minAreaMm2": params.min_area_mm2, **(attributes or {})}.items():
        table_node.SetAttribute(ATTRIBUTE_PREFIX + key, str(value))
    table.Modified()
    table_node.EndModify(was)


def rows_from_table(table_node) -> list:
    """The engine's rows back from a table node (inverse of fill_score_table; NaN becomes None)."""
    table = table_node.GetTable()
    index = {table.GetColumnName(c): c for c in range(table.GetNumberOfColumns())}
    rows = []
    for r in range(table.GetNumberOfRows()):
        def val(name):
            return table.GetValue(r, index[name])
        score = val("texture_score").ToDouble()
        mean_ff = val("mean_ff").ToDouble()
        label = val("label_value").ToInt()
        rows.append(MuscleScore(muscle=val("muscle").ToString(), label_value=None if label < 0 else label,
                                slices_present=val("slices_present").ToInt(),
                                slices_highlighted=val("slices_highlighted").ToInt(),
                                texture_score=None if math.isnan(score) else score,
                                mean_ff=None if math.isnan(mean_ff) else mean_ff,
                                volume_ml=val("volume_ml").ToDouble()))
    return rows


def export_table(table_node, path: str) -> str:
    """Write the table with Slicer's table storage node (.csv, or .tsv); also writes the column schema file."""
    path = str(path)
    if not path.lower().endswith((".csv", ".tsv")):
        path += ".csv"
    storage = slicer.vtkMRMLTableStorageNode()
    storage.SetFileName(path)
    if not storage.WriteData(table_node):
        raise InputError(f"could not write the table to {path}")
    return path


# ---------------------------------------------------------------------------------------------------------------
# Parameter node


class _Param:
    """A typed scalar parameter stored as a string in the scripted module node."""

    def __init__(self, key, kind, default):
        self.key, self.kind, self.default = key, kind, default

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        text = obj.node.GetParameter(self.key)
        if not text:
            return self.default
        return self.kind(text)

    def __set__(self, obj, value):
        obj.node.SetParameter(self.key, str(value))


class _Ref:
    """A node reference stored in the scripted module node."""

    def __init__(self, role):
        self.role = role

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return obj.node.GetNodeReference(self.role)

    def __set__(self, obj, node):
        obj.node.SetNodeReferenceID(self.role, node.GetID() if node is not None else None)


class MDTextureParameters:
    """Every choice of the module, in one vtkMRMLScriptedModuleNode that is saved with the scene."""

    water = _Ref("Water")
    fat = _Ref("Fat")
    ff = _Ref("FF")
    segmentation = _Ref("Segmentation")
    scoreTable = _Ref("ScoreTable")
    probabilityTable = _Ref("ProbabilityTable")
    probabilityChart = _Ref("ProbabilityChart")

    modelPath = _Param("ModelPath", str, "")  # empty: the shipped model
    device = _Param("Device", str, "auto")  # auto, cpu, cuda
    targetClass = _Param("TargetClass", str, "auto")  # auto (the verdict) or one of CLASSES
    viewClass = _Param("ViewClass", str, "")  # class whose heatmap is shown and scored; empty until classified
    background = _Param("Background", str, "FF")  # FF or Water under the heatmap
    ffUnit = _Param("FFUnit", str, "auto")
    threshold = _Param("Threshold", float, ScoreParameters().threshold)
    minOverlap = _Param("MinOverlap", float, ScoreParameters().min_overlap)
    minAreaMm2 = _Param("MinAreaMm2", float, ScoreParameters().min_area_mm2)
    opacity = _Param("Opacity", float, 0.5)
    displayFloor = _Param("DisplayFloor", float, DEFAULT_DISPLAY_FLOOR)
    batchSize = _Param("BatchSize", int, 16)
    verdict = _Param("Verdict", str, "")
    probabilities = _Param("Probabilities", str, "")  # JSON {class: p}
    modelName = _Param("ModelName", str, "")
    modelSha256 = _Param("ModelSha256", str, "")

    def __init__(self, node):
        self.node = node

    @classmethod
    def parameter_keys(cls) -> list:
        return [v.key for v in vars(cls).values() if isinstance(v, _Param)]

    def heatmap(self, class_name: str):
        return self.node.GetNodeReference(f"Heatmap{class_name}")

    def setHeatmap(self, class_name: str, node) -> None:
        self.node.SetNodeReferenceID(f"Heatmap{class_name}", node.GetID() if node is not None else None)

    def scoreParameters(self) -> ScoreParameters:
        return ScoreParameters(threshold=self.threshold, min_overlap=self.minOverlap, min_area_mm2=self.minAreaMm2)

    def probabilityDict(self) -> dict:
        return json.loads(self.probabilities) if self.probabilities else {}

    def setDefaults(self) -> None:
        for v in vars(type(self)).values():
            if isinstance(v, _Param) and not self.node.GetParameter(v.key):
                self.node.SetParameter(v.key, str(v.default))


# ---------------------------------------------------------------------------------------------------------------
# The module's Logic


class MDTextureLogic:
    """All of the module's work on the scene. No Qt: the Widget wires buttons to these methods.

    ``scene`` defaults to ``slicer.mrmlScene`` (the application's scene); tests pass their own.
    """

    def __init__(self, scene=None):
        self._scene = scene
        self._model = None
        self._model_key = None
        self.lastResult = None
        self.log: Callable[[str], None] = lambda message: None

    # -- scene and parameters --------------------------------------------------------------------------------
    @property
    def scene(self):
        return self._scene if self._scene is not None else slicer.mrmlScene

    def getParameterNode(self) -> MDTextureParameters:
        node = self.scene.GetSingletonNode(MODULE_NAME, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetSingletonTag(MODULE_NAME)
            node.SetName(MODULE_NAME)
            node.SetAttribute("ModuleName", MODULE_NAME)
            node.SetHideFromEditors(True)
            MDTextureParameters(node).setDefaults()
            node = self.scene.AddNode(node)
        return MDTextureParameters(node)

    # -- model -------------------------------------------------------------------------------------------------
    def setModel(self, model) -> None:
        """Use this engine Model (e.g. an untrained one in a self-test) instead of loading ModelPath."""
        self._model = model
        self._model_key = ("given", id(model))

    def modelPathFor(self, p: MDTextureParameters) -> Optional[str]:
        if p.modelPath:
            return p.modelPath
        from .modelfile import default_model_path

        path = default_model_path()
        return str(path) if path is not None else None

    def loadModel(self, p: MDTextureParameters):
        if self._model is not None and self._model_key and self._model_key[0] == "given":
            return self._model
        path = self.modelPathFor(p)
        if path is None:
            raise InputError("no model file: this installation ships no trained model; choose a model file "
                             "(NAME.json next to NAME.safetensors)")
        key = (os.path.abspath(path), os.path.getmtime(path) if os.path.exists(path) else None)
        if self._model is None or key != self._model_key:
            from .modelfile import load_model

            self._model = load_model(path)
            self._model_key = key
        return self._model

    # -- inputs ------------------------------------------------------------------------------------------------
    def prepareSeries(self, p: MDTextureParameters) -> DixonSeries:
        """The engine's series from the selected volumes; adds the derived FF volume when none is selected."""
        series = series_from_nodes(water=p.water, fat=p.fat, ff=p.ff, ff_unit=p.ffUnit)
        if p.ff is None:
            p.ff = derived_ff_node(self.scene, series, p.water)
            self.log(f"Fat fraction derived from water and fat: {p.ff.GetName()}")
        return series

    # -- classification ------------------------------------------------------------------------------------
    def classify(self, p: Optional[MDTextureParameters] = None, progress=None, cancel=None, precision="auto"):
        """Classify the selected series; writes the three heatmap volumes, the probability table and chart.

        ``progress(done, total)`` is called with 0 first, then after each batch of slices; ``cancel()`` returning
        True stops with InterruptedError; the scene is left as it was before the call in that case.
        """
        from .inference import classify_volume

        p = p or self.getParameterNode()
        had_ff = p.ff is not None
        series = self.prepareSeries(p)
        try:
            model = self.loadModel(p)
            target = None if p.targetClass in ("", "auto") else p.targetClass
            result = classify_volume(series, model, device=p.device or "auto", target_class=target,
                                     batch_size=max(1, p.batchSize), progress=progress, cancel=cancel,
                                     precision=precision)
        except BaseException:
            if not had_ff and p.ff is not None:  # leave the scene as it was
                derived = p.ff
                p.ff = None
                self._removeNode(derived)
            raise
        for note in series.warnings:
            self.log(note)
        self.lastResult = result
        ff_node = p.ff
        for c in CLASSES:
            node = heatmap_node(self.scene, ff_node, result.heatmap_for(c), c, node=p.heatmap(c),
                                floor=p.displayFloor, model_name=result.model_name,
                                model_sha256=result.model_sha256)
            p.setHeatmap(c, node)
        p.verdict = result.verdict
        p.probabilities = json.dumps({c: round(float(x), 6) for c, x in zip(CLASSES, result.probabilities)})
        p.modelName = result.model_name
        p.modelSha256 = result.model_sha256
        p.viewClass = result.target_class
        title = f"{ff_node.GetName()} ICAM per-slice probabilities"
        p.probabilityTable = probability_table(self.scene, result.slice_probabilities, title,
                                               node=p.probabilityTable)
        p.probabilityChart = probability_chart(self.scene, p.probabilityTable, title, chart=p.probabilityChart)
        for note in result.warnings:
            self.log(note)
        return result

    def _removeNode(self, node) -> None:
        for i in range(node.GetNumberOfDisplayNodes()) if hasattr(node, "GetNumberOfDisplayNodes") else ():
            display = node.GetNthDisplayNode(i)
            if display is not None:
                self.scene.RemoveNode(display)
        storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
        if storage is not None:
            self.scene.RemoveNode(storage)
        self.scene.RemoveNode(node)

    def currentHeatmap(self, p: Optional[MDTextureParameters] = None):
        p = p or self.getParameterNode()
        return p.heatmap(p.viewClass) if p.viewClass in CLASSES else None

    def backgroundNode(self, p: MDTextureParameters):
        if p.background == "Water" and p.water is not None:
            return p.water
        return p.ff if p.ff is not None else p.water

    def showHeatmap(self, p: Optional[MDTextureParameters] = None, class_name: Optional[str] = None):
        """Show the heatmap of ``class_name`` (default: ViewClass) over FF or water in all slice views."""
        p = p or self.getParameterNode()
        if class_name is not None:
            if class_name not in CLASSES:
                raise InputError(f"unknown class {class_name!r}")
            p.viewClass = class_name
        heat = self.currentHeatmap(p)
        if heat is None:
            raise InputError("no heatmap yet: click Classify first")
        style_heatmap(self.scene, heat, p.displayFloor)
        show_in_slice_views(self.scene, self.backgroundNode(p), heat, p.opacity)
        return heat

    def setOpacity(self, opacity: float, p: Optional[MDTextureParameters] = None) -> None:
        p = p or self.getParameterNode()
        p.opacity = float(opacity)
        set_foreground_opacity(self.scene, p.opacity)

    # -- muscles -----------------------------------------------------------------------------------------------
    def createMuscleSegments(self, p: Optional[MDTextureParameters] = None):
        p = p or self.getParameterNode()
        reference = p.ff if p.ff is not None else p.water
        if reference is None:
            raise InputError("select the fat-fraction (or water) volume first: the segments are drawn on its grid")
        node, added = create_muscle_segments(self.scene, reference, p.segmentation)
        p.segmentation = node
        self.log(f"Added segments: {', '.join(added)}" if added else "All seven muscles are already present")
        return node

    # -- texture scores ------------------------------------------------------------------------------------
    def computeScores(self, p: Optional[MDTextureParameters] = None) -> list:
        """Texture-score table from the shown heatmap and the segmentation, on the FF grid."""
        p = p or self.getParameterNode()
        if p.ff is None:
            raise InputError("no fat-fraction volume: select one, or classify water and fat first")
        heat = self.currentHeatmap(p)
        if heat is None:
            raise InputError("no heatmap yet: click Classify first")
        if p.segmentation is None:
            raise InputError("select or create a muscle segmentation first")
        params = p.scoreParameters()
        ff_grid = grid_of_volume(p.ff)
        diff = ff_grid.mismatch(grid_of_volume(heat))
        if diff:
            raise InputError(f"the heatmap is not on the FF grid ({diff}); classify again")
        ff, _unit = normalise_ff(array_of_volume(p.ff, "fat-fraction volume"), p.ffUnit)
        heatmap = array_of_volume(heat, "heatmap")
        labels, names = labels_from_segmentation(self.scene, p.segmentation, p.ff)
        rows = texture_scores(heatmap, labels, names, ff, ff_grid.spacing, params)
        table = p.scoreTable
        if table is None:
            table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", f"{p.ff.GetName()} texture scores")
            p.scoreTable = table
        fill_score_table(table, rows, params, {
            "heatmapClass": p.viewClass, "heatmap": heat.GetName(), "segmentation": p.segmentation.GetName(),
            "ff": p.ff.GetName(), "model": p.modelName, "modelSha256": p.modelSha256})
        return rows

    def exportScores(self, path: str, p: Optional[MDTextureParameters] = None) -> str:
        p = p or self.getParameterNode()
        if p.scoreTable is None:
            raise InputError("no texture-score table yet: click Compute texture scores first")
        return export_table(p.scoreTable, path)

    def summaryText(self, p: Optional[MDTextureParameters] = None) -> str:
        p = p or self.getParameterNode()
        if not p.verdict:
            return ""
        probs = p.probabilityDict()
        return f"{p.verdict}  (" + ", ".join(f"{c} {100 * probs.get(c, 0):.1f}%" for c in CLASSES) + ")"
