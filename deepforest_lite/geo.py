"""Pixel <-> map coordinates through a raster's affine transform. Torch-free.

Pixel coordinates are continuous: ``(x, y) = (0, 0)`` is the top-left corner
of the top-left pixel, x grows along columns, y along rows. Map coordinates
are the raster CRS's units. The conversion is the affine transform itself
(``x_map = a * x + b * y + c``, ``y_map = d * x + e * y + f``), never bounds
plus resolution, so non-square pixels work; rotated or sheared transforms
(``b != 0`` or ``d != 0``) are refused because an axis-aligned pixel box would
not be an axis-aligned map box.
"""

from __future__ import annotations

import numpy as np
from affine import Affine

from .errors import RasterError

__all__ = ["check_north_up", "pixel_to_map", "map_to_pixel"]


def check_north_up(transform: Affine) -> None:
    """Raise :class:`RasterError` unless ``transform`` has no rotation or shear terms."""
    if transform.b != 0 or transform.d != 0:
        raise RasterError(
            f"The raster's transform is rotated or sheared ({tuple(transform)[:6]}); "
            "warp it to a north-up grid first, e.g. with `gdalwarp`."
        )


def pixel_to_map(transform: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of pixel coordinates ``(x, y)`` (arrays of equal shape)."""
    check_north_up(transform)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return transform.a * x + transform.c, transform.e * y + transform.f


def map_to_pixel(transform: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of map coordinates ``(x, y)``; the exact inverse of :func:`pixel_to_map`."""
    check_north_up(transform)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return (x - transform.c) / transform.a, (y - transform.f) / transform.e
