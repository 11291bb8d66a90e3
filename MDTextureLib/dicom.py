"""DICOM series and studies: find the series, tell water / fat / FF apart by their tags, read one honestly.

SimpleITK's series reader groups files by SeriesInstanceUID only and spreads whatever it finds over an even grid: a
missing slice stretches the slice spacing, and water and fat stored under one UID are interleaved into one volume.
Here headers are read with pydicom, files are grouped by UID *and* by the tags that tell image types apart, each
group's slice positions are checked (missing, duplicate, uneven, sheared), and only then are the pixels read (by
SimpleITK, which knows the compressed transfer syntaxes and applies RescaleSlope/Intercept per file).

Which image is which (``role``): evidence is taken in this order, the first that names exactly one role wins.

==========================  ==============================================================  ====================
evidence                    values (case-insensitive; ImageType split at ``\\``)             role
==========================  ==============================================================  ====================
ImageType value             ``FF``, ``FAT_FRACTION``, ``FATFRACTION``, ``FATFRAC``, ``PDFF``  ff
(0008,0008)                 ``W``, ``WATER``                                                water
                            ``F``, ``FAT``                                                  fat
                            ``IN_PHASE``, ``IN``, ``IP`` / ``OUT_PHASE``, ``OPP_PHASE``,      in-phase /
                            ``OPP``, ``OP``                                                 out-of-phase
Philips private (2005,1011) the same values as ImageType (mDIXON: ``W``, ``F``, ``IP``,      as above
"MR image type"             ``OP``, ``FF``)
SeriesDescription           ``fat fraction``, ``fatfraction``, ``fat_frac``, ``PDFF``, or     ff
(0008,103E)                 ``FF`` as a word (``t1_dixon_FF``)
                            ``in phase``, ``_in``/``_ip`` at the end; ``out of phase``,      in-phase /
                            ``opp phase``, ``_opp``/``_op`` at the end                       out-of-phase
                            ``water`` (not ``water exc…``) or ``_W`` at the end              water
                            ``fat`` (not ``fat sat``/``fat sup…``) or ``_F`` at the end      fat
==========================  ==============================================================  ====================

These cover Siemens Dixon (ImageType ``…\\DIXON\\W`` / ``\\F`` / ``\\FF``, descriptions ``…_W``, ``…_F``, ``…_FF``),
Philips mDIXON (ImageType or private (2005,1011) ``W`` / ``F``) and GE IDEAL / FLEX (``WATER`` / ``FAT`` in
ImageType or description, ``FAT FRACTION``). An ImageType that names two roles at once, or a description that does,
gives no role. Only in-phase/out-of-phase, water, fat and FF are recognised; other series are listed, never used.

Files of one SeriesInstanceUID are split into groups when ImageType, the Philips image type, EchoNumbers,
EchoTime, the matrix or the orientation differ; a group that still holds two images at one slice position is
refused (its tags cannot tell them apart).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError

ROLES = ("ff", "water", "fat")
ROLE_NAMES = {"ff": "fat-fraction image", "water": "water image", "fat": "fat image"}

_TYPE_TOKENS = {
    "ff": {"FF", "FAT_FRACTION", "FATFRACTION", "FATFRAC", "PDFF"},
    "water": {"W", "WATER"},
    "fat": {"F", "FAT"},
    "in-phase": {"IN_PHASE", "IN", "IP"},
    "out-of-phase": {"OUT_PHASE", "OPP_PHASE", "OPP", "OP"},
}
# Checked in this order: "fat fraction" also contains "fat", "_opp" ends like nothing else.
_DESCRIPTION_RULES = (
    ("ff", re.compile(r"fat[\s_-]*frac|pdff|(^|[^a-z0-9])ff($|[^a-z0-9])")),
    ("in-phase", re.compile(r"in[\s_-]*phase|[_\s-](in|ip)$")),
    ("out-of-phase", re.compile(r"out[\s_-]*(of[\s_-]*)?phase|opp[\s_-]*phase|[_\s-]opp?$")),
    # "water excitation" and "fat sat / fat suppressed" are other techniques (fat-suppressed images), not Dixon
    ("water", re.compile(r"water(?![\s_-]*exc)|[_\s-]w$")),
    ("fat", re.compile(r"fat(?![\s_-]*(sat|sup|frac))|[_\s-]f$")),
)

# Slice positions: a step this much larger than the usual one is a missing slice; a position this far off an even
# grid (fraction of the step) is warned about, further is refused; closer than this is the same position.
MISSING_SLICE_STEP_RATIO = 1.5
UNEVEN_WARN_FRACTION = 0.02
UNEVEN_REFUSE_FRACTION = 0.25
DUPLICATE_FRACTION = 0.01
ORIENTATION_TOLERANCE = 1e-3
SHEAR_TOLERANCE_MM = 0.05


@dataclass(frozen=True)
class Series:
    """One group of DICOM images: one SeriesInstanceUID, one image type, one stack of slices."""

    key: str  # the UID, or UID/N when the UID holds several groups
    uid: str
    description: str
    image_type: str  # as stored, values joined by "\"
    files: tuple  # paths, sorted along the slice normal
    positions_mm: tuple  # each file's position along the slice normal
    ipp_mm: tuple  # each file's ImagePositionPatient (x, y, z), LPS mm
    role: str | None  # "ff", "water", "fat", "in-phase", "out-of-phase" or None
    rule: str  # the evidence for the role, e.g. "ImageType 'W'"
    rows: int
    columns: int
    orientation: tuple  # ImageOrientationPatient, 6 values
    pixel_spacing: tuple  # PixelSpacing (row spacing, column spacing), mm
    frames: int = 1
    images_in_acquisition: int = 0  # (0020,1002) when the UID holds only this group, else 0 (not comparable)
    study_uid: str = ""  # StudyInstanceUID: the examination the series belongs to
    patient_id: str = ""  # PatientID, as the scanner wrote it

    @property
    def n_slices(self) -> int:
        return len(self.files)

    def label(self) -> str:
        role = f" -> {self.role} ({self.rule})" if self.role else " -> no Dixon role in its tags"
        return (f"{self.key} '{self.description}' ImageType {self.image_type or '-'}, {self.n_slices} "
                f"slice{'s' if self.n_slices != 1 else ''}{role}")

    def summary(self) -> dict:
        return {"key": self.key, "series_instance_uid": self.uid, "description": self.description,
                "image_type": self.image_type, "n_slices": self.n_slices, "role": self.role, "rule": self.rule}

    def same_stack(self, other: "Series") -> bool:
        """Same matrix, orientation, pixel spacing and slice positions (so the images share one voxel grid)."""
        return (self.rows == other.rows and self.columns == other.columns
                and np.allclose(self.orientation, other.orientation, atol=ORIENTATION_TOLERANCE)
                and np.allclose(self.pixel_spacing, other.pixel_spacing, atol=1e-4)
                and len(self.positions_mm) == len(other.positions_mm)
                and np.allclose(self.positions_mm, other.positions_mm, atol=0.01))


def _pydicom():
    try:
        import pydicom
    except ImportError:  # pragma: no cover - a declared dependency
        raise InputError("reading DICOM needs the pydicom package (pip install pydicom)") from None
    return pydicom


def _values(element) -> list:
    if element is None:
        return []
    value = element.value if hasattr(element, "value") else element
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if isinstance(value, str):
        return [v.strip() for v in value.split("\\") if v.strip()]
    try:
        return [str(v).strip() for v in value if str(v).strip()]
    except TypeError:
        return [str(value).strip()]


def role_from_tags(image_type: list, philips_type: list, description: str) -> tuple[str | None, str]:
    """(role, the evidence) from ImageType values, the Philips private image type and SeriesDescription."""
    for source, values in (("ImageType", image_type), ("Philips (2005,1011)", philips_type)):
        upper = {v.upper() for v in values}
        found = {role for role, tokens in _TYPE_TOKENS.items() if upper & tokens}
        if len(found) == 1:
            role = found.pop()
            token = sorted(upper & _TYPE_TOKENS[role])[0]
            return role, f"{source} '{token}'"
        if len(found) > 1:
            return None, f"{source} names {', '.join(sorted(found))}"
    text = description.strip().lower()
    for role, pattern in _DESCRIPTION_RULES:
        if pattern.search(text):
            return role, f"description '{description.strip()}'"
    return None, ""


def _header(path: Path):
    """pydicom dataset of an image file (no pixels), or None when the file is not a DICOM image."""
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except PermissionError as exc:
        from .filecheck import os_error_message
        raise InputError(os_error_message(exc, "DICOM file", path)) from None
    except Exception:  # not DICOM, or a broken header: not one of ours
        return None
    if "Rows" not in ds or "SeriesInstanceUID" not in ds:
        return None
    return ds


def _files(folder: Path, recursive: bool) -> list[Path]:
    try:
        if not recursive:
            return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        out = []
        for root, dirs, names in os.walk(folder, onerror=_raise_walk_error):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            out += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
        return out
    except OSError as exc:
        from .filecheck import os_error_message
        raise InputError(os_error_message(exc, "DICOM folder", Path(getattr(exc, "filename", None) or folder))) \
            from None


def _raise_walk_error(exc: OSError) -> None:
    raise exc


def scan_folder(folder: str | os.PathLike, recursive: bool = True) -> tuple[list[Series], int]:
    """All DICOM image series under ``folder``, split by image type and sorted along the slice normal.

    Returns (series in UID order, number of files that are not DICOM images).
    """
    folder = Path(folder)
    groups: dict = {}
    ignored = 0
    for path in _files(folder, recursive):
        ds = _header(path)
        if ds is None:
            ignored += 1
            continue
        image_type = _values(ds.get("ImageType"))
        philips = _values(ds.get((0x2005, 0x1011)))
        orientation = tuple(round(float(v), 4) for v in _values(ds.get("ImageOrientationPatient"))) or (0.0,) * 6
        key = (str(ds.SeriesInstanceUID), "\\".join(image_type), "\\".join(philips),
               "\\".join(_values(ds.get("EchoNumbers"))), "\\".join(_values(ds.get("EchoTime"))),
               int(ds.Rows), int(ds.get("Columns", 0)), orientation)
        groups.setdefault(key, []).append((path, ds))
    by_uid: dict = {}
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        by_uid.setdefault(key[0], []).append(key)
    series = []
    for uid, keys in by_uid.items():
        for n, key in enumerate(keys, start=1):
            series.append(_make_series(uid if len(keys) == 1 else f"{uid}/{n}", groups[key], whole_uid=len(keys) == 1))
    return series, ignored


def _make_series(key: str, items: list, whole_uid: bool = True) -> Series:
    ds0 = items[0][1]
    orientation = tuple(float(v) for v in _values(ds0.get("ImageOrientationPatient"))) or (1, 0, 0, 0, 1, 0)
    normal = np.cross(orientation[:3], orientation[3:6])
    ipps = []
    for path, ds in items:
        ipp = [float(v) for v in _values(ds.get("ImagePositionPatient"))]
        ipps.append(tuple(ipp) if len(ipp) == 3 else (0.0, 0.0, float(len(ipps))))
    positions = [float(np.dot(ipp, normal)) for ipp in ipps]
    order = np.argsort(positions, kind="stable")
    description = str(ds0.get("SeriesDescription", "") or "")
    image_type = _values(ds0.get("ImageType"))
    role, rule = role_from_tags(image_type, _values(ds0.get((0x2005, 0x1011))), description)
    if role is None and rule:  # tags that contradict each other: no role
        rule = f"no role: {rule}"
    spacing = tuple(float(v) for v in _values(ds0.get("PixelSpacing"))) or (1.0, 1.0)
    return Series(key=key, uid=str(ds0.SeriesInstanceUID), description=description, image_type="\\".join(image_type),
                  files=tuple(items[i][0] for i in order), positions_mm=tuple(positions[i] for i in order),
                  ipp_mm=tuple(ipps[i] for i in order),
                  role=role, rule=rule, rows=int(ds0.Rows), columns=int(ds0.get("Columns", 0)),
                  orientation=orientation, pixel_spacing=spacing, frames=int(ds0.get("NumberOfFrames", 1) or 1),
                  images_in_acquisition=_int(ds0.get("ImagesInAcquisition")) if whole_uid else 0,
                  study_uid=str(ds0.get("StudyInstanceUID", "") or ""), patient_id=str(ds0.get("PatientID", "") or ""))


def _int(element) -> int:
    try:
        return int(float(_values(element)[0]))
    except (IndexError, ValueError):
        return 0


def check_slices(series: Series, name: str, notes: list) -> float:
    """Check the slice positions of ``series``; return the slice step (mm). Raise InputError when slices are
    missing, doubled or sheared, or uneven beyond a quarter step; warn (``notes``) when a little uneven."""
    pos = np.asarray(series.positions_mm, dtype=float)
    if series.frames > 1:
        raise InputError(f"{name}: DICOM series {series.key} is a multi-frame (enhanced) file with {series.frames} "
                         "frames, which MDTexture does not read; convert it (e.g. with dcm2niix) and give the NIfTI")
    if series.images_in_acquisition > len(pos):
        # Slices lost at either end leave no gap; this tag is the only witness (not every vendor fills it).
        notes.append(f"{name}: DICOM series '{series.description}' has {len(pos)} slices where ImagesInAcquisition "
                     f"(0020,1002) says {series.images_in_acquisition}: slices may be missing at an end")
    if len(pos) < 2:
        return 0.0
    steps = np.diff(pos)
    usual = float(np.median(steps))
    if usual <= 0 or np.any(steps < DUPLICATE_FRACTION * max(usual, 1e-6)):
        k = int(np.argmin(steps))
        raise InputError(f"{name}: DICOM series {series.key} '{series.description}' has two images at one slice "
                         f"position ({pos[k]:.2f} mm along the slice normal); its tags do not tell them apart "
                         "(several image types or repeats in one series) - export each image type as its own series")
    gaps = np.flatnonzero(steps > MISSING_SLICE_STEP_RATIO * usual)
    if gaps.size:
        k = int(gaps[0])
        missing = int(sum(round(steps[g] / usual) - 1 for g in gaps))
        more = f" ({gaps.size} gaps in all)" if gaps.size > 1 else ""
        raise InputError(f"{name}: DICOM series '{series.description}' has a gap of {steps[k]:.2f} mm between slices "
                         f"{k + 1} and {k + 2} of {len(pos)} (at {pos[k]:.2f} and {pos[k + 1]:.2f} mm along the slice "
                         f"normal) where the others are {usual:.2f} mm apart: {missing} slice(s) missing{more}; "
                         "export the complete series")
    step = (pos[-1] - pos[0]) / (len(pos) - 1)
    off = pos - (pos[0] + step * np.arange(len(pos)))
    worst = int(np.argmax(np.abs(off)))
    if abs(off[worst]) > UNEVEN_REFUSE_FRACTION * step:
        raise InputError(f"{name}: DICOM series '{series.description}' has uneven slice spacing (steps "
                         f"{steps.min():.2f} to {steps.max():.2f} mm; slice {worst + 1} lies {off[worst]:+.2f} mm off an "
                         f"even {step:.2f} mm grid); resample it onto an even grid first")
    if abs(off[worst]) > UNEVEN_WARN_FRACTION * step:
        notes.append(f"{name}: DICOM slice spacing is uneven (steps {steps.min():.2f} to {steps.max():.2f} mm); read "
                     f"on an even {step:.3f} mm grid, slice {worst + 1} displaced by {off[worst]:+.2f} mm")
    return float(step)


def _check_shear(series: Series, name: str) -> None:
    """Slice origins must move along the slice normal only (no gantry tilt, no sheared stack)."""
    ipp = np.asarray(series.ipp_mm, dtype=float)
    o = np.asarray(series.orientation, dtype=float)
    d = ipp - ipp[0]
    in_plane = np.hypot(d @ o[:3], d @ o[3:6])
    k = int(np.argmax(in_plane))
    if in_plane[k] > SHEAR_TOLERANCE_MM:
        raise InputError(f"{name}: DICOM series '{series.description}' is sheared: slice {k + 1} is shifted "
                         f"{in_plane[k]:.2f} mm in-plane from the first (gantry tilt?); resample it first")


def read_series(series: Series, name: str, notes: list | None = None) -> sitk.Image:
    """The volume of one checked series: float32 with RescaleSlope/Intercept applied; spacing, origin and
    direction from ImagePositionPatient / ImageOrientationPatient / PixelSpacing of the sorted slices."""
    notes = [] if notes is None else notes
    step = check_slices(series, name, notes)
    _check_shear(series, name)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in series.files])
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        from .io import _first_line
        raise InputError(f"{name}: cannot read the pixels of DICOM series '{series.description}' "
                         f"({_first_line(exc)})") from None
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetSize()[2] != series.n_slices:
        raise InputError(f"{name}: DICOM series '{series.description}' gave {image.GetSize()[2]} slices from "
                         f"{series.n_slices} files")
    o = np.asarray(series.orientation, dtype=float)
    normal = np.cross(o[:3], o[3:6])
    image.SetOrigin(tuple(float(v) for v in series.ipp_mm[0]))
    image.SetDirection(tuple(float(v) for v in np.column_stack([o[:3], o[3:6], normal]).ravel()))
    spacing_z = step if step > 0 else image.GetSpacing()[2]
    image.SetSpacing((series.pixel_spacing[1], series.pixel_spacing[0], spacing_z))
    return image


def read_dicom_folder(folder: Path, what: str, role: str | None = None, notes: list | None = None) -> sitk.Image:
    """The one DICOM series in ``folder`` (not its subfolders). A series holding several image types is split by
    its tags; ``role`` ('ff', 'water', 'fat') then picks the part whose tags say so, else it is refused."""
    series, _ = scan_folder(folder, recursive=False)
    if not series:
        below = any(p.is_dir() for p in folder.iterdir())
        raise InputError(f"{what} folder {folder.name} contains no DICOM series"
                         + (" (its subfolders are not searched: for a whole study use --study)" if below else ""))
    uids = sorted({s.uid for s in series})
    if len(uids) > 1:
        listing = "; ".join(s.label() for s in series)
        raise InputError(f"{what} folder {folder.name} contains {len(uids)} DICOM series ({listing}); give the "
                         "folder of one series, or the whole study with --study")
    if len(series) == 1:
        return read_series(series[0], f"{what} {folder.name}", notes)
    matching = [s for s in series if role is not None and s.role == role]
    listing = "; ".join(s.label() for s in series)
    if len(matching) != 1:
        wanted = f"exactly one {ROLE_NAMES.get(role, role)} part" if role else "one image type"
        raise InputError(f"{what} folder {folder.name}: DICOM series {uids[0]} holds {len(series)} image types "
                         f"({listing}); need {wanted} - use --study {folder} to choose with --series")
    chosen = matching[0]
    if notes is not None:
        notes.append(f"{what}: DICOM series '{chosen.description}' holds {len(series)} image types; used the "
                     f"{chosen.n_slices} images with {chosen.rule}")
    return read_series(chosen, f"{what} {folder.name}", notes)


# --- studies: every series of an examination in one folder tree ---

def laterality(path: str | os.PathLike | None) -> str | None:
    """Laterality (0020,0060), else Image Laterality (0020,0062), of the first DICOM image in a folder (a series or
    a study, searched recursively); None for a file, a folder without DICOM images, or when neither tag is set."""
    if not path or not os.path.isdir(path):
        return None
    for file in _files(Path(path), recursive=True):
        ds = _header(file)
        if ds is None:
            continue
        for keyword in ("Laterality", "ImageLaterality"):
            value = str(ds.get(keyword, "") or "").strip()
            if value:
                return value
        return None
    return None


def looks_like_dicom_folder(folder: str | os.PathLike, max_files: int = 64) -> bool:
    """True when one of the first ``max_files`` files under ``folder`` (recursively) is a DICOM Part 10 file."""
    seen = 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            seen += 1
            try:
                with open(Path(root) / name, "rb") as fh:
                    fh.seek(128)
                    if fh.read(4) == b"DICM":
                        return True
            except OSError:
                pass
            if seen >= max_files:
                return False
    return False


def _listing(found: list[Series]) -> str:
    return "; ".join(s.label() for s in found)


def _resolve(found: list[Series], key: str, study: str) -> Series:
    exact = [s for s in found if s.key == key]
    if exact:
        return exact[0]
    matches = [s for s in found if s.key.startswith(key)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(f"study {study}: no series {key!r}; series found: {_listing(found)}")
    raise InputError(f"study {study}: {key!r} matches {len(matches)} series ({', '.join(s.key for s in matches)}); "
                     "give the full key")


def choose_series(found: list[Series], choices=(), study: str = "study") -> dict:
    """{role: Series} for 'ff', 'water', 'fat' — by the tags (see the module's table), or as ``choices`` say; refused
    when they come from different examinations (:func:`_one_examination`).

    ``choices`` are keys as listed (a SeriesInstanceUID, ``UID/N`` for one image type of a split UID, or a unique
    prefix), each optionally ``ROLE=KEY`` to give the role where the tags do not. Raises InputError, listing every
    series found and how to choose, when the choice is ambiguous or nothing usable is found.
    """
    how = ("choose with --series KEY (repeatable; ROLE=KEY with ROLE ff, water or fat when the tags do not say; "
           "mdtexture batch has no --series: give each subject a folder holding one study's Dixon series)")
    if choices:
        chosen: dict = {}
        for choice in choices:
            role, sep, key = str(choice).partition("=")
            if not sep:
                role, key = None, str(choice)
            elif role not in ROLES:
                raise InputError(f"--series {choice}: the role before '=' must be ff, water or fat")
            s = _resolve(found, key.strip(), study)
            role = role or s.role
            if role not in ROLES:
                raise InputError(f"study {study}: series {s.key} '{s.description}' has no water/fat/FF role in its "
                                 f"tags ({s.rule or 'none'}); give it as ff={s.key}, water={s.key} or fat={s.key}")
            if role in chosen and chosen[role] is not s:
                raise InputError(f"study {study}: two series chosen as {ROLE_NAMES[role]} ({chosen[role].key} and "
                                 f"{s.key})")
            chosen[role] = s
        if "ff" not in chosen and not ("water" in chosen and "fat" in chosen):
            raise InputError(f"study {study}: the chosen series give {', '.join(sorted(chosen))}; an FF series or "
                             f"both water and fat are needed; {how}; series found: {_listing(found)}")
        return _one_examination(chosen, study)
    by_role = {r: [s for s in found if s.role == r] for r in ROLES}
    if len(by_role["ff"]) > 1:
        raise InputError(f"study {study}: {len(by_role['ff'])} fat-fraction series, which one?; {how}; "
                         f"series found: {_listing(found)}")
    if len(by_role["ff"]) == 1:
        ff = by_role["ff"][0]
        chosen = {"ff": ff}
        water = [s for s in by_role["water"] if s.same_stack(ff)]
        fat = [s for s in by_role["fat"] if s.same_stack(ff)]
        if len(water) == 1 and len(fat) == 1:
            chosen.update(water=water[0], fat=fat[0])
        return _one_examination(chosen, study)
    if len(by_role["water"]) == 1 and len(by_role["fat"]) == 1:
        return _one_examination({"water": by_role["water"][0], "fat": by_role["fat"][0]}, study)
    if by_role["water"] or by_role["fat"]:
        reason = (f"{len(by_role['water'])} water and {len(by_role['fat'])} fat series and no fat-fraction series, "
                  "so no one pair to use")
    else:
        reason = "no series is tagged as water, fat or fat fraction"
    raise InputError(f"study {study}: {reason}; {how}; series found: {_listing(found)}")


def _one_examination(chosen: dict, study: str) -> dict:
    """``chosen`` itself when its series share one StudyInstanceUID and one PatientID (where the files give them);
    InputError otherwise: water from one examination and fat from another (hostile run: a DMD scan's water with a
    normal scan's fat, chosen with --series, gave a confident DMD 0.99) is no Dixon series."""
    for tag, attribute in (("StudyInstanceUID", "study_uid"), ("PatientID", "patient_id")):
        values = {getattr(s, attribute) for s in chosen.values() if getattr(s, attribute)}
        if len(values) > 1:
            listed = ", ".join(f"{ROLE_NAMES[role]} {s.key} ({tag} {getattr(s, attribute)})"
                               for role, s in sorted(chosen.items(), key=lambda kv: ROLES.index(kv[0])))
            raise InputError(f"study {study}: the chosen series come from different examinations ({listed}); "
                             "water, fat and FF must be of one scan: choose series of one study with --series")
    return chosen


def load_study(folder: str | os.PathLike, choices=(), ff_unit: str = "auto"):
    """Scan a study folder, choose the Dixon series and read them: returns (DixonSeries, facts for the summary).

    The facts name every series found and the ones used (key, UID, description, ImageType, slices, role, rule).
    """
    from .io import dixon_from_images

    folder = Path(folder)
    try:
        if not folder.is_dir():
            raise InputError(f"study folder not found: {folder}")
    except OSError as exc:
        from .filecheck import os_error_message
        raise InputError(os_error_message(exc, "study folder", folder)) from None
    found, ignored = scan_folder(folder, recursive=True)
    if not found:
        raise InputError(f"study {folder.name}: no DICOM images found ({ignored} other files)")
    chosen = choose_series(found, choices, folder.name)
    notes: list = []
    images = {ROLE_NAMES[role]: read_series(s, f"{ROLE_NAMES[role]} (series {s.key})", notes)
              for role, s in sorted(chosen.items(), key=lambda kv: ROLES.index(kv[0]))}
    series = dixon_from_images(images, ff_unit)
    series.warnings[:0] = notes
    facts = {"study_series_used": {role: s.summary() for role, s in chosen.items()},
             "study_series_found": [s.summary() for s in found], "study_files_ignored": ignored}
    return series, facts
