"""Which loaded volume is the water, fat and fat-fraction image: DICOM tags where Slicer's DICOM database has them
(ImageType, SeriesDescription), else the volume's name."""

from __future__ import annotations

import re
from typing import Optional

import slicer

from .volumes import nodes_of_class

IMAGE_TYPE_TAG = "0008,0008"
SERIES_DESCRIPTION_TAG = "0008,103e"

# Words scanners write for Dixon outputs, in ImageType (Siemens DIXON\WATER, GE IDEAL WATER/FAT/FF, Philips W/F) or
# in series descriptions.
_FF_WORDS = {"ff", "fatfraction", "fatfrac", "pdff", "fraction"}
_WATER_WORDS = {"water", "w", "wat"}
_FAT_WORDS = {"fat", "f"}
_NOT_DIXON_OUTPUT_WORDS = {"ip", "op", "inphase", "outphase", "opp"}
_NOT_DIXON_OUTPUT_PHRASES = ("in phase", "out phase", "opp phase", "opposed phase")


def _words(text: str) -> list:
    return [w for w in re.split(r"[^a-z0-9]+", str(text).lower()) if w]


def _role_of(text: str):
    """(role or None, True when the text says it is a Dixon image that is none of the three)."""
    words = _words(text)
    joined = " ".join(words)
    if set(words) & _NOT_DIXON_OUTPUT_WORDS or any(ph in joined for ph in _NOT_DIXON_OUTPUT_PHRASES):
        return None, True
    if set(words) & _FF_WORDS or "fat fraction" in joined or "fat frac" in joined:
        return "ff", False
    if set(words) & _WATER_WORDS:
        return "water", False
    if set(words) & _FAT_WORDS:
        return "fat", False
    return None, False


def dixon_role(image_type: str = "", description: str = "") -> Optional[str]:
    """'ff', 'water', 'fat' or None from an ImageType value (backslash-separated) or a series description/name.

    The ImageType decides when it says anything (an in-phase image is none of the three, whatever its description);
    the description is read only when it does not."""
    role, excluded = _role_of(image_type)
    if role or excluded:
        return role
    return _role_of(description)[0]


def dicom_tags(node) -> Optional[tuple]:
    """(ImageType, SeriesDescription) of a volume loaded from DICOM, read from Slicer's DICOM database; None when the
    volume did not come from DICOM or there is no database (outside the application)."""
    uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split()
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        return None
    path = database.fileForInstance(uids[0])
    if not path:
        return None
    return database.fileValue(path, IMAGE_TYPE_TAG), database.fileValue(path, SERIES_DESCRIPTION_TAG)


def guess_dixon_inputs(scene) -> dict:
    """{'water'|'fat'|'ff': volume node} for the scene's scalar volumes (label maps excluded), first match wins;
    DICOM tags first, names second."""
    found = {}
    volumes = [n for n in nodes_of_class(scene, "vtkMRMLScalarVolumeNode") if not n.IsA("vtkMRMLLabelMapVolumeNode")
               and not n.GetAttribute("MDTexture.class")]  # never offer a heatmap as an input
    for node in volumes:
        tags = dicom_tags(node)
        role = dixon_role(*tags) if tags else None
        role = role or dixon_role("", node.GetName())
        if role and role not in found:
            found[role] = node
    return found
