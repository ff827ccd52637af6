"""``deepforest-lite predict``: which rasters are still to do and the file each one goes to.

With ``--output-dir`` a raster whose ``DIR/STEM.EXT`` an earlier run wrote completely is
skipped, and the temporary files a killed run left are removed. Every raster still to do
is opened here, so an unreadable one fails before the model loads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ._predict_checks import check_one_crs

__all__ = ["FORMATS", "Job", "Skipped", "is_complete", "plan", "plan_mosaic", "remove_leftovers"]

#: ``--format`` value -> file extension
FORMATS: dict[str, str] = {"gpkg": ".gpkg", "geojson": ".geojson", "shp": ".shp", "csv": ".csv"}

#: ``(raster, output file or None with --output, source)``: a raster still to do; the source is a
#: :class:`~deepforest_lite.raster.RasterSource` (a :class:`~deepforest_lite.mosaic.MosaicSource` with ``--mosaic``)
Job = tuple[str, str | None, Any]
#: ``(raster, its existing output file, None)``: a raster an earlier run finished
Skipped = tuple[str, str, None]


def plan(rasters: list[str], args: argparse.Namespace) -> tuple[list[Job], list[Skipped]]:
    """Open every raster still to do (fails early on unusable ones) and name its output; also the skipped ones."""
    from ..raster import RasterSource

    stems: dict[str, str] = {}
    jobs: list[Job] = []
    skipped: list[Skipped] = []
    for raster in rasters:
        stem = Path(raster).stem
        if args.output_dir is not None:
            if stem in stems:
                raise InvalidInputError(
                    f"Rasters {stems[stem]!r} and {raster!r} would both be written to {stem}.*; "
                    "rename one, or predict them into different --output-dir folders."
                )
            stems[stem] = raster
            remove_leftovers(args.output_dir, stem)
            done = [
                os.path.join(args.output_dir, stem + ext)
                for fmt, ext in FORMATS.items()
                if args.format in (None, fmt) and is_complete(os.path.join(args.output_dir, stem + ext))
            ]
            if done:
                print(f"skipping {raster}: {done[0]} exists")
                skipped.append((raster, done[0], None))
                continue
        source = RasterSource(raster, bands=args.bands, value_range=args.value_range)
        source.close()  # reopened when read; keeps file handles few with many rasters
        target = None
        if args.output_dir is not None:
            fmt = args.format or ("gpkg" if source.is_georeferenced else "csv")
            target = os.path.join(args.output_dir, stem + FORMATS[fmt])
            if fmt != "csv" and not source.is_georeferenced:
                raise InvalidInputError(
                    f"--format {fmt} needs georeferenced rasters but {raster!r} has no CRS; "
                    "use --format csv (pixel boxes)."
                )
        jobs.append((raster, target, source))
    if args.output is not None:
        check_one_crs([source for _, _, source in jobs], Path(args.output).suffix.lower(), args.output, args.crs)
    return jobs, skipped


def plan_mosaic(rasters: list[str], args: argparse.Namespace) -> tuple[list[Job], list[Skipped]]:
    """One job reading every raster as one mosaic (checked before the model loads)."""
    from ..mosaic import MosaicSource

    source = MosaicSource(rasters, bands=args.bands, value_range=args.value_range)
    try:
        source.close()
        target = None
        if args.output_dir is not None:
            fmt = args.format or "gpkg"
            target = os.path.join(args.output_dir, "mosaic" + FORMATS[fmt])
            remove_leftovers(args.output_dir, "mosaic")
            if is_complete(target):
                print(f"skipping the mosaic: {target} exists")
                source.cleanup()
                return [], [(f"mosaic of {len(rasters)} rasters", target, None)]
    except BaseException:
        source.cleanup()
        raise
    return [(f"mosaic of {len(rasters)} rasters", target, source)], []


def is_complete(path: str) -> bool:
    """Whether a box file of an earlier run can be read back (an empty or broken file is redone)."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return False
    try:
        if path.endswith(".csv"):
            import pandas as pd

            columns = pd.read_csv(path, nrows=0).columns
            return all(c in columns for c in ("xmin", "ymin", "xmax", "ymax"))
        import pyogrio

        pyogrio.read_info(path)
        return True
    except Exception:  # unreadable: predict it again
        return False


def remove_leftovers(folder: str, stem: str) -> None:
    """Remove the temporary files and folders a killed run left for ``stem`` (``.STEM.EXT.*.tmp``)."""
    import shutil

    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.endswith(".tmp") and any(
            name.startswith(f".{stem}{ext}.") for ext in (*FORMATS.values(), ".partial.npz")
        ):
            target = os.path.join(folder, name)
            if os.path.isdir(target):
                shutil.rmtree(target, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(target)
