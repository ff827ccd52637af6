"""Window checkpoints: a raster's prediction killed part-way resumes where it stopped.

While :func:`deepforest_lite.predict.predict_tile` runs with ``checkpoint=PATH``,
the boxes of the windows finished so far (before merging: each window's boxes
in network pixels, label ids, scores and window offsets) are saved to ``PATH``
(a ``.npz`` file) atomically, after a whole batch of windows and at most every
``checkpoint_seconds``, and once more when the run is interrupted by an
exception (Ctrl-C included). A later run with the same checkpoint path skips
the windows it holds and goes on with the next batch. Saves happen only at
batch boundaries of the original grid, so the resumed run forwards exactly the
batches an uninterrupted run would, and its final table is the same.

A checkpoint is used only when its key matches: the SHA-256 of the model's
weights and settings (score threshold, NMS, detections per image, transform),
the label names, every prediction setting that changes boxes, the raster's
identity (absolute path, size and modification time of each file read, bands
and value scaling) and the window grid. Anything else (another model, other
settings, a changed raster, a damaged file) is ignored and overwritten. The
caller removes the checkpoint once the raster's output is written
(:meth:`WindowCheckpoint.remove`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from .files import atomic_write

__all__ = ["CHECKPOINT_SUFFIX", "WindowCheckpoint", "checkpoint_key", "rank_checkpoint_path", "source_identity"]

#: what the CLI appends to an output path to name its window checkpoint
CHECKPOINT_SUFFIX: str = ".partial.npz"
_FORMAT = 1


def rank_checkpoint_path(path: str | os.PathLike, rank: int, world_size: int) -> str:
    """The checkpoint of one rank's block of windows when ``world_size`` processes share a raster.

    ``OUT.partial.npz`` becomes ``OUT.rank1-of-2.partial.npz``; a one-process
    run (``world_size == 1``) keeps ``path`` as it is.
    """
    path = os.fspath(path)
    if world_size == 1:
        return path
    stem, suffix = (path[: -len(CHECKPOINT_SUFFIX)], CHECKPOINT_SUFFIX) if path.endswith(CHECKPOINT_SUFFIX) else os.path.splitext(path)
    return f"{stem}.rank{rank}-of-{world_size}{suffix}"


def source_identity(source: Any) -> list[Any]:
    """What identifies a raster's pixels: per file read ``(absolute path, size, mtime_ns)``, plus bands and scaling.

    A mosaic (:class:`deepforest_lite.mosaic.MosaicSource`) lists every member file.
    """
    if isinstance(source, np.ndarray):
        return ["array", list(source.shape), hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()]
    files = list(getattr(source, "members", None) or [source.path])
    identity: list[Any] = []
    for path in files:
        stat = os.stat(path)
        identity.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
    ranges = None if source.value_ranges is None else np.asarray(source.value_ranges).tolist()
    identity.append([list(source.bands), ranges, [source.width, source.height]])
    return identity


def checkpoint_key(
    model: Any, label_names: Sequence[str], settings: dict[str, Any], source: Any, windows: Sequence[Any]
) -> str:
    """SHA-256 (hex) of everything a checkpoint's boxes depend on (see the module docstring).

    Args:
        model: the torchvision RetinaNet (before any engine wraps it).
        label_names: the label map's names in id order.
        settings: prediction settings that change boxes (JSON-serialisable values).
        source: the :class:`~deepforest_lite.raster.RasterSource` (or array) read.
        windows: the grid's windows (``col_off, row_off, width, height`` in raster px).
    """
    from .export import weights_hash

    attributes = {
        name: getattr(model, name)
        for name in ("score_thresh", "nms_thresh", "detections_per_img", "topk_candidates")
        if isinstance(getattr(model, name, None), (int, float))
    }
    transform = getattr(model, "transform", None)
    description = {
        "format": _FORMAT,
        "weights": weights_hash(model),
        "model": attributes,
        "transform": repr(transform) if transform is not None else None,
        "labels": list(label_names),
        "settings": settings,
        "source": source_identity(source),
        "windows": [[int(w.col_off), int(w.row_off), int(w.width), int(w.height)] for w in windows],
    }
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class WindowCheckpoint:
    """The checkpoint file of one raster's prediction.

    Args:
        path: the ``.npz`` file (created with its folder when first saved).
        key: :func:`checkpoint_key` of this run.
        every_seconds: save at most this often (0: after every batch).
    """

    def __init__(self, path: str | os.PathLike, key: str, every_seconds: float = 30.0) -> None:
        self.path = os.fspath(path)
        self.key = key
        self.every_seconds = float(every_seconds)
        self._last = time.monotonic()
        self.saved_windows = 0

    def load(self) -> dict[str, Any] | None:
        """The saved state when the file exists and its key matches, else ``None``.

        The state holds ``next`` (windows done) and ``empty``, ``boxes``, ``labels``, ``scores``,
        ``offsets`` as lists of arrays.
        """
        if not os.path.isfile(self.path):
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["key"]) != self.key:
                    return None
                counts = data["counts"].astype(np.int64)
                parts = {name: np.split(data[name], np.cumsum(counts)[:-1]) if len(counts) else []
                         for name in ("boxes", "labels", "scores", "offsets")}
                return {"next": int(data["next"]), "empty": int(data["empty"]), **parts}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
            return None  # damaged: start over

    def due(self) -> bool:
        """Whether ``every_seconds`` have passed since the last save."""
        return time.monotonic() - self._last >= self.every_seconds

    def save(self, done: int, empty: int, boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
             scores: Sequence[np.ndarray], offsets: Sequence[np.ndarray]) -> None:
        """Write the state after the first ``done`` windows of the grid, atomically."""
        counts = np.array([len(b) for b in boxes], dtype=np.int64)

        def cat(parts: Sequence[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if len(parts) else np.zeros(shape, dtype)

        arrays: dict[str, Any] = dict(
            key=np.array(self.key), next=np.array(done), empty=np.array(empty), counts=counts,
            boxes=cat(boxes, (0, 4), np.float64), labels=cat(labels, (0,), np.int64),
            scores=cat(scores, (0,), np.float64), offsets=cat(offsets, (0, 2), np.float64),
        )

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        atomic_write(self.path, write)
        self._last = time.monotonic()
        self.saved_windows = done

    def remove(self) -> None:
        """Delete the checkpoint (the raster is done); nothing happens when there is none."""
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
