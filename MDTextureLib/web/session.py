"""The browser app's state and callbacks: what each button does, on the shared scene-level Logic.

Every operation on the scene goes through :class:`MDTextureLib.slicer_bridge.logic.MDTextureLogic` (the same class
the Slicer module's panel uses); this file only moves values between the page's state and the Logic, and turns an
``InputError`` into the page's one-line message. It needs no browser: the in-process tests call these methods.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from ..constants import CLASSES
from ..errors import InputError
from ..slicer_bridge.case_files import segment_voxel_counts
from ..slicer_bridge.job import FAILED, FINISHED, RUNNING
from ..slicer_bridge.logic import MDTextureLogic
from ..slicer_bridge.results import scores_csv_text, slice_probabilities, write_result_folder
from . import graphics
from .files import DataRoot, Uploads

log = logging.getLogger(__name__)

#: The page's state and its value when nothing is loaded.
INITIAL_STATE = {
    "message": "", "error": "", "case_name": "", "has_case": False, "has_segmentation": False,
    "classify_running": False, "progress": 0, "progress_text": "", "verdict": "", "probabilities": [],
    "chart_svg": "", "legend_html": "", "view_class": "", "opacity": 0.5, "display_floor": 0.1,
    "segments": [], "active_segment": "", "effect": "none", "can_undo": False,
    "score_threshold": 0.5, "score_rows": [], "csv_ready": False, "warnings": [], "legs": [],
    "picker": {"folder": "", "parent": None, "folders": [], "files": []}, "picked": {},
    "export_name": "mdtexture-result", "threshold_low": 0.0, "threshold_high": 0.3,
    "fat_map": False, "overlay": "icam", "has_fat_map": False,
}


class WebSession:
    """One scene, one case at a time. ``state`` is the trame state (any dict-like with attribute access)."""

    def __init__(self, state, views, data_root: DataRoot, uploads: Uploads):
        self.state = state
        self.views = views
        self.data_root = data_root
        self.uploads = uploads
        self.logic = MDTextureLogic(views.scene)
        self.logic.log = self._note
        self.job = None
        self.score_rows = None
        self.precision = "auto"  # what every Classify runs the network in (`mdtexture serve --precision`)
        self.views.editor.segmentation_modified.connect(self._refresh_segments)
        for key, value in INITIAL_STATE.items():
            state[key] = value

    # -- messages -------------------------------------------------------------------------------------------
    def _note(self, text: str) -> None:
        if text not in self.state.warnings:  # computing the scores again says the same once
            self.state.warnings = [*self.state.warnings, text]

    def _fail(self, exc: BaseException) -> None:
        """Show a user mistake as its one line; anything else as one line too, with the trace in the log only."""
        if isinstance(exc, InputError):
            self.state.error = str(exc)
        else:
            log.error("unexpected error in the app:\n%s", traceback.format_exc())
            self.state.error = f"internal error ({type(exc).__name__}: {exc}); the server keeps running"

    def guarded(self, action, *args, **kwargs):
        """Run ``action``; any error becomes the page's message and never ends the server."""
        self.state.error = ""
        try:
            return action(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one user's error must never stop the server
            self._fail(exc)
            return None

    @property
    def p(self):
        return self.logic.getParameterNode()

    # -- opening a case -------------------------------------------------------------------------------------
    def open_files(self, ff=None, water=None, fat=None, segmentation=None, ff_unit="auto", name=""):
        """Read the files (engine readers and checks) into a cleared scene and show them."""
        self._stop_job()
        self.views.clear()
        self._reset_outputs()
        try:
            self.logic.loadFiles(ff=ff, water=water, fat=fat, segmentation=segmentation, ff_unit=ff_unit)
        except BaseException:
            self.views.clear()
            self.state.has_case = False
            raise
        self._after_load(name or Path(ff or water).name)

    def open_study(self, folder):
        """A DICOM study folder (series picked by their tags)."""
        self._stop_job()
        self.views.clear()
        self._reset_outputs()
        try:
            self.logic.loadStudy(folder)
        except BaseException:
            self.views.clear()
            self.state.has_case = False
            raise
        self._after_load(Path(folder).name)

    def open_demo(self, class_name="DMD", seed=7):
        """A generated phantom (synthetic) straight into the scene, with its muscle segments."""
        self._stop_job()
        self.views.clear()
        self._reset_outputs()
        # slices, matrix and pixel size drawn like a scanner's, as `mdtexture demo` makes them
        self.logic.loadPhantom(class_name=class_name, seed=seed, n_slices=None, matrix=None, pixel_mm=None)
        self._after_load(f"phantom {class_name} seed {seed} (synthetic)")

    def open_uploads(self, files: dict, ff_unit="auto"):
        """``files``: {role: [{"name", "content"}]} as the page's file inputs give them (ff, water, fat,
        segmentation)."""
        paths = {}
        for role, items in files.items():
            items = items if isinstance(items, list) else [items]
            if items and items[0]:
                paths[role] = str(self.uploads.save(items[0]["name"], items[0]["content"]))
        if not paths:
            raise InputError("choose a file to upload first")
        self.open_files(**paths, ff_unit=ff_unit, name=Path(paths.get("ff") or paths.get("water", "case")).name)

    def open_picked(self):
        """Open the files chosen in the data-folder picker ({role: relative path})."""
        picked = {role: str(self.data_root.resolve(rel)) for role, rel in (self.state.picked or {}).items() if rel}
        self.open_files(**picked)

    def browse(self, relative: str = ""):
        self.state.picker = self.data_root.listing(relative)

    def pick(self, role: str, relative: str):
        self.data_root.resolve(relative)
        self.state.picked = {**(self.state.picked or {}), role: relative}

    def _after_load(self, name: str) -> None:
        p = self.p
        self.state.case_name = name
        self.state.has_case = True
        self.state.message = f"Opened {name}"
        self.views.show_background(self.logic.backgroundNode(p))
        if p.segmentation is not None:
            self.views.edit(p.segmentation, p.ff or p.water)
        self._refresh_segments()

    def _reset_outputs(self) -> None:
        for key in ("verdict", "probabilities", "legs", "chart_svg", "legend_html", "view_class", "segments",
                    "score_rows", "warnings", "message", "error", "progress_text", "active_segment", "overlay",
                    "has_fat_map"):
            self.state[key] = INITIAL_STATE[key]
        self.state.csv_ready = False
        self.state.has_segmentation = False
        self.score_rows = None

    # -- classification -------------------------------------------------------------------------------------
    def start_classify(self):
        if self.job is not None:
            raise InputError("a classification is already running")
        self.p.fatMap = bool(self.state.fat_map)  # the page's checkbox: also compute the fat attribution
        self.p.precision = self.precision  # the server's choice (a new case's scene starts from the defaults)
        self.job = self.logic.startClassify()
        self.state.classify_running = True
        self.state.progress, self.state.progress_text = 0, "starting the classification process…"

    def poll_classify(self) -> bool:
        """Advance a running classification; True while it still runs."""
        job = self.job
        if job is None:
            return False
        state = job.poll()
        if job.total:
            self.state.progress = round(100 * job.done / job.total)
            self.state.progress_text = f"classifying: slice batch {job.done} of {job.total}"
        if state == RUNNING:
            return True
        self.job = None
        self.state.classify_running = False
        self.state.progress_text = ""
        if state in (FINISHED, FAILED):
            self.guarded(self._finish, job)
        return False

    def _finish(self, job):
        self.logic.finishClassify(self.p, job)  # a failed job raises its one-line InputError here
        self._show_result()

    def cancel_classify(self):
        if self.job is not None:
            self.logic.cancelClassify(self.p, self.job)
            self.job = None
        self.state.classify_running = False
        self.state.progress, self.state.progress_text = 0, ""
        self.state.message = "Classification cancelled; the scene is as it was"

    def _stop_job(self):
        if self.job is not None:
            self.cancel_classify()

    def _show_result(self):
        p = self.p
        probs = p.probabilityDict()
        self.state.verdict = p.verdict
        self.state.probabilities = [{"name": c, "percent": f"{100 * probs.get(c, 0.0):.1f}"} for c in CLASSES]
        legs = p.legList()
        self.state.legs = [] if len(legs) < 2 else [
            {"side": leg["side"], "verdict": leg["verdict"],
             "percent": f"{100 * leg['probabilities'][leg['verdict']]:.1f}"} for leg in legs]
        self.state.chart_svg = graphics.probability_chart_svg(slice_probabilities(p.probabilityTable))
        self.state.message = f"Verdict: {self.logic.summaryText(p)}"
        self.state.view_class = p.viewClass
        self.state.has_fat_map = p.fatHeatmap(p.viewClass) is not None
        self.set_opacity(self.state.opacity)
        self.show_class(p.viewClass)

    # -- display --------------------------------------------------------------------------------------------
    def show_class(self, class_name: str):
        self._show(class_name=class_name)

    def set_overlay(self, overlay: str):
        """Show the ICAM heatmap ("icam") or the fat attribution ("fat"); the texture scores keep the ICAM's."""
        self._show(overlay=overlay)

    def _show(self, class_name=None, overlay=None):
        p = self.p
        p.displayFloor = float(self.state.display_floor)
        try:
            self.logic.showHeatmap(p, class_name or p.viewClass, overlay)
        finally:  # a refused choice leaves the page showing what the views show
            self.state.view_class, self.state.overlay = p.viewClass, p.overlay
        self.state.legend_html = graphics.legend_html(self.logic.overlayTitle(p), p.displayFloor)
        self.views.render()

    def set_opacity(self, opacity: float):
        self.state.opacity = float(opacity)
        if self.p.verdict:
            self.logic.setOpacity(float(opacity))
            self.views.render()

    def set_display_floor(self, floor: float):
        self.state.display_floor = float(floor)
        if self.p.verdict:
            self.show_class(self.p.viewClass)

    # -- muscles --------------------------------------------------------------------------------------------
    def create_segments(self):
        p = self.p
        node = self.logic.createMuscleSegments(p)
        self.views.edit(node, p.ff or p.water)
        self._refresh_segments()

    def select_segment(self, segment_id: str):
        self.views.select_segment(segment_id)
        self.state.active_segment = segment_id

    def set_effect(self, name: str):
        self.views.set_effect(name)
        self.state.effect = self.views.active_effect()

    def threshold_segment(self, low: float, high: float):
        self._need_segment()
        self.views.threshold(low, high)
        self.state.effect = "none"
        self._refresh_segments()

    def keep_largest_island(self):
        self._need_segment()
        self.views.keep_largest_island()
        self.state.effect = "none"
        self._refresh_segments()

    def undo(self):
        self.views.undo()
        self._refresh_segments()

    def _need_segment(self):
        if not self.views.active_segment_id():
            raise InputError("select a segment first")

    def _refresh_segments(self, *_):
        with self.state:
            p = self.p
            reference = p.ff or p.water
            node = p.segmentation
            if node is None or reference is None:
                self.state.segments, self.state.has_segmentation = [], False
                return
            counts = segment_voxel_counts(node, reference)
            seg = node.GetSegmentation()
            rows = []
            for i in range(seg.GetNumberOfSegments()):
                sid = seg.GetNthSegmentID(i)
                segment = seg.GetSegment(sid)
                rows.append({"id": sid, "name": segment.GetName(), "voxels": counts.get(segment.GetName(), 0),
                             "color": graphics.css_color(segment.GetColor())})
            self.state.segments = rows
            self.state.has_segmentation = True
            self.state.active_segment = self.views.active_segment_id()
            self.state.can_undo = self.views.can_undo()

    # -- texture scores and exports -------------------------------------------------------------------------
    def compute_scores(self):
        p = self.p
        p.threshold = float(self.state.score_threshold)
        by_leg = self.logic.computeLegScores(p)  # two legs: each scored on its own, as the command line does
        rows = self.logic.computeScores(p, classNote=by_leg is None)  # the rows shown say which class they are of
        self.score_rows = by_leg if by_leg else rows
        self.state.score_rows = ([graphics.score_row(r, side) for side, leg_rows in by_leg.items() for r in leg_rows]
                                 if by_leg else [graphics.score_row(r) for r in rows])
        self.state.csv_ready = True
        self.state.message = "Texture scores computed" + (" per leg" if by_leg else "")

    def scores_csv(self) -> str:
        if self.score_rows is None:
            raise InputError("no texture scores yet: click Compute texture scores first")
        return scores_csv_text(self.score_rows, self.p.scoreParameters())

    def export_folder(self, name: str):
        self.state.message = ""  # an earlier export's "written to" must not stand beside this one's refusal
        out = self.data_root.resolve(name)
        path = write_result_folder(self.p, out, leg_rows=self.score_rows if isinstance(self.score_rows, dict) else None)
        self.state.message = f"Results written to {self.data_root.relative(Path(path))}/ in the data folder"
