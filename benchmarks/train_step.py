"""Seconds per training step for a backbone, batch size and patch size.

Builds a randomly initialised detector (``resize="scale"``, native resolution),
feeds random images with a few boxes each and times forward + backward +
optimizer step, after warm-up steps. Prints one JSON line.

    python benchmarks/train_step.py --backbone resnet18 --batch-size 8 --patch-size 400 --steps 5

``--fpn-channels 128 --head-norm group`` gives the bundled tree-lite architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import torch

import deepforest_lite as dfl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18", choices=dfl.config.BACKBONES)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=400)
    parser.add_argument("--fpn-channels", type=int, default=256)
    parser.add_argument("--head-norm", choices=dfl.config.HEAD_NORMS, default="none")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    det = dfl.Detector(["Tree"], backbone=args.backbone, resize="scale", fpn_channels=args.fpn_channels,
                       anchor_sizes=(16, 32, 64, 128, 256), head_norm=args.head_norm, device=args.device)
    model = det.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    device = det.device
    images = [torch.rand(3, args.patch_size, args.patch_size, device=device) for _ in range(args.batch_size)]
    box = torch.tensor([[10.0, 10.0, 60.0, 60.0], [100.0, 120.0, 140.0, 170.0]], device=device)
    targets = [{"boxes": box, "labels": torch.zeros(2, dtype=torch.int64, device=device)} for _ in images]

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = sum(model(images, targets).values())
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    print(json.dumps({
        "backbone": args.backbone, "fpn_channels": args.fpn_channels, "head_norm": args.head_norm, "batch_size": args.batch_size,
        "patch_size": args.patch_size, "precision": args.precision, "device": str(device),
        "seconds_per_step": round(seconds, 3), "images_per_second": round(args.batch_size / seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
