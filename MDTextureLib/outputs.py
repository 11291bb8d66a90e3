"""Output folders: written all-or-nothing, and never over anything MDTexture did not write.

Every command writes into a hidden temporary sibling of its output folder and moves it into place only when
everything succeeded, so a failure (bad input, a crash, Ctrl-C, SIGTERM, SIGHUP) never leaves a half-written result.

The one rule for an output folder ``OUT`` (every command that writes a folder goes through :func:`atomic_dir`):

* ``OUT`` that is, contains or lies inside any input (symbolic links resolved) is refused, with or without
  ``--overwrite``: MDTexture never writes over or into what it reads.
* ``OUT`` that does not exist, or is an empty folder, is used.
* ``OUT`` that is not empty is replaced only when it is an earlier MDTexture output (it holds :data:`MANIFEST`,
  which lists every file written, with its size and, up to :data:`HASHED_UP_TO_BYTES`, its SHA-256) with nothing
  added or changed since (an edited ``prediction.json`` is the user's now), and ``--overwrite`` is given;
  otherwise refused.
* Folders get the permissions the user's umask gives (``mkdtemp`` alone would leave them 0700).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from .errors import InputError

#: Written last into every folder MDTexture writes whole: who wrote it, with which command, when, and what.
MANIFEST = ".mdtexture-output.json"

#: The ``--out`` / ``--overwrite`` help texts every command shares.
OUT_HELP = ("output folder: must not exist or be empty, unless it is an earlier MDTexture output and --overwrite "
            "is given")
OVERWRITE_HELP = ("replace --out if it is an earlier MDTexture output (nothing else is ever replaced: not a folder "
                  "MDTexture did not write, not one holding files added since, not one holding an input)")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP turned into an exception, so that cleanups (``finally``, :func:`atomic_dir`) run as on
    Ctrl-C; a ``KeyboardInterrupt`` so that ``except Exception`` (e.g. batch's per-subject handler) lets it pass."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# Signals that arrive while a folder is being moved into place (or a temporary one removed) wait until that is
# done: None when not deferring, else the signals received meanwhile. Only the main thread handles signals.
_deferred: list | None = None


def _raise_on_signal(owner_pid: int, previous: dict):
    def handler(signum, frame):
        if os.getpid() != owner_pid:  # a forked worker inherited this handler: behave as it would without it
            signal.signal(signum, previous[signum])
            if callable(previous[signum]):
                return previous[signum](signum, frame)
            os.kill(os.getpid(), signum)
            return
        if _deferred is not None:
            _deferred.append(signum)
            return
        raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)
    return handler


@contextlib.contextmanager
def signals_raise():
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` and SIGINT ``KeyboardInterrupt`` in the main
    thread (so temporary folders are removed); the previous handlers come back on exit. A signal the caller ignores
    (``nohup`` ignores SIGHUP) or handles itself is left alone; so is everything off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = {getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name)}
    defaults = (signal.SIG_DFL, signal.default_int_handler)
    previous = {s: signal.getsignal(s) for s in wanted}
    previous = {s: h for s, h in previous.items() if h in defaults}
    handler = _raise_on_signal(os.getpid(), previous)
    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_deferred(reraise: bool = True):
    """Let a signal that arrives inside wait until the block is done; then raise it (``reraise``) or drop it.

    Only in the main thread, the one signals interrupt: another thread (batch's writer) is never interrupted, and
    the main thread waits for it before it commits or removes the folder that thread writes into."""
    global _deferred
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer, _deferred = _deferred, []
    try:
        yield
    finally:
        pending, _deferred = _deferred, outer
        if outer is not None:  # nested: the outer block decides
            outer.extend(pending)
        elif reraise and pending:
            raise KeyboardInterrupt() if pending[0] == signal.SIGINT else Terminated(pending[0])


def describe_os_error(exc: OSError) -> str:
    """'permission denied', 'no space left on device', … from an OSError, for a one-line message."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(path)).resolve()


def check_apart_from_inputs(out: str | os.PathLike, inputs=(), what: str = "output folder") -> None:
    """Refuse an output folder that is, contains or lies inside any of ``inputs`` (None entries are skipped)."""
    real_out = _real(out)
    for inp in inputs:
        if inp is None or str(inp) == "":
            continue
        real_in = _real(inp)
        if real_out == real_in:
            relation = "is the input"
        elif real_out in real_in.parents:
            relation = "contains the input"
        elif real_in in real_out.parents:
            relation = "lies inside the input"
        else:
            continue
        raise InputError(f"{what} {out} {relation} {inp}; MDTexture never writes over or into what it reads: "
                         "choose a folder outside the inputs")


def _entries(folder: Path) -> list:
    """Names in ``folder`` (a refusal, not a traceback, when it cannot be read)."""
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it)
    except OSError as exc:
        raise InputError(f"cannot read output folder {folder}: {describe_os_error(exc)}") from None


def _tree(folder: Path) -> list:
    """Every file and folder under ``folder`` as a relative POSIX path, sorted."""
    found = []
    for name in _entries(folder):
        found.append(name)
        if (folder / name).is_dir() and not (folder / name).is_symlink():
            found += [f"{name}/{sub}" for sub in _tree(folder / name)]
    return found


#: Files up to this size get a SHA-256 in the manifest (the ones people edit: JSON, CSV); larger ones their size.
HASHED_UP_TO_BYTES = 1 << 20


def _fingerprint(path: Path) -> dict:
    size = path.stat().st_size
    if size > HASHED_UP_TO_BYTES:
        return {"bytes": size}
    import hashlib

    return {"bytes": size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _fingerprints(folder: Path, names: list) -> dict:
    """{relative path: size (and SHA-256)} of the files among ``names``."""
    return {name: _fingerprint(folder / name) for name in names
            if (folder / name).is_file() and not (folder / name).is_symlink()}


def _changed(folder: Path, recorded: dict) -> list:
    """Files whose size or SHA-256 differ from what the manifest recorded (or that became something else); a file
    removed since holds nothing of anyone's."""
    changed = []
    for name, then in recorded.items():
        path = folder / name
        if not path.exists() and not path.is_symlink():
            continue
        try:
            now = _fingerprint(path) if path.is_file() and not path.is_symlink() else None
        except OSError:
            now = None
        if now is None or any(now.get(key) != value for key, value in then.items()):
            changed.append(name)
    return sorted(changed)


def _count(names: list) -> str:
    return f"{len(names)} entr{'y' if len(names) == 1 else 'ies'}"


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of an earlier MDTexture output in ``folder``, or None."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("written_by") == "MDTexture" else None


#: How a command-line user replaces an earlier output (a face without --overwrite passes its own words).
REPLACE_HINT = "pass --overwrite to replace it, or choose a new folder"


def check_output_folder(out: str | os.PathLike, inputs=(), overwrite: bool = False,
                        what: str = "output folder", replace_hint: str = REPLACE_HINT) -> None:
    """Refuse (InputError, one line) an output folder whose replacement would destroy what MDTexture did not write.

    Call it before the work starts, to fail at once; :func:`atomic_dir` calls it again before moving into place.
    ``replace_hint``: what the refusal of an earlier output tells the user to do.
    """
    out = Path(out)
    check_apart_from_inputs(out, inputs, what)
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"{what} {out} exists and is not a folder")
    names = _entries(out)
    if not names:
        return
    manifest = read_manifest(out)
    if manifest is None:
        shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
        raise InputError(f"{what} {out} exists and is not empty ({_count(names)}: {shown}) and is not an "
                         "MDTexture output; choose a new or empty folder")
    earlier = f"an earlier MDTexture output ({manifest.get('command', '?')}, {manifest.get('time_utc', '?')})"
    if not overwrite:
        raise InputError(f"{what} {out} holds {earlier}; {replace_hint}")
    added = sorted(set(_tree(out)) - set(manifest.get("files", [])) - {MANIFEST})
    if added:
        shown = ", ".join(added[:3]) + (", …" if len(added) > 3 else "")
        raise InputError(f"{what} {out} holds {earlier} but also {_count(added)} MDTexture did not write "
                         f"({shown}); move them away or choose a new folder")
    changed = _changed(out, manifest.get("contents") or {})  # manifests before contents were recorded: none
    if changed:
        shown = ", ".join(changed[:3]) + (", …" if len(changed) > 3 else "")
        raise InputError(f"{what} {out} holds {earlier}, but {shown} changed since MDTexture wrote "
                         f"{'it' if len(changed) == 1 else 'them'}; keep your version elsewhere or choose a new folder")


def check_output_files(paths, overwrite: bool = False, ours: bool = False, what: str = "output") -> None:
    """The same rule for a command that writes named files beside others (``train``'s MODEL.*): existing ones are
    replaced only when ``ours`` (the caller recognised them as an earlier MDTexture output) and ``overwrite``."""
    existing = [Path(p) for p in paths if Path(p).exists() or Path(p).is_symlink()]
    if not existing:
        return
    names = ", ".join(p.name for p in existing)
    where = existing[0].parent
    if not ours:
        raise InputError(f"{what} {names} in {where} exists already and was not written by MDTexture; "
                         "choose another name")
    if not overwrite:
        raise InputError(f"{what} {names} in {where} exists already (an earlier MDTexture output); pass "
                         "--overwrite to replace it, or choose another name")


def temp_sibling(path: str | os.PathLike, what: str = "output folder") -> Path:
    """A new hidden temporary folder beside ``path`` (same file system, so ``os.replace`` from it is atomic),
    with the permissions the umask gives a new folder."""
    path = Path(path)
    parent = _real(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=parent))
        os.chmod(tmp, 0o777 & ~_umask())
        return tmp
    except OSError as exc:
        raise InputError(f"cannot write {what} {path}: {describe_os_error(exc)}") from None


def _write_manifest(folder: Path, command: str) -> None:
    from . import __version__

    files = _tree(folder)
    manifest = {"written_by": "MDTexture", "command": command, "version": __version__,
                "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files,
                "contents": _fingerprints(folder, files)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _move_into_place(tmp: Path, out: Path, what: str) -> None:
    """Replace ``out`` (absent, empty or an earlier output) by ``tmp``; the earlier output comes back on failure."""
    old = None
    try:
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "previous")
        os.replace(tmp, out)
    except OSError as exc:
        reason = describe_os_error(exc)
        if old is not None and (old / "previous").exists():
            try:
                os.replace(old / "previous", out)
                old.rmdir()
            except OSError:
                raise InputError(f"cannot write {what} {out}: {reason}; the earlier output is kept in "
                                 f"{old / 'previous'}") from None
        elif old is not None:
            old.rmdir()
        raise InputError(f"cannot write {what} {out}: {reason}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike, command: str, overwrite: bool = False, inputs=(),
               what: str = "output folder", replace_hint: str = REPLACE_HINT):
    """Yield a temporary folder; on success it becomes ``out``, with a manifest, under the module's rule.

    ``command`` is recorded in the manifest; ``inputs`` are every path the command reads; ``overwrite`` allows
    replacing an earlier MDTexture output. Nothing else is ever replaced.
    """
    out = Path(out)
    check_output_folder(out, inputs, overwrite, what, replace_hint)
    target = _real(out)  # a symbolic link to a folder: write where it points, and keep the link
    tmp = temp_sibling(target, what)
    try:
        yield tmp
        _write_manifest(tmp, command)
        with signals_deferred():
            check_output_folder(out, inputs, overwrite, what, replace_hint)  # nothing appeared there meanwhile
            _move_into_place(tmp, target, what)
    except BaseException:
        with signals_deferred(reraise=False):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
