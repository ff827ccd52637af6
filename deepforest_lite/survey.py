"""Many rasters at once: input lists (files, globs, folders, ``@list.txt``) and the run's catalogue. Torch-free.

:func:`expand_inputs` turns what a user typed into the list of raster files
to predict, failing with one clear sentence (a glob that matches nothing, a
folder without rasters, a list file that is missing) before any model is
loaded. :func:`write_catalogue` writes the catalogue of a run with an output
folder: one row per raster with its footprint, CRS, status, box count,
seconds, model and engine, as ``index.csv`` or ``index.gpkg``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ImageReadError, InvalidInputError
from .files import atomic_write

__all__ = [
    "CATALOGUE_COLUMNS",
    "RASTER_EXTENSIONS",
    "CatalogueRow",
    "expand_inputs",
    "footprint",
    "read_catalogue",
    "write_catalogue",
]

#: file extensions a folder given as input is searched for (case-insensitive, not recursive)
RASTER_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt")
#: columns of the catalogue, in order
CATALOGUE_COLUMNS: tuple[str, ...] = (
    "raster", "output", "status", "boxes", "windows", "seconds", "crs", "footprint", "model", "engine",
)
_GLOB_CHARACTERS = "*?["


def expand_inputs(items: Iterable[str | os.PathLike]) -> list[str]:
    """The raster files named by ``items``, in the order given.

    Each item is one of:

    * ``@FILE``: a text file with one input per line (blank lines and lines
      starting with ``#`` are skipped; relative paths are relative to the list
      file's folder); each line may itself be a file, glob or folder;
    * a glob (contains ``*``, ``?`` or ``[``; ``**`` descends folders): the
      matching files, sorted;
    * a folder: its files whose extension is in :data:`RASTER_EXTENSIONS`,
      sorted (sub-folders are not searched; use ``DIR/**/*.tif``);
    * anything else: a file path, kept as it is (its existence is checked by the caller).

    Raises:
        InvalidInputError: a glob matches no file, a folder holds no raster,
            a list file names nothing, or no raster at all was given.
        ImageReadError: a list file does not exist or cannot be read.
    """
    found: list[str] = []
    for item in items:
        found.extend(_expand(os.fspath(item), base=None, depth=0))
    if not found:
        raise InvalidInputError("No raster was given; name raster files, globs, folders or @list.txt files.")
    return found


def _expand(item: str, base: str | None, depth: int) -> list[str]:
    text = item.strip()
    if base is not None and text and not text.startswith("@") and not os.path.isabs(os.path.expanduser(text)):
        text = os.path.join(base, text)
    if text.startswith("@"):
        return _read_list(text[1:], depth)
    text = os.path.expanduser(text)
    if any(c in text for c in _GLOB_CHARACTERS) and not os.path.exists(text):
        matches = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        if not matches:
            raise InvalidInputError(f"The pattern {item!r} matches no file; check the folder and the pattern.")
        return matches
    if os.path.isdir(text):
        names = sorted(
            os.path.join(text, n) for n in os.listdir(text)
            if os.path.splitext(n)[1].lower() in RASTER_EXTENSIONS and os.path.isfile(os.path.join(text, n))
        )
        if not names:
            raise InvalidInputError(
                f"The folder {item!r} holds no raster ({', '.join(RASTER_EXTENSIONS)}); "
                "give the files or a glob such as DIR/**/*.tif."
            )
        return names
    return [text]


def _read_list(path: str, depth: int) -> list[str]:
    if depth > 8:
        raise InvalidInputError(f"The list file {path!r} is nested in lists more than 8 deep; check for a loop.")
    if not os.path.isfile(path):
        raise ImageReadError(f"The list file {path!r} (given as @{path}) does not exist; check the path.")
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle]
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageReadError(f"The list file {path!r} cannot be read ({exc}); give a UTF-8 text file.") from exc
    entries = [line for line in lines if line and not line.startswith("#")]
    if not entries:
        raise InvalidInputError(f"The list file {path!r} names no raster; put one path per line.")
    base = os.path.dirname(os.path.abspath(path))
    out: list[str] = []
    for entry in entries:
        out.extend(_expand(entry, base, depth + 1))
    return out


# --------------------------------------------------------------------------- the catalogue


@dataclass
class CatalogueRow:
    """One raster of a run.

    Attributes:
        raster: the raster path as given.
        output: the box file written (or kept) for it.
        status: ``"done"`` (predicted in this run), ``"skipped"`` (its file
            existed from an earlier run) or ``"resumed"`` (finished from a
            window checkpoint of a killed run).
        boxes: boxes in its file.
        windows: windows of its grid (``None`` when skipped).
        seconds: wall-clock seconds this run spent on it (``None`` when skipped).
        crs: the raster's CRS as ``EPSG:xxxx`` (WKT without an EPSG code), empty without one.
        footprint: the raster's outline as WKT: map coordinates in ``crs``,
            pixel corners ``(0, 0)``-``(width, height)`` without a CRS.
        model: the ``--model`` value (``default`` for the bundled model).
        engine: the engine asked for and the device, e.g. ``auto on cpu``.
    """

    raster: str
    output: str
    status: str
    boxes: int
    windows: int | None = None
    seconds: float | None = None
    crs: str = ""
    footprint: str = ""
    model: str = ""
    engine: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


def footprint(source: Any) -> tuple[str, str]:
    """``(crs, wkt)`` of a :class:`~deepforest_lite.raster.RasterSource`'s outline (see :class:`CatalogueRow`)."""
    import shapely
    from rasterio.transform import array_bounds

    if source.crs is None:
        return "", shapely.box(0, 0, source.width, source.height).wkt
    west, south, east, north = array_bounds(source.height, source.width, source.transform)
    epsg = source.crs.to_epsg()
    name = f"EPSG:{epsg}" if epsg is not None else source.crs.to_wkt()
    return name, shapely.box(west, south, east, north).wkt


def read_catalogue(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """An earlier catalogue's rows by raster path (empty when there is none or it cannot be read)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        return {}
    try:
        if path.endswith(".csv"):
            import pandas as pd

            table = pd.read_csv(path, keep_default_na=False)
        else:
            import pyogrio

            table = pyogrio.read_dataframe(path, read_geometry=False)
    except Exception:  # a broken catalogue is rebuilt
        return {}
    if "raster" not in table.columns:
        return {}
    return {str(row["raster"]): {str(k): v for k, v in row.items()} for row in table.to_dict("records")}


def write_catalogue(rows: Sequence[CatalogueRow], path: str | os.PathLike) -> str:
    """Write the catalogue atomically as ``.csv`` (footprint as WKT) or ``.gpkg``.

    A GeoPackage holds one layer with one CRS, so its geometry is each
    footprint reprojected to WGS84 longitude/latitude (``EPSG:4326``); the
    ``crs`` and ``footprint`` columns keep the raster's own CRS and outline.
    Footprints of rasters without a CRS have no geometry there.
    """
    import pandas as pd

    path = os.fspath(path)
    table = pd.DataFrame([{k: v for k, v in asdict(r).items() if k != "extra"} for r in rows],
                         columns=list(CATALOGUE_COLUMNS))
    if path.lower().endswith(".csv"):
        return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    if not path.lower().endswith(".gpkg"):
        raise InvalidInputError(f"A catalogue is written as .csv or .gpkg, got {path!r}.")
    import geopandas as gpd
    import shapely

    geometries: list[Any] = []
    for crs, wkt in zip(table["crs"], table["footprint"]):
        if not crs:
            geometries.append(None)
            continue
        shape = gpd.GeoSeries([shapely.from_wkt(wkt)], crs=crs).to_crs("EPSG:4326")
        geometries.append(shape.iloc[0])
    frame = gpd.GeoDataFrame(table, geometry=geometries, crs="EPSG:4326")
    return atomic_write(path, lambda tmp: frame.to_file(tmp, driver="GPKG", layer="index"))
