"""Which bands of a raster are red, green and blue, and how their values become 0-255. Torch-free.

These are the rules every raster read follows (prediction, training tiles,
pictures), applied by :class:`deepforest_lite.raster.RasterSource`, whose
reads all end as the array :func:`check_rgb_array` accepts: ``H x W x 3``
``uint8`` RGB (rows, columns, bands). This module is pure arithmetic on band
lists and numpy arrays; it reads no file.

Band rules (band numbers are 1-based, as in rasterio and GDAL):

* Bands whose colour interpretation is *alpha* are never RGB. The alpha band
  is used as a mask: pixels where it is 0 have no data.
* Exactly 3 other bands: they are red, green, blue in file order (pass
  ``bands=(3, 2, 1)`` to reorder).
* More than 3 other bands (e.g. RGB + near infrared): ``bands=(r, g, b)``
  must say which three to use, otherwise :class:`RasterError`.
* 1 or 2 other bands (grayscale, paletted, gray + alpha): :class:`RasterError`;
  expand the raster to RGB first.
* The three bands must share one integer or real data type.

Pixel value rules (never wrap: values are clipped, not taken modulo 256):

* ``uint8`` bands are used as they are.
* Any other integer or float dtype (``uint16``, ``int16``, ``float32``, ...)
  is scaled linearly per band: ``out = clip(round((v - low) * 255 / (high - low)), 0, 255)``.
  By default ``low`` and ``high`` are the 2nd and 98th percentiles of that
  band's valid pixels (``percentiles=(2, 98)``), computed once per raster from
  a decimated read whose longer side is at most :data:`STATS_MAX_SIDE` px
  (:func:`stats_shape`; GDAL uses overviews when the file has them), so the
  whole raster is never loaded. With ``value_range=(low, high)`` (one pair
  for all bands, or three pairs, one per RGB band) the given range is used
  instead, for any dtype, ``uint8`` included. When ``high <= low`` (a
  constant band) values above ``low`` become 255 and the rest 0. NaN becomes 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InvalidInputError, RasterError

__all__ = [
    "DEFAULT_PERCENTILES",
    "STATS_MAX_SIDE",
    "check_percentiles",
    "check_rgb_array",
    "check_value_range",
    "percentile_ranges",
    "resolve_bands",
    "rgb_dtype",
    "scale_to_uint8",
    "stats_shape",
    "to_rgb",
]

#: default lower and upper percentiles of the stretch for non-``uint8`` rasters
DEFAULT_PERCENTILES: tuple[float, float] = (2.0, 98.0)
#: longer side in px of the decimated read the percentile stretch is computed from
STATS_MAX_SIDE: int = 1024

_SCALED_KINDS = ("u", "i", "f")


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


def resolve_bands(
    path: str, count: int, colorinterp: Sequence[str], bands: Sequence[int] | None
) -> tuple[int | None, tuple[int, int, int]]:
    """``(alpha_band, (r, g, b))`` of a raster by the band rules above.

    Args:
        path: the file, named in errors.
        count: its number of bands.
        colorinterp: each band's colour interpretation name (``"alpha"`` marks an alpha band).
        bands: the caller's three 1-based band numbers, or ``None``.

    Raises:
        InvalidInputError: ``bands`` is not three band numbers of this file.
        RasterError: no ``bands`` and the file has other than three non-alpha bands.
    """
    alpha = [i + 1 for i, name in enumerate(colorinterp) if name == "alpha"]
    alpha_band = alpha[0] if alpha else None
    colour = [b for b in range(1, count + 1) if b not in alpha]
    if bands is not None:
        if isinstance(bands, (str, bytes)) or len(bands) != 3:
            raise InvalidInputError(
                f"bands must be three 1-based band numbers (red, green, blue), got {bands!r}; "
                "e.g. bands=(1, 2, 3)."
            )
        bad = [b for b in bands if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= count]
        if bad:
            raise InvalidInputError(
                f"bands {tuple(bands)!r} name band(s) {bad} that {path!r} does not have; "
                f"its bands are numbered 1 to {count}."
            )
        return alpha_band, (int(bands[0]), int(bands[1]), int(bands[2]))
    if len(colour) == 3:
        return alpha_band, (colour[0], colour[1], colour[2])
    if len(colour) > 3:
        raise RasterError(
            f"{path!r} has {len(colour)} non-alpha bands; say which three are red, green and blue, "
            "e.g. bands=(1, 2, 3) (1-based band numbers)."
        )
    raise RasterError(
        f"{path!r} has {len(colour)} colour band(s) ({count} in all); an RGB image with 3 bands "
        "is needed, so expand grayscale or paletted rasters to RGB first "
        "(e.g. gdal_translate -expand rgb)."
    )


def rgb_dtype(path: str, dtypes: Sequence[str], bands: Sequence[int]) -> str:
    """The one data type of the selected ``bands`` (1-based) among a file's band ``dtypes``.

    Raises:
        RasterError: the bands have different data types, or one that is not
            an integer or real number (e.g. complex).
    """
    found = {dtypes[b - 1] for b in bands}
    if len(found) != 1:
        raise RasterError(
            f"The bands {tuple(bands)} of {path!r} have different data types {sorted(found)}; "
            "convert the raster to one data type first."
        )
    dtype = found.pop()
    if np.dtype(dtype).kind not in _SCALED_KINDS:
        raise RasterError(
            f"{path!r} holds {dtype} pixels; only integer or real-valued rasters can be read as RGB."
        )
    return dtype


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


def to_rgb(raw: np.ndarray, value_ranges: np.ndarray | None) -> np.ndarray:
    """Bands ``(3, H, W)`` as read → ``H x W x 3`` ``uint8`` (as is when ``value_ranges`` is ``None``).

    ``value_ranges``: ``(3, 2)`` array of ``low, high`` per band for :func:`scale_to_uint8`.
    """
    out = raw if value_ranges is None else scale_to_uint8(raw, value_ranges[:, 0], value_ranges[:, 1])
    return np.ascontiguousarray(out.transpose(1, 2, 0))


def stats_shape(height: int, width: int) -> tuple[int, int]:
    """``(h, w)`` of the decimated read the percentile stretch is computed from.

    The raster shrunk by one factor on both axes so its longer side is at
    most :data:`STATS_MAX_SIDE` px (never enlarged).
    """
    factor = max(1.0, max(width, height) / STATS_MAX_SIDE)
    return max(1, math.ceil(height / factor)), max(1, math.ceil(width / factor))


def percentile_ranges(sample: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Per-band ``(low, high)`` percentiles of a masked ``(3, h, w)`` sample, shape ``(3, 2)``.

    A pixel counts when it is unmasked in at least one band and its value is
    finite; a band without such pixels gets ``(0, 1)``.
    """
    valid = ~np.ma.getmaskarray(sample).all(axis=0)
    data = np.ma.getdata(sample)
    ranges = np.zeros((3, 2), dtype=np.float64)
    for i in range(3):
        values = np.asarray(data[i][valid], dtype=np.float64)
        values = values[np.isfinite(values)]
        ranges[i] = (0.0, 1.0) if values.size == 0 else np.percentile(values, list(percentiles))
    return ranges


def check_value_range(value_range: Any) -> np.ndarray:
    """``value_range`` as a ``(3, 2)`` float array (one ``low, high`` row per RGB band).

    Raises:
        InvalidInputError: not ``(low, high)`` or three such pairs with finite ``low < high``.
    """
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


def check_percentiles(percentiles: Any) -> tuple[float, float]:
    """``(low, high)`` percentiles as floats with ``0 <= low < high <= 100``, else :class:`InvalidInputError`."""
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
