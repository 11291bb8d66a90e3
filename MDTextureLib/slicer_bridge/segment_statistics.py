"""The texture score as a Segment Statistics plugin, beside Slicer's own per-segment measurements.

Slicer's plugin base class lives in the application (``SegmentStatisticsPlugins``), so the plugin class is made
from the base handed in: ``plugin_class(SegmentStatisticsPluginBase)()`` is registered with
``SegmentStatisticsLogic.registerPlugin`` at start-up. The numbers come from :func:`segment_texture_statistics`,
which needs no Qt: the segment's own mask (overlaps allowed) on the FF grid, the heatmap MDTexture shows, and the
module's threshold / minimum overlap / minimum area, exactly as the module's score table.
"""

from __future__ import annotations

import slicer

from ..constants import TEXTURE_SCORE_CAVEAT
from ..scores import canonical_muscle
from .logic import MDTextureLogic
from .segments import score_segments, segment_mask

PLUGIN_CLASS_NAME = "MDTextureSegmentStatisticsPlugin"

#: key -> (title, description, units): described like Slicer's built-in measurements.
MEASUREMENTS = {
    "texture_score": (
        "Texture score",
        "MDTexture texture score (Cai et al. Eq. 5): the fraction of the axial slices containing the segment on "
        "which at least the minimum overlap of its voxels lies where the shown ICAM heatmap reaches the threshold. "
        "0: the network never looked at this muscle; 1: on every slice. Threshold, minimum overlap and minimum area "
        "are the MDTexture module's. Caveat: " + TEXTURE_SCORE_CAVEAT + ".", ""),
    "slices_present": (
        "Slices present",
        "Number of axial slices (of the fat-fraction volume) on which the segment covers at least the minimum area.",
        "slices"),
    "slices_highlighted": (
        "Slices highlighted",
        "Number of those slices on which the heatmap highlights at least the minimum overlap of the segment.",
        "slices"),
}


def segment_texture_statistics(scene, segmentation_node, segment_id: str, logic=None) -> dict:
    """{key: value} for one segment, from the MDTexture parameter node's heatmap, FF and score parameters; {} when
    MDTexture has no heatmap yet (nothing to measure). The segment is scored on its own mask."""
    logic = logic or MDTextureLogic(scene)
    p = logic.getParameterNode()
    if segmentation_node is None or p.ff is None or logic.currentHeatmap(p) is None:
        return {}
    heatmap, ff, grid = logic.scoreInputs(p)
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        return {}
    name = segment.GetName()
    mask = segment_mask(segmentation_node, segment_id, p.ff)
    rows = score_segments(heatmap, [(name, mask)], ff, grid.spacing, p.scoreParameters())
    key = canonical_muscle(name) or name
    row = next(r for r in rows if r.muscle == key)
    stats = {"slices_present": row.slices_present, "slices_highlighted": row.slices_highlighted}
    if row.texture_score is not None:
        stats["texture_score"] = row.texture_score
    return stats


def plugin_class(base):
    """The plugin class, derived from Slicer's ``SegmentStatisticsPluginBase`` (given, so this module imports
    without the application)."""

    class MDTextureSegmentStatisticsPlugin(base):
        """Texture score of each segment from the MDTexture heatmap."""

        def __init__(self):
            super().__init__()
            self.name = "MDTexture"
            self.title = "MDTexture texture score"
            self.keys = list(MEASUREMENTS)
            self.defaultKeys = list(MEASUREMENTS)

        def computeStatistics(self, segmentID):
            requested = self.getRequestedKeys()
            if not requested:
                return {}
            parameters = self.getParameterNode()
            scene = slicer.mrmlScene
            segmentation = scene.GetNodeByID(parameters.GetParameter("Segmentation"))
            stats = segment_texture_statistics(scene, segmentation, segmentID)
            return {k: v for k, v in stats.items() if k in requested}

        def getMeasurementInfo(self, key):
            if key not in MEASUREMENTS:
                return None
            title, description, units = MEASUREMENTS[key]
            return self.createMeasurementInfo(name=title, title=title, description=description, units=units)

    MDTextureSegmentStatisticsPlugin.__name__ = PLUGIN_CLASS_NAME
    MDTextureSegmentStatisticsPlugin.__qualname__ = PLUGIN_CLASS_NAME
    return MDTextureSegmentStatisticsPlugin
