"""Benchmark tiled prediction: speed, memory, and the cost of everything around the network.

Builds (once, cached) a square GeoTIFF of ``--size`` px from real NEON imagery in
``sample_data/`` (the 1249 x 1035 px YELL crop, mirrored so no seams appear),
written strip by strip so the raster is never held in memory; or takes
``--raster``. Then, in one process:

1. measures the raw forward rate: ``run_model`` on in-memory window tensors of
   the same size and batch size (after a warm-up batch), before and after step 2;
2. runs ``predict_tile`` on the whole raster (reading, DataLoader, forward
   passes, shifting, merging, map coordinates);
3. with ``--compare-bf16``, runs 1 and 2 again under bf16 autocast and counts
   the fp32 boxes that have a bf16 box with the same label and IoU > 0.5.

Prints one JSON line: seconds, windows, windows/s, megapixels/s, peak RSS of
this process (``ru_maxrss``) and of the largest worker (its RSS, which counts
pages shared with this process, and its private memory), the raw forward rate
and the ratio of the end-to-end rate to it. As the raw rate is measured at
other moments than the run, it moves with the load of a shared machine; so the
network's forward passes inside the run are also timed (``in_run_forward_*``):
their share of the run's time is the end-to-end / raw ratio under the same load.

Model: ``--model`` (a checkpoint or hub name), else the bundled model when
``load_model()`` finds it, else a randomly initialised ResNet-18 RetinaNet with
``resize="scale"`` (native resolution). Random weights score every anchor
about 0.01, below the 0.1 threshold, so such a model would find nothing; to
time a realistic amount of post-processing and merging, the random model runs
with ``score_threshold=0`` and 100 boxes per window (``"model"`` in the JSON
says which model ran).

Example::

    python benchmarks/predict_tile.py --size 2000 --batch-size 4 --workers 1 --compare-bf16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402

SOURCE_IMAGE = "2019_YELL_2_541000_4977000_image_crop.png"
STRIP_ROWS = 512


# --------------------------------------------------------------------------- the raster


def build_raster(size: int, cache_dir: Path) -> Path:
    """A ``size`` x ``size`` px RGB GeoTIFF (tiled 512 px, deflate) of mirrored sample imagery, cached."""
    import rasterio
    from affine import Affine

    from deepforest_lite import get_data, read_image

    path = cache_dir / f"yell_mirrored_{size}px.tif"
    if path.is_file():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    tile = read_image(get_data(SOURCE_IMAGE))  # 1035 x 1249 x 3, small
    th, tw = tile.shape[:2]
    cols = _mirror_index(np.arange(size), tw)
    profile = dict(
        driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32612",
        transform=Affine(0.1, 0.0, 541000.0, 0.0, -0.1, 4977000.0 + size * 0.1),
        tiled=True, blockxsize=512, blockysize=512, compress="deflate", photometric="RGB",
    )
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tif.tmp")
    os.close(fd)
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            for row in range(0, size, STRIP_ROWS):
                height = min(STRIP_ROWS, size - row)
                rows = _mirror_index(np.arange(row, row + height), th)
                strip = tile[rows][:, cols]  # height x size x 3: one strip at a time
                dst.write(strip.transpose(2, 0, 1), window=rasterio.windows.Window(0, row, size, height))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _mirror_index(index: np.ndarray, length: int) -> np.ndarray:
    """0, 1, ..., length-1, length-1, ..., 0, 0, 1, ...: tiling by reflection, no seams."""
    period = index % (2 * length)
    return np.where(period < length, period, 2 * length - 1 - period)


# --------------------------------------------------------------------------- model


def load_detector(name: str | None, device: str) -> tuple[object, str]:
    import torch

    import deepforest_lite as dfl

    if name is not None:
        return dfl.load_model(name, device=device), name
    try:
        return dfl.load_model(None, device=device), "bundled default model"
    except dfl.CheckpointError:
        torch.manual_seed(0)
        det = dfl.Detector(labels=["Tree"], backbone="resnet18", resize="scale", device=device)
        det.score_threshold = 0.0
        det.detections_per_image = 100
        return det, "random resnet18 (resize=scale, score_threshold=0, 100 boxes/window)"


# --------------------------------------------------------------------------- measurements


def raw_forward_rate(det: object, path: Path, args: argparse.Namespace, precision: str) -> float:
    """Windows per second of ``run_model`` alone on in-memory windows of the raster."""
    import torch

    from deepforest_lite.predict import image_to_tensor, run_model
    from deepforest_lite.raster import RasterSource
    from deepforest_lite.windows import window_grid

    with RasterSource(path) as source:
        grid = window_grid(source.height, source.width, args.patch_size, args.patch_overlap)
        step = max(1, len(grid) // (args.raw_batches * args.batch_size))
        picked = grid[::step][: args.raw_batches * args.batch_size]
        tensors = [image_to_tensor(source.read_window(w)) for w in picked]
    batches = [tensors[i : i + args.batch_size] for i in range(0, len(tensors), args.batch_size)]
    from deepforest_lite.engines import model_device, prepare_model

    model = prepare_model(det.model, args.engine, precision, model_device(det.model))
    run_model(model, batches[0], precision)  # warm-up (one-off allocations, kernel choice)
    start = time.perf_counter()
    for batch in batches:
        run_model(model, batch, precision)
    elapsed = time.perf_counter() - start
    del tensors, batches
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return len(picked) / elapsed


class ForwardTimer:
    """Adds up the seconds a network spends in its forward passes (forward hooks on the module itself,
    so ``predict_tile`` still gets the RetinaNet with its ``head`` and thresholds)."""

    def __init__(self, model) -> None:
        self.seconds = 0.0
        self._start = 0.0
        self._hooks = [
            model.register_forward_pre_hook(lambda module, args: self._begin()),
            model.register_forward_hook(lambda module, args, out: self._end()),
        ]

    def _begin(self) -> None:
        self._start = time.perf_counter()

    def _end(self) -> None:
        self.seconds += time.perf_counter() - self._start

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()


def end_to_end(det: object, path: Path, args: argparse.Namespace, precision: str) -> tuple[object, float, float]:
    """``(table, seconds, seconds inside the network's forward passes)`` of one predict_tile run."""
    from deepforest_lite.config import PredictConfig
    from deepforest_lite.predict import predict_tile

    settings = PredictConfig(
        patch_size=args.patch_size, patch_overlap=args.patch_overlap, batch_size=args.batch_size,
        workers=args.workers, device=str(det.device), precision=precision, engine=args.engine,
    )
    timer = ForwardTimer(det.model)
    try:
        start = time.perf_counter()
        table = predict_tile(det.model, det.label_map, path, settings, progress=args.progress)
        return table, time.perf_counter() - start, timer.seconds
    finally:
        timer.remove()


def matched_fraction(a: object, b: object, iou: float = 0.5) -> tuple[int, float]:
    """Boxes of ``a`` with a one-to-one partner in ``b`` (same label, IoU > ``iou``); greedy by IoU."""
    import shapely

    if len(a) == 0:
        return 0, float("nan")
    ca = a[["xmin", "ymin", "xmax", "ymax"]].to_numpy(float)
    cb = b[["xmin", "ymin", "xmax", "ymax"]].to_numpy(float)
    tree = shapely.STRtree(shapely.box(*cb.T))
    left, right = tree.query(shapely.box(*ca.T), predicate="intersects")
    same = a["label"].to_numpy()[left] == b["label"].to_numpy()[right]
    left, right = left[same], right[same]
    p, q = ca[left], cb[right]
    inter = np.clip(np.minimum(p[:, 2], q[:, 2]) - np.maximum(p[:, 0], q[:, 0]), 0, None) * np.clip(
        np.minimum(p[:, 3], q[:, 3]) - np.maximum(p[:, 1], q[:, 1]), 0, None
    )
    union = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1]) + (q[:, 2] - q[:, 0]) * (q[:, 3] - q[:, 1]) - inter
    ious = inter / union
    used_a, used_b, matched = set(), set(), 0
    for k in np.argsort(-ious, kind="stable"):
        if ious[k] <= iou:
            break
        if left[k] not in used_a and right[k] not in used_b:
            used_a.add(left[k])
            used_b.add(right[k])
            matched += 1
    return matched, matched / len(a)


class WorkerMemory:
    """Samples the private memory (not shared with this process) of its child processes, Linux only.

    A forked DataLoader worker's RSS counts the pages it shares with its parent
    (torch, the model), so ``ru_maxrss`` of children over-states what a worker
    adds; its private pages are what it really costs.
    """

    def __init__(self, interval: float = 0.5) -> None:
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def __enter__(self) -> "WorkerMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self, interval: float) -> None:
        me = os.getpid()
        while not self._stop.wait(interval):
            try:
                children = Path(f"/proc/{me}/task/{me}/children").read_text().split()
            except OSError:
                return
            for pid in children:
                try:
                    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
                except OSError:
                    continue
                values = {line.split(":")[0]: int(line.split()[1]) for line in rollup}
                private = (values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)) / 1024
                self.peak_mb = max(self.peak_mb, private)


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished child, in MiB."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kb / 1024, child_kb / 1024


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2000, help="raster side in px to build (default 2000)")
    parser.add_argument("--raster", type=Path, help="use this raster instead of building one")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "deepforest_lite_bench")
    parser.add_argument("--model", help="checkpoint path or hub name (default: bundled model, else random resnet18)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--compare-bf16", action="store_true", help="also run bf16 and compare its boxes with fp32")
    parser.add_argument("--patch-size", type=int, default=400)
    parser.add_argument("--patch-overlap", type=float, default=0.05)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--engine", choices=("auto", "torch", "onnxruntime"), default="torch",
                        help="what runs the network (default torch, the reference the other figures compare with)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--raw-batches", type=int, default=6, help="batches timed for the raw forward rate")
    parser.add_argument("--progress", action="store_true", help="show predict_tile's progress bar")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.raster if args.raster is not None else build_raster(args.size, args.cache_dir)
    det, model_name = load_detector(args.model, args.device)
    import geopandas  # noqa: F401  one-off imports (merging, map coordinates) stay out of the timed run
    import shapely  # noqa: F401

    from deepforest_lite.raster import RasterSource

    with RasterSource(path) as source:
        height, width = source.shape
    load_before = os.getloadavg()[0]

    raw_before = raw_forward_rate(det, path, args, args.precision)
    with WorkerMemory() as workers_memory:
        table, seconds, forward_seconds = end_to_end(det, path, args, args.precision)
    raw_after = raw_forward_rate(det, path, args, args.precision)
    raw = (raw_before + raw_after) / 2
    windows = table.attrs["windows"]
    rss, rss_child = peak_rss_mb()
    result: dict[str, object] = {
        "raster": str(path),
        "size_px": [width, height],
        "model": model_name,
        "device": str(det.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "precision": args.precision,
        "engine": args.engine,
        "patch_size": args.patch_size,
        "patch_overlap": args.patch_overlap,
        "windows": windows,
        "empty_windows": table.attrs["empty_windows"],
        "boxes": len(table),
        "seconds": round(seconds, 2),
        "windows_per_s": round(windows / seconds, 3),
        "megapixels_per_s": round(width * height / 1e6 / seconds, 3),
        "peak_rss_mb": round(rss, 1),
        "peak_rss_worker_mb": round(rss_child, 1),
        "peak_worker_private_mb": round(workers_memory.peak_mb, 1),
        "raw_forward_windows_per_s": round(raw, 3),
        "raw_forward_before_after": [round(raw_before, 3), round(raw_after, 3)],
        "ratio_to_raw": round(windows / seconds / raw, 3),
        # the timer hooks the torch modules, so it sees nothing when onnxruntime runs the network
        "in_run_forward_windows_per_s": round(windows / forward_seconds, 3) if forward_seconds else None,
        "in_run_forward_share": round(forward_seconds / seconds, 3) if forward_seconds else None,
    }
    if args.compare_bf16 and args.precision == "fp32":
        raw16 = raw_forward_rate(det, path, args, "bf16")
        table16, seconds16, forward16 = end_to_end(det, path, args, "bf16")
        matched, fraction = matched_fraction(table, table16)
        result["bf16"] = {
            "seconds": round(seconds16, 2),
            "windows_per_s": round(windows / seconds16, 3),
            "speedup_end_to_end": round(seconds / seconds16, 3),
            "raw_forward_windows_per_s": round(raw16, 3),
            "speedup_raw_forward": round(raw16 / raw, 3),
            "in_run_forward_windows_per_s": round(windows / forward16, 3),
            "speedup_in_run_forward": round(forward_seconds / forward16, 3),
            "boxes": len(table16),
            "fp32_boxes_matched": matched,
            "fp32_boxes_matched_fraction": round(fraction, 4),
        }
        result["peak_rss_mb"] = round(peak_rss_mb()[0], 1)
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
