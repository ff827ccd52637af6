"""Adjacent rasters of one survey read as one seamless raster (a GDAL VRT opened through rasterio).

A survey cut into tiles cuts crowns at the tile edges: predicted tile by tile,
a crown on an edge becomes two half boxes, or none. :class:`MosaicSource`
places every tile on one pixel grid (they must share the CRS, the pixel size
and the band layout, and sit at whole-pixel offsets from each other) in a
GDAL virtual raster (VRT) and reads it as one
:class:`~deepforest_lite.raster.RasterSource`. The window grid covers the
union of the tiles; a window on a tile edge is read from every file it
touches by GDAL itself, and the boxes are merged once over the whole mosaic.
Pixels no tile covers read as the files' nodata value (or 0, black, without
one), so windows that fall in a gap are empty and skipped.

:meth:`MosaicSource.assign` hands each box back to the tile holding its
centre: ``image_path`` becomes that tile's base name and the pixel columns
that tile's pixels; the map columns and geometry do not change.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from .errors import InvalidInputError
from .raster import RasterSource
from .rasterfile import raster_header

__all__ = ["MosaicSource", "MosaicTile", "plan_mosaic"]

_GDAL_TYPES = {
    "uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
    "int32": "Int32", "float32": "Float32", "float64": "Float64",
}
#: how far (in pixels) a tile's origin may sit from the mosaic's pixel grid
_ALIGN_TOLERANCE = 1e-6


@dataclass(frozen=True)
class MosaicTile:
    """One file of a mosaic and where it lies in the mosaic's pixels (``col_off, row_off, width, height``)."""

    path: str
    col_off: int
    row_off: int
    width: int
    height: int


def plan_mosaic(paths: Sequence[str]) -> tuple[list[MosaicTile], Any, Any, int, int]:
    """Check that ``paths`` can form one mosaic and place them.

    Returns:
        ``(tiles, crs, transform, width, height)``: the tiles at their pixel
        offsets, the shared CRS, the mosaic's north-up transform (origin at the
        top-left of the union) and its size in px.

    Raises:
        InvalidInputError: fewer than one raster, a raster without a CRS,
            different CRSs, pixel sizes, band counts or data types, rotated
            transforms, or tiles off each other's pixel grid.
        ImageReadError: a raster is missing or not a raster GDAL reads.
    """
    from rasterio.transform import Affine

    if not paths:
        raise InvalidInputError("--mosaic needs at least one raster; give the tiles of one survey.")
    info = []
    for path in paths:
        h = raster_header(path)
        info.append((path, h.crs, h.transform, h.width, h.height, h.count, h.dtypes))
    first = info[0]
    for path, crs, transform, _, _, count, dtypes in info:
        if crs is None:
            raise InvalidInputError(f"--mosaic needs georeferenced rasters but {path!r} has no CRS; leave it out.")
        if transform.b != 0 or transform.d != 0:
            raise InvalidInputError(f"--mosaic needs north-up rasters but {path!r} is rotated; warp it first (gdalwarp).")
        if crs != first[1]:
            raise InvalidInputError(
                f"--mosaic needs one CRS but {path!r} is in {crs.to_string()} and {first[0]!r} in "
                f"{first[1].to_string()}; reproject the tiles to one CRS or predict them without --mosaic."
            )
        if not (np.isclose(transform.a, first[2].a, rtol=1e-9) and np.isclose(transform.e, first[2].e, rtol=1e-9)):
            raise InvalidInputError(
                f"--mosaic needs one pixel size but {path!r} has {transform.a:g} x {-transform.e:g} and {first[0]!r} "
                f"{first[2].a:g} x {-first[2].e:g}; resample the tiles to one pixel size or predict them without --mosaic."
            )
        if (count, dtypes) != (first[5], first[6]):
            raise InvalidInputError(
                f"--mosaic needs the same bands in every tile but {path!r} has {count} {dtypes[0]} bands and "
                f"{first[0]!r} {first[5]} {first[6][0]}; predict them without --mosaic."
            )
    a, e = first[2].a, first[2].e
    left = min(t.c for _, _, t, *_ in info)
    top = max(t.f for _, _, t, *_ in info) if e < 0 else min(t.f for _, _, t, *_ in info)
    tiles = []
    for path, _, transform, width, height, _, _ in info:
        col, row = (transform.c - left) / a, (transform.f - top) / e
        if abs(col - round(col)) > _ALIGN_TOLERANCE or abs(row - round(row)) > _ALIGN_TOLERANCE:
            raise InvalidInputError(
                f"--mosaic needs tiles on one pixel grid but {path!r} is offset by a fraction of a pixel "
                f"({col:.3f}, {row:.3f} px); resample it onto the others' grid or predict it without --mosaic."
            )
        tiles.append(MosaicTile(os.path.abspath(path), int(round(col)), int(round(row)), width, height))
    width = max(t.col_off + t.width for t in tiles)
    height = max(t.row_off + t.height for t in tiles)
    return tiles, first[1], Affine(a, 0.0, left, 0.0, e, top), width, height


def _vrt_xml(tiles: Sequence[MosaicTile], crs: Any, transform: Any, width: int, height: int) -> str:
    first = raster_header(tiles[0].path)
    count, dtype, nodata, interps = first.count, first.dtype, first.nodata, first.colorinterp
    if dtype not in _GDAL_TYPES:
        raise InvalidInputError(f"--mosaic cannot combine {dtype} rasters; convert them to 8 or 16 bit first.")
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"  <SRS>{escape(crs.to_wkt())}</SRS>",
             f"  <GeoTransform>{transform.c!r}, {transform.a!r}, 0.0, {transform.f!r}, 0.0, {transform.e!r}</GeoTransform>"]
    for band in range(1, count + 1):
        lines.append(f'  <VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{band}">')
        if nodata is not None:
            lines.append(f"    <NoDataValue>{nodata!r}</NoDataValue>")
        lines.append(f"    <ColorInterp>{interps[band - 1].capitalize()}</ColorInterp>")
        for tile in tiles:
            lines += [
                "    <SimpleSource>",
                f'      <SourceFilename relativeToVRT="0">{escape(tile.path)}</SourceFilename>',
                f"      <SourceBand>{band}</SourceBand>",
                f'      <SrcRect xOff="0" yOff="0" xSize="{tile.width}" ySize="{tile.height}"/>',
                f'      <DstRect xOff="{tile.col_off}" yOff="{tile.row_off}" xSize="{tile.width}" ySize="{tile.height}"/>',
                "    </SimpleSource>",
            ]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


class MosaicSource(RasterSource):
    """Several tiles of one survey read as one :class:`~deepforest_lite.raster.RasterSource`.

    Args:
        paths: the tiles (GeoTIFFs with one CRS, pixel size and band layout,
            at whole-pixel offsets; see :func:`plan_mosaic`).
        bands, value_range: as for :class:`~deepforest_lite.raster.RasterSource`;
            the percentile stretch of non-``uint8`` tiles is computed once over
            the whole mosaic, so every tile is scaled alike.
        folder: where the ``mosaic.vrt`` file is written (default: a new
            temporary folder, removed by :meth:`cleanup`).

    Attributes:
        tiles: the :class:`MosaicTile` s, in the order given.
        members: the tiles' paths (what identifies the mosaic's pixels).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        bands: Sequence[int] | None = None,
        value_range: Any = None,
        folder: str | os.PathLike | None = None,
    ) -> None:
        tiles, crs, transform, width, height = plan_mosaic([os.fspath(p) for p in paths])
        self.tiles = tiles
        self.members = [t.path for t in tiles]
        self._folder = tempfile.mkdtemp(prefix="deepforest-lite-mosaic-") if folder is None else os.fspath(folder)
        self._own_folder = folder is None
        vrt = os.path.join(self._folder, "mosaic.vrt")
        with open(vrt, "w", encoding="utf-8") as handle:
            handle.write(_vrt_xml(tiles, crs, transform, width, height))
        super().__init__(vrt, bands=bands, value_range=value_range)

    def cleanup(self) -> None:
        """Close the file and remove the temporary VRT folder (when this object made it)."""
        self.close()
        if self._own_folder:
            shutil.rmtree(self._folder, ignore_errors=True)

    def assign(self, table: pd.DataFrame) -> pd.DataFrame:
        """Hand each box (mosaic pixels) to the tile holding its centre.

        Returns:
            A copy whose ``image_path`` is that tile's base name and whose
            ``xmin, ymin, xmax, ymax`` are in that tile's pixels (a box on an
            edge may reach outside it); other columns, the map ones included,
            are unchanged. A centre in no tile (a gap) keeps the mosaic pixels
            and the nearest tile's name.
        """
        out = table.copy()
        if len(out) == 0:
            return out
        cx = ((out["xmin"] + out["xmax"]) / 2).to_numpy()
        cy = ((out["ymin"] + out["ymax"]) / 2).to_numpy()
        distance = np.full((len(self.tiles), len(out)), np.inf)
        for i, t in enumerate(self.tiles):
            dx = np.maximum(np.maximum(t.col_off - cx, cx - (t.col_off + t.width)), 0)
            dy = np.maximum(np.maximum(t.row_off - cy, cy - (t.row_off + t.height)), 0)
            distance[i] = np.hypot(dx, dy)
        # inside (distance 0): the first tile in the given order whose half-open extent holds the centre
        inside = np.array([(cx >= t.col_off) & (cx < t.col_off + t.width) & (cy >= t.row_off) & (cy < t.row_off + t.height)
                           for t in self.tiles])
        owner = np.where(inside.any(axis=0), inside.argmax(axis=0), distance.argmin(axis=0))
        cols = np.array([t.col_off for t in self.tiles], dtype=np.float64)[owner]
        rows = np.array([t.row_off for t in self.tiles], dtype=np.float64)[owner]
        covered = inside.any(axis=0)
        out["xmin"] = out["xmin"].to_numpy() - np.where(covered, cols, 0)
        out["xmax"] = out["xmax"].to_numpy() - np.where(covered, cols, 0)
        out["ymin"] = out["ymin"].to_numpy() - np.where(covered, rows, 0)
        out["ymax"] = out["ymax"].to_numpy() - np.where(covered, rows, 0)
        out["image_path"] = [os.path.basename(self.tiles[i].path) for i in owner]
        return out
