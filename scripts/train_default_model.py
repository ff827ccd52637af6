"""Train the bundled one-class "tree-lite" model, reproducibly, from the shared sample data.

    python scripts/train_default_model.py --data ../shared/data --work-dir runs/tree-lite

Data (all boxes labelled ``Tree``):

* ``neon-plots/``: the annotated NEON plots (HARV, OSBS, TEAK) minus a held-out test
  split of whole plots (every fourth plot of each site, sorted by name, starting
  with the second), written to ``<work-dir>/holdout.csv`` for ``benchmarks/accuracy.py``;
* ``samples/2019_YELL_2_*_image_crop*.png`` with their Pascal VOC boxes, cut into
  400 px tiles with ``split_raster``;
* ``samples/SOAP_061.png`` (Alive and Dead both mapped to Tree).

``samples/OSBS_029`` is the evaluation image and is never used (the script checks).
Settings come from ``deepforest_lite/configs/tree-lite.yaml``. The result is written
as float16 safetensors to ``deepforest_lite/models/tree-lite.safetensors`` with the
command, data, seed, epochs, wall time and hardware in its metadata. ``--resume``
continues an interrupted run in the same work folder.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
import torch

import deepforest_lite as dfl
from deepforest_lite.annotations import with_empty_images
from deepforest_lite.config import ModelConfig, TrainConfig, from_mapping, load_config_file

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "deepforest_lite" / "configs" / "tree-lite.yaml"
OUTPUT = REPO / "deepforest_lite" / "models" / "tree-lite.safetensors"
YELL = ("2019_YELL_2_541000_4977000_image_crop", "2019_YELL_2_528000_4978000_image_crop2")


def holdout_plots(plots: list[str]) -> list[str]:
    """Every fourth plot of each site (sorted by name), starting with the second."""
    held = []
    for site in sorted({p.split("_")[0] for p in plots}):
        names = sorted(p for p in plots if p.startswith(site + "_"))
        held += names[1::4]
    return held


def prepare(data: Path, work: Path) -> tuple[Path, Path]:
    """Write ``train.csv`` (absolute image paths) and ``holdout.csv``; returns their paths."""
    neon_images = data / "neon-plots" / "images"
    neon = dfl.read_annotations(data / "neon-plots" / "annotations.csv", root_dir=neon_images, label="Tree")
    neon = neon[["image_path", "xmin", "ymin", "xmax", "ymax", "label"]]
    held = holdout_plots(sorted(neon["image_path"].unique()))
    holdout = neon[neon["image_path"].isin(held)]
    dfl.write_annotations(holdout, work / "holdout.csv")
    parts = [neon[~neon["image_path"].isin(held)].assign(image_path=lambda t: [str(neon_images / p) for p in t.image_path])]
    tiles = work / "tiles"
    for stem in YELL:
        split = dfl.split_raster(data / "samples" / f"{stem}.png", data / "samples" / f"{stem}.xml",
                                 patch_size=400, patch_overlap=0.05, out_dir=tiles, image_format="png",
                                 label="Tree", progress=False)
        parts.append(split.annotations.assign(image_path=lambda t: [str(tiles / p) for p in t.image_path]))
    soap = dfl.read_annotations(data / "samples" / "SOAP_061.xml", label="Tree")
    parts.append(soap.assign(image_path=str(data / "samples" / "SOAP_061.png")))
    train = pd.concat(parts, ignore_index=True)[["image_path", "xmin", "ymin", "xmax", "ymax", "label"]]
    if train["image_path"].str.contains("OSBS_029").any():
        raise SystemExit("refusing to train on OSBS_029, the evaluation image")
    dfl.write_annotations(with_empty_images(train, []), work / "train.csv")
    print(f"train: {train.image_path.nunique()} images, {len(train)} boxes; "
          f"held out: {len(held)} plots, {len(holdout)} boxes ({', '.join(held)})")
    return work / "train.csv", work / "holdout.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "tree-lite")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    args.data, args.work_dir = args.data.resolve(), args.work_dir.resolve()  # train.csv holds absolute paths

    started = time.perf_counter()
    settings = load_config_file(args.config)
    model_config = from_mapping(ModelConfig, settings.pop("model"), source=str(args.config))
    if args.epochs:
        settings["epochs"] = args.epochs
    train_config = from_mapping(TrainConfig, settings, source=str(args.config))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    train_csv, holdout_csv = prepare(args.data, args.work_dir)

    torch.manual_seed(train_config.seed)
    detector = dfl.Detector(["Tree"], config=model_config, device="cpu")
    result = detector.fit(train_csv, output_dir=args.work_dir / "run", config=train_config, resume=args.resume)
    final = dfl.load_model(result.last_model, device="cpu")
    provenance = {
        **final.metadata.get("training", {}),
        "command": " ".join(["python", *map(shlex.quote, [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])]),
        "config": str(args.config.relative_to(REPO)) if args.config.is_relative_to(REPO) else str(args.config),
        "train": os.path.relpath(train_csv, REPO) if train_csv.is_relative_to(REPO) else str(train_csv),
        "data": "neon-plots (train split), 2019_YELL_2 crops (400 px tiles), SOAP_061; all labelled Tree",
        "holdout_plots": sorted(pd.read_csv(holdout_csv)["image_path"].unique().tolist()),
        "seed": train_config.seed,
        "epochs": result.epochs_completed,
        "resumed": args.resume,
        # data preparation + training in this invocation (with --resume: only the part after the resume)
        "wall_time_s_script": round(time.perf_counter() - started, 1),
    }
    final.save(args.output, half=True, extra=provenance)
    print(f"wrote {args.output} ({args.output.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
