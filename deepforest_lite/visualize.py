"""Pictures: boxes drawn over an image or a raster window, as PNG.

Boxes are box tables (see :mod:`deepforest_lite.boxes`) in the pixel
coordinates of the *full* image: ``xmin, ymin, xmax, ymax``, origin at the
top-left corner, x = column, ``xmax``/``ymax`` exclusive. When only a window
of the image is drawn, or the picture is downsampled, the boxes are shifted
and scaled to the picture here; callers never convert them.

Raster files are read through :class:`~deepforest_lite.raster.RasterSource`,
the reader prediction uses, with the same ``bands=`` and ``value_range=`` and
the same band, dtype and stretch rules (:mod:`deepforest_lite.bands`), so a
picture shows the pixels the model saw. Large rasters are never read whole:
the requested region is read at the output size
(:meth:`~deepforest_lite.raster.RasterSource.read_overview`, average
resampling), which lets GDAL use the file's overviews when it has them;
arrays are shrunk by the same rule (:func:`~deepforest_lite.resample.resample_array`).
Every PNG is written atomically (to a temporary file in the same folder,
then renamed), so a reader never sees half a file.

Colours are RGB tuples of 0-255 ints. Boxes are drawn with PIL. The
precision-recall curve lives in :mod:`deepforest_lite.plots` and is
re-exported here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .boxes import BOX_COLUMNS, check_columns
from .checks import check_range
from .errors import InvalidInputError
from .files import atomic_write
from .plots import plot_precision_recall
from .raster import RasterSource, check_rgb_array, overview_shape, resample_array
from .windows import Window

__all__ = [
    "DEFAULT_MAX_SIZE",
    "PREDICTION_COLOR",
    "TRUTH_COLOR",
    "draw_boxes",
    "plot_precision_recall",
    "plot_predictions",
    "save_png",
]

#: Colour of predicted boxes (orange).
PREDICTION_COLOR: tuple[int, int, int] = (255, 140, 0)
#: Colour of ground-truth boxes (light blue).
TRUTH_COLOR: tuple[int, int, int] = (0, 190, 255)

#: Longest side, in pixels, of a picture made by :func:`plot_predictions` unless told otherwise.
DEFAULT_MAX_SIZE = 2048


def draw_boxes(
    image: np.ndarray,
    boxes: pd.DataFrame,
    color: tuple[int, int, int] = PREDICTION_COLOR,
    *,
    line_width: int = 2,
    show_labels: bool = True,
    show_scores: bool = True,
) -> np.ndarray:
    """Return a copy of ``image`` with ``boxes`` outlined in ``color``.

    Args:
        image: ``H x W x 3`` ``uint8`` RGB array.
        boxes: box table whose coordinates are pixels *of this array*
            (``xmin, ymin, xmax, ymax``, ``xmax``/``ymax`` exclusive). ``label``
            and ``score`` are written above each box when present and asked
            for. Captions never overlap: the highest-scoring boxes are
            captioned first and a caption that would cover another is left
            out, so an overview of thousands of boxes shows every outline and
            a readable sample of captions, not a carpet of text.
        color: RGB outline colour.
        line_width: outline width in pixels, drawn inside the box.
        show_labels, show_scores: write ``label`` and/or ``score`` (2 decimals).

    Returns:
        A new ``H x W x 3`` ``uint8`` array; the outline of a box covers the
        pixel columns ``floor(xmin) .. floor(xmin) + line_width - 1`` (left
        edge) and the rows likewise, up to column ``ceil(xmax) - 1`` and row
        ``ceil(ymax) - 1``.
    """
    from PIL import Image, ImageDraw, ImageFont

    image = check_rgb_array(image)
    check_columns(boxes, BOX_COLUMNS, what="box table to draw")
    color = _check_color(color)
    line_width = check_range("line_width", line_width, 1, integer=True, kind="whole number of pixels")
    height, width = image.shape[:2]
    canvas = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    coords = boxes[BOX_COLUMNS].to_numpy(dtype=float)
    labels = boxes["label"].astype(str).tolist() if show_labels and "label" in boxes.columns else None
    scores = boxes["score"].to_numpy(dtype=float) if "score" in boxes.columns else None
    captions: list[tuple[float, int, int, str]] = []  # (sort key, x0, y0, text)
    for i, (xmin, ymin, xmax, ymax) in enumerate(coords):
        if not np.all(np.isfinite([xmin, ymin, xmax, ymax])):
            continue
        x0, y0 = max(0, math.floor(xmin)), max(0, math.floor(ymin))
        x1, y1 = min(width - 1, math.ceil(xmax) - 1), min(height - 1, math.ceil(ymax) - 1)
        if x1 < x0 or y1 < y0:
            continue  # outside the picture
        draw.rectangle((x0, y0, x1, y1), outline=color, width=int(line_width))
        parts = []
        if labels is not None:
            parts.append(labels[i])
        score = float(scores[i]) if scores is not None else math.nan
        known = bool(np.isfinite(score))
        if show_scores and known:
            parts.append(f"{score:.2f}")
        if parts:
            captions.append((-score if known else math.inf, x0, y0, " ".join(parts)))
    taken = np.zeros((height, width), dtype=bool)  # picture pixels under a caption already drawn
    # after all outlines, so no outline crosses a caption; best score first, stable for ties
    for _, x0, y0, text in sorted(captions, key=lambda c: c[0]):
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left + 2, bottom - top + 2
        ty = y0 - th if y0 - th >= 0 else y0 + int(line_width)
        if taken[ty : ty + th, x0 : x0 + tw].any():
            continue  # it would cover a better box's caption
        taken[ty : ty + th, x0 : x0 + tw] = True
        draw.rectangle((x0, ty, x0 + tw - 1, ty + th - 1), fill=color)
        draw.text((x0 + 1 - left, ty + 1 - top), text, fill=(0, 0, 0), font=font)
    return np.asarray(canvas, dtype=np.uint8).copy()


def plot_predictions(
    image: str | os.PathLike | np.ndarray | RasterSource,
    predictions: pd.DataFrame,
    path: str | os.PathLike | None = None,
    *,
    ground_truth: pd.DataFrame | None = None,
    window: Any = None,
    max_size: int = DEFAULT_MAX_SIZE,
    bands: Sequence[int] | None = None,
    value_range: Sequence[float] | Sequence[Sequence[float]] | None = None,
    color: tuple[int, int, int] = PREDICTION_COLOR,
    truth_color: tuple[int, int, int] = TRUTH_COLOR,
    line_width: int = 2,
    show_labels: bool = True,
    show_scores: bool = True,
) -> np.ndarray:
    """Draw predicted (and optionally ground-truth) boxes over an image or one window of a raster.

    Args:
        image: a file rasterio reads (PNG, JPEG, GeoTIFF, ...), an open
            :class:`~deepforest_lite.raster.RasterSource` (used as it is, not
            closed), or an ``H x W x 3`` ``uint8`` RGB array. Files are read
            through :class:`~deepforest_lite.raster.RasterSource` exactly as
            prediction reads them (same band choice, same scaling of 16-bit
            and float rasters, the stretch computed over the whole raster),
            at the output size, from overviews when the file has them, never
            whole.
        predictions: box table in full-image pixels; it must hold the boxes
            of one image only (``image_path`` with one distinct value, or no
            such column). ``label``/``score`` are written when present.
        path: where to write the PNG (its folder is created); ``None`` writes
            nothing.
        ground_truth: optional box table drawn first, in ``truth_color``,
            without captions (the predictions' captions would cover them).
        window: the region to draw, in full-image pixels: a
            :class:`deepforest_lite.Window`, a ``rasterio.windows.Window`` or a
            ``(col_off, row_off, width, height)`` tuple; ``None`` draws the
            whole image. It is clipped to the image; boxes are shifted into
            it and boxes outside are not drawn.
        max_size: longest side of the picture in pixels; a larger region is
            downsampled by the same factor on both axes (average resampling)
            and the boxes scaled with it.
        bands: for a file: three 1-based band numbers read as red, green,
            blue, as in prediction (needed for more than three non-alpha
            bands; default the file's three colour bands).
        value_range: for a file: fixed ``(low, high)`` (or three pairs, one
            per band) mapped to 0-255, as in prediction; default ``uint8``
            as it is and other dtypes the 2nd-98th percentile stretch.
        color, truth_color: RGB outline colours of predictions and ground truth.
        line_width: outline width in picture pixels.
        show_labels, show_scores: write each prediction's label and/or score.

    Returns:
        The picture, an ``h x w x 3`` ``uint8`` array with
        ``max(h, w) <= max_size``.

    Raises:
        ImageReadError: the image file is missing or unreadable.
        RasterError: the file's bands or dtype cannot be read as RGB (as in
            prediction; e.g. four bands without ``bands=``).
        InvalidInputError: bad array, table, window, sizes, or ``bands`` /
            ``value_range`` given with an array or an open source.
    """
    for table, what in ((predictions, "predictions"), (ground_truth, "ground truth")):
        if table is not None:
            check_columns(table, BOX_COLUMNS, what=what)
            _check_one_image(table, what)
    max_size = check_range("max_size", max_size, 1, integer=True, kind="whole number of pixels", hint="e.g. 2048")

    if isinstance(image, (np.ndarray, RasterSource)) and (bands is not None or value_range is not None):
        what = "an array" if isinstance(image, np.ndarray) else "an open RasterSource, which has its own"
        raise InvalidInputError(
            f"bands and value_range apply to raster files, but {what} was given; pass the file path, "
            "or set them when making the array or opening the source: RasterSource(path, bands=..., value_range=...)."
        )
    if isinstance(image, np.ndarray):
        picture, (col_off, row_off, sx, sy) = _array_region(image, window, int(max_size))
    elif isinstance(image, RasterSource):
        picture, (col_off, row_off, sx, sy) = _source_region(image, window, int(max_size))
    elif isinstance(image, (str, os.PathLike)):
        with RasterSource(image, bands=bands, value_range=value_range) as source:
            picture, (col_off, row_off, sx, sy) = _source_region(source, window, int(max_size))
    else:
        raise InvalidInputError(
            f"image must be a file path, a RasterSource or an H x W x 3 uint8 array, got {type(image).__name__}."
        )

    if ground_truth is not None and len(ground_truth):
        truth = _to_picture(ground_truth, col_off, row_off, sx, sy)
        picture = draw_boxes(
            picture, truth, truth_color, line_width=line_width, show_labels=False, show_scores=False
        )
    if len(predictions):
        picture = draw_boxes(
            picture,
            _to_picture(predictions, col_off, row_off, sx, sy),
            color,
            line_width=line_width,
            show_labels=show_labels,
            show_scores=show_scores,
        )
    if path is not None:
        save_png(picture, path)
    return picture


def save_png(image: np.ndarray, path: str | os.PathLike) -> str:
    """Write an ``H x W x 3`` ``uint8`` RGB array as a PNG, atomically; returns the path."""
    from PIL import Image

    image = check_rgb_array(image)
    picture = Image.fromarray(np.ascontiguousarray(image))
    return atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))


# --------------------------------------------------------------------------- helpers


def _check_color(color: Any) -> tuple[int, int, int]:
    try:
        values = tuple(int(c) for c in color)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or any(not 0 <= c <= 255 for c in values):
        raise InvalidInputError(
            f"A colour must be three ints 0-255 (R, G, B), got {color!r}; e.g. (255, 140, 0)."
        )
    return values  # type: ignore[return-value]


def _check_one_image(table: pd.DataFrame, what: str) -> None:
    if "image_path" not in table.columns or table.empty:
        return
    names = table["image_path"].dropna().unique()
    if len(names) > 1:
        raise InvalidInputError(
            f"The {what} hold boxes of {len(names)} images ({list(names[:3])}...); draw one image at a "
            f"time, e.g. table[table.image_path == {str(names[0])!r}]."
        )


def _window_tuple(window: Any, height: int, width: int) -> tuple[int, int, int, int]:
    """``(col_off, row_off, width, height)`` of ``window`` clipped to the image, validated."""
    if window is None:
        return 0, 0, width, height
    try:
        if all(hasattr(window, a) for a in ("col_off", "row_off", "width", "height")):
            values = (window.col_off, window.row_off, window.width, window.height)
        else:
            values = tuple(window)
        col_off, row_off, w, h = (int(round(float(v))) for v in values)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"window must be a Window or a (col_off, row_off, width, height) tuple, got {window!r}."
        ) from None
    x0, y0 = max(0, col_off), max(0, row_off)
    x1, y1 = min(width, col_off + w), min(height, row_off + h)
    if w <= 0 or h <= 0 or x1 <= x0 or y1 <= y0:
        raise InvalidInputError(
            f"window {(col_off, row_off, w, h)} (col_off, row_off, width, height) does not overlap the "
            f"{width} x {height} px image; give a window inside it."
        )
    return x0, y0, x1 - x0, y1 - y0


def _array_region(
    image: np.ndarray, window: Any, max_size: int
) -> tuple[np.ndarray, tuple[int, int, float, float]]:
    """The picture of ``window`` of an RGB array and ``(col_off, row_off, sx, sy)`` of its pixels."""
    image = check_rgb_array(image)
    col_off, row_off, w, h = _window_tuple(window, image.shape[0], image.shape[1])
    region = np.ascontiguousarray(image[row_off : row_off + h, col_off : col_off + w])
    region = resample_array(region, overview_shape((h, w), max_size))
    return region, (col_off, row_off, region.shape[1] / w, region.shape[0] / h)


def _source_region(
    source: RasterSource, window: Any, max_size: int
) -> tuple[np.ndarray, tuple[int, int, float, float]]:
    """The picture of ``window`` of a raster (as prediction reads it) and ``(col_off, row_off, sx, sy)``."""
    col_off, row_off, w, h = _window_tuple(window, source.height, source.width)
    picture = source.read_overview(max_size, window=Window(col_off, row_off, w, h))
    return picture, (col_off, row_off, picture.shape[1] / w, picture.shape[0] / h)


def _to_picture(table: pd.DataFrame, col_off: int, row_off: int, sx: float, sy: float) -> pd.DataFrame:
    """Boxes moved from full-image pixels into picture pixels."""
    out = table.copy()
    for c in BOX_COLUMNS:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    out[["xmin", "xmax"]] = (out[["xmin", "xmax"]] - col_off) * sx
    out[["ymin", "ymax"]] = (out[["ymin", "ymax"]] - row_off) * sy
    return out
