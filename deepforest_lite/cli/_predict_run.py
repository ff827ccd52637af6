"""``deepforest-lite predict``: the run: check, plan, launch the processes, predict each raster, write.

With ``--output`` every raster's boxes go into one file; with ``--output-dir`` each raster
gets ``DIR/STEM.EXT`` as soon as it is done and the run ends with the catalogue (and
``--merged``). With Lightning settings (``--devices`` and friends) several processes take
part (:func:`deepforest_lite.ranks.launch`): the rasters are dealt out round-robin, or each
raster's windows when there are fewer rasters than processes; rank 0 writes what they share.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._predict_catalogue import Catalogue
from ._predict_checks import check_arguments, check_device, check_merged_crs, uses_lightning
from ._predict_one import checkpoint_path, load_detector, predict_raster, release_checkpoint
from ._predict_output import combine, plot, say, scale_note, summary, write, write_merged
from ._predict_plan import Job, plan, plan_mosaic

if TYPE_CHECKING:
    import pandas as pd

    from ..config import PredictConfig
    from ..detector import Detector
    from ..ranks import Ranks

__all__ = ["run_prediction"]


def run_prediction(args: argparse.Namespace) -> int:
    """Check everything that can be checked, load the model, predict, write; returns the exit code."""
    from ..config import PredictConfig

    rasters, plot_dir = check_arguments(args)
    device = check_device(args)
    # --bands and --value-range go to each raster's RasterSource, opened in plan
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
        jobs, skipped = plan_mosaic(rasters, args)
    else:
        jobs, skipped = plan(rasters, args)  # (raster, output file or None, source) for rasters still to do
    if args.merged is not None:
        check_merged_crs(rasters, args)
    catalogue = Catalogue(args, skipped) if args.output_dir is not None else None
    if not jobs:
        if catalogue is not None:
            catalogue.write()
            if args.merged is not None:  # --merged comes with --output-dir only (check_arguments)
                write_merged(catalogue, args)
        return 0
    ranks = launch_ranks(args, str(device))  # with Lightning settings: the other processes start here
    if ranks.shared:
        config = dataclasses.replace(config, device=ranks.device)
    share_windows = ranks.shared and len(jobs) < ranks.world_size  # else rasters go round-robin
    mine = list(enumerate(jobs)) if share_windows else ranks.mine(list(enumerate(jobs)))
    window_ranks = ranks if share_windows else None
    writer = ranks.main or not share_windows  # who writes a raster's output
    detector = load_detector(args, config.device)
    bar = survey_bar(detector, [job for _, job in mine], config, args, window_ranks) if ranks.main else None
    previous = terminate_as_interrupt()
    finished = False
    try:
        if catalogue is not None:  # --output-dir
            _predict_survey(mine, jobs, catalogue, detector, config, args, ranks, window_ranks, writer, bar, plot_dir)
            finished = True
            ranks.barrier()
            return 0
        tables = _predict_for_one_file(mine, detector, config, args, ranks, window_ranks, writer, bar, plot_dir)
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
        combined = combine(ordered, ext, args.crs)
        write(combined, args.output, None if ext == ".csv" else args.crs)  # a CSV is converted in combine
        scales = "; ".join(dict.fromkeys(scale_note(t) for t in ordered if scale_note(t)))
        print(f"wrote {args.output} ({len(combined)} boxes from {len(ordered)} raster{'s' if len(ordered) != 1 else ''}"
              + (f"; {scales}" if scales else "") + ")")
    ranks.barrier()  # the output is written: every rank may drop its checkpoints
    for _, (raster, _, _) in mine:
        release_checkpoint(checkpoint_path(args.output, raster, args.mosaic), window_ranks, wait=False)
    ranks.barrier()
    return 0


def _predict_survey(
    mine: list[tuple[int, Job]], jobs: list[Job], catalogue: Catalogue, detector: Detector, config: PredictConfig,
    args: argparse.Namespace, ranks: Ranks, window_ranks: Ranks | None, writer: bool, bar: Any, plot_dir: str | None,
) -> None:
    """``--output-dir``: each of this process's rasters into its own file, then the catalogue and ``--merged``."""
    for _, (raster, target, source) in mine:
        assert target is not None  # plan names every raster's file with --output-dir
        started = time.monotonic()
        checkpoint = checkpoint_path(target, None)
        table = predict_raster(detector, source, config, args, checkpoint, bar, window_ranks)
        if args.mosaic:
            table = source.assign(table)
        if writer:
            write(table, target, args.crs)
            catalogue.add(raster, target, source, table, time.monotonic() - started, detector)
            say(f"wrote {target} ({summary(table)})", bar)
            if not args.mosaic:
                plot(raster, source, table, args.plot, plot_dir)
        release_checkpoint(checkpoint, window_ranks)
    catalogue.absorb(ranks.gather(catalogue.rows), [raster for raster, _, _ in jobs])
    if ranks.main:
        catalogue.write()
        if args.merged is not None:
            write_merged(catalogue, args)


def _predict_for_one_file(
    mine: list[tuple[int, Job]], detector: Detector, config: PredictConfig, args: argparse.Namespace, ranks: Ranks,
    window_ranks: Ranks | None, writer: bool, bar: Any, plot_dir: str | None,
) -> list[tuple[int, pd.DataFrame]]:
    """``--output``: the boxes of every raster, ``(index in the jobs, table)`` in the jobs' order on every rank."""
    tables = []
    for index, (raster, _, source) in mine:
        table = predict_raster(
            detector, source, config, args, checkpoint_path(args.output, raster, args.mosaic), bar, window_ranks
        )
        tables.append((index, source.assign(table) if args.mosaic else table))
        if writer:
            plot(raster, source, tables[-1][1], args.plot, plot_dir)
    if window_ranks is None:  # rasters went round-robin: collect every rank's
        tables = sorted((item for part in ranks.gather(tables) for item in part), key=lambda item: item[0])
    return tables


def launch_ranks(args: argparse.Namespace, device: str) -> Ranks:
    """This process's :class:`~deepforest_lite.ranks.Ranks`: Lightning's launch with its settings, else one process."""
    from ..ranks import Ranks, launch

    if not uses_lightning(args):
        return Ranks.single(device)
    return launch(
        accelerator=args.accelerator or "auto",
        devices=args.devices if args.devices is not None else "auto",
        num_nodes=args.num_nodes or 1,
        strategy=args.strategy or "auto",
    )


def terminate_as_interrupt() -> Any:
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


def survey_bar(
    detector: Detector, jobs: list[Job], config: PredictConfig, args: argparse.Namespace, window_ranks: Ranks | None = None
) -> Any:
    """One tqdm bar over every window of every raster still to do (``None`` with ``--quiet``).

    ``window_ranks``: the rasters' windows are shared by these processes; the bar counts this rank's block.
    """
    if args.quiet:
        return None
    import warnings

    from tqdm.auto import tqdm

    from .. import tiling

    total = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for raster, _, source in jobs:
            _, grid = tiling.plan_grid(source, config, detector.gsd, os.path.basename(raster))
            windows = tiling.grid_windows(source, config, grid)
            total += len(tiling.rank_windows(windows, window_ranks, config.batch_size))
    return tqdm(total=total, unit="window", file=sys.stderr, dynamic_ncols=True)
