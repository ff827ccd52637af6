"""Opening images and rasters with rasterio, and the band/dtype rules.

Every image the package reads (PNG, JPEG, TIFF, GeoTIFF) goes through
rasterio, and comes out as an ``H x W x 3`` ``uint8`` RGB array (rows, columns,
bands). This module is torch-free.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from .errors import ImageReadError, InvalidInputError, RasterError

__all__ = ["check_rgb_array", "read_image"]


def check_rgb_array(image: object) -> np.ndarray:
    """Return ``image`` if it is an ``H x W x 3`` ``uint8`` array, else raise a clear error."""
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(
            f"Expected an image path or a numpy array, got {type(image).__name__}; "
            "pass a file path or an H x W x 3 uint8 RGB array."
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(
            f"Expected an H x W x 3 RGB array, got shape {image.shape}; "
            "convert the image to three channels in height, width, channel order."
        )
    if image.dtype != np.uint8:
        raise InvalidInputError(
            f"Expected a uint8 RGB array (values 0-255), got dtype {image.dtype}; "
            "scale it to 0-255 and convert with image.astype('uint8')."
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidInputError(f"The image is empty (shape {image.shape}); pass a non-empty image.")
    return image


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a whole image file as an ``H x W x 3`` ``uint8`` RGB array.

    Band rules: three bands are red, green, blue; a fourth band is taken as
    alpha and dropped; a single band is refused. Only 8-bit images are read
    here.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageReadError(f"Image file {path!r} does not exist; check the path.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                count, dtype = src.count, src.dtypes[0]
                if count < 3:
                    raise RasterError(
                        f"{path!r} has {count} band(s); an RGB image with 3 bands is needed "
                        "(convert grayscale images to RGB first)."
                    )
                if count > 4:
                    raise RasterError(
                        f"{path!r} has {count} bands; only RGB (3 bands) or RGBA (4 bands) images "
                        "are read by read_image."
                    )
                if dtype != "uint8":
                    raise RasterError(
                        f"{path!r} holds {dtype} pixels; read_image needs 8-bit RGB."
                    )
                data = src.read((1, 2, 3))
    except RasterioIOError as exc:
        raise ImageReadError(
            f"Cannot read {path!r} as an image ({exc}); pass a PNG, JPEG or TIFF file."
        ) from None
    return np.ascontiguousarray(data.transpose(1, 2, 0))
