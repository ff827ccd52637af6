"""The plan of a tiled prediction, before any window is read. Torch-free.

What :func:`~deepforest_lite.predict.predict_tile` settles before its loop
over windows: the raster argument opened (:func:`open_source`: a path, an open
:class:`~deepforest_lite.raster.RasterSource` or an ``H x W x 3`` uint8
array), the scale the raster is shown to the network at and the resampled
grid (:func:`plan_grid`, :mod:`deepforest_lite.gsd`), the grid's windows
(:func:`grid_windows`, in raster pixels, origin top-left, x = column) and a
rank's contiguous block of them (:func:`rank_windows`), and the set-up of
every process that reads windows (:func:`setup_reader_process`: GDAL's
block cache bounded to :data:`GDAL_CACHE_BYTES`).
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import TYPE_CHECKING

import numpy as np

from .config import PredictConfig
from .errors import InvalidInputError
from .raster import RasterSource, check_rgb_array

if TYPE_CHECKING:  # pragma: no cover
    from .gsd import Scale, ScaledGrid
    from .ranks import Ranks
    from .windows import Window

__all__ = ["GDAL_CACHE_BYTES", "grid_windows", "open_source", "plan_grid", "rank_windows", "setup_reader_process"]

#: GDAL's block cache, in bytes, in every process that reads windows for :func:`predict_tile`.
#: Each window is read once, row after row, so a small cache loses little; GDAL's default
#: (5 % of RAM) would keep most of a large raster's decoded blocks and grow with its size.
GDAL_CACHE_BYTES: int = 64 * 2**20

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def open_source(
    raster: str | os.PathLike | np.ndarray | RasterSource, config: PredictConfig, image_path: str | None
) -> tuple[RasterSource | np.ndarray, bool, str | None]:
    """``(source, opened_here, image_path)`` for :func:`predict_tile`'s ``raster`` argument.

    ``image_path`` defaults to the file's base name (``None`` for arrays); a
    source opened here must be closed by the caller.

    Raises:
        InvalidInputError: ``config.bands``/``value_range`` with an array or an
            open ``RasterSource``, or ``raster`` of another type.
    """
    if isinstance(raster, np.ndarray):
        if config.bands is not None or config.value_range is not None:
            raise InvalidInputError(
                "bands and value_range apply to raster files, but an array was given; "
                "pass the H x W x 3 uint8 RGB array itself, already scaled and ordered."
            )
        return check_rgb_array(raster), False, image_path
    if isinstance(raster, RasterSource):
        if config.bands is not None or config.value_range is not None:
            raise InvalidInputError(
                "bands and value_range were given together with an open RasterSource, which has its own; "
                "set them when opening it: RasterSource(path, bands=..., value_range=...)."
            )
        return raster, False, os.path.basename(raster.path) if image_path is None else image_path
    if isinstance(raster, (str, os.PathLike)):
        source = RasterSource(raster, bands=config.bands, value_range=config.value_range)
        return source, True, os.path.basename(source.path) if image_path is None else image_path
    raise InvalidInputError(
        f"Expected a raster path, a RasterSource or an H x W x 3 uint8 array, got {type(raster).__name__}."
    )


def plan_grid(
    source: RasterSource | np.ndarray, config: PredictConfig, model_gsd: float | None, name: str
) -> tuple[Scale, ScaledGrid | None]:
    """The scale a raster is shown at, and the resampled grid (``None``: the plain grid).

    Warns with a :class:`~deepforest_lite.gsd.GSDWarning` (attributed to the
    caller of ``predict_tile``'s caller) when the model's GSD is known, the
    raster's is not and ``config.rescale`` is on; ``name`` names the raster.
    """
    import warnings

    from .gsd import GSDWarning, plan_scale, scaled_grid, unknown_gsd_message

    from_file = source.gsd if isinstance(source, RasterSource) else None
    scale = plan_scale(model_gsd, from_file, given=config.gsd, rescale=config.rescale)
    if scale.raster_gsd is None and scale.model_gsd is not None and config.rescale:
        warnings.warn(unknown_gsd_message(name, scale.model_gsd), GSDWarning, stacklevel=4)
    if not scale.rescaled:
        return scale, None
    height, width = source.shape[:2]
    return scale, scaled_grid(height, width, config.patch_size, config.patch_overlap, scale.factor)


def grid_windows(source: RasterSource | np.ndarray, config: PredictConfig, grid: ScaledGrid | None) -> list[Window]:
    """The windows of ``grid``, or of the plain grid of ``config.patch_size``/``patch_overlap`` over ``source``."""
    from .windows import window_grid

    if grid is not None:
        return list(grid.windows)
    height, width = source.shape[:2]
    return window_grid(height, width, config.patch_size, config.patch_overlap)


def rank_windows(windows: list[Window], ranks: Ranks | None, batch_size: int) -> list[Window]:
    """This rank's contiguous block of the grid's windows, in whole batches (all of them without ``ranks``)."""
    if ranks is None or not ranks.shared:
        return windows
    block = ranks.block(len(windows), unit=batch_size)
    return windows[block.start : block.stop]


def setup_reader_process(worker_id: int = 0) -> None:
    """``DataLoader`` worker set-up: keep a reader's memory from growing with the raster.

    Bounds GDAL's block cache (:data:`GDAL_CACHE_BYTES`) and, on glibc, fixes
    malloc's mmap threshold at 128 KiB: glibc otherwise raises the threshold
    after the first large buffer is freed, so later decoded blocks (0.1-1 MB
    each) come from the heap, which fragments and keeps growing over thousands
    of windows. The worker is this package's own process, so the setting
    touches nothing of the caller's.
    """
    from rasterio.env import set_gdal_config

    set_gdal_config("GDAL_CACHEMAX", GDAL_CACHE_BYTES)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to fix
            pass
