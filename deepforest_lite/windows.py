"""The window grid over an image: pure arithmetic, torch- and rasterio-free.

The grid matches DeepForest 2.1.0's for the same patch size and overlap, per
axis of length ``L``:

* window side ``s = min(patch_size, L)``;
* stride ``t = s - floor(s * patch_overlap)`` (380 px for 400 px and 0.05);
* offsets ``0, t, 2t, ...`` while the window fits, plus one more window flush
  with the far edge (offset ``L - s``) unless the last one already ends there.

So an image smaller than a patch is one window the size of the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .checks import check_range
from .errors import InvalidInputError

__all__ = ["Window", "axis_offsets", "window_grid"]


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels: columns ``col_off .. col_off + width``, rows ``row_off .. row_off + height``."""

    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        """``(xmin, ymin, xmax, ymax)`` in image pixels."""
        return (self.col_off, self.row_off, self.col_off + self.width, self.row_off + self.height)


def axis_offsets(length: int, patch_size: int, patch_overlap: float) -> tuple[int, list[int]]:
    """Return ``(side, offsets)`` of the windows along one axis of ``length`` px."""
    side = min(patch_size, length)
    stride = side - math.floor(side * patch_overlap)
    offsets = list(range(0, length - side + 1, stride))
    if offsets[-1] + side < length:
        offsets.append(length - side)
    return side, offsets


def window_grid(
    height: int, width: int, patch_size: int = 400, patch_overlap: float = 0.05
) -> list[Window]:
    """Windows covering an image of ``height`` x ``width`` px, row by row.

    Args:
        height, width: image size in px (> 0).
        patch_size: window side in px (> 0).
        patch_overlap: fraction of the side shared by neighbouring windows, in [0, 1).

    Returns:
        The windows, ordered by row offset then column offset.
    """
    check_grid_arguments(patch_size, patch_overlap)
    if int(height) <= 0 or int(width) <= 0:
        raise InvalidInputError(f"Image size must be positive, got {height} x {width} px.")
    patch_size, patch_overlap = int(patch_size), float(patch_overlap)
    w_side, cols = axis_offsets(int(width), patch_size, patch_overlap)
    h_side, rows = axis_offsets(int(height), patch_size, patch_overlap)
    return [Window(c, r, w_side, h_side) for r in rows for c in cols]


def check_grid_arguments(patch_size: int, patch_overlap: float) -> None:
    """Raise :class:`InvalidInputError` for a patch size or overlap that makes no grid."""
    check_range("patch_size", patch_size, 0, low_open=True, integer=True, kind="whole number of pixels", hint="e.g. 400")
    check_range("patch_overlap", patch_overlap, 0, 1, high_open=True, kind="fraction", hint="e.g. 0.05")
