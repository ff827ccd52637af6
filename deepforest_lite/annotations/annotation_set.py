"""``AnnotationSet``: a box table together with every image it covers, empty ones included. Torch-free.

A box table has one row per box, so an image without objects (a negative
example for training) is not a row; :class:`AnnotationSet` keeps such images
beside the table explicitly. This module is also the one place that reads and
writes the older view of the same fact, a DataFrame's
``attrs["empty_images"]`` (what :func:`~deepforest_lite.annotations.read_annotations`
returns and :func:`empty_images` / :func:`image_paths` / :func:`with_empty_images`
work on); the rest of the package passes :class:`AnnotationSet` values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from ..boxes import ANNOTATION_COLUMNS, check_columns, empty_boxes
from ..errors import InvalidInputError

_EMPTY_KEY = "empty_images"  # the DataFrame.attrs key of the older view


@dataclass(frozen=True, eq=False, repr=False)  # holds a DataFrame, which has no plain ==
class AnnotationSet:
    """Annotation boxes and every image they are about, images without boxes included.

    Attributes:
        boxes: the box table, one row per box: ``image_path, xmin, ymin, xmax,
            ymax, label`` then any extra columns. Coordinates are pixels of the
            image named by ``image_path``, origin at its top-left corner, x the
            column and y the row, ``xmax``/``ymax`` exclusive. Not copied: treat
            it as read-only.
        images: every image the set knows, each once: those with boxes in row
            order, then the empty ones in the order given. The constructor
            puts any ``images`` in this order, so ``AnnotationSet(boxes,
            ("b.png",))`` is the set of ``boxes`` plus the empty image
            ``b.png`` (an image that has rows is simply not empty).

    Unlike ``DataFrame.attrs``, which ``pd.concat`` and other pandas
    operations may drop, the images stay with the boxes: combine sets with
    :meth:`concat`, add images with :meth:`with_images`.

    Raises:
        InvalidInputError: ``boxes`` is not a DataFrame with the annotation
            columns, or ``images`` is a single string.
    """

    boxes: pd.DataFrame
    images: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_columns(self.boxes, ANNOTATION_COLUMNS, "annotation table")
        _check_not_a_string(self.images)
        object.__setattr__(self, "images", tuple(_unique([*_box_images(self.boxes), *map(str, self.images)])))

    @classmethod
    def from_table(cls, table: pd.DataFrame, images: Iterable[str] = ()) -> AnnotationSet:
        """The set of ``table``'s boxes, its listed empty images and ``images``.

        The empty images listed in ``table.attrs["empty_images"]`` (as in a
        table from :func:`~deepforest_lite.annotations.read_annotations`) are
        kept, then ``images`` are added. ``table`` is not copied.
        """
        _check_not_a_string(images)
        return cls(table, (*_listed(table), *map(str, images)))

    @classmethod
    def concat(cls, sets: Iterable[AnnotationSet | pd.DataFrame]) -> AnnotationSet:
        """All boxes of ``sets`` (in order, a new 0-based index) and all their images.

        A DataFrame counts as :meth:`from_table` of it. An image empty in one
        set and with boxes in another has boxes in the result. No sets give
        an empty set with the annotation columns.
        """
        parts = [s if isinstance(s, AnnotationSet) else cls.from_table(s) for s in sets]
        if not parts:
            return cls(empty_boxes(scores=False))
        filled = [p.boxes for p in parts if len(p.boxes)]
        boxes = pd.concat(filled, ignore_index=True) if filled else parts[0].boxes.iloc[0:0].reset_index(drop=True)
        boxes.attrs = {}
        return cls(boxes, tuple(p for s in parts for p in s.images))

    def with_images(self, images: Iterable[str]) -> AnnotationSet:
        """A set that also knows ``images`` (a list of ``image_path`` values; those without boxes are empty)."""
        _check_not_a_string(images)
        return AnnotationSet(self.boxes, (*self.images, *map(str, images)))

    @property
    def empty_images(self) -> tuple[str, ...]:
        """The images without boxes, in :attr:`images` order."""
        with_boxes = set(_box_images(self.boxes))
        return tuple(p for p in self.images if p not in with_boxes)

    def to_table(self) -> pd.DataFrame:
        """A copy of :attr:`boxes` listing :attr:`empty_images` in ``attrs["empty_images"]`` (the older view)."""
        out = self.boxes.copy()
        out.attrs = {_EMPTY_KEY: list(self.empty_images)}
        return out

    def __repr__(self) -> str:
        boxes, images = len(self.boxes), len(self.images)
        return (
            f"AnnotationSet({boxes} box{'' if boxes == 1 else 'es'}, {images} image{'' if images == 1 else 's'}, "
            f"{len(self.empty_images)} without boxes)"
        )


# ----------------------------------------------------------------------------
# The older view: DataFrame.attrs["empty_images"]
# ----------------------------------------------------------------------------


def empty_images(table: pd.DataFrame | AnnotationSet) -> list[str]:
    """The images of ``table`` that have no boxes (``table.attrs["empty_images"]``).

    Images that do have rows in ``table`` are left out, so the list stays true
    after rows were added. For an :class:`AnnotationSet`, its :attr:`~AnnotationSet.empty_images`.
    """
    if isinstance(table, AnnotationSet):
        return list(table.empty_images)
    with_boxes = set(_box_images(table))
    return [p for p in _listed(table) if p not in with_boxes]


def image_paths(table: pd.DataFrame | AnnotationSet) -> list[str]:
    """Every image ``table`` knows: those with boxes (in row order), then the empty ones."""
    if isinstance(table, AnnotationSet):
        return list(table.images)
    return _unique([*_box_images(table), *empty_images(table)])


def with_empty_images(table: pd.DataFrame, images: Iterable[str]) -> pd.DataFrame:
    """A copy of ``table`` whose ``attrs["empty_images"]`` also lists ``images``.

    Images that have boxes in ``table`` are not listed. Use it to mark negative
    examples (e.g. training tiles without objects) or to restore the list after
    an operation that dropped ``attrs``; :class:`AnnotationSet` keeps them
    without such care.
    """
    _check_not_a_string(images)
    out = table.copy()
    with_boxes = set(_box_images(table))
    listed = _unique([*_listed(table), *map(str, images)])
    out.attrs[_EMPTY_KEY] = [p for p in listed if p not in with_boxes]
    return out


def _listed(table: pd.DataFrame) -> list[str]:
    """The images ``table.attrs["empty_images"]`` lists, as strings (none without the key)."""
    return [str(p) for p in table.attrs.get(_EMPTY_KEY, [])]


def _check_not_a_string(images: object) -> None:
    if isinstance(images, str):
        raise InvalidInputError(
            f"images must be a list of image paths, got the string {images!r}; "
            f"write [{images!r}]."
        )


def _box_images(table: pd.DataFrame) -> list[str]:
    if "image_path" not in table.columns:
        return []
    return _unique(str(p) for p in table["image_path"].dropna())


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
