"""Test-only stand-in for Slicer's ``SegmentStatisticsPlugins.SegmentStatisticsPluginBase`` (Modules/Scripted/
SegmentStatistics): the parts a plugin uses and SegmentStatisticsLogic calls, without the Qt options widget.

Keys are enabled through the statistics parameter node as ``<PluginClassName>.<key>.enabled`` = "True", and results
are reported under ``<PluginClassName>.<key>``, as in Slicer.
"""


class SegmentStatisticsPluginBase:
    @staticmethod
    def createMeasurementInfo(name, title, description, units, quantityDicomCode=None, unitsDicomCode=None,
                              measurementMethodDicomCode=None, derivationDicomCode=None, componentNames=None):
        info = {"name": name, "title": title, "description": description, "units": units}
        if componentNames:
            info["componentNames"] = componentNames
        return info

    def __init__(self):
        self.name = ""
        self.title = ""
        self.keys = []
        self.defaultKeys = []
        self.parameterNode = None

    def computeStatistics(self, segmentID):
        pass

    def getMeasurementInfo(self, key):
        return None

    def toLongKey(self, key):
        return f"{self.__class__.__name__}.{key}"

    def setDefaultParameters(self, parameterNode, overwriteExisting=False):
        enabled = self.__class__.__name__ + ".enabled"
        if not parameterNode.GetParameter(enabled):
            parameterNode.SetParameter(enabled, "True")
        for key in self.keys:
            parameter = self.toLongKey(key) + ".enabled"
            if overwriteExisting or not parameterNode.GetParameter(parameter):
                parameterNode.SetParameter(parameter, str(key in self.defaultKeys))

    def getRequestedKeys(self):
        if not self.parameterNode:
            return ()
        return [k for k in self.keys if self.parameterNode.GetParameter(self.toLongKey(k) + ".enabled") == "True"]

    def setParameterNode(self, parameterNode):
        self.parameterNode = parameterNode
        if parameterNode:
            self.setDefaultParameters(parameterNode)

    def getParameterNode(self):
        return self.parameterNode
