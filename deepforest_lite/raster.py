"""Reading rasters with rasterio as RGB: :class:`RasterSource`, the one raster reader.

Every image the package reads (GeoTIFF, internally tiled or striped,
compressed or not, and plain PNG/JPEG without georeferencing) goes through
:class:`RasterSource` and comes out as an ``H x W x 3`` ``uint8`` RGB array
(rows, columns, bands): prediction windows, training tiles and pictures
alike, so a picture shows the pixels the model saw. Large rasters are never
read whole: :class:`RasterSource` reads one window at a time, or a window
downsampled (:meth:`RasterSource.read_overview`, from overviews when the file
has them). This module is torch-free.

Which bands are RGB and how non-``uint8`` values are scaled to 0-255 are the
rules of :mod:`deepforest_lite.bands`; opening files and reading headers
without pixels (:func:`raster_header`) is :mod:`deepforest_lite.rasterfile`.
Both are re-exported here.

No-data rules: a pixel has no data when the file's nodata value is in every
selected band, when the alpha band is 0, or when the GDAL mask (an internal
or ``.msk`` mask) says so; rasterio's :meth:`~rasterio.io.DatasetReader.read_masks`
gives all of them. A window is *empty* (see :meth:`RasterSource.is_empty`)
when every one of its pixels has no data or is black (0 in all three selected
bands of the file's own values). A file may declare a nodata value that
also occurs in real pixels (``OSBS_029.tif`` declares 255); such a window is
only empty if *all* its pixels are nodata.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from .bands import (
    DEFAULT_PERCENTILES,
    STATS_MAX_SIDE,
    check_percentiles,
    check_rgb_array,
    check_value_range,
    percentile_ranges,
    resolve_bands,
    rgb_dtype,
    scale_to_uint8,
    stats_shape,
    to_rgb,
)
from .errors import InvalidInputError
from .rasterfile import RasterHeader, guarded_read, header_of, open_raster, raster_header
from .resample import check_out_shape, overview_shape, resample_array, resampling_for

__all__ = [
    "DEFAULT_PERCENTILES",
    "STATS_MAX_SIDE",
    "RasterHeader",
    "RasterSource",
    "WindowLike",
    "check_out_shape",
    "check_rgb_array",
    "overview_shape",
    "raster_header",
    "read_image",
    "resample_array",
    "resampling_for",
    "scale_to_uint8",
]


class WindowLike(Protocol):
    """Anything with integer ``col_off``, ``row_off``, ``width``, ``height`` in px.

    :class:`deepforest_lite.windows.Window` and :class:`rasterio.windows.Window`
    both qualify (read-only members, so frozen dataclasses match).
    """

    @property
    def col_off(self) -> Any:
        """First column, px."""

    @property
    def row_off(self) -> Any:
        """First row, px."""

    @property
    def width(self) -> Any:
        """Columns, px."""

    @property
    def height(self) -> Any:
        """Rows, px."""


class RasterSource:
    """A raster file read one window at a time as ``H x W x 3`` ``uint8`` RGB.

    Opening checks the band and dtype rules of :mod:`deepforest_lite.bands` (and, for
    non-``uint8`` rasters without ``value_range``, computes the percentile
    stretch), so a raster that cannot be used fails at once with a clear
    error. The object is picklable: it stores the path and the settings (and
    the stretch it computed) but not the open file, and each process opens
    its own handle lazily on first read, so a ``torch.utils.data.DataLoader``
    worker can use a copy of it.

    Args:
        path: a GeoTIFF, PNG, JPEG or anything else GDAL reads.
        bands: three 1-based band numbers ``(r, g, b)``; needed when the file
            has more than three non-alpha bands, optional otherwise.
        value_range: fixed ``(low, high)`` mapped to 0..255 for all bands, or
            three such pairs, one per RGB band; default: ``uint8`` as is,
            other dtypes the percentile stretch.
        percentiles: lower and upper percentile (0..100) of the default
            stretch of non-``uint8`` rasters.

    Attributes:
        path: the file path (str).
        bands: the three band numbers read as RGB.
        alpha_band: the alpha band number, or ``None``.
        width, height: raster size in px.
        dtype: the file's data type of the RGB bands (e.g. ``"uint16"``).
        nodata: the file's nodata value, or ``None``.
        crs: :class:`rasterio.crs.CRS` or ``None`` (plain PNG/JPEG).
        transform: :class:`affine.Affine` from pixel ``(col, row)`` to map
            coordinates (identity when the file has no georeferencing).
        value_ranges: ``None`` for ``uint8`` read as is, otherwise a float
            array of shape ``(3, 2)``: ``low, high`` per RGB band.
        header: the file's :class:`~deepforest_lite.rasterfile.RasterHeader`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        bands: Sequence[int] | None = None,
        value_range: Sequence[float] | Sequence[Sequence[float]] | None = None,
        percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    ) -> None:
        self.path = os.fspath(path)
        self._handle: Any = None
        self._pid: int | None = None
        self.percentiles = check_percentiles(percentiles)
        try:
            self._inspect(bands, value_range)
        except BaseException:
            self.close()
            raise

    def _inspect(self, bands: Sequence[int] | None, value_range: Any) -> None:
        """Read the header, apply the band and dtype rules, set up the scaling."""
        self.header: RasterHeader = header_of(self.path, self._dataset())
        self.width: int = self.header.width
        self.height: int = self.header.height
        self.count: int = self.header.count
        self.crs = self.header.crs
        self.transform = self.header.transform
        self.nodata = self.header.nodata
        self.alpha_band, self.bands = resolve_bands(self.path, self.count, self.header.colorinterp, bands)
        self.dtype: str = rgb_dtype(self.path, self.header.dtypes, self.bands)
        if value_range is not None:
            self.value_ranges: np.ndarray | None = check_value_range(value_range)
        elif self.dtype == "uint8":
            self.value_ranges = None
        else:
            self.value_ranges = self._percentile_ranges()

    # -- metadata ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in px."""
        return (self.height, self.width)

    @property
    def gsd(self) -> tuple[float, float] | None:
        """Pixel size in metres ``(x, y)`` from the CRS and transform, or ``None``.

        See :func:`deepforest_lite.gsd.raster_gsd` (projected units converted to
        metres, degrees converted at the raster's centre).
        """
        from .gsd import raster_gsd

        return raster_gsd(self.crs, self.transform, self.width, self.height)

    @property
    def is_georeferenced(self) -> bool:
        """True when the file has a CRS (map coordinates make sense)."""
        return self.crs is not None

    def __repr__(self) -> str:
        return (
            f"RasterSource({self.path!r}, {self.width} x {self.height} px, dtype={self.dtype}, "
            f"bands={self.bands}, alpha_band={self.alpha_band})"
        )

    # -- pickling / per-process handles ------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_pid"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _dataset(self) -> Any:
        """The open rasterio dataset of this process (opened on first use)."""
        if self._handle is not None and self._pid == os.getpid():
            return self._handle
        # A handle inherited through fork is not used: its file offsets and
        # GDAL caches belong to the parent.
        self._handle = open_raster(self.path)
        self._pid = os.getpid()
        return self._handle

    def close(self) -> None:
        """Close this process's file handle; a later read opens it again."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None
        self._pid = None

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------
    def read_window(self, window: WindowLike | None = None, out_shape: tuple[int, int] | None = None) -> np.ndarray:
        """Read one window as RGB.

        Args:
            window: pixel rectangle inside the raster (columns ``col_off ..
                col_off + width``, rows ``row_off .. row_off + height``);
                ``None`` reads the whole raster (small images only).
            out_shape: ``(height, width)`` to resample the window to (see
                :func:`resampling_for`: average when shrinking, bilinear when
                enlarging; GDAL reads from overviews when the file has them and
                the window shrinks enough), or ``None`` for the window's own size.
                The window's extent maps onto the output linearly: output pixel
                ``(i, j)`` covers raster columns ``col_off + j * width / out_w``
                to ``col_off + (j + 1) * width / out_w`` (rows alike).

        Returns:
            ``uint8`` array of shape ``(window.height, window.width, 3)``, or
            ``out_shape + (3,)``.
        """
        raw, _ = self._read(window, with_mask=False, out_shape=out_shape)
        return self._to_rgb(raw)

    def read_window_checked(
        self, window: WindowLike | None = None, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, bool]:
        """Read one window as RGB and say whether it is empty, with one read.

        Returns:
            ``(rgb, empty)``: ``rgb`` as :meth:`read_window` returns it (at
            ``out_shape`` when given) and ``empty`` as :meth:`is_empty` would
            (judged on the resampled pixels and a nearest-neighbour resampled mask).
        """
        raw, valid = self._read(window, with_mask=True, out_shape=out_shape)
        return self._to_rgb(raw), _empty(raw, valid)

    def read_overview(self, max_side: int, window: WindowLike | None = None) -> np.ndarray:
        """Read ``window`` (default the whole raster) as RGB, shrunk so its longer side is at most ``max_side`` px.

        For pictures of large rasters: one factor on both axes
        (:func:`~deepforest_lite.resample.overview_shape`), never enlarged, and
        the same pixels as ``read_window(window, out_shape=...)`` at that size
        (the band and value rules of prediction, average resampling, GDAL's
        overviews when the file has them), so the raster is never read whole.

        Returns:
            ``uint8`` array ``h x w x 3`` with ``max(h, w) <= max_side``; the
            picture's column ``j`` covers window columns ``j * width / w`` to
            ``(j + 1) * width / w`` (rows alike).
        """
        win = self._window(window)
        out_shape = overview_shape((int(win.height), int(win.width)), max_side)
        return self.read_window(win, out_shape=out_shape)

    def valid_mask(self, window: WindowLike | None = None, out_shape: tuple[int, int] | None = None) -> np.ndarray:
        """Boolean ``(height, width)`` array (or ``out_shape``), True where the pixel has data.

        A pixel has no data when all three RGB bands hold the nodata value,
        or the alpha band is 0, or the GDAL mask marks it invalid. Black
        pixels are valid here. With ``out_shape`` the mask is resampled by
        nearest neighbour.
        """
        from rasterio.enums import Resampling

        win = self._window(window)
        src = self._dataset()
        extra: dict[str, Any] = {}
        if out_shape is not None:
            out_h, out_w = check_out_shape(out_shape)
            extra = dict(out_shape=(3, out_h, out_w), resampling=Resampling.nearest)
        masks = guarded_read(self.path, lambda: src.read_masks(list(self.bands), window=win, **extra))
        return masks.any(axis=0)

    def is_empty(self, window: WindowLike | None = None) -> bool:
        """True when no pixel of ``window`` has data that is not black.

        That is: every pixel is nodata (see :meth:`valid_mask`) or 0 in all
        three RGB bands. Tile prediction skips such windows.
        """
        valid = self.valid_mask(window)
        if not valid.any():
            return True
        raw, _ = self._read(window, with_mask=False)
        return _empty(raw, valid)

    def _read(
        self, window: WindowLike | None, with_mask: bool, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        win = self._window(window)
        src = self._dataset()
        indexes = list(self.bands)
        if out_shape is None or tuple(out_shape) == (int(win.height), int(win.width)):
            raw = guarded_read(self.path, lambda: src.read(indexes, window=win))
            valid = None
            if with_mask:
                valid = guarded_read(self.path, lambda: src.read_masks(indexes, window=win)).any(axis=0)
            return raw, valid
        from rasterio.enums import Resampling

        out_h, out_w = check_out_shape(out_shape)
        shape = (len(indexes), out_h, out_w)
        method = resampling_for((int(win.height), int(win.width)), (out_h, out_w))
        raw = guarded_read(self.path, lambda: src.read(indexes, window=win, out_shape=shape, resampling=method))
        valid = None
        if with_mask:
            masks = guarded_read(
                self.path,
                lambda: src.read_masks(indexes, window=win, out_shape=shape, resampling=Resampling.nearest),
            )
            valid = masks.any(axis=0)
        return raw, valid

    def _to_rgb(self, raw: np.ndarray) -> np.ndarray:
        return to_rgb(raw, self.value_ranges)

    def _window(self, window: WindowLike | None) -> Any:
        from rasterio.windows import Window as RioWindow

        if window is None:
            return RioWindow(0, 0, self.width, self.height)
        try:
            values = [window.col_off, window.row_off, window.width, window.height]  # type: ignore[union-attr]
            whole = all(not isinstance(v, bool) and float(v) == int(v) for v in values)
        except (AttributeError, TypeError, ValueError):
            raise InvalidInputError(
                f"Expected a window with col_off, row_off, width and height, got {window!r}; "
                "pass a deepforest_lite.windows.Window or a rasterio Window."
            ) from None
        if not whole:
            raise InvalidInputError(f"Window {window!r} must have whole-pixel offsets and sizes.")
        col, row, w, h = (int(v) for v in values)
        if w <= 0 or h <= 0 or col < 0 or row < 0 or col + w > self.width or row + h > self.height:
            raise InvalidInputError(
                f"Window (col_off={col}, row_off={row}, width={w}, height={h}) is empty or not "
                f"inside the {self.width} x {self.height} px raster {self.path!r}; "
                "use deepforest_lite.windows.window_grid to make windows."
            )
        return RioWindow(col, row, w, h)

    def _percentile_ranges(self) -> np.ndarray:
        """Per-band ``(low, high)`` percentiles from a decimated read, shape ``(3, 2)``."""
        from rasterio.enums import Resampling

        src = self._dataset()
        out_h, out_w = stats_shape(self.height, self.width)
        sample = guarded_read(
            self.path,
            lambda: src.read(list(self.bands), out_shape=(3, out_h, out_w), masked=True, resampling=Resampling.nearest),
        )
        return percentile_ranges(sample, self.percentiles)


def read_image(
    path: str | os.PathLike,
    *,
    bands: Sequence[int] | None = None,
    value_range: Sequence[float] | Sequence[Sequence[float]] | None = None,
) -> np.ndarray:
    """Read a whole image file as an ``H x W x 3`` ``uint8`` RGB array.

    The band and dtype rules of :mod:`deepforest_lite.bands` apply: an alpha band is dropped,
    16-bit and float images are scaled to 0-255 (percentile stretch, or
    ``value_range``), a single band is refused, more than three bands need
    ``bands=(r, g, b)``. For large rasters use :class:`RasterSource` and read
    windows instead.
    """
    with RasterSource(path, bands=bands, value_range=value_range) as source:
        return source.read_window(None)


# -- helpers ------------------------------------------------------------------

def _empty(raw: np.ndarray, valid: np.ndarray | None) -> bool:
    """True when no pixel is both valid and non-black; ``raw`` is ``(3, H, W)``."""
    with np.errstate(invalid="ignore"):
        lit = np.any((raw != 0) & ~_isnan(raw), axis=0)
    if valid is not None:
        lit &= valid
    return not bool(lit.any())


def _isnan(raw: np.ndarray) -> np.ndarray:
    if raw.dtype.kind == "f":
        return np.isnan(raw)
    return np.zeros(raw.shape, dtype=bool)
