"""MDTexture: classify muscular dystrophy (DMD / CMD / normal) from lower-leg Dixon MRI and score muscle texture.

This file is the 3D Slicer module: the Module description, the Widget (it only wires the panel from
``Resources/UI/MDTexture.ui`` to the Logic) and the self-test. Every operation on the scene is in
``MDTextureLib.slicer_bridge.MDTextureLogic``, which imports neither qt nor ctk, so it is tested outside Slicer.
"""

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import tempfile
import traceback

import ctk  # noqa: F401  (the .ui needs CTK's widgets registered)
import qt
import vtk

import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleTest,
                                           ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

try:  # Slicer >= 5.4
    from slicer.i18n import tr as _
    from slicer.i18n import translate
except ImportError:  # pragma: no cover - older Slicer
    def _(text):
        return text

    def translate(context, text):
        return text


def _ensureEngineImportable():
    """Installed extension: MDTextureLib sits next to this file. Source tree: it sits one folder up."""
    if importlib.util.find_spec("MDTextureLib") is not None:
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(root, "MDTextureLib", "__init__.py")) and root not in sys.path:
        sys.path.insert(0, root)


_ensureEngineImportable()

from MDTextureLib import slicer_bridge  # noqa: E402
from MDTextureLib.constants import CLASSES, MUSCLES  # noqa: E402
from MDTextureLib.errors import InputError  # noqa: E402

MDTextureLogic = slicer_bridge.MDTextureLogic

#: What the engine needs beyond Slicer's own Python (numpy and SimpleITK come with Slicer and are never replaced).
ENGINE_REQUIREMENTS = {"torch": "torch>=2.1", "torchvision": "torchvision>=0.16", "safetensors": "safetensors>=0.4"}


# -------------------------------------------------------------------------------------------------------------------
# Module


class MDTexture(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MDTexture")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["MDTexture developers"]
        self.parent.helpText = _(
            "Classifies a lower-leg Dixon MRI series as DMD, CMD or normal with an ICAM-ResNet18, shows where the "
            "network looked (class heatmaps over the fat-fraction or water image) and scores each calf muscle: "
            "the fraction of the slices containing it that the heatmap highlights. Research use only; not a "
            "medical device.")
        self.parent.acknowledgementText = _(
            "Method: Cai et al., texture analysis of muscular dystrophies in lower-leg Dixon MRI with an "
            "interpretable class activation map (ICAM) network. Uses PyTorch, SimpleITK and 3D Slicer.")


# -------------------------------------------------------------------------------------------------------------------
# First-use installation of the engine's Python packages


def missingPackages():
    return [name for name in ENGINE_REQUIREMENTS if importlib.util.find_spec(name) is None]


def _constraintsFile():
    """A pip constraints file pinning Slicer's own numpy and SimpleITK, so no install can replace them."""
    lines = []
    for name in ("numpy", "SimpleITK"):
        try:
            lines.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    handle, path = tempfile.mkstemp(prefix="MDTexture-constraints-", suffix=".txt")
    with os.fdopen(handle, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def ensureDependencies():
    """True when torch, torchvision and safetensors import; else ask, install, and report. Never in testing mode."""
    missing = missingPackages()
    if not missing:
        return True
    if slicer.app.commandOptions().testingEnabled:
        raise RuntimeError("MDTexture needs these Python packages, which are not installed automatically in testing "
                           f"mode: {', '.join(missing)}")
    if not slicer.util.confirmOkCancelDisplay(
            _("MDTexture needs these Python packages: {packages}.\n\nInstall them now? This needs a network "
              "connection and can take several minutes.").format(packages=", ".join(missing)),
            windowTitle=_("MDTexture: install Python packages")):
        return False
    constraints = _constraintsFile()
    slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
    try:
        if "torch" in missing or "torchvision" in missing:
            try:
                import PyTorchUtils  # the PyTorch extension picks the wheel matching the GPU driver
            except ImportError:
                PyTorchUtils = None
            if PyTorchUtils is not None:
                PyTorchUtils.PyTorchUtilsLogic().installTorch(
                    askConfirmation=False, torchVersionRequirement=">=2.1", torchvisionVersionRequirement=">=0.16")
            else:
                slicer.util.pip_install([ENGINE_REQUIREMENTS["torch"], ENGINE_REQUIREMENTS["torchvision"],
                                         "-c", constraints])
        if "safetensors" in missingPackages():
            slicer.util.pip_install([ENGINE_REQUIREMENTS["safetensors"], "-c", constraints])
    except Exception as exc:
        slicer.app.restoreOverrideCursor()
        slicer.util.errorDisplay(
            _("Installing the Python packages failed: {error}\n\nCheck the network connection, restart Slicer and "
              "click Classify again. If it fails again, install the PyTorch extension from the Extensions Manager, "
              "restart, and try once more.").format(error=exc),
            windowTitle=_("MDTexture: installation failed"), detailedText=traceback.format_exc())
        return False
    finally:
        os.remove(constraints)
    slicer.app.restoreOverrideCursor()
    importlib.invalidate_caches()
    still = missingPackages()
    if still:
        slicer.util.errorDisplay(
            _("Installed, but {packages} cannot be imported yet. Restart Slicer and click Classify again.").format(
                packages=", ".join(still)), windowTitle=_("MDTexture: restart needed"))
        return False
    return True


# -------------------------------------------------------------------------------------------------------------------
# Widget


class MDTextureWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel. It reads and writes the parameter node and calls the Logic; it does no MRML work itself."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameters = None
        self._updatingGUI = False
        self._running = False
        self._cancelRequested = False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MDTexture.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = MDTextureLogic()
        self.logic.log = self.addLog

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        for selector in (self.ui.waterSelector, self.ui.fatSelector, self.ui.ffSelector,
                         self.ui.segmentationSelector, self.ui.scoreTableSelector):
            selector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.updateParameterNodeFromGUI)
        for combo in (self.ui.deviceComboBox, self.ui.targetClassComboBox):
            combo.connect("currentIndexChanged(int)", self.updateParameterNodeFromGUI)
        for slider in (self.ui.thresholdSlider, self.ui.minOverlapSlider):
            slider.connect("valueChanged(double)", self.updateParameterNodeFromGUI)
        self.ui.minAreaSpinBox.connect("valueChanged(double)", self.updateParameterNodeFromGUI)
        self.ui.viewClassComboBox.connect("currentIndexChanged(int)", self.onViewChanged)
        self.ui.backgroundComboBox.connect("currentIndexChanged(int)", self.onViewChanged)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)

        self.ui.classifyButton.connect("clicked(bool)", self.onClassifyButton)
        self.ui.showChartButton.connect("clicked(bool)", self.onShowChart)
        self.ui.createSegmentsButton.connect("clicked(bool)", self.onCreateSegments)
        self.ui.computeScoresButton.connect("clicked(bool)", self.onComputeScores)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)

        self.ui.progressBar.hide()
        self.initializeParameterNode()

    # -- life cycle ------------------------------------------------------------------------------------------------
    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onReload(self):
        importlib.reload(slicer_bridge)
        ScriptedLoadableModuleWidget.onReload(self)

    def initializeParameterNode(self):
        p = self.logic.getParameterNode()
        if p.water is None and p.fat is None and p.ff is None:
            for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
                if node.IsA("vtkMRMLLabelMapVolumeNode"):
                    continue
                name = node.GetName().lower()
                if p.water is None and "water" in name:
                    p.water = node
                elif p.fat is None and "fat" in name and "fraction" not in name:
                    p.fat = node
                elif p.ff is None and ("ff" in name.split() or "fraction" in name or name == "ff"):
                    p.ff = node
        self.setParameterNode(p)

    def setParameterNode(self, parameters):
        if self._parameters is not None:
            self.removeObserver(self._parameters.node, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameters = parameters
        if parameters is not None:
            self.addObserver(parameters.node, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    # -- parameter node <-> GUI ------------------------------------------------------------------------------------
    def updateGUIFromParameterNode(self, caller=None, event=None):
        p = self._parameters
        if p is None or self._updatingGUI:
            return
        self._updatingGUI = True
        try:
            self.ui.waterSelector.setCurrentNode(p.water)
            self.ui.fatSelector.setCurrentNode(p.fat)
            self.ui.ffSelector.setCurrentNode(p.ff)
            self.ui.segmentationSelector.setCurrentNode(p.segmentation)
            self.ui.scoreTableSelector.setCurrentNode(p.scoreTable)
            self.ui.modelPathLineEdit.currentPath = p.modelPath
            _selectText(self.ui.deviceComboBox, p.device)
            _selectText(self.ui.targetClassComboBox, p.targetClass)
            _selectText(self.ui.viewClassComboBox, p.viewClass)
            _selectText(self.ui.backgroundComboBox, p.background)
            self.ui.opacitySlider.value = p.opacity
            self.ui.thresholdSlider.value = p.threshold
            self.ui.minOverlapSlider.value = p.minOverlap
            self.ui.minAreaSpinBox.value = p.minAreaMm2
            self.ui.scoreTableView.setMRMLTableNode(p.scoreTable)
            modelPath = self.logic.modelPathFor(p)
            self.ui.modelInfoLabel.text = (_("Using {path}").format(path=os.path.basename(modelPath)) if modelPath
                                           else _("No model is shipped with this installation: choose a model "
                                                  "card (.json)."))
            self.ui.resultLabel.text = self.logic.summaryText(p) or _("Not classified yet")
            self._updateButtons()
        finally:
            self._updatingGUI = False

    def updateParameterNodeFromGUI(self, *args):
        p = self._parameters
        if p is None or self._updatingGUI:
            return
        wasModifying = p.node.StartModify()
        try:
            p.water = self.ui.waterSelector.currentNode()
            p.fat = self.ui.fatSelector.currentNode()
            p.ff = self.ui.ffSelector.currentNode()
            p.segmentation = self.ui.segmentationSelector.currentNode()
            p.scoreTable = self.ui.scoreTableSelector.currentNode()
            p.modelPath = self.ui.modelPathLineEdit.currentPath
            p.device = self.ui.deviceComboBox.currentText
            p.targetClass = self.ui.targetClassComboBox.currentText
            p.threshold = self.ui.thresholdSlider.value
            p.minOverlap = self.ui.minOverlapSlider.value
            p.minAreaMm2 = self.ui.minAreaSpinBox.value
        finally:
            p.node.EndModify(wasModifying)

    def _updateButtons(self):
        p = self._parameters
        busy = self._running
        haveInputs = p is not None and (p.ff is not None or (p.water is not None and p.fat is not None))
        haveHeatmap = p is not None and self.logic.currentHeatmap(p) is not None
        self.ui.classifyButton.enabled = haveInputs or busy
        for widget in (self.ui.inputsCollapsibleButton, self.ui.modelCollapsibleButton,
                       self.ui.heatmapCollapsibleButton, self.ui.musclesCollapsibleButton,
                       self.ui.scoresCollapsibleButton):
            widget.enabled = not busy
        self.ui.showChartButton.enabled = p is not None and p.probabilityChart is not None
        self.ui.createSegmentsButton.enabled = p is not None and (p.ff is not None or p.water is not None)
        self.ui.computeScoresButton.enabled = haveHeatmap and p.segmentation is not None
        self.ui.exportButton.enabled = p is not None and p.scoreTable is not None

    def addLog(self, text):
        self.ui.statusLabel.appendPlainText(text)
        logging.info(text)

    # -- actions ---------------------------------------------------------------------------------------------------
    def onClassifyButton(self):
        if self._running:
            self._cancelRequested = True
            self.ui.classifyButton.text = _("Cancelling…")
            return
        if not ensureDependencies():
            return
        self.updateParameterNodeFromGUI()
        self._running, self._cancelRequested = True, False
        self.ui.classifyButton.text = _("Cancel")
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        self._updateButtons()
        try:
            self.logic.classify(self._parameters, progress=self._onProgress, cancel=lambda: self._cancelRequested)
        except InterruptedError:
            self.addLog(_("Classification cancelled."))
        except InputError as exc:
            slicer.util.errorDisplay(str(exc), windowTitle=_("MDTexture"))
        except Exception as exc:
            logging.error(traceback.format_exc())
            slicer.util.errorDisplay(_("Classification failed: {error}").format(error=exc),
                                     windowTitle=_("MDTexture"), detailedText=traceback.format_exc())
        else:
            self.logic.showHeatmap(self._parameters)
            self.addLog(_("Verdict: {summary}").format(summary=self.logic.summaryText(self._parameters)))
        finally:
            self._running = False
            self.ui.classifyButton.text = _("Classify")
            self.ui.progressBar.hide()
            self.updateGUIFromParameterNode()

    def _onProgress(self, done, total):
        self.ui.progressBar.maximum = total
        self.ui.progressBar.value = done
        slicer.app.processEvents()  # keeps the panel alive and lets Cancel be clicked between batches

    def onViewChanged(self, *args):
        p = self._parameters
        if p is None or self._updatingGUI:
            return
        p.background = self.ui.backgroundComboBox.currentText
        viewClass = self.ui.viewClassComboBox.currentText
        if p.heatmap(viewClass) is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot show the heatmap."), waitCursor=False):
            self.logic.showHeatmap(p, viewClass)

    def onOpacityChanged(self, value):
        if self._parameters is None or self._updatingGUI:
            return
        self.logic.setOpacity(value, self._parameters)

    def onShowChart(self):
        chart = self._parameters.probabilityChart if self._parameters is not None else None
        if chart is not None:
            slicer.modules.plots.logic().ShowChartInLayout(chart)

    def onCreateSegments(self):
        with slicer.util.tryWithErrorDisplay(_("Cannot create the muscle segments."), waitCursor=True):
            node = self.logic.createMuscleSegments(self._parameters)
            reference = self._parameters.ff or self._parameters.water
            slicer.util.selectModule("SegmentEditor")
            editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
            editor.setSegmentationNode(node)
            if hasattr(editor, "setSourceVolumeNode"):
                editor.setSourceVolumeNode(reference)
            else:  # Slicer before 5.2
                editor.setMasterVolumeNode(reference)

    def onComputeScores(self):
        self.updateParameterNodeFromGUI()
        with slicer.util.tryWithErrorDisplay(_("Cannot compute the texture scores."), waitCursor=True):
            rows = self.logic.computeScores(self._parameters)
            table = self._parameters.scoreTable
            self.ui.scoreTableView.setMRMLTableNode(table)
            layoutManager = slicer.app.layoutManager()
            if layoutManager is not None:
                layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
                slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
                slicer.app.applicationLogic().PropagateTableSelection()
            scored = [r for r in rows if r.texture_score is not None]
            self.addLog(_("Texture scores for {n} muscles in {table}").format(n=len(scored), table=table.GetName()))

    def onExport(self):
        p = self._parameters
        if p is None or p.scoreTable is None:
            return
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Export texture scores"),
                                              p.scoreTable.GetName() + ".csv", _("CSV files (*.csv)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot export the table."), waitCursor=True):
            written = self.logic.exportScores(path, p)
            self.addLog(_("Written {path}").format(path=written))


def _selectText(combo, text):
    index = combo.findText(text)
    if index >= 0:
        combo.currentIndex = index


# -------------------------------------------------------------------------------------------------------------------
# Self-test (Reload & Test, the Self Tests module, or ctest)


class MDTextureTest(ScriptedLoadableModuleTest):
    """Classifies a generated phantom with a small untrained model and checks every number the Logic puts into the
    scene against the engine run on the same files. Needs torch (not installed in testing mode), no network."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_MDTexture_phantom()

    def test_MDTexture_phantom(self):
        import numpy as np

        missing = missingPackages()
        if missing:
            raise RuntimeError(f"the self-test needs {', '.join(missing)}; click Classify once to install them")
        from MDTextureLib.constants import MUSCLE_LABELS
        from MDTextureLib.inference import classify_volume
        from MDTextureLib.io import load_dixon, read_labels
        from MDTextureLib.modelfile import build_model
        from MDTextureLib.phantom import make_scan, write_scan
        from MDTextureLib.scores import canonical_muscle, texture_scores

        self.delayDisplay("Writing a DMD phantom")
        folder = tempfile.mkdtemp(prefix="MDTextureTest-")
        scan = make_scan("DMD", seed=0, n_slices=6, matrix=96, pixel_mm=2.0)
        write_scan(scan, folder)
        files = {key: os.path.join(folder, key + ".nrrd") for key in ("water", "fat", "ff")}
        water = slicer.util.loadVolume(files["water"])
        fat = slicer.util.loadVolume(files["fat"])
        ff = slicer.util.loadVolume(files["ff"])
        segmentation = slicer.util.loadSegmentation(os.path.join(folder, "muscles.seg.nrrd"))

        self.delayDisplay("Classifying")
        model = build_model("icam28", seed=0)
        logic = MDTextureLogic()
        logic.setModel(model)
        p = logic.getParameterNode()
        p.water, p.fat, p.ff, p.device = water, fat, ff, "cpu"
        calls = []
        result = logic.classify(p, progress=lambda done, total: calls.append((done, total)))
        self.assertEqual(calls[-1], (6, 6))
        logic.showHeatmap(p)

        series = load_dixon(ff=files["ff"], water=files["water"], fat=files["fat"])
        reference = classify_volume(series, model, device="cpu")
        np.testing.assert_allclose(result.probabilities, reference.probabilities, atol=1e-6)
        ffMatrix = slicer_bridge.ijk_to_ras(ff)
        for c in CLASSES:
            heat = p.heatmap(c)
            self.assertEqual(heat.GetName(), f"{ff.GetName()} ICAM {c}")
            np.testing.assert_array_equal(slicer_bridge.ijk_to_ras(heat), ffMatrix)
            np.testing.assert_allclose(slicer.util.arrayFromVolume(heat), reference.heatmap_for(c), atol=1e-5)

        self.delayDisplay("Scoring the muscles")
        p.segmentation = segmentation
        p.threshold = 0.4
        rows = logic.computeScores(p)
        labelmap = read_labels(os.path.join(folder, "muscles.seg.nrrd"), series.grid)
        expected = texture_scores(reference.heatmap_for(p.viewClass), labelmap.labels, labelmap.names, series.ff,
                                  series.grid.spacing, p.scoreParameters())
        self.assertEqual(rows, expected)
        self.assertEqual([r.muscle for r in rows], list(MUSCLES))
        # The segmentation exported onto the FF grid is the phantom's own labelmap.
        labels, names = slicer_bridge.labels_from_segmentation(slicer.mrmlScene, segmentation, ff)
        remapped = np.zeros_like(scan.labels)
        for value, name in names.items():
            remapped[labels == value] = MUSCLE_LABELS[canonical_muscle(name)]
        np.testing.assert_array_equal(remapped, scan.labels)
        voxelMl = float(np.prod(scan.spacing_mm)) / 1000.0
        for row in rows:
            self.assertAlmostEqual(row.volume_ml, float((scan.labels == MUSCLE_LABELS[row.muscle]).sum()) * voxelMl)

        self.delayDisplay("Creating muscle segments and exporting the table")
        created = logic.createMuscleSegments(p)
        self.assertIs(created, segmentation)  # all seven present already: nothing added
        self.assertEqual(slicer_bridge.segment_names(created), slicer_bridge.segment_names(segmentation))
        written = logic.exportScores(os.path.join(folder, "scores.csv"), p)
        with open(written) as fh:
            self.assertEqual(len(fh.read().strip().splitlines()), 1 + len(rows))
        self.delayDisplay("MDTexture self-test passed")
