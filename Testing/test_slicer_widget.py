"""The Widget's own code (MDTexture/MDTexture.py) driven as a user would, against slicer-core's real MRML.

Qt is replaced by the minimal stand-ins in Testing/slicer_stubs (PythonQt's property/signal conventions); everything
in the scene is real. Classify runs the engine in a real separate process; Cancel kills it.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tempfile
import textwrap
import types
import unittest

import numpy as np
import pytest

import slicer

from slicer_widget_fixtures import STUBS, add_dixon_volumes, close_module, run_event_loop, start_module

#: The phantom the panel's Load phantom button makes in these tests: small, so a classification is quick.
TEST_PHANTOM = {"n_slices": 4, "matrix": 64, "pixel_mm": 3.0}


@pytest.fixture
def panel(monkeypatch):
    from MDTextureLib.slicer_bridge import phantom_scene

    for key, value in TEST_PHANTOM.items():
        monkeypatch.setitem(phantom_scene.SMALL, key, value)
    panel = start_module(monkeypatch.setattr, monkeypatch.setitem)
    yield panel
    close_module(panel)


@pytest.fixture(scope="module")
def untrained():
    from MDTextureLib.modelfile import build_model

    return build_model("icam28", seed=0)


def _names(scene):
    return sorted(scene.GetNthNode(i).GetName() or "" for i in range(scene.GetNumberOfNodes()))


# ---------------------------------------------------------------------------------------------------------------
# Issue 13, finding 1: the panel works before torch, torchvision, safetensors (and slicerio) are installed (torchvision
# stays hidden here although no requirement: nothing may import it)

NO_TORCH_SCRIPT = textwrap.dedent("""
    import json, sys
    for name in ("torch", "torchvision", "safetensors", "slicerio", "nrrd"):
        sys.modules[name] = None  # what a bare Slicer has: these cannot be imported
    sys.path.insert(0, {stubs!r})
    sys.path.insert(0, {testing!r})
    from slicer_widget_fixtures import fakeapp, start_module
    import slicer
    setattr_, setitem_ = fakeapp.plain_setters()
    panel = start_module(setattr_, setitem_)
    w, scene = panel.widget, panel.scene
    p = w.logic.getParameterNode()
    water = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "water")
    # A user picks a volume and moves the sliders: each change runs updateGUIFromParameterNode.
    w.ui.waterSelector.setCurrentNode(water)
    w.ui.thresholdSlider.value = 0.3
    w.ui.deviceComboBox.currentIndex = 1
    first = dict(info=w.ui.modelInfoLabel.text, threshold=p.threshold, device=p.device,
                 water=p.water.GetName() if p.water else None)
    w.ui.loadPhantomButton.click()  # try it without data: no torch, no slicerio needed
    w.ui.classifyButton.click()  # testing mode never installs: it says what is missing
    out = dict(first, dialogs=panel.app.dialogs, ff=p.ff.GetName() if p.ff else None,
               segments=p.segmentation.GetSegmentation().GetNumberOfSegments() if p.segmentation else 0,
               missing=panel.module.missingPackages(), button=w.ui.classifyButton.text,
               startup=sorted(m for m in ("SimpleITK", "scipy", "MDTextureLib.io") if m in panel.loadedAtStartup),
               imported=[m for m in ("torch", "torchvision", "safetensors", "slicerio") if sys.modules.get(m)])
    print("RESULT " + json.dumps(out))
""")


def test_panel_opens_and_updates_without_torch_safetensors_or_slicerio():
    script = NO_TORCH_SCRIPT.format(stubs=str(STUBS), testing=str(STUBS.parent))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=str(STUBS.parent.parent))
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    result = json.loads(out.stdout.split("RESULT ", 1)[1])
    assert result["threshold"] == pytest.approx(0.3) and result["device"] == "cpu" and result["water"] == "water"
    assert "icam28" in result["first"] if "first" in result else "icam28" in result["info"]
    assert "torch is not installed" in result["info"] and "Classify offers to install" in result["info"]
    assert result["missing"] == ["torch", "safetensors"]  # torchvision is no requirement (own ResNet18)
    assert result["ff"] == "Phantom DMD 0 ff" and result["segments"] == 7
    errors = [text for kind, text in result["dialogs"] if kind == "error"]
    assert len(errors) == 1 and "not installed automatically in testing mode: torch, safetensors" in \
        errors[0]
    assert result["button"] == "Classify" and result["imported"] == []
    assert result["startup"] == []  # Slicer's start-up imports nothing heavy for this module


# ---------------------------------------------------------------------------------------------------------------
# Set-up, parameters, Classify in a separate process, Cancel, scores, export


def test_setup_and_parameter_round_trip(panel):
    w, p = panel.widget, panel.widget.logic.getParameterNode()
    assert p.node.GetAttribute("ModuleName") == "MDTexture"
    assert w.ui.classifyButton.enabled is False  # nothing to classify yet
    w.ui.loadPhantomButton.click()
    assert w.ui.ffSelector.currentNode() is p.ff and p.ff.GetName() == "Phantom DMD 0 ff"
    assert w.ui.segmentationSelector.currentNode() is p.segmentation
    assert w.ui.classifyButton.enabled is True
    w.ui.thresholdSlider.value = 0.25
    w.ui.minOverlapSlider.value = 0.3
    w.ui.minAreaSpinBox.value = 12.5
    w.ui.targetClassComboBox.currentIndex = w.ui.targetClassComboBox.findText("CMD")
    assert (p.threshold, p.minOverlap, p.minAreaMm2, p.targetClass) == (0.25, 0.3, 12.5, "CMD")
    w.ui.precisionComboBox.currentIndex = w.ui.precisionComboBox.findText("fp32")
    assert p.precision == "fp32"
    p.precision = "bf16"  # parameter node -> GUI
    assert w.ui.precisionComboBox.currentText == "bf16"
    p.threshold = 0.6  # parameter node -> GUI
    assert w.ui.thresholdSlider.value == pytest.approx(0.6)
    # The panel follows the scene: a removed input disappears from the selector and the parameter node.
    panel.scene.RemoveNode(p.water)
    assert w.ui.waterSelector.currentNode() is None and p.water is None


def test_classify_in_a_separate_process_then_scores_and_export(panel, untrained, tmp_path, monkeypatch):
    w, scene = panel.widget, panel.scene
    p = w.logic.getParameterNode()
    w.ui.loadPhantomButton.click()
    w.logic.setModel(untrained)
    p.device = "cpu"
    p.precision = "fp32"  # what the user chose reaches the child process, and the result line says what ran
    w.ui.classifyButton.click()
    job = w._job
    assert job is not None and job.process.poll() is None  # the engine runs in its own process
    assert w.ui.classifyButton.text == "Cancel" and w.pollTimer.isActive() and w.ui.progressBar.visible
    assert w.ui.inputsCollapsibleButton.enabled is False
    w.exit()  # the user switches to another module while it runs: the result must still arrive
    run_event_loop(w, lambda: w._job is None)
    w.enter()
    assert (job.done, job.total) == (4, 4) and not os.path.exists(job.folder)
    assert not w.pollTimer.isActive() and not w.ui.progressBar.visible and w.ui.classifyButton.text == "Classify"
    assert [k for k, _t in panel.app.dialogs if k == "error"] == []
    heat = p.heatmap(p.viewClass)
    assert heat is not None and w.ui.resultLabel.text.startswith(p.verdict)
    assert p.precisionUsed == "fp32" and w.ui.resultLabel.text.endswith("[network in float32]")
    assert panel.app.layoutManagerStandIn.layout == 38  # slice views + table + plot
    # The process computed what the engine computes here.
    from MDTextureLib.inference import classify_volume
    from MDTextureLib.slicer_bridge.volumes import series_from_nodes

    # (from the same nodes: with water and fat the body mask, hence the window, comes from their magnitude)
    ref = classify_volume(series_from_nodes(water=p.water, fat=p.fat, ff=p.ff, ff_unit=p.ffUnit), untrained,
                          device="cpu", precision="fp32")
    np.testing.assert_allclose(p.probabilityDict()[p.verdict], ref.probabilities.max(), atol=1e-5)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(heat), ref.heatmap_for(p.viewClass), atol=1e-4)
    # Texture scores and export.
    w.ui.computeScoresButton.click()
    table = p.scoreTable
    assert table is not None and w.ui.scoreTableView.mrmlTableNode() is table and table.GetNumberOfRows() == 7
    qt = sys.modules["qt"]
    monkeypatch.setattr(qt.QFileDialog, "answer", str(tmp_path / "scores.csv"))
    w.ui.exportButton.click()
    proposed = qt.QFileDialog.calls[-1]["dir"]
    assert os.path.isabs(proposed) and proposed.endswith("texture scores.csv")  # finding 7: not relative
    assert (tmp_path / "scores.csv").read_text().count("\n") == 8


def test_fat_attribution_checkbox_and_overlay_choice(panel, untrained):
    """The checkbox reaches the child process (fat maps on the FF grid with the engine's values); the overlay choice
    shows the fat map in the slice views and leaves the score table as the ICAM made it."""
    w, scene = panel.widget, panel.scene
    p = w.logic.getParameterNode()
    assert w.ui.fatMapCheckBox.checked is False and p.fatMap is False
    from MDTextureLib.constants import FAT_MAP_CAVEAT

    for widget in (w.ui.fatMapCheckBox, w.ui.overlayComboBox):  # the fat map's measured limitation, where it is chosen
        assert FAT_MAP_CAVEAT in widget.toolTip
    from MDTextureLib.slicer_bridge.parameters import OVERLAYS

    assert panel.module.OVERLAYS == OVERLAYS  # the combo's positions are the parameter's values
    w.ui.loadPhantomButton.click()
    w.logic.setModel(untrained)
    p.device = "cpu"
    w.ui.fatMapCheckBox.click()
    assert p.fatMap is True
    p.fatMap = False  # parameter node -> GUI
    assert w.ui.fatMapCheckBox.checked is False
    w.ui.fatMapCheckBox.click()
    assert w.ui.overlayComboBox.enabled is False  # nothing to choose before a fat map exists
    w.ui.classifyButton.click()
    run_event_loop(w, lambda: w._job is None)
    assert [k for k, _t in panel.app.dialogs if k == "error"] == []
    from MDTextureLib.inference import classify_volume
    from MDTextureLib.slicer_bridge.volumes import ijk_to_ras, series_from_nodes

    ref = classify_volume(series_from_nodes(water=p.water, fat=p.fat, ff=p.ff, ff_unit=p.ffUnit), untrained,
                          device="cpu", fat_map=True)
    for c in ("DMD", "CMD", "normal"):
        fat = p.fatHeatmap(c)
        np.testing.assert_array_equal(ijk_to_ras(fat), ijk_to_ras(p.ff))
        np.testing.assert_allclose(slicer.util.arrayFromVolume(fat), ref.fat_heatmap_for(c), atol=1e-4)
    w.ui.computeScoresButton.click()
    icam_rows = w.logic.computeScores(p)
    assert w.ui.overlayComboBox.enabled is True and w.ui.overlayComboBox.currentText == "ICAM"
    w.ui.overlayComboBox.currentIndex = w.ui.overlayComboBox.findText("Fat attribution")
    assert p.overlay == "fat"
    composites = [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
                  for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))]
    assert composites and all(c.GetForegroundVolumeID() == p.fatHeatmap(p.viewClass).GetID() for c in composites)
    w.ui.computeScoresButton.click()
    assert w.logic.computeScores(p) == icam_rows
    assert p.scoreTable.GetAttribute("MDTexture.heatmap") == p.heatmap(p.viewClass).GetName()
    w.ui.overlayComboBox.currentIndex = 0
    assert p.overlay == "icam"
    assert all(c.GetForegroundVolumeID() == p.heatmap(p.viewClass).GetID() for c in composites)


def test_a_missing_model_file_is_said_before_any_process_starts(panel, tmp_path):
    w, scene = panel.widget, panel.scene
    w.ui.loadPhantomButton.click()
    w.ui.modelPathLineEdit.currentPath = str(tmp_path / "gone.json")
    before = _names(scene)
    w.ui.classifyButton.click()
    errors = [text for kind, text in panel.app.dialogs if kind == "error"]
    assert errors == [f"Classification could not start: model card not found: {tmp_path / 'gone.json'}"]
    assert w._job is None and w.ui.classifyButton.text == "Classify" and w.ui.classifyButton.enabled
    assert _names(scene) == before and not w.pollTimer.isActive()


def test_cancel_kills_the_process_at_once_and_leaves_the_scene_as_it_was(panel, untrained):
    w, scene = panel.widget, panel.scene
    p = w.logic.getParameterNode()
    w.ui.loadPhantomButton.click()
    p.ff = None  # FF derived from water and fat: the derived volume must go again on cancel
    w.logic.setModel(untrained)
    before = _names(scene)
    w.ui.classifyButton.click()
    job = w._job
    assert job is not None and "Phantom DMD 0 water FF" in _names(scene)
    w.ui.classifyButton.click()  # the same button now says Cancel
    assert job.process.poll() is not None  # killed, not waited for
    assert w._job is None and not w.pollTimer.isActive() and not os.path.exists(job.folder)
    assert _names(scene) == before and p.ff is None and p.verdict == ""
    assert w.ui.statusLabel.plainText.splitlines()[-1] == "Classification cancelled."
    assert w.ui.classifyButton.text == "Classify" and w.ui.classifyButton.enabled


def test_inputs_removed_mid_run_give_a_clear_message(panel, untrained):
    """Finding 5: the scene changes under a running classification: it stops at the next tick and says why."""
    w, scene = panel.widget, panel.scene
    p = w.logic.getParameterNode()
    w.ui.loadPhantomButton.click()
    w.logic.setModel(untrained)
    w.ui.classifyButton.click()
    job = w._job
    scene.RemoveNode(p.ff)
    w.pollTimer.fire()
    assert job.process.poll() is not None and w._job is None and not os.path.exists(job.folder)
    errors = [text for kind, text in panel.app.dialogs if kind == "error"]
    assert len(errors) == 1 and "fat-fraction volume was removed from the scene while classifying" in errors[0]
    assert all(p.heatmap(c) is None for c in ("DMD", "CMD", "normal")) and p.verdict == ""
    assert w.ui.classifyButton.text == "Classify" and not w.pollTimer.isActive()


def test_scene_close_mid_run_cancels_and_restores_the_parameter_node(panel, untrained):
    w, scene = panel.widget, panel.scene
    w.ui.loadPhantomButton.click()
    w.logic.setModel(untrained)
    w.ui.classifyButton.click()
    job = w._job
    scene.Clear(0)  # File / Close scene
    assert job.process.poll() is not None and w._job is None
    p = w.logic.getParameterNode()
    assert p.node.GetAttribute("ModuleName") == "MDTexture"  # finding 7
    assert p.water is None and p.verdict == "" and w.ui.classifyButton.text == "Classify"


def test_export_proposes_an_absolute_path(panel, monkeypatch, tmp_path):
    """Finding 7: Export's default path was relative to whatever the current directory was."""
    p = panel.widget.logic.getParameterNode()
    p.scoreTable = panel.scene.AddNewNodeByClass("vtkMRMLTableNode", "leg texture scores")
    qt = sys.modules["qt"]
    monkeypatch.setattr(qt.QFileDialog, "answer", "")  # the user cancels the dialog
    monkeypatch.chdir(tmp_path)
    panel.widget.ui.exportButton.click()
    proposed = qt.QFileDialog.calls[-1]["dir"]
    assert os.path.isabs(proposed) and os.path.basename(proposed) == "leg texture scores.csv"
    assert os.path.dirname(proposed) == os.path.expanduser("~")  # the scene was never saved: the home folder
    panel.scene.SetRootDirectory(str(tmp_path))
    panel.widget.ui.exportButton.click()
    assert qt.QFileDialog.calls[-1]["dir"] == str(tmp_path / "leg texture scores.csv")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------
# Finding 4: no second install; finding 7: versions checked after the install


def _fake_missing_torch(module, monkeypatch, installed):
    def problems():
        return {} if installed else {"torch": "torch is not installed"}
    monkeypatch.setattr(module, "packageProblems", problems, raising=False)
    monkeypatch.setattr(module, "missingPackages", lambda: list(problems()), raising=False)


@pytest.fixture
def user_panel(monkeypatch):
    """The panel outside testing mode (a user's Slicer: installs are offered)."""
    panel = start_module(monkeypatch.setattr, monkeypatch.setitem, testing=False)
    yield panel
    close_module(panel)


def test_classify_during_the_install_does_not_start_a_second_install(user_panel, monkeypatch):
    panel = user_panel
    w, module = panel.widget, panel.module
    water, fat = add_dixon_volumes(panel.scene)
    w.ui.waterSelector.setCurrentNode(water)
    w.ui.fatSelector.setCurrentNode(fat)
    assert w.ui.classifyButton.enabled
    state = {"installed": False}
    installs = []

    def problems():
        return {} if state["installed"] else {"torch": "torch is not installed"}
    monkeypatch.setattr(module, "packageProblems", problems, raising=False)
    monkeypatch.setattr(module, "missingPackages", lambda: list(problems()), raising=False)

    def pip_install(requirements, **kwargs):
        installs.append(requirements)
        w.ui.classifyButton.click()  # the install's progress dialog pumps events: the user clicks again
        state["installed"] = True
    monkeypatch.setattr(slicer.util, "pip_install", pip_install)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)
    monkeypatch.setattr(w.logic, "startClassify", lambda p: None, raising=False)  # tested elsewhere
    monkeypatch.setattr(w.logic, "classify", lambda p, **k: None)
    monkeypatch.setattr(w.logic, "showHeatmap", lambda p: None)
    w.ui.classifyButton.click()
    assert len(installs) == 1
    assert [k for k, _t in panel.app.dialogs].count("confirm") == 1
    assert panel.app.cursorDepth == 0


def test_an_old_torch_is_reported_and_rechecked_after_the_install(user_panel, monkeypatch):
    panel = user_panel
    module = panel.module
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "1.13.1+cu117" if name == "torch" else real_version(name))
    installs = []
    monkeypatch.setattr(slicer.util, "pip_install", lambda req, **k: installs.append(req))
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)
    assert module.missingPackages() == ["torch"]
    assert module.ensureDependencies() is False  # another extension's old torch is still there afterwards
    assert len(installs) == 1 and any("torch>=2.1" in str(r) for r in installs[0])
    kinds = [k for k, _t in panel.app.dialogs]
    assert kinds == ["confirm", "error"]
    assert "torch 1.13.1+cu117 is installed but MDTexture needs 2.1 or newer" in panel.app.dialogs[0][1]
    assert "torch 1.13.1+cu117" in panel.app.dialogs[1][1] and "Restart Slicer" in panel.app.dialogs[1][1]


# ---------------------------------------------------------------------------------------------------------------
# Finding 7: Reload reloads every engine module; the opacity slider leaks nothing


def test_reload_imports_every_engine_module_afresh(panel, monkeypatch):
    before = {n: m for n, m in sys.modules.items() if n.startswith("MDTextureLib")}
    for name, module in before.items():  # put the originals back after the test
        monkeypatch.setitem(sys.modules, name, module)
    assert {"MDTextureLib.scores", "MDTextureLib.io", "MDTextureLib.constants"} <= set(before)
    panel.widget.onReload()
    assert panel.app.reloads == ["MDTexture"]
    reloaded = sys.modules["MDTexture"]
    stale = sorted(n for n, m in before.items() if sys.modules.get(n) is m)
    assert stale == []  # every engine module the panel had loaded is a new module object now
    assert reloaded.MDTextureLogic is not panel.module.MDTextureLogic


# ---------------------------------------------------------------------------------------------------------------
# Finding 2 and 7: the self-test needs no slicerio, skips clearly without torch, and removes its temporary folder


def test_self_test_passes_without_slicerio_and_cleans_up(panel, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "slicerio", None)
    monkeypatch.setitem(sys.modules, "nrrd", None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    test = panel.module.MDTextureTest()
    test.messages = []
    test.runTest()
    assert test.messages[-1] == "MDTexture self-test passed"
    # job folders, saved model and the test's folder all removed (torch's own cache folder, made on its first use in
    # this process whatever MDTexture does, is not ours)
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith("torchinductor_")) == []
    names = _names(slicer.mrmlScene)
    assert "Phantom DMD 0 ff texture scores" in names and "Phantom DMD 0 ff ICAM DMD" in names


def test_self_test_skips_with_a_message_without_torch(panel, monkeypatch):
    _fake_missing_torch(panel.module, monkeypatch, installed=False)
    test = panel.module.MDTextureTest("runTest")
    test.messages = []
    result = unittest.TestResult()
    test.run(result)  # how ctest (slicer.testing.runUnitTest) runs it
    assert result.errors == [] and result.failures == []
    assert len(result.skipped) == 1 and "torch is not installed" in result.skipped[0][1]
    assert "Click Classify once to install" in test.messages[-1]


# ---------------------------------------------------------------------------------------------------------------
# Start-up integrations: Segment Statistics plugin and Sample Data entry


def test_startup_registers_the_statistics_plugin_and_the_phantom_sample(panel, monkeypatch):
    sys.path.insert(0, str(STUBS))
    try:
        import SegmentStatisticsPlugins
    finally:
        sys.path.remove(str(STUBS))
    registered, sources = [], {}
    segment_statistics = types.ModuleType("SegmentStatistics")
    segment_statistics.SegmentStatisticsLogic = types.SimpleNamespace(registerPlugin=registered.append)
    sample_data = types.ModuleType("SampleData")
    sample_data.SampleDataLogic = types.SimpleNamespace(
        registerCustomSampleDataSource=lambda **kw: sources.setdefault(kw["sampleName"], kw))
    monkeypatch.setitem(sys.modules, "SegmentStatistics", segment_statistics)
    monkeypatch.setitem(sys.modules, "SegmentStatisticsPlugins", SegmentStatisticsPlugins)
    monkeypatch.setitem(sys.modules, "SampleData", sample_data)
    panel.module.registerIntegrations()
    assert [type(p).__name__ for p in registered] == ["MDTextureSegmentStatisticsPlugin"]
    assert registered[0].keys == ["texture_score", "slices_present", "slices_highlighted"]
    source = sources["MDTexturePhantomDMD"]
    assert source["category"] == "MDTexture" and os.path.isfile(source["thumbnailFileName"])
    nodes = source["customDownloader"](None)  # what the Sample Data button calls: no download
    assert [n.GetName() for n in nodes] == ["Phantom DMD 0 water", "Phantom DMD 0 fat", "Phantom DMD 0 ff",
                                            "Phantom DMD 0 muscles"]
