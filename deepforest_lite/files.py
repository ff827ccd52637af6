"""Atomic file output: a file is either complete or not there. Torch-free.

Every writer of the package (CSV tables, checkpoints, pictures) writes into a
temporary file beside the target and renames it over the target only when the
write finished, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from typing import Any

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> str:
    """Call ``write(tmp)`` with a temporary path beside ``path``, then rename it to ``path``.

    Missing folders are created. The new file keeps the permissions of the
    file it replaces (or gets the usual ``0o666`` minus the umask). On any
    failure, Ctrl-C included, the temporary file is removed, ``path`` is left
    as it was, and the exception propagates.

    Returns:
        ``path`` as a string.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
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


def _mode_for(path: str) -> int:
    if os.path.exists(path):
        return stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
