"""Segmentations: one binary mask per segment on a reference volume's grid, the muscle segments, per-segment scores.

Each segment is resampled on its own (as Slicer's Segment Statistics does), so overlapping segments keep all their
voxels and no temporary node ever enters the scene.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
import vtk
from vtk.util.numpy_support import vtk_to_numpy

import slicer

from ..constants import MUSCLE_COLORS, MUSCLE_FULL_NAMES, MUSCLES
from ..errors import InputError
from ..scores import ScoreParameters, canonical_muscle, texture_scores
from .volumes import ATTRIBUTE_PREFIX

#: Standard terminology of a calf-muscle segment, from the lists Slicer ships (Terminologies module): category
#: "Anatomical Structure", type "Muscle of lower limb", region "Lower leg" (SNOMED CT). Those lists have no entry for
#: single calf muscles, so which muscle it is stays in the segment name (and the MDTexture.fullName tag).
MUSCLE_TERMINOLOGY = ("Segmentation category and type - DICOM master list"
                      "~SCT^123037004^Anatomical Structure"
                      "~SCT^102292000^Muscle of lower limb"
                      "~^^"
                      "~Anatomic codes - DICOM master list"
                      "~SCT^30021000^Lower leg"
                      "~^^")
TERMINOLOGY_TAG = "TerminologyEntry"  # vtkSegment::GetTerminologyEntryTagName()


def segment_ids(segmentation_node) -> list:
    seg = segmentation_node.GetSegmentation()
    return [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())]


def segment_names(segmentation_node) -> list:
    seg = segmentation_node.GetSegmentation()
    return [seg.GetSegment(sid).GetName() for sid in segment_ids(segmentation_node)]


def _reference_geometry(reference_node):
    image = reference_node.GetImageData()
    if image is None:
        raise InputError(f"volume {reference_node.GetName()} has no voxels")
    geometry = slicer.vtkOrientedImageData()
    geometry.SetExtent(image.GetExtent())
    m = vtk.vtkMatrix4x4()
    reference_node.GetIJKToRASMatrix(m)
    geometry.SetGeometryFromImageToWorldMatrix(m)
    return geometry


def segment_mask(segmentation_node, segment_id: str, reference_node, _geometry=None) -> np.ndarray:
    """The segment's voxels on the reference volume's grid: bool (z, y, x), nearest-neighbour, through both nodes'
    parent transforms."""
    geometry = _geometry if _geometry is not None else _reference_geometry(reference_node)
    dims = reference_node.GetImageData().GetDimensions()
    own = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, own)
    if own.GetPointData() is None or own.GetPointData().GetScalars() is None:
        return np.zeros(dims[::-1], bool)
    to_reference = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(segmentation_node.GetParentTransformNode(),
                                                         reference_node.GetParentTransformNode(), to_reference)
    resampled = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        own, geometry, resampled, False, False, to_reference)  # nearest neighbour, no padding
    scalars = resampled.GetPointData().GetScalars() if resampled.GetPointData() is not None else None
    if scalars is None or tuple(resampled.GetExtent()) != tuple(geometry.GetExtent()):
        raise InputError(f"could not resample segment {segment_id} onto {reference_node.GetName()}")
    return vtk_to_numpy(scalars).reshape(dims[::-1]) > 0


def segment_masks(segmentation_node, reference_node) -> list:
    """[(segment name, bool mask (z, y, x))] for every segment (visible or not), in the segmentation's order."""
    ids = segment_ids(segmentation_node)
    if not ids:
        raise InputError(f"segmentation {segmentation_node.GetName()} has no segments")
    segmentation_node.CreateBinaryLabelmapRepresentation()
    geometry = _reference_geometry(reference_node)
    seg = segmentation_node.GetSegmentation()
    return [(seg.GetSegment(sid).GetName(), segment_mask(segmentation_node, sid, reference_node, geometry))
            for sid in ids]


def labels_from_segmentation(scene, segmentation_node, reference_node) -> tuple:
    """(labels (z, y, x) uint16 on the reference volume's grid, {label value: segment name}); segment n (in the
    segmentation's order) gets label value n, a later segment wins where segments overlap. For display and files;
    the scores use :func:`segment_masks`, which keeps overlaps."""
    masks = segment_masks(segmentation_node, reference_node)
    labels = np.zeros(masks[0][1].shape, np.uint16)
    names = {}
    for value, (name, mask) in enumerate(masks, start=1):
        labels[mask] = value
        names[value] = name
    return labels, names


def score_segments(heatmap: np.ndarray, masks: list, ff: np.ndarray, spacing_mm: tuple,
                   params: ScoreParameters) -> list:
    """Texture-score rows as ``scores.texture_scores`` gives them, each muscle scored on its own mask.

    ``masks`` is [(segment name, bool mask)]; segments naming the same muscle (e.g. peroneus longus and brevis)
    are scored together on the union of their masks. Order: the seven calf muscles, then other names sorted.
    """
    groups: dict = {}
    first_index: dict = {}
    for index, (name, mask) in enumerate(masks, start=1):
        key = canonical_muscle(name) or str(name)
        if key in groups:
            groups[key][1] = groups[key][1] | mask
        else:
            groups[key] = [name, mask]
            first_index[key] = index
    found: dict = {}
    absent: dict = {}
    for key, (name, mask) in groups.items():
        rows = texture_scores(heatmap, mask.astype(np.uint8), {1: name}, ff, spacing_mm, params)
        for row in rows:
            if row.muscle == key:
                if key not in MUSCLES:  # label value 1 of this one-segment call means nothing; use its place
                    row = replace(row, label_value=first_index[key])
                found[key] = row
            elif row.muscle in MUSCLES:
                absent.setdefault(row.muscle, row)
    order = list(MUSCLES) + sorted(k for k in groups if k not in MUSCLES)
    return [found.get(k) or absent[k] for k in order]


def create_muscle_segments(scene, reference_node, segmentation_node=None, name: Optional[str] = None):
    """Add the seven calf muscles as named, coloured, empty segments with standard terminology (those not already
    present under any alias). Returns (segmentation node, names added)."""
    if segmentation_node is None:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                                    name or f"{reference_node.GetName()} muscles")
        segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    role = segmentation_node.GetReferenceImageGeometryReferenceRole()
    segmentation_node.SetNodeReferenceID(role, reference_node.GetID())
    seg = segmentation_node.GetSegmentation()
    present = {canonical_muscle(n) for n in segment_names(segmentation_node)}
    added = []
    for muscle in MUSCLES:
        if muscle in present:
            continue
        sid = muscle if seg.GetSegment(muscle) is None else seg.GenerateUniqueSegmentID(muscle)
        seg.AddEmptySegment(sid, muscle, list(MUSCLE_COLORS[muscle]))
        segment = seg.GetSegment(sid)
        segment.SetTag(TERMINOLOGY_TAG, MUSCLE_TERMINOLOGY)
        segment.SetTag(ATTRIBUTE_PREFIX + "fullName", MUSCLE_FULL_NAMES[muscle])
        added.append(muscle)
    return segmentation_node, added

