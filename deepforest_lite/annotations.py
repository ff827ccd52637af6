"""Annotation files, the label map, and the empty-image convention.

Reading
-------
:func:`read_annotations` turns an annotation file into a box table with the
columns :data:`~deepforest_lite.boxes.ANNOTATION_COLUMNS`
(``image_path, xmin, ymin, xmax, ymax, label``): coordinates are float64
pixels with the origin at the image's top-left corner, x the column and y the
row, ``xmax``/``ymax`` exclusive (a box covering only pixel (row 0, col 0) is
``(0, 0, 1, 1)``); labels are class names (str). Supported inputs:

* **DeepForest CSV** (``.csv``): header ``image_path, xmin, ymin, xmax, ymax,
  label`` in any order; other columns are kept after these six (pandas'
  unnamed index columns ``Unnamed: N`` are dropped). DeepForest 2.x files
  with only a ``geometry`` column (WKT in pixels, y down) get their pixel
  columns from its bounds (:func:`pixel_boxes_from_geometry`); so do
  DeepForest's GeoDataFrames passed as tables.
* **Pascal VOC XML** (``.xml``, or a folder of them): ``<filename>`` gives
  ``image_path``, each ``<object>`` a box from ``<name>`` and ``<bndbox>``;
  coordinates are taken as written (DeepForest's convention, no 1-based shift).
* **COCO JSON** (``.json`` with ``images``/``annotations``/``categories``):
  ``bbox = [x, y, width, height]`` becomes ``xmin = x, ymin = y,
  xmax = x + width, ymax = y + height``; when ``bbox`` is absent the box of a
  polygon ``segmentation`` is used. Category names are the labels and image
  ``file_name`` the ``image_path``.
* **Vector files** in map coordinates (``.shp``, ``.gpkg``, ``.geojson``,
  ``.fgb``, ``.gml``, or GeoJSON in ``.json``): each geometry's bounding box in
  the raster's CRS is converted to pixels with the raster's affine transform
  (:func:`deepforest_lite.geo.map_to_pixel`). Vectors in another CRS (e.g.
  longitude/latitude, EPSG:4326) are reprojected to the raster's CRS first;
  their bounding box is taken after reprojection.

Validation errors name the place: ``data row 3 of 'a.csv'`` (1-based data
rows, header excluded), ``object 2 in 'a.xml'``, ``annotation 5 (id 17) in
'c.json'``, ``feature 4 of 'b.gpkg'``, ``table row 2 (index 1)``. Unusable input
raises :class:`~deepforest_lite.errors.AnnotationError`, a label missing from
the label map :class:`~deepforest_lite.errors.LabelError`.

Images without objects
----------------------
A box table has one row per box, so an image with no objects (a negative
example for training) is not a row. Such images are listed, in file order, in
``table.attrs["empty_images"]`` (a list of ``image_path`` values, never one
that also has boxes). :func:`empty_images` returns that list,
:func:`image_paths` every image the table knows (images with boxes first, then
empty ones) and :func:`with_empty_images` returns a copy with images added.
pandas carries ``attrs`` through copies and row selections but not through
every operation (``pd.concat`` of tables with different ``attrs`` drops them):
re-attach them with :func:`with_empty_images` after such operations.

Empty images come from: DeepForest CSV rows whose four coordinates are all 0
(``image.png,0,0,0,0,Tree``; the row's label is ignored; if the same image
also has real boxes the row is simply dropped), VOC files without ``<object>``,
COCO images without annotations, and vector files without features.
:func:`write_annotations` writes them back as ``0,0,0,0`` rows, so
``read_annotations(write_annotations(t, p))`` round-trips.

:class:`~deepforest_lite.labels.LabelMap` (re-exported here) checks labels
against the classes a model knows. This module is torch-free.
"""

from __future__ import annotations

import json
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .boxes import (
    ANNOTATION_COLUMNS,
    BOX_COLUMNS,
    check_columns,
    empty_boxes,
    format_box,
    format_number,
    validate_boxes,
)
from .files import atomic_write
from .labels import LabelMap
from .errors import AnnotationError, ImageReadError, InvalidInputError, LabelError

__all__ = [
    "ANNOTATION_FORMATS",
    "LabelMap",
    "read_annotations",
    "write_annotations",
    "empty_images",
    "image_paths",
    "with_empty_images",
    "pixel_boxes_from_geometry",
]

#: Names accepted by ``read_annotations(..., file_format=...)``.
ANNOTATION_FORMATS: tuple[str, ...] = ("csv", "voc", "coco", "vector")

_VECTOR_SUFFIXES = (".shp", ".gpkg", ".geojson", ".fgb", ".gml")
_EMPTY_KEY = "empty_images"
_EDGE_TOLERANCE = 1e-6  # pixels a box may pass an image edge by without a warning


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


def read_annotations(
    path: str | os.PathLike[str] | pd.DataFrame,
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
            (checked like a CSV and returned as a new table).
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
        boxes are listed in ``attrs["empty_images"]`` (see :func:`empty_images`).

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
    if label_map is not None and not isinstance(label_map, LabelMap):
        label_map = LabelMap(label_map)
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise InvalidInputError(
            f"label must be a non-empty class name, got {label!r}; e.g. label='Tree'."
        )
    kind = "table"
    base_dir: str | None = None
    if isinstance(path, pd.DataFrame):
        raw = _raw_from_table(pixel_boxes_from_geometry(path, raster, "the annotation table"))
    else:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise AnnotationError(f"Annotation file {path!r} does not exist; check the path.")
        kind, data = _detect_format(path, file_format)
        base_dir = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        if kind == "vector":
            raw = _read_vector(
                path, raster=raster, label_column=label_column, label=label, layer=layer,
                image_path=image_path,
            )
        elif kind == "csv":
            raw = _read_csv(path, image_path=image_path, label=label)
        elif kind == "voc":
            raw = _read_voc(path, image_path=image_path)
        else:
            raw = _read_coco(path, data)
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


def pixel_boxes_from_geometry(
    table: pd.DataFrame, raster: str | os.PathLike[str] | None = None, what: str = "the table"
) -> pd.DataFrame:
    """DeepForest's tables and CSVs: fill missing ``xmin, ymin, xmax, ymax`` from the ``geometry`` column.

    DeepForest 2.x describes every annotation by a ``geometry`` (shapely
    object, or WKT text in a CSV) in image pixels, y down; its tables often
    carry ``xmin ... ymax`` as well, and then those are used and the geometry
    is left as it is (DeepForest's ``image_to_geo_coordinates`` puts map
    coordinates into ``geometry`` next to pixel columns). When the pixel
    columns are missing they become the geometry's bounds: directly for a
    table without a CRS (pixels, DeepForest's convention), and for a
    GeoDataFrame with a CRS (map coordinates) through ``raster``'s transform,
    reprojecting to the raster's CRS first.

    Returns:
        ``table`` itself when it has the pixel columns or no ``geometry``,
        else a copy with ``xmin, ymin, xmax, ymax`` (float64 px) added.

    Raises:
        AnnotationError: unreadable WKT, empty geometries, or map coordinates
            without a ``raster`` to convert them with.
    """
    if all(c in table.columns for c in BOX_COLUMNS) or "geometry" not in table.columns:
        return table
    import shapely

    values = table["geometry"]
    try:
        geoms = np.array(
            [shapely.from_wkt(v) if isinstance(v, str) else v for v in values], dtype=object
        )
        bounds = shapely.bounds(geoms).reshape(-1, 4) if len(geoms) else np.zeros((0, 4))
    except (shapely.errors.ShapelyError, TypeError) as exc:
        raise AnnotationError(
            f"{what} has no xmin, ymin, xmax, ymax columns and its geometry column cannot be read "
            f"({str(exc).splitlines()[0]}); give WKT polygons such as 'POLYGON ((30 20, 30 60, 10 60, 10 20, 30 20))'."
        ) from None
    if np.isnan(bounds).any():
        row = int(np.flatnonzero(np.isnan(bounds).any(axis=1))[0])
        raise AnnotationError(
            f"Row {row + 1} of {what} has an empty geometry and no xmin, ymin, xmax, ymax; "
            "remove it or draw its box."
        )
    crs = getattr(table, "crs", None) if hasattr(table, "geometry") else None
    out = pd.DataFrame(table).copy()
    if crs is not None:
        if raster is None:
            raise AnnotationError(
                f"{what} has geometries in map coordinates ({crs.name!r}) and no xmin, ymin, xmax, "
                "ymax pixel columns; pass raster= (the image they lie on) to convert them."
            )
        import geopandas as gpd
        from pyproj import CRS

        from .geo import map_to_pixel

        info = _raster_info(raster)
        if info["crs"] is None:
            raise AnnotationError(
                f"{what} is in {crs.name!r} but the raster {os.fspath(raster)!r} has no CRS; "
                "use a georeferenced raster, or give pixel xmin, ymin, xmax, ymax columns."
            )
        series = gpd.GeoSeries(list(geoms), crs=crs).to_crs(CRS.from_wkt(info["crs"]))
        b = np.asarray(series.bounds, dtype=np.float64).reshape(-1, 4)
        x1, y1 = map_to_pixel(info["transform"], b[:, 0], b[:, 3])
        x2, y2 = map_to_pixel(info["transform"], b[:, 2], b[:, 1])
        bounds = np.stack([np.minimum(x1, x2), np.minimum(y1, y2), np.maximum(x1, x2), np.maximum(y1, y2)], axis=1)
        if "image_path" not in out.columns:
            out["image_path"] = os.path.basename(os.fspath(raster))
    for j, column in enumerate(BOX_COLUMNS):
        out[column] = bounds[:, j]
    return out


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


def _raw_from_table(table: pd.DataFrame) -> _Raw:
    check_columns(table, ANNOTATION_COLUMNS, "annotation table")
    extras = [c for c in table.columns if c not in ANNOTATION_COLUMNS]
    frame = table[[*ANNOTATION_COLUMNS, *extras]].reset_index(drop=True).copy()
    where = [f"table row {i + 1} (index {idx!r})" for i, idx in enumerate(table.index)]
    return _Raw(
        frame, where, "the annotation table", empty=list(table.attrs.get(_EMPTY_KEY, [])),
        zero_rows_mark_empty=True,
    )


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
        ) from None
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


def _read_voc(path: str, *, image_path: str | None = None) -> _Raw:
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(".xml")
        )
        if not files:
            raise AnnotationError(
                f"The folder {path!r} holds no .xml files; pass a Pascal VOC file or a folder of them."
            )
    else:
        files = [path]
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    empty: list[str] = []
    declared: dict[str, tuple[float, float]] = {}
    for file in files:
        try:
            root = ET.parse(file).getroot()
        except ET.ParseError as exc:
            raise AnnotationError(
                f"Cannot parse {file!r} as XML ({exc}); check the file."
            ) from None
        if root.tag != "annotation":
            raise AnnotationError(
                f"{file!r} has the root element <{root.tag}>, not <annotation>; "
                "it is not a Pascal VOC file."
            )
        name = (root.findtext("filename") or "").strip() or (image_path or "")
        if not name:
            raise AnnotationError(
                f"{file!r} has no <filename>; add it or pass image_path= to name the image."
            )
        size = root.find("size")
        if size is not None:
            try:
                w, h = float(size.findtext("width", "")), float(size.findtext("height", ""))
            except ValueError:
                w = h = 0.0
            if w > 0 and h > 0:
                declared[name] = (w, h)
        objects = root.findall("object")
        if not objects:
            empty.append(name)
        for k, obj in enumerate(objects):
            here = f"object {k + 1} in {file!r}"
            box = obj.find("bndbox")
            if box is None:
                raise AnnotationError(
                    f"{here} has no <bndbox>; give it xmin, ymin, xmax, ymax or remove it."
                )
            row: dict[str, Any] = {"image_path": name, "label": _text_or_none(obj.findtext("name"))}
            for c in BOX_COLUMNS:
                row[c] = box.findtext(c)
            rows.append(row)
            where.append(here)
    frame = pd.DataFrame(rows, columns=ANNOTATION_COLUMNS)
    return _Raw(frame, where, path, empty=empty, declared_sizes=declared)


def _text_or_none(text: str | None) -> str | None:
    text = (text or "").strip()
    return text or None


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"Cannot parse {path!r} as JSON ({exc}); check the file.") from None


def _read_coco(path: str, data: Any = None) -> _Raw:
    if data is None:
        data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise AnnotationError(
            f"{path!r} is not a COCO file: it lacks the 'images' list; a COCO file has "
            "'images', 'annotations' and 'categories'."
        )
    images: dict[Any, dict[str, Any]] = {}
    declared: dict[str, tuple[float, float]] = {}
    for k, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not img.get("file_name"):
            raise AnnotationError(
                f"Image {k + 1} in {path!r} lacks an 'id' or 'file_name' ({img!r}); "
                "every COCO image needs both."
            )
        images[img["id"]] = img
        try:
            w, h = float(img.get("width", 0)), float(img.get("height", 0))
        except (TypeError, ValueError):
            w = h = 0.0
        if w > 0 and h > 0:
            declared[str(img["file_name"])] = (w, h)
    categories: dict[Any, str] = {}
    for k, cat in enumerate(data.get("categories") or []):
        if not isinstance(cat, dict) or "id" not in cat or not cat.get("name"):
            raise AnnotationError(
                f"Category {k + 1} in {path!r} lacks an 'id' or 'name' ({cat!r}); "
                "every COCO category needs both."
            )
        categories[cat["id"]] = str(cat["name"])
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    used: set[Any] = set()
    for k, ann in enumerate(data.get("annotations") or []):
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        here = f"annotation {k + 1} (id {ann_id!r}) in {path!r}"
        if not isinstance(ann, dict):
            raise AnnotationError(f"{here} is not a JSON object; each COCO annotation is an object.")
        if ann.get("image_id") not in images:
            raise AnnotationError(
                f"{here} refers to image_id {ann.get('image_id')!r}, which is not in 'images'; "
                "fix the image_id or add the image."
            )
        if ann.get("category_id") not in categories:
            raise AnnotationError(
                f"{here} has category_id {ann.get('category_id')!r}, which is not in 'categories' "
                f"(known ids {sorted(categories, key=str)}); fix the id or add the category."
            )
        xmin, ymin, xmax, ymax = _coco_box(ann, here)
        used.add(ann["image_id"])
        rows.append({
            "image_path": str(images[ann["image_id"]]["file_name"]),
            "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax,
            "label": categories[ann["category_id"]],
        })
        where.append(here)
    empty = [str(img["file_name"]) for i, img in images.items() if i not in used]
    frame = pd.DataFrame(rows, columns=ANNOTATION_COLUMNS)
    return _Raw(frame, where, path, empty=empty, declared_sizes=declared)


def _coco_box(ann: dict[str, Any], here: str) -> tuple[float, float, float, float]:
    bbox = ann.get("bbox")
    if bbox is None:
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg and all(isinstance(p, list) and p for p in seg):
            try:
                xy = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in seg])
            except (TypeError, ValueError):
                raise AnnotationError(
                    f"{here} has a polygon segmentation that is not a flat list of x, y numbers; fix it."
                ) from None
            return xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()
        raise AnnotationError(
            f"{here} has no 'bbox' (and no polygon segmentation to take one from); "
            "give it bbox = [x, y, width, height]."
        )
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise AnnotationError(f"{here} has bbox {bbox!r}; a COCO bbox is [x, y, width, height].")
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise AnnotationError(
            f"{here} has the non-numeric bbox {bbox!r}; "
            "a COCO bbox is four numbers [x, y, width, height]."
        ) from None
    return x, y, x + w, y + h


def _raster_info(raster: str | os.PathLike[str]) -> dict[str, Any]:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    raster = os.fspath(raster)
    if not os.path.exists(raster):
        raise ImageReadError(f"Raster {raster!r} does not exist; check the path.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(raster) as src:
                return {
                    "width": float(src.width), "height": float(src.height),
                    "transform": src.transform,
                    "crs": None if src.crs is None else src.crs.to_wkt(),
                }
    except RasterioIOError as exc:
        raise ImageReadError(
            f"Cannot open {raster!r} as a raster ({exc}); pass a GeoTIFF or image file."
        ) from None


def _read_vector(
    path: str, *, raster: str | os.PathLike[str] | None, label_column: str, label: str | None,
    layer: str | int | None, image_path: str | None,
) -> _Raw:
    import geopandas as gpd
    from pyproj import CRS

    from .geo import map_to_pixel

    if raster is None:
        raise AnnotationError(
            f"{path!r} holds coordinates in map units; pass raster= (the image they were drawn on) "
            "so they can be converted to pixels with its transform."
        )
    info = _raster_info(raster)
    try:
        gdf = gpd.read_file(path, layer=layer)
    except Exception as exc:  # pyogrio raises its own DataSourceError / DataLayerError
        raise AnnotationError(
            f"Cannot read {path!r} as a vector file ({exc}); check the file and layer=."
        ) from None
    raster_name = os.fspath(raster)
    raster_crs = None if info["crs"] is None else CRS.from_wkt(info["crs"])
    if gdf.crs is None and raster_crs is not None:
        raise AnnotationError(
            f"{path!r} has no CRS but the raster {raster_name!r} is in {raster_crs.name!r}; "
            "set the vector file's CRS (e.g. in QGIS, or gdf.set_crs(...)) "
            "so its coordinates can be placed."
        )
    if gdf.crs is not None and raster_crs is None:
        raise AnnotationError(
            f"{path!r} is in {gdf.crs.name!r} but the raster {raster_name!r} has no CRS; "
            "georeference the raster or give the vectors in its pixel grid without a CRS."
        )
    if gdf.crs is not None and not gdf.crs.equals(raster_crs):
        gdf = gdf.to_crs(raster_crs)
    where = [f"feature {i + 1} of {path!r}" for i in range(len(gdf))]
    geoms = gdf.geometry
    blank = geoms.isna() | geoms.is_empty
    if blank.any():
        i = int(np.flatnonzero(blank.to_numpy())[0])
        raise AnnotationError(
            f"{where[i]} has no geometry (empty or null); remove it or draw its shape."
        )
    if label is not None:
        labels: list[Any] = [label] * len(gdf)
    elif label_column in gdf.columns and label_column != gdf.geometry.name:
        labels = [None if _is_missing(v) else str(v) for v in gdf[label_column]]
    else:
        columns = [c for c in gdf.columns if c != gdf.geometry.name]
        raise AnnotationError(
            f"{path!r} has no column {label_column!r} for the labels (its columns are {columns}); "
            "pass label_column= naming the class column, or label='Tree' for one class."
        )
    bounds = geoms.bounds.to_numpy(dtype=np.float64).reshape(-1, 4)
    bad = ~np.isfinite(bounds).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise AnnotationError(
            f"{where[i]} could not be placed in the raster's CRS "
            f"(its coordinates became {bounds[i].tolist()}); "
            "check that the vector file's CRS matches its coordinates."
        )
    x1, y1 = map_to_pixel(info["transform"], bounds[:, 0], bounds[:, 3])
    x2, y2 = map_to_pixel(info["transform"], bounds[:, 2], bounds[:, 1])
    name = image_path if image_path is not None else os.path.basename(raster_name)
    frame = pd.DataFrame({
        "image_path": [name] * len(gdf),
        "xmin": np.minimum(x1, x2), "ymin": np.minimum(y1, y2),
        "xmax": np.maximum(x1, x2), "ymax": np.maximum(y1, y2),
        "label": labels,
    }, columns=ANNOTATION_COLUMNS)
    size = (info["width"], info["height"])
    return _Raw(
        frame, where, path, empty=[] if len(gdf) else [name], sizes={name: size},
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


def _header_size(file: str) -> tuple[float, float] | None:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(file) as src:
                return float(src.width), float(src.height)
    except Exception:  # an unreadable image only means the size is unknown here
        return None


def _size_lookup(
    raw: _Raw, base_dir: str | None, raster_size: tuple[str, tuple[float, float]] | None,
) -> Callable[[str], tuple[float, float] | None]:
    """Image size by precedence: the vector's raster, ``raster=`` by file name, the
    image header under ``base_dir``, the size the file declares; else unknown."""
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


def _more(n: int) -> str:
    return f" (and {n - 1} more)" if n > 1 else ""


def _finalize(
    raw: _Raw, label_map: LabelMap | None, size_of: Callable[[str], tuple[float, float] | None],
) -> pd.DataFrame:
    """Shared checks; returns the typed box table with ``attrs["empty_images"]``."""
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
    validate_boxes(coords, where=where, error=AnnotationError)
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
            UserWarning,
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
    with_boxes = set(images)
    out.attrs[_EMPTY_KEY] = [p for p in _unique(map(str, empty)) if p not in with_boxes]
    return out


# ----------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------


def write_annotations(
    table: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    empty_images: Iterable[str] | None = None,
    empty_label: str | None = None,
) -> str:
    """Write a box table as a DeepForest CSV, atomically; return the path written.

    The columns ``image_path, xmin, ymin, xmax, ymax, label`` come first
    (pixel coordinates, origin top-left, x = column, written in the shortest
    form that reads back to the same float), then ``table``'s other columns.
    Every image in ``table.attrs["empty_images"]`` or ``empty_images`` that has
    no box gets one row ``image_path,0,0,0,0,empty_label``, so that
    :func:`read_annotations` lists it as an empty image again.
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
    check_columns(table, ANNOTATION_COLUMNS, "annotation table")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"The folder {folder!r} for {path!r} does not exist; create it first."
        )
    raw = _raw_from_table(table)
    coords = np.empty((len(table), 4), dtype=np.float64)
    for j, c in enumerate(BOX_COLUMNS):
        numbers = pd.to_numeric(table[c], errors="coerce")
        coords[:, j] = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    problems = [
        (table["image_path"].map(_is_missing).to_numpy(dtype=bool), "has no image_path"),
        (table["label"].map(_is_missing).to_numpy(dtype=bool), "has no label"),
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
                f"({table.iloc[i][ANNOTATION_COLUMNS].tolist()}); fix or drop the row first."
            )
    frame = raw.frame
    for j, c in enumerate(BOX_COLUMNS):
        frame[c] = [format_number(v) for v in coords[:, j]]
    with_boxes = set(map(str, frame["image_path"]))
    listed = _unique([*table.attrs.get(_EMPTY_KEY, []), *map(str, empty_images or [])])
    negatives = [p for p in listed if p not in with_boxes]
    if negatives:
        if empty_label is None:
            empty_label = str(frame["label"].iloc[0]) if len(frame) else "Tree"
        rows = pd.DataFrame(
            {"image_path": negatives, **{c: ["0"] * len(negatives) for c in BOX_COLUMNS},
             "label": [empty_label] * len(negatives)}
        )
        frame = pd.concat([frame.astype(object), rows.astype(object)], ignore_index=True)
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n"))
    return path
