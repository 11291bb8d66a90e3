"""Test-only stand-in for ``slicer.ScriptedLoadableModule`` (which needs the Qt application).

What MDTexture.py relies on, with Slicer's behaviour (Base/Python/slicer/ScriptedLoadableModule.py): the module's
``parent`` description and ``runTest``; the Widget's ``parent``, ``layout``, ``moduleName``, ``resourcePath``,
``setup``/``cleanup``/``onReload``; the Logic base; the Test base with ``delayDisplay``.
"""

import importlib
import os
import types
import unittest

import qt

import slicer


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent
        self.moduleName = self.__class__.__name__
        parent.title = ""
        parent.categories = []
        parent.dependencies = []
        parent.contributors = []
        parent.helpText = ""
        parent.acknowledgementText = ""
        slicer.selfTests[self.moduleName] = self.runTest

    def runTest(self, msec=100, **kwargs):
        module = importlib.import_module(self.__module__)
        testCase = getattr(module, self.moduleName + "Test")()
        testCase.messageDelay = msec
        testCase.runTest(**kwargs)


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.moduleName = self.__class__.__name__
        if self.moduleName.endswith("Widget"):
            self.moduleName = self.moduleName[:-6]
        self.developerMode = False
        self.parent = parent if parent is not None else types.SimpleNamespace(isEntered=True)
        self.layout = qt.QVBoxLayout()

    def resourcePath(self, filename):
        return os.path.join(os.path.dirname(slicer.util.modulePath(self.moduleName)), "Resources", filename)

    def setup(self):
        pass

    def cleanup(self):
        pass

    def onReload(self):
        slicer.util.reloadScriptedModule(self.moduleName)


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        self.moduleName = self.__class__.__name__[:-5] if self.__class__.__name__.endswith("Logic") else ""


class ScriptedLoadableModuleTest(unittest.TestCase):
    messages = []

    def delayDisplay(self, message, requestedDelay=None, msec=None):
        self.messages.append(message)


def new_parent():
    """What qSlicerScriptedLoadableModule hands to the module's constructor."""
    return types.SimpleNamespace()
