"""Prediction: images (and raster windows) -> model -> box tables.

Images enter the network as RGB float32 in [0, 1] (uint8 / 255), channels
first, exactly as DeepForest feeds them; the model's own transform normalises
and resizes them, and returns boxes in the coordinates of the image passed in.

:func:`predict_image` runs the model once on a whole image.
:func:`predict_tile` runs it on the overlapping windows of a raster of any
size: windows are read lazily by a :class:`~deepforest_lite.dataset.WindowDataset`
through a ``DataLoader`` (optionally in worker processes, so reading overlaps
with the forward passes), empty windows are skipped, the boxes are shifted
into raster pixels and merged across overlaps (:mod:`deepforest_lite.merge`),
and georeferenced rasters get map coordinates (:mod:`deepforest_lite.geo`).
What it settles before reading a window (the raster argument, the scale and
grid, a rank's block) is :mod:`deepforest_lite.tiling`; the boxes it keeps
between batches are a :class:`~deepforest_lite.detections.WindowBoxes`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .checks import check_range
from .config import PredictConfig
from .dataset import image_to_tensor
from .detections import WindowBoxes, detections_to_table
from .errors import InvalidInputError
from .labels import LabelMap
from .raster import RasterSource, check_rgb_array
from .tiling import GDAL_CACHE_BYTES, grid_windows, open_source, plan_grid, rank_windows, setup_reader_process

if TYPE_CHECKING:  # pragma: no cover
    from .gsd import ScaledGrid
    from .ranks import Ranks

__all__ = ["image_to_tensor", "detections_to_table", "predict_image", "predict_tile", "run_model"]


@torch.inference_mode()
def run_model(
    model: nn.Module, images: Sequence[Tensor], precision: str = "fp32"
) -> list[dict[str, Tensor]]:
    """Forward a batch of ``3 x H x W`` float images in eval mode; returns torchvision detections."""
    from .engines import ExportedRetinaNet, model_device

    model.eval()
    device = model_device(model)
    batch = [img.to(device, non_blocking=True) for img in images]
    if precision == "fp32" or isinstance(model, ExportedRetinaNet):  # an engine's network sets its own precision
        return model(batch)
    # The network runs in bfloat16 / float16; box decoding and NMS get float32 head outputs, so
    # coordinates keep full precision (bfloat16 rounds 300 px to steps of 2 px).
    head = cast(torch.nn.Module, model.head)  # nn.Module types attributes as Tensor | Module
    hook = head.register_forward_hook(lambda module, args, out: {k: v.float() for k, v in out.items()})
    try:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16):
            return model(batch)
    finally:
        hook.remove()


def predict_image(
    model: nn.Module,
    label_map: LabelMap,
    image: str | os.PathLike | np.ndarray,
    *,
    image_path: str | None = None,
    precision: str = "fp32",
    engine: str = "auto",
    gsd: float | None = None,
    rescale: bool = True,
    model_gsd: float | None = None,
) -> pd.DataFrame:
    """Detect objects in one image.

    Args:
        model: a RetinaNet built by :func:`deepforest_lite.model.build_retinanet`.
        label_map: turns class ids into names.
        image: a file path (PNG, JPEG, TIFF) or an ``H x W x 3`` uint8 RGB array.
        image_path: the ``image_path`` value of the rows; defaults to the file's
            base name (as DeepForest writes it), or empty for arrays.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 on CUDA only).
        engine: ``"auto"``, ``"torch"``, ``"onnxruntime"`` or ``"openvino"``, on the
            device the weights are on (see :mod:`deepforest_lite.engines`).
        gsd: the image's GSD in metres per pixel (overrides the one a
            georeferenced file's transform gives; arrays have none otherwise).
        rescale: resample the whole image to ``model_gsd`` first when both
            GSDs are known and differ by more than 10 %
            (:func:`deepforest_lite.gsd.plan_scale`).
        model_gsd: the model's GSD in metres, or ``None``.

    Returns:
        A box table (``xmin, ymin, xmax, ymax, label, score, image_path``) in the
        image's pixel coordinates (also when it was resampled for the
        network), sorted by descending score; empty when nothing is found.
    """
    from .engines import model_device, prepare_model
    from .gsd import plan_scale

    model = prepare_model(model, engine, precision, model_device(model))
    if isinstance(image, (str, os.PathLike)):
        if image_path is None:
            image_path = os.path.basename(os.fspath(image))
        with RasterSource(image) as source:
            scale = plan_scale(model_gsd, source.gsd, given=gsd, rescale=rescale)
            height, width = source.shape
            out_shape = _image_out_shape(height, width, scale.factor) if scale.rescaled else None
            array = source.read_window(None, out_shape=out_shape)
    else:
        array = check_rgb_array(image)
        scale = plan_scale(model_gsd, None, given=gsd, rescale=rescale)
        height, width = array.shape[:2]
        if scale.rescaled:
            from .raster import resample_array

            array = resample_array(array, _image_out_shape(height, width, scale.factor))
    (detection,) = run_model(model, [image_to_tensor(array)], precision)
    table = detections_to_table(detection, label_map, image_path)
    if scale.rescaled:
        kx, ky = width / array.shape[1], height / array.shape[0]
        table[["xmin", "xmax"]] *= kx
        table[["ymin", "ymax"]] *= ky
    table.attrs.update(scale.attrs())
    if scale.rescaled:
        table.attrs["scale"] = (array.shape[1] / width, array.shape[0] / height)
    return table


def _image_out_shape(height: int, width: int, factor: tuple[float, float]) -> tuple[int, int]:
    return (max(1, round(height * factor[1])), max(1, round(width * factor[0])))


def predict_tile(
    model: nn.Module,
    label_map: LabelMap,
    raster: str | os.PathLike | np.ndarray | RasterSource,
    config: PredictConfig | None = None,
    *,
    image_path: str | None = None,
    progress: bool | Any = True,
    model_gsd: float | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_seconds: float = 30.0,
    ranks: Ranks | None = None,
) -> pd.DataFrame:
    """Detect objects in a raster of any size, window by window.

    The raster is covered by the window grid of
    :func:`~deepforest_lite.windows.window_grid` (DeepForest 2.1.0's rule for
    ``config.patch_size`` and ``config.patch_overlap``). Windows are read one
    at a time (never the whole raster) by a ``DataLoader`` with
    ``config.workers`` worker processes, each opening its own file handle;
    windows that are entirely no-data, alpha 0 or black are skipped and never
    reach the model. Batches of ``config.batch_size`` windows go through
    :func:`run_model`; each window's boxes are shifted by its offset into
    raster pixels and duplicates across overlaps are removed with
    :func:`~deepforest_lite.merge.merge_windows` at ``config.iou_threshold``
    (across labels unless ``config.class_aware_merge``). Only box arrays are
    kept between batches, so memory does not grow with the raster's size
    beyond the boxes found.

    Args:
        model: a torchvision-style detector (``model(list of 3 x H x W
            tensors) -> list of {"boxes": FloatTensor[N, 4] xyxy px in that
            image, "labels": Int64Tensor[N], "scores": FloatTensor[N]}``) with
            at least one parameter, e.g. the RetinaNet of
            :func:`deepforest_lite.model.build_retinanet`. When
            ``config.device`` differs from where its weights are, the model is
            moved there (and stays there). ``config.engine`` picks what runs
            the network (:func:`deepforest_lite.engines.prepare_model`).
        label_map: turns class ids into names.
        raster: a file path (GeoTIFF, PNG, JPEG... read with the band and
            dtype rules of :mod:`deepforest_lite.raster`, ``config.bands`` and
            ``config.value_range`` applied), an open
            :class:`~deepforest_lite.raster.RasterSource` (its own band
            settings are used; ``config.bands``/``value_range`` must be
            ``None``), or an ``H x W x 3`` uint8 RGB array (windowed in memory).
        config: tiling, batching, device and precision settings; default
            :class:`~deepforest_lite.config.PredictConfig()`.
        image_path: the ``image_path`` value of the rows; default the file's
            base name (as DeepForest writes it), empty (``None``) for arrays.
        progress: show a tqdm progress bar on stderr (windows done / total, rate).
        model_gsd: the model's GSD in metres per pixel, or ``None``. When the
            raster's GSD (``config.gsd``, else from its transform) is known
            too, differs by more than 10 % and ``config.rescale`` is on, the
            grid's windows are ``patch_size * model_gsd / raster_gsd`` raster
            pixels a side and are read resampled to ``patch_size`` network
            pixels (:mod:`deepforest_lite.gsd`); boxes come back in raster
            pixels. A raster without a usable GSD is used as it is, with a
            :class:`~deepforest_lite.gsd.GSDWarning`.
        checkpoint: a ``.npz`` file for the boxes of finished windows
            (:mod:`deepforest_lite.resume`), or ``None`` for none. It is saved
            atomically after whole batches, at most every ``checkpoint_seconds``
            (0: after every batch), and when the run is interrupted; a run
            finding a checkpoint with a matching key (same model, settings,
            raster and grid) goes on after its windows and returns exactly
            what an uninterrupted run returns. The file is left in place: the
            caller removes it once the result is written.
        checkpoint_seconds: the least time in seconds between two saves.
        ranks: the processes sharing this raster (:func:`deepforest_lite.ranks.launch`),
            or ``None`` for this process alone. Every rank must call with the same
            arguments; each predicts its contiguous block of the grid's windows
            (:meth:`~deepforest_lite.ranks.Ranks.block`) on ``config.device``,
            checkpoints it to its own file
            (:func:`~deepforest_lite.resume.rank_checkpoint_path`), and every
            rank returns the whole raster's table, equal to a one-process run's.

    Returns:
        A box table (``xmin, ymin, xmax, ymax, label, score, image_path``) in
        raster pixels (origin at the raster's top-left corner, x = column),
        sorted by descending score. When the raster has a CRS it is a
        :class:`geopandas.GeoDataFrame` that also has ``map_xmin, map_ymin,
        map_xmax, map_ymax`` (CRS units, from the affine transform), a box
        polygon ``geometry`` and the raster's CRS. ``attrs`` holds
        ``"windows"`` (grid size) and ``"empty_windows"`` (windows skipped),
        and the scale used (:meth:`deepforest_lite.gsd.Scale.attrs`:
        ``model_gsd``, ``raster_gsd``, ``raster_gsd_source``, ``rescaled``,
        ``scale`` in network px per raster px); with ``checkpoint``, also
        ``"resumed_windows"`` (windows taken from the checkpoint, 0 if none). Nothing found is an empty table with these columns.

    Raises:
        ImageReadError: the file is missing or unreadable.
        RasterError: its bands cannot be used as RGB, or its transform is
            rotated (checked before any window is read).
        InvalidInputError: bad settings or array.
    """
    from .engines import prepare_model
    from .geo import boxes_to_map, check_north_up
    from .merge import merge_windows
    from .model import resolve_device

    config = PredictConfig() if config is None else config
    if not isinstance(config, PredictConfig):
        raise InvalidInputError(
            f"config must be a PredictConfig, got {type(config).__name__}; "
            "build one with deepforest_lite.PredictConfig(patch_size=..., ...)."
        )
    source, opened, image_path = open_source(raster, config, image_path)
    try:
        georeferenced = isinstance(source, RasterSource) and source.is_georeferenced
        if isinstance(source, RasterSource) and georeferenced:
            check_north_up(source.transform)  # fail before the long part, not after it
        device = resolve_device(config.device)
        name = image_path or ("array" if isinstance(source, np.ndarray) else os.path.basename(source.path))
        scale, grid = plan_grid(source, config, model_gsd, name)
        store = None
        if checkpoint is not None:
            store = _window_checkpoint(
                model, label_map, config, source, grid, model_gsd, checkpoint, checkpoint_seconds, ranks
            )
        model = prepare_model(model, config.engine, config.precision, device, progress=bool(progress))
        bar_name: Any = name if progress is True else (None if progress is False or progress is None else progress)
        found = _run_windows(model, source, config, device, bar_name, grid, store, ranks)
        if ranks is not None and ranks.shared:
            found = WindowBoxes.concat(ranks.gather(found))  # blocks in rank order: the grid's order
        table = found.table(label_map, image_path)
        if grid is not None:  # window boxes from network pixels to raster pixels
            kx, ky = grid.to_raster
            table[["xmin", "xmax"]] *= kx
            table[["ymin", "ymax"]] *= ky
        merged = merge_windows(table, iou_threshold=config.iou_threshold, class_aware=config.class_aware_merge)
        if isinstance(source, RasterSource) and georeferenced:
            merged = boxes_to_map(merged, source.transform, source.crs)
        merged.attrs.update(windows=found.windows, empty_windows=found.empty, **scale.attrs(grid))
        if store is not None:
            merged.attrs["resumed_windows"] = found.resumed
        return merged
    finally:
        if opened and isinstance(source, RasterSource):
            source.close()


def _run_windows(
    model: nn.Module,
    source: RasterSource | np.ndarray,
    config: PredictConfig,
    device: torch.device,
    progress_name: Any,
    grid: ScaledGrid | None = None,
    store: Any = None,
    ranks: Ranks | None = None,
) -> WindowBoxes:
    """Read the grid's windows through a DataLoader, run the model on batches, keep the boxes.

    ``progress_name`` labels the progress bar; ``None`` shows none; a tqdm bar
    given instead is advanced (a bar shared by many rasters). ``grid``:
    resampled windows (boxes stay in network pixels of each window here).
    ``store``: a :class:`~deepforest_lite.resume.WindowCheckpoint` to resume
    from and save to, or ``None``. ``ranks``: predict only this rank's block
    of the windows (counts and boxes are of the block).
    """
    import rasterio
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .dataset import WindowDataset, collate_windows

    windows = rank_windows(grid_windows(source, config, grid), ranks, config.batch_size)
    found = WindowBoxes(windows=len(windows))
    start = found.restore(store.load()) if store is not None else 0
    if store is not None:
        store.saved_windows = start
    dataset = WindowDataset(source, windows[start:], out_shape=None if grid is None else grid.out_shape)
    if isinstance(source, RasterSource):
        source.close()  # workers (and this process, on its first read) open their own handles
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=config.workers,
        collate_fn=collate_windows,
        pin_memory=device.type == "cuda",
        worker_init_fn=setup_reader_process,
    )
    if progress_name is not None and not isinstance(progress_name, str):
        bar, own = progress_name, cast(contextlib.AbstractContextManager[Any], contextlib.nullcontext())
        bar.update(start)
    else:
        bar = tqdm(
            total=len(windows), initial=start, desc=progress_name, unit="window", file=sys.stderr,
            disable=progress_name is None,
        )
        own = bar
    done = start
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), own:
        try:
            for batch in loader:
                if batch.images:
                    detections = run_model(model, batch.images, config.precision)
                    for detection, window in zip(detections, batch.windows):
                        found.add(detection, window)
                found.empty += len(batch.skipped)
                done += batch.size
                bar.update(batch.size)
                if store is not None and done < len(windows) and store.due():
                    found.save(store, done)
        except BaseException:
            if store is not None and done > store.saved_windows:
                found.save(store, done)  # Ctrl-C, SIGTERM turned into an exception, a failed read
            raise
    if store is not None and done > store.saved_windows:
        found.save(store, done)  # complete: a crash while writing the output loses nothing
    return found


def _window_checkpoint(
    model: nn.Module, label_map: LabelMap, config: PredictConfig, source: RasterSource | np.ndarray,
    grid: ScaledGrid | None, model_gsd: float | None, path: str | os.PathLike, seconds: float,
    ranks: Ranks | None = None,
) -> Any:
    """The :class:`~deepforest_lite.resume.WindowCheckpoint` of this raster, model and settings (and rank's block)."""
    import dataclasses

    from .resume import WindowCheckpoint, checkpoint_key, rank_checkpoint_path

    check_range("checkpoint_seconds", seconds, 0, kind="number of seconds", hint="e.g. 30")
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "workers"}
    settings.update(model_gsd=model_gsd, out_shape=None if grid is None else list(grid.out_shape))
    key = checkpoint_key(
        model, list(label_map.names), settings, source, rank_windows(grid_windows(source, config, grid), ranks, config.batch_size)
    )
    if ranks is not None:
        path = rank_checkpoint_path(path, ranks.rank, ranks.world_size)
    return WindowCheckpoint(path, key, seconds)
