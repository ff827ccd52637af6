"""Images without objects: the empty-image list kept beside a box table. Torch-free."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ..errors import InvalidInputError

_EMPTY_KEY = "empty_images"


# ----------------------------------------------------------------------------
# Empty images
# ----------------------------------------------------------------------------


def empty_images(table: pd.DataFrame) -> list[str]:
    """The images of ``table`` that have no boxes (``table.attrs["empty_images"]``).

    Images that do have rows in ``table`` are left out, so the list stays true
    after rows were added.
    """
    with_boxes = set(_box_images(table))
    return [p for p in table.attrs.get(_EMPTY_KEY, []) if p not in with_boxes]


def image_paths(table: pd.DataFrame) -> list[str]:
    """Every image ``table`` knows: those with boxes (in row order), then the empty ones."""
    return _unique([*_box_images(table), *empty_images(table)])


def with_empty_images(table: pd.DataFrame, images: Iterable[str]) -> pd.DataFrame:
    """A copy of ``table`` whose ``attrs["empty_images"]`` also lists ``images``.

    Images that have boxes in ``table`` are not listed. Use it to mark negative
    examples (e.g. training tiles without objects) or to restore the list after
    an operation that dropped ``attrs``.
    """
    if isinstance(images, str):
        raise InvalidInputError(
            f"images must be a list of image paths, got the string {images!r}; "
            f"write [{images!r}]."
        )
    out = table.copy()
    with_boxes = set(_box_images(table))
    listed = _unique([*table.attrs.get(_EMPTY_KEY, []), *map(str, images)])
    out.attrs[_EMPTY_KEY] = [p for p in listed if p not in with_boxes]
    return out


def _box_images(table: pd.DataFrame) -> list[str]:
    if "image_path" not in table.columns:
        return []
    return _unique(str(p) for p in table["image_path"].dropna())


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
