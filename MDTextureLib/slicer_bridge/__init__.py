"""The 3D Slicer side of MDTexture without Qt: scene-level operations and the module's Logic.

Everything the MDTexture module does to the scene lives in this package, so it runs (and is tested) with Slicer's
core libraries alone: the ``slicer-core`` package outside the application, or the application itself. Nothing here
imports ``qt`` or ``ctk``; torch is imported only when a volume is classified in this process, so the module's panel
opens before torch is installed. The Slicer panel (MDTexture/MDTexture.py) and any other face (a browser app) share
these operations:

- :mod:`.volumes`: volume nodes <-> the engine's grids (RAS <-> LPS) and arrays, the Dixon series
- :mod:`.display`: heatmap volumes, colour table and legend, slice-view layers, layout
- :mod:`.tables`: probability table and chart, texture-score table, CSV export
- :mod:`.segments`: per-segment masks, muscle segments (with terminology), per-segment texture scores
- :mod:`.parameters`: the parameter node
- :mod:`.inputs`: water / fat / FF picked by DICOM tags or names
- :mod:`.phantom_scene`: the synthetic phantom as scene nodes (Load phantom, Sample Data, self-test)
- :mod:`.case_files`: a case's files read by the engine's readers into volumes and segments (the browser app)
- :mod:`.results`: a classified scene's results as a folder and as CSV text
- :mod:`.job`, :mod:`.worker`: classification in a separate process
- :mod:`.logic`: ``MDTextureLogic``, the operations of the panel
- :mod:`.segment_statistics`: the texture score as a Segment Statistics plugin
"""

import importlib

# Public names -> the submodule that defines them. Imported on first use (PEP 562), so that importing this package
# (as the Slicer module file does at application start-up) costs nothing: numpy, VTK and SimpleITK come with the
# first operation, torch only with a classification in this process.
_EXPORTS = {
    "array_of_volume": "volumes",
    "ATTRIBUTE_PREFIX": "volumes",
    "ClassifyJob": "job",
    "ClassifyOutcome": "job",
    "copy_geometry": "volumes",
    "create_muscle_segments": "segments",
    "DEFAULT_DISPLAY_FLOOR": "display",
    "derived_ff_node": "volumes",
    "dicom_tags": "inputs",
    "dixon_role": "inputs",
    "export_table": "tables",
    "FALLBACK_COLOR_NAME": "display",
    "fill_score_table": "tables",
    "grid_of_volume": "volumes",
    "guess_dixon_inputs": "inputs",
    "heatmap_color_node": "display",
    "heatmap_name": "display",
    "heatmap_node": "display",
    "ijk_to_ras": "volumes",
    "inferno_rgb": "display",
    "labels_from_segmentation": "segments",
    "LAYOUT_FOUR_UP_PLOT_TABLE": "display",
    "load_phantom": "phantom_scene",
    "LPS_FROM_RAS": "volumes",
    "MDTextureLogic": "logic",
    "MDTextureParameters": "parameters",
    "MODULE_NAME": "parameters",
    "MUSCLE_TERMINOLOGY": "segments",
    "nodes_of_class": "volumes",
    "PARAMETER_COLUMNS": "tables",
    "parameter_node": "parameters",
    "PLOT_COLORS": "tables",
    "probability_chart": "tables",
    "probability_table": "tables",
    "ras_matrix_of_grid": "volumes",
    "rows_from_table": "tables",
    "score_segments": "segments",
    "segment_mask": "segments",
    "segment_masks": "segments",
    "segment_names": "segments",
    "series_from_nodes": "volumes",
    "set_foreground_opacity": "display",
    "set_volume_array": "volumes",
    "show_color_legend": "display",
    "show_in_slice_views": "display",
    "SLICER_INFERNO_ID": "display",
    "style_heatmap": "display",
    "TABLE_COLUMNS": "tables",
}
_SUBMODULES = {"case_files", "display", "inputs", "job", "logic", "parameters", "phantom_scene", "requirements",
               "results", "segment_statistics", "segments", "tables", "volumes", "worker"}


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
