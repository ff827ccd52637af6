"""The raw rows a format reader returns, before the shared checks. Torch-free."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..boxes import (
    ANNOTATION_COLUMNS,
    check_columns,
)
from ..errors import AnnotationError
from .annotation_set import _unique

# ----------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------


@dataclass
class _Raw:
    """What a format reader found, before the shared validation.

    ``frame`` has the six annotation columns (coordinates still as read: str,
    numbers or None) and any extra columns; ``where`` names each row's place
    for error messages.
    """

    frame: pd.DataFrame
    where: list[str]
    source: str
    empty: list[str] = field(default_factory=list)
    sizes: dict[str, tuple[float, float]] = field(default_factory=dict)
    declared_sizes: dict[str, tuple[float, float]] = field(default_factory=dict)
    zero_rows_mark_empty: bool = False


def _set_image_path(raw: _Raw, image_path: str) -> None:
    named = _unique([*(str(p) for p in raw.frame["image_path"].dropna()), *raw.empty])
    if len(named) > 1:
        raise AnnotationError(
            f"image_path={image_path!r} names one image but {raw.source!r} holds boxes of "
            f"{len(named)} images ({named[:3]}...); leave image_path out for multi-image files."
        )
    raw.frame["image_path"] = image_path
    if raw.empty:
        raw.empty = [image_path]
    for sizes in (raw.sizes, raw.declared_sizes):
        if sizes:
            size = next(iter(sizes.values()))
            sizes.clear()
            sizes[image_path] = size


def _raw_from_table(table: pd.DataFrame, empty: Iterable[str] = ()) -> _Raw:
    """The rows of a box table; ``empty``: the images it lists without boxes."""
    check_columns(table, ANNOTATION_COLUMNS, "annotation table")
    extras = [c for c in table.columns if c not in ANNOTATION_COLUMNS]
    frame = table[[*ANNOTATION_COLUMNS, *extras]].reset_index(drop=True).copy()
    where = [f"table row {i + 1} (index {idx!r})" for i, idx in enumerate(table.index)]
    return _Raw(
        frame, where, "the annotation table", empty=list(empty),
        zero_rows_mark_empty=True,
    )


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _more(n: int) -> str:
    return f" (and {n - 1} more)" if n > 1 else ""
