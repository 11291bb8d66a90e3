"""Shared by the Widget tests: the fake application around a real scene, MDTexture.py imported into it."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import slicer

STUBS = Path(__file__).resolve().parent / "slicer_stubs"
if str(STUBS) not in sys.path:
    sys.path.insert(0, str(STUBS))

import fakeapp  # noqa: E402  (Testing/slicer_stubs)


def register_segmentation_converters():
    """What the application's Segmentations module does at startup (slicer-core alone registers no rules)."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    for rule in ("vtkBinaryLabelmapToClosedSurfaceConversionRule", "vtkClosedSurfaceToBinaryLabelmapConversionRule"):
        factory.RegisterConverterRule(getattr(slicer, rule)())


def application_scene(views: int = 3):
    """A scene as the application has it: slice composite nodes (one per view), the colour-legend node class, the
    subject hierarchy."""
    scene = slicer.vtkMRMLScene()
    slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())
    for _ in range(views):
        scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
    return scene


def start_module(setattr_, setitem_, testing: bool = True):
    """(module, widget, app, scene): MDTexture.py imported with the stand-ins, its Widget set up."""
    register_segmentation_converters()
    scene = application_scene()
    app = fakeapp.install(setattr_, setitem_, scene, testing=testing)
    module = fakeapp.load_module_file(setitem_)
    module.MDTexture(sys.modules["slicer.ScriptedLoadableModule"].new_parent())
    loaded_at_startup = set(sys.modules)  # what Slicer's start-up (module discovery) has imported by now
    widget = module.MDTextureWidget()
    widget.setup()
    return types.SimpleNamespace(module=module, widget=widget, app=app, scene=scene,
                                 loadedAtStartup=loaded_at_startup)


def add_dixon_volumes(scene, shape=(4, 24, 28)):
    """A water and a fat volume (a fatty disc in water-rich muscle) added with MRML calls only."""
    import numpy as np

    z, y, x = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    leg = (y - shape[1] / 2) ** 2 + (x - shape[2] / 2) ** 2 < (min(shape[1:]) * 0.4) ** 2
    fat = np.where(leg, 200.0, 2.0).astype(np.float32)
    water = np.where(leg, 800.0, 2.0).astype(np.float32)
    nodes = []
    for name, array in (("water", water), ("fat", fat)):
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        node.SetSpacing(1.5, 1.5, 5.0)
        slicer.util.updateVolumeFromArray(node, array)
        node.CreateDefaultDisplayNodes()
        nodes.append(node)
    return nodes


def close_module(panel):
    """What Slicer does when the application quits: the Widget's cleanup, the scene's views let go of it."""
    panel.widget.cleanup()
    for ui_widget in panel.widget.layout._widgets:
        ui_widget.setMRMLScene(None)
    panel.scene.Clear(1)


def run_event_loop(widget, until, timeout_s: float = 300.0):
    """Fire the Widget's poll timer (what Qt's event loop does every 250 ms) until ``until()`` or the timeout."""
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError("the classification did not finish in time")
        time.sleep(0.05)
        widget.pollTimer.fire()
