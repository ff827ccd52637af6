"""The boxes :func:`~deepforest_lite.preprocess.split_raster` gives each tile. Torch-free.

:func:`raster_boxes` picks one raster's rows out of the annotations (a file
or a box table, matched by file name); :func:`window_boxes` shifts the boxes
that meet a window into its pixels, clips them to it and keeps those with at
least ``min_visible`` of their area inside (:data:`DEFAULT_MIN_VISIBLE`).

Coordinates: ``xmin, ymin, xmax, ymax`` in float pixels, origin at the
image's top-left corner, x = column, ``xmax``/``ymax`` exclusive. A box at
``(x, y)`` in the raster is at ``(x - col_off, y - row_off)`` in the tile cut
at column ``col_off``, row ``row_off``.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .annotations import AnnotationSet, read_annotation_set
from .boxes import box_areas, clip_boxes, shift_boxes
from .checks import check_range
from .errors import AnnotationError, InvalidInputError
from .geo import MAP_COLUMNS
from .windows import Window

__all__ = ["AREA_COLUMN", "DEFAULT_MIN_VISIBLE", "SOURCE_ROW", "check_min_visible", "raster_boxes", "window_boxes"]

#: default fraction of a box's area that must lie inside a tile for the box to be kept there
DEFAULT_MIN_VISIBLE: float = 0.5

# visible fractions this close below ``min_visible`` still count (float noise of
# fractional coordinates, e.g. boxes converted from map coordinates)
_FRACTION_TOLERANCE = 1e-9
#: the column of a box's whole area (in raster pixels) while it is clipped to a window
AREA_COLUMN = "__full_area__"
#: the column of :func:`window_boxes`' tables holding each box's row in the raster's table
SOURCE_ROW = "__source_row__"


def check_min_visible(min_visible: float) -> None:
    """Refuse a ``min_visible`` outside [0, 1] (:class:`InvalidInputError`)."""
    check_range(
        "min_visible", min_visible, 0, 1, kind="fraction of a box's area",
        hint=f"e.g. {DEFAULT_MIN_VISIBLE} keeps a cut box when half of it is inside the tile",
    )


def window_boxes(
    boxes: pd.DataFrame, rows: np.ndarray, full_area: np.ndarray, window: Window, min_visible: float
) -> pd.DataFrame:
    """The boxes kept in ``window``, in its pixels, with their source row in :data:`SOURCE_ROW`.

    Args:
        boxes: the raster's box table (raster pixels).
        rows: positions in ``boxes`` of the boxes that meet the window.
        full_area: every box's area in px² (``boxes.box_areas(boxes)``).
        window: the tile's window in the raster.
        min_visible: the least fraction of a box's area inside the window for it to be kept.
    """
    subset = boxes.iloc[rows].copy()
    subset[AREA_COLUMN] = full_area[rows]
    subset[SOURCE_ROW] = rows
    shifted = shift_boxes(subset, -window.col_off, -window.row_off)
    clipped = clip_boxes(shifted, window.width, window.height)
    if len(clipped) == 0:
        return clipped.drop(columns=[AREA_COLUMN])
    visible = box_areas(clipped) / clipped[AREA_COLUMN].to_numpy(dtype=np.float64)
    keep = visible >= min_visible - _FRACTION_TOLERANCE
    return clipped[keep].drop(columns=[AREA_COLUMN]).reset_index(drop=True)


def raster_boxes(
    annotations: str | os.PathLike[str] | pd.DataFrame | AnnotationSet,
    raster: str,
    *,
    image_name: str | None,
    label_column: str,
    label: str | None,
    layer: str | int | None,
) -> pd.DataFrame:
    """The raster's boxes in its pixels (the box table alone: the tiles' empty images are the cut's).

    Raises:
        InvalidInputError: ``annotations`` is neither a path nor a box table.
        AnnotationError: the annotations name neither boxes nor an empty image
            for the raster (the message lists the names they hold).
    """
    target = os.path.basename(os.fspath(image_name if image_name is not None else raster))
    if isinstance(annotations, (pd.DataFrame, AnnotationSet)):
        given = annotations
        if isinstance(given, pd.DataFrame):
            if "image_path" not in given.columns:  # a table about this raster alone
                given = given.assign(image_path=target)
            given = AnnotationSet.from_table(given)
        source = pd.DataFrame(given.boxes.drop(columns=["geometry", *MAP_COLUMNS], errors="ignore"))
        table = read_annotation_set(AnnotationSet(source, given.empty_images), raster=raster, label=label)
        what = "the annotation table"
    elif isinstance(annotations, (str, os.PathLike)):
        table = read_annotation_set(
            annotations, raster=raster, label_column=label_column, label=label, layer=layer
        )
        what = repr(os.fspath(annotations))
    else:
        raise InvalidInputError(
            f"annotations must be a file path or a box table, got {type(annotations).__name__}; "
            "pass e.g. 'boxes.csv', 'crowns.gpkg' or a DataFrame from read_annotations."
        )
    names = table.boxes["image_path"].map(lambda p: os.path.basename(str(p)))
    rows = table.boxes[(names == target).to_numpy()]
    negatives = [p for p in table.empty_images if os.path.basename(p) == target]
    if len(rows) == 0 and not negatives:
        found = sorted({*names, *(os.path.basename(p) for p in table.empty_images)})
        shown = found[:10] + (["..."] if len(found) > 10 else [])
        hint = (
            "pass image_name= (--image-name) naming the raster as the annotations do" if found
            else "check that the file holds boxes"
        )
        raise AnnotationError(
            f"{what} has no boxes for the raster {target!r} (matched by file name); the images "
            f"it names are {shown}, so {hint}."
        )
    return rows.drop(columns=["geometry", *MAP_COLUMNS], errors="ignore").reset_index(drop=True)
