"""Output folders written all-or-nothing.

Every command writes into a hidden temporary sibling of its output folder and moves it into place only when
everything succeeded, so a failure (bad input, a crash, Ctrl-C) never leaves a half-written result.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import InputError


def temp_sibling(path: str | os.PathLike, what: str = "output folder") -> Path:
    """A new hidden temporary folder beside ``path`` (same file system, so ``os.replace`` from it is atomic)."""
    path = Path(path)
    parent = path.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike):
    """Yield a temporary folder; on success it replaces ``out`` (an existing ``out`` is replaced as a whole)."""
    out = Path(out)
    parent = out.resolve().parent
    tmp = temp_sibling(out)
    if out.exists() and not out.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"output path {out} exists and is not a folder")
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=parent))
        os.replace(out, old / "previous")
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
