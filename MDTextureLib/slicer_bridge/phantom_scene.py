"""The project's synthetic phantom straight into a scene (the panel's "Load phantom" and the self-test): water, fat
and FF volumes and the seven muscle segments, made in memory, so no file format or extra package is involved."""

from __future__ import annotations

import numpy as np

import slicer
import slicer.util

from ..constants import MUSCLE_COLORS, MUSCLE_FULL_NAMES, MUSCLES
from ..io import Grid
from .segments import MUSCLE_TERMINOLOGY, TERMINOLOGY_TAG
from .volumes import ATTRIBUTE_PREFIX, ras_matrix_of_grid

#: A small phantom: quick to make (about a second) and to classify on a CPU.
SMALL = {"n_slices": 8, "matrix": 128, "pixel_mm": 1.5}


def volume_from_array(scene, array_zyx: np.ndarray, grid: Grid, name: str,
                      node_class: str = "vtkMRMLScalarVolumeNode"):
    """A new volume node holding ``array_zyx`` on the engine grid ``grid`` (LPS), in RAS as Slicer keeps it."""
    import vtk

    node = scene.AddNewNodeByClass(node_class, name)
    m = vtk.vtkMatrix4x4()
    for r, row in enumerate(ras_matrix_of_grid(grid)):
        for c, value in enumerate(row):
            m.SetElement(r, c, float(value))
    node.SetIJKToRASMatrix(m)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array_zyx))
    node.CreateDefaultDisplayNodes()
    return node


def segmentation_from_labels(scene, labels_zyx: np.ndarray, reference_node, name: str):
    """Muscle segments (TA=1 ... MG=7 in ``labels_zyx``) on the reference volume's geometry, named, coloured and
    with standard terminology."""
    grid_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{name} labels")
    try:
        import vtk

        m = vtk.vtkMatrix4x4()
        reference_node.GetIJKToRASMatrix(m)
        grid_node.SetIJKToRASMatrix(m)
        slicer.util.updateVolumeFromArray(grid_node, np.ascontiguousarray(labels_zyx.astype(np.uint8)))
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
        node.SetNodeReferenceID(node.GetReferenceImageGeometryReferenceRole(), reference_node.GetID())
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(grid_node, node):
            raise RuntimeError("could not import the phantom's muscle labels")
    finally:
        display = grid_node.GetDisplayNode()
        if display is not None:
            scene.RemoveNode(display)
        scene.RemoveNode(grid_node)
    seg = node.GetSegmentation()
    for i in range(seg.GetNumberOfSegments()):
        segment = seg.GetSegment(seg.GetNthSegmentID(i))
        muscle = MUSCLES[segment.GetLabelValue() - 1]
        segment.SetName(muscle)
        segment.SetColor(*MUSCLE_COLORS[muscle])
        segment.SetTag(TERMINOLOGY_TAG, MUSCLE_TERMINOLOGY)
        segment.SetTag(ATTRIBUTE_PREFIX + "fullName", MUSCLE_FULL_NAMES[muscle])
    return node


def load_phantom(scene, class_name: str = "DMD", seed: int = 0, **size) -> dict:
    """Make a phantom scan (``phantom.make_scan``; ``size`` as its n_slices, matrix, pixel_mm) and add it to the
    scene: {"water", "fat", "ff", "segmentation"} nodes and the engine's "scan" (with its ground truth)."""
    from ..phantom import make_scan

    scan = make_scan(class_name, seed=seed, **{**SMALL, **size})
    grid = Grid(tuple(int(n) for n in scan.ff.shape[::-1]), tuple(float(s) for s in scan.spacing_mm),
                tuple(float(o) for o in scan.origin_mm), tuple(float(d) for d in scan.direction))
    stem = f"Phantom {class_name} {seed}"
    nodes = {key: volume_from_array(scene, getattr(scan, key).astype(np.float32), grid, f"{stem} {key}")
             for key in ("water", "fat", "ff")}
    for node in nodes.values():
        node.SetAttribute(ATTRIBUTE_PREFIX + "phantom", f"{class_name} seed {seed} (synthetic)")
    nodes["ff"].SetAttribute(ATTRIBUTE_PREFIX + "unit", "fraction")
    nodes["segmentation"] = segmentation_from_labels(scene, scan.labels, nodes["ff"], f"{stem} muscles")
    nodes["scan"] = scan
    return nodes
