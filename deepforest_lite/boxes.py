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

It is also the one home of box geometry on plain arrays: :func:`has_area`,
:func:`pairwise_intersection`, :func:`pairwise_iou` (the NumPy twin of ``torchvision.ops.box_iou``),
:func:`overlap_groups` (connected groups of overlapping boxes) and :func:`validate_boxes`.
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
    "has_area",
    "pairwise_intersection",
    "pairwise_iou",
    "overlap_groups",
    "validate_boxes",
    "format_box",
    "format_number",
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
    return out[has_area(out[BOX_COLUMNS].to_numpy(np.float64))].reset_index(drop=True)


def box_areas(table: pd.DataFrame) -> np.ndarray:
    """Areas in square pixels, shape ``(N,)``."""
    return ((table["xmax"] - table["xmin"]) * (table["ymax"] - table["ymin"])).to_numpy(
        dtype=np.float64
    )


# --------------------------------------------------------------------------- geometry on arrays


def _as_boxes(boxes: np.ndarray | Sequence[Sequence[float]], name: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise InvalidInputError(
            f"{name} must have shape (N, 4) as xmin, ymin, xmax, ymax, got shape {array.shape}; "
            "pass one row of four pixel coordinates per box."
        )
    return array


def has_area(boxes: np.ndarray) -> np.ndarray:
    """Boolean mask ``[N]``: ``xmax > xmin`` and ``ymax > ymin`` for each box of ``boxes [N, 4]`` (xyxy)."""
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def pairwise_intersection(
    boxes1: np.ndarray | Sequence[Sequence[float]], boxes2: np.ndarray | Sequence[Sequence[float]]
) -> np.ndarray:
    """Intersection areas of every pair of boxes.

    Args:
        boxes1: float array ``[N, 4]`` in ``(x1, y1, x2, y2)`` (pixels, origin top-left,
            ``x1 <= x2``, ``y1 <= y2``).
        boxes2: float array ``[M, 4]`` in the same format.

    Returns:
        float64 array ``[N, M]``: square pixels shared by ``boxes1[i]`` and ``boxes2[j]``
        (0 for boxes that do not overlap or only touch).
    """
    a, b = _as_boxes(boxes1, "boxes1"), _as_boxes(boxes2, "boxes2")
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(width, 0, None) * np.clip(height, 0, None)


def pairwise_iou(
    boxes1: np.ndarray | Sequence[Sequence[float]], boxes2: np.ndarray | Sequence[Sequence[float]]
) -> np.ndarray:
    """Intersection over union (Jaccard index) of every pair of boxes.

    The NumPy counterpart of ``torchvision.ops.box_iou`` (same values where the union is
    positive), so torch-free modules such as :mod:`deepforest_lite.evaluate` need no torch.

    Args:
        boxes1: float array ``[N, 4]`` in ``(x1, y1, x2, y2)`` (pixels, origin top-left,
            ``x1 <= x2``, ``y1 <= y2``).
        boxes2: float array ``[M, 4]`` in the same format.

    Returns:
        float64 array ``[N, M]`` with values in ``[0, 1]``; a pair whose union has zero area
        (two degenerate boxes) has IoU 0, not NaN.
    """
    a, b = _as_boxes(boxes1, "boxes1"), _as_boxes(boxes2, "boxes2")
    inter = pairwise_intersection(a, b)
    return _iou(inter, _areas(a)[:, None], _areas(b)[None, :])


def _iou(inter: np.ndarray, area1: np.ndarray, area2: np.ndarray) -> np.ndarray:
    union = area1 + area2 - inter
    return np.divide(inter, union, out=np.zeros(np.broadcast(inter, union).shape), where=union > 0)


def _intersecting_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)`` with ``a[i]`` and ``b[j]`` intersecting or touching (an R-tree query)."""
    import shapely

    tree = shapely.STRtree(shapely.box(b[:, 0], b[:, 1], b[:, 2], b[:, 3]))
    left, right = tree.query(shapely.box(a[:, 0], a[:, 1], a[:, 2], a[:, 3]), predicate="intersects")
    return left.astype(np.intp), right.astype(np.intp)


def overlap_groups(
    boxes: np.ndarray | Sequence[Sequence[float]],
    others: np.ndarray | Sequence[Sequence[float]] | None = None,
    *,
    iou_above: float = 0.0,
    labels: np.ndarray | Sequence[str] | None = None,
) -> list[np.ndarray] | list[tuple[np.ndarray, np.ndarray]]:
    """Connected groups of boxes linked by overlap.

    Two boxes are linked when their IoU is greater than ``iou_above`` (with the default 0:
    when they share a positive area; touching edges is no link). Candidate pairs come from
    an R-tree, so memory grows with the number of overlapping pairs, not ``N x M``.

    Args:
        boxes: float array ``[N, 4]`` in ``(x1, y1, x2, y2)`` pixels.
        others: ``None`` to group ``boxes`` among themselves, or a second float array
            ``[M, 4]`` to group the bipartite graph whose edges join ``boxes[i]`` to
            ``others[j]`` (boxes of one set are never linked to each other directly).
        iou_above: the link threshold, in ``[0, 1)``; links need IoU strictly greater.
        labels: only with ``others=None``: ``[N]`` class names; boxes of different labels
            are never linked, so every group holds one label.

    Returns:
        With ``others=None``: a list of int arrays partitioning ``0..N-1`` (every box is in
        exactly one group, a box without links is a group of its own); each array is
        increasing, and groups are ordered by their first member.
        With ``others``: a list of ``(box_indices, other_indices)`` pairs of int arrays, one
        per group holding at least one link (boxes without any link are left out).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = _as_boxes(boxes, "boxes")
    b = a if others is None else _as_boxes(others, "others")
    n, m = len(a), len(b)
    if others is not None and labels is not None:
        raise InvalidInputError("overlap_groups takes labels only when grouping one set of boxes (others=None).")
    if n == 0 or m == 0:
        return [np.arange(n)[i : i + 1] for i in range(n)] if others is None else []
    left, right = _intersecting_pairs(a, b)
    if others is None:
        pair = left < right
        left, right = left[pair], right[pair]
        if labels is not None:
            names = np.asarray(labels, dtype=object)
            same = names[left] == names[right]
            left, right = left[same], right[same]
    pa, pb = a[left], b[right]
    inter = np.clip(np.minimum(pa[:, 2], pb[:, 2]) - np.maximum(pa[:, 0], pb[:, 0]), 0, None) * np.clip(
        np.minimum(pa[:, 3], pb[:, 3]) - np.maximum(pa[:, 1], pb[:, 1]), 0, None
    )
    link = (inter > 0) & (_iou(inter, _areas(pa), _areas(pb)) > iou_above)
    left, right = left[link], right[link]
    size = n if others is None else n + m
    offset = 0 if others is None else n
    graph = coo_matrix((np.ones(len(left)), (left, right + offset)), shape=(size, size))
    _, component = connected_components(graph, directed=False)
    by_component = np.argsort(component, kind="stable")
    bounds = np.flatnonzero(np.diff(component[by_component])) + 1
    groups = [np.sort(g) for g in np.split(by_component, bounds)]
    groups.sort(key=lambda g: int(g[0]))
    if others is None:
        return groups
    linked = set(component[left].tolist())
    return [(g[g < n], g[g >= n] - n) for g in groups if component[g[0]] in linked]


def format_box(box: Sequence[float]) -> str:
    """``(xmin, ymin, xmax, ymax)`` as short text for messages, e.g. ``"(10, 5, 8.5, 20)"``."""
    return "(" + ", ".join(format_number(v) for v in box) + ")"


def format_number(value: object) -> str:
    """A number as short text for messages: ``10.0`` -> ``"10"``, ``0.1`` -> ``"0.1"``; non-numbers as ``repr``."""
    try:
        return np.format_float_positional(float(value), trim="-")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return repr(value)


def validate_boxes(
    boxes: np.ndarray | Sequence[Sequence[float]],
    where: Sequence[str] | None = None,
    error: type[Exception] = InvalidInputError,
) -> np.ndarray:
    """Check that every box has finite coordinates, ``xmax > xmin`` and ``ymax > ymin``.

    Args:
        boxes: float array ``[N, 4]`` in ``(xmin, ymin, xmax, ymax)`` pixels, origin top-left.
        where: ``[N]`` descriptions of where each box came from (e.g. ``"row 3 of a.csv"``),
            used in the message; ``None`` says ``"row i"``.
        error: the exception class to raise (a package error, e.g. ``AnnotationError``).

    Returns:
        The boxes as a float64 array ``[N, 4]``.

    Raises:
        error: for the first bad box, naming it, its place, how many more are bad, and the fix.
    """
    array = _as_boxes(boxes, "boxes")
    places = [f"row {i}" for i in range(len(array))] if where is None else list(where)

    def more(bad: np.ndarray) -> str:
        count = int(bad.sum())
        return f" (and {count - 1} more)" if count > 1 else ""

    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise error(
            f"Box {format_box(array[i])} in {places[i]}{more(bad)} has a coordinate that is not a finite "
            "number; give every box four finite pixel coordinates, or drop it."
        )
    for lo, hi in ((0, 2), (1, 3)):
        bad = array[:, hi] <= array[:, lo]
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise error(
                f"Box {format_box(array[i])} in {places[i]}{more(bad)} has {BOX_COLUMNS[hi]} "
                f"{format_number(array[i, hi])} <= {BOX_COLUMNS[lo]} {format_number(array[i, lo])}; boxes need xmax > xmin and "
                "ymax > ymin (xmin, ymin, xmax, ymax in pixels, origin top-left), so fix or remove it."
            )
    return array


def _dtype(column: str) -> str:
    return "float64" if column in BOX_COLUMNS or column == "score" else "str"
