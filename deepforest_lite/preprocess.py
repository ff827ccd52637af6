"""Cutting a large raster into training tiles with their boxes. Torch-free.

:func:`split_raster` lays the same window grid over the raster as tiled
prediction does (:func:`deepforest_lite.windows.window_grid`), reads one
window at a time (:class:`deepforest_lite.raster.RasterSource`, so the raster
is never loaded whole) and writes every useful window as a tile, together
with a DeepForest CSV of the boxes in each tile's own pixel coordinates.

Coordinates: pixel boxes are ``xmin, ymin, xmax, ymax`` in float pixels with
the origin at the top-left corner of the image, x the column and y the row,
``xmax``/``ymax`` exclusive. A box at ``(x, y)`` in the raster is at
``(x - col_off, y - row_off)`` in the tile cut at column ``col_off``, row
``row_off``.

This module plans the cut (checks, the grid, the scale) and runs it; each
tile's boxes come from :mod:`deepforest_lite.tileboxes`, the files (folder,
tile names, tiles) from :mod:`deepforest_lite.tilefiles`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .annotations import AnnotationSet, write_annotations
from .boxes import box_areas, empty_boxes
from .compat import check_raster_first, deepforest_keywords
from .errors import ImageReadError, InvalidInputError, SplitWarning
from .files import write_errors
from .raster import RasterSource
from .tileboxes import AREA_COLUMN, DEFAULT_MIN_VISIBLE, SOURCE_ROW, check_min_visible, raster_boxes, window_boxes
from .tilefiles import IMAGE_FORMATS, check_format, check_out_dir, refuse_overwriting_input, tile_name, write_tile
from .windows import Window, window_grid

__all__ = ["DEFAULT_MIN_VISIBLE", "IMAGE_FORMATS", "SplitResult", "split_raster", "tile_name"]


@dataclass(frozen=True, eq=False)  # holds a DataFrame, which has no plain ==
class SplitResult:
    """What :func:`split_raster` wrote.

    Attributes:
        annotation_set: the tiles' annotations
            (:class:`~deepforest_lite.annotations.AnnotationSet`). Its ``boxes``
            (``image_path, xmin, ymin, xmax, ymax, label`` plus any extra
            columns of the input annotations) has one row per kept box, in tile
            order then input order; ``image_path`` is the tile's file name
            (relative to ``out_dir``) and coordinates are pixels of that tile
            (origin top-left, x = column). Tiles written without boxes
            (``allow_empty=True``) are its ``empty_images``. Without input
            annotations it is an empty box table that lists nothing.
        annotations: (property) ``annotation_set`` as a DataFrame, the boxes
            with the empty tiles listed in ``attrs["empty_images"]`` (as
            :func:`~deepforest_lite.annotations.read_annotations` returns).
        csv_path: the DeepForest CSV written (``<out_dir>/<raster stem>.csv``),
            or ``None`` when no annotations were given.
        tiles: every tile file written, in grid order (rows, then columns).
        windows: the source window of each tile, in the same order
            (``tiles[i]`` holds the raster's pixels ``windows[i]``).
        skipped_nodata: windows not written because they hold no data (every
            pixel nodata or black, the rule tile prediction skips windows by).
        skipped_empty: windows with data but no kept box, not written because
            ``allow_empty`` was False.
        gsd: the tiles' GSD in metres (``gsd`` when given, else the raster's
            mean pixel size), or ``None`` when unknown.
    """

    annotation_set: AnnotationSet
    csv_path: Path | None
    tiles: list[Path] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    skipped_nodata: int = 0
    skipped_empty: int = 0
    gsd: float | None = None

    @cached_property
    def annotations(self) -> pd.DataFrame:
        """The tiles' box table, listing the tiles without boxes in ``attrs["empty_images"]``."""
        return self.annotation_set.to_table()


@deepforest_keywords(
    aliases={"path_to_raster": "raster", "annotations_file": "annotations", "save_dir": "out_dir"}
)
def split_raster(
    raster: str | os.PathLike[str],
    annotations: str | os.PathLike[str] | pd.DataFrame | AnnotationSet | None = None,
    patch_size: int = 400,
    patch_overlap: float = 0.05,
    *,
    out_dir: str | os.PathLike[str],
    allow_empty: bool = False,
    image_format: str = "tif",
    min_visible: float = DEFAULT_MIN_VISIBLE,
    bands: Sequence[int] | None = None,
    value_range: Sequence[float] | Sequence[Sequence[float]] | None = None,
    image_name: str | None = None,
    label_column: str = "label",
    label: str | None = None,
    layer: str | int | None = None,
    progress: bool = True,
    gsd: float | None = None,
) -> SplitResult:
    """Cut a large raster into training tiles and write each tile's boxes as a DeepForest CSV.

    DeepForest's keywords work: ``path_to_raster=`` (``raster``),
    ``annotations_file=`` (``annotations``) and ``save_dir=`` (``out_dir``).
    DeepForest's positional order (annotations first) is refused with a hint.

    **Windows.** The tiles are the windows of
    :func:`~deepforest_lite.windows.window_grid` for ``patch_size`` and
    ``patch_overlap``, exactly those tiled prediction uses: ``patch_size`` x
    ``patch_size`` px (a raster smaller than that on one side gives tiles the
    raster's size on that side), neighbours sharing
    ``floor(patch_size * patch_overlap)`` px, the last row and column flush with
    the raster's far edges. Windows are read one at a time. A window with no
    data (every pixel nodata or black, :meth:`RasterSource.is_empty
    <deepforest_lite.raster.RasterSource.is_empty>`) is never written.

    **Pixels.** Tiles hold what prediction would see: ``uint8`` RGB after the
    band and dtype rules of :mod:`deepforest_lite.raster` (``bands`` picks the
    RGB bands; ``uint8`` is copied as is; 16-bit and float data are scaled by
    the raster-wide percentile stretch, or by ``value_range``, clipped to
    0..255 and never wrapped).

    **Files.** In ``out_dir`` (created if missing), tile ``<stem>_<col_off>_<row_off>.<ext>``
    (see :func:`tile_name`), where ``col_off``/``row_off`` is the tile's top-left
    pixel in the raster. ``image_format="tif"`` writes a deflate-compressed
    3-band GeoTIFF that keeps the georeferencing: the raster's CRS and the
    transform ``raster.transform @ Affine.translation(col_off, row_off)``, so
    it lies exactly over its window in a GIS; pixels without data in a tile
    that also has data are marked in an internal mask. ``"png"`` writes a plain
    RGB PNG without georeferencing or mask. With annotations, the boxes go to
    ``<out_dir>/<stem>.csv`` (DeepForest format, ``image_path`` = tile file
    name). Each tile is written under a
    temporary name and renamed when complete, the CSV atomically by
    :func:`~deepforest_lite.annotations.write_annotations`, so no file is ever
    partial. Existing files of the same names are replaced.

    **Boxes.** Each box is shifted into the tile's pixels and clipped to the
    tile. A box cut by a tile edge is kept (clipped) in that tile when at least
    ``min_visible`` of its area lies inside the tile, and dropped from it
    otherwise; boxes wholly inside are always kept. The default 0.5 weighs the
    two ways a cut object harms training: a kept sliver teaches the network to
    call a small fragment a whole crown (and its box regression to shrink),
    while a dropped box leaves a visible, unlabelled object that is trained as
    background. Keeping a box when most of it is visible keeps the larger share
    of each object correctly labelled, and an object cut in half still appears
    whole (or mostly) in the overlapping neighbour tile. Use ``min_visible=1``
    to keep only whole boxes, a small value (e.g. 0.1) to keep nearly every
    fragment. A warning names the boxes that end up in no tile (objects larger
    than a tile, or lying only in no-data windows).

    **Empty tiles.** With ``allow_empty=False`` (default) a window without a
    kept box is not written; with ``True`` it is written and listed as an empty
    image (a ``<tile>,0,0,0,0,<label>`` row in the CSV), a negative example for
    training.

    Args:
        raster: a GeoTIFF (or any image GDAL reads) in pixel rows x columns.
        annotations: the boxes, in the raster's pixels or map coordinates: a
            path to any file :func:`~deepforest_lite.annotations.read_annotations`
            reads (DeepForest CSV, Pascal VOC, COCO JSON, or a shapefile /
            GeoPackage / GeoJSON in map coordinates, converted with the raster's
            transform), a box table or an
            :class:`~deepforest_lite.annotations.AnnotationSet`. When they cover several images, the
            rows whose ``image_path`` has the raster's file name are used (the
            directory part is ignored). ``None`` cuts unlabelled tiles (every
            window with data, e.g. to annotate or predict later): no CSV is
            written and ``allow_empty`` does not matter.
        patch_size: tile side in px (> 0).
        patch_overlap: fraction of the tile side shared by neighbours, in [0, 1).
        out_dir: folder the tiles and the CSV are written to.
        allow_empty: also write tiles without boxes, as negative examples.
        image_format: ``"tif"`` (georeferenced GeoTIFF) or ``"png"``.
        min_visible: fraction of a box's area, in [0, 1], that must lie inside a
            tile for the box to be kept (clipped) there; 0 keeps every box that
            overlaps the tile.
        bands: three 1-based band numbers read as red, green, blue (needed for
            rasters with more than three non-alpha bands).
        value_range: fixed ``(low, high)`` (or three pairs, one per band) mapped
            to 0..255 instead of the percentile stretch of non-``uint8`` data.
        image_name: the ``image_path`` under which the annotations list this
            raster, when it differs from the raster's file name (e.g. a CSV
            written for ``ortho.png`` used with ``ortho.tif``).
        label_column: vector files: the attribute column holding class names.
        label: one class name for every box (e.g. for a vector file without a
            class column).
        layer: vector files: the layer to read.
        progress: show a progress bar (tqdm, on stderr) when there is more than
            one window.
        gsd: the tiles' ground sample distance in metres per pixel, e.g. 0.1
            to train a 10 cm model from 3 cm drone imagery. The raster's GSD
            is read from its transform (see :mod:`deepforest_lite.gsd`); when
            it differs by more than 10 %, the grid's windows are ``patch_size
            * gsd / raster_gsd`` raster pixels a side, each is read resampled
            to ``patch_size`` px (average when shrinking, bilinear when
            enlarging), its boxes are scaled with it and a GeoTIFF tile's
            transform states the new pixel size. Tile names keep the window's
            offset in raster pixels. ``None`` cuts at the raster's own GSD.

    Returns:
        A :class:`SplitResult`: the tiles' box table, the CSV path, the tile
        files with their source windows, and the counts of skipped windows.
        Train on it with ``read_annotations(result.csv_path)`` (image paths
        are relative to ``out_dir``, the CSV's folder).

    Raises:
        InvalidInputError: a bad ``patch_size``, ``patch_overlap``,
            ``min_visible``, ``image_format`` or ``out_dir``.
        ImageReadError: the raster is missing or unreadable.
        RasterError: the raster cannot be read as RGB (band count, dtype).
        AnnotationError: unreadable annotations, or none for this raster (the
            message lists the image names found).
    """
    check_raster_first(raster, annotations)
    ext = check_format(image_format)
    check_min_visible(min_visible)
    if not isinstance(allow_empty, (bool, np.bool_)):
        raise InvalidInputError(f"allow_empty must be True or False, got {allow_empty!r}.")
    raster = os.fspath(raster)
    if not os.path.isfile(raster):
        raise ImageReadError(f"Raster {raster!r} does not exist or is not a file; check the path.")
    folder = check_out_dir(out_dir)
    stem = Path(raster).stem
    csv_path = folder / f"{stem}.csv" if annotations is not None else None
    if csv_path is not None:
        refuse_overwriting_input(annotations, csv_path)

    with RasterSource(raster, bands=bands, value_range=value_range) as source:
        grid = _gsd_grid(source, gsd, patch_size, patch_overlap)
        windows = grid.windows if grid is not None else window_grid(source.height, source.width, patch_size, patch_overlap)
        table = None
        if annotations is not None:
            table = raster_boxes(
                annotations, raster, image_name=image_name, label_column=label_column,
                label=label, layer=layer,
            )
        with write_errors(folder):
            folder.mkdir(parents=True, exist_ok=True)
        result = _cut(source, windows, table, folder, ext, allow_empty, float(min_visible), progress, grid)
        result = dataclasses.replace(result, gsd=_tiles_gsd(source, grid, gsd))

    if table is not None and csv_path is not None:
        first_label = str(table["label"].iloc[0]) if len(table) else None
        write_annotations(result.annotation_set, csv_path, empty_label=first_label)
        result = dataclasses.replace(result, csv_path=csv_path)
    if not result.tiles:
        why = "every window is empty of data" if result.skipped_empty == 0 else (
            "no window holds a kept box; pass allow_empty=True to write tiles without boxes"
        )
        warnings.warn(f"split_raster wrote no tiles for {raster!r}: {why}.", SplitWarning, stacklevel=2)
    return result


# -- scale --------------------------------------------------------------------


def _gsd_grid(source: RasterSource, gsd: float | None, patch_size: int, patch_overlap: float) -> Any:
    """The resampled grid for a target ``gsd`` (:class:`deepforest_lite.gsd.ScaledGrid`), or ``None``."""
    from .gsd import check_gsd, plan_scale, scaled_grid

    target = check_gsd(gsd)
    if target is None:
        return None
    if source.gsd is None:
        raise InvalidInputError(
            f"gsd={target!r} needs the raster's own pixel size, but {source.path!r} has no usable GSD "
            "(no CRS in metres, feet or degrees); assign its CRS and transform first (e.g. gdal_edit.py -a_srs "
            "-a_ullr), or cut it without gsd."
        )
    scale = plan_scale(target, source.gsd)
    if not scale.rescaled:
        return None
    return scaled_grid(source.height, source.width, patch_size, patch_overlap, scale.factor)


def _tiles_gsd(source: RasterSource, grid: Any, gsd: float | None) -> float | None:
    if grid is not None or gsd is not None:
        return float(gsd) if gsd is not None else None
    found = source.gsd
    return None if found is None else (found[0] + found[1]) / 2


# -- cutting ------------------------------------------------------------------


def _cut(
    source: RasterSource,
    windows: list[Window],
    table: pd.DataFrame | None,
    folder: Path,
    ext: str,
    allow_empty: bool,
    min_visible: float,
    progress: bool,
    grid: Any = None,
) -> SplitResult:
    """Write the tiles; returns the result without the CSV path.

    ``grid``: a :class:`deepforest_lite.gsd.ScaledGrid` whose windows are read
    resampled to its output size (boxes scaled with them), or ``None``.
    """
    out_shape = None if grid is None else grid.out_shape
    to_raster = (1.0, 1.0) if grid is None else grid.to_raster
    from tqdm import tqdm

    labelled = table is not None
    boxes = table if table is not None else empty_boxes(scores=False)
    coords = boxes[["xmin", "ymin", "xmax", "ymax"]].to_numpy(dtype=np.float64).reshape(-1, 4)
    full_area = box_areas(boxes)
    used = np.zeros(len(boxes), dtype=bool)
    parts: list[pd.DataFrame] = []
    empty_tiles: list[str] = []
    tiles: list[Path] = []
    written: list[Window] = []
    skipped_nodata = skipped_empty = 0
    bar = tqdm(
        windows, desc=f"cutting {Path(source.path).name}", unit="window", file=sys.stderr,
        disable=not progress or len(windows) <= 1, leave=False,
    )
    band_rows: tuple[int, int] | None = None
    in_band = np.arange(len(coords))
    for window in bar:
        x0, y0, x1, y1 = window.bounds
        if band_rows != (y0, y1):  # windows come row by row: find the boxes of each band once
            band_rows = (y0, y1)
            in_band = np.flatnonzero((coords[:, 1] < y1) & (coords[:, 3] > y0))
        band = coords[in_band]
        inside = in_band[(band[:, 0] < x1) & (band[:, 2] > x0)]
        kept = window_boxes(boxes, inside, full_area, window, min_visible)
        if len(kept) == 0 and labelled and not allow_empty:
            skipped_empty += 1
            continue
        rgb, empty = source.read_window_checked(window, out_shape=out_shape)
        if empty:
            skipped_nodata += 1
            continue
        name = tile_name(source.path, window, ext)
        valid = source.valid_mask(window, out_shape=out_shape) if ext == "tif" else None
        path = write_tile(rgb, folder / name, ext, source, window, valid, to_raster)
        if grid is not None and len(kept):  # tile pixels are raster pixels / to_raster
            kept[["xmin", "xmax"]] = kept[["xmin", "xmax"]].to_numpy(np.float64) / to_raster[0]
            kept[["ymin", "ymax"]] = kept[["ymin", "ymax"]].to_numpy(np.float64) / to_raster[1]
        tiles.append(path)
        written.append(window)
        if len(kept):
            used[kept.pop(SOURCE_ROW).to_numpy()] = True
            kept["image_path"] = name
            parts.append(kept)
        elif labelled:
            empty_tiles.append(name)
    bar.close()

    if parts:
        out = pd.concat(parts, ignore_index=True)
    else:
        out = boxes.iloc[0:0].drop(columns=[AREA_COLUMN], errors="ignore").reset_index(drop=True)
    out["image_path"] = out["image_path"].astype(empty_boxes(scores=False)["image_path"].dtype)
    missed = int((~used).sum()) if labelled else 0
    if missed:
        first = boxes.iloc[int(np.flatnonzero(~used)[0])]
        warnings.warn(
            f"{missed} of {len(boxes)} box(es) are in no tile, the first "
            f"({first['xmin']:g}, {first['ymin']:g}, {first['xmax']:g}, {first['ymax']:g}) px: "
            f"less than min_visible={min_visible:g} of it lies in any {source.path!r} window "
            "with data; use a larger patch_size or patch_overlap, or a smaller min_visible.",
            SplitWarning,
            stacklevel=3,
        )
    return SplitResult(AnnotationSet(out, tuple(empty_tiles)), None, tiles, written, skipped_nodata, skipped_empty)
