"""Volume nodes <-> the engine: grids (RAS <-> LPS), voxel arrays, the Dixon series, new volumes on a given geometry.

Slicer volume nodes are in RAS, the engine (ITK) is in LPS. The voxel array of a volume node
(``slicer.util.arrayFromVolume``) is indexed (k, j, i), which is the engine's (z, y, x) for the same IJK, so arrays
are never transposed; only the IJK-to-physical matrix changes sign on its first two rows (RAS = diag(-1,-1,1) LPS).
"""

from __future__ import annotations

import numpy as np
import vtk

import slicer
import slicer.util

from ..errors import InputError
from ..io import DixonSeries, Grid, series_from_arrays

ATTRIBUTE_PREFIX = "MDTexture."
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse


def nodes_of_class(scene, class_name: str) -> list:
    """The scene's nodes of ``class_name`` as a list. ``GetNodesByClass`` hands over a new collection that Python
    must release itself (UnRegister), else every call leaks one; ``slicer.util.getNodesByClass`` does the same."""
    collection = scene.GetNodesByClass(class_name)
    collection.UnRegister(None)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def ijk_to_ras(volume_node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


def grid_of_volume(volume_node) -> Grid:
    """The engine's Grid (LPS) of a volume node (RAS)."""
    image = volume_node.GetImageData()
    if image is None:
        raise InputError(f"volume {volume_node.GetName()} has no voxels")
    return Grid.from_ijk_to_lps(image.GetDimensions(), LPS_FROM_RAS @ ijk_to_ras(volume_node))


def ras_matrix_of_grid(grid: Grid) -> np.ndarray:
    """IJK-to-RAS 4x4 of an engine Grid."""
    return LPS_FROM_RAS @ grid.ijk_to_lps()


def array_of_volume(volume_node, what: str = "volume") -> np.ndarray:
    """A float32 copy of a scalar volume's voxels, (k, j, i) = (z, y, x)."""
    image = volume_node.GetImageData() if volume_node is not None else None
    if image is None:
        raise InputError(f"the {what} has no voxels")
    if image.GetNumberOfScalarComponents() != 1:
        raise InputError(f"the {what} {volume_node.GetName()} has {image.GetNumberOfScalarComponents()} components "
                         "per voxel; a scalar volume is needed")
    dims = image.GetDimensions()
    if min(dims) < 1 or dims[2] < 1:
        raise InputError(f"the {what} {volume_node.GetName()} is empty")
    return np.array(slicer.util.arrayFromVolume(volume_node), dtype=np.float32, copy=True)


def _transform_id(node) -> str:
    return node.GetTransformNodeID() or ""


def series_from_nodes(water=None, fat=None, ff=None, ff_unit: str = "auto") -> DixonSeries:
    """A DixonSeries from Slicer volume nodes, like ``io.load_dixon`` does from files.

    FF alone, FF with water and fat, or water and fat alone (FF derived) are accepted. All given volumes must share
    one voxel grid and one parent transform.
    """
    if ff is None and (water is None or fat is None):
        raise InputError("select a fat-fraction volume, or both the water and the fat volumes")
    given = [(what, node) for what, node in (("fat-fraction volume", ff), ("water volume", water),
                                            ("fat volume", fat)) if node is not None]
    grids = {what: grid_of_volume(node) for what, node in given}
    first_what, first_node = given[0]
    for what, node in given[1:]:
        diff = grids[first_what].mismatch(grids[what])
        if diff:
            raise InputError(f"{first_what} {first_node.GetName()} and {what} {node.GetName()} are on different "
                             f"voxel grids: {diff}; resample one onto the other first")
        if _transform_id(node) != _transform_id(first_node):
            raise InputError(f"{first_what} and {what} are under different transforms; harden them first")
    arrays = {what: array_of_volume(node, what) for what, node in given}
    return series_from_arrays(grids[first_what], ff=arrays.get("fat-fraction volume"),
                              water=arrays.get("water volume"), fat=arrays.get("fat volume"), ff_unit=ff_unit)


def copy_geometry(target_node, source_node) -> None:
    """Give ``target_node`` exactly the IJK-to-RAS matrix and parent transform of ``source_node``."""
    m = vtk.vtkMatrix4x4()
    source_node.GetIJKToRASMatrix(m)
    target_node.SetIJKToRASMatrix(m)
    target_node.SetAndObserveTransformNodeID(source_node.GetTransformNodeID())


def set_volume_array(scene, node, array_zyx: np.ndarray, like_node, name: str, node_class: str = "vtkMRMLScalarVolumeNode"):
    """Create (or reuse) ``node`` holding ``array_zyx`` on ``like_node``'s geometry; returns the node."""
    if node is None:
        node = scene.AddNewNodeByClass(node_class, name)
    else:
        node.SetName(name)
    copy_geometry(node, like_node)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array_zyx))
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def derived_ff_node(scene, series: DixonSeries, water_node, node=None):
    """A volume node with the FF the engine derived from water and fat (fraction 0..1, on the water geometry)."""
    node = set_volume_array(scene, node, series.ff.astype(np.float32), water_node, f"{water_node.GetName()} FF")
    node.SetAttribute(ATTRIBUTE_PREFIX + "unit", "fraction")
    node.SetAttribute(ATTRIBUTE_PREFIX + "derivedFrom", "water and fat: F/(W+F)")
    display = node.GetDisplayNode()
    if display is not None:
        if not display.GetColorNodeID() and scene.GetNodeByID("vtkMRMLColorTableNodeGrey") is not None:
            display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)
    return node
