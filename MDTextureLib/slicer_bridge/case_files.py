"""A case's files into the scene through the engine's own readers: water / fat / FF volumes and muscle segments.

The files are read (and checked: whole, one grid, plausible FF) exactly as ``mdtexture classify`` reads them, so a
broken or mismatched file is refused with the engine's one-line ``InputError`` before any node is added, and the
volumes hold the same voxels on the same geometry as the command line sees. Used by the browser app; the Slicer
application has its own readers (Add Data) and calls the Logic on the nodes they make.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import vtk_to_numpy

import slicer

from ..constants import MUSCLE_COLORS, MUSCLE_FULL_NAMES
from ..errors import InputError
from ..io import Grid, check_distinct_files, dixon_from_images, read_image
from ..labels import read_labels
from ..musclenames import canonical_muscle
from .phantom_scene import volume_from_array
from .segments import MUSCLE_TERMINOLOGY, TERMINOLOGY_TAG
from .volumes import ATTRIBUTE_PREFIX

ROLES = (("ff", "fat-fraction image"), ("water", "water image"), ("fat", "fat image"))


def grid_of_image(image: sitk.Image) -> Grid:
    return Grid(tuple(int(n) for n in image.GetSize()), tuple(float(s) for s in image.GetSpacing()),
                tuple(float(o) for o in image.GetOrigin()), tuple(float(d) for d in image.GetDirection()))


def load_case_files(scene, ff=None, water=None, fat=None, segmentation=None, ff_unit: str = "auto",
                    names: dict | None = None) -> dict:
    """Read the given files and add them to ``scene``: {"water", "fat", "ff", "segmentation", "warnings"} (absent
    roles are None). Nothing is added when any file is refused. ``names``: node names per role (default: the role)."""
    paths = {role: p for role, p in (("ff", ff), ("water", water), ("fat", fat)) if p is not None}
    if "ff" not in paths and not ("water" in paths and "fat" in paths):
        raise InputError("give a fat-fraction image, or both the water and the fat images")
    check_distinct_files({what: paths.get(role) for role, what in ROLES} | {"segmentation": segmentation})
    notes: list = []
    images = {what: read_image(paths[role], what, notes, role=role) for role, what in ROLES if role in paths}
    series = dixon_from_images(images, ff_unit)  # the engine's checks: one grid, distinct voxels, FF unit
    labels = read_labels(segmentation, series.grid) if segmentation is not None else None
    names = names or {}
    nodes = {"water": None, "fat": None, "ff": None, "segmentation": None,
             "warnings": notes + list(series.warnings) + (list(labels.warnings) if labels else [])}
    for role, what in ROLES:
        if what in images:
            array = sitk.GetArrayFromImage(images[what]).astype(np.float32)
            nodes[role] = volume_from_array(scene, array, series.grid, names.get(role, role))
    if labels is not None:
        reference = nodes["ff"] or nodes["water"]
        nodes["segmentation"] = segmentation_from_layers(scene, labels.layers, labels.names, reference,
                                                         names.get("segmentation", "muscles"))
    return nodes


def load_study_folder(scene, folder, choices=(), ff_unit: str = "auto") -> dict:
    """A DICOM study's water / fat / FF series (picked by their tags, as ``classify --study`` picks them) as
    volumes; the FF volume holds the engine's fraction. Same keys as :func:`load_case_files`."""
    from ..dicom import load_study

    series, _facts = load_study(folder, choices, ff_unit=ff_unit)
    nodes = {"water": None, "fat": None, "ff": None, "segmentation": None, "warnings": list(series.warnings)}
    for role in ("water", "fat", "ff"):
        array = getattr(series, role)
        if array is not None:
            nodes[role] = volume_from_array(scene, np.asarray(array, np.float32), series.grid, role)
    nodes["ff"].SetAttribute(ATTRIBUTE_PREFIX + "unit", "fraction")
    return nodes


def segmentation_from_layers(scene, layers: np.ndarray, names: dict, reference_node, name: str):
    """A segmentation node with one segment per label value of ``layers`` ((L, z, y, x), values unique across
    layers), named from ``names``, on the reference volume's geometry; calf muscles get their colour and
    terminology. Overlapping segments keep all their voxels."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    node.SetNodeReferenceID(node.GetReferenceImageGeometryReferenceRole(), reference_node.GetID())
    m = vtk.vtkMatrix4x4()
    reference_node.GetIJKToRASMatrix(m)
    for value in sorted(names):
        mask = (layers == value).any(axis=0)
        image = slicer.vtkOrientedImageData()
        image.SetDimensions(*mask.shape[::-1])
        image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        image.SetImageToWorldMatrix(m)
        vtk_to_numpy(image.GetPointData().GetScalars()).reshape(mask.shape)[:] = mask
        segment_name = str(names[value])
        muscle = canonical_muscle(segment_name)
        color = MUSCLE_COLORS.get(muscle, (0.8, 0.8, 0.2))
        sid = node.AddSegmentFromBinaryLabelmapRepresentation(image, segment_name, list(color))
        segment = node.GetSegmentation().GetSegment(sid)
        if muscle in MUSCLE_FULL_NAMES:
            segment.SetTag(TERMINOLOGY_TAG, MUSCLE_TERMINOLOGY)
            segment.SetTag(ATTRIBUTE_PREFIX + "fullName", MUSCLE_FULL_NAMES[muscle])
    return node


def segment_voxel_counts(segmentation_node, reference_node) -> dict:
    """{segment name: voxels on the reference volume's grid}: what a drawn stroke changed."""
    from .segments import segment_masks

    try:
        return {name: int(mask.sum()) for name, mask in segment_masks(segmentation_node, reference_node)}
    except InputError:
        return {}
