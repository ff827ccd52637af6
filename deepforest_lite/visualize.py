"""Pictures: boxes drawn over an image or a raster window, and precision-recall curves, as PNG.

Boxes are box tables (see :mod:`deepforest_lite.boxes`) in the pixel
coordinates of the *full* image: ``xmin, ymin, xmax, ymax``, origin at the
top-left corner, x = column, ``xmax``/``ymax`` exclusive. When only a window
of the image is drawn, or the picture is downsampled, the boxes are shifted
and scaled to the picture here; callers never convert them.

Large rasters are never read whole: the requested region is read with
rasterio at the output size (``out_shape``), which lets GDAL use the file's
overviews when it has them. Every PNG is written atomically (to a temporary
file in the same folder, then renamed), so a reader never sees half a file.

Colours are RGB tuples of 0-255 ints. Boxes are drawn with PIL; the
precision-recall curve with matplotlib's Agg canvas (no display needed).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .boxes import BOX_COLUMNS, check_columns
from .checks import check_range
from .errors import ImageReadError, InvalidInputError
from .evaluate import best_threshold, format_threshold
from .files import atomic_write
from .raster import check_rgb_array

__all__ = [
    "PREDICTION_COLOR",
    "TRUTH_COLOR",
    "draw_boxes",
    "plot_predictions",
    "plot_precision_recall",
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
        known = scores is not None and bool(np.isfinite(scores[i]))
        if show_scores and known:
            parts.append(f"{scores[i]:.2f}")
        if parts:
            captions.append((-scores[i] if known else math.inf, x0, y0, " ".join(parts)))
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
    image: str | os.PathLike | np.ndarray,
    predictions: pd.DataFrame,
    path: str | os.PathLike | None = None,
    *,
    ground_truth: pd.DataFrame | None = None,
    window: Any = None,
    max_size: int = DEFAULT_MAX_SIZE,
    color: tuple[int, int, int] = PREDICTION_COLOR,
    truth_color: tuple[int, int, int] = TRUTH_COLOR,
    line_width: int = 2,
    show_labels: bool = True,
    show_scores: bool = True,
) -> np.ndarray:
    """Draw predicted (and optionally ground-truth) boxes over an image or one window of a raster.

    Args:
        image: a file rasterio reads (PNG, JPEG, GeoTIFF, ...) or an
            ``H x W x 3`` ``uint8`` RGB array. Files are read at the output
            size, from overviews when the file has them, never whole; the
            first three bands are taken as RGB (one band is shown as grey),
            and other dtypes than 8-bit are stretched between their 2nd and
            98th percentiles for display.
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
            whole image. Boxes are shifted into it; boxes outside are not drawn.
        max_size: longest side of the picture in pixels; a larger region is
            downsampled by the same factor on both axes and the boxes scaled
            with it.
        color, truth_color: RGB outline colours of predictions and ground truth.
        line_width: outline width in picture pixels.
        show_labels, show_scores: write each prediction's label and/or score.

    Returns:
        The picture, an ``h x w x 3`` ``uint8`` array with
        ``max(h, w) <= max_size``.

    Raises:
        ImageReadError: the image file is missing or unreadable.
        InvalidInputError: bad array, table, window or sizes.
    """
    for table, what in ((predictions, "predictions"), (ground_truth, "ground truth")):
        if table is not None:
            check_columns(table, BOX_COLUMNS, what=what)
            _check_one_image(table, what)
    max_size = check_range("max_size", max_size, 1, integer=True, kind="whole number of pixels", hint="e.g. 2048")

    if isinstance(image, np.ndarray):
        picture, (col_off, row_off, sx, sy) = _array_region(image, window, int(max_size))
    elif isinstance(image, (str, os.PathLike)):
        picture, (col_off, row_off, sx, sy) = _file_region(os.fspath(image), window, int(max_size))
    else:
        raise InvalidInputError(
            f"image must be a file path or an H x W x 3 uint8 array, got {type(image).__name__}."
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


def plot_precision_recall(
    sweep: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    size_px: int = 600,
    threshold: float | None = None,
) -> str:
    """Write a precision-recall curve PNG from a :func:`~deepforest_lite.evaluate.threshold_sweep` table.

    Recall is on the x axis, precision on the y axis (both 0-1, pooled over
    all boxes); each point is one score threshold, a few of which are written
    beside their points. The chosen threshold is marked with a star and its
    own value written beside it (``score >= 0.30``, with as many digits as the
    threshold has, e.g. ``0.012``), and named in the legend with its F1.

    Args:
        sweep: table with ``score_threshold, precision, recall, f1``.
        path: PNG file to write (its folder is created).
        title: figure title; default "Precision-recall over score thresholds".
        size_px: width and height of the PNG in pixels.
        threshold: the threshold to mark, one of the sweep's; default the
            best-F1 one (:func:`~deepforest_lite.evaluate.best_threshold`).

    Returns:
        ``path`` as a string.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_columns(sweep, ["score_threshold", "precision", "recall", "f1"], what="threshold sweep table")
    size_px = check_range("size_px", size_px, 100, integer=True, kind="whole number of pixels")
    data = sweep.sort_values("score_threshold").reset_index(drop=True)
    thresholds = data["score_threshold"].to_numpy(float)
    precision = data["precision"].to_numpy(float)
    recall = data["recall"].to_numpy(float)
    f1 = data["f1"].to_numpy(float)

    dpi = 100
    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ok = np.isfinite(precision) & np.isfinite(recall)
    ax.plot(recall[ok], precision[ok], "-o", color="#1f77b4", markersize=3, label="score thresholds")
    # Name about six points, skipping thresholds that land on the same point as a lower one.
    idx = np.flatnonzero(ok)
    distinct = [
        i
        for k, i in enumerate(idx)
        if k == 0 or (recall[i], precision[i]) != (recall[idx[k - 1]], precision[idx[k - 1]])
    ]
    step = max(1, len(distinct) // 6)
    for i in distinct[::step]:
        ax.annotate(
            format_threshold(thresholds[i]),
            (recall[i], precision[i]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
            color="#555555",
        )
    chosen = None
    if threshold is not None:
        hits = np.flatnonzero(np.isclose(thresholds, float(threshold), rtol=0, atol=1e-9))
        if not len(hits):
            raise InvalidInputError(
                f"threshold {threshold!r} is not one of the sweep's score thresholds "
                f"({', '.join(format_threshold(t) for t in thresholds[:8])}...); pass one of them."
            )
        chosen = int(hits[0])
    elif np.isfinite(f1).any():
        chosen = int(np.flatnonzero(thresholds == best_threshold(data))[0])  # its rule for ties
    if chosen is not None and ok[chosen]:
        text = format_threshold(thresholds[chosen])
        what = "best F1" if threshold is None else "F1"
        ax.plot(
            [recall[chosen]],
            [precision[chosen]],
            marker="*",
            markersize=14,
            color="#d62728",
            linestyle="none",
            label=f"{what} {f1[chosen]:.3f} at score >= {text}",
        )
        ax.annotate(
            f"score >= {text}",
            (recall[chosen], precision[chosen]),
            textcoords="offset points",
            xytext=(8, -14),
            fontsize=9,
            fontweight="bold",
            color="#d62728",
        )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or "Precision-recall over score thresholds", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


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


def _out_size(w: int, h: int, max_size: int) -> tuple[int, int]:
    factor = min(1.0, max_size / max(w, h))
    return max(1, min(max_size, round(w * factor))), max(1, min(max_size, round(h * factor)))


def _array_region(
    image: np.ndarray, window: Any, max_size: int
) -> tuple[np.ndarray, tuple[int, int, float, float]]:
    from PIL import Image

    image = check_rgb_array(image)
    col_off, row_off, w, h = _window_tuple(window, image.shape[0], image.shape[1])
    region = image[row_off : row_off + h, col_off : col_off + w]
    out_w, out_h = _out_size(w, h, max_size)
    if (out_w, out_h) != (w, h):
        region = np.asarray(Image.fromarray(np.ascontiguousarray(region)).resize((out_w, out_h), Image.BOX))
    return np.ascontiguousarray(region), (col_off, row_off, out_w / w, out_h / h)


def _file_region(path: str, window: Any, max_size: int) -> tuple[np.ndarray, tuple[int, int, float, float]]:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
    from rasterio.windows import Window as RioWindow

    if not os.path.exists(path):
        raise ImageReadError(f"Image file {path!r} does not exist; check the path.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                col_off, row_off, w, h = _window_tuple(window, src.height, src.width)
                out_w, out_h = _out_size(w, h, max_size)
                bands = [1, 2, 3] if src.count >= 3 else [1]
                data = src.read(
                    bands,
                    window=RioWindow(col_off, row_off, w, h),
                    out_shape=(len(bands), out_h, out_w),
                    resampling=Resampling.average if (out_w, out_h) != (w, h) else Resampling.nearest,
                    masked=src.dtypes[0] != "uint8",
                )
    except RasterioIOError as exc:
        raise ImageReadError(
            f"Cannot read {path!r} as an image ({exc}); pass a PNG, JPEG or TIFF file."
        ) from None
    picture = _to_uint8(data)
    if picture.shape[2] == 1:
        picture = np.repeat(picture, 3, axis=2)
    return np.ascontiguousarray(picture), (col_off, row_off, out_w / w, out_h / h)


def _to_uint8(data: np.ndarray) -> np.ndarray:
    """Bands x rows x cols -> rows x cols x bands uint8 for display.

    8-bit data is shown as it is (a declared nodata value such as 255 is
    often also a real bright pixel); other dtypes are stretched between the
    2nd and 98th percentiles of their valid pixels, masked pixels black.
    """
    mask = np.ma.getmaskarray(data)
    values = np.ma.getdata(data)
    if values.dtype == np.uint8:
        return values.transpose(1, 2, 0).copy()
    out = np.zeros(values.shape, dtype=np.uint8)
    for b in range(values.shape[0]):
        band = values[b].astype(np.float64)
        valid = band[~mask[b] & np.isfinite(band)]
        if valid.size == 0:
            continue
        lo, hi = np.percentile(valid, [2, 98])
        if hi <= lo:
            hi = lo + 1.0
        scaled = np.clip((band - lo) / (hi - lo) * 255.0, 0, 255)
        out[b] = np.nan_to_num(scaled, nan=0.0).astype(np.uint8)
    out[mask] = 0
    return out.transpose(1, 2, 0)


def _to_picture(table: pd.DataFrame, col_off: int, row_off: int, sx: float, sy: float) -> pd.DataFrame:
    """Boxes moved from full-image pixels into picture pixels."""
    out = table.copy()
    for c in BOX_COLUMNS:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    out[["xmin", "xmax"]] = (out[["xmin", "xmax"]] - col_off) * sx
    out[["ymin", "ymax"]] = (out[["ymin", "ymax"]] - row_off) * sy
    return out
