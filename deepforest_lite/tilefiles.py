"""The files :func:`~deepforest_lite.preprocess.split_raster` writes: the folder, tile names, tiles. Torch-free.

:func:`check_out_dir` checks the tiles' folder before any tile is cut,
:func:`refuse_overwriting_input` keeps the tiles' CSV from replacing the
annotations it is made from, :func:`tile_name` names a tile after its window
(``<stem>_<col_off>_<row_off>.<ext>``, the window's top-left pixel in the
raster: column, row) and :func:`write_tile` writes one ``H x W x 3`` uint8
RGB tile atomically, as a georeferenced GeoTIFF (:func:`write_geotiff`) or a
plain PNG.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidInputError
from .files import atomic_write_files, check_output_dir
from .windows import Window

if TYPE_CHECKING:  # pragma: no cover
    from .raster import RasterSource

__all__ = [
    "IMAGE_FORMATS",
    "check_format",
    "check_out_dir",
    "refuse_overwriting_input",
    "tile_name",
    "write_geotiff",
    "write_tile",
]

#: ``image_format`` values accepted by :func:`split_raster` -> file extension written
IMAGE_FORMATS: dict[str, str] = {"tif": "tif", "tiff": "tif", "png": "png"}


def tile_name(raster: str | os.PathLike[str], window: Window, image_format: str = "tif") -> str:
    """File name of the tile cut from ``raster`` at ``window``: ``<stem>_<col_off>_<row_off>.<ext>``.

    ``stem`` is the raster's file name without its extension, ``col_off`` and
    ``row_off`` the window's top-left pixel in the raster (column, row; whole
    numbers, no padding), ``ext`` ``tif`` or ``png``. For example the window
    at column 380, row 0 of ``ortho.tif`` is ``ortho_380_0.tif``.
    """
    ext = check_format(image_format)
    return f"{Path(os.fspath(raster)).stem}_{int(window.col_off)}_{int(window.row_off)}.{ext}"


def check_format(image_format: str) -> str:
    """The file extension for ``image_format`` (``"tif"`` or ``"png"``); an :class:`InvalidInputError` otherwise."""
    ext = IMAGE_FORMATS.get(str(image_format).lower().lstrip(".")) if isinstance(image_format, str) else None
    if ext is None:
        raise InvalidInputError(
            f"image_format must be 'tif' or 'png', got {image_format!r}; "
            "'tif' keeps the georeferencing."
        )
    return ext


def check_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a ``Path``, checked creatable and writable (it is not created here)."""
    if not isinstance(out_dir, (str, os.PathLike)) or not os.fspath(out_dir):
        raise InvalidInputError(
            f"out_dir must be a folder path, got {out_dir!r}; e.g. out_dir='tiles'."
        )
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(
            f"out_dir {str(folder)!r} is a file, not a folder; give a folder for the tiles."
        )
    check_output_dir(folder, "out_dir")  # creatable and writable, before any tile is cut
    return folder


def refuse_overwriting_input(annotations: Any, csv_path: Path) -> None:
    """Refuse (:class:`InvalidInputError`) when ``csv_path`` is the annotation file ``annotations`` itself."""
    if isinstance(annotations, (str, os.PathLike)) and csv_path.exists():
        try:
            same = os.path.samefile(os.fspath(annotations), csv_path)
        except OSError:
            same = False
        if same:
            raise InvalidInputError(
                f"The tiles' CSV {str(csv_path)!r} would overwrite the input annotations; "
                "choose another out_dir."
            )


def write_tile(
    rgb: np.ndarray, path: Path, ext: str, source: RasterSource, window: Window, valid: np.ndarray | None,
    to_raster: tuple[float, float] = (1.0, 1.0),
) -> Path:
    """Write ``rgb`` (``H x W x 3`` uint8) to ``path`` atomically; returns ``path``.

    Written in a temporary folder beside the tile (:func:`~deepforest_lite.files.atomic_write_files`),
    so a failed write leaves neither a partial tile nor a side file GDAL made
    (``.aux.xml``); an ``OSError`` (full disk, read-only) becomes a ``WriteError``.
    """

    def write(tmp: str) -> None:
        if ext == "png":
            from PIL import Image

            Image.fromarray(rgb).save(tmp, format="PNG")
        else:
            write_geotiff(rgb, tmp, source, window, valid, to_raster)

    atomic_write_files(path, write)
    return path


def write_geotiff(
    rgb: np.ndarray, path: str, source: RasterSource, window: Window, valid: np.ndarray | None,
    to_raster: tuple[float, float] = (1.0, 1.0),
) -> None:
    """Write ``rgb`` as a deflate-compressed 3-band GeoTIFF lying over ``window`` of ``source``.

    The tile keeps ``source``'s CRS, and its transform is
    ``source.transform @ Affine.translation(col_off, row_off) @ Affine.scale(*to_raster)``
    (``to_raster``: raster pixels per tile pixel, ``(x, y)``); ``valid``
    (``H x W`` bool, ``None``: all valid) marks pixels with data in an internal mask.
    """
    import rasterio
    from affine import Affine
    from rasterio.errors import NotGeoreferencedWarning

    height, width = rgb.shape[:2]
    profile: dict[str, Any] = dict(
        driver="GTiff", width=width, height=height, count=3, dtype="uint8",
        photometric="RGB", compress="deflate", predictor=2,
    )
    georeferenced = source.crs is not None or source.transform != Affine.identity()
    if georeferenced:
        profile.update(
            crs=source.crs,
            transform=source.transform @ Affine.translation(window.col_off, window.row_off)
            @ Affine.scale(*to_raster),
        )
    with warnings.catch_warnings(), rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(rgb.transpose(2, 0, 1))
            if valid is not None and not valid.all():
                dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
