"""``deepforest-lite split``: cut a large raster into training tiles with their boxes.

A thin wrapper of :func:`deepforest_lite.preprocess.split_raster`: parse the
options (and an optional YAML config), call it, print what was written.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from ..compat import unknown_keys_hint
from ..errors import ConfigError
from ._checks import check_split
from ._common import fraction, gsd_metres, positive_int

__all__ = ["add_parser", "run", "CONFIG_KEYS"]

_DESCRIPTION = """\
Cut RASTER into PATCH_SIZE x PATCH_SIZE px tiles on the same window grid as tiled
prediction, and write them to --out-dir as <raster stem>_<col_off>_<row_off>.tif
(georeferenced GeoTIFF; --format png for plain PNG), where col_off, row_off is the
tile's top-left pixel in the raster. Windows with no data are skipped. 16-bit and
float rasters are scaled to 8-bit RGB by the same rule as prediction.

With ANNOTATIONS (a DeepForest CSV, Pascal VOC XML, COCO JSON, or a shapefile /
GeoPackage / GeoJSON in map coordinates) the boxes of RASTER (rows whose image_path
is the raster's file name) are shifted into each tile and written to
<out-dir>/<raster stem>.csv, ready for `deepforest-lite train --train`. A box cut by
a tile edge is kept, clipped, when at least --min-visible (default 0.5) of its area
is inside the tile. Tiles without boxes are skipped unless --allow-empty (then they
are 0,0,0,0 rows: negative examples).

Without ANNOTATIONS every window with data is cut and no CSV is written: tiles to
annotate, or to predict on.
"""

_EPILOG = """\
examples:
  deepforest-lite split ortho.tif crowns.gpkg --out-dir tiles/ --label-column species
  deepforest-lite split ortho.tif crowns.csv --out-dir tiles/ --allow-empty --format png --min-visible 0.6
  deepforest-lite split ortho.tif --out-dir unlabelled/ --patch-size 800
"""

#: keys a --config YAML file may set, with the option each stands for
CONFIG_KEYS: dict[str, str] = {
    "out_dir": "--out-dir",
    "patch_size": "--patch-size",
    "patch_overlap": "--patch-overlap",
    "allow_empty": "--allow-empty",
    "format": "--format",
    "min_visible": "--min-visible",
    "label_column": "--label-column",
    "label": "--label",
    "layer": "--layer",
    "image_name": "--image-name",
    "bands": "--bands",
    "value_range": "--value-range",
    "quiet": "--quiet",
    "gsd": "--gsd",
}

_DEFAULTS: dict[str, Any] = {
    "patch_size": 400,
    "patch_overlap": 0.05,
    "allow_empty": False,
    "format": "tif",
    "min_visible": 0.5,
    "label_column": "label",
    "quiet": False,
}


def add_parser(subparsers: Any) -> None:
    """Register ``split`` on the ``deepforest-lite`` subcommand parser."""
    parser = subparsers.add_parser(
        "split",
        help="cut a large raster (and its boxes) into training tiles",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("raster", metavar="RASTER", help="the raster to cut (GeoTIFF, PNG, ...); it comes first, "
                        "before its annotations (DeepForest's split_raster takes them the other way round)")
    parser.add_argument(
        "annotations",
        metavar="ANNOTATIONS",
        nargs="?",
        default=None,
        help="boxes of the raster (CSV, VOC XML, COCO JSON, .shp, .gpkg, .geojson); "
        "leave out to cut unlabelled tiles",
    )
    # None defaults: a value not given on the command line may come from --config
    parser.add_argument("--out-dir", metavar="DIR", help="folder for the tiles and the CSV (required)")
    parser.add_argument(
        "--patch-size", type=positive_int, metavar="PX", help="tile side in pixels (default 400)"
    )
    parser.add_argument(
        "--patch-overlap",
        type=fraction,
        metavar="FRACTION",
        help="fraction of the tile side shared by neighbouring tiles, in [0, 1) (default 0.05)",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        default=None,
        help="also write tiles without boxes, listed as 0,0,0,0 rows (negative examples) "
        "(default: tiles without boxes are skipped)",
    )
    parser.add_argument(
        "--format", choices=["tif", "png"], help="tile file format (default tif: GeoTIFF, georeferenced)"
    )
    parser.add_argument(
        "--min-visible",
        type=fraction,
        metavar="FRACTION",
        help="keep a box cut by a tile edge when at least this fraction of its area is inside "
        "the tile (default 0.5)",
    )
    parser.add_argument(
        "--label-column",
        metavar="NAME",
        help="vector files: the attribute column holding class names (default: label)",
    )
    parser.add_argument("--label", metavar="NAME", help="one class name for every box (default: the file's labels)")
    parser.add_argument("--layer", metavar="NAME", help="vector files: the layer to read (default: the first)")
    parser.add_argument(
        "--image-name",
        metavar="NAME",
        help="the image_path under which ANNOTATIONS list the raster, when it is not the "
        "raster's file name (default: the raster's file name)",
    )
    parser.add_argument(
        "--bands",
        type=_band_list,
        metavar="R,G,B",
        help="1-based band numbers read as red, green, blue (needed for rasters with more than 3 bands; "
        "default: bands 1,2,3 of RGB and RGBA rasters)",
    )
    parser.add_argument(
        "--value-range",
        type=_value_range,
        metavar="LOW,HIGH",
        help="fixed pixel values mapped to 0 and 255 instead of the percentile stretch "
        "of 16-bit and float rasters (default: 8-bit as is, other dtypes a 2-98 %% stretch)",
    )
    parser.add_argument(
        "--gsd",
        type=gsd_metres,
        metavar="METRES",
        help="cut tiles at this pixel size in metres (windows resampled, boxes scaled; the raster's own GSD "
        "comes from its transform); default: the raster's own",
    )
    parser.add_argument(
        "--config",
        metavar="YAML",
        help=f"read options from a YAML file (keys: {', '.join(CONFIG_KEYS)}); "
        "command-line options win (default: none)",
    )
    parser.add_argument(
        "--quiet", action="store_true", default=None,
        help="no progress bar and no summary (default: both on, progress on stderr)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Cut the tiles, print a summary; returns the exit code."""
    from ..preprocess import split_raster

    options = _options(args)
    check_split(args, options)  # the raster and annotations exist, --out-dir writable, before any tile is cut
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = split_raster(
            args.raster,
            args.annotations,
            options["patch_size"],
            options["patch_overlap"],
            out_dir=options["out_dir"],
            allow_empty=options["allow_empty"],
            image_format=options["format"],
            min_visible=options["min_visible"],
            bands=options.get("bands"),
            value_range=options.get("value_range"),
            image_name=options.get("image_name"),
            label_column=options["label_column"],
            label=options.get("label"),
            layer=options.get("layer"),
            progress=not options["quiet"],
            gsd=options.get("gsd"),
        )
    user_warnings = (str(w.message) for w in caught if issubclass(w.category, UserWarning))
    for message in dict.fromkeys(user_warnings):
        print("warning: " + _in_cli_terms(" ".join(message.split())), file=sys.stderr)
    if not options["quiet"]:
        skipped = []
        if result.skipped_empty:
            skipped.append(f"{result.skipped_empty} without boxes, which --allow-empty keeps")
        if result.skipped_nodata:
            skipped.append(f"{result.skipped_nodata} without data")
        note = f" (skipped {' and '.join(skipped)})" if skipped else ""
        at = f" at {result.gsd:.3f} m per pixel" if options.get("gsd") is not None else ""
        print(f"wrote {len(result.tiles)} tile(s){at} to {options['out_dir']}{note}")
        if result.csv_path is not None:
            found = result.annotation_set
            n_empty = len(found.empty_images)
            print(
                f"wrote {result.csv_path}: {len(found.boxes)} box(es)"
                + (f", {n_empty} tile(s) without boxes" if n_empty else "")
            )
    return 0


#: split_raster's Python spellings in its warnings -> this command's options
_CLI_TERMS: tuple[tuple[str, str], ...] = (
    ("split_raster wrote no tiles", "split wrote no tile"),
    ("pass allow_empty=True", "add --allow-empty"),
    ("min_visible=", "--min-visible "),
    ("a smaller min_visible", "a smaller --min-visible"),
    ("a larger patch_size or patch_overlap", "a larger --patch-size or --patch-overlap"),
)


def _in_cli_terms(message: str) -> str:
    for python, option in _CLI_TERMS:
        message = message.replace(python, option)
    return message


# -- options ------------------------------------------------------------------


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Command line over ``--config`` over the defaults."""
    config: dict[str, Any] = {}
    if args.config is not None:
        from ..config import load_config_file

        config = load_config_file(args.config)
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise ConfigError(
                f"Unknown key(s) {unknown} in {args.config!r}; valid keys for split are "
                f"{list(CONFIG_KEYS)}{unknown_keys_hint(unknown, CONFIG_KEYS)}."
            )
        for key in ("bands", "value_range"):
            if isinstance(config.get(key), list):
                config[key] = tuple(tuple(v) if isinstance(v, list) else v for v in config[key])
    options: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        given = getattr(args, key, None)
        if given is not None:
            options[key] = given
        elif key in config:
            options[key] = config[key]
        else:
            options[key] = _DEFAULTS.get(key)
    return options


def _band_list(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected three 1-based band numbers like 1,2,3, got {text!r}"
        )
    return values  # type: ignore[return-value]


def _value_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH like 0,4095, got {text!r}") from None
    if not low < high:
        raise argparse.ArgumentTypeError(f"expected LOW < HIGH, got {text!r}")
    return (low, high)
