"""Where the app may read and write: the data root (server-side picker, exported result folders) and uploads.

Every path a page names is resolved (links followed) and must lie inside ``--data-root``; without a data root the
picker and folder export are off. Uploaded files are kept in a private temporary folder of the server, are limited
in size, and keep only a safe form of their name.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import InputError

DEFAULT_UPLOAD_LIMIT_MB = 512
#: Image and segmentation files the picker lists (and uploads accept).
IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".seg.nrrd")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


class DataRoot:
    """The one folder the page may browse, read from and export into (None: none)."""

    def __init__(self, root: str | os.PathLike | None):
        self.root = Path(root).resolve() if root else None
        if self.root is not None and not self.root.is_dir():
            raise InputError(f"--data-root {root} is not a folder")

    def resolve(self, relative: str) -> Path:
        """The absolute path of ``relative`` (a path inside the data root); InputError when it leaves it."""
        if self.root is None:
            raise InputError("no data folder: start the server with --data-root DIR to read or write files there")
        path = (self.root / (relative or ".")).resolve()
        if path != self.root and self.root not in path.parents:
            raise InputError(f"{relative} lies outside the data folder; only files under the data folder are used")
        return path

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path != self.root else ""

    def listing(self, relative: str = "") -> dict:
        """{"folder", "parent", "folders", "files"} of a folder inside the data root (images only)."""
        folder = self.resolve(relative)
        if not folder.is_dir():
            raise InputError(f"{relative} is not a folder")
        try:
            entries = sorted(folder.iterdir(), key=lambda p: p.name.lower())
        except OSError as exc:
            raise InputError(f"cannot list {relative or 'the data folder'}: {exc.strerror}") from None
        folders = [self.relative(p) for p in entries if p.is_dir() and self._inside(p)]
        files = [self.relative(p) for p in entries if p.is_file() and is_image_name(p.name) and self._inside(p)]
        here = self.relative(folder)
        parent = None if folder == self.root else self.relative(folder.parent)
        return {"folder": here, "parent": parent, "folders": folders, "files": files}

    def _inside(self, path: Path) -> bool:
        resolved = path.resolve()
        return resolved == self.root or self.root in resolved.parents


def safe_name(name: str) -> str:
    """A file name without folders or odd characters, keeping the (double) suffix the readers need."""
    base = os.path.basename(str(name).replace("\\", "/")) or "upload"
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    return base or "upload"


class Uploads:
    """Uploaded files in a private temporary folder (removed by :meth:`close`), each at most ``limit_mb``."""

    def __init__(self, limit_mb: float = DEFAULT_UPLOAD_LIMIT_MB):
        self.limit_bytes = int(limit_mb * 1024 * 1024)
        self.folder = Path(tempfile.mkdtemp(prefix="mdtexture-uploads-"))
        self._count = 0

    def save(self, name: str, content: bytes) -> Path:
        """Write one uploaded file; InputError when it is too large or has no image suffix."""
        if len(content) > self.limit_bytes:
            raise InputError(f"{safe_name(name)} is {len(content) / 1e6:.1f} MB; uploads are limited to "
                             f"{self.limit_bytes / 1e6:.0f} MB (start the server with a larger --upload-limit-mb)")
        clean = safe_name(name)
        if not is_image_name(clean):
            raise InputError(f"{clean} is not an image file this app reads ({', '.join(IMAGE_SUFFIXES)})")
        self._count += 1
        folder = self.folder / f"{self._count:04d}"  # one folder per file: two uploads with one name both stay
        folder.mkdir()
        path = folder / clean
        path.write_bytes(content)
        return path

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
