"""``deepforest-lite predict``: the checks of its arguments, made before any raster is read or model loaded.

A mistake in the outputs (``--output``, ``--output-dir``, ``--merged``, ``--plot``), the inputs
or the device settings raises :class:`~deepforest_lite.errors.InvalidInputError` here, which
the command line prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidInputError
from ._checks import check_predict
from ._common import parse_devices

if TYPE_CHECKING:
    import torch

__all__ = ["check_arguments", "check_device", "check_merged_crs", "check_one_crs", "check_plot", "uses_lightning"]


class Georeferencing(Protocol):
    """What the CRS checks read of a raster: a :class:`~deepforest_lite.raster.RasterSource` or its ``RasterHeader``."""

    @property
    def path(self) -> str:
        """The raster's file path."""

    @property
    def is_georeferenced(self) -> bool:
        """True when the raster has a CRS."""

    @property
    def crs(self) -> Any:
        """A :class:`rasterio.crs.CRS`, or ``None``."""


def uses_lightning(args: argparse.Namespace) -> bool:
    """Whether any of ``--accelerator``, ``--devices``, ``--num-nodes``, ``--strategy`` was given."""
    return any(getattr(args, name, None) is not None for name in ("accelerator", "devices", "num_nodes", "strategy"))


def check_arguments(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """Expand and check the rasters and check every output option; torch-free.

    Replaces ``args.rasters`` by the expanded list (globs, folders, ``@lists``) and
    ``args.devices`` by Lightning's value.

    Returns:
        ``(rasters, plot_dir)``: the raster paths, and the folder ``--plot`` PNGs go to
        (``None`` for one PNG file, or no plot).
    """
    from ..geo import SUPPORTED_EXTENSIONS
    from ..survey import expand_inputs

    args.rasters = expand_inputs([str(r) for r in args.rasters])  # globs, folders, @lists: torch-free
    check_predict(args, SUPPORTED_EXTENSIONS)  # torch-free: paths, destinations, --model, --device
    rasters = [str(r) for r in args.rasters]
    if len(set(map(os.path.abspath, rasters))) != len(rasters):
        raise InvalidInputError("The same raster is listed more than once; give each raster once.")
    if args.output is not None:
        if os.path.isdir(args.output):
            raise InvalidInputError(f"--output {args.output!r} is a folder; give a file name, or use --output-dir.")
        if Path(args.output).suffix.lower() not in SUPPORTED_EXTENSIONS:
            raise InvalidInputError(
                f"--output {args.output!r} has an unknown extension; use one of {list(SUPPORTED_EXTENSIONS)}."
            )
        if args.format is not None:
            raise InvalidInputError("--format only applies to --output-dir; with --output the extension names the format.")
        if args.merged is not None:
            raise InvalidInputError("--merged only applies to --output-dir; --output already writes one file of all boxes.")
    elif os.path.isfile(args.output_dir):
        raise InvalidInputError(f"--output-dir {args.output_dir!r} is a file; give a folder (it is created if missing).")
    if args.merged is not None:
        from ..files import check_output_file

        check_output_file(args.merged, "--merged", extensions=SUPPORTED_EXTENSIONS)
    if args.mosaic and args.plot is not None:
        raise InvalidInputError("--plot does not apply to --mosaic; draw the tiles in a separate run without --mosaic.")
    plot_dir = check_plot(args.plot, len(rasters))
    if uses_lightning(args):
        if args.device != "auto":
            raise InvalidInputError(
                f"--device {args.device!r} picks one device, but --accelerator/--devices/--num-nodes/--strategy "
                "let Lightning give each process its own; drop --device (or those)."
            )
        args.devices = parse_devices(args.devices) if args.devices is not None else None
    return rasters, plot_dir


def check_device(args: argparse.Namespace) -> torch.device:
    """``--device`` as a torch device (the first torch import); an unavailable device or precision fails here."""
    from ..model import resolve_device  # the first torch import

    device = resolve_device(args.device)  # an unavailable device fails before the model is loaded
    from ..engines import check_precision

    # fp16 off CUDA is refused before the progress bar starts (Lightning's "auto" picks CUDA when there is one)
    check_precision(args.precision, resolve_device("cpu") if args.accelerator == "cpu" else device)
    return device


def check_plot(plot: str | None, n_rasters: int) -> str | None:
    """The folder PNGs go to (``None`` for one PNG file, or no plot)."""
    if plot is None:
        return None
    if plot.lower().endswith(".png"):
        if n_rasters > 1:
            raise InvalidInputError(
                f"--plot {plot!r} is one PNG file but {n_rasters} rasters were given; "
                "give a folder to get one STEM.png per raster."
            )
        if os.path.isdir(plot):
            raise InvalidInputError(f"--plot {plot!r} is a folder; give a .png file name.")
        return None
    if os.path.isfile(plot):
        raise InvalidInputError(f"--plot {plot!r} is a file; give a .png file name or a folder.")
    return plot


def check_merged_crs(rasters: list[str], args: argparse.Namespace) -> None:
    """The merged file's CRS rules (as for ``--output``), from the rasters' metadata."""
    from ..rasterfile import raster_header

    check_one_crs([raster_header(r) for r in rasters], Path(args.merged).suffix.lower(), args.merged, args.crs)


def check_one_crs(sources: Sequence[Georeferencing], ext: str, output: str, crs: str | None = None) -> None:
    """One output file of several rasters: a vector file needs georeferenced rasters in one CRS (or ``--crs``).

    ``sources``: the rasters (sources or headers); ``ext``: the output's extension, e.g. ``".gpkg"``.
    """
    from ..geo import KEEP_CRS

    if ext == ".csv":
        return
    plain = [s.path for s in sources if not s.is_georeferenced]
    if plain:
        raise InvalidInputError(
            f"{output!r} is a vector file in map coordinates but {plain[0]!r} has no CRS; "
            "write a .csv file instead."
        )
    if (crs is not None and crs != KEEP_CRS) or (crs is None and ext == ".geojson"):
        return  # every raster's boxes are reprojected to the one output CRS
    found = {s.crs.to_string() for s in sources}
    if len(found) > 1:
        raise InvalidInputError(
            f"The rasters have different CRSs ({sorted(found)}) and one {ext} file holds one; "
            "give --crs EPSG:xxxx to reproject them all, use --output-dir (one file per raster), or a .csv file."
        )
