"""Test-only stand-in for ``slicer.ScriptedLoadableModule`` (which needs the Qt application).

Only what MDTexture.py touches: the module's ``parent`` description, the Widget base and the Test base.
"""

import types
import unittest


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent
        parent.title = ""
        parent.categories = []
        parent.dependencies = []
        parent.contributors = []
        parent.helpText = ""
        parent.acknowledgementText = ""


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent


class ScriptedLoadableModuleLogic:
    pass


class ScriptedLoadableModuleTest(unittest.TestCase):
    messages = []

    def delayDisplay(self, message, msec=None):
        self.messages.append(message)


def new_parent():
    """What qSlicerScriptedLoadableModule hands to the module's constructor."""
    return types.SimpleNamespace()
