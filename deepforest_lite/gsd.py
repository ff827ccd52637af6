"""Ground sample distance (GSD): the size of a pixel on the ground, in metres. Torch-free.

A model learns objects at the pixel size of its training imagery; a raster at
another pixel size shows them larger or smaller than the network has ever
seen. This module owns the arithmetic that matches the two:

* :func:`raster_gsd`: a raster's pixel size in metres from its CRS and affine
  transform, per axis (``x`` along columns, ``y`` along rows, so non-square
  pixels are kept). Projected CRSs convert their linear unit to metres
  (metres, feet, US survey feet... through pyproj's unit conversion factor);
  geographic CRSs convert the pixel's size in degrees to metres on the CRS's
  ellipsoid at the raster's centre (pyproj's geodesic distances), so a
  ``1e-6`` degree pixel is about 0.11 m north-south and ``0.11 * cos(latitude)``
  m east-west. Rasters without a CRS (PNG, JPEG, plain TIFF) have no usable GSD.
* :class:`Scale` / :func:`plan_scale`: whether, and by how much, windows are
  resampled so the network sees them at the model's GSD. ``factor`` is network
  pixels per raster pixel (``raster_gsd / model_gsd`` per axis), 1 when
  nothing is resampled. Resampling happens when both GSDs are known,
  ``rescale`` is on and they differ by more than :data:`GSD_TOLERANCE`
  (10 %) on either axis.
* :func:`scaled_grid`: the window grid in raster pixels whose windows are
  ``patch_size`` network pixels once resampled: ``round(patch_size / factor)``
  raster pixels a side (``patch_size * model_gsd / raster_gsd``), laid out by
  DeepForest's grid rule of :mod:`deepforest_lite.windows` (stride ``side -
  floor(side * patch_overlap)``, a last window flush with the far edge).
  ``patch_size`` always means the network's window in its own pixels.

Coordinates: a window of ``w x h`` raster pixels at ``(col_off, row_off)``
read into ``ow x oh`` network pixels maps network pixel coordinates back with
``x = col_off + x_net * w / ow`` and ``y = row_off + y_net * h / oh``, which is
exact: rasterio (GDAL) lays the window's extent onto the output buffer
linearly. Every window of a grid has the same size, so one pair ``(w / ow,
h / oh)`` (:attr:`ScaledGrid.to_raster`) serves all of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .checks import check_range
from .errors import GSDWarning, ImageReadError, InvalidInputError
from .rasterfile import raster_header
from .windows import Window, axis_offsets, check_grid_arguments

__all__ = [
    "DEEPFOREST_GSD",
    "GSD_TOLERANCE",
    "GSDWarning",
    "Scale",
    "ScaledGrid",
    "check_gsd",
    "common_gsd",
    "file_gsd",
    "plan_scale",
    "raster_gsd",
    "scaled_grid",
]

#: relative difference between a raster's and the model's GSD above which windows are resampled
GSD_TOLERANCE: float = 0.1
#: GSD (m) given to imported DeepForest tree checkpoints: its tree model was trained on 0.1 m NEON imagery
DEEPFOREST_GSD: float = 0.1


def check_gsd(value: Any, name: str = "gsd") -> float | None:
    """``value`` as a float GSD in metres, or ``None``; anything else is an :class:`InvalidInputError`."""
    if value is None:
        return None
    return check_range(name, value, 0, low_open=True, kind="pixel size in metres", hint=f"e.g. {name}=0.1 for 10 cm pixels")


# --------------------------------------------------------------------------- reading a raster's GSD


def raster_gsd(crs: Any, transform: Any, width: int, height: int) -> tuple[float, float] | None:
    """A raster's pixel size in metres, ``(x, y)``, or ``None`` when it has no usable GSD.

    Args:
        crs: the raster's CRS (a :class:`rasterio.crs.CRS`, anything
            :class:`pyproj.CRS` accepts, or ``None``).
        transform: its north-up affine transform (pixel -> CRS units); rotated
            or sheared transforms have no per-axis pixel size and give ``None``.
        width, height: raster size in px (a geographic CRS is converted at the
            raster's centre).

    Returns:
        ``(x, y)``: metres per pixel along columns and along rows (both > 0),
        or ``None`` without a CRS, for a CRS whose unit is not a length or an
        angle, or for a degenerate transform.
    """
    if crs is None or transform is None:
        return None
    a, b, d, e = float(transform.a), float(transform.b), float(transform.d), float(transform.e)
    if b != 0 or d != 0 or a == 0 or e == 0 or not all(map(math.isfinite, (a, e))):
        return None
    try:
        import pyproj

        proj = pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    except Exception:  # pyproj raises its own error types for unknown CRSs
        return None
    if proj.is_geographic:
        return _geographic_gsd(proj, transform, width, height)
    factors = _axis_factors(proj, "metre")
    if factors is None:
        return None
    fx, fy = factors
    return (abs(a) * fx, abs(e) * fy)


def _axis_factors(proj: Any, unit_type: str) -> tuple[float, float] | None:
    """Unit conversion factors (to metres or radians) of the east-west and north-south axes."""
    axes = list(proj.axis_info)
    if not axes:
        return None
    east = next((ax for ax in axes if ax.direction in ("east", "west")), axes[0])
    north = next((ax for ax in axes if ax.direction in ("north", "south")), axes[-1])
    factors = (east.unit_conversion_factor, north.unit_conversion_factor)
    if not all(isinstance(f, float) and math.isfinite(f) and f > 0 for f in factors):
        return None
    if unit_type == "metre" and any(ax.unit_name in ("degree", "radian", "grad", "arc-second") for ax in (east, north)):
        return None
    return factors


def _geographic_gsd(proj: Any, transform: Any, width: int, height: int) -> tuple[float, float] | None:
    factors = _axis_factors(proj, "angle")
    if factors is None:
        return None
    to_degrees = (math.degrees(factors[0]), math.degrees(factors[1]))
    lon = transform.a * width / 2.0 + transform.c
    lat = transform.e * height / 2.0 + transform.f
    lon, lat = lon * to_degrees[0], lat * to_degrees[1]
    dx, dy = abs(transform.a) * to_degrees[0], abs(transform.e) * to_degrees[1]
    if not (-90.0 <= lat <= 90.0):
        return None
    geod = proj.get_geod()
    if geod is None:
        return None
    # one pixel step centred on the raster's centre, along a parallel and along a meridian
    lat0, lat1 = max(-90.0, lat - dy / 2), min(90.0, lat + dy / 2)
    _, _, x_m = geod.inv(lon - dx / 2, lat, lon + dx / 2, lat)
    _, _, y_m = geod.inv(lon, lat0, lon, lat1)
    if not (x_m > 0 and y_m > 0):
        return None
    return (float(x_m), float(y_m))


def file_gsd(path: str | os.PathLike) -> tuple[float, float] | None:
    """:func:`raster_gsd` of an image file, from its metadata only (no pixels are read)."""
    try:
        header = raster_header(path)
    except ImageReadError:
        return None
    return raster_gsd(header.crs, header.transform, header.width, header.height)


def common_gsd(
    paths: Sequence[str | os.PathLike], tolerance: float = GSD_TOLERANCE
) -> tuple[float | None, str]:
    """The GSD shared by image files, from their transforms, and a sentence saying how it was found.

    Returns ``(gsd, note)``: ``gsd`` the mean pixel size (m, both axes of
    every file) when every file has a usable GSD and all lie within
    ``tolerance`` of each other, else ``None``; ``note`` says why.
    """
    values: list[float] = []
    for path in paths:
        found = file_gsd(path)
        if found is None:
            return None, f"{os.fspath(path)!r} has no usable GSD (no CRS)"
        values.extend(found)
    if not values:
        return None, "no images"
    low, high = min(values), max(values)
    if high > low * (1 + tolerance):
        return None, f"the images' pixel sizes range from {low:.3g} to {high:.3g} m"
    return sum(values) / len(values), f"read from the transforms of {len(paths)} image(s)"


# --------------------------------------------------------------------------- matching a raster to a model


@dataclass(frozen=True)
class Scale:
    """How a raster is shown to a model.

    Attributes:
        model_gsd: the model's GSD in metres, or ``None`` (unknown).
        raster_gsd: the raster's ``(x, y)`` pixel size in metres, or ``None``.
        raster_gsd_source: ``"transform"`` (read from the file), ``"given"``
            (the caller's ``gsd=``) or ``None``.
        factor: network pixels per raster pixel, ``(x, y)``; ``(1.0, 1.0)``
            when nothing is resampled.
        rescaled: True when windows are resampled.
    """

    model_gsd: float | None
    raster_gsd: tuple[float, float] | None
    raster_gsd_source: str | None
    factor: tuple[float, float] = (1.0, 1.0)
    rescaled: bool = False

    def attrs(self, grid: ScaledGrid | None = None) -> dict[str, Any]:
        """What a box table's ``attrs`` report about the scale used.

        Keys: ``model_gsd`` (m or ``None``), ``raster_gsd`` (``(x, y)`` m or
        ``None``), ``raster_gsd_source``, ``rescaled`` (bool) and
        ``scale`` (``(x, y)`` network px per raster px actually used, from
        ``grid`` when given).
        """
        used = self.factor if grid is None else (1.0 / grid.to_raster[0], 1.0 / grid.to_raster[1])
        return {
            "model_gsd": self.model_gsd,
            "raster_gsd": self.raster_gsd,
            "raster_gsd_source": self.raster_gsd_source,
            "rescaled": self.rescaled,
            "scale": used,
        }

    def describe(self) -> str:
        """One phrase for a summary line, e.g. ``"raster 0.020 m resampled to the model's 0.100 m"``."""
        if self.raster_gsd is None:
            return "raster GSD unknown, used as is"
        gx, gy = self.raster_gsd
        raster = f"{gx:.3f} m" if math.isclose(gx, gy, rel_tol=1e-3) else f"{gx:.3f} x {gy:.3f} m"
        if self.model_gsd is None:
            return f"raster {raster}, model GSD unknown, used as is"
        if self.rescaled:
            return f"raster {raster} resampled to the model's {self.model_gsd:.3f} m"
        return f"raster {raster}, model {self.model_gsd:.3f} m, not resampled"


def plan_scale(
    model_gsd: float | None,
    raster: tuple[float, float] | None,
    *,
    given: float | None = None,
    rescale: bool = True,
    tolerance: float = GSD_TOLERANCE,
) -> Scale:
    """Decide how a raster is resampled for a model.

    Args:
        model_gsd: the model's GSD in metres, or ``None``.
        raster: the raster's ``(x, y)`` GSD from its transform (:func:`raster_gsd`), or ``None``.
        given: the caller's GSD for the raster (metres, square pixels); wins
            over ``raster``.
        rescale: ``False`` never resamples.
        tolerance: relative difference on either axis above which windows are resampled.
    """
    model_gsd = check_gsd(model_gsd, "model gsd")
    given = check_gsd(given)
    source: str | None
    if given is not None:
        raster, source = (given, given), "given"
    else:
        source = "transform" if raster is not None else None
    if not isinstance(rescale, (bool,)) and rescale not in (0, 1):
        raise InvalidInputError(f"rescale must be True or False, got {rescale!r}.")
    if model_gsd is None or raster is None or not rescale:
        return Scale(model_gsd, raster, source)
    factor = (raster[0] / model_gsd, raster[1] / model_gsd)
    if max(abs(f - 1.0) for f in factor) <= tolerance:
        return Scale(model_gsd, raster, source)
    return Scale(model_gsd, raster, source, factor, True)


def unknown_gsd_message(name: str, model_gsd: float) -> str:
    """The one line said when a raster has no usable GSD but the model has one."""
    return (
        f"{name} has no usable GSD (no CRS, or one without a length unit), so it is predicted at its own "
        f"pixel size; if its pixels are not {model_gsd:g} m (the model's GSD), give its GSD in metres: "
        "gsd=... (command line: --gsd)."
    )


# --------------------------------------------------------------------------- the grid in raster pixels


@dataclass(frozen=True)
class ScaledGrid:
    """Windows in raster pixels and the network size each is read at.

    Attributes:
        windows: the windows, row by row, in raster pixels (all the same size).
        out_width, out_height: the size in network pixels every window is resampled to.
    """

    windows: list[Window]
    out_width: int
    out_height: int

    @property
    def out_shape(self) -> tuple[int, int]:
        """``(out_height, out_width)``."""
        return (self.out_height, self.out_width)

    @property
    def to_raster(self) -> tuple[float, float]:
        """``(w / out_width, h / out_height)``: raster pixels per network pixel, per axis."""
        first = self.windows[0]
        return (first.width / self.out_width, first.height / self.out_height)


def scaled_grid(height: int, width: int, patch_size: int, patch_overlap: float, factor: Sequence[float]) -> ScaledGrid:
    """The window grid over a ``height x width`` px raster read at ``factor`` network px per raster px.

    Each window is ``round(patch_size / factor)`` raster pixels a side per
    axis (at least 1; the raster's side when it is smaller) and is read at
    ``patch_size`` network pixels (``round(side * factor)`` for a window
    clipped to a small raster). The layout per axis is DeepForest's grid rule
    with that side (see :mod:`deepforest_lite.windows`).
    """
    check_grid_arguments(patch_size, patch_overlap)
    fx, fy = (float(f) for f in factor)
    if not (fx > 0 and fy > 0 and math.isfinite(fx) and math.isfinite(fy)):
        raise InvalidInputError(f"The scale factor must be positive, got {tuple(factor)!r}.")
    sides, outs, offsets = [], [], []
    for length, f in ((int(width), fx), (int(height), fy)):
        nominal = max(1, round(patch_size / f))
        side, offs = axis_offsets(length, nominal, float(patch_overlap))
        sides.append(side)
        offsets.append(offs)
        outs.append(int(patch_size) if side == nominal else max(1, round(side * f)))
    windows = [Window(c, r, sides[0], sides[1]) for r in offsets[1] for c in offsets[0]]
    return ScaledGrid(windows, outs[0], outs[1])
