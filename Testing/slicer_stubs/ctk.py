"""Test-only stand-in for PythonQt's ``ctk`` module: the CTK widgets MDTexture's .ui uses (see qt.py for the rules)."""

from __future__ import annotations

import qt


class ctkCollapsibleButton(qt.QWidget):
    PROPERTIES = {"text": "", "collapsed": False}
    SIGNALS = ("contentsCollapsed(bool)",)

    def _changed(self, name, value):
        if name == "collapsed":
            self.emit("contentsCollapsed(bool)", value)


class ctkSliderWidget(qt._Range):
    PROPERTIES = {"maximum": 100.0, "decimals": 2}


class ctkPathLineEdit(qt.QWidget):
    PROPERTIES = {"currentPath": "", "filters": 0, "nameFilters": []}
    SIGNALS = ("currentPathChanged(QString)", "validInputChanged(bool)")

    def setCurrentPath(self, path):
        self.currentPath = path

    def _coerce(self, name, value):
        return "" if name == "currentPath" and value is None else value

    def _changed(self, name, value):
        if name == "currentPath":
            self.emit("currentPathChanged(QString)", value)
