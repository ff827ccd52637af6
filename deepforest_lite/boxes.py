"""The box-table contract shared by every module.

A *box table* is a :class:`pandas.DataFrame` with one row per axis-aligned box:

========== ======= =====================================================
column     dtype   meaning
========== ======= =====================================================
xmin       float64 left edge, pixels from the image's left border
ymin       float64 top edge, pixels from the image's top border
xmax       float64 right edge (exclusive), ``xmax > xmin``
ymax       float64 bottom edge (exclusive), ``ymax > ymin``
label      str     class name (never an integer id)
score      float64 confidence in [0, 1] (predictions only)
image_path str     the image or raster the box belongs to
========== ======= =====================================================

Pixel coordinates have their origin at the top-left corner of the image,
x is the column and y the row; a box covering pixel (row 0, col 0) only is
``(0, 0, 1, 1)``. "Nothing found" is an empty table with these columns,
never ``None``. This module is torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import InvalidInputError

__all__ = [
    "BOX_COLUMNS",
    "ANNOTATION_COLUMNS",
    "PREDICTION_COLUMNS",
    "empty_boxes",
    "make_boxes",
    "check_columns",
    "shift_boxes",
    "clip_boxes",
    "box_areas",
]

BOX_COLUMNS: list[str] = ["xmin", "ymin", "xmax", "ymax"]
ANNOTATION_COLUMNS: list[str] = ["image_path", *BOX_COLUMNS, "label"]
PREDICTION_COLUMNS: list[str] = [*BOX_COLUMNS, "label", "score", "image_path"]


def empty_boxes(scores: bool = True) -> pd.DataFrame:
    """Return an empty box table with the contract's columns and dtypes.

    Args:
        scores: include the ``score`` column (prediction tables) or not
            (annotation tables).
    """
    columns = PREDICTION_COLUMNS if scores else ANNOTATION_COLUMNS
    return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in columns})


def make_boxes(
    coords: np.ndarray,
    labels: Sequence[str],
    scores: np.ndarray | None = None,
    image_path: str | None = None,
) -> pd.DataFrame:
    """Build a box table from arrays.

    Args:
        coords: float array of shape ``(N, 4)`` holding ``xmin, ymin, xmax, ymax``
            in pixels.
        labels: ``N`` label names.
        scores: optional float array of shape ``(N,)``; when given the table is a
            prediction table (``PREDICTION_COLUMNS``), otherwise an annotation
            table (``ANNOTATION_COLUMNS``).
        image_path: value of the ``image_path`` column for every row (may be ``None``).
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 4)
    n = len(coords)
    if len(labels) != n or (scores is not None and len(scores) != n):
        raise InvalidInputError(
            f"make_boxes got {n} boxes but {len(labels)} labels"
            + ("" if scores is None else f" and {len(scores)} scores")
            + "; pass one label (and score) per box."
        )
    data: dict[str, object] = {c: coords[:, i] for i, c in enumerate(BOX_COLUMNS)}
    data["label"] = pd.Series(list(labels), dtype=_dtype("label"))
    if scores is not None:
        data["score"] = np.asarray(scores, dtype=np.float64)
    data["image_path"] = pd.Series([image_path] * n, dtype=_dtype("image_path"))
    columns = PREDICTION_COLUMNS if scores is not None else ANNOTATION_COLUMNS
    return pd.DataFrame(data)[columns]


def check_columns(table: pd.DataFrame, required: Sequence[str], what: str = "box table") -> None:
    """Raise :class:`InvalidInputError` naming the missing columns, if any."""
    if not isinstance(table, pd.DataFrame):
        raise InvalidInputError(
            f"Expected a pandas DataFrame as {what}, got {type(table).__name__}; "
            "pass a box table such as the one predict_image or read_annotations returns."
        )
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InvalidInputError(
            f"The {what} lacks the column(s) {missing} (it has {list(table.columns)}); "
            f"a box table needs {list(required)}."
        )


def shift_boxes(table: pd.DataFrame, dx: float, dy: float) -> pd.DataFrame:
    """Return a copy of ``table`` with boxes moved by ``dx`` columns and ``dy`` rows."""
    out = table.copy()
    out[["xmin", "xmax"]] = out[["xmin", "xmax"]] + float(dx)
    out[["ymin", "ymax"]] = out[["ymin", "ymax"]] + float(dy)
    return out


def clip_boxes(table: pd.DataFrame, width: float, height: float) -> pd.DataFrame:
    """Return a copy of ``table`` with boxes clipped to ``[0, width] x [0, height]``.

    Boxes left with zero width or height (wholly outside the image) are dropped.
    """
    out = table.copy()
    out[["xmin", "xmax"]] = out[["xmin", "xmax"]].clip(0, float(width))
    out[["ymin", "ymax"]] = out[["ymin", "ymax"]].clip(0, float(height))
    keep = (out["xmax"] > out["xmin"]) & (out["ymax"] > out["ymin"])
    return out[keep].reset_index(drop=True)


def box_areas(table: pd.DataFrame) -> np.ndarray:
    """Areas in square pixels, shape ``(N,)``."""
    return ((table["xmax"] - table["xmin"]) * (table["ymax"] - table["ymin"])).to_numpy(
        dtype=np.float64
    )


def _dtype(column: str) -> str:
    return "float64" if column in BOX_COLUMNS or column == "score" else "str"
