"""Reading a tensor file without executing code. Torch-free at import.

:func:`read_state_dict` reads a safetensors file with safetensors and
anything else with ``torch.load(..., weights_only=True)``; a file that needs
full unpickling (it stores Python objects) is refused with
:class:`~deepforest_lite.errors.UnsafeCheckpointError`, and a file that is
not a tensor file at all (text, truncated, foreign) with one
:class:`~deepforest_lite.errors.CheckpointError` sentence.
:mod:`deepforest_lite.checkpoint` turns what it returns into a checkpoint.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

from .errors import CheckpointError, UnsafeCheckpointError

__all__ = ["first_line", "is_safetensors", "read_state_dict", "unreadable"]


def read_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Read a tensor file without executing code.

    safetensors files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``. Returns the file's top-level object
    (a dict of tensors, or a Lightning checkpoint dict).
    """
    import torch

    path = Path(path)
    if is_safetensors(path):
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise unreadable(path, first_line(exc)) from exc
    if _is_zip(path) and path.suffix.lower() == ".safetensors":
        raise CheckpointError(
            f"{str(path)!r} is a PyTorch (zip) file, not a safetensors file; rename it to .pt and load that."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        names = sorted(set(re.findall(r"GLOBAL ([\w.]+)", text)))
        if not names and "global" not in text.lower():  # not a forbidden object: the bytes are not a pickle
            raise unreadable(path, first_line(exc)) from exc
        what = f"the Python object(s) {', '.join(names)}" if names else "Python objects"
        raise UnsafeCheckpointError(
            f"Refusing to load {str(path)!r}: it stores {what}, which only full unpickling could restore, "
            "and unpickling can run arbitrary code; if you trust the file, re-save only its weights "
            "(torch.save(model.state_dict(), 'weights.pt'), or DeepForest's model.save_pretrained(folder)) "
            "and load that."
        ) from exc
    except Exception as exc:  # text, truncated or foreign files: torch raises many kinds of errors
        raise unreadable(path, first_line(exc)) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{str(path)!r} holds a {type(obj).__name__}, not a state dict; "
            "save the model's state_dict() and load that."
        )
    return obj


def first_line(exc: BaseException) -> str:
    """``"<error type>: <first line of its message>"`` (the type alone when the message is empty)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def unreadable(path: Path, reason: str) -> CheckpointError:
    """The error for a file that is not a checkpoint; ``reason`` is cut to 160 characters."""
    return CheckpointError(
        f"Cannot read {str(path)!r} as a checkpoint ({reason[:160]}); pass a .safetensors, .pt or .ckpt "
        "file written by deepforest_lite, DeepForest or torchvision."
    )


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts like a safetensors file (an 8-byte header length, then a JSON ``{``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000


def _is_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False
