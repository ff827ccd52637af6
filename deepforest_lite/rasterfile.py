"""Opening raster files with rasterio, and reading their headers. Torch-free.

The one place where the package opens a raster file for reading:
:func:`open_raster` (used by :class:`deepforest_lite.raster.RasterSource`)
and :func:`raster_header` (size, bands, CRS and transform without reading a
pixel: annotation bounds, GSD, mosaics, the command line's early checks).
Both turn a missing, folder or undecodable path into one
:class:`~deepforest_lite.errors.ImageReadError` sentence, and both silence
rasterio's ``NotGeoreferencedWarning`` (plain PNG/JPEG files are normal
input; their transform is the identity and their CRS ``None``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ImageReadError

__all__ = ["RasterHeader", "guarded_read", "header_of", "open_raster", "raster_header"]

T = TypeVar("T")


@dataclass(frozen=True)
class RasterHeader:
    """What a raster file's header says, read without its pixels.

    Attributes:
        path: the file path (str).
        width, height: size in px (columns, rows).
        count: number of bands.
        dtypes: the data type of each band, in band order (e.g. ``("uint16",) * 4``).
        crs: :class:`rasterio.crs.CRS`, or ``None`` for files without one (plain PNG/JPEG).
        transform: :class:`affine.Affine` from pixel ``(col, row)`` (origin at the
            top-left corner of the top-left pixel) to map coordinates; the
            identity when the file has no georeferencing.
        nodata: the file's nodata value, or ``None``.
        colorinterp: each band's colour interpretation name in band order
            (``"red"``, ``"gray"``, ``"alpha"``, ``"undefined"``, ...).
    """

    path: str
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    crs: Any
    transform: Any
    nodata: float | None
    colorinterp: tuple[str, ...]

    @property
    def dtype(self) -> str:
        """The data type of band 1 (of every band when they share one, see :attr:`dtypes`)."""
        return self.dtypes[0]

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in px."""
        return (self.height, self.width)

    @property
    def is_georeferenced(self) -> bool:
        """True when the file has a CRS (map coordinates make sense)."""
        return self.crs is not None


def open_raster(path: str | os.PathLike) -> Any:
    """Open ``path`` for reading with rasterio; the caller closes the dataset.

    Raises:
        ImageReadError: the path does not exist, is a folder, or GDAL cannot
            read it as a raster.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageReadError(f"Image file {path!r} does not exist; check the path.")
    if os.path.isdir(path):
        raise ImageReadError(f"{path!r} is a folder, not an image file; pass a file path.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as exc:
        raise ImageReadError(
            f"Cannot read {path!r} as an image ({exc}); pass a GeoTIFF, PNG or JPEG file."
        ) from exc


def guarded_read(path: str, read: Callable[[], T]) -> T:
    """Run ``read()`` (a rasterio read of ``path``), turning I/O failures into :class:`ImageReadError`."""
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return read()
    except RasterioIOError as exc:
        raise ImageReadError(
            f"Reading pixels from {path!r} failed ({exc}); the file may be truncated or corrupt."
        ) from exc


def header_of(path: str | os.PathLike, dataset: Any) -> RasterHeader:
    """The :class:`RasterHeader` of an open rasterio ``dataset`` read from ``path``."""
    return RasterHeader(
        path=os.fspath(path),
        width=int(dataset.width),
        height=int(dataset.height),
        count=int(dataset.count),
        dtypes=tuple(str(d) for d in dataset.dtypes),
        crs=dataset.crs,
        transform=dataset.transform,
        nodata=dataset.nodata,
        colorinterp=tuple(ci.name for ci in dataset.colorinterp),
    )


def raster_header(path: str | os.PathLike) -> RasterHeader:
    """Size, bands, data types, CRS and transform of a raster file, without reading its pixels.

    Raises:
        ImageReadError: the file is missing, a folder, or not a raster GDAL reads.
    """
    with open_raster(path) as dataset:
        return header_of(path, dataset)
