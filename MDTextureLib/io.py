"""Reading and writing images: Dixon series, voxel grids, fat-fraction units, muscle labels.

Everything here is in ITK's physical space (LPS, millimetres). Arrays are numpy in (z, y, x) order, i.e. axial
slice first, as SimpleITK's ``GetArrayFromImage`` returns them. The Slicer bridge converts to RAS; nothing here
knows about Slicer or torch.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import body as body_masks
from . import ffcheck, filecheck
from .errors import InputError

# Two grids are "the same" when spacing, origin and direction agree to this tolerance (mm, or unitless for
# direction cosines). DICOM and NIfTI round-trips introduce float noise around 1e-6.
GRID_TOLERANCE = 1e-4

# FF plausibility (units, range, swaps) lives in ffcheck; the body mask in body. A body covering less than this share
# of the image is reported: the leg may be outside the field of view, or the image is not a leg.
SMALL_BODY_FRACTION = 0.02
# A lower-leg field of view holds air around the leg(s): a body over this share of the image is implausible.
LARGE_BODY_FRACTION = 0.9
# FF given with water and fat should be F/(W+F) up to the vendor's corrections (T2*, noise bias): a few points.
FF_WATER_FAT_MAX_MEDIAN_DIFFERENCE = 0.10
NEED_FF_OR_WATER_FAT = "give a fat-fraction image, or both water and fat images"


@dataclass(frozen=True)
class Grid:
    """A voxel grid: size (x, y, z) in voxels, spacing (x, y, z) in mm, origin in mm (LPS), direction (row-major 3x3)."""

    size: tuple
    spacing: tuple
    origin: tuple
    direction: tuple

    @classmethod
    def of(cls, image: sitk.Image) -> "Grid":
        return cls(tuple(int(s) for s in image.GetSize()), tuple(float(s) for s in image.GetSpacing()),
                   tuple(float(o) for o in image.GetOrigin()), tuple(float(d) for d in image.GetDirection()))

    @property
    def shape_zyx(self) -> tuple:
        return tuple(reversed(self.size))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def pixel_area_mm2(self) -> float:
        return float(self.spacing[0] * self.spacing[1])

    def image(self, array_zyx: np.ndarray) -> sitk.Image:
        """A SimpleITK image holding ``array_zyx`` on this grid."""
        if tuple(array_zyx.shape) != self.shape_zyx:
            raise ValueError(f"array shape {array_zyx.shape} does not match grid {self.shape_zyx}")
        img = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx))
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction)
        return img

    @classmethod
    def from_ijk_to_lps(cls, size: tuple, ijk_to_lps: np.ndarray) -> "Grid":
        """The grid of ``size`` (x, y, z) voxels whose 4x4 voxel-index → LPS matrix is ``ijk_to_lps`` (the inverse
        of :meth:`ijk_to_lps`)."""
        m = np.asarray(ijk_to_lps, dtype=float)
        spacing = np.linalg.norm(m[:3, :3], axis=0)
        direction = m[:3, :3] / spacing[None, :]
        return cls(tuple(int(n) for n in size), tuple(float(s) for s in spacing), tuple(float(o) for o in m[:3, 3]),
                   tuple(float(d) for d in direction.ravel()))

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 matrix from voxel index (i, j, k) = (x, y, z) to LPS millimetres."""
        m = np.eye(4)
        m[:3, :3] = np.asarray(self.direction).reshape(3, 3) * np.asarray(self.spacing)[None, :]
        m[:3, 3] = self.origin
        return m

    def mismatch(self, other: "Grid") -> str | None:
        """None when both grids agree, else a short phrase naming what differs."""
        if self.size != other.size:
            return f"size {self.size} vs {other.size}"
        for what, a, b in (("spacing", self.spacing, other.spacing), ("origin", self.origin, other.origin),
                           ("direction", self.direction, other.direction)):
            if not np.allclose(a, b, rtol=0, atol=GRID_TOLERANCE * max(1.0, float(np.max(np.abs(a))))):
                fmt = lambda v: "(" + ", ".join(f"{x:.4g}" for x in v) + ")"  # noqa: E731
                return f"{what} {fmt(a)} vs {fmt(b)}"
        return None


def read_image(path: str | os.PathLike, what: str = "image", notes: list | None = None,
               role: str | None = None) -> sitk.Image:
    """Read a 3-D scalar image from NRRD, NIfTI, MetaImage (any SimpleITK format) or a DICOM series folder.

    Raises InputError, in one line naming the cause, for a missing or unreadable path (permission denied), a
    truncated or corrupt compressed file, a file that is not an image, a DICOM folder with missing or uneven slices
    or several image types (see :mod:`.dicom`), a 2-D or 4-D image or a multi-component (RGB) image. Warnings
    (NIfTI qform/sform disagreement, uneven DICOM spacing) are appended to ``notes``. ``role`` ('water', 'fat', 'ff')
    picks one image type out of a DICOM series that holds several. The returned image is float32.
    """
    p = Path(path)
    notes = [] if notes is None else notes
    try:
        is_dir = stat.S_ISDIR(os.stat(p).st_mode)
    except OSError as exc:
        raise InputError(filecheck.os_error_message(exc, what, p)) from None
    facts = {}
    try:
        if is_dir:
            from .dicom import read_dicom_folder
            image = read_dicom_folder(p, what, role=role, notes=notes)
        else:
            facts = filecheck.check_whole(p, what)
            with warnings.catch_warnings():
                image = sitk.ReadImage(str(p))
    except InputError:
        raise
    except RuntimeError as exc:
        reason = _first_line(exc)
        if "Unable to determine ImageIO reader" in reason:
            reason = "unknown format"
        raise InputError(f"cannot read {what} {p.name}: not an image file SimpleITK can read ({reason})") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{what} {p.name} has {image.GetNumberOfComponentsPerPixel()} components per voxel "
                         "(RGB or vector image); a scalar volume is needed")
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if facts.get("dicom") and (image.GetDimension() == 2 or image.GetSize()[2] == 1):
        raise InputError(f"{what} {p.name} is one DICOM file holding one slice; give the folder of its series, or "
                         "the study with --study")
    if image.GetDimension() != 3:
        raise InputError(f"{what} {p.name} is {image.GetDimension()}-D; a 3-D axial volume is needed")
    if "nifti" in facts:
        note = filecheck.qform_sform_note(facts["nifti"], Grid.of(image).ijk_to_lps(), f"{what} {p.name}")
        if note:
            notes.append(note)
    return sitk.Cast(image, sitk.sitkFloat32)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # ITK messages start with a file:line prefix; the last non-empty line is the readable part.
    return (lines[-1] if lines else type(exc).__name__)[:200]


def write_image(array_zyx: np.ndarray, grid: Grid, path: str | os.PathLike, compress: bool = False) -> None:
    """Write ``array_zyx`` with exactly ``grid``'s size, spacing, origin and direction."""
    sitk.WriteImage(grid.image(array_zyx), str(path), compress)


@dataclass
class DixonSeries:
    """One Dixon acquisition on one voxel grid. ``ff`` is a fraction in [0, 1], (z, y, x), float32."""

    ff: np.ndarray
    grid: Grid
    ff_unit: str  # "fraction", "percent", "permille" or "derived from water and fat"
    water: np.ndarray | None = None
    fat: np.ndarray | None = None
    warnings: list = field(default_factory=list)
    body: np.ndarray | None = field(default=None, repr=False)  # the body mask once computed; see body_mask()

    @property
    def n_slices(self) -> int:
        return int(self.ff.shape[0])

    def body_mask(self) -> np.ndarray:
        """Voxels inside the body (leg or legs), (z, y, x) bool, computed once: from the magnitude W + F when water
        and fat are known, else from the FF image (see :mod:`MDTextureLib.body`)."""
        if self.body is None:
            if self.water is not None and self.fat is not None:
                self.body = _body_mask(self.grid, magnitude=np.abs(self.water) + np.abs(self.fat))
            else:
                self.body = _body_mask(self.grid, ff=self.ff)
        return self.body

    @property
    def body_fraction(self) -> float:
        """Share of the image's voxels inside the body."""
        return float(np.count_nonzero(self.body_mask()) / max(self.body_mask().size, 1))


def load_dixon(ff: str | os.PathLike | None = None, water: str | os.PathLike | None = None,
               fat: str | os.PathLike | None = None, ff_unit: str = "auto") -> DixonSeries:
    """Read a Dixon series. FF alone, FF with water and fat, or water and fat alone (FF derived) are accepted.

    All given images must share one voxel grid. FF stored as a fraction, percent or per mille is detected (or
    forced with ``ff_unit='fraction'|'percent'|'permille'``) and converted to a fraction.
    """
    if ff is None and (water is None or fat is None):
        raise InputError(NEED_FF_OR_WATER_FAT)
    given = {what: path for what, path in (("fat-fraction image", ff), ("water image", water), ("fat image", fat))
             if path is not None}
    check_distinct_files(given)
    images, notes = {}, []
    for what, path in given.items():
        images[what] = read_image(path, what, notes, role=ROLE_OF[what])
    series = dixon_from_images(images, ff_unit)
    series.warnings[:0] = notes
    return series


ROLE_OF = {"fat-fraction image": "ff", "water image": "water", "fat image": "fat"}


def check_distinct_files(paths: dict) -> None:
    """Refuse one file given for two inputs ({what: path}): the same path, a link to it, or a hard link.

    A DICOM folder may be named twice (water and fat in one series, split by their DICOM tags); whether the same
    images were used twice is then checked on the voxels (:func:`dixon_from_images`).
    """
    items = [(what, Path(p)) for what, p in paths.items() if p is not None]
    for i, (what_a, a) in enumerate(items):
        for what_b, b in items[i + 1:]:
            try:
                same = os.path.samefile(a, b) and not a.is_dir()
            except OSError:
                continue  # a missing or unreadable path gets its own message when it is read
            if same:
                raise InputError(f"the same file {b.name} is given as the {what_a} and as the {what_b}; "
                                 "give each input its own file")


def dixon_from_images(images: dict, ff_unit: str = "auto") -> DixonSeries:
    """A DixonSeries from images read by :func:`read_image`, keyed 'fat-fraction image', 'water image', 'fat image'.

    All must share one voxel grid, and no two may hold the same voxels (one image given twice).
    """
    grids = {what: Grid.of(img) for what, img in images.items()}
    names = list(grids)
    for other in names[1:]:
        diff = grids[names[0]].mismatch(grids[other])
        if diff:
            raise InputError(f"{names[0]} and {other} are on different voxel grids: {diff}")
    arrays = {what: sitk.GetArrayFromImage(img).astype(np.float32, copy=False) for what, img in images.items()}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if np.array_equal(arrays[a], arrays[b]):
                raise InputError(f"the {a} and the {b} have identical voxel values: the same image was given "
                                 "twice (a copy, or the same DICOM series)")
    return series_from_arrays(grids[names[0]], ff=arrays.get("fat-fraction image"), water=arrays.get("water image"),
                              fat=arrays.get("fat image"), ff_unit=ff_unit)


def series_from_arrays(grid: Grid, ff: np.ndarray | None = None, water: np.ndarray | None = None,
                       fat: np.ndarray | None = None, ff_unit: str = "auto") -> DixonSeries:
    """A DixonSeries from (z, y, x) arrays already known to lie on ``grid`` (files, or Slicer volume nodes).

    The body mask comes from the magnitude W + F when water and fat are given, else from the FF image. FF is
    checked (:mod:`MDTextureLib.ffcheck`), converted to a fraction (unit detected or forced) or derived from water
    and fat, and set to 0 outside the body. Refused: degenerate or implausible FF, a body-wide water/fat swap.
    """
    if ff is None and (water is None or fat is None):
        raise InputError(NEED_FF_OR_WATER_FAT)
    notes: list[str] = []
    spacing_xy = grid.spacing[:2]
    derived = ff is None
    if not derived:
        ff_raw = _finite_ff(ff, notes)
        ffcheck.refuse_degenerate(ff_raw)
        if water is not None and fat is not None:
            body = _body_mask(grid, magnitude=_magnitude(water) + _magnitude(fat))
        else:
            full_scale = ffcheck.UNIT_SCALES.get(ff_unit) or _full_scale(ff_raw)
            body = _body_mask(grid, ff=ff_raw, full_scale=full_scale)
        # Outside the body first, so that the unit and range checks count only the body's voxels.
        outside = (ff_raw != 0) & ~body
        if body.any() and outside.any():
            n_out = int(np.count_nonzero(outside))
            if n_out > 0.01 * ff_raw.size:  # more than specks: tell the user what was removed
                notes.append(f"FF outside the body set to 0 in {n_out} voxels ({100 * n_out / ff_raw.size:.1f} % of "
                             "the image: noise in the air)")
            ff_raw[outside] = 0.0
        ff_a, unit = _to_fraction(ff_raw, ff_unit, notes, body)
        if water is not None and fat is not None:
            _note_ff_against_water_fat(ff_a, water, fat, body, notes)
    else:
        body = _body_mask(grid, magnitude=_magnitude(water) + _magnitude(fat))
        ff_a, unit = ff_from_water_fat(water, fat, body=body, spacing_xy_mm=spacing_xy), "derived from water and fat"
    _note_body_size(body, notes)
    if body.any():
        axial = _axial_order(grid, ff_a.shape)
        ffcheck.report_swap(ffcheck.check_swap(axial.to_canonical(ff_a), axial.to_canonical(body),
                                               axial.spacing_xyz_mm[:2]), axial.shape_zyx[0], notes, derived)
    if ff_a.shape[0] < 3:
        notes.append(f"only {ff_a.shape[0]} axial slice(s): 3-slice stacks repeat the edge slice")
    return DixonSeries(ff=ff_a, grid=grid, ff_unit=unit, water=water, fat=fat, warnings=notes, body=body)


def _axial_order(grid: Grid, shape_zyx: tuple):
    """The lossless reordering that stacks the array's slices axially (see :mod:`MDTextureLib.orientation`): the
    body mask and the swap check work slice by slice, so a sagittal or coronal storage must not be cut along its own
    slices."""
    from .orientation import orientation_of

    return orientation_of(tuple(shape_zyx), grid.spacing, grid.direction).reordering()


def _body_mask(grid: Grid, magnitude: np.ndarray | None = None, ff: np.ndarray | None = None,
               full_scale: float = 1.0) -> np.ndarray:
    """The body mask (:mod:`MDTextureLib.body`) from the magnitude W + F, else from FF, computed on axial slices
    whatever the storage order and returned in the input's array order."""
    image = magnitude if magnitude is not None else ff
    axial = _axial_order(grid, image.shape)
    spacing_xy = axial.spacing_xyz_mm[:2]
    if magnitude is not None:
        mask = body_masks.body_mask_from_magnitude(axial.to_canonical(magnitude), spacing_xy)
    else:
        mask = body_masks.body_mask_from_ff(axial.to_canonical(ff), spacing_xy, full_scale=full_scale)
    return axial.from_canonical(mask)


def _note_ff_against_water_fat(ff: np.ndarray, water: np.ndarray, fat: np.ndarray, body: np.ndarray,
                               notes: list) -> None:
    """A warning when the FF image does not say what its water and fat images say (F / (W + F) in the body): FF and
    water/fat of different scans, or of different reconstructions, on one grid."""
    if not body.any():
        return
    w, f = _magnitude(water)[body], _magnitude(fat)[body]
    total = w + f
    ok = total > 0
    if not ok.any():
        return
    difference = float(np.median(np.abs(ff[body][ok] - f[ok] / total[ok])))
    if difference > FF_WATER_FAT_MAX_MEDIAN_DIFFERENCE:
        notes.append(f"the fat-fraction image and F/(W+F) of the water and fat images differ by {100 * difference:.0f} "
                     "points (median over the body): are they of the same scan? The verdict uses the FF image, the "
                     "body mask the water and fat images")


def _magnitude(image: np.ndarray) -> np.ndarray:
    return np.abs(np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0))


def _finite_ff(ff: np.ndarray, notes: list) -> np.ndarray:
    """A float32 copy of ``ff`` with NaN/Inf set to 0 (with a note); InputError when nothing is finite."""
    ff = np.array(ff, dtype=np.float32, copy=True)
    bad = ~np.isfinite(ff)
    if bad.all():
        raise InputError("fat-fraction image has no finite values")
    if bad.any():
        notes.append(f"{int(bad.sum())} NaN/Inf voxels in the fat-fraction image were masked (set to 0)")
        ff[bad] = 0.0
    return ff


def _full_scale(ff: np.ndarray) -> float:
    """The FF value of pure fat in the image's own unit (1, 100 or 1000), for the body mask, which comes before the
    body-based unit detection: the unit whose full scale is nearest (in ratio) to the 99th percentile of all
    non-zero voxels, air included (air noise may spread beyond full scale in signed maps, never by 3x)."""
    values = np.abs(ff[ff != 0])
    if not values.size:
        return 1.0
    p99 = max(float(np.percentile(values, 99)), 1e-12)
    return min(ffcheck.UNIT_SCALES.values(), key=lambda scale: abs(np.log(p99 / scale)))


def _note_body_size(body: np.ndarray, notes: list) -> None:
    share = float(np.count_nonzero(body)) / max(body.size, 1)
    if share == 0:
        notes.append("no body found in the image (no region of tissue-like signal): the verdict means little")
    elif share > LARGE_BODY_FRACTION:
        notes.append(f"the body mask covers {100 * share:.0f} % of the image: is the air filled with tissue-like "
                     "values, or does the field of view lie inside the leg? The window and the verdict may be wrong")
    elif share < SMALL_BODY_FRACTION:
        notes.append(f"the body covers only {100 * share:.2g} % of the image ({int(np.count_nonzero(body))} voxels): "
                     "is the leg in the field of view?")


def normalise_ff(ff: np.ndarray, unit: str = "auto", notes: list | None = None,
                 body: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Return (FF as a fraction in [0, 1], its unit: 'fraction', 'percent' or 'permille'). NaN/Inf are set to 0
    with a note; statistics are taken over ``body`` (else over the non-zero voxels).

    Raises InputError for an all-zero, constant or label-like image, a unit that cannot be told, and FF clearly
    outside 0–100 % in more than a few voxels; a few such voxels are clipped with a note that counts them.
    """
    notes = [] if notes is None else notes
    ff = _finite_ff(ff, notes)
    ffcheck.refuse_degenerate(ff)
    return _to_fraction(ff, unit, notes, body)


def _to_fraction(ff: np.ndarray, unit: str, notes: list, body: np.ndarray | None) -> tuple[np.ndarray, str]:
    """``ff`` (finite, float32, modified in place) divided by its unit's full scale and clipped to [0, 1]."""
    if unit == "auto":
        unit = ffcheck.detect_unit(ff, body)
    elif unit not in ffcheck.UNIT_SCALES:
        raise InputError(f"unknown FF unit {unit!r}; use {', '.join(ffcheck.UNIT_CHOICES)}")
    else:
        ffcheck.note_forced_unit(ff, body, unit, notes)
    ff /= ffcheck.UNIT_SCALES[unit]
    return ffcheck.clip_to_range(ff, body, unit, notes), unit


def ff_from_water_fat(water: np.ndarray, fat: np.ndarray, body: np.ndarray | None = None,
                      spacing_xy_mm: tuple = (1.0, 1.0)) -> np.ndarray:
    """FF = F / (W + F) on magnitudes inside the body where W + F is above the air's noise floor; 0 elsewhere.

    ``body`` defaults to the body mask of W + F (:func:`MDTextureLib.body.body_mask_from_magnitude`). How FF was
    made is recorded as the series' ``ff_unit`` ("derived from water and fat"), not as a warning.
    """
    w, f = _magnitude(water), _magnitude(fat)
    total = w + f
    if not np.any(total):
        raise InputError("water and fat images are empty (all zero)")
    if body is None:
        body = body_masks.body_mask_from_magnitude(total, spacing_xy_mm)
    signal = body & (total > body_masks.noise_floor(total, body, spacing_xy_mm))
    ff = np.zeros(total.shape, dtype=np.float32)
    ff[signal] = f[signal] / total[signal]
    return ff
