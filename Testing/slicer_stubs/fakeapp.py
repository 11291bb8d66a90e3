"""Test-only Slicer application around a real MRML scene: lets pytest import MDTexture.py and run its Widget.

``install(setattr_, setitem_, scene)`` puts the stand-ins in place through the two given functions (pytest's
``monkeypatch.setattr`` / ``monkeypatch.setitem``, undone after the test; or plain setters in a child process):
``qt``, ``ctk`` and ``slicer.ScriptedLoadableModule`` modules, ``slicer.app``, ``slicer.mrmlScene``,
``slicer.modules`` and the ``slicer.util`` functions that need the application (UI loading, dialogs, pip, module
reload). Everything MRML stays real (slicer-core). Dialogs are recorded in ``app.dialogs``; confirmations answer
``app.confirmAnswer``.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import slicer
import slicer.util

HERE = Path(__file__).resolve().parent
MODULE_PY = HERE.parent.parent / "MDTexture" / "MDTexture.py"


def _load(name, file):
    spec = importlib.util.spec_from_file_location(name, HERE / file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # ctk and uiloader import qt by name
    spec.loader.exec_module(module)
    return module


class FakeLayoutManager:
    def __init__(self):
        self.layouts = []

    def setLayout(self, layout_id):
        self.layouts.append(int(layout_id))

    @property
    def layout(self):
        return self.layouts[-1] if self.layouts else 0


class FakeApp:
    """``slicer.app``: the calls MDTexture.py makes on qSlicerApplication."""

    def __init__(self, scene, testing=True):
        self.testing = testing
        self.dialogs = []
        self.confirmAnswer = True
        self.cursorDepth = 0
        self.processEventsHooks = []
        self.layoutManagerStandIn = FakeLayoutManager()
        self.logic = slicer.vtkSlicerApplicationLogic()
        self.logic.SetMRMLScene(scene)

    def commandOptions(self):
        return types.SimpleNamespace(testingEnabled=self.testing)

    def testingEnabled(self):
        return self.testing

    def processEvents(self):
        for hook in list(self.processEventsHooks):
            hook()

    def setOverrideCursor(self, cursor):
        self.cursorDepth += 1

    def restoreOverrideCursor(self):
        self.cursorDepth -= 1

    def layoutManager(self):
        return self.layoutManagerStandIn

    def applicationLogic(self):
        return self.logic

    def connect(self, signal, slot):
        return True


def install(setattr_, setitem_, scene, testing=True):
    """Stand-ins in place; returns the FakeApp (its ``modules`` namespace is ``slicer.modules``)."""
    def register(name, file):
        setitem_(sys.modules, name, None)  # so that undoing restores what was there before
        module = _load(name, file)
        setitem_(sys.modules, name, module)
        return module

    register("qt", "qt.py")
    register("ctk", "ctk.py")
    uiloader = register("MDTextureTestUILoader", "uiloader.py")
    register("slicer.ScriptedLoadableModule", "ScriptedLoadableModule.py")
    app = FakeApp(scene, testing)
    setattr_(slicer, "mrmlScene", scene, raising=False)
    setattr_(slicer, "app", app, raising=False)
    setattr_(slicer, "selfTests", {}, raising=False)
    charts = []
    app.shownCharts = charts
    app.reloads = []
    modules = types.SimpleNamespace(
        mdtexture=types.SimpleNamespace(path=str(MODULE_PY)),
        plots=types.SimpleNamespace(logic=lambda: types.SimpleNamespace(ShowChartInLayout=charts.append)))
    setattr_(slicer, "modules", modules, raising=False)

    def record(kind, answer=None):
        def display(text, windowTitle=None, *args, **kwargs):
            app.dialogs.append((kind, str(text)))
            return app.confirmAnswer if answer == "confirm" else None
        return display

    def reload_scripted_module(module_name):
        """What slicer.util.reloadScriptedModule does to the source: execute the module file again."""
        app.reloads.append(module_name)
        spec = importlib.util.spec_from_file_location(module_name, MODULE_PY)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return module

    for name, value in {
        "loadUI": uiloader.load_ui, "childWidgetVariables": uiloader.child_widget_variables,
        "errorDisplay": record("error"), "warningDisplay": record("warning"), "infoDisplay": record("info"),
        "confirmOkCancelDisplay": record("confirm", "confirm"), "confirmYesNoDisplay": record("confirm", "confirm"),
        "mainWindow": lambda: None, "selectModule": lambda name: app.dialogs.append(("selectModule", name)),
        "pip_install": lambda *a, **k: app.dialogs.append(("pip_install", a)),
        "reloadScriptedModule": reload_scripted_module,
        "delayDisplay": lambda message, *a, **k: app.dialogs.append(("delay", message)),
    }.items():
        setattr_(slicer.util, name, value, raising=False)
    return app


def plain_setters():
    """(setattr_, setitem_) that just set, for a child process that ends after the test."""
    def setattr_(obj, name, value, raising=True):
        setattr(obj, name, value)

    def setitem_(mapping, key, value):
        mapping[key] = value
    return setattr_, setitem_


def load_module_file(setitem_):
    """MDTexture.py imported as Slicer imports a scripted module (by file, as ``MDTexture``)."""
    spec = importlib.util.spec_from_file_location("MDTexture", MODULE_PY)
    module = importlib.util.module_from_spec(spec)
    setitem_(sys.modules, "MDTexture", module)
    spec.loader.exec_module(module)
    return module
