"""Output files and folders: checked before the work, written atomically, failures in one sentence. Torch-free.

Every writer of the package (CSV tables, checkpoints, pictures, box files,
training tiles) goes through this module: :func:`atomic_write` writes into a
temporary file beside the target and renames it over the target only when the
write finished; :func:`atomic_write_files` does the same for outputs that are
several files written together (a Shapefile's ``.shp``, ``.shx``, ``.dbf``,
``.prj``, ``.cpg``), all or none. So an interrupted or failed run never leaves a
half-written file, and temporary names always look like ``.NAME.*.tmp`` beside
the target (a file or a folder). :func:`check_output_file` and :func:`check_output_dir`
answer before any long work whether a destination can be written at all; a
failure while writing (a full disk, a read-only file system, no permission)
becomes a :class:`~deepforest_lite.errors.WriteError` whose message names the
path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import InvalidInputError, WriteError

__all__ = [
    "CHECKPOINT_EXTENSIONS",
    "atomic_write",
    "atomic_write_files",
    "check_output_dir",
    "check_output_file",
    "describe_os_error",
    "is_disk_full",
    "looks_like_path",
    "write_errors",
]

#: file extensions of model checkpoints (ours and DeepForest's)
CHECKPOINT_EXTENSIONS: tuple[str, ...] = (".pt", ".pth", ".ckpt", ".safetensors", ".bin")

_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: how libraries that do not raise OSError (SQLite in GDAL, for a GeoPackage) say the disk is full
_DISK_FULL_WORDS = ("disk is full", "no space left", "disk full", "not enough space")


def _destination(path: str | os.PathLike) -> tuple[str, str]:
    """``(path, its absolute folder)`` of an output file; a folder of that name is refused."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise WriteError(f"Cannot write {path!r}: it is a folder; give a file name.")
    return path, os.path.dirname(os.path.abspath(path))


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> str:
    """Call ``write(tmp)`` with a temporary path beside ``path``, then rename it to ``path``.

    Missing folders are created. The new file keeps the permissions of the
    file it replaces (or gets the usual ``0o666`` minus the umask). On any
    failure, Ctrl-C included, the temporary file is removed, ``path`` is left
    as it was, and the exception propagates; an ``OSError`` (or a library's
    "disk is full") becomes a :class:`~deepforest_lite.errors.WriteError`.

    Returns:
        ``path`` as a string.
    """
    path, folder = _destination(path)
    with write_errors(path):
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        os.close(fd)
        try:
            write(tmp)
            os.chmod(tmp, _mode_for(path))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    return path


def atomic_write_files(
    path: str | os.PathLike, write: Callable[[str], Any], *, sidecars: Iterable[str] = ()
) -> str:
    """Write an output of one main file and its sidecar files, all of them or none.

    ``write(tmp)`` is called with ``tmp`` = the name of ``path`` inside a fresh
    temporary folder beside ``path`` (``.NAME.*.tmp``), so a writer that derives
    its files' names from ``tmp`` (GDAL's Shapefile driver: ``out.shp`` ->
    ``out.shx``, ``out.dbf``, ...) writes them all there. Then the files are
    moved into place: each sidecar the writer produced (``STEM + suffix`` for a
    suffix of ``sidecars``, e.g. ``(".shx", ".dbf", ".prj", ".cpg")``; the
    suffix's case as the writer chose), then the main file last. A sidecar of
    that name that exists beside ``path`` but was not produced now (e.g. the
    ``.prj`` of an older file with a CRS) is removed before the main file
    moves, so no stale file describes the new one. Anything else the writer left in the folder (GDAL's
    ``.aux.xml``) is discarded.

    All or none: when ``write`` raises (Ctrl-C included) no file beside
    ``path`` changes; when a move fails half-way, the files already moved are
    taken back and the old ones restored. The temporary folder is removed in
    every case. New files keep the permissions of the files they replace (or get
    the usual ``0o666`` minus the umask). An ``OSError`` (or a library's "disk
    is full") becomes a :class:`~deepforest_lite.errors.WriteError`; every other
    exception propagates unchanged.

    Returns:
        ``path`` as a string.
    """
    path, folder = _destination(path)
    name = os.path.basename(path)
    stem = os.path.splitext(name)[0]
    suffixes = {s.lower() for s in sidecars}
    with write_errors(path):
        os.makedirs(folder, exist_ok=True)
        tmpdir = tempfile.mkdtemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        try:
            write(os.path.join(tmpdir, name))
            produced = sorted(
                entry for entry in os.listdir(tmpdir)
                if entry != name and os.path.splitext(entry)[0] == stem
                and os.path.splitext(entry)[1].lower() in suffixes
            )
            new = {entry.lower() for entry in (*produced, name)}  # compared as a case-blind file system would
            stale = [
                stem + s for s in sorted(suffixes)
                if (stem + s).lower() not in new and os.path.isfile(os.path.join(folder, stem + s))
            ]
            _commit(tmpdir, folder, produced, name, stale)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return path


def _commit(tmpdir: str, folder: str, sidecars: list[str], main: str, stale: list[str]) -> None:
    """Move ``sidecars`` from ``tmpdir`` into ``folder``, remove ``stale`` there, move ``main`` last; all or none.

    With more than one change, each file replaced or removed is first kept in
    ``tmpdir/.old`` (a hard link where the file system allows, so a replaced file
    never goes missing; else it is moved there) and put back if a later step fails.
    """
    for entry in (*sidecars, main):
        os.chmod(os.path.join(tmpdir, entry), _mode_for(os.path.join(folder, entry)))
    steps = [*((entry, True) for entry in sidecars), *((entry, False) for entry in stale), (main, True)]
    if len(steps) == 1:  # one rename is atomic by itself
        os.replace(os.path.join(tmpdir, main), os.path.join(folder, main))
        return
    backup = os.path.join(tmpdir, ".old")
    os.mkdir(backup)
    kept: set[str] = set()  # final names whose old file waits in the backup
    done: list[tuple[str, bool]] = []  # steps begun, in order
    try:
        for entry, new in steps:
            final = os.path.join(folder, entry)
            done.append((entry, new))
            if not new:  # a stale sidecar: removed by moving it into the backup
                os.replace(final, os.path.join(backup, entry))
                kept.add(entry)
                continue
            if os.path.lexists(final):
                try:
                    os.link(final, os.path.join(backup, entry))
                except OSError:  # no hard links on this file system: keep the old file by moving it
                    os.replace(final, os.path.join(backup, entry))
                kept.add(entry)
            os.replace(os.path.join(tmpdir, entry), final)
    except BaseException:
        for entry, new in reversed(done):  # undo, newest first
            final = os.path.join(folder, entry)
            with contextlib.suppress(OSError):
                if entry in kept:
                    os.replace(os.path.join(backup, entry), final)
                elif new and os.path.lexists(final):
                    os.remove(final)
        raise


@contextlib.contextmanager
def write_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` (or a library's "disk is full" error) raised inside into a :class:`WriteError`.

    Errors of the package (which already say what to do) and every other
    exception pass through unchanged.
    """
    try:
        yield
    except WriteError:
        raise
    except InvalidInputError:
        raise
    except OSError as exc:
        raise _write_error(os.fspath(path), exc) from exc
    except Exception as exc:
        if is_disk_full(exc):
            raise _write_error(os.fspath(path), exc) from exc
        raise


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return True
    text = str(exc).lower()
    return any(words in text for words in _DISK_FULL_WORDS)


def describe_os_error(exc: BaseException) -> str:
    """A short lower-case cause for an ``OSError`` ("the disk is full", "permission denied", ...)."""
    if is_disk_full(exc):
        return "the disk is full (No space left on device)"
    code = getattr(exc, "errno", None)
    causes = {
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EISDIR: "it is a folder",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.ENAMETOOLONG: "the name is too long",
        errno.ENOENT: "a folder on the path does not exist",
        errno.EEXIST: "something of that name is in the way",
    }
    if code in causes:
        return causes[code]
    text = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0:1]
    if isinstance(text, list):
        text = text[0] if text else type(exc).__name__
    return str(text)[:160]


def _write_error(path: str, exc: BaseException) -> WriteError:
    cause = describe_os_error(exc)
    if is_disk_full(exc):
        advice = "free some space or write to another disk"
    elif getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM):
        advice = "write to a folder you can write to"
    else:
        advice = "check the path"
    return WriteError(f"Cannot write {path!r}: {cause}; {advice}.")


# --------------------------------------------------------------------------- checks before the work


def check_output_file(
    path: str | os.PathLike,
    option: str = "output",
    *,
    extensions: Iterable[str] | None = None,
) -> None:
    """Check, without writing it, that a file can be written at ``path``.

    ``option`` names the destination in messages (``"--output"``). Checked:
    ``path`` is not a folder; its extension (matched case-insensitively) is one of
    ``extensions`` when given; no part of its folder is a file; the nearest
    existing folder accepts new files (a real probe file, so read-only file
    systems and permissions are both caught).

    Raises:
        InvalidInputError: a folder or unknown extension where a file is meant.
        WriteError: the folder cannot be created or written.
    """
    text = os.fspath(path)
    if text == "" or text.endswith(("/", os.sep)) or os.path.isdir(text):
        raise InvalidInputError(f"{option} {text!r} is a folder; give a file name.")
    if extensions is not None:
        known = list(extensions)
        if os.path.splitext(text)[1].lower() not in known:
            raise InvalidInputError(
                f"{option} {text!r} has an unknown extension; use one of {known}."
            )
    _check_folder(os.path.dirname(os.path.abspath(text)), option, text)


def check_output_dir(path: str | os.PathLike, option: str = "output folder") -> None:
    """Check, without writing into it, that ``path`` is (or can become) a folder that accepts files.

    Raises:
        InvalidInputError: ``path`` (or a folder above it) is a file.
        WriteError: the folder cannot be created or written.
    """
    text = os.fspath(path)
    if os.path.exists(text) and not os.path.isdir(text):
        raise InvalidInputError(f"{option} {text!r} is a file; give a folder (it is created if missing).")
    _check_folder(os.path.abspath(text), option, text)


def _check_folder(folder: str, option: str, given: str) -> None:
    existing = folder
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise InvalidInputError(
            f"{option} {given!r} lies under {existing!r}, which is a file, not a folder; choose another path."
        )
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".deepforest-lite-probe.", suffix=".tmp")
    except OSError as exc:
        cause = describe_os_error(exc)
        raise WriteError(
            f"{option} {given!r} cannot be written: the folder {existing!r} does not accept new files "
            f"({cause}); choose a folder you can write to."
        ) from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.remove(probe)


def looks_like_path(text: str) -> bool:
    """Whether a model name is meant as a file path rather than a hub name like ``owner/model``.

    True for text starting with ``.``, ``/`` or ``~``, with a backslash, with more
    than one ``/``, or ending in a checkpoint extension (:data:`CHECKPOINT_EXTENSIONS`).
    """
    text = os.fspath(text)
    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        return True
    return os.path.splitext(text)[1].lower() in CHECKPOINT_EXTENSIONS


def _mode_for(path: str) -> int:
    if os.path.exists(path):
        return stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
