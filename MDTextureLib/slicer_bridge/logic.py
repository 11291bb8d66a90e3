"""The module's Logic: every operation of the MDTexture panel on the scene, without Qt.

The Widget (MDTexture/MDTexture.py) wires buttons to these methods; a browser face can import the same class.
torch is imported only when a volume is classified in this process; the panel's own calls never need it.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Optional

import numpy as np
import vtk

import slicer
import slicer.util

from ..constants import CLASSES
from ..errors import InputError
from ..io import DixonSeries, normalise_ff
from ..labelcheck import mask_size_warnings
from ..modelcard import default_model_path, read_card
from ..precision import PRECISION_NAMES
from ..scores import normal_class_warning
from .case_files import load_case_files, load_study_folder
from .display import LAYOUT_FOUR_UP_PLOT_TABLE, OVERLAY_TITLES, SOURCE_FF_REFERENCE, heatmap_node, \
    set_foreground_opacity, show_color_legend, show_in_slice_views, style_heatmap
from .inputs import guess_dixon_inputs
from .job import ClassifyJob, ClassifyOutcome
from .parameters import OVERLAYS, MDTextureParameters, parameter_node
from .phantom_scene import load_phantom
from .segments import create_muscle_segments, score_segments, segment_masks
from .tables import export_table, fill_score_table, probability_chart, probability_table
from .volumes import array_of_volume, derived_ff_node, grid_of_volume, series_from_nodes, set_volume_array
from .worker import leg_facts

OUTPUT_FOLDER_ATTRIBUTE = "MDTexture.outputs"


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
        return parameter_node(self.scene)

    # -- model -------------------------------------------------------------------------------------------------
    def setModel(self, model) -> None:
        """Use this engine Model (e.g. an untrained one in a self-test) instead of loading ModelPath."""
        self._model = model
        self._model_key = ("given", id(model))

    def modelPathFor(self, p: MDTextureParameters) -> Optional[str]:
        """The model card the next Classify uses (torch-free: the panel calls it before PyTorch is installed)."""
        if p.modelPath:
            return p.modelPath
        path = default_model_path()
        return str(path) if path is not None else None

    def modelDescription(self, p: MDTextureParameters) -> str:
        """One line for the panel: which model, trained or not; torch-free."""
        if self._model is not None and self._model_key and self._model_key[0] == "given":
            return f"Using {self._model.name} (set by a script)"
        path = self.modelPathFor(p)
        if path is None:
            return "No model is shipped with this installation: choose a model card (.json)."
        try:
            card = read_card(path)
        except InputError as exc:
            return f"Model: {exc}"
        trained = "" if card.get("training") else "; UNTRAINED (random weights): its verdict means nothing"
        return f"Using {card.get('name', os.path.basename(path))} ({os.path.basename(path)}){trained}"

    def loadModel(self, p: MDTextureParameters):
        if self._model is not None and self._model_key and self._model_key[0] == "given":
            return self._model
        path = self.modelPathFor(p)
        if path is None:
            raise InputError("no model file: this installation ships no trained model; choose a model file "
                             "(NAME.json next to NAME.safetensors)")
        key = (os.path.abspath(path), os.path.getmtime(path) if os.path.exists(path) else None)
        if self._model is None or key != self._model_key:
            from ..modelfile import load_model

            self._model = load_model(path)
            self._model_key = key
        return self._model

    # -- inputs ------------------------------------------------------------------------------------------------
    def guessInputs(self, p: MDTextureParameters) -> dict:
        """Fill the empty water/fat/FF choices from the scene's volumes (DICOM tags, else names)."""
        found = guess_dixon_inputs(self.scene)
        for role, attribute in (("water", "water"), ("fat", "fat"), ("ff", "ff")):
            if role in found and getattr(p, attribute) is None:
                setattr(p, attribute, found[role])
        return found

    def loadPhantom(self, p: Optional[MDTextureParameters] = None, class_name: str = "DMD", seed: int = 0,
                    **size) -> dict:
        """Add the synthetic phantom (water, fat, FF, muscle segments) and select it as the inputs."""
        p = p or self.getParameterNode()
        nodes = load_phantom(self.scene, class_name, seed, **size)
        was = p.node.StartModify()
        p.water, p.fat, p.ff, p.segmentation = nodes["water"], nodes["fat"], nodes["ff"], nodes["segmentation"]
        p.ffUnit = "fraction"
        p.node.EndModify(was)
        return nodes

    def loadFiles(self, p: Optional[MDTextureParameters] = None, ff=None, water=None, fat=None, segmentation=None,
                  ff_unit: str = "auto", names: Optional[dict] = None) -> dict:
        """Read a case's files with the engine's readers (refused whole, with its one-line InputError, before any
        node is added) and select them as the inputs. Returns the nodes and the readers' warnings."""
        p = p or self.getParameterNode()
        nodes = load_case_files(self.scene, ff=ff, water=water, fat=fat, segmentation=segmentation, ff_unit=ff_unit,
                                names=names)
        was = p.node.StartModify()
        p.water, p.fat, p.ff, p.segmentation = nodes["water"], nodes["fat"], nodes["ff"], nodes["segmentation"]
        p.ffUnit = ff_unit
        p.node.EndModify(was)
        for note in nodes["warnings"]:
            self.log(note)
        return nodes

    def loadStudy(self, folder, p: Optional[MDTextureParameters] = None) -> dict:
        """A DICOM study's Dixon series, picked by their tags, as the selected inputs (FF as a fraction)."""
        p = p or self.getParameterNode()
        nodes = load_study_folder(self.scene, folder)
        was = p.node.StartModify()
        p.water, p.fat, p.ff, p.segmentation = nodes["water"], nodes["fat"], nodes["ff"], None
        p.ffUnit = "fraction"
        p.node.EndModify(was)
        for note in nodes["warnings"]:
            self.log(note)
        return nodes

    def prepareSeries(self, p: MDTextureParameters) -> DixonSeries:
        """The engine's series from the selected volumes; adds the derived FF volume when none is selected."""
        series = series_from_nodes(water=p.water, fat=p.fat, ff=p.ff, ff_unit=p.ffUnit)
        if p.ff is None:
            p.ff = derived_ff_node(self.scene, series, p.water)
            self.log(f"Fat fraction derived from water and fat: {p.ff.GetName()}")
        return series

    # -- classification in this process (scripts, self-test) -----------------------------------------------
    def classify(self, p: Optional[MDTextureParameters] = None, progress=None, cancel=None):
        """Classify the selected series here; writes the three heatmap volumes, the probability table and chart.

        ``progress(done, total)`` is called with 0 first, then after each batch of slices; ``cancel()`` returning
        True stops with InterruptedError; the scene is left as it was before the call in that case.
        """
        from ..inference import classify_volume

        p = p or self.getParameterNode()
        had_ff = p.ff is not None
        series = self.prepareSeries(p)
        ff_id = p.ff.GetID()
        try:
            model = self.loadModel(p)
            target = None if p.targetClass in ("", "auto") else p.targetClass
            result = classify_volume(series, model, device=p.device or "auto", precision=p.precision or "auto",
                                     target_class=target, batch_size=max(1, p.batchSize), progress=progress,
                                     cancel=cancel, fat_map=p.fatMap)
        except BaseException:
            if not had_ff:
                self._forgetDerivedFF(p, ff_id)
            raise
        for note in series.warnings:
            self.log(note)
        return self._applyResult(p, ff_id, result)

    # -- classification in a separate process (the panel) --------------------------------------------------
    def startClassify(self, p: Optional[MDTextureParameters] = None, python: Optional[str] = None) -> ClassifyJob:
        """Start classifying in a child process; poll the returned job, then call finishClassify (or
        cancelClassify). The derived FF volume (when no FF is selected) is added now and removed on cancel."""
        p = p or self.getParameterNode()
        had_ff = p.ff is not None
        series = self.prepareSeries(p)
        ff_id = p.ff.GetID()
        try:
            given = self._model if (self._model_key and self._model_key[0] == "given") else None
            model_path = None
            if given is None:
                model_path = self.modelPathFor(p)
                if model_path is None:
                    raise InputError("no model file: this installation ships no trained model; choose a model "
                                     "file (NAME.json next to NAME.safetensors)")
                read_card(model_path)  # a missing or broken card is said now, not by the child process
            target = None if p.targetClass in ("", "auto") else p.targetClass
            job = ClassifyJob.start(series, model_path, device=p.device or "auto", precision=p.precision or "auto",
                                    target_class=target, batch_size=max(1, p.batchSize), python=python, model=given,
                                    env=_startup_environment(), fat_map=p.fatMap)
        except BaseException:
            if not had_ff:
                self._forgetDerivedFF(p, ff_id)
            raise
        job.context = {"ff_id": ff_id, "derived_ff": not had_ff, "warnings": list(series.warnings)}
        return job

    def finishClassify(self, p: MDTextureParameters, job: ClassifyJob):
        """Bring a finished job's result into the scene; InputError when it failed or its inputs are gone."""
        try:
            outcome = job.outcome()
            for note in job.context.get("warnings", []):
                self.log(note)
            return self._applyResult(p, job.context["ff_id"], outcome)
        except BaseException:
            if job.context.get("derived_ff"):
                self._forgetDerivedFF(p, job.context["ff_id"])
            raise
        finally:
            job.cleanup()

    def jobInputsGone(self, p: MDTextureParameters, job: ClassifyJob) -> str:
        """Why the job's result could no longer be placed ('' while its FF volume is still the selected one)."""
        ff_id = job.context.get("ff_id")
        if self.scene.GetNodeByID(ff_id) is None:
            return "the fat-fraction volume was removed from the scene while classifying"
        if p.ff is None or p.ff.GetID() != ff_id:
            return "the fat-fraction volume was replaced while classifying"
        return ""

    def cancelClassify(self, p: MDTextureParameters, job: ClassifyJob) -> None:
        """Stop the job now and leave the scene as it was before startClassify."""
        job.cancel()
        if job.context.get("derived_ff"):
            self._forgetDerivedFF(p, job.context["ff_id"])

    def _forgetDerivedFF(self, p: MDTextureParameters, ff_id: str) -> None:
        node = self.scene.GetNodeByID(ff_id)
        if p.ff is not None and p.ff.GetID() == ff_id:
            p.ff = None
        if node is not None:
            self._removeNode(node)

    def _applyResult(self, p: MDTextureParameters, ff_id: str, result):
        """Heatmap volumes, verdict, probability table and chart from an engine result, on the FF volume."""
        ff_node = self.scene.GetNodeByID(ff_id)
        if ff_node is None or p.ff is None or p.ff.GetID() != ff_id:
            raise InputError("the fat-fraction volume was removed or replaced while classifying; nothing was added "
                             "to the scene: select the inputs and click Classify again")
        self.lastResult = result
        for c in CLASSES:
            node = heatmap_node(self.scene, ff_node, result.heatmap_for(c), c, node=p.heatmap(c),
                                floor=p.displayFloor, model_name=result.model_name,
                                model_sha256=result.model_sha256)
            p.setHeatmap(c, node)
        self._applyFatMaps(p, ff_node, result)
        p.verdict = result.verdict
        p.probabilities = json.dumps({c: round(float(x), 6) for c, x in zip(CLASSES, result.probabilities)})
        p.modelName = result.model_name
        p.modelSha256 = result.model_sha256
        p.precisionUsed = result.precision
        p.viewClass = result.target_class
        self._applyLegs(p, ff_node, result)
        title = f"{ff_node.GetName()} ICAM per-slice probabilities"
        p.probabilityTable = probability_table(self.scene, result.slice_probabilities, title,
                                               node=p.probabilityTable)
        p.probabilityChart = probability_chart(self.scene, p.probabilityTable, title, chart=p.probabilityChart)
        self.groupOutputs(p)
        for note in result.warnings:
            self.log(note)
        return result

    def _applyFatMaps(self, p: MDTextureParameters, ff_node, result) -> None:
        """The fat attribution volumes when the result has them; otherwise an earlier Classify's are removed (they
        belong to another run) and the overlay goes back to the ICAM."""
        computed = (result.fat_heatmaps if isinstance(result, ClassifyOutcome) else result.fat_maps) is not None
        for c in CLASSES:
            if computed:
                node = heatmap_node(self.scene, ff_node, result.fat_heatmap_for(c), c, node=p.fatHeatmap(c),
                                    floor=p.displayFloor, model_name=result.model_name,
                                    model_sha256=result.model_sha256, overlay="fat")
                p.setFatHeatmap(c, node)
            elif p.fatHeatmap(c) is not None:
                self._removeNode(p.fatHeatmap(c))
                p.setFatHeatmap(c, None)
        if not computed and p.overlay == "fat":
            p.overlay = "icam"
            self.log("No fat attribution was computed in this run: showing the ICAM heatmap")

    def _applyLegs(self, p: MDTextureParameters, ff_node, result) -> None:
        """Each leg's verdict (parameter Legs) and, with two legs, which leg owns each voxel (a labelmap)."""
        if isinstance(result, ClassifyOutcome):
            legs, owner = result.legs, result.leg_owner
        else:
            legs, owner = leg_facts(result)
        p.legs = json.dumps(legs)
        if owner is None:
            if p.legOwner is not None:
                self._removeNode(p.legOwner)
            p.legOwner = None
            return
        p.legOwner = set_volume_array(self.scene, p.legOwner, owner.astype(np.uint8), ff_node,
                                      f"{ff_node.GetName()} legs", node_class="vtkMRMLLabelMapVolumeNode")

    def _removeNode(self, node) -> None:
        for i in range(node.GetNumberOfDisplayNodes()) if hasattr(node, "GetNumberOfDisplayNodes") else ():
            display = node.GetNthDisplayNode(i)
            if display is not None:
                self.scene.RemoveNode(display)
        storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
        if storage is not None:
            self.scene.RemoveNode(storage)
        self.scene.RemoveNode(node)

    # -- outputs in the Data module --------------------------------------------------------------------------
    def groupOutputs(self, p: MDTextureParameters):
        """Put the module's outputs (heatmaps, tables, chart, derived FF) in one subject-hierarchy folder named after
        the FF volume, under the FF volume's own study when it has one. Returns the folder item ID (0 if none)."""
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self.scene)
        if sh is None or p.ff is None:
            return 0
        ff_item = sh.GetItemByDataNode(p.ff)
        parent = sh.GetItemParent(ff_item) if ff_item else sh.GetSceneItemID()
        name = f"MDTexture {p.ff.GetName()}"
        folder = 0
        children = vtk.vtkIdList()
        sh.GetItemChildren(parent, children)
        for i in range(children.GetNumberOfIds()):
            item = children.GetId(i)
            if sh.GetItemAttribute(item, OUTPUT_FOLDER_ATTRIBUTE) == p.ff.GetID():
                folder = item
                break
        if not folder:
            folder = sh.CreateFolderItem(parent, name)
            sh.SetItemAttribute(folder, OUTPUT_FOLDER_ATTRIBUTE, p.ff.GetID())
        outputs = [p.heatmap(c) for c in CLASSES] + [p.fatHeatmap(c) for c in CLASSES]
        outputs += [p.probabilityTable, p.probabilityChart, p.scoreTable]
        if p.ff.GetAttribute("MDTexture.derivedFrom"):
            outputs.append(p.ff)
        for node in outputs:
            if node is None:
                continue
            item = sh.GetItemByDataNode(node)
            if item:
                sh.SetItemParent(item, folder)
            else:  # the application's subject-hierarchy plugins add an item for every node; without them, here
                sh.CreateItem(folder, node)
        return folder

    # -- display -------------------------------------------------------------------------------------------------
    def currentHeatmap(self, p: Optional[MDTextureParameters] = None):
        """The ICAM heatmap of ViewClass: the one the texture scores use, whatever overlay is shown."""
        p = p or self.getParameterNode()
        return p.heatmap(p.viewClass) if p.viewClass in CLASSES else None

    def currentOverlay(self, p: Optional[MDTextureParameters] = None):
        """The volume shown over the image: the ICAM heatmap of ViewClass, or its fat attribution (Overlay "fat")."""
        p = p or self.getParameterNode()
        if p.viewClass not in CLASSES:
            return None
        return p.fatHeatmap(p.viewClass) if p.overlay == "fat" else p.heatmap(p.viewClass)

    def overlayTitle(self, p: Optional[MDTextureParameters] = None) -> str:
        """The colour legend's title: which map of which class is shown (e.g. "fat attribution DMD")."""
        p = p or self.getParameterNode()
        return f"{OVERLAY_TITLES.get(p.overlay, 'ICAM')} {p.viewClass}"

    def backgroundNode(self, p: MDTextureParameters):
        if p.background == "Water" and p.water is not None:
            return p.water
        return p.ff if p.ff is not None else p.water

    def showHeatmap(self, p: Optional[MDTextureParameters] = None, class_name: Optional[str] = None,
                    overlay: Optional[str] = None):
        """Show the map of ``class_name`` (default: ViewClass) over FF or water in all slice views, with its colour
        legend: the ICAM heatmap, or the fat attribution with ``overlay`` (default: Overlay) "fat". Nothing changes
        when the map asked for is missing (InputError)."""
        p = p or self.getParameterNode()
        if class_name is not None and class_name not in CLASSES:
            raise InputError(f"unknown class {class_name!r}")
        if overlay is not None and overlay not in OVERLAYS:
            raise InputError(f"unknown overlay {overlay!r}; choose one of {', '.join(OVERLAYS)}")
        shown_class = class_name or p.viewClass
        if (overlay or p.overlay) == "fat" and shown_class in CLASSES and p.heatmap(shown_class) is not None \
                and p.fatHeatmap(shown_class) is None:
            raise InputError("no fat attribution map: tick 'Fat attribution map' and click Classify again")
        was = p.node.StartModify()
        if class_name is not None:
            p.viewClass = class_name
        if overlay is not None:
            p.overlay = overlay
        p.node.EndModify(was)
        heat = self.currentOverlay(p)
        if heat is None:
            raise InputError("no heatmap yet: click Classify first")
        style_heatmap(self.scene, heat, p.displayFloor)
        show_in_slice_views(self.scene, self.backgroundNode(p), heat, p.opacity)
        for other in [p.heatmap(c) for c in CLASSES] + [p.fatHeatmap(c) for c in CLASSES]:  # one legend: the shown
            legend = slicer.vtkSlicerColorLogic.GetColorLegendDisplayNode(other) if other is not None else None
            if legend is not None and other is not heat:
                legend.SetVisibility(False)
        show_color_legend(heat, self.overlayTitle(p))
        return heat

    def setOpacity(self, opacity: float, p: Optional[MDTextureParameters] = None) -> None:
        p = p or self.getParameterNode()
        p.opacity = float(opacity)
        set_foreground_opacity(self.scene, p.opacity)

    layoutWithTableAndPlot = LAYOUT_FOUR_UP_PLOT_TABLE

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
    def scoreInputs(self, p: MDTextureParameters) -> tuple:
        """(heatmap array, FF fraction array, FF grid) checked to share one grid; InputError naming what is missing."""
        if p.ff is None:
            raise InputError("no fat-fraction volume: select one, or classify water and fat first")
        heat = self.currentHeatmap(p)
        if heat is None:
            raise InputError("no heatmap yet: click Classify first")
        source = heat.GetNodeReference(SOURCE_FF_REFERENCE)
        if source is not None and source is not p.ff:  # hostile run: another FF on the same grid was scored silently
            raise InputError(f"the heatmap was computed from the volume {source.GetName()!r}, not from the selected "
                             f"fat-fraction volume {p.ff.GetName()!r}: click Classify again")
        ff_grid = grid_of_volume(p.ff)
        diff = ff_grid.mismatch(grid_of_volume(heat))
        if diff:
            raise InputError(f"the heatmap is not on the FF grid ({diff}); classify again")
        ff, _unit = normalise_ff(array_of_volume(p.ff, "fat-fraction volume"), p.ffUnit)
        return array_of_volume(heat, "heatmap"), ff, ff_grid

    def computeScores(self, p: Optional[MDTextureParameters] = None, classNote: bool = True) -> list:
        """Texture-score table from the shown heatmap and the segmentation, each segment on its own mask. When the
        shown heatmap is the class normal's, a note says that the scores are not disease texture (``classNote``
        False: the caller shows other rows, e.g. :meth:`computeLegScores`', which say so for their own classes)."""
        p = p or self.getParameterNode()
        heatmap, ff, ff_grid = self.scoreInputs(p)
        if p.segmentation is None:
            raise InputError("select or create a muscle segmentation first")
        params = p.scoreParameters()
        masks = segment_masks(p.segmentation, p.ff)
        rows = score_segments(heatmap, masks, ff, ff_grid.spacing, params)
        # a segment no calf muscle could be (all muscles, or the whole leg, drawn as one) is said beside its score
        for note in mask_size_warnings(masks, series_from_nodes(ff=p.ff, ff_unit=p.ffUnit).body_mask()):
            self.log(note)
        table = p.scoreTable
        if table is None:
            table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", f"{p.ff.GetName()} texture scores")
            p.scoreTable = table
        heat = self.currentHeatmap(p)
        fill_score_table(table, rows, params, {
            "heatmapClass": p.viewClass, "heatmap": heat.GetName(), "segmentation": p.segmentation.GetName(),
            "ff": p.ff.GetName(), "model": p.modelName, "modelSha256": p.modelSha256,
            "precision": p.precisionUsed})
        self.groupOutputs(p)
        note = normal_class_warning({"": p.viewClass}) if classNote else None
        if note:
            self.log(note)
        return rows

    def computeLegScores(self, p: Optional[MDTextureParameters] = None) -> Optional[dict]:
        """{leg side: texture-score rows} when the image holds two legs (None with one), as ``mdtexture classify``
        scores them: each leg on the voxels it owns, with the heatmap of that leg's own verdict (or of the target
        class asked for). A leg the segmentation does not reach is left out."""
        p = p or self.getParameterNode()
        legs = p.legList()
        if len(legs) < 2 or p.legOwner is None:
            return None
        _heat, ff, ff_grid = self.scoreInputs(p)
        if p.segmentation is None:
            raise InputError("select or create a muscle segmentation first")
        owner = array_of_volume(p.legOwner, "leg map").astype(np.uint8)
        masks = segment_masks(p.segmentation, p.ff)
        out = {}
        for number, leg in enumerate(legs, start=1):
            region = owner == number
            leg_masks = [(name, mask & region) for name, mask in masks]
            if not any(mask.any() for _name, mask in leg_masks):
                continue
            heat = array_of_volume(p.heatmap(leg["target_class"]), "heatmap")
            out[leg["side"]] = score_segments(heat, leg_masks, ff, ff_grid.spacing, p.scoreParameters())
        note = normal_class_warning({leg["side"]: leg["target_class"] for leg in legs if leg["side"] in out})
        if note:  # as `mdtexture classify` says it for the same legs
            self.log(note)
        return out

    def defaultExportPath(self, p: MDTextureParameters) -> str:
        """Where Export proposes to write: next to the saved scene, else in the home folder; always absolute."""
        root = self.scene.GetRootDirectory() or ""
        folder = root if root and os.path.isabs(root) and os.path.isdir(root) else os.path.expanduser("~")
        name = p.scoreTable.GetName() if p.scoreTable is not None else "texture scores"
        return os.path.join(os.path.abspath(folder), name + ".csv")

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
        text = f"{p.verdict}  (" + ", ".join(f"{c} {100 * probs.get(c, 0):.1f}%" for c in CLASSES) + ")"
        # what the network ran in, beside the answer it gave (bfloat16 was measured not to change verdicts: README)
        return text + (f"  [network in {PRECISION_NAMES.get(p.precisionUsed, p.precisionUsed)}]"
                       if p.precisionUsed else "")


def _startup_environment():
    """Inside the application, the environment Slicer started with (its launcher then sets up PythonSlicer afresh,
    as slicer.util.launchConsoleProcess does); None elsewhere (the child inherits this process's)."""
    app = getattr(slicer, "app", None)
    if app is None or not hasattr(app, "startupEnvironment"):
        return None
    return slicer.util.startupEnvironment()
