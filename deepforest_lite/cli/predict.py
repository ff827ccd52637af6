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
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ._checks import check_predict
from ._common import (
    add_device_arguments,
    duration,
    fraction,
    gsd_metres,
    non_negative_int,
    overlap,
    parse_devices,
    positive_int,
)

__all__ = ["add_parser", "run"]

#: ``--format`` value -> file extension
FORMATS: dict[str, str] = {"gpkg": ".gpkg", "geojson": ".geojson", "shp": ".shp", "csv": ".csv"}

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
        help="what runs the network: auto (onnxruntime on the CPU in fp32, torch otherwise), torch or "
        f"onnxruntime; boxes are decoded and merged the same way on each (default {defaults.engine})",
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
    return values  # type: ignore[return-value]


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

    if _uses_lightning(args) and launched_as_secondary():
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            return _run(args)
    return _run(args)


def _uses_lightning(args: argparse.Namespace) -> bool:
    """Whether any of ``--accelerator``, ``--devices``, ``--num-nodes``, ``--strategy`` was given."""
    return any(getattr(args, name, None) is not None for name in ("accelerator", "devices", "num_nodes", "strategy"))


def _run(args: argparse.Namespace) -> int:
    from ..config import PredictConfig
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
    plot_dir = _check_plot(args.plot, len(rasters))
    if _uses_lightning(args):
        if args.device != "auto":
            raise InvalidInputError(
                f"--device {args.device!r} picks one device, but --accelerator/--devices/--num-nodes/--strategy "
                "let Lightning give each process its own; drop --device (or those)."
            )
        args.devices = parse_devices(args.devices) if args.devices is not None else None
    from ..model import resolve_device  # the first torch import

    device = resolve_device(args.device)  # an unavailable device fails before the model is loaded
    from ..engines import check_precision

    # fp16 off CUDA is refused before the progress bar starts (Lightning's "auto" picks CUDA when there is one)
    check_precision(args.precision, resolve_device("cpu") if args.accelerator == "cpu" else device)
    # --bands and --value-range go to each raster's RasterSource, opened in _plan
    config = PredictConfig(
        patch_size=args.patch_size,
        patch_overlap=args.patch_overlap,
        iou_threshold=args.iou_threshold,
        class_aware_merge=args.class_aware,
        batch_size=args.batch_size,
        workers=args.workers,
        device=str(device),
        precision=args.precision,
        engine=args.engine,
        gsd=getattr(args, "gsd", None),
        rescale=not getattr(args, "no_rescale", False),
    )
    if args.mosaic:
        jobs, skipped = _plan_mosaic(rasters, args)
    else:
        jobs, skipped = _plan(rasters, args)  # (raster, output file or None, source) for rasters still to do
    if args.merged is not None:
        _check_merged_crs(rasters, args)
    catalogue = _Catalogue(args, skipped) if args.output_dir is not None else None
    if not jobs:
        if catalogue is not None:
            catalogue.write()
        if args.merged is not None:
            _write_merged(catalogue, args)
        return 0
    ranks = _launch(args, str(device))  # with Lightning settings: the other processes start here
    if ranks.shared:
        config = dataclasses.replace(config, device=ranks.device)
    share_windows = ranks.shared and len(jobs) < ranks.world_size  # else rasters go round-robin
    mine = list(enumerate(jobs)) if share_windows else ranks.mine(list(enumerate(jobs)))
    window_ranks = ranks if share_windows else None
    writer = ranks.main or not share_windows  # who writes a raster's output
    detector = _load_detector(args, config.device)
    bar = _survey_bar(detector, [job for _, job in mine], config, args, window_ranks) if ranks.main else None
    previous = _terminate_as_interrupt()
    finished = False
    try:
        if args.output_dir is not None:
            for _, (raster, target, source) in mine:
                started = time.monotonic()
                checkpoint = _checkpoint_path(target, None)
                table = _predict(detector, source, config, args, checkpoint, bar, window_ranks)
                if args.mosaic:
                    table = source.assign(table)
                if writer:
                    _write(table, target, args.crs)
                    catalogue.add(raster, target, source, table, time.monotonic() - started, detector)
                    _say(f"wrote {target} ({_summary(table)})", bar)
                    if not args.mosaic:
                        _plot(raster, source, table, args.plot, plot_dir)
                _release_checkpoint(checkpoint, window_ranks)
            catalogue.absorb(ranks.gather(catalogue.rows), [raster for raster, _, _ in jobs])
            if ranks.main:
                catalogue.write()
                if args.merged is not None:
                    _write_merged(catalogue, args)
            finished = True
            ranks.barrier()
            return 0

        tables = []
        for index, (raster, _, source) in mine:
            table = _predict(
                detector, source, config, args, _checkpoint_path(args.output, raster, args.mosaic), bar, window_ranks
            )
            tables.append((index, source.assign(table) if args.mosaic else table))
            if writer:
                _plot(raster, source, tables[-1][1], args.plot, plot_dir)
        if not share_windows:
            tables = sorted((item for part in ranks.gather(tables) for item in part), key=lambda item: item[0])
        finished = True
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)
        if bar is not None:
            bar.close()
        if catalogue is not None and ranks.main and not finished:
            catalogue.write()  # what is done so far, when the run stops early
        for _, _, source in jobs:
            if hasattr(source, "cleanup"):
                source.cleanup()
    ordered = [table for _, table in tables]
    if ranks.main:
        ext = Path(args.output).suffix.lower()
        combined = _combine(ordered, ext, args.crs)
        _write(combined, args.output, None if ext == ".csv" else args.crs)  # a CSV is converted in _combine
        scales = "; ".join(dict.fromkeys(_scale_note(t) for t in ordered if _scale_note(t)))
        print(f"wrote {args.output} ({len(combined)} boxes from {len(ordered)} raster{'s' if len(ordered) != 1 else ''}"
              + (f"; {scales}" if scales else "") + ")")
    ranks.barrier()  # the output is written: every rank may drop its checkpoints
    for _, (raster, _, _) in mine:
        _release_checkpoint(_checkpoint_path(args.output, raster, args.mosaic), window_ranks, wait=False)
    ranks.barrier()
    return 0


def _launch(args: argparse.Namespace, device: str) -> Any:
    """This process's :class:`~deepforest_lite.ranks.Ranks`: Lightning's launch with its settings, else one process."""
    from ..ranks import Ranks, launch

    if not _uses_lightning(args):
        return Ranks.single(device)
    return launch(
        accelerator=args.accelerator or "auto",
        devices=args.devices if args.devices is not None else "auto",
        num_nodes=args.num_nodes or 1,
        strategy=args.strategy or "auto",
    )


def _release_checkpoint(path: str, window_ranks: Any, wait: bool = True) -> None:
    """Remove a raster's window checkpoint once its output is written (with shared windows: each rank its own).

    With shared windows rank 0 writes the output, so the ranks first wait for it (``wait``).
    """
    if window_ranks is None:
        _remove_checkpoint(path)
        return
    from ..resume import rank_checkpoint_path

    if wait:
        window_ranks.barrier()
    _remove_checkpoint(rank_checkpoint_path(path, window_ranks.rank, window_ranks.world_size))


def _terminate_as_interrupt() -> Any:
    """Make SIGTERM stop the run like Ctrl-C; returns the handler it replaced (``None``: none set).

    SIGTERM is what SLURM and most schedulers send before a kill; raised as an interrupt, it lets the
    window checkpoint be saved on the way out.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("terminated (SIGTERM); rerun the same command to resume")

    return signal.signal(signal.SIGTERM, stop)


def _say(text: str, bar: Any) -> None:
    """Print a line on stdout without breaking the progress bar."""
    if bar is None:
        print(text)
    else:
        bar.write(text, file=sys.stdout)


def _checkpoint_path(output: str, raster: str | None, mosaic: bool = False) -> str:
    """The window checkpoint beside an output: ``OUT.partial.npz`` (``OUT.STEM.partial.npz`` with ``--output``)."""
    from ..resume import CHECKPOINT_SUFFIX

    if raster is None:
        return output + CHECKPOINT_SUFFIX
    return f"{output}.{'mosaic' if mosaic else Path(raster).stem}{CHECKPOINT_SUFFIX}"


def _remove_checkpoint(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _plan_mosaic(rasters: list[str], args: argparse.Namespace) -> tuple[list[tuple[str, str | None, Any]], list[Any]]:
    """One job reading every raster as one mosaic (checked before the model loads)."""
    from ..mosaic import MosaicSource

    source = MosaicSource(rasters, bands=args.bands, value_range=args.value_range)
    try:
        source.close()
        target = None
        if args.output_dir is not None:
            fmt = args.format or "gpkg"
            target = os.path.join(args.output_dir, "mosaic" + FORMATS[fmt])
            _remove_leftovers(args.output_dir, "mosaic")
            if _is_complete(target):
                print(f"skipping the mosaic: {target} exists")
                source.cleanup()
                return [], [(f"mosaic of {len(rasters)} rasters", target, None)]
    except BaseException:
        source.cleanup()
        raise
    return [(f"mosaic of {len(rasters)} rasters", target, source)], []


def _survey_bar(
    detector: Any, jobs: list[tuple[str, str | None, Any]], config: Any, args: argparse.Namespace, window_ranks: Any = None
) -> Any:
    """One tqdm bar over every window of every raster still to do (``None`` with ``--quiet``).

    ``window_ranks``: the rasters' windows are shared by these processes; the bar counts this rank's block.
    """
    if args.quiet:
        return None
    import warnings

    from tqdm.auto import tqdm

    from .. import predict as predict_module

    total = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for raster, _, source in jobs:
            _, grid = predict_module._plan_grid(source, config, detector.gsd, os.path.basename(raster))
            windows = predict_module._grid_windows(source, config, grid)
            total += len(predict_module._rank_windows(windows, window_ranks, config.batch_size))
    return tqdm(total=total, unit="window", file=sys.stderr, dynamic_ncols=True)


def _check_merged_crs(rasters: list[str], args: argparse.Namespace) -> None:
    """The merged file's CRS rules (as for ``--output``), from the rasters' metadata."""
    from ..rasterfile import raster_header

    _check_one_crs([raster_header(r) for r in rasters], Path(args.merged).suffix.lower(), args.merged, args.crs)


class _Catalogue:
    """The rows of DIR/index.csv (or .gpkg): this run's rasters and those kept from an earlier run."""

    def __init__(self, args: argparse.Namespace, skipped: list[tuple[str, str, Any]]) -> None:
        from ..survey import read_catalogue

        self.path = os.path.join(args.output_dir, f"index.{args.index}")
        self.earlier = read_catalogue(self.path)
        self.model = args.model or "default"
        self.engine = args.engine
        self.rows: dict[str, Any] = {}
        for raster, target, _ in skipped:
            self._skipped(raster, target)

    def _skipped(self, raster: str, target: str) -> None:
        from ..survey import CatalogueRow

        before = self.earlier.get(raster, {})
        crs, outline = before.get("crs", ""), before.get("footprint", "")
        if not outline and os.path.isfile(raster):
            crs, outline = _outline(raster)
        self.rows[raster] = CatalogueRow(
            raster=raster, output=target, status="skipped", boxes=_count_boxes(target),
            windows=_int_or_none(before.get("windows")), seconds=None, crs=str(crs or ""),
            footprint=str(outline or ""), model=str(before.get("model", "")), engine=str(before.get("engine", "")),
        )

    def add(self, raster: str, target: str, source: Any, table: Any, seconds: float, detector: Any) -> None:
        from ..survey import CatalogueRow, footprint

        crs, outline = footprint(source)
        self.rows[raster] = CatalogueRow(
            raster=raster, output=target, status="resumed" if table.attrs.get("resumed_windows") else "done",
            boxes=len(table), windows=table.attrs.get("windows"), seconds=round(seconds, 3), crs=crs,
            footprint=outline, model=self.model, engine=f"{self.engine} on {detector.device}",
        )

    def absorb(self, parts: list[dict[str, Any]], order: list[str]) -> None:
        """Take the rows every rank made (``Ranks.gather`` of ``rows``): skipped rasters first, then ``order``."""
        found: dict[str, Any] = {}
        for part in parts:
            found.update(part)
        skipped = [raster for raster, row in self.rows.items() if row.status == "skipped"]
        self.rows = {raster: found[raster] for raster in skipped + order if raster in found}

    def write(self) -> None:
        from ..survey import write_catalogue

        if self.rows:
            write_catalogue(list(self.rows.values()), self.path)

    def outputs(self) -> list[str]:
        return [row.output for row in self.rows.values()]


def _outline(raster: str) -> tuple[str, str]:
    from ..rasterfile import raster_header
    from ..survey import footprint

    return footprint(raster_header(raster))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _count_boxes(path: str) -> int:
    if path.endswith(".csv"):
        import pandas as pd

        return len(pd.read_csv(path, usecols=["xmin"]))
    import pyogrio

    return int(pyogrio.read_info(path)["features"])


def _read_back(path: str) -> Any:
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


def _write_merged(catalogue: Any, args: argparse.Namespace) -> None:
    """``--merged``: every raster's boxes (read back from its file) in one file."""
    ext = Path(args.merged).suffix.lower()
    tables = [_read_back(path) for path in catalogue.outputs()]
    if ext != ".csv" and any(getattr(t, "crs", None) is None for t in tables):
        raise InvalidInputError(
            f"--merged {args.merged!r} is a vector file but some outputs have no CRS; give a .csv file instead."
        )
    combined = _combine(tables, ext, args.crs)
    _write(combined, args.merged, None if ext == ".csv" else args.crs)
    print(f"wrote {args.merged} ({len(combined)} boxes from {len(tables)} file{'s' if len(tables) != 1 else ''})")


def _check_plot(plot: str | None, n_rasters: int) -> str | None:
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


def _plan(
    rasters: list[str], args: argparse.Namespace
) -> tuple[list[tuple[str, str | None, Any]], list[tuple[str, str, None]]]:
    """Open every raster still to do (fails early on unusable ones) and name its output; also the skipped ones."""
    from ..raster import RasterSource

    stems: dict[str, str] = {}
    jobs = []
    skipped = []
    for raster in rasters:
        stem = Path(raster).stem
        if args.output_dir is not None:
            if stem in stems:
                raise InvalidInputError(
                    f"Rasters {stems[stem]!r} and {raster!r} would both be written to {stem}.*; "
                    "rename one, or predict them into different --output-dir folders."
                )
            stems[stem] = raster
            _remove_leftovers(args.output_dir, stem)
            done = [
                os.path.join(args.output_dir, stem + ext)
                for fmt, ext in FORMATS.items()
                if args.format in (None, fmt) and _is_complete(os.path.join(args.output_dir, stem + ext))
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
        _check_one_crs([source for _, _, source in jobs], Path(args.output).suffix.lower(), args.output, args.crs)
    return jobs, skipped


def _is_complete(path: str) -> bool:
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


def _remove_leftovers(folder: str, stem: str) -> None:
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


def _check_one_crs(sources: list[Any], ext: str, output: str, crs: str | None = None) -> None:
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


def _load_detector(args: argparse.Namespace, device: str) -> Any:
    from ..detector import load_model

    labels = getattr(args, "labels", None)
    names = [s.strip() for s in labels.split(",") if s.strip()] if labels else None
    detector = load_model(args.model, names, device=device)
    if args.score_threshold is not None:
        detector.score_threshold = args.score_threshold
    if getattr(args, "model_gsd", None) is not None:
        detector.gsd = args.model_gsd
    return detector


def _predict(
    detector: Any, source: Any, config: Any, args: argparse.Namespace, checkpoint: str | None = None, bar: Any = None,
    window_ranks: Any = None,
) -> Any:
    import warnings

    from ..gsd import GSDWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GSDWarning)
        table = _predict_tile(detector, source, config, args, checkpoint, bar, window_ranks)
    for warning in caught:
        if issubclass(warning.category, GSDWarning):
            print("note: " + " ".join(str(warning.message).replace("gsd=... (command line: --gsd)", "--gsd METRES")
                                      .split()), file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return table


def _predict_tile(
    detector: Any, source: Any, config: Any, args: argparse.Namespace, checkpoint: str | None = None, bar: Any = None,
    window_ranks: Any = None,
) -> Any:
    if bar is not None:
        bar.set_description(os.path.basename(source.path) if not hasattr(source, "members") else "mosaic")
    return detector.predict_tile(
        source, config=config,  # every setting in the one PredictConfig _run built
        progress=bar if bar is not None else False,
        checkpoint=None if args.no_checkpoint or checkpoint is None else checkpoint,
        checkpoint_seconds=args.checkpoint_every,
        ranks=window_ranks,
    )


def _combine(tables: list[Any], ext: str, crs: str | None = None) -> Any:
    """One table for several rasters: a GeoDataFrame in the output CRS for vector files, a plain table for CSV."""
    import geopandas as gpd
    import pandas as pd

    from ..geo import csv_table, output_crs, reproject_boxes

    if ext != ".csv":
        target = output_crs(ext, tables[0].crs, crs)
        tables = [reproject_boxes(t, target) for t in tables]
        return gpd.GeoDataFrame(pd.concat(tables, ignore_index=True), geometry="geometry", crs=target)
    return pd.concat([csv_table(t, crs) for t in tables], ignore_index=True)


def _write(table: Any, path: str, crs: str | None = None) -> None:
    from ..geo import write_boxes

    write_boxes(table, path, crs=crs)


def _plot(raster: str, source: Any, table: Any, plot: str | None, plot_dir: str | None) -> None:
    """The --plot picture of one raster, drawn from the ``source`` prediction read (same bands and stretch)."""
    if plot is None:
        return
    from ..visualize import plot_predictions

    png = os.path.join(plot_dir, Path(raster).stem + ".png") if plot_dir is not None else plot
    plot_predictions(source, table, png, show_labels=table["label"].nunique() > 1)
    print(f"wrote {png}")


def _summary(table: Any) -> str:
    windows = table.attrs.get("windows")
    empty = table.attrs.get("empty_windows", 0)
    text = f"{len(table)} boxes"
    if windows is not None:
        text += f", {windows} windows" + (f" of which {empty} empty and skipped" if empty else "")
    note = _scale_note(table)
    return text + (f", {note}" if note else "")


def _scale_note(table: Any) -> str:
    """The scale the raster was predicted at, from the table's attrs (empty when not reported)."""
    if "rescaled" not in table.attrs:
        return ""
    from ..gsd import Scale

    attrs = table.attrs
    scale = Scale(attrs.get("model_gsd"), attrs.get("raster_gsd"), attrs.get("raster_gsd_source"),
                  tuple(attrs.get("scale", (1.0, 1.0))), bool(attrs.get("rescaled")))
    return scale.describe()

