"""Window boxes -> one raster box table: shift into raster pixels, remove duplicates.

Tile prediction runs the model on overlapping windows, so an object in an
overlap is found once per window. :func:`merge_windows` moves every window's
boxes into raster pixel coordinates (origin at the raster's top-left corner,
x = column) with :func:`deepforest_lite.boxes.shift_boxes` and removes the
duplicates with non-maximum suppression (:func:`nms_merge`): a box is removed
when its IoU with a higher-ranked kept box is greater than ``iou_threshold``.
As in DeepForest the suppression is class-agnostic by default (a "Tree" box
can remove an overlapping "Bird" box); ``class_aware=True`` only compares boxes
with the same label.

Ranking: higher score first; equal scores are ranked by larger area (the box
less cut by a window edge), then by input order, so the result does not depend
on how a sort breaks ties. The suppression itself is torchvision's
:func:`torchvision.ops.nms`. Large tables are first split into groups of
boxes linked by IoU above the threshold (only boxes in one group can suppress
each other), which gives exactly the same result as one NMS over all boxes
without its quadratic cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .boxes import BOX_COLUMNS, PREDICTION_COLUMNS, check_columns, empty_boxes, overlap_groups, shift_boxes
from .checks import check_range
from .errors import InvalidInputError

__all__ = ["OFFSET_COLUMNS", "merge_windows", "nms_merge", "shift_windows"]

#: columns of a concatenated window table holding each row's window offset in px
OFFSET_COLUMNS: tuple[str, str] = ("window_col_off", "window_row_off")

# Below this many boxes one NMS over all of them is fast enough.
_DIRECT_NMS_MAX = 2000
# Pairs closer than this to the threshold are kept as links (a superset is safe).
_IOU_MARGIN = 1e-9


def shift_windows(
    tables: Sequence[pd.DataFrame] | pd.DataFrame,
    windows: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """Concatenate window box tables, moved into raster pixel coordinates.

    Args:
        tables: either a list of box tables, one per window, with boxes in
            that window's pixels; or one concatenated table whose
            :data:`OFFSET_COLUMNS` give each row's window offset.
        windows: with a list of tables, one window per table: an object with
            ``col_off`` and ``row_off`` (a :class:`deepforest_lite.windows.Window`)
            or a ``(col_off, row_off)`` pair, in raster pixels. ``None`` with a
            concatenated table.

    Returns:
        One table with every input row, ``xmin, xmax`` moved by the window's
        ``col_off`` and ``ymin, ymax`` by its ``row_off``; the offset columns
        are dropped.
    """
    if isinstance(tables, pd.DataFrame):
        if windows is not None:
            raise InvalidInputError(
                "shift_windows got one table and a list of windows; pass a list of tables "
                f"(one per window) with windows, or one table with the columns {list(OFFSET_COLUMNS)}."
            )
        check_columns(tables, [*BOX_COLUMNS, *OFFSET_COLUMNS], what="concatenated window table")
        out = tables.drop(columns=list(OFFSET_COLUMNS)).reset_index(drop=True)
        dx = tables[OFFSET_COLUMNS[0]].to_numpy(dtype=np.float64)
        dy = tables[OFFSET_COLUMNS[1]].to_numpy(dtype=np.float64)
        for column in ("xmin", "xmax"):
            out[column] = out[column].to_numpy(dtype=np.float64) + dx
        for column in ("ymin", "ymax"):
            out[column] = out[column].to_numpy(dtype=np.float64) + dy
        return out
    tables = list(tables)
    if windows is None or len(windows) != len(tables):
        raise InvalidInputError(
            f"shift_windows got {len(tables)} tables and "
            f"{'no' if windows is None else len(windows)} windows; pass one window per table."
        )
    shifted = []
    for table, window in zip(tables, windows):
        check_columns(table, BOX_COLUMNS, what="window box table")
        col_off, row_off = _offset(window)
        if len(table):
            shifted.append(shift_boxes(table, col_off, row_off))
    if not shifted:
        return empty_boxes()
    return pd.concat(shifted, ignore_index=True)


def nms_merge(
    table: pd.DataFrame, iou_threshold: float = 0.15, class_aware: bool = False
) -> pd.DataFrame:
    """Remove duplicate boxes of a table in raster pixels by non-maximum suppression.

    Args:
        table: prediction table (``xmin, ymin, xmax, ymax, label, score``;
            ``image_path`` optional) in one image's pixel coordinates.
        iou_threshold: a box is removed when its IoU with a higher-ranked kept
            box is greater than this, in [0, 1].
        class_aware: compare only boxes with the same ``label``.

    Returns:
        The kept rows with the :data:`~deepforest_lite.boxes.PREDICTION_COLUMNS`
        first (other columns after them), sorted by score descending (ties:
        larger area, then input order), index ``0..n-1``; an empty prediction
        table when ``table`` is empty.
    """
    import torch
    import torchvision

    check_range("iou_threshold", iou_threshold, 0, 1, hint="e.g. 0.15")
    check_columns(table, [*BOX_COLUMNS, "label", "score"], what="prediction table")
    if len(table) == 0:
        return _order_columns(empty_boxes(), table)
    table = table.reset_index(drop=True)
    if "image_path" not in table.columns:
        table = table.assign(image_path=pd.Series([None] * len(table), dtype="str"))
    coords = table[BOX_COLUMNS].to_numpy(dtype=np.float64)
    if not np.isfinite(coords).all():
        raise InvalidInputError(
            "The prediction table has NaN or infinite box coordinates; drop those rows before merging."
        )
    scores = table["score"].to_numpy(dtype=np.float64)
    areas = (coords[:, 2] - coords[:, 0]) * (coords[:, 3] - coords[:, 1])
    # rank: score desc, area desc, input order (lexsort: last key is primary)
    order = np.lexsort((np.arange(len(table)), -areas, -scores))
    coords = coords[order]
    labels = table["label"].astype(str).to_numpy()[order]
    groups = _groups(coords, labels if class_aware else None, float(iou_threshold))
    keep_sorted: list[np.ndarray] = []
    boxes_t = torch.from_numpy(coords)
    for members in groups:
        if len(members) == 1:
            keep_sorted.append(members)
            continue
        # strictly decreasing pseudo-scores give torchvision our exact ranking
        ranks = torch.arange(len(members), 0, -1, dtype=torch.float64)
        # with class_aware every group holds one label, so plain NMS is class-aware NMS
        kept = torchvision.ops.nms(boxes_t[torch.from_numpy(members)], ranks, float(iou_threshold))
        keep_sorted.append(members[kept.numpy()])
    kept_positions = np.sort(np.concatenate(keep_sorted))
    out = table.iloc[order[kept_positions]].reset_index(drop=True)
    return _order_columns(out, out)


def merge_windows(
    tables: Sequence[pd.DataFrame] | pd.DataFrame,
    windows: Sequence[Any] | None = None,
    iou_threshold: float = 0.15,
    class_aware: bool = False,
) -> pd.DataFrame:
    """Shift window boxes into raster pixels and remove duplicates across overlaps.

    ``merge_windows(tables, windows)`` is ``nms_merge(shift_windows(tables,
    windows), iou_threshold, class_aware)``; see those functions for the
    arguments.

    Returns:
        One prediction table in raster pixel coordinates sorted by score
        descending; an empty prediction table when no window has boxes.
    """
    return nms_merge(shift_windows(tables, windows), iou_threshold, class_aware)


# -- helpers ------------------------------------------------------------------


def _offset(window: Any) -> tuple[float, float]:
    if hasattr(window, "col_off") and hasattr(window, "row_off"):
        return float(window.col_off), float(window.row_off)
    try:
        dx, dy = window
        return float(dx), float(dy)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"Expected a window or a (col_off, row_off) pair, got {window!r}; "
            "pass the deepforest_lite.windows.Window each table was predicted on."
        ) from None


def _groups(coords: np.ndarray, labels: np.ndarray | None, iou_threshold: float) -> list[np.ndarray]:
    """Split box positions ``0..n-1`` into groups no suppression crosses.

    With ``labels`` every group holds one label. Two boxes are linked when their IoU exceeds ``iou_threshold`` (minus a
    tiny margin, so rounding never drops a link) and, with ``labels``, their
    labels are equal. Connected groups are independent under NMS. Each group
    lists positions in increasing order (= rank order).
    """
    n = len(coords)
    if n <= _DIRECT_NMS_MAX:
        if labels is None:
            return [np.arange(n)]
        return [np.flatnonzero(labels == name) for name in pd.unique(labels)]
    # links need IoU > iou_threshold minus a tiny margin, so rounding never drops a link
    return overlap_groups(coords, iou_above=max(iou_threshold - _IOU_MARGIN, 0.0), labels=labels)  # type: ignore[return-value]


def _order_columns(out: pd.DataFrame, source: pd.DataFrame) -> pd.DataFrame:
    extra = [c for c in source.columns if c not in PREDICTION_COLUMNS and c in out.columns]
    return out[[*PREDICTION_COLUMNS, *extra]]
