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
example for training) is not a row. :class:`AnnotationSet` holds both: its
``boxes`` (the box table) and its ``images``, every image it knows (those with
boxes in row order, then the empty ones); ``empty_images`` lists those
without boxes. :func:`read_annotation_set` reads any annotation input into
one, :meth:`AnnotationSet.concat` combines sets (their empty images too) and
:meth:`AnnotationSet.with_images` adds images. Where annotations are read,
written or trained on (:func:`write_annotations`, ``split_raster``,
``Detector.fit``, ``TrainingDataset``) an :class:`AnnotationSet` is accepted
as well as a path or a DataFrame.

:func:`read_annotations` returns a plain DataFrame (as DeepForest users
expect) that lists its empty images, in file order, in
``table.attrs["empty_images"]`` (never an image that also has boxes), and a
DataFrame passed in is read with the images it lists there.
:func:`empty_images` returns that list, :func:`image_paths` every image the
table knows and :func:`with_empty_images` returns a copy with images added.
pandas carries ``attrs`` through copies and row selections but not through
every operation (``pd.concat`` of tables with different ``attrs`` drops them):
use :class:`AnnotationSet` to keep them, or re-attach them with
:func:`with_empty_images`.

Empty images come from: DeepForest CSV rows whose four coordinates are all 0
(``image.png,0,0,0,0,Tree``; the row's label is ignored; if the same image
also has real boxes the row is simply dropped), VOC files without ``<object>``,
COCO images without annotations, and vector files without features.
:func:`write_annotations` (of a DataFrame or an :class:`AnnotationSet`) writes
them back as ``0,0,0,0`` rows, so ``read_annotation_set(write_annotations(s, p))``
round-trips.

:class:`~deepforest_lite.labels.LabelMap` (re-exported here) checks labels
against the classes a model knows. This module is torch-free.
Modules: :mod:`.read` (:func:`read_annotations` and the reader registry ``READERS``), one reader
per format (:mod:`.csvfile`, :mod:`.voc`, :mod:`.coco`, :mod:`.vector`), :mod:`.validate` (the shared
checks), :mod:`.write` (:func:`write_annotations`), :mod:`.annotation_set` (:class:`AnnotationSet`, and the
one place that reads and writes ``attrs["empty_images"]``) and :mod:`.raw`.
"""

from __future__ import annotations

from ..labels import LabelMap
from .annotation_set import AnnotationSet, empty_images, image_paths, with_empty_images
from .read import ANNOTATION_FORMATS, read_annotation_set, read_annotations
from .vector import pixel_boxes_from_geometry
from .write import write_annotations

__all__ = [
    "LabelMap",
    "ANNOTATION_FORMATS",
    "AnnotationSet",
    "read_annotations",
    "read_annotation_set",
    "write_annotations",
    "empty_images",
    "image_paths",
    "with_empty_images",
    "pixel_boxes_from_geometry",
]
