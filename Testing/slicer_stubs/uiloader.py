"""Test-only stand-ins for Slicer's qMRML widgets and for ``slicer.util.loadUI`` / ``childWidgetVariables``.

``load_ui`` reads the module's .ui file as Qt Designer's loader does: one object per ``<widget>`` of the declared
class (stand-ins from qt.py, ctk.py and here), ``<property>`` values applied (properties a class does not know are
skipped, as QUiLoader skips them), ``<item>`` entries of combo boxes added, ``<connections>`` wired. A class the .ui
names that has no stand-in raises, so a new widget type is noticed.
"""

from __future__ import annotations

import types
import xml.etree.ElementTree as ET

import ctk
import qt


class qMRMLWidget(qt.QWidget):
    SIGNALS = ("mrmlSceneChanged(vtkMRMLScene*)",)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene = None

    def setMRMLScene(self, scene):
        self._scene = scene
        self.emit("mrmlSceneChanged(vtkMRMLScene*)", scene)

    def mrmlScene(self):
        return self._scene


class qMRMLNodeComboBox(qMRMLWidget):
    """The node selector: current node of the given types; follows node removal as the real one does."""

    PROPERTIES = {"nodeTypes": [], "noneEnabled": False, "addEnabled": True, "removeEnabled": True,
                  "renameEnabled": False, "showChildNodeTypes": True, "noneDisplay": "None"}
    SIGNALS = ("currentNodeChanged(vtkMRMLNode*)", "currentNodeChanged(bool)", "currentNodeIDChanged(QString)")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._node = None
        self._observer = None

    def setMRMLScene(self, scene):
        if self._scene is not None and self._observer is not None:
            self._scene.RemoveObserver(self._observer)
        super().setMRMLScene(scene)
        self._observer = scene.AddObserver(scene.NodeRemovedEvent, self._onNodeRemoved) if scene else None
        if self._node is not None and (scene is None or scene.GetNodeByID(self._node.GetID()) is not self._node):
            self.setCurrentNode(None)

    def _onNodeRemoved(self, caller, event):
        if self._node is not None and (self._scene.GetNodeByID(self._node.GetID()) is None):
            self.setCurrentNode(None)

    def _accepts(self, node) -> bool:
        if node is None:
            return self.noneEnabled
        if self._scene is None or self._scene.GetNodeByID(node.GetID()) is not node:
            return False
        if self.showChildNodeTypes:
            return any(node.IsA(t) for t in self.nodeTypes)
        return node.GetClassName() in self.nodeTypes

    def currentNode(self):
        return self._node

    @property
    def currentNodeID(self):
        return self._node.GetID() if self._node is not None else ""

    def setCurrentNode(self, node):
        if node is self._node or not self._accepts(node):
            return
        self._node = node
        self.emit("currentNodeChanged(vtkMRMLNode*)", node)
        self.emit("currentNodeChanged(bool)", node is not None)
        self.emit("currentNodeIDChanged(QString)", self.currentNodeID)

    def setCurrentNodeID(self, node_id):
        self.setCurrentNode(self._scene.GetNodeByID(node_id) if (self._scene and node_id) else None)


class qMRMLTableView(qMRMLWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._table = None

    def setMRMLTableNode(self, node):
        self._table = node

    def mrmlTableNode(self):
        return self._table


CLASSES = {
    "qMRMLWidget": qMRMLWidget, "qMRMLNodeComboBox": qMRMLNodeComboBox, "qMRMLTableView": qMRMLTableView,
    "ctkCollapsibleButton": ctk.ctkCollapsibleButton, "ctkSliderWidget": ctk.ctkSliderWidget,
    "ctkPathLineEdit": ctk.ctkPathLineEdit, "QLabel": qt.QLabel, "QPushButton": qt.QPushButton,
    "QCheckBox": qt.QCheckBox, "QComboBox": qt.QComboBox, "QDoubleSpinBox": qt.QDoubleSpinBox,
    "QProgressBar": qt.QProgressBar, "QPlainTextEdit": qt.QPlainTextEdit, "QWidget": qt.QWidget,
}


def _value(prop: ET.Element):
    child = prop[0]
    if child.tag == "string":
        return child.text or ""
    if child.tag == "bool":
        return child.text == "true"
    if child.tag in ("double",):
        return float(child.text)
    if child.tag == "number":
        return int(child.text)
    if child.tag == "stringlist":
        return [s.text or "" for s in child.findall("string")]
    return None  # rect, size, set, enum: layout and flags, not state the Widget reads


def load_ui(path):
    """The .ui's root widget; its named children are in ``root.children`` (name -> widget)."""
    tree = ET.parse(path)
    top = tree.getroot().find("widget")
    root = CLASSES[top.get("class")]()
    root.objectName = top.get("name")
    named = {}
    for element in top.iter("widget"):
        if element is top:
            continue
        klass = CLASSES.get(element.get("class"))
        if klass is None:
            raise NotImplementedError(f"no stand-in for {element.get('class')} ({element.get('name')})")
        widget = klass()
        widget.objectName = element.get("name")
        for prop in element.findall("property"):
            name, value = prop.get("name"), _value(prop)
            if value is not None and name in widget._props:
                setattr(widget, name, value)
        for item in element.findall("item"):
            widget.addItem(item.findtext("property/string") or "")
        named[widget.objectName] = widget
    for conn in tree.getroot().iter("connection"):
        sender = root if conn.findtext("sender") == root.objectName else named[conn.findtext("sender")]
        receiver = named[conn.findtext("receiver")]
        slot = getattr(receiver, conn.findtext("slot").split("(")[0])
        sender.connect(conn.findtext("signal"), slot)
    object.__setattr__(root, "children", named)
    return root


def child_widget_variables(root):
    """``slicer.util.childWidgetVariables``: every named child as an attribute."""
    return types.SimpleNamespace(**root.children)



