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
- :mod:`.job`, :mod:`.worker`: classification in a separate process
- :mod:`.logic`: ``MDTextureLogic``, the operations of the panel
- :mod:`.segment_statistics`: the texture score as a Segment Statistics plugin
"""

from .display import (DEFAULT_DISPLAY_FLOOR, FALLBACK_COLOR_NAME, LAYOUT_FOUR_UP_PLOT_TABLE, SLICER_INFERNO_ID,
                      heatmap_color_node, heatmap_name, heatmap_node, inferno_rgb, set_foreground_opacity,
                      show_color_legend, show_in_slice_views, style_heatmap)
from .inputs import dicom_tags, dixon_role, guess_dixon_inputs
from .job import ClassifyJob, ClassifyOutcome
from .logic import MDTextureLogic
from .parameters import MODULE_NAME, MDTextureParameters, parameter_node
from .phantom_scene import load_phantom
from .segments import (MUSCLE_TERMINOLOGY, create_muscle_segments, labels_from_segmentation, score_segments,
                       segment_mask, segment_masks, segment_names)
from .tables import (PARAMETER_COLUMNS, PLOT_COLORS, TABLE_COLUMNS, export_table, fill_score_table,
                     probability_chart, probability_table, rows_from_table)
from .volumes import (ATTRIBUTE_PREFIX, LPS_FROM_RAS, array_of_volume, copy_geometry, derived_ff_node,
                      grid_of_volume, ijk_to_ras, nodes_of_class, ras_matrix_of_grid, series_from_nodes,
                      set_volume_array)
