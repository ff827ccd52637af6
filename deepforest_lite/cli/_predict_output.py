"""``deepforest-lite predict``: the files it writes and the lines it prints about them.

Box files (``--output``, ``DIR/STEM.EXT``, ``--merged``) go through :func:`deepforest_lite.geo.write_boxes`
(atomic); vector files hold map geometry in one CRS, a CSV names each row's CRS in ``map_crs``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from ._predict_catalogue import Catalogue

__all__ = ["combine", "plot", "read_back", "say", "scale_note", "summary", "write", "write_merged"]


def read_back(path: str) -> pd.DataFrame:
    """A box file written by this command, as the table ``predict_tile`` gave (map geometry for georeferenced ones)."""
    import geopandas as gpd
    import pandas as pd

    if not path.endswith(".csv"):
        return gpd.read_file(path)
    table = pd.read_csv(path)
    if "map_crs" not in table.columns or table["map_crs"].isna().all():
        return table.drop(columns=[c for c in ("geometry", "map_crs") if c in table.columns])
    import shapely

    crs = table["map_crs"].dropna().iloc[0]
    geometry = shapely.box(table["map_xmin"], table["map_ymin"], table["map_xmax"], table["map_ymax"])
    return gpd.GeoDataFrame(table.drop(columns=["geometry", "map_crs"]), geometry=geometry, crs=crs)


def write_merged(catalogue: Catalogue, args: argparse.Namespace) -> None:
    """``--merged``: every raster's boxes (read back from its file) in one file."""
    ext = Path(args.merged).suffix.lower()
    tables = [read_back(path) for path in catalogue.outputs()]
    if ext != ".csv" and any(getattr(t, "crs", None) is None for t in tables):
        raise InvalidInputError(
            f"--merged {args.merged!r} is a vector file but some outputs have no CRS; give a .csv file instead."
        )
    combined = combine(tables, ext, args.crs)
    write(combined, args.merged, None if ext == ".csv" else args.crs)
    print(f"wrote {args.merged} ({len(combined)} boxes from {len(tables)} file{'s' if len(tables) != 1 else ''})")


def combine(tables: list[Any], ext: str, crs: str | None = None) -> pd.DataFrame:
    """One table for several rasters: a GeoDataFrame in the output CRS for vector files, a plain table for CSV."""
    import geopandas as gpd
    import pandas as pd

    from ..geo import csv_table, output_crs, reproject_boxes

    if ext != ".csv":
        target = output_crs(ext, tables[0].crs, crs)
        tables = [reproject_boxes(t, target) for t in tables]
        return gpd.GeoDataFrame(pd.concat(tables, ignore_index=True), geometry="geometry", crs=target)
    return pd.concat([csv_table(t, crs) for t in tables], ignore_index=True)


def write(table: pd.DataFrame, path: str, crs: str | None = None) -> None:
    """Write one box file (format from the extension; ``crs``: the CRS to reproject to, see ``--crs``)."""
    from ..geo import write_boxes

    write_boxes(table, path, crs=crs)


def plot(raster: str, source: Any, table: pd.DataFrame, plot: str | None, plot_dir: str | None) -> None:
    """The --plot picture of one raster, drawn from the ``source`` prediction read (same bands and stretch)."""
    if plot is None:
        return
    from ..visualize import plot_predictions

    png = os.path.join(plot_dir, Path(raster).stem + ".png") if plot_dir is not None else plot
    plot_predictions(source, table, png, show_labels=table["label"].nunique() > 1)
    print(f"wrote {png}")


def say(text: str, bar: Any) -> None:
    """Print a line on stdout without breaking the progress bar."""
    if bar is None:
        print(text)
    else:
        bar.write(text, file=sys.stdout)


def summary(table: pd.DataFrame) -> str:
    """``"N boxes, M windows[ of which K empty and skipped][, scale note]"`` from a table and its attrs."""
    windows = table.attrs.get("windows")
    empty = table.attrs.get("empty_windows", 0)
    text = f"{len(table)} boxes"
    if windows is not None:
        text += f", {windows} windows" + (f" of which {empty} empty and skipped" if empty else "")
    note = scale_note(table)
    return text + (f", {note}" if note else "")


def scale_note(table: pd.DataFrame) -> str:
    """The scale the raster was predicted at, from the table's attrs (empty when not reported)."""
    if "rescaled" not in table.attrs:
        return ""
    from ..gsd import Scale

    attrs = table.attrs
    scale = Scale(attrs.get("model_gsd"), attrs.get("raster_gsd"), attrs.get("raster_gsd_source"),
                  tuple(attrs.get("scale", (1.0, 1.0))), bool(attrs.get("rescaled")))
    return scale.describe()
