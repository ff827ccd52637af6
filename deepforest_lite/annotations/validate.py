"""The checks every format shares: paths, numbers, labels, box geometry, image bounds. Torch-free."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..boxes import (
    ANNOTATION_COLUMNS,
    BOX_COLUMNS,
    empty_boxes,
    format_box,
    format_number,
    validate_boxes,
)
from ..errors import AnnotationError, BoxesClippedWarning, ImageReadError, LabelError
from ..labels import LabelMap
from ..rasterfile import raster_header
from .annotation_set import AnnotationSet, _unique
from .raw import _is_missing, _more, _Raw

_EDGE_TOLERANCE = 1e-6  # pixels a box may pass an image edge by without a warning


def _header_size(file: str) -> tuple[float, float] | None:
    """``(width, height)`` in px from the image's header, or ``None`` when it cannot be read."""
    try:
        header = raster_header(file)
    except ImageReadError:  # an unreadable image only means the size is unknown here
        return None
    return float(header.width), float(header.height)


def _size_lookup(
    raw: _Raw, base_dir: str | None, raster_size: tuple[str, tuple[float, float]] | None,
) -> Callable[[str], tuple[float, float] | None]:
    """Image size by precedence.

    The vector's raster, ``raster=`` by file name, the image header under ``base_dir``,
    the size the file declares; else unknown.
    """
    cache: dict[str, tuple[float, float] | None] = {}

    def size_of(name: str) -> tuple[float, float] | None:
        if name in cache:
            return cache[name]
        size = raw.sizes.get(name)
        if size is None and raster_size is not None and os.path.basename(name) == raster_size[0]:
            size = raster_size[1]
        if size is None:
            file = name if os.path.isabs(name) else (
                os.path.join(base_dir, name) if base_dir is not None else None
            )
            if file is not None and os.path.isfile(file):
                size = _header_size(file)
        if size is None:
            size = raw.declared_sizes.get(name)
        cache[name] = size
        return size

    return size_of


def _finalize(
    raw: _Raw, label_map: LabelMap | None, size_of: Callable[[str], tuple[float, float] | None],
) -> AnnotationSet:
    """Shared checks; returns the typed box table with the images without boxes."""
    frame, where = raw.frame, np.asarray(raw.where, dtype=object)
    # image_path present on every row
    missing_path = frame["image_path"].map(_is_missing).to_numpy(dtype=bool)
    if missing_path.any():
        i = int(np.flatnonzero(missing_path)[0])
        raise AnnotationError(
            f"The image_path is empty in {where[i]}{_more(int(missing_path.sum()))}; "
            "name the image each box belongs to."
        )
    # numeric, finite coordinates
    coords = np.empty((len(frame), 4), dtype=np.float64)
    for j, c in enumerate(BOX_COLUMNS):
        values = frame[c].astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(numbers)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = frame[c].iloc[i]
            if _is_missing(value):
                raise AnnotationError(
                    f"{c} is missing in {where[i]}{_more(int(bad.sum()))}; "
                    "give all four pixel coordinates xmin, ymin, xmax, ymax."
                )
            raise AnnotationError(
                f"{c} value {value!r} in {where[i]}{_more(int(bad.sum()))} is not a finite number; "
                "write pixel coordinates as plain numbers."
            )
        coords[:, j] = numbers
    images = frame["image_path"].map(str).to_numpy(dtype=object)
    empty = list(raw.empty)
    # 0,0,0,0 rows mark images without objects
    if raw.zero_rows_mark_empty:
        zero = (coords == 0).all(axis=1)
        if zero.any():
            empty.extend(images[zero])
            keep = ~zero
            frame, where, coords, images = frame[keep], where[keep], coords[keep], images[keep]
    # labels present (and known)
    labels = frame["label"].to_numpy(dtype=object)
    missing_label = np.array([_is_missing(v) for v in labels], dtype=bool)
    if missing_label.any():
        i = int(np.flatnonzero(missing_label)[0])
        raise AnnotationError(
            f"The label is empty in {where[i]}{_more(int(missing_label.sum()))}; "
            "give every box a class name."
        )
    labels = np.array([str(v) for v in labels], dtype=object)
    # positive width and height
    validate_boxes(coords, where=list(where), error=AnnotationError)
    if label_map is not None:
        unknown = np.array([v not in label_map for v in labels], dtype=bool)
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            names = _unique(labels[unknown])
            what = f"Label {names[0]!r} is" if len(names) == 1 else f"Labels {names} are"
            raise LabelError(
                f"{what} not in the label map ({int(unknown.sum())} box(es), the first in {where[i]}); the known "
                f"labels are {list(label_map.names)}, so fix the label or add it to the labels."
            )
    # bounds
    sizes = np.full((len(coords), 2), np.inf)
    for name in _unique(images):
        size = size_of(name)
        if size is not None:
            sizes[images == name] = size
    outside = (
        (coords[:, 2] <= 0) | (coords[:, 3] <= 0)
        | (coords[:, 0] >= sizes[:, 0]) | (coords[:, 1] >= sizes[:, 1])
    )
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        w, h = sizes[i]
        image = f"{images[i]!r} of {format_number(w)} x {format_number(h)} px" if np.isfinite(w) else repr(images[i])
        raise AnnotationError(
            f"Box {format_box(coords[i])} in {where[i]}{_more(int(outside.sum()))} lies wholly outside "
            f"its image {image}; fix its coordinates (pixels, origin top-left) or remove it."
        )
    clipped = coords.copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], 0, sizes[:, [0]])
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], 0, sizes[:, [1]])
    # float noise (e.g. from reprojection) at an edge is clipped without a warning
    partly = (np.abs(clipped - coords) > _EDGE_TOLERANCE).any(axis=1)
    if partly.any():
        i = int(np.flatnonzero(partly)[0])
        w, h = sizes[i]
        image = f"{images[i]!r} of {format_number(w)} x {format_number(h)} px" if np.isfinite(w) else repr(images[i])
        warnings.warn(
            f"Clipped {int(partly.sum())} box(es) partly outside their image to its bounds, the "
            f"first in {where[i]}: {format_box(coords[i])} -> {format_box(clipped[i])} in {image}.",
            BoxesClippedWarning,
            stacklevel=3,
        )
    # the typed table
    template = empty_boxes(scores=False)
    out = pd.DataFrame(
        {
            "image_path": pd.Series(list(images), dtype=template["image_path"].dtype),
            **{c: clipped[:, j] for j, c in enumerate(BOX_COLUMNS)},
            "label": pd.Series(list(labels), dtype=template["label"].dtype),
        },
        columns=ANNOTATION_COLUMNS,
    )
    extras = [c for c in frame.columns if c not in ANNOTATION_COLUMNS]
    for c in extras:
        out[c] = frame[c].to_numpy()
    return AnnotationSet(out, tuple(map(str, empty)))
