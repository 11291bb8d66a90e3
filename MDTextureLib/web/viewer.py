"""Our thin adapter over trame-slicer (beta; pinned in pyproject.toml): one axial slice view of a real MRML scene,
streamed to the browser, and the segment editor on it. Nothing else in the app imports trame_slicer, so a change of
its API is met here only.

Pitfalls met with trame-slicer 2.0.0 (and why the code below looks as it does):
- the paint effect's view pipelines are made when a segmentation is activated; the scene is cleared before every
  load (as trame-slicer's own loader does), else painting raised on a missing pipeline;
- the brush defaults to 2-D (a sphere brush paints several slices at once);
- display changes made straight on MRML nodes (opacity, layers) reach the browser only after a render request.
"""

from __future__ import annotations

from slicer import vtkMRMLScene
from trame_slicer import module as trame_slicer_module
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories
from trame_slicer.segmentation import (
    SegmentationEffectErase,
    SegmentationEffectIslands,
    SegmentationEffectNoTool,
    SegmentationEffectPaint,
    SegmentationEffectScissors,
    SegmentationEffectThreshold,
)
from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition
from undo_stack import UndoStack

#: The editing tools offered in the page: name shown -> trame-slicer effect class.
EFFECTS = {
    "none": SegmentationEffectNoTool,
    "paint": SegmentationEffectPaint,
    "erase": SegmentationEffectErase,
    "scissors": SegmentationEffectScissors,
}
LAYOUT_ID = "MDTexture axial"
BRUSH_DIAMETER_PERCENT = 5.0  # of the view's height (trame-slicer's screen-relative brush)


class SlicerViews:
    """A trame-slicer application with one axial slice view, registered on ``server``."""

    def __init__(self, server):
        server.enable_module(trame_slicer_module)
        self.app = SlicerApp()
        register_rca_factories(self.app.view_manager, server, slice_view_ui_f=_slice_slider_only)
        self.layouts = LayoutManager(self.app.scene, self.app.view_manager, server)
        self.layouts.register_layout(LAYOUT_ID, Layout(LayoutDirection.Vertical, [ViewLayoutDefinition.axial_view()]))
        self.layouts.set_layout(LAYOUT_ID)
        self.undo_stack = UndoStack(undo_limit=20)
        self.editor.set_undo_stack(self.undo_stack)

    @property
    def scene(self) -> vtkMRMLScene:
        return self.app.scene

    @property
    def editor(self):
        return self.app.segmentation_editor

    def place_views(self, ui_layout) -> None:
        """Put the view grid at the current position of the page being built."""
        self.layouts.initialize_layout_grid(ui_layout)

    def slice_views(self) -> list:
        return self.app.view_manager.get_slice_views()

    # -- scene and display ------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Empty the scene before a new case (see the module notes: paint needs it)."""
        self.editor.deactivate_effect()
        self.scene.Clear()
        self.undo_stack.clear()

    def show_background(self, volume_node, reset: bool = True) -> None:
        self.app.display_manager.show_volume_in_slice_background(volume_node)
        if reset:
            for view in self.slice_views():
                view.fit_view_to_content()
        self.render()

    def render(self) -> None:
        """Ask every slice view to render again (needed after display changes made straight on MRML nodes)."""
        for view in self.slice_views():
            view.schedule_render()

    # -- segment editor ---------------------------------------------------------------------------------------
    def edit(self, segmentation_node, volume_node) -> None:
        """Make ``segmentation_node`` the one the editor works on, with ``volume_node`` as its source."""
        segmentation_node.SetDisplayVisibility(True)
        self.editor.set_active_segmentation(segmentation_node, volume_node)
        self.render()

    def select_segment(self, segment_id: str) -> None:
        self.editor.set_active_segment_id(segment_id)

    def active_segment_id(self) -> str:
        return self.editor.get_active_segment_id() if self.editor.active_segmentation else ""

    def set_effect(self, name: str) -> None:
        if name not in EFFECTS:
            raise ValueError(f"unknown editing tool {name!r}")
        effect = self.editor.set_active_effect_type(EFFECTS[name])
        if name in ("paint", "erase") and effect is not None:
            effect.set_use_sphere_brush(False)  # 2-D: one slice per stroke
            effect.set_brush_diameter(BRUSH_DIAMETER_PERCENT)
        self.render()

    def active_effect(self) -> str:
        current = self.editor.active_effect
        return next((name for name, cls in EFFECTS.items() if isinstance(current, cls)), "none")

    def threshold(self, low: float, high: float) -> None:
        """Fill the active segment where the source volume lies in [low, high]."""
        effect = self.editor.set_active_effect_type(SegmentationEffectThreshold)
        effect.set_threshold_min_max_values((float(low), float(high)))
        effect.apply()
        self.editor.deactivate_effect()
        self.render()

    def keep_largest_island(self) -> None:
        effect = self.editor.set_active_effect_type(SegmentationEffectIslands)
        effect.keep_largest_island()
        self.editor.deactivate_effect()
        self.render()

    def undo(self) -> bool:
        if not self.undo_stack.can_undo():
            return False
        self.undo_stack.undo()
        self.render()
        return True

    def can_undo(self) -> bool:
        return self.undo_stack.can_undo()


def _slice_slider_only(server, view_id, view) -> None:
    """Below the slice view: its slice slider (trame-slicer's own gutter buttons are left out)."""
    from trame.widgets import html
    from trame_slicer.app.logic import connect_slice_view_slider_to_state
    from trame_slicer.app.ui.slider import Slider

    with html.Div(style="position: absolute; bottom: 0; left: 0; width: 100%;"):
        Slider(typed_state=connect_slice_view_slider_to_state(server, view), theme="dark", dense=True)
