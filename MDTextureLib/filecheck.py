"""Is an image file whole and unambiguous? Checks made before SimpleITK reads a file, because ITK does not make them.

- A truncated ``.nii.gz`` is read by ITK with its missing slices zero-filled, and a corrupt gzip NRRD or compressed
  MetaImage with garbage values; both look like images. Here every compressed stream is decompressed to its end
  marker (gzip: CRC and length; zlib: Adler-32) and its length compared with what the header promises.
- A NIfTI whose qform and sform disagree places the image at one of two positions; which one ITK takes is found
  by comparing with what it read, and the disagreement is reported in mm.
- Permission and other OS errors are turned into one-line messages that name them.

Nothing here knows about Dixon images; each function takes a path and returns facts or raises InputError.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import InputError

CHUNK_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
# qform and sform may differ by float noise from converters; above this (mm, at any corner) the user is told.
QFORM_SFORM_TOLERANCE_MM = 0.1

_NRRD_TYPE_BYTES = {
    "signed char": 1, "int8": 1, "int8_t": 1, "uchar": 1, "unsigned char": 1, "uint8": 1, "uint8_t": 1,
    "short": 2, "short int": 2, "signed short": 2, "signed short int": 2, "int16": 2, "int16_t": 2,
    "ushort": 2, "unsigned short": 2, "unsigned short int": 2, "uint16": 2, "uint16_t": 2,
    "int": 4, "signed int": 4, "int32": 4, "int32_t": 4, "uint": 4, "unsigned int": 4, "uint32": 4,
    "uint32_t": 4, "longlong": 8, "long long": 8, "long long int": 8, "signed long long": 8,
    "signed long long int": 8, "int64": 8, "int64_t": 8, "ulonglong": 8, "unsigned long long": 8,
    "unsigned long long int": 8, "uint64": 8, "uint64_t": 8, "float": 4, "double": 8,
}


def os_error_message(exc: OSError, what: str, path: Path) -> str:
    """One line naming the real cause of an OS error met while opening ``path``."""
    if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
        return f"{what} not found: {path}"
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return (f"cannot read {what} {path}: permission denied (ask for read access, or copy the file somewhere "
                "you can read)")
    reason = exc.strerror or type(exc).__name__
    return f"cannot read {what} {path}: {reason}"


def open_checked(path: Path, what: str):
    """``open(path, 'rb')`` with OS errors turned into InputError."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(os_error_message(exc, what, path)) from None


def check_whole(path: Path, what: str) -> dict:
    """Raise InputError if ``path`` is a compressed or NIfTI file that is truncated or corrupt.

    Returns facts found on the way: ``{"nifti": header dict}`` for NIfTI-1 files, else ``{}``.
    """
    with open_checked(path, what) as fh:
        try:
            head = fh.read(1024)
        except OSError as exc:
            raise InputError(os_error_message(exc, what, path)) from None
    if head[:2] == GZIP_MAGIC:  # .nii.gz (or any gzipped file): the whole file is one gzip stream
        header = _gzip_head(path, what, 352)
        expected = _nifti_data_end(header)
        size = _stream_length(path, what, "gzip", offset=0)
        return _check_nifti(path, what, header, size, expected)
    if head[:4] == b"NRRD":
        _check_nrrd(path, what)
        return {}
    if len(head) >= 348 and _nifti_endian(head) is not None:
        return _check_nifti(path, what, head[:352], os.path.getsize(path), _nifti_data_end(head[:352]))
    if path.suffix.lower() in (".mha", ".mhd"):
        _check_metaimage(path, what)
    return {"dicom": True} if head[128:132] == b"DICM" else {}


def _corrupt(what: str, path: Path, kind: str, why: str) -> InputError:
    return InputError(f"cannot read {what} {path.name}: corrupt or truncated {kind} data ({why}); "
                      "copy or export the file again")


def _decompressor(kind: str):
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    return zlib.decompressobj(16 + zlib.MAX_WBITS if kind == "gzip" else zlib.MAX_WBITS)


def _stream_length(path: Path, what: str, kind: str, offset: int) -> int:
    """Decompress from byte ``offset`` to the end marker of the last stream; return the decompressed length.

    kind: 'gzip' (CRC-32 and length checked), 'zlib' (Adler-32 checked) or 'bzip2'. Concatenated gzip or bzip2
    members (pigz, bgzip, pbzip2) are followed to the end of the file.
    """
    decomp = _decompressor(kind)
    n = 0
    with open_checked(path, what) as fh:
        fh.seek(offset)
        try:
            pending = fh.read(CHUNK_BYTES)
            while pending:
                n += len(decomp.decompress(pending))
                pending = b""
                if decomp.eof:
                    pending = decomp.unused_data or fh.read(CHUNK_BYTES)
                    if not pending or kind == "zlib" or not pending.strip(b"\0"):
                        break  # the end (trailing zero padding is tolerated, as gzip does)
                    decomp = _decompressor(kind)  # the next member
                else:
                    pending = fh.read(CHUNK_BYTES)
        except (zlib.error, OSError, EOFError, ValueError) as exc:
            raise _corrupt(what, path, f"{kind}-compressed", str(exc).split(":")[-1].strip() or "bad stream") from None
    if not decomp.eof:
        raise _corrupt(what, path, f"{kind}-compressed",
                       f"the stream ends before its end marker after {n} bytes")
    return n


def _gzip_head(path: Path, what: str, n: int) -> bytes:
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, PermissionError):
            raise InputError(os_error_message(exc, what, path)) from None
        raise _corrupt(what, path, "gzip-compressed", str(exc) or "bad header") from None


def _check_nrrd(path: Path, what: str) -> None:
    """A NRRD's header promises sizes, a type and an encoding; a compressed payload must decompress to that size."""
    fields, data_offset = {}, 0
    with open_checked(path, what) as fh:
        for line in iter(fh.readline, b""):
            data_offset += len(line)
            text = line.decode("latin-1").strip()
            if not text:
                break
            if ":" in text and not text.startswith("#"):
                key, _, value = text.partition(":")
                fields[key.strip().lower()] = value.lstrip("=").strip()
    encoding = fields.get("encoding", "raw").lower()
    kind = {"gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}.get(encoding)
    if kind is None:
        return  # raw/ascii/hex: ITK itself refuses a short file
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file and data_file.upper() != "LIST" and "%" not in data_file:
        target, offset = path.parent / data_file, 0
    elif data_file:
        return  # several data files: left to ITK
    else:
        target, offset = path, data_offset
    n = _stream_length(target, what, kind, offset)
    try:
        sizes = [int(s) for s in fields.get("sizes", "").split()]
        expected = int(np.prod(sizes)) * _NRRD_TYPE_BYTES[fields.get("type", "").lower()]
    except (ValueError, KeyError):
        return
    if n < expected:
        raise _corrupt(what, path, f"{kind}-compressed", f"{n} bytes of voxel data where the header promises "
                                                         f"{expected}")


def _check_metaimage(path: Path, what: str) -> None:
    fields, data_offset = {}, 0
    with open_checked(path, what) as fh:
        for line in iter(fh.readline, b""):
            data_offset += len(line)
            key, _, value = line.decode("latin-1").partition("=")
            fields[key.strip().lower()] = value.strip()
            if key.strip().lower() == "elementdatafile":
                break
            if data_offset > 65536:
                return
    if fields.get("compresseddata", "false").lower() != "true":
        return
    data_file = fields.get("elementdatafile", "")
    if data_file.upper() == "LOCAL":
        _stream_length(path, what, "zlib", data_offset)
    elif data_file and " " not in data_file and "%" not in data_file and data_file.upper() != "LIST":
        _stream_length(path.parent / data_file, what, "zlib", 0)


# --- NIfTI-1 header (348 bytes, then 4 bytes of extension flags) ---

def _nifti_endian(head: bytes) -> str | None:
    if len(head) < 348 or head[344:347] not in (b"n+1", b"ni1"):
        return None
    for endian in ("<", ">"):
        if struct.unpack_from(endian + "i", head, 0)[0] == 348:
            return endian
    return None


def _nifti_data_end(head: bytes) -> int | None:
    """Bytes a single-file NIfTI-1 must hold: vox_offset + voxels × bytes per voxel; None if not NIfTI-1."""
    e = _nifti_endian(head)
    if e is None or head[344:347] != b"n+1":
        return None
    dim = struct.unpack_from(e + "8h", head, 40)
    bitpix = struct.unpack_from(e + "h", head, 72)[0]
    vox_offset = struct.unpack_from(e + "f", head, 108)[0]
    n = int(np.prod([max(int(d), 1) for d in dim[1:1 + max(min(int(dim[0]), 7), 0)]]))
    return int(vox_offset) + n * max(int(bitpix), 0) // 8


def _check_nifti(path: Path, what: str, head: bytes, size: int, expected: int | None) -> dict:
    if expected is not None and size < expected:
        raise InputError(f"cannot read {what} {path.name}: truncated NIfTI file ({size} bytes of "
                         f"{expected} the header promises); copy or export the file again")
    header = nifti_transforms(head)
    return {"nifti": header} if header else {}


def nifti_transforms(head: bytes) -> dict | None:
    """qform and sform of a NIfTI-1 header as 4x4 voxel-index → RAS matrices, with their codes and the grid size."""
    e = _nifti_endian(head)
    if e is None:
        return None
    dim = struct.unpack_from(e + "8h", head, 40)
    pixdim = struct.unpack_from(e + "8f", head, 76)
    qform_code, sform_code = struct.unpack_from(e + "2h", head, 252)
    b, c, d, qx, qy, qz = struct.unpack_from(e + "6f", head, 256)
    srow = np.array(struct.unpack_from(e + "12f", head, 280), dtype=float).reshape(3, 4)
    a2 = 1.0 - (b * b + c * c + d * d)
    a = np.sqrt(a2) if a2 > 1e-7 else 0.0
    if a == 0.0:  # NIfTI standard: a 180° rotation, renormalise (b, c, d)
        norm = np.sqrt(b * b + c * c + d * d) or 1.0
        b, c, d = b / norm, c / norm, d / norm
    rot = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]])
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    qform = np.eye(4)
    qform[:3, :3] = rot @ np.diag([pixdim[1], pixdim[2], qfac * pixdim[3]])
    qform[:3, 3] = (qx, qy, qz)
    sform = np.eye(4)
    sform[:3, :] = srow
    size = tuple(max(int(n), 1) for n in dim[1:4])
    return {"qform": qform, "sform": sform, "qform_code": int(qform_code), "sform_code": int(sform_code),
            "size": size}


def corner_distance_mm(a: np.ndarray, b: np.ndarray, size: tuple) -> float:
    """Largest distance (mm) between where two voxel → world matrices put the 8 corner voxels of a grid."""
    corners = np.array([[i, j, k, 1.0] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)])
    return float(np.max(np.linalg.norm((corners @ a.T - corners @ b.T)[:, :3], axis=1)))


def qform_sform_note(header: dict, ijk_to_lps_read: np.ndarray, name: str) -> str | None:
    """A warning when a NIfTI's qform and sform disagree: by how many mm, and which one the image was read with."""
    if header["qform_code"] <= 0 or header["sform_code"] <= 0:
        return None
    size = header["size"]
    gap = corner_distance_mm(header["qform"], header["sform"], size)
    if gap <= QFORM_SFORM_TOLERANCE_MM:
        return None
    read_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps_read
    to_q = corner_distance_mm(read_ras, header["qform"], size)
    to_s = corner_distance_mm(read_ras, header["sform"], size)
    if min(to_q, to_s) > QFORM_SFORM_TOLERANCE_MM:
        choice = f"neither ({to_q:.1f} mm from the qform, {to_s:.1f} mm from the sform)"
    else:
        choice = "the sform" if to_s <= to_q else "the qform"
    return (f"{name}: NIfTI qform and sform disagree by up to {gap:.1f} mm; the image was placed with {choice} "
            "(as ITK and 3D Slicer read it); a segmentation made with the other lands that far off — make the two "
            "agree in the header if unsure")
