"""Windows/s of the network's engines and their settings, in interleaved rounds, with box agreement.

For one model and window size, times ``run_model`` (the whole torchvision
RetinaNet: transform, network, anchors, decoding, NMS) on real windows of the
benchmark raster (``benchmarks/predict_tile.py`` builds it) for each setting,
in ``--rounds`` rounds whose order rotates, so that on a shared machine every
setting sees the same load; prints one JSON line with each setting's
windows/s per round, the median, the ratio to the first setting (measured in
the same rounds) and how its boxes compare with those of torch fp32 batch 1.

Settings (``--settings``, comma separated; ``b`` batch size, ``t`` threads):

* ``torch-b1`` ... ``torch-b4``, ``torch-b1-t1``: the torch engine, eager fp32;
* ``torch-bf16-b1`` ... ``torch-bf16-b4``: the torch engine under bfloat16 autocast (``precision="bf16"``);
* ``torch-cl-b1``: channels-last weights and input;
* ``torch-fold-b1``: a copy with batch norm folded into the convolutions
  before it (``torch.nn.utils.fusion.fuse_conv_bn_weights``);
* ``ort-b1`` ... ``ort-b4``, ``ort-b1-t1``, ``ort-b1-basic``, ``ort-b1-extended``: onnxruntime
  fp32 (default level ``all``, threads = torch's);
* ``int8dyn-b1``: onnxruntime on ``quantize_dynamic`` (int8 weights, uint8 activations);
* ``int8static-b1``: onnxruntime on ``quantize_static`` (QDQ, calibrated on 8 other windows);
  ``int8static-nohead-b1``: the same with the heads' convolutions left in fp32 (backbone and FPN
  int8); ``int8static-backbone-b1``: only the ResNet body in int8;
* ``openvino-b1`` ... ``openvino-b4``: the ``"openvino"`` engine (OpenVINO's CPU plugin on the same
  ONNX file, when ``openvino`` imports) at ``precision="bf16"``; ``openvino-f32-b1``: at ``"fp32"``.

Models (``--model``): ``bundled`` (the shipped tree-lite model) or
``deepforest-r50`` (a DeepForest-layout ResNet-50 RetinaNet with random
weights that finds many boxes; tests/test_engines.py checks engines on it too), or a checkpoint path.

Example (the figures in docs/performance.md)::

    python benchmarks/engine_settings.py --model bundled --patch-size 400 --windows 8 --rounds 3
    python benchmarks/engine_settings.py --model deepforest-r50 --patch-size 800 --windows 4 --rounds 2
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

ALL = (
    "torch-b1,torch-b2,torch-b4,torch-b1-t1,torch-cl-b1,torch-fold-b1,"
    "ort-b1,ort-b2,ort-b4,ort-b1-t1,ort-b1-basic,ort-b1-extended,int8dyn-b1"
)


def deepforest_r50_folder(root: Path) -> Path:
    """A DeepForest-layout (Hugging Face folder) ResNet-50 RetinaNet with random weights (seed 0), in
    ``root / "deepforest_r50_random"`` (kept there: a second call returns it). Its weights are the
    same on every call; tests/test_engines.py loads this function to compare engines on them."""
    import torch
    import torchvision
    from safetensors.torch import save_file
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7
    from torchvision.ops.misc import FrozenBatchNorm2d

    folder = root / "deepforest_r50_random"
    if (folder / "model.safetensors").is_file():
        return folder
    torch.manual_seed(0)
    body = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    model = RetinaNet(backbone, num_classes=1)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith(("running_var", ".weight")):
                buf.uniform_(0.5, 1.5)
            elif name.endswith(("running_mean", ".bias")):
                buf.normal_(0, 0.1)
        model.head.classification_head.cls_logits.bias.normal_(0, 1.0)
        model.head.regression_head.bbox_reg.weight.normal_(0, 0.01)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"label_dict": {"Tree": 0}}))
    return folder


def fold_batchnorm(model):
    """A copy of ``model`` with each batch norm (BatchNorm2d or FrozenBatchNorm2d) after a convolution
    in the backbone's ResNet folded into that convolution (eval-mode arithmetic)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    folded = copy.deepcopy(model).eval()

    def fold(conv: nn.Conv2d, bn: nn.Module) -> None:
        weight, bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, getattr(bn, "eps", 1e-5), bn.weight, bn.bias
        )
        conv.weight, conv.bias = nn.Parameter(weight.detach()), nn.Parameter(bias.detach())

    body = folded.backbone.body
    count = 0
    for module in [body, *body.modules()]:
        for i in range(1, 4):
            conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
            if isinstance(conv, nn.Conv2d) and bn is not None and not isinstance(bn, nn.Identity):
                fold(conv, bn)
                setattr(module, f"bn{i}", nn.Identity())
                count += 1
        down = getattr(module, "downsample", None)
        if isinstance(down, nn.Sequential) and len(down) == 2 and isinstance(down[0], nn.Conv2d):
            fold(down[0], down[1])
            down[1] = nn.Identity()
            count += 1
    if count == 0:
        raise SystemExit("no convolution + batch norm pairs found to fold")
    return folded


class ChannelsLast:
    """The torch model with channels-last weights, fed channels-last batches (a pre-hook on the backbone)."""

    def __init__(self, model) -> None:
        import torch

        self.model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        self.model.backbone.register_forward_pre_hook(
            lambda module, args: (args[0].contiguous(memory_format=torch.channels_last),)
        )


def ort_model(base, onnx_path: Path, threads: int | None, optimization: str | None):
    from deepforest_lite.engines import ExportedRetinaNet, OnnxRuntimeNetwork

    return ExportedRetinaNet.view_of(base, OnnxRuntimeNetwork(onnx_path, threads=threads, optimization=optimization))


def build(setting: str, base, onnx_path: Path, windows, work: Path):
    """``(model, batch size, torch threads)`` for a setting name."""
    import torch

    from deepforest_lite.engines import ExportedRetinaNet

    parts = setting.split("-")
    batch = next(int(p[1:]) for p in parts if p.startswith("b") and p[1:].isdigit())
    threads = next((int(p[1:]) for p in parts if p.startswith("t") and p[1:].isdigit()), None)
    level = next((p for p in parts if p in ("disable", "basic", "extended", "all")), None)
    kind = parts[0] if parts[1] not in ("cl", "fold", "bf16") else f"{parts[0]}-{parts[1]}"
    default_threads = torch.get_num_threads()
    if kind in ("torch", "torch-bf16"):
        return base, batch, threads or default_threads
    if kind == "torch-cl":
        return ChannelsLast(base).model, batch, threads or default_threads
    if kind == "torch-fold":
        return fold_batchnorm(base), batch, threads or default_threads
    if kind == "ort":
        return ort_model(base, onnx_path, threads, level), batch, default_threads
    if kind == "int8dyn":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out = work / "int8dyn.onnx"
        if not out.is_file():
            quantize_dynamic(onnx_path, out, weight_type=QuantType.QInt8)
        return ort_model(base, out, threads, level), batch, default_threads
    if kind == "int8static":
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        scope = next((p for p in parts if p in ("backbone", "nohead")), "all")
        out = work / f"int8static-{scope}.onnx"
        if not out.is_file():
            calibration = [window_batch(base, [w]) for w in windows]
            import onnx

            convs = [n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "Conv"]
            if scope == "backbone":
                excluded = [n for n in convs if not n.startswith("/backbone/body/")]
            elif scope == "nohead":
                excluded = [n for n in convs if not n.startswith("/backbone/")]
            else:
                excluded = []

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self.items = iter([{"images": b} for b in calibration])

                def get_next(self):
                    return next(self.items, None)

            quantize_static(
                onnx_path, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
            )
        return ort_model(base, out, threads, level), batch, default_threads
    if kind == "openvino":
        from deepforest_lite.runtimes import OpenVinoNetwork

        precision = "fp32" if "f32" in parts else "bf16"
        net = OpenVinoNetwork(onnx_path, precision, threads or default_threads)
        return ExportedRetinaNet.view_of(base, net, engine="openvino", precision=precision), batch, default_threads
    raise SystemExit(f"unknown setting {setting!r}")


def window_batch(model, images):
    """The padded, normalised network input of ``images`` as numpy (for calibration)."""
    import torch

    with torch.no_grad():
        return model.transform(list(images))[0].tensors.numpy()


def precision_of(setting: str) -> str:
    """``"bf16"`` for the torch engine under bfloat16 autocast (``torch-bf16-...``), else ``"fp32"``."""
    return "bf16" if setting.startswith("torch-bf16-") else "fp32"


def detections(model, windows, batch: int, precision: str = "fp32"):
    import torch

    from deepforest_lite.predict import run_model

    out = []
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            found = run_model(model, windows[i : i + batch], precision)
            out.extend({k: v.detach().cpu() for k, v in d.items()} for d in found)
    return out


def rate(model, windows, batch: int, threads: int, precision: str = "fp32") -> float:
    import torch

    from deepforest_lite.predict import run_model

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            run_model(model, windows[:batch], precision)  # warm-up
            start = time.perf_counter()
            for i in range(0, len(windows), batch):
                run_model(model, windows[i : i + batch], precision)
            return len(windows) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


def compare(reference, other) -> dict:
    """Box agreement of ``other`` with ``reference`` (lists of per-window torchvision detections).

    ``identical``: every window has as many boxes, each box of the reference
    has its own partner with IoU >= 0.999, the same label and a score within
    1e-4. ``matched_fraction``: reference boxes with a one-to-one partner of the
    same label at IoU >= 0.5 (greedy by IoU), over all windows.
    """
    import torch
    from torchvision.ops import box_iou

    total = matched = 0
    identical = True
    max_score_diff, min_iou = 0.0, 1.0
    for a, b in zip(reference, other):
        n, m = len(a["boxes"]), len(b["boxes"])
        total += n
        if n != m:
            identical = False
        if n == 0 or m == 0:
            continue
        iou = box_iou(a["boxes"].double(), b["boxes"].double()).nan_to_num(0.0)
        same_corners = (a["boxes"][:, None, :] - b["boxes"][None, :, :]).abs().amax(dim=2) < 0.01  # zero-area boxes
        iou = torch.where(same_corners, torch.ones_like(iou), iou)
        iou = torch.where(a["labels"][:, None] == b["labels"][None, :], iou, torch.zeros_like(iou))
        if n == m:
            best, partner = iou.max(dim=1)
            diff = float((a["scores"] - b["scores"][partner]).abs().max())
            max_score_diff = max(max_score_diff, diff)
            min_iou = min(min_iou, float(best.min()))
            if len(set(partner.tolist())) != n or best.min() < 0.999 or diff > 1e-4:
                identical = False
        pairs = sorted(((float(iou[i, j]), i, j) for i, j in zip(*torch.nonzero(iou >= 0.5, as_tuple=True))), reverse=True)
        used_a, used_b = set(), set()
        for _, i, j in pairs:
            i, j = int(i), int(j)
            if i not in used_a and j not in used_b:
                used_a.add(i)
                used_b.add(j)
        matched += len(used_a)
    return {
        "boxes": sum(len(d["boxes"]) for d in other),
        "identical": identical,
        "max_score_diff": round(max_score_diff, 6),
        "min_partner_iou": round(min_iou, 4),
        "matched_fraction": round(matched / total, 4) if total else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled", help="bundled, deepforest-r50, or a checkpoint path")
    parser.add_argument("--patch-size", type=int, default=400)
    parser.add_argument("--windows", type=int, default=8, help="windows timed per setting and round (a multiple of 4)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (0: compare boxes only)")
    parser.add_argument("--settings", default=ALL)
    parser.add_argument("--size", type=int, default=None, help="side of the benchmark raster (default max(2000, 3 windows))")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "deepforest_lite_bench")
    args = parser.parse_args(argv)

    import torch

    import deepforest_lite as dfl
    from deepforest_lite.export import onnx_bytes
    from deepforest_lite.predict import image_to_tensor
    from deepforest_lite.raster import RasterSource
    from deepforest_lite.windows import window_grid

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from predict_tile import build_raster

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    if args.model == "bundled":
        det, name = dfl.load_model(None, device="cpu"), "bundled default model"
    elif args.model == "deepforest-r50":
        det = dfl.load_model(deepforest_r50_folder(args.cache_dir), device="cpu")
        name = "DeepForest-layout ResNet-50 RetinaNet, random weights (seed 0)"
    else:
        det, name = dfl.load_model(args.model, device="cpu"), args.model
    base = det.model.eval()

    raster = build_raster(args.size or max(2000, 3 * args.patch_size), args.cache_dir)
    with RasterSource(raster) as source:
        grid = window_grid(source.height, source.width, args.patch_size, 0.05)
        picked = grid[:: max(1, len(grid) // (2 * args.windows))][: 2 * args.windows]
        tensors = [image_to_tensor(source.read_window(w)) for w in picked]
    windows, calibration = tensors[: args.windows], tensors[args.windows :]

    work = Path(tempfile.mkdtemp(prefix="engine_settings_"))
    onnx_path = work / "fp32.onnx"
    onnx_path.write_bytes(onnx_bytes(base))
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    built = {}
    for s in settings:
        try:
            built[s] = build(s, base, onnx_path, calibration, work)
        except ImportError as exc:
            print(f"skipping {s}: {exc}", file=sys.stderr)
    settings = [s for s in settings if s in built]

    reference = detections(base, windows, 1)
    boxes = {
        s: compare(reference, detections(built[s][0], windows, built[s][1], precision_of(s))) for s in settings
    }

    load_before = os.getloadavg()[0]
    rates: dict[str, list[float]] = {s: [] for s in settings}
    for r in range(args.rounds):
        order = settings[r % len(settings) :] + settings[: r % len(settings)]
        if r % 2:
            order = order[::-1]
        for s in order:
            model, batch, threads = built[s]
            rates[s].append(round(rate(model, windows, batch, threads, precision_of(s)), 3))
        print(f"round {r + 1}/{args.rounds} done, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    first = settings[0]
    result = {
        "model": name,
        "patch_size": args.patch_size,
        "windows": len(windows),
        "rounds": args.rounds,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "reference_boxes": sum(len(d["boxes"]) for d in reference),
        "settings": {
            s: {
                "windows_per_s": rates[s],
                "median": round(statistics.median(rates[s]), 3) if rates[s] else None,
                f"ratio_to_{first}": round(
                    statistics.median([a / b for a, b in zip(rates[s], rates[first])]), 3
                ) if rates[s] else None,
                **boxes[s],
            }
            for s in settings
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
