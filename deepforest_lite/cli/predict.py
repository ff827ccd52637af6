"""``deepforest-lite predict``: detect objects in rasters of any size and write box files.

Each raster is predicted window by window (:meth:`Detector.predict_tile`).
With ``--output`` all rasters go into one file (their ``image_path`` column
tells them apart); with ``--output-dir`` each raster gets its own
``DIR/STEM.EXT`` and a rerun skips rasters whose file already exists, so an
interrupted batch resumes where it stopped. Every file is written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from ._common import (
    add_device_arguments,
    duration,
    fraction,
    gsd_metres,
    non_negative_int,
    overlap,
    positive_int,
)
from ._predict_checks import uses_lightning
from ._predict_plan import FORMATS
from ._predict_run import run_prediction

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Detect tree crowns (or birds, or whatever the model was trained on) in one or
more rasters. Each raster is cut into overlapping windows (DeepForest's grid:
side --patch-size px, neighbours sharing --patch-overlap of it), the model runs
on batches of windows, and boxes found twice in an overlap are merged.

Output: with --output, one file for all rasters (format from its extension:
.gpkg, .geojson, .shp or .csv; vector formats need georeferenced rasters in
one CRS). With --output-dir, one file per raster, DIR/STEM.gpkg for
georeferenced rasters and DIR/STEM.csv otherwise (or --format); rasters whose
file already exists are skipped, so rerunning the same command resumes an
interrupted batch. Boxes are in pixels (xmin, ymin, xmax, ymax, origin
top-left); georeferenced rasters also get map coordinates and box polygons in
the raster's CRS.

--plot: with one raster, a PNG file to draw the boxes on; with several
rasters, a folder that receives one STEM.png per raster predicted.

Surveys: RASTER may be a file, a glob, a folder or @list.txt. --output-dir
also writes the catalogue DIR/index.csv (--index gpkg: index.gpkg) and, with
--merged FILE, one file of all boxes. Finished windows are checkpointed beside
the output (OUT.partial.npz, every --checkpoint-every seconds), so rerunning a
killed command resumes mid-raster to the same result. --mosaic predicts
adjacent tiles of one survey as one seamless raster.
"""

_EPILOG = """\
examples:
  deepforest-lite predict ortho.tif --output trees.gpkg
  deepforest-lite predict 'survey/**/*.tif' --model my_model.pt --output-dir predictions/ --merged all.gpkg
  deepforest-lite predict site_tiles/ --mosaic --output site.gpkg
"""


def add_parser(subparsers: Any) -> None:
    """Register ``predict`` on the ``deepforest-lite`` subcommand parser."""
    from ..config import ENGINES, PRECISIONS, PredictConfig

    defaults = PredictConfig()
    parser = subparsers.add_parser(
        "predict",
        help="detect objects in rasters of any size and write box files",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "rasters", nargs="+", metavar="RASTER",
        help="GeoTIFF, PNG or JPEG files, globs ('tiles/**/*.tif', quoted), folders (their rasters) "
        "or @list.txt (one path, glob or folder per line)",
    )
    parser.add_argument(
        "--model",
        metavar="PATH_OR_NAME",
        help="a checkpoint file, a DeepForest checkpoint or hub name (e.g. weecology/deepforest-tree); "
        "default: the bundled tree model",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--output", metavar="FILE", help="one box file for all rasters (.gpkg, .geojson, .shp, .csv); "
                       "this or --output-dir is required")
    where.add_argument(
        "--output-dir", metavar="DIR", help="one box file per raster, DIR/STEM.EXT; existing files are skipped (this or --output is required)"
    )
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        help="file format with --output-dir (default: gpkg for georeferenced rasters, csv otherwise)",
    )
    parser.add_argument(
        "--patch-size", type=positive_int, default=defaults.patch_size, metavar="PX",
        help=f"window side in pixels (default {defaults.patch_size})",
    )
    parser.add_argument(
        "--patch-overlap", type=overlap, default=defaults.patch_overlap, metavar="FRACTION",
        help=f"fraction of the window side shared by neighbouring windows, in [0, 1) (default {defaults.patch_overlap})",
    )
    parser.add_argument(
        "--iou-threshold", type=fraction, default=defaults.iou_threshold, metavar="IOU",
        help=f"boxes from different windows overlapping more than this IoU (0-1) are merged (default {defaults.iou_threshold})",
    )
    parser.add_argument(
        "--score-threshold", type=fraction, default=None, metavar="SCORE",
        help="drop boxes scoring below this, in [0, 1] (default: the model's own, 0.1 for DeepForest models)",
    )
    parser.add_argument(
        "--class-aware", action="store_true",
        help="merge overlapping boxes only when their labels agree (default: across labels, as DeepForest)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=defaults.batch_size, metavar="N",
        help=f"windows per forward pass (default {defaults.batch_size})",
    )
    parser.add_argument(
        "--workers", type=non_negative_int, default=defaults.workers, metavar="N",
        help=f"processes reading windows while the model runs (default {defaults.workers}: the main process)",
    )
    parser.add_argument(
        "--device", default=defaults.device, metavar="DEVICE",
        help="auto (CUDA when available), cpu, cuda or cuda:N (default auto)",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default=defaults.precision,
        help="bf16 runs the network under bfloat16 autocast (faster on CPUs with AVX512-BF16 and on GPUs), "
        "fp16 under float16 autocast (CUDA only); boxes are decoded in float32 "
        f"(default {defaults.precision})",
    )
    parser.add_argument(
        "--engine", choices=ENGINES, default=defaults.engine,
        help="what runs the network: auto (onnxruntime on the CPU in fp32, torch otherwise), torch, "
        "onnxruntime, or openvino (CPU, fp32 or bf16; pip install deepforest_lite[openvino]); boxes are "
        f"decoded and merged the same way on each (default {defaults.engine})",
    )
    parser.add_argument(
        "--bands", type=_bands, metavar="R,G,B",
        help="1-based band numbers used as red, green, blue (needed for rasters with more than 3 bands; "
        "default: bands 1,2,3 of RGB and RGBA rasters)",
    )
    parser.add_argument(
        "--value-range", type=_value_range, metavar="LOW,HIGH",
        help="scale pixel values LOW..HIGH to 0..255 (default: 8-bit as is, other dtypes a 2-98 %% stretch)",
    )
    parser.add_argument(
        "--crs", type=_crs, metavar="CRS",
        help="CRS of the boxes written: EPSG:xxxx (anything PROJ reads) reprojects every output, the "
        "map_* columns included; 'raster' keeps the raster's CRS (default: the raster's CRS, except "
        ".geojson, written in WGS84 longitude/latitude as RFC 7946 says). A CSV names its CRS in the map_crs column",
    )
    parser.add_argument("--plot", metavar="PNG_OR_DIR", help="draw the boxes: a .png file for one raster, a folder for several (default: no picture)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (default: progress on stderr)")
    parser.add_argument(
        "--labels", metavar="NAMES",
        help="comma-separated class names for a checkpoint that stores none, e.g. DeepForest's NEON.pt: Tree "
        "(default: the checkpoint's own)",
    )
    parser.add_argument(
        "--gsd", type=gsd_metres, metavar="METRES",
        help="the rasters' pixel size in metres, for rasters without a usable CRS or to override the transform's (default: from the transform)",
    )
    parser.add_argument(
        "--no-rescale", action="store_true",
        help="feed raster pixels as they are (default: windows are resampled to the model's GSD when both are "
        "known and differ by more than 10 %%)",
    )
    parser.add_argument(
        "--model-gsd", type=gsd_metres, metavar="METRES",
        help="the GSD the model was trained at, overriding what its checkpoint records (default: the checkpoint's)",
    )
    parser.add_argument(
        "--index", choices=("csv", "gpkg"), default="csv",
        help="with --output-dir, the catalogue DIR/index.csv or DIR/index.gpkg: one row per raster with its "
        "output, status, boxes, windows, seconds, CRS, footprint, model and engine (default csv)",
    )
    parser.add_argument(
        "--merged", metavar="FILE",
        help="with --output-dir, also one file of every raster's boxes (.gpkg, .geojson, .shp, .csv); rasters in "
        "different CRSs need --crs to reproject them into a vector file (a .csv keeps each file's CRS in map_crs) "
        "(default: no merged file)",
    )
    parser.add_argument(
        "--mosaic", action="store_true",
        help="treat the rasters as adjacent tiles of one survey (same CRS and pixel size): one virtual raster, "
        "windows across tile edges read from every tile, boxes merged once; each box is given to the tile "
        "holding its centre (image_path, tile pixels). Writes --output, or DIR/mosaic.EXT with --output-dir "
        "(default: each raster on its own)",
    )
    parser.add_argument(
        "--checkpoint-every", type=duration, default=30.0, metavar="SECONDS",
        help="save the boxes of finished windows beside the output at most this often, so a killed run resumes "
        "mid-raster when rerun (0: after every batch; default 30)",
    )
    parser.add_argument("--no-checkpoint", action="store_true", help="no window checkpoints (default: checkpoints on)")
    from ..config import TrainConfig

    processes = parser.add_argument_group(
        "many devices and machines (Lightning Fabric; any of these replaces --device)",
        "rasters are shared out across the processes (round-robin), or the windows of each\n"
        "raster when there are fewer rasters than processes; the files written equal a\n"
        "one-process run's. Under torchrun or SLURM give the --devices and --num-nodes the\n"
        "job starts (docs/predicting.md has the recipes).",
    )
    add_device_arguments(processes, TrainConfig())
    parser.set_defaults(run=run)


# --------------------------------------------------------------------------- argument types


def _bands(text: str) -> tuple[int, int, int]:
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected three band numbers >= 1 like 1,2,3, got {text!r}")
    return (values[0], values[1], values[2])


def _crs(text: str) -> str:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    from ..geo import KEEP_CRS

    if text.strip().lower() == KEEP_CRS:
        return KEEP_CRS
    try:
        CRS.from_user_input(text)
    except CRSError:
        raise argparse.ArgumentTypeError(
            f"unknown CRS {text!r}; give e.g. EPSG:32617 or EPSG:4326, or {KEEP_CRS!r}"
        ) from None
    return text


def _value_range(text: str) -> tuple[float, float]:
    parts = text.replace(" ", "").split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH like 0,4095, got {text!r}") from None
    if not low < high:
        raise argparse.ArgumentTypeError(f"expected LOW < HIGH, got {text!r}")
    return (low, high)


# --------------------------------------------------------------------------- running


def run(args: argparse.Namespace) -> int:
    """Check everything that can be checked, load the model, predict, write; returns the exit code.

    A process a launcher started as a rank other than 0 prints nothing (rank 0 says it all).
    """
    from ..ranks import launched_as_secondary

    if uses_lightning(args) and launched_as_secondary():
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            return run_prediction(args)
    return run_prediction(args)
