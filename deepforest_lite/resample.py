"""Resampling rules for reading a window at another size than its own. Torch-free.

One rule for every resampled read, of a file (:meth:`deepforest_lite.raster.RasterSource.read_window`
with ``out_shape``, :meth:`~deepforest_lite.raster.RasterSource.read_overview`) and of
an array (:func:`resample_array`): GDAL's ``average`` when shrinking, ``bilinear``
when enlarging (:func:`resampling_for`). A window of ``w x h`` px read into
``out_w x out_h`` px maps its extent linearly onto the output: output pixel
``(i, j)`` covers window columns ``j * w / out_w`` to ``(j + 1) * w / out_w``
(rows alike). :func:`overview_shape` is the size of a downsampled picture.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .bands import check_rgb_array
from .errors import InvalidInputError

__all__ = ["check_out_shape", "overview_shape", "resample_array", "resampling_for"]


def resampling_for(window_shape: tuple[int, int], out_shape: tuple[int, int]) -> Any:
    """The rasterio resampling for reading ``window_shape`` px into ``out_shape`` px (both ``(h, w)``).

    ``Resampling.average`` when the output has fewer pixels than the window
    (shrinking: every raster pixel contributes, no aliasing), otherwise
    ``Resampling.bilinear`` (enlarging: smooth, no blocky pixels).
    """
    from rasterio.enums import Resampling

    shrinking = out_shape[0] * out_shape[1] < window_shape[0] * window_shape[1]
    return Resampling.average if shrinking else Resampling.bilinear


def overview_shape(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``(height, width)`` of a ``shape = (height, width)`` px region shrunk to fit ``max_side`` px.

    One factor ``min(1, max_side / max(height, width))`` on both axes (never
    enlarged), each side rounded to the nearest pixel and kept within
    ``1 .. max_side``.

    Raises:
        InvalidInputError: ``max_side`` is not a whole number >= 1.
    """
    if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side < 1:
        raise InvalidInputError(f"max_side must be a whole number of pixels >= 1, got {max_side!r}; e.g. 2048.")
    height, width = check_out_shape(shape)
    factor = min(1.0, int(max_side) / max(height, width))
    side = int(max_side)
    return max(1, min(side, round(height * factor))), max(1, min(side, round(width * factor)))


def resample_array(image: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Resample an ``H x W x 3`` uint8 RGB array to ``out_shape`` ``(height, width)``.

    The same GDAL resampling as :meth:`~deepforest_lite.raster.RasterSource.read_window`
    with ``out_shape`` (:func:`resampling_for`), through an in-memory dataset, so
    an array and a file of the same pixels give the same result.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    image = check_rgb_array(image)
    out_h, out_w = check_out_shape(out_shape)
    height, width = image.shape[:2]
    if (out_h, out_w) == (height, width):
        return image
    method = resampling_for((height, width), (out_h, out_w))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile() as memory:
            with memory.open(driver="GTiff", width=width, height=height, count=3, dtype="uint8") as dst:
                dst.write(image.transpose(2, 0, 1))
            with memory.open() as src, rasterio.Env():
                out = src.read(out_shape=(3, out_h, out_w), resampling=method)
    return np.ascontiguousarray(out.transpose(1, 2, 0))


def check_out_shape(out_shape: Any) -> tuple[int, int]:
    """``out_shape`` as ``(height, width)`` ints > 0, else :class:`InvalidInputError`."""
    try:
        out_h, out_w = (int(v) for v in out_shape)
        ok = all(float(v) == int(v) for v in out_shape) and out_h > 0 and out_w > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidInputError(f"out_shape must be (height, width) in whole pixels > 0, got {out_shape!r}.")
    return out_h, out_w
