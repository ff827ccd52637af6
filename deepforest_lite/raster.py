"""Opening images and rasters with rasterio, and the band/dtype rules.

Every image the package reads (GeoTIFF, internally tiled or striped,
compressed or not, and plain PNG/JPEG without georeferencing) goes through
rasterio and comes out as an ``H x W x 3`` ``uint8`` RGB array (rows,
columns, bands). Large rasters are never read whole: :class:`RasterSource`
reads one window at a time. This module is torch-free.

Band rules (band numbers are 1-based, as in rasterio and GDAL):

* Bands whose colour interpretation is *alpha* are never RGB. The alpha band
  is used as a mask: pixels where it is 0 have no data.
* Exactly 3 other bands: they are red, green, blue in file order (pass
  ``bands=(3, 2, 1)`` to reorder).
* More than 3 other bands (e.g. RGB + near infrared): ``bands=(r, g, b)``
  must say which three to use, otherwise :class:`RasterError`.
* 1 or 2 other bands (grayscale, paletted, gray + alpha): :class:`RasterError`;
  expand the raster to RGB first.

Pixel value rules (never wrap: values are clipped, not taken modulo 256):

* ``uint8`` bands are used as they are.
* Any other integer or float dtype (``uint16``, ``int16``, ``float32``, ...)
  is scaled linearly per band: ``out = clip(round((v - low) * 255 / (high - low)), 0, 255)``.
  By default ``low`` and ``high`` are the 2nd and 98th percentiles of that
  band's valid pixels (``percentiles=(2, 98)``), computed once per raster from
  a decimated read whose longer side is at most :data:`STATS_MAX_SIDE` px
  (GDAL uses overviews when the file has them), so the whole raster is never
  loaded. With ``value_range=(low, high)`` (one pair for all bands, or three
  pairs, one per RGB band) the given range is used instead, for any dtype,
  ``uint8`` included. When ``high <= low`` (a constant band) values above
  ``low`` become 255 and the rest 0. NaN becomes 0.

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

import math
import os
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from .errors import ImageReadError, InvalidInputError, RasterError

__all__ = [
    "DEFAULT_PERCENTILES",
    "STATS_MAX_SIDE",
    "RasterSource",
    "WindowLike",
    "check_rgb_array",
    "read_image",
    "resample_array",
    "resampling_for",
    "scale_to_uint8",
]

#: default lower and upper percentiles of the stretch for non-``uint8`` rasters
DEFAULT_PERCENTILES: tuple[float, float] = (2.0, 98.0)
#: longer side in px of the decimated read the percentile stretch is computed from
STATS_MAX_SIDE: int = 1024

_SCALED_KINDS = ("u", "i", "f")


class WindowLike(Protocol):
    """Anything with integer ``col_off``, ``row_off``, ``width``, ``height`` in px.

    :class:`deepforest_lite.windows.Window` and :class:`rasterio.windows.Window`
    both qualify.
    """

    col_off: Any
    row_off: Any
    width: Any
    height: Any


def check_rgb_array(image: object) -> np.ndarray:
    """Return ``image`` if it is an ``H x W x 3`` ``uint8`` array, else raise a clear error."""
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(
            f"Expected an image path or a numpy array, got {type(image).__name__}; "
            "pass a file path or an H x W x 3 uint8 RGB array."
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(
            f"Expected an H x W x 3 RGB array, got shape {image.shape}; "
            "convert the image to three channels in height, width, channel order."
        )
    if image.dtype != np.uint8:
        raise InvalidInputError(
            f"Expected a uint8 RGB array (values 0-255), got dtype {image.dtype}; "
            "scale it to 0-255 and convert with image.astype('uint8')."
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidInputError(f"The image is empty (shape {image.shape}); pass a non-empty image.")
    return image


def scale_to_uint8(data: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Scale ``data`` of shape ``(B, H, W)`` linearly to ``uint8``, per band.

    Band ``i`` maps ``low[i]`` to 0 and ``high[i]`` to 255; values outside are
    clipped (never wrapped), values are rounded to the nearest integer, NaN
    becomes 0. A band with ``high[i] <= low[i]`` becomes 255 above ``low[i]``
    and 0 elsewhere.

    Returns:
        ``uint8`` array of shape ``(B, H, W)``.
    """
    low = np.asarray(low, dtype=np.float64).reshape(-1, 1, 1)
    high = np.asarray(high, dtype=np.float64).reshape(-1, 1, 1)
    span = high - low
    flat = span <= 0
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = data.astype(np.float64) - low
        out = np.where(flat, np.where(shifted > 0, 255.0, 0.0), shifted * 255.0 / np.where(flat, 1.0, span))
        out = np.nan_to_num(out, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(out, 0.0, 255.0, out=out)
    return np.rint(out).astype(np.uint8)


class RasterSource:
    """A raster file read one window at a time as ``H x W x 3`` ``uint8`` RGB.

    Opening checks the band and dtype rules of this module (and, for
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
        self.percentiles = _check_percentiles(percentiles)
        try:
            self._inspect(bands, value_range)
        except BaseException:
            self.close()
            raise

    def _inspect(self, bands: Sequence[int] | None, value_range: Any) -> None:
        """Read the metadata, apply the band and dtype rules, set up the scaling."""
        src = self._dataset()
        self.width: int = src.width
        self.height: int = src.height
        self.count: int = src.count
        self.crs = src.crs
        self.transform = src.transform
        self.nodata = src.nodata
        self.alpha_band, self.bands = _resolve_bands(self.path, src, bands)
        dtypes = {src.dtypes[b - 1] for b in self.bands}
        if len(dtypes) != 1:
            raise RasterError(
                f"The bands {self.bands} of {self.path!r} have different data types {sorted(dtypes)}; "
                "convert the raster to one data type first."
            )
        self.dtype: str = dtypes.pop()
        if np.dtype(self.dtype).kind not in _SCALED_KINDS:
            raise RasterError(
                f"{self.path!r} holds {self.dtype} pixels; only integer or real-valued rasters "
                "can be read as RGB."
            )
        if value_range is not None:
            self.value_ranges: np.ndarray | None = _check_value_range(value_range)
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
        self._handle = _open(self.path)
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
            out_h, out_w = _check_out_shape(out_shape)
            extra = dict(out_shape=(3, out_h, out_w), resampling=Resampling.nearest)
        masks = _guard(self.path, lambda: src.read_masks(list(self.bands), window=win, **extra))
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
            raw = _guard(self.path, lambda: src.read(indexes, window=win))
            valid = None
            if with_mask:
                valid = _guard(self.path, lambda: src.read_masks(indexes, window=win)).any(axis=0)
            return raw, valid
        from rasterio.enums import Resampling

        out_h, out_w = _check_out_shape(out_shape)
        shape = (len(indexes), out_h, out_w)
        method = resampling_for((int(win.height), int(win.width)), (out_h, out_w))
        raw = _guard(self.path, lambda: src.read(indexes, window=win, out_shape=shape, resampling=method))
        valid = None
        if with_mask:
            masks = _guard(
                self.path,
                lambda: src.read_masks(indexes, window=win, out_shape=shape, resampling=Resampling.nearest),
            )
            valid = masks.any(axis=0)
        return raw, valid

    def _to_rgb(self, raw: np.ndarray) -> np.ndarray:
        if self.value_ranges is None:
            out = raw
        else:
            out = scale_to_uint8(raw, self.value_ranges[:, 0], self.value_ranges[:, 1])
        return np.ascontiguousarray(out.transpose(1, 2, 0))

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
        factor = max(1.0, max(self.width, self.height) / STATS_MAX_SIDE)
        out_h = max(1, math.ceil(self.height / factor))
        out_w = max(1, math.ceil(self.width / factor))
        sample = _guard(
            self.path,
            lambda: src.read(
                list(self.bands),
                out_shape=(3, out_h, out_w),
                masked=True,
                resampling=Resampling.nearest,
            ),
        )
        valid = ~np.ma.getmaskarray(sample).all(axis=0)
        ranges = np.zeros((3, 2), dtype=np.float64)
        for i in range(3):
            values = np.asarray(sample.data[i][valid], dtype=np.float64)
            values = values[np.isfinite(values)]
            if values.size == 0:
                ranges[i] = (0.0, 1.0)
            else:
                ranges[i] = np.percentile(values, self.percentiles)
        return ranges


def resampling_for(window_shape: tuple[int, int], out_shape: tuple[int, int]) -> Any:
    """The rasterio resampling for reading ``window_shape`` px into ``out_shape`` px (both ``(h, w)``).

    ``Resampling.average`` when the output has fewer pixels than the window
    (shrinking: every raster pixel contributes, no aliasing), otherwise
    ``Resampling.bilinear`` (enlarging: smooth, no blocky pixels).
    """
    from rasterio.enums import Resampling

    shrinking = out_shape[0] * out_shape[1] < window_shape[0] * window_shape[1]
    return Resampling.average if shrinking else Resampling.bilinear


def resample_array(image: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Resample an ``H x W x 3`` uint8 RGB array to ``out_shape`` ``(height, width)``.

    The same GDAL resampling as :meth:`RasterSource.read_window` with
    ``out_shape`` (:func:`resampling_for`), through an in-memory dataset, so
    an array and a file of the same pixels give the same result.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    image = check_rgb_array(image)
    out_h, out_w = _check_out_shape(out_shape)
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


def read_image(
    path: str | os.PathLike,
    *,
    bands: Sequence[int] | None = None,
    value_range: Sequence[float] | Sequence[Sequence[float]] | None = None,
) -> np.ndarray:
    """Read a whole image file as an ``H x W x 3`` ``uint8`` RGB array.

    The module's band and dtype rules apply: an alpha band is dropped,
    16-bit and float images are scaled to 0-255 (percentile stretch, or
    ``value_range``), a single band is refused, more than three bands need
    ``bands=(r, g, b)``. For large rasters use :class:`RasterSource` and read
    windows instead.
    """
    with RasterSource(path, bands=bands, value_range=value_range) as source:
        return source.read_window(None)


# -- helpers ------------------------------------------------------------------


def _open(path: str) -> Any:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    if not os.path.exists(path):
        raise ImageReadError(f"Image file {path!r} does not exist; check the path.")
    if os.path.isdir(path):
        raise ImageReadError(f"{path!r} is a folder, not an image file; pass a file path.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as exc:
        raise ImageReadError(
            f"Cannot read {path!r} as an image ({exc}); pass a GeoTIFF, PNG or JPEG file."
        ) from None


def _guard(path: str, read: Any) -> Any:
    """Run a rasterio read, turning I/O failures into :class:`ImageReadError`."""
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return read()
    except RasterioIOError as exc:
        raise ImageReadError(
            f"Reading pixels from {path!r} failed ({exc}); the file may be truncated or corrupt."
        ) from None


def _resolve_bands(path: str, src: Any, bands: Sequence[int] | None) -> tuple[int | None, tuple[int, int, int]]:
    from rasterio.enums import ColorInterp

    alpha = [i + 1 for i, ci in enumerate(src.colorinterp) if ci == ColorInterp.alpha]
    alpha_band = alpha[0] if alpha else None
    colour = [b for b in range(1, src.count + 1) if b not in alpha]
    if bands is not None:
        if isinstance(bands, (str, bytes)) or len(bands) != 3:
            raise InvalidInputError(
                f"bands must be three 1-based band numbers (red, green, blue), got {bands!r}; "
                "e.g. bands=(1, 2, 3)."
            )
        bad = [b for b in bands if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= src.count]
        if bad:
            raise InvalidInputError(
                f"bands {tuple(bands)!r} name band(s) {bad} that {path!r} does not have; "
                f"its bands are numbered 1 to {src.count}."
            )
        return alpha_band, tuple(int(b) for b in bands)  # type: ignore[return-value]
    if len(colour) == 3:
        return alpha_band, (colour[0], colour[1], colour[2])
    if len(colour) > 3:
        raise RasterError(
            f"{path!r} has {len(colour)} non-alpha bands; say which three are red, green and blue, "
            "e.g. bands=(1, 2, 3) (1-based band numbers)."
        )
    raise RasterError(
        f"{path!r} has {len(colour)} colour band(s) ({src.count} in all); an RGB image with 3 bands "
        "is needed, so expand grayscale or paletted rasters to RGB first "
        "(e.g. gdal_translate -expand rgb)."
    )


def _check_out_shape(out_shape: Any) -> tuple[int, int]:
    try:
        out_h, out_w = (int(v) for v in out_shape)
        ok = all(float(v) == int(v) for v in out_shape) and out_h > 0 and out_w > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidInputError(f"out_shape must be (height, width) in whole pixels > 0, got {out_shape!r}.")
    return out_h, out_w


def _check_value_range(value_range: Any) -> np.ndarray:
    try:
        arr = np.asarray(value_range, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.shape == (2,):
        arr = np.tile(arr, (3, 1))
    if arr.shape != (3, 2) or not np.isfinite(arr).all() or (arr[:, 1] <= arr[:, 0]).any():
        raise InvalidInputError(
            f"value_range must be (low, high) with low < high, or three such pairs (one per RGB "
            f"band), got {value_range!r}; e.g. value_range=(0, 4095) for 12-bit imagery."
        )
    return arr


def _check_percentiles(percentiles: Any) -> tuple[float, float]:
    try:
        low, high = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        low, high = math.nan, math.nan
    if not 0 <= low < high <= 100:
        raise InvalidInputError(
            f"percentiles must be (low, high) with 0 <= low < high <= 100, got {percentiles!r}; "
            "e.g. percentiles=(2, 98)."
        )
    return (low, high)


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
