"""``read_annotations`` / ``read_annotation_set``: format detection, the reader registry, and the shared checks. Torch-free."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from ..errors import AnnotationError, InvalidInputError
from ..labels import LabelMap
from .annotation_set import AnnotationSet, _listed
from .coco import _load_json, _read_coco
from .csvfile import _read_csv
from .raw import _Raw, _raw_from_table, _set_image_path
from .validate import _finalize, _size_lookup
from .vector import (
    _VECTOR_SUFFIXES,
    _raster_info,
    _read_vector,
    pixel_boxes_from_geometry,
)
from .voc import _read_voc

#: format name -> reader: ``reader(path, *, data, raster, label_column, label, layer, image_path)``
#: returns the raw rows (:class:`~deepforest_lite.annotations.raw._Raw`) before the shared checks;
#: ``data`` is the parsed JSON when format detection had to read it. A new format is a reader here
#: plus its extension in :func:`_detect_format`.
READERS: dict[str, Callable[..., _Raw]] = {
    "csv": lambda path, *, image_path, label, **_: _read_csv(path, image_path=image_path, label=label),
    "voc": lambda path, *, image_path, **_: _read_voc(path, image_path=image_path),
    "coco": lambda path, *, data, **_: _read_coco(path, data),
    "vector": lambda path, *, raster, label_column, label, layer, image_path, **_: _read_vector(
        path, raster=raster, label_column=label_column, label=label, layer=layer, image_path=image_path
    ),
}

#: Names accepted by ``read_annotations(..., file_format=...)``.
ANNOTATION_FORMATS: tuple[str, ...] = tuple(READERS)


def read_annotations(
    path: str | os.PathLike[str] | pd.DataFrame | AnnotationSet,
    *,
    root_dir: str | os.PathLike[str] | None = None,
    label_map: LabelMap | Iterable[str] | None = None,
    image_path: str | None = None,
    raster: str | os.PathLike[str] | None = None,
    label: str | None = None,
    label_column: str = "label",
    layer: str | int | None = None,
    file_format: str | None = None,
) -> pd.DataFrame:
    """Read an annotation file (or check a box table) into an annotation box table.

    Args:
        path: a DeepForest CSV, a Pascal VOC XML file or a folder of them, a
            COCO JSON file, a vector file (shapefile, GeoPackage, GeoJSON, ...)
            in map coordinates, or a DataFrame with the annotation columns
            (checked like a CSV and returned as a new table; the images its
            ``attrs["empty_images"]`` lists stay empty images), or an
            :class:`AnnotationSet` (its boxes checked the same way).
        root_dir: folder the ``image_path`` values are relative to; defaults to
            the annotation file's folder (for a DataFrame: none, so only
            absolute paths are looked up). Images found there are opened
            (header only) to learn their size for the bounds check.
        label_map: the allowed class names (a :class:`LabelMap` or a list);
            a box with another label raises :class:`LabelError`. ``None``
            accepts every label.
        image_path: the image the boxes belong to, for files about one image:
            it fills a missing ``image_path`` column and replaces the name the
            file gives. Vector files default to the raster's file name. Refused
            when the file names several images.
        raster: the raster a vector file's map coordinates refer to (required
            for vector files; only its metadata is read). With a pixel format
            its size bounds the boxes of rows whose ``image_path`` has the
            raster's file name.
        label: one class name for every box (fills or replaces the labels).
        label_column: vector files: the attribute column holding the class
            names (default ``"label"``).
        layer: vector files: the layer to read (GeoPackage with several layers).
        file_format: one of :data:`ANNOTATION_FORMATS` to skip the detection
            by extension/content.

    Returns:
        A DataFrame with the columns ``image_path, xmin, ymin, xmax, ymax,
        label`` (then any extra CSV columns), one row per box, in file order.
        Coordinates are float64 pixels, origin at the image's top-left corner,
        x = column, y = row, ``xmin < xmax``, ``ymin < ymax``. Images without
        boxes are listed in ``attrs["empty_images"]`` (see :func:`empty_images`;
        :func:`read_annotation_set` returns them explicitly).

    Raises:
        AnnotationError: unreadable file, missing columns, a non-numeric or
            missing coordinate, ``xmax <= xmin`` or ``ymax <= ymin``, a box
            wholly outside its image, a vector file without CRS against a
            georeferenced raster; the message names the row (1-based) or object.
        LabelError: a label not in ``label_map``; the message lists the known ones.

    Warns:
        UserWarning: when boxes partly outside their image were clipped to it
            (negative coordinates always; the right and bottom edges when the
            image size is known from its header, the VOC ``<size>``, the COCO
            ``width``/``height`` or the raster). Overshoots up to 1e-6 px
            (float noise) are clipped without a warning.
    """
    return read_annotation_set(
        path, root_dir=root_dir, label_map=label_map, image_path=image_path, raster=raster, label=label,
        label_column=label_column, layer=layer, file_format=file_format,
    ).to_table()


def read_annotation_set(
    path: str | os.PathLike[str] | pd.DataFrame | AnnotationSet,
    *,
    root_dir: str | os.PathLike[str] | None = None,
    label_map: LabelMap | Iterable[str] | None = None,
    image_path: str | None = None,
    raster: str | os.PathLike[str] | None = None,
    label: str | None = None,
    label_column: str = "label",
    layer: str | int | None = None,
    file_format: str | None = None,
) -> AnnotationSet:
    """Read annotations like :func:`read_annotations`, as an :class:`AnnotationSet`.

    The arguments, checks, errors and warnings are those of
    :func:`read_annotations`. The result's ``boxes`` is the table it returns
    (pixels of each image, origin top-left, x = column, y = row) and its
    ``images`` every image named, those without boxes (``0,0,0,0`` CSV rows,
    VOC files without ``<object>``, COCO images without annotations, the
    images a DataFrame's ``attrs["empty_images"]`` or an :class:`AnnotationSet`
    lists) after those with boxes.
    """
    if label_map is not None and not isinstance(label_map, LabelMap):
        label_map = LabelMap(label_map)
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise InvalidInputError(
            f"label must be a non-empty class name, got {label!r}; e.g. label='Tree'."
        )
    kind = "table"
    base_dir: str | None = None
    if isinstance(path, AnnotationSet):
        raw = _raw_from_table(pixel_boxes_from_geometry(path.boxes, raster, "the annotation table"), path.empty_images)
    elif isinstance(path, pd.DataFrame):
        raw = _raw_from_table(pixel_boxes_from_geometry(path, raster, "the annotation table"), _listed(path))
    else:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise AnnotationError(f"Annotation file {path!r} does not exist; check the path.")
        kind, data = _detect_format(path, file_format)
        base_dir = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        raw = READERS[kind](
            path, data=data, raster=raster, label_column=label_column, label=label, layer=layer, image_path=image_path
        )
    raster_size: tuple[str, tuple[float, float]] | None = None
    if raster is not None and kind != "vector":
        info = _raster_info(raster)
        raster_size = (os.path.basename(os.fspath(raster)), (info["width"], info["height"]))
    if root_dir is not None:
        base_dir = os.fspath(root_dir)
    if image_path is not None:
        _set_image_path(raw, str(image_path))
    if label is not None:
        raw.frame["label"] = label
    size_of = _size_lookup(raw, base_dir, raster_size)
    return _finalize(raw, label_map, size_of)


def _detect_format(path: str, file_format: str | None) -> tuple[str, Any]:
    """The format name, and the parsed JSON when it had to be read to tell."""
    if file_format is not None:
        if file_format not in ANNOTATION_FORMATS:
            raise InvalidInputError(
                f"Unknown annotation file_format {file_format!r}; "
                f"use one of {list(ANNOTATION_FORMATS)}."
            )
        return file_format, None
    if os.path.isdir(path):
        return "voc", None
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".csv":
        return "csv", None
    if suffix == ".xml":
        return "voc", None
    if suffix in _VECTOR_SUFFIXES:
        return "vector", None
    if suffix == ".json":
        data = _load_json(path)
        if isinstance(data, dict) and data.get("type") in ("FeatureCollection", "Feature"):
            return "vector", None
        return "coco", data
    raise AnnotationError(
        f"Cannot tell the annotation format of {path!r} from its extension {suffix!r}; "
        f"use .csv, .xml, .json, {', '.join(_VECTOR_SUFFIXES)}, or pass file_format= "
        f"(one of {list(ANNOTATION_FORMATS)})."
    )
