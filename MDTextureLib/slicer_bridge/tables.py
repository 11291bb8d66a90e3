"""Tables and plots: per-slice probabilities (table + chart) and the texture-score table (fill, read back, export)."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import vtk

import slicer

from ..constants import CLASSES, TEXTURE_SCORE_CAVEAT_SENTENCE
from ..errors import InputError
from ..scores import COLUMNS, MuscleScore, ScoreParameters
from .volumes import ATTRIBUTE_PREFIX

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
    # Shown as the column's tooltip in Slicer's table view, and kept with the table when it is saved.
    table_node.SetColumnDescription("texture_score", "Cai et al. Eq. (5). " + TEXTURE_SCORE_CAVEAT_SENTENCE
                                    + " (MDTexture README, Experiments)")
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

