"""MDTexture: classify muscular dystrophy (DMD / CMD / normal) from lower-leg Dixon MRI and score muscle texture.

This file is the 3D Slicer module: the Module description, the first-use installer, the Widget (it only wires the
panel from ``Resources/UI/MDTexture.ui`` to the Logic) and the self-test. Every operation on the scene is in
``MDTextureLib.slicer_bridge`` (no Qt there), so it is tested outside Slicer. Nothing heavy is imported here: torch
and safetensors are needed only by the classification, which runs in a separate process.
"""

import importlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import traceback
import unittest

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

# Light imports only: the package resolves its names on first use, so Slicer's start-up loads no numpy-heavy code,
# SimpleITK or torch for this module (the Widget's setup brings the scene operations; a classification, torch).
from MDTextureLib import slicer_bridge  # noqa: E402
from MDTextureLib.constants import CLASSES, FAT_MAP_CAVEAT, MUSCLES  # noqa: E402
from MDTextureLib.errors import InputError  # noqa: E402
from MDTextureLib.slicer_bridge import requirements  # noqa: E402
from MDTextureLib.slicer_bridge.requirements import ENGINE_REQUIREMENTS, MINIMUM_VERSIONS  # noqa: E402,F401


def __getattr__(name):
    """``MDTexture.MDTextureLogic``, for scripts (``import MDTexture; MDTexture.MDTextureLogic()``), on first use."""
    if name == "MDTextureLogic":
        return slicer_bridge.MDTextureLogic
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

def _showError(message: str, exc: Exception) -> None:
    """An error dialog: the user's own mistake (InputError) in one line; anything else with its traceback, logged."""
    if isinstance(exc, InputError):
        slicer.util.errorDisplay(message.format(error=exc), windowTitle=_("MDTexture"))
        return
    logging.error(traceback.format_exc())
    slicer.util.errorDisplay(message.format(error=exc), windowTitle=_("MDTexture"), detailedText=traceback.format_exc())


HOMEPAGE = "https://github.com/MDTexture/SlicerMDTexture"
POLL_INTERVAL_MS = 250
#: The overlay choices in the order of the panel's "Map:" combo box (parameter Overlay).
OVERLAYS = ("icam", "fat")


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
            "the fraction of the slices containing it that the heatmap highlights. Optionally it also computes a fat "
            "attribution map (the fat each slice's class logit is sensitive to), shown instead of the ICAM heatmap on "
            "request; the texture scores always come from the ICAM heatmap. Fat map caveat: {caveat}. Research use "
            "only; not a medical device.").format(caveat=FAT_MAP_CAVEAT) + "<p>" + _("Documentation: {link}").format(
                link=f'<a href="{HOMEPAGE}#readme">{HOMEPAGE}</a>') + "</p>"
        self.parent.acknowledgementText = _(
            "Method: Cai et al., Texture analysis for muscular dystrophy classification in MRI with improved "
            "class activation mapping (ICAM), Pattern Recognition 86, 2019. Uses PyTorch, SimpleITK and 3D Slicer. "
            "Distributed under the BSD 3-Clause license.")
        app = getattr(slicer, "app", None)
        if app is not None:
            app.connect("startupCompleted()", registerIntegrations)


def registerIntegrations():
    """After Slicer's start-up: the texture score in Segment Statistics and the phantom in Sample Data. Each one
    is optional: a Slicer without that module only loses that entry."""
    for register in (registerSegmentStatisticsPlugin, registerSampleData):
        try:
            register()
        except Exception:  # a missing or changed optional module must not break the panel
            logging.warning("MDTexture: %s failed:\n%s", register.__name__, traceback.format_exc())


def registerSegmentStatisticsPlugin():
    from SegmentStatistics import SegmentStatisticsLogic
    from SegmentStatisticsPlugins import SegmentStatisticsPluginBase

    from MDTextureLib.slicer_bridge.segment_statistics import plugin_class

    SegmentStatisticsLogic.registerPlugin(plugin_class(SegmentStatisticsPluginBase)())


def registerSampleData():
    import SampleData

    iconPath = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Resources", "Icons", "MDTexture.png")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="MDTexture", sampleName="MDTexturePhantomDMD", uris=None, fileNames=None, nodeNames=None,
        thumbnailFileName=iconPath, customDownloader=_loadPhantomSample)


def _loadPhantomSample(source=None):
    """Sample Data entry: the synthetic DMD phantom, made on the spot (nothing is downloaded)."""
    nodes = slicer_bridge.load_phantom(slicer.mrmlScene, "DMD", seed=0)
    return [nodes["water"], nodes["fat"], nodes["ff"], nodes["segmentation"]]


# -------------------------------------------------------------------------------------------------------------------
# First-use installation of the engine's Python packages


def packageProblems():
    """{package: what is wrong} for torch and safetensors (missing or too old), without importing them."""
    return requirements.package_problems()


def missingPackages():
    """The engine's packages that are absent or too old."""
    return list(packageProblems())


def ensureDependencies():
    """True when torch and safetensors are installed in the versions needed; else ask once, install,
    check the versions again and report. Never installs in testing mode (RuntimeError instead)."""
    problems = packageProblems()
    if not problems:
        return True
    if slicer.app.commandOptions().testingEnabled:
        raise RuntimeError("MDTexture needs these Python packages, which are not installed automatically in testing "
                           f"mode: {', '.join(problems)} ({'; '.join(problems.values())})")
    if not slicer.util.confirmOkCancelDisplay(
            _("MDTexture needs these Python packages: {packages}.\n\n{details}.\n\nInstall them now? This needs a "
              "network connection and can take several minutes.").format(
                packages=", ".join(problems), details="; ".join(problems.values())),
            windowTitle=_("MDTexture: install Python packages")):
        return False
    constraints = requirements.constraints_file()
    slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
    try:
        if "torch" in problems:
            try:
                import PyTorchUtils  # the PyTorch extension picks the wheel matching the GPU driver
            except ImportError:
                PyTorchUtils = None
            if PyTorchUtils is not None:
                PyTorchUtils.PyTorchUtilsLogic().installTorch(
                    askConfirmation=False, torchVersionRequirement=">=" + MINIMUM_VERSIONS["torch"])
            else:
                slicer.util.pip_install([ENGINE_REQUIREMENTS["torch"], "-c", constraints])
        if "safetensors" in packageProblems():
            slicer.util.pip_install([ENGINE_REQUIREMENTS["safetensors"], "-c", constraints])
    except Exception as exc:
        slicer.util.errorDisplay(
            _("Installing the Python packages failed: {error}\n\nCheck the network connection, restart Slicer and "
              "click Classify again. If it fails again, install the PyTorch extension from the Extensions Manager, "
              "restart, and try once more.").format(error=exc),
            windowTitle=_("MDTexture: installation failed"), detailedText=traceback.format_exc())
        return False
    finally:
        slicer.app.restoreOverrideCursor()
        os.remove(constraints)
    importlib.invalidate_caches()
    still = packageProblems()
    if still:
        slicer.util.errorDisplay(
            _("After the installation: {details}. Restart Slicer and click Classify again; if another extension "
              "installed an older PyTorch, update it from the PyTorch module (PyTorch Utils).").format(
                details="; ".join(still.values())), windowTitle=_("MDTexture: restart needed"))
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
        self._busy = False  # an install or a classification is under way: Classify must not start another
        self._job = None  # the running classification (slicer_bridge.ClassifyJob)
        self._packageProblems = {}  # read once per panel and after an install, not on every parameter change

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MDTexture.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = slicer_bridge.MDTextureLogic()
        self.logic.log = self.addLog
        # the fat map's measured limitation, from the one place it is written (also in prediction.json and the app)
        for widget in (self.ui.fatMapCheckBox, self.ui.overlayComboBox):
            widget.toolTip = widget.toolTip + " " + _("Caveat: {caveat}.").format(caveat=FAT_MAP_CAVEAT)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        for selector in (self.ui.waterSelector, self.ui.fatSelector, self.ui.ffSelector,
                         self.ui.segmentationSelector, self.ui.scoreTableSelector):
            selector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.updateParameterNodeFromGUI)
        self.ui.fatMapCheckBox.connect("toggled(bool)", self.updateParameterNodeFromGUI)
        for combo in (self.ui.deviceComboBox, self.ui.precisionComboBox, self.ui.targetClassComboBox):
            combo.connect("currentIndexChanged(int)", self.updateParameterNodeFromGUI)
        for slider in (self.ui.thresholdSlider, self.ui.minOverlapSlider):
            slider.connect("valueChanged(double)", self.updateParameterNodeFromGUI)
        self.ui.minAreaSpinBox.connect("valueChanged(double)", self.updateParameterNodeFromGUI)
        self.ui.viewClassComboBox.connect("currentIndexChanged(int)", self.onViewChanged)
        self.ui.backgroundComboBox.connect("currentIndexChanged(int)", self.onViewChanged)
        self.ui.overlayComboBox.connect("currentIndexChanged(int)", self.onViewChanged)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)

        self.ui.loadPhantomButton.connect("clicked(bool)", self.onLoadPhantom)
        self.ui.classifyButton.connect("clicked(bool)", self.onClassifyButton)
        self.ui.showChartButton.connect("clicked(bool)", self.onShowChart)
        self.ui.createSegmentsButton.connect("clicked(bool)", self.onCreateSegments)
        self.ui.computeScoresButton.connect("clicked(bool)", self.onComputeScores)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)

        self.pollTimer = qt.QTimer()
        self.pollTimer.setInterval(POLL_INTERVAL_MS)
        self.pollTimer.connect("timeout()", self.onPollClassification)

        self.ui.progressBar.hide()
        self._packageProblems = packageProblems()
        self.initializeParameterNode()

    # -- life cycle ------------------------------------------------------------------------------------------------
    def cleanup(self):
        self._stopClassification(_("Classification cancelled: the module was closed."))
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self._stopClassification(_("Classification cancelled: the scene was closed."))
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onReload(self):
        """Developer "Reload": every MDTextureLib module is imported afresh, then Slicer reloads this file."""
        self._stopClassification(_("Classification cancelled: the module was reloaded."))
        for name in [n for n in sys.modules if n == "MDTextureLib" or n.startswith("MDTextureLib.")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        ScriptedLoadableModuleWidget.onReload(self)

    def initializeParameterNode(self):
        p = self.logic.getParameterNode()
        if p.water is None and p.fat is None and p.ff is None:
            self.logic.guessInputs(p)
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
            _selectText(self.ui.precisionComboBox, p.precision)
            _selectText(self.ui.targetClassComboBox, p.targetClass)
            _selectText(self.ui.viewClassComboBox, p.viewClass)
            _selectText(self.ui.backgroundComboBox, p.background)
            self.ui.fatMapCheckBox.checked = p.fatMap
            self.ui.overlayComboBox.currentIndex = OVERLAYS.index(p.overlay) if p.overlay in OVERLAYS else 0
            self.ui.opacitySlider.value = p.opacity
            self.ui.thresholdSlider.value = p.threshold
            self.ui.minOverlapSlider.value = p.minOverlap
            self.ui.minAreaSpinBox.value = p.minAreaMm2
            self.ui.scoreTableView.setMRMLTableNode(p.scoreTable)
            text = self.logic.modelDescription(p)
            problems = self._packageProblems
            if problems:
                text += "\n" + _("Not ready yet: {details}. Classify offers to install them (network, a few "
                                 "minutes).").format(details="; ".join(problems.values()))
            self.ui.modelInfoLabel.text = text
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
            p.precision = self.ui.precisionComboBox.currentText
            p.targetClass = self.ui.targetClassComboBox.currentText
            p.fatMap = self.ui.fatMapCheckBox.checked
            p.threshold = self.ui.thresholdSlider.value
            p.minOverlap = self.ui.minOverlapSlider.value
            p.minAreaMm2 = self.ui.minAreaSpinBox.value
        finally:
            p.node.EndModify(wasModifying)

    def _updateButtons(self):
        p = self._parameters
        running = self._job is not None
        haveInputs = p is not None and (p.ff is not None or (p.water is not None and p.fat is not None))
        haveHeatmap = p is not None and self.logic.currentHeatmap(p) is not None
        self.ui.classifyButton.enabled = running or (haveInputs and not self._busy)
        self.ui.classifyButton.text = _("Cancel") if running else _("Classify")
        for widget in (self.ui.inputsCollapsibleButton, self.ui.modelCollapsibleButton,
                       self.ui.heatmapCollapsibleButton, self.ui.musclesCollapsibleButton,
                       self.ui.scoresCollapsibleButton):
            widget.enabled = not self._busy
        self.ui.showChartButton.enabled = p is not None and p.probabilityChart is not None
        self.ui.createSegmentsButton.enabled = p is not None and (p.ff is not None or p.water is not None)
        self.ui.computeScoresButton.enabled = haveHeatmap and p.segmentation is not None
        # the fat attribution can be chosen only when the last Classify computed it
        self.ui.overlayComboBox.enabled = p is not None and p.viewClass in CLASSES and \
            p.fatHeatmap(p.viewClass) is not None
        self.ui.exportButton.enabled = p is not None and p.scoreTable is not None

    def addLog(self, text):
        self.ui.statusLabel.appendPlainText(text)
        logging.info(text)

    # -- classification: a separate process, polled by a timer; Cancel kills it --------------------------------
    def onClassifyButton(self):
        if self._job is not None:
            self.onCancelClassification()
            return
        if self._busy:  # the install's dialogs pump events: a second click must not start a second install
            return
        self._busy = True
        self._updateButtons()
        try:
            if not self._dependenciesReady():
                return
            self.updateParameterNodeFromGUI()
            self._job = self.logic.startClassify(self._parameters)
        except Exception as exc:
            _showError(_("Classification could not start: {error}"), exc)
        finally:
            if self._job is None:
                self._busy = False
                self._updateButtons()
        if self._job is None:
            return
        self.addLog(_("Classifying in a separate process…"))
        self.ui.progressBar.maximum = 0  # busy indicator until the first progress line
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        self._updateButtons()
        self.pollTimer.start()

    def _dependenciesReady(self):
        try:
            return ensureDependencies()
        except RuntimeError as exc:  # testing mode never installs
            slicer.util.errorDisplay(str(exc), windowTitle=_("MDTexture"))
            return False
        finally:
            self._packageProblems = packageProblems()

    def onPollClassification(self):
        job = self._job
        if job is None:
            self.pollTimer.stop()
            return
        gone = self.logic.jobInputsGone(self._parameters or self.logic.getParameterNode(), job)
        if gone:  # no point computing on: stop now and say why
            self._stopClassification(_("Classification cancelled: {reason}.").format(reason=gone))
            slicer.util.errorDisplay(_("Classification cancelled: {reason}. Select the inputs and click Classify "
                                       "again.").format(reason=gone), windowTitle=_("MDTexture"))
            return
        state = job.poll()
        if job.total:
            self.ui.progressBar.maximum = job.total
            self.ui.progressBar.value = job.done
        if state == slicer_bridge.job.RUNNING:
            return
        self.pollTimer.stop()
        self._job = None
        p = self._parameters or self.logic.getParameterNode()  # the user may have left the module meanwhile
        try:
            self.logic.finishClassify(p, job)
        except Exception as exc:
            _showError(_("Classification failed: {error}"), exc)
        else:
            self.logic.showHeatmap(p)
            self._showResultLayout()
            self.addLog(_("Verdict: {summary}").format(summary=self.logic.summaryText(p)))
        finally:
            self._endRun()

    def onCancelClassification(self):
        self._stopClassification(_("Classification cancelled."))

    def _stopClassification(self, message):
        job, self._job = self._job, None
        if job is None:
            return
        if hasattr(self, "pollTimer"):
            self.pollTimer.stop()
        self.logic.cancelClassify(self._parameters or self.logic.getParameterNode(), job)
        self.addLog(message)
        self._endRun()

    def _endRun(self):
        self._busy = False
        self.ui.progressBar.hide()
        self._updateButtons()
        self.updateGUIFromParameterNode()

    def _showResultLayout(self, table=None):
        """Slice views, the table and the probability plot on one screen."""
        p = self._parameters or self.logic.getParameterNode()
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None or p is None:
            return
        layoutManager.setLayout(self.logic.layoutWithTableAndPlot)
        selection = slicer.app.applicationLogic().GetSelectionNode()
        table = table or p.scoreTable or p.probabilityTable
        if table is not None:
            selection.SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()
        if p.probabilityChart is not None:
            selection.SetActivePlotChartID(p.probabilityChart.GetID())
            slicer.app.applicationLogic().PropagatePlotChartSelection()

    # -- other actions ---------------------------------------------------------------------------------------------
    def onLoadPhantom(self):
        with slicer.util.tryWithErrorDisplay(_("Cannot make the phantom."), waitCursor=True):
            nodes = self.logic.loadPhantom(self._parameters)
            self.addLog(_("Loaded the synthetic {cls} phantom (ground truth known; not patient data): {name}").format(
                cls=nodes["scan"].truth.get("class", "DMD"), name=nodes["ff"].GetName()))

    def onViewChanged(self, *args):
        p = self._parameters
        if p is None or self._updatingGUI:
            return
        p.background = self.ui.backgroundComboBox.currentText
        viewClass = self.ui.viewClassComboBox.currentText
        if p.heatmap(viewClass) is None:
            return
        overlay = OVERLAYS[max(0, self.ui.overlayComboBox.currentIndex)]
        try:
            with slicer.util.tryWithErrorDisplay(_("Cannot show the heatmap."), waitCursor=False):
                self.logic.showHeatmap(p, viewClass, overlay)
        finally:
            self.updateGUIFromParameterNode()  # a refused choice goes back to what is shown

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
            self._showResultLayout(table)
            scored = [r for r in rows if r.texture_score is not None]
            self.addLog(_("Texture scores for {n} muscles in {table}").format(n=len(scored), table=table.GetName()))

    def onExport(self):
        p = self._parameters
        if p is None or p.scoreTable is None:
            return
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Export texture scores"),
                                              self.logic.defaultExportPath(p), _("CSV files (*.csv)"))
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
    """Classifies a synthetic phantom with a small untrained model in the separate process the panel uses, and checks
    every number the Logic puts into the scene against the engine run in this process. Needs torch (skipped with a
    message when it is missing: testing mode never installs), no network, no file format beyond NRRD; cleans up."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_MDTexture_phantom()

    def test_MDTexture_phantom(self):
        missing = packageProblems()
        if missing:
            message = _("MDTexture self-test skipped: {details}. Click Classify once to install the packages, "
                        "then run the test again.").format(details="; ".join(missing.values()))
            self.delayDisplay(message)
            raise unittest.SkipTest(message)
        folder = tempfile.mkdtemp(prefix="MDTextureTest-")
        try:
            self._checkPhantom(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("MDTexture self-test passed")

    def _checkPhantom(self, folder):
        import numpy as np

        from MDTextureLib.constants import MUSCLE_LABELS
        from MDTextureLib.inference import classify_volume
        from MDTextureLib.io import series_from_arrays
        from MDTextureLib.modelfile import build_model
        from MDTextureLib.scores import texture_scores

        self.delayDisplay("Making a DMD phantom")
        logic = slicer_bridge.MDTextureLogic()
        p = logic.getParameterNode()
        nodes = logic.loadPhantom(p, n_slices=6, matrix=96, pixel_mm=2.0)
        scan = nodes["scan"]
        self.assertIs(p.ff, nodes["ff"])
        self.assertEqual(slicer_bridge.segment_names(p.segmentation), list(MUSCLES))

        self.delayDisplay("Classifying in a separate process")
        model = build_model("icam28", seed=0)
        logic.setModel(model)
        p.device = "cpu"
        p.fatMap = True
        job = logic.startClassify(p)
        self.assertEqual(job.wait(timeout_s=600), slicer_bridge.job.FINISHED, job.log_text())
        self.assertEqual((job.done, job.total), (6, 6))
        result = logic.finishClassify(p, job)
        self.assertFalse(os.path.exists(job.folder))
        logic.showHeatmap(p)

        grid = slicer_bridge.grid_of_volume(p.ff)
        # the phantom's water and fat as well: with them the body mask (hence the window) comes from their magnitude
        series = series_from_arrays(grid, ff=scan.ff.astype(np.float32), water=scan.water.astype(np.float32),
                                    fat=scan.fat.astype(np.float32))
        reference = classify_volume(series, model, device="cpu", fat_map=True)
        np.testing.assert_allclose(result.probabilities, reference.probabilities, atol=1e-5)
        ffMatrix = slicer_bridge.ijk_to_ras(p.ff)
        for c in CLASSES:
            heat = p.heatmap(c)
            self.assertEqual(heat.GetName(), f"{p.ff.GetName()} ICAM {c}")
            np.testing.assert_array_equal(slicer_bridge.ijk_to_ras(heat), ffMatrix)
            np.testing.assert_allclose(slicer.util.arrayFromVolume(heat), reference.heatmap_for(c), atol=1e-4)
            fat = p.fatHeatmap(c)
            np.testing.assert_array_equal(slicer_bridge.ijk_to_ras(fat), ffMatrix)
            np.testing.assert_allclose(slicer.util.arrayFromVolume(fat), reference.fat_heatmap_for(c), atol=1e-4)
        logic.showHeatmap(p, overlay="fat")  # shown instead of the ICAM; the scores below still use the ICAM

        self.delayDisplay("Scoring the muscles")
        p.threshold = 0.4
        rows = logic.computeScores(p)
        names = {MUSCLE_LABELS[m]: m for m in MUSCLES}
        expected = texture_scores(slicer.util.arrayFromVolume(p.heatmap(p.viewClass)), scan.labels, names,
                                  scan.ff, grid.spacing, p.scoreParameters())
        self.assertEqual(rows, expected)
        voxelMl = float(np.prod(scan.spacing_mm)) / 1000.0
        for row in rows:
            self.assertAlmostEqual(row.volume_ml, float((scan.labels == MUSCLE_LABELS[row.muscle]).sum()) * voxelMl)

        self.delayDisplay("Creating muscle segments and exporting the table")
        self.assertIs(logic.createMuscleSegments(p), p.segmentation)  # all seven present already: nothing added
        written = logic.exportScores(os.path.join(folder, "scores.csv"), p)
        with open(written) as fh:
            self.assertEqual(len(fh.read().strip().splitlines()), 1 + len(rows))
