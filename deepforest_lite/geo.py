"""Pixel <-> map coordinates through a raster's affine transform, and box files. Torch-free.

Pixel coordinates are continuous: ``(x, y) = (0, 0)`` is the top-left corner
of the top-left pixel, x grows along columns, y along rows. Map coordinates
are the raster CRS's units. The conversion is the affine transform itself
(``x_map = a * x + b * y + c``, ``y_map = d * x + e * y + f``), never bounds
plus resolution, so non-square pixels work; rotated or sheared transforms
(``b != 0`` or ``d != 0``) are refused because an axis-aligned pixel box would
not be an axis-aligned map box.

A box in map coordinates has ``map_xmin < map_xmax`` and ``map_ymin <
map_ymax`` whatever the signs of ``a`` and ``e``: on a usual north-up raster
(``e < 0``) the pixel box's top edge ``ymin`` becomes ``map_ymax``.

:func:`write_boxes` writes a box table to ``.csv``, ``.gpkg``, ``.geojson``
or ``.shp`` (chosen by the file extension) atomically, in the CRS
:func:`output_crs` picks: the table's own (the raster's) by default,
WGS84 longitude/latitude for GeoJSON (RFC 7946), or any CRS asked for.
A CSV keeps DeepForest's layout (``geometry`` is the *pixel* box as WKT),
holds the map coordinates in the :data:`MAP_COLUMNS` and names their CRS in
a ``map_crs`` column (:func:`csv_table`). geopandas, shapely and pyproj are
imported only when a function needs them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from affine import Affine

from .boxes import BOX_COLUMNS, check_columns
from .errors import InvalidInputError, RasterError, WriteError
from .files import atomic_write_files, is_disk_full

if TYPE_CHECKING:  # pragma: no cover
    import geopandas as gpd

__all__ = [
    "MAP_COLUMNS",
    "VECTOR_DRIVERS",
    "SUPPORTED_EXTENSIONS",
    "check_north_up",
    "pixel_to_map",
    "map_to_pixel",
    "boxes_to_map",
    "boxes_to_pixels",
    "write_boxes",
    "output_crs",
    "reproject_boxes",
    "csv_table",
    "KEEP_CRS",
    "MAP_CRS_COLUMN",
]

#: map-coordinate columns added by :func:`boxes_to_map`, in the raster CRS's units
MAP_COLUMNS: list[str] = ["map_xmin", "map_ymin", "map_xmax", "map_ymax"]
#: vector file extension -> OGR driver used by :func:`write_boxes`
VECTOR_DRIVERS: dict[str, str] = {
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".shp": "ESRI Shapefile",
}
#: ``crs`` value of :func:`write_boxes` (and ``--crs``) that keeps the table's (the raster's) CRS
KEEP_CRS: str = "raster"
#: CSV column naming the CRS of the map-coordinate columns (an ``EPSG:xxxx`` string, or WKT)
MAP_CRS_COLUMN: str = "map_crs"
#: the CRS of RFC 7946 GeoJSON: WGS84 longitude, latitude
WGS84: str = "EPSG:4326"
#: every extension :func:`write_boxes` accepts
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".csv", *VECTOR_DRIVERS)
#: files that make up one shapefile besides the ``.shp`` itself
_SHAPEFILE_SIDECARS: tuple[str, ...] = (".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")


def check_north_up(transform: Affine) -> None:
    """Raise :class:`RasterError` unless ``transform`` has no rotation or shear terms."""
    if transform.b != 0 or transform.d != 0:
        raise RasterError(
            f"The raster's transform is rotated or sheared ({tuple(transform)[:6]}); "
            "warp it to a north-up grid first, e.g. with `gdalwarp`."
        )
    if transform.a == 0 or transform.e == 0:
        raise RasterError(
            f"The raster's transform has a zero pixel size ({tuple(transform)[:6]}); "
            "the file's georeferencing is broken, fix it with `gdal_edit.py -a_ullr` or `-a_srs`."
        )


def pixel_to_map(transform: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of pixel coordinates ``(x, y)`` (arrays of equal shape)."""
    check_north_up(transform)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return transform.a * x + transform.c, transform.e * y + transform.f


def map_to_pixel(transform: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of map coordinates ``(x, y)``; the exact inverse of :func:`pixel_to_map`."""
    check_north_up(transform)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return (x - transform.c) / transform.a, (y - transform.f) / transform.e


def boxes_to_map(table: pd.DataFrame, transform: Affine, crs: Any = None) -> gpd.GeoDataFrame:
    """Add map coordinates, box polygons and the CRS to a pixel box table.

    Args:
        table: box table with ``xmin, ymin, xmax, ymax`` in pixels of the raster
            (origin top-left, x = column); other columns are kept.
        transform: the raster's north-up affine transform (pixel -> map).
        crs: the raster's CRS (anything :mod:`pyproj` accepts, e.g. a
            :class:`rasterio.crs.CRS` or ``"EPSG:32617"``), or ``None``.

    Returns:
        A :class:`geopandas.GeoDataFrame` with the table's columns, the
        :data:`MAP_COLUMNS` (floats in CRS units, ``map_xmin < map_xmax``,
        ``map_ymin < map_ymax``), a ``geometry`` column of rectangle polygons
        in map units and ``crs`` set. An empty table gives an empty frame with
        the same columns.
    """
    import geopandas as gpd
    import shapely

    check_columns(table, BOX_COLUMNS)
    if not isinstance(transform, Affine):
        raise InvalidInputError(
            f"transform must be an affine.Affine, got {type(transform).__name__}; "
            "pass the raster's transform (e.g. RasterSource(path).transform)."
        )
    check_north_up(transform)
    x0, y0 = pixel_to_map(transform, table["xmin"].to_numpy(), table["ymin"].to_numpy())
    x1, y1 = pixel_to_map(transform, table["xmax"].to_numpy(), table["ymax"].to_numpy())
    out = pd.DataFrame(table).drop(columns=[*MAP_COLUMNS, "geometry"], errors="ignore")
    out = out.reset_index(drop=True)
    out["map_xmin"] = np.minimum(x0, x1)
    out["map_ymin"] = np.minimum(y0, y1)
    out["map_xmax"] = np.maximum(x0, x1)
    out["map_ymax"] = np.maximum(y0, y1)
    geometry = shapely.box(
        out["map_xmin"].to_numpy(),
        out["map_ymin"].to_numpy(),
        out["map_xmax"].to_numpy(),
        out["map_ymax"].to_numpy(),
    )
    return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geometry, crs=crs), crs=crs)


def boxes_to_pixels(table: pd.DataFrame, transform: Affine) -> pd.DataFrame:
    """Pixel boxes of a table in map coordinates; the inverse of :func:`boxes_to_map`.

    Args:
        table: a table with the :data:`MAP_COLUMNS`, or else a GeoDataFrame
            whose geometry bounds are used (in the raster's CRS units).
        transform: the raster's north-up affine transform (pixel -> map).

    Returns:
        A copy of ``table`` whose ``xmin, ymin, xmax, ymax`` are pixels of the
        raster (origin top-left, x = column, ``xmin < xmax``, ``ymin < ymax``).
    """
    check_north_up(transform)
    if isinstance(table, pd.DataFrame) and all(c in table.columns for c in MAP_COLUMNS):
        bounds = table[MAP_COLUMNS].to_numpy(dtype=np.float64).reshape(-1, 4)
    elif hasattr(table, "geometry") and hasattr(table, "crs"):
        bounds = np.asarray(table.geometry.bounds, dtype=np.float64).reshape(-1, 4)
    else:
        raise InvalidInputError(
            f"boxes_to_pixels needs the columns {MAP_COLUMNS} or a GeoDataFrame, got a "
            f"{type(table).__name__} with columns {list(getattr(table, 'columns', []))}; "
            "pass the table boxes_to_map returned or one read with geopandas."
        )
    px0, py0 = map_to_pixel(transform, bounds[:, 0], bounds[:, 1])
    px1, py1 = map_to_pixel(transform, bounds[:, 2], bounds[:, 3])
    out = table.copy()
    out["xmin"] = np.minimum(px0, px1)
    out["ymin"] = np.minimum(py0, py1)
    out["xmax"] = np.maximum(px0, px1)
    out["ymax"] = np.maximum(py0, py1)
    return out


def output_crs(ext: str, table_crs: Any, crs: Any = None) -> Any:
    """The CRS a box file is written in (a :class:`pyproj.CRS`, or ``None`` for pixel tables).

    Args:
        ext: the file extension (``".csv"``, ``".gpkg"``, ``".geojson"``, ``".shp"``).
        table_crs: the box table's CRS (the raster's), or ``None``.
        crs: ``None`` (default rule), :data:`KEEP_CRS` (``"raster"``: the
            table's own), or any CRS :mod:`pyproj` reads (``"EPSG:32617"``,
            ``4326``, WKT): every box is reprojected to it.

    The default rule: the table's CRS, except GeoJSON, which RFC 7946 fixes to
    WGS84 longitude/latitude (``EPSG:4326``).

    Raises:
        InvalidInputError: ``crs`` is not a CRS pyproj knows, or a CRS is asked
            for a table without one (pixel boxes cannot be reprojected).
    """
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    own = None if table_crs is None else CRS.from_user_input(table_crs)
    if crs is None:
        return CRS.from_user_input(WGS84) if ext == ".geojson" and own is not None else own
    if isinstance(crs, str) and crs.strip().lower() == KEEP_CRS:
        return own
    try:
        target = CRS.from_user_input(crs)
    except CRSError:
        raise InvalidInputError(
            f"Unknown CRS {crs!r}; give one pyproj reads, e.g. 'EPSG:32617' or 'EPSG:4326', "
            f"or {KEEP_CRS!r} to keep the raster's."
        ) from None
    if own is None:
        raise InvalidInputError(
            f"Cannot write the boxes in {target.to_string()!r}: they have no CRS (the raster is not "
            "georeferenced), so there is nothing to reproject from; leave the CRS out."
        )
    return target


def reproject_boxes(table: gpd.GeoDataFrame, crs: Any) -> gpd.GeoDataFrame:
    """A copy of a georeferenced box table in another CRS.

    The box polygons are reprojected corner by corner (:meth:`geopandas.GeoDataFrame.to_crs`)
    and the :data:`MAP_COLUMNS` become their bounds in the new CRS's units, so
    map columns and geometry always agree; the pixel columns are unchanged.
    A table already in ``crs`` is returned as a copy.
    """
    from pyproj import CRS

    target = CRS.from_user_input(crs)
    if table.crs is None:
        raise InvalidInputError(
            f"Cannot reproject the boxes to {target.to_string()!r}: the table has no CRS; "
            "make it with boxes_to_map(table, transform, crs) first."
        )
    if table.crs.equals(target):
        return table.copy()
    out = table.to_crs(target)
    bounds = np.asarray(out.geometry.bounds, dtype=np.float64).reshape(-1, 4)
    for j, column in enumerate(MAP_COLUMNS):
        out[column] = bounds[:, j]
    return out


def csv_table(table: pd.DataFrame, crs: Any = None) -> pd.DataFrame:
    """The plain table :func:`write_boxes` writes to CSV: DeepForest's layout plus map columns.

    * ``geometry``, when the table has one, becomes the **pixel** box
      ``POLYGON ((xmax ymin, xmax ymax, xmin ymax, xmin ymin, xmax ymin))`` as
      WKT, exactly as DeepForest writes it (``shapely.box(xmin, ymin, xmax,
      ymax)``), so DeepForest's ``read_file`` and ``evaluate_boxes`` see the same
      boxes as the ``xmin ... ymax`` columns;
    * a georeferenced table keeps its map coordinates in the
      :data:`MAP_COLUMNS` (reprojected to ``crs`` when one is given, see
      :func:`output_crs`) and gets a :data:`MAP_CRS_COLUMN` column naming their
      CRS (``"EPSG:32617"``; WKT for a CRS without an EPSG code).
    """
    import shapely

    check_columns(table, BOX_COLUMNS)
    table_crs = getattr(table, "crs", None) if _has_geometry(table) else None
    target = output_crs(".csv", table_crs, crs)
    if table_crs is not None and target is not None:
        table = reproject_boxes(table, target)
    out = pd.DataFrame(table).copy()
    if "geometry" in out.columns:
        coords = out[BOX_COLUMNS].to_numpy(dtype=np.float64).reshape(-1, 4)
        out["geometry"] = shapely.to_wkt(shapely.box(*coords.T), rounding_precision=-1) if len(out) else pd.Series(dtype=object)
    if target is not None:
        epsg = target.to_epsg()
        out[MAP_CRS_COLUMN] = f"EPSG:{epsg}" if epsg is not None else target.to_wkt()
    return out


def write_boxes(table: pd.DataFrame, path: str | os.PathLike, *, crs: Any = None) -> Path:
    """Write a box table to ``path``, in the format its extension names, atomically.

    Formats: ``.csv`` (any box table, in DeepForest's layout; see
    :func:`csv_table`: ``geometry`` is the pixel box as WKT, map coordinates
    are in the :data:`MAP_COLUMNS` and their CRS in ``map_crs``), ``.gpkg``,
    ``.geojson`` and ``.shp`` (a GeoDataFrame with a geometry column, e.g.
    from :func:`boxes_to_map`; the file carries its CRS). The extension is
    matched case-insensitively. The folder is created if needed.

    CRS (:func:`output_crs`): by default the table's own, except ``.geojson``,
    which follows RFC 7946: WGS84 longitude/latitude, no ``crs`` member,
    counter-clockwise outer rings. ``crs="raster"`` keeps the table's CRS for
    every format (a GeoJSON then carries the older ``crs`` member, which RFC
    7946 readers such as web maps ignore); ``crs="EPSG:xxxx"`` (anything
    :mod:`pyproj` reads) reprojects every box, the map columns included.

    The file is first written into a temporary folder beside ``path`` and then
    moved into place (:func:`~deepforest_lite.files.atomic_write_files`), so
    ``path`` is either the old file or the complete new one, never a partial
    write; the temporary folder is removed whether the write succeeds or
    fails. A failed write (a full disk, a read-only folder) or a folder at
    ``path`` raises :class:`~deepforest_lite.errors.WriteError`. A shapefile's
    sidecar files (``.shx``, ``.dbf``, ``.prj``, ``.cpg``) are moved first and
    the ``.shp`` last, all or none; stale sidecars of an older shapefile of the
    same name that the new write did not produce are removed.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if path.is_dir():
        raise WriteError(f"Cannot write boxes to {str(path)!r}: it is a folder; give a file name.")
    if ext not in SUPPORTED_EXTENSIONS:
        raise InvalidInputError(
            f"Cannot write boxes to {str(path)!r}: unknown extension {path.suffix!r}; "
            f"use one of {list(SUPPORTED_EXTENSIONS)}."
        )
    check_columns(table, BOX_COLUMNS)
    if ext != ".csv" and not _has_geometry(table):
        raise InvalidInputError(
            f"Cannot write {str(path)!r}: a {ext} file holds geometries in map coordinates but the "
            "box table has no geometry column; convert it with "
            "geo.boxes_to_map(table, transform, crs) first, or write a .csv file."
        )
    rfc7946 = False
    if ext == ".csv":
        table = csv_table(table, crs)
    else:
        target = output_crs(ext, table.crs, crs)
        if target is not None:
            table = reproject_boxes(table, target)
            rfc7946 = ext == ".geojson" and target.equals(WGS84)
    sidecars = _SHAPEFILE_SIDECARS if ext == ".shp" else ()
    atomic_write_files(path, lambda tmp: _write(table, Path(tmp), ext, rfc7946), sidecars=sidecars)
    return path


def _has_geometry(table: pd.DataFrame) -> bool:
    import geopandas as gpd

    if not isinstance(table, gpd.GeoDataFrame):
        return False
    name = table._geometry_column_name  # the active geometry column, if any
    return name is not None and name in table.columns


def _write(table: pd.DataFrame, tmp: Path, ext: str, rfc7946: bool = False) -> None:
    if ext == ".csv":
        pd.DataFrame(table).to_csv(tmp, index=False)
        return
    # an empty layer has no geometry to infer its type from: boxes are polygons
    kwargs: dict[str, Any] = {"geometry_type": "Polygon"} if len(table) == 0 else {}
    if rfc7946:  # GDAL then writes no crs member and orients rings as RFC 7946 says
        kwargs["layer_options"] = {"RFC7946": "YES"}
    frame: gpd.GeoDataFrame = table  # a vector format: write_boxes checked its geometry column
    try:
        frame.to_file(tmp, driver=VECTOR_DRIVERS[ext], engine="pyogrio", **kwargs)
    except OSError:
        raise
    except Exception as exc:  # pyogrio reports unusable columns as RuntimeError subclasses
        if is_disk_full(exc):
            raise  # files.write_errors names it: the disk is full
        detail = " ".join(str(exc).split())
        raise InvalidInputError(
            f"Writing {len(table)} boxes as {ext} failed ({detail[:200]}); keep only numeric and text "
            "columns besides the geometry, or write a .csv file."
        ) from exc
