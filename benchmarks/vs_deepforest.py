"""deepforest_lite's ``predict_tile`` against DeepForest 2.1.0's, same weights, same raster, same windows.

Each run is a fresh process (as a user's script would be) that loads the DeepForest-layout
ResNet-50 folder, calls ``predict_tile`` once with that package's default settings (400 px
windows, 5 % overlap; DeepForest: batch 1, torch; deepforest_lite: ``engine="auto"``) on the
benchmark raster (``benchmarks/predict_tile.py``'s mirrored sample imagery) and times that call.
Runs alternate (DeepForest, deepforest_lite, DeepForest, ...) so both see the same load; the
ratio of each adjacent pair is printed, then how the boxes agree (deepforest_lite's against
DeepForest's, see :func:`agreement`). A first, untimed deepforest_lite run makes the ONNX export
that later runs load from the on-disk cache (its time is reported too).

The weights: ``engine_settings.deepforest_r50_folder``'s random ResNet-50 with its two output
layers recalibrated (:func:`spread_r50_folder`), so scores spread over 0-1 instead of tying at 1
and the box comparison means something. DeepForest is installed in
a throwaway venv (it pins other packages)::

    python -m venv /tmp/dfvenv --system-site-packages && /tmp/dfvenv/bin/pip install deepforest==2.1.0
    python benchmarks/vs_deepforest.py --deepforest-python /tmp/dfvenv/bin/python --size 2000 --rounds 2

Prints one JSON line (the figures in docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def spread_r50_folder(root: Path, raster: Path) -> Path:
    """The DeepForest-layout random ResNet-50 folder with its two output layers recalibrated.

    Random weights give saturated logits (every score 1.0) and exploding box offsets. On one 400 px
    window of ``raster`` the classification layer is rescaled so its logits have mean -3 and standard
    deviation 1.5 (scores spread over 0-1, a few percent above DeepForest's 0.1 threshold) and the
    regression layer so its offsets have standard deviation 0.2 (boxes of sensible sizes).
    """
    import rasterio
    import torch
    import torchvision
    from engine_settings import deepforest_r50_folder
    from safetensors.torch import load_file, save_file

    folder = root / "deepforest_r50_spread"
    if (folder / "model.safetensors").is_file():
        return folder
    base = deepforest_r50_folder(root)
    state = load_file(base / "model.safetensors")
    model = torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=1)
    model.load_state_dict(state)
    model.eval()
    with rasterio.open(raster) as src:
        window = torch.from_numpy(src.read(window=rasterio.windows.Window(0, 0, 400, 400))).float() / 255
    outputs = {}
    layers = {"cls": model.head.classification_head.cls_logits, "reg": model.head.regression_head.bbox_reg}
    hooks = [layer.register_forward_hook(lambda _m, _i, out, key=key: outputs.setdefault(key, []).append(out))
             for key, layer in layers.items()]
    with torch.no_grad():
        model([window])
    for hook in hooks:
        hook.remove()
    targets = {"cls": (-3.0, 1.5), "reg": (0.0, 0.2)}
    with torch.no_grad():
        for key, layer in layers.items():
            values = torch.cat([o.flatten() for o in outputs[key]]).double()
            mean, std = targets[key]
            factor = std / float(values.std())
            prefix = "head.classification_head.cls_logits" if key == "cls" else "head.regression_head.bbox_reg"
            state[f"{prefix}.weight"] = (layer.weight * factor).float().contiguous()
            state[f"{prefix}.bias"] = (layer.bias * factor + mean - factor * float(values.mean())).float().contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, folder / "model.safetensors")
    (folder / "config.json").write_text((base / "config.json").read_text())
    return folder


def _offline_torchvision_cache(torch_home: Path) -> None:
    """Let DeepForest build its network offline: a stand-in ImageNet ResNet-50 file in a private cache.

    DeepForest 2.1.0 builds ``retinanet_resnet50_fpn`` with torchvision's ImageNet backbone (a
    download) before it loads the folder's weights over every tensor; the stand-in (random,
    under the file name torchvision looks for) is overwritten the same way.
    """
    import torch
    import torchvision

    os.environ["TORCH_HOME"] = str(torch_home)
    url = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url
    target = torch_home / "hub" / "checkpoints" / os.path.basename(url)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), target)


def run_deepforest(folder: Path, raster: Path, out_csv: Path) -> dict:
    """One DeepForest 2.1.0 ``predict_tile`` call with its defaults; boxes to ``out_csv``."""
    _offline_torchvision_cache(folder.parent / "torch_home")
    from deepforest import main

    started = time.perf_counter()
    model = main.deepforest(config_args={"model": {"name": str(folder)}})  # loads the folder, not the hub
    loaded = time.perf_counter()
    boxes = model.predict_tile(str(raster), patch_size=400, patch_overlap=0.05)
    seconds = time.perf_counter() - loaded
    boxes[["xmin", "ymin", "xmax", "ymax", "label", "score"]].to_csv(out_csv, index=False)
    return {"package": "deepforest 2.1.0", "load_s": round(loaded - started, 2), "predict_tile_s": round(seconds, 2),
            "boxes": len(boxes)}


def run_ours(folder: Path, raster: Path, out_csv: Path) -> dict:
    """One deepforest_lite ``predict_tile`` call with its defaults; boxes to ``out_csv``."""
    import deepforest_lite as dfl

    started = time.perf_counter()
    det = dfl.load_model(folder, device="cpu")
    loaded = time.perf_counter()
    boxes = det.predict_tile(raster, progress=False)
    seconds = time.perf_counter() - loaded
    boxes[["xmin", "ymin", "xmax", "ymax", "label", "score"]].to_csv(out_csv, index=False)
    return {"package": f"deepforest_lite {dfl.__version__}", "load_s": round(loaded - started, 2),
            "predict_tile_s": round(seconds, 2), "boxes": len(boxes)}


def agreement(reference_csv: Path, other_csv: Path) -> dict:
    """How deepforest_lite's boxes (``other``) agree with DeepForest's (``reference``).

    DeepForest 2.1.0 returns whole pixels (coordinates truncated), so ours are truncated the same
    way first. ``identical_fraction``: DeepForest boxes with their own partner of the same label,
    the same four whole-pixel coordinates and a score within 1e-4; ``within_1px_fraction``: the
    same but coordinates within 1 px (float noise at a pixel edge); ``matched_iou_0.5_fraction``:
    a same-label partner at IoU >= 0.5. Partners are one-to-one, greedy by IoU.
    """
    import numpy as np
    import pandas as pd
    import torch
    from torchvision.ops import box_iou

    columns = ["xmin", "ymin", "xmax", "ymax"]
    a, b = pd.read_csv(reference_csv), pd.read_csv(other_csv)
    result: dict = {"deepforest_boxes": len(a), "boxes": len(b)}
    if len(a) == 0 or len(b) == 0:
        return result
    ca, cb = a[columns].to_numpy(float), np.trunc(b[columns].to_numpy(float))
    iou = box_iou(torch.tensor(ca), torch.tensor(cb)).numpy()
    same_label = a["label"].to_numpy()[:, None] == b["label"].to_numpy()[None, :]
    close_score = np.abs(a["score"].to_numpy()[:, None] - b["score"].to_numpy()[None, :]) <= 1e-4
    corner_gap = np.abs(ca[:, None, :] - cb[None, :, :]).max(axis=2)
    tests = {
        "identical": same_label & close_score & (corner_gap == 0),
        "within_1px": same_label & close_score & (corner_gap <= 1),
        "matched_iou_0.5": same_label & (iou >= 0.5),
    }
    for name, ok in tests.items():
        rows, cols = np.nonzero(ok)
        used_a, used_b = set(), set()
        for k in np.argsort(-iou[rows, cols], kind="stable"):
            i, j = int(rows[k]), int(cols[k])
            if i not in used_a and j not in used_b:
                used_a.add(i)
                used_b.add(j)
        result[f"{name}_fraction"] = round(len(used_a) / len(a), 4)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deepforest-python", default=sys.executable,
                        help="a Python with deepforest==2.1.0 installed (default: this one)")
    parser.add_argument("--size", type=int, default=2000, help="raster side in px (default 2000: 36 windows)")
    parser.add_argument("--rounds", type=int, default=2, help="DeepForest/deepforest_lite pairs (default 2)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "deepforest_lite_bench")
    parser.add_argument("--child", choices=("deepforest", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--raster", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        run = run_deepforest if args.child == "deepforest" else run_ours
        print(json.dumps(run(args.folder, args.raster, args.out)))
        return 0

    from predict_tile import build_raster

    raster = build_raster(args.size, args.work_dir)
    folder = spread_r50_folder(args.work_dir, raster)
    warm_up = args.work_dir / "vs_ours_warm_up.csv"  # the first run exports the network to ONNX and caches it
    done = subprocess.run([sys.executable, __file__, "--child", "ours", "--folder", str(folder), "--raster", str(raster),
                           "--out", str(warm_up)], check=True, capture_output=True, text=True)
    first = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({"warm_up": first}), file=sys.stderr)
    runs = []
    for round_ in range(args.rounds):
        for child, python in (("deepforest", args.deepforest_python), ("ours", sys.executable)):
            out = args.work_dir / f"vs_{child}_{round_}.csv"
            done = subprocess.run(
                [python, __file__, "--child", child, "--folder", str(folder), "--raster", str(raster), "--out", str(out)],
                check=True, capture_output=True, text=True,
            )
            runs.append({"round": round_, **json.loads(done.stdout.strip().splitlines()[-1])})
            print(json.dumps(runs[-1]), file=sys.stderr)
    ratios = [d["predict_tile_s"] / o["predict_tile_s"] for d, o in zip(runs[0::2], runs[1::2])]
    result = {
        "raster": str(raster), "size_px": args.size, "weights": "DeepForest-layout ResNet-50, random (spread scores)",
        "first_run_with_export": first, "runs": runs, "speedup_per_round": [round(r, 2) for r in ratios],
        "speedup_median": round(statistics.median(ratios), 2),
        "boxes_vs_deepforest": agreement(args.work_dir / "vs_deepforest_0.csv", args.work_dir / "vs_ours_0.csv"),
        "load_average": [round(x, 2) for x in os.getloadavg()[:2]],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
