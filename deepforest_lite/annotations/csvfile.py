"""Reader for DeepForest CSV files (``0,0,0,0`` rows mark images without objects). Torch-free."""

from __future__ import annotations

import pandas as pd

from ..boxes import (
    ANNOTATION_COLUMNS,
)
from ..errors import AnnotationError
from .raw import _Raw
from .vector import pixel_boxes_from_geometry


def _read_csv(path: str, *, image_path: str | None, label: str | None) -> _Raw:
    text_columns = {c: str for c in ANNOTATION_COLUMNS}
    try:
        frame = pd.read_csv(
            path, dtype=text_columns, keep_default_na=False, na_values=[""],
            skipinitialspace=True,
        )
    except pd.errors.EmptyDataError:
        raise AnnotationError(
            f"Annotation file {path!r} is empty; a DeepForest CSV needs the header "
            f"{','.join(ANNOTATION_COLUMNS)}."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise AnnotationError(
            f"Cannot parse {path!r} as CSV ({exc}); check that it is a comma-separated text file."
        ) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame[[c for c in frame.columns if not c.startswith("Unnamed: ")]]
    if "image_path" not in frame.columns and image_path is not None:
        frame["image_path"] = image_path
    if "label" not in frame.columns and label is not None:
        frame["label"] = label
    frame = pixel_boxes_from_geometry(frame, None, repr(path))  # DeepForest's geometry-only CSVs
    missing = [c for c in ANNOTATION_COLUMNS if c not in frame.columns]
    if missing:
        hint = " or pass image_path= for a file about one image" if missing == ["image_path"] else ""
        raise AnnotationError(
            f"{path!r} lacks the column(s) {missing} (its header is {list(frame.columns)}); a "
            f"DeepForest CSV needs the header {','.join(ANNOTATION_COLUMNS)}, so rename the columns{hint}."
        )
    extras = [c for c in frame.columns if c not in ANNOTATION_COLUMNS]
    frame = frame[[*ANNOTATION_COLUMNS, *extras]].reset_index(drop=True)
    where = [f"data row {i + 1} of {path!r}" for i in range(len(frame))]
    return _Raw(frame, where, path, zero_rows_mark_empty=True)
