"""Reader for vector files (shapefile, GeoPackage, GeoJSON, ...) in map coordinates, and geometry -> pixel boxes."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from ..boxes import (
    ANNOTATION_COLUMNS,
    BOX_COLUMNS,
)
from ..errors import AnnotationError
from ..rasterfile import raster_header
from .raw import _is_missing, _Raw

_VECTOR_SUFFIXES = (".shp", ".gpkg", ".geojson", ".fgb", ".gml")


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
        ) from exc
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

        from ..geo import map_to_pixel

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


def _raster_info(raster: str | os.PathLike[str]) -> dict[str, Any]:
    """Size, transform and CRS (WKT or ``None``) of ``raster`` from its header; ``ImageReadError`` if unreadable."""
    header = raster_header(raster)
    return {
        "width": float(header.width), "height": float(header.height),
        "transform": header.transform,
        "crs": None if header.crs is None else header.crs.to_wkt(),
    }


def _read_vector(
    path: str, *, raster: str | os.PathLike[str] | None, label_column: str, label: str | None,
    layer: str | int | None, image_path: str | None,
) -> _Raw:
    import geopandas as gpd
    from pyproj import CRS

    from ..geo import map_to_pixel

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
        ) from exc
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
