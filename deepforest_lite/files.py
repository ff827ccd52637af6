"""Output files and folders: checked before the work, written atomically, failures in one sentence. Torch-free.

Every writer of the package (CSV tables, checkpoints, pictures, box files)
writes into a temporary file beside the target and renames it over the target
only when the write finished, so an interrupted or failed run never leaves a
half-written file. :func:`check_output_file` and :func:`check_output_dir`
answer before any long work whether a destination can be written at all; a
failure while writing (a full disk, a read-only file system, no permission)
becomes a :class:`~deepforest_lite.errors.WriteError` whose message names the
path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import InvalidInputError, WriteError

__all__ = [
    "CHECKPOINT_EXTENSIONS",
    "atomic_write",
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
    path = os.fspath(path)
    if os.path.isdir(path):
        raise WriteError(f"Cannot write {path!r}: it is a folder; give a file name.")
    folder = os.path.dirname(os.path.abspath(path))
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
        raise _write_error(os.fspath(path), exc) from None
    except Exception as exc:
        if is_disk_full(exc):
            raise _write_error(os.fspath(path), exc) from None
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
        ) from None
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
