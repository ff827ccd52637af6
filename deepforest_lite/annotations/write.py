"""``write_annotations``: a box table (with its empty images) as a DeepForest CSV. Torch-free."""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..boxes import (
    ANNOTATION_COLUMNS,
    BOX_COLUMNS,
    format_number,
)
from ..errors import AnnotationError
from ..files import atomic_write
from .annotation_set import AnnotationSet
from .raw import _is_missing, _more, _raw_from_table

# ----------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------


def write_annotations(
    table: pd.DataFrame | AnnotationSet,
    path: str | os.PathLike[str],
    *,
    empty_images: Iterable[str] | None = None,
    empty_label: str | None = None,
) -> str:
    """Write a box table as a DeepForest CSV, atomically; return the path written.

    The columns ``image_path, xmin, ymin, xmax, ymax, label`` come first
    (pixel coordinates, origin top-left, x = column, written in the shortest
    form that reads back to the same float), then ``table``'s other columns.
    ``table`` is a box table or an :class:`AnnotationSet` (its ``boxes`` are
    written). Every image without a box, among the set's images (a table's
    ``attrs["empty_images"]``) and ``empty_images``, gets one row
    ``image_path,0,0,0,0,empty_label``, so that :func:`read_annotations` lists
    it as an empty image again (and :func:`read_annotation_set` among the
    set's images).
    ``empty_label`` defaults to the table's first label (``"Tree"`` when the
    table has no boxes), since DeepForest looks every row's label up.

    The file is written to a temporary file beside ``path`` and moved over it
    with :func:`os.replace`, so readers never see a half-written file.

    Raises:
        InvalidInputError: ``table`` lacks the annotation columns.
        AnnotationError: a row has no image_path or label, a non-finite
            coordinate, or ``xmax <= xmin`` / ``ymax <= ymin`` (it would not
            read back); the message names the table row.
    """
    if not isinstance(table, AnnotationSet):
        table = AnnotationSet.from_table(table)  # checks the columns
    negatives = table.with_images(empty_images or []).empty_images
    boxes = table.boxes
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"The folder {folder!r} for {path!r} does not exist; create it first."
        )
    raw = _raw_from_table(boxes)
    coords = np.empty((len(boxes), 4), dtype=np.float64)
    for j, c in enumerate(BOX_COLUMNS):
        numbers = pd.to_numeric(boxes[c], errors="coerce")
        coords[:, j] = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    problems = [
        (boxes["image_path"].map(_is_missing).to_numpy(dtype=bool), "has no image_path"),
        (boxes["label"].map(_is_missing).to_numpy(dtype=bool), "has no label"),
        (~np.isfinite(coords).all(axis=1), "has a missing or non-finite coordinate"),
        (
            (coords[:, 2] <= coords[:, 0]) | (coords[:, 3] <= coords[:, 1]),
            "has xmax <= xmin or ymax <= ymin",
        ),
    ]
    for bad, what in problems:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AnnotationError(
                f"Cannot write {raw.where[i]}{_more(int(bad.sum()))}: it {what} "
                f"({boxes.iloc[i][ANNOTATION_COLUMNS].tolist()}); fix or drop the row first."
            )
    frame = raw.frame
    for j, c in enumerate(BOX_COLUMNS):
        frame[c] = [format_number(v) for v in coords[:, j]]
    if negatives:
        if empty_label is None:
            empty_label = str(frame["label"].iloc[0]) if len(frame) else "Tree"
        rows = pd.DataFrame(
            {"image_path": list(negatives), **{c: ["0"] * len(negatives) for c in BOX_COLUMNS},
             "label": [empty_label] * len(negatives)}
        )
        frame = pd.concat([frame.astype(object), rows.astype(object)], ignore_index=True)
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n"))
    return path
