"""The module's parameter node: every choice of the panel in one vtkMRMLScriptedModuleNode, saved with the scene."""

from __future__ import annotations

import json

import slicer

from ..scores import ScoreParameters
from .display import DEFAULT_DISPLAY_FLOOR, OVERLAY_TITLES

MODULE_NAME = "MDTexture"


class _Param:
    """A typed scalar parameter stored as a string in the scripted module node."""

    def __init__(self, key, kind, default):
        self.key, self.kind, self.default = key, kind, default

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        text = obj.node.GetParameter(self.key)
        if not text:
            return self.default
        return self.kind(text)

    def __set__(self, obj, value):
        obj.node.SetParameter(self.key, str(value))


def _flag(text: str) -> bool:
    """A bool parameter as the node stores it ("True" / "False"); ``bool("False")`` would be True."""
    return text.strip().lower() in ("true", "1")


#: What the slice views show over the image: the ICAM heatmap (always the one scored) or the fat attribution.
OVERLAYS = tuple(OVERLAY_TITLES)  # ("icam", "fat")


class _Ref:
    """A node reference stored in the scripted module node."""

    def __init__(self, role):
        self.role = role

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return obj.node.GetNodeReference(self.role)

    def __set__(self, obj, node):
        obj.node.SetNodeReferenceID(self.role, node.GetID() if node is not None else None)


class MDTextureParameters:
    """Every choice of the module, in one vtkMRMLScriptedModuleNode that is saved with the scene."""

    water = _Ref("Water")
    fat = _Ref("Fat")
    ff = _Ref("FF")
    segmentation = _Ref("Segmentation")
    scoreTable = _Ref("ScoreTable")
    probabilityTable = _Ref("ProbabilityTable")
    probabilityChart = _Ref("ProbabilityChart")
    legOwner = _Ref("LegOwner")  # labelmap: which leg (1, 2) owns each voxel, when the image holds two legs

    modelPath = _Param("ModelPath", str, "")  # empty: the shipped model
    device = _Param("Device", str, "auto")  # auto, cpu, cuda
    precision = _Param("Precision", str, "auto")  # auto, fp32, bf16 (see MDTextureLib.precision)
    precisionUsed = _Param("PrecisionUsed", str, "")  # what the last Classify's network ran in: fp32 or bf16
    targetClass = _Param("TargetClass", str, "auto")  # auto (the verdict) or one of CLASSES
    viewClass = _Param("ViewClass", str, "")  # class whose heatmap is shown and scored; empty until classified
    background = _Param("Background", str, "FF")  # FF or Water under the heatmap
    fatMap = _Param("FatMap", _flag, False)  # also compute the fat attribution (MDTextureLib.attribution)
    overlay = _Param("Overlay", str, "icam")  # one of OVERLAYS: the map shown; the scores always use the ICAM
    ffUnit = _Param("FFUnit", str, "auto")
    threshold = _Param("Threshold", float, ScoreParameters().threshold)
    minOverlap = _Param("MinOverlap", float, ScoreParameters().min_overlap)
    minAreaMm2 = _Param("MinAreaMm2", float, ScoreParameters().min_area_mm2)
    opacity = _Param("Opacity", float, 0.5)
    displayFloor = _Param("DisplayFloor", float, DEFAULT_DISPLAY_FLOOR)
    batchSize = _Param("BatchSize", int, 16)
    verdict = _Param("Verdict", str, "")
    probabilities = _Param("Probabilities", str, "")  # JSON {class: p}
    modelName = _Param("ModelName", str, "")
    modelSha256 = _Param("ModelSha256", str, "")
    legs = _Param("Legs", str, "")  # JSON [{side, side_from, verdict, probabilities, target_class}]

    def __init__(self, node):
        self.node = node

    @classmethod
    def parameter_keys(cls) -> list:
        return [v.key for v in vars(cls).values() if isinstance(v, _Param)]

    def heatmap(self, class_name: str):
        return self.node.GetNodeReference(f"Heatmap{class_name}")

    def setHeatmap(self, class_name: str, node) -> None:
        self.node.SetNodeReferenceID(f"Heatmap{class_name}", node.GetID() if node is not None else None)

    def fatHeatmap(self, class_name: str):
        """The fat attribution volume of ``class_name`` (None when the last Classify did not compute it)."""
        return self.node.GetNodeReference(f"FatHeatmap{class_name}")

    def setFatHeatmap(self, class_name: str, node) -> None:
        self.node.SetNodeReferenceID(f"FatHeatmap{class_name}", node.GetID() if node is not None else None)

    def scoreParameters(self) -> ScoreParameters:
        return ScoreParameters(threshold=self.threshold, min_overlap=self.minOverlap, min_area_mm2=self.minAreaMm2)

    def probabilityDict(self) -> dict:
        return json.loads(self.probabilities) if self.probabilities else {}

    def legList(self) -> list:
        return json.loads(self.legs) if self.legs else []

    def setDefaults(self) -> None:
        for v in vars(type(self)).values():
            if isinstance(v, _Param) and not self.node.GetParameter(v.key):
                self.node.SetParameter(v.key, str(v.default))



def parameter_node(scene) -> MDTextureParameters:
    """The scene's MDTexture parameter node (a singleton), made with its defaults when absent.

    A scene close resets the singleton node and with it its attributes, so ``ModuleName`` (which Slicer uses to find
    the module of a parameter node) is put back here each time, as Slicer's own ``getParameterNode`` does.
    """
    node = scene.GetSingletonNode(MODULE_NAME, "vtkMRMLScriptedModuleNode")
    if node is None:
        node = slicer.vtkMRMLScriptedModuleNode()
        node.SetSingletonTag(MODULE_NAME)
        node.SetName(MODULE_NAME)
        node.SetAttribute("ModuleName", MODULE_NAME)
        node.SetHideFromEditors(True)
        MDTextureParameters(node).setDefaults()
        node = scene.AddNode(node)
    if node.GetAttribute("ModuleName") != MODULE_NAME:
        node.SetAttribute("ModuleName", MODULE_NAME)
    if not node.GetName():
        node.SetName(MODULE_NAME)
    return MDTextureParameters(node)
