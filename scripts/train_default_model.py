"""Train the bundled one-class "tree-lite" model, reproducibly, from the shared sample data.

    python scripts/train_default_model.py --data ../shared/data --work-dir runs/tree-lite

Data (all boxes labelled ``Tree``), every annotated tree image of ``../shared/data`` but the
evaluation image ``samples/OSBS_029`` (never used; the script checks) and the held-out sites:

* ``tree-top-view/``: NEON plots from 17 sites, 416 px at about 0.096 m, resized back to their
  400 px, 0.1 m frame (boxes scaled by 400/416) and written as PNG under ``<work-dir>/ttv400/``;
  the images of the held-out sites (:data:`HOLDOUT_SITES`: whole sites, so a plot flown in two
  years stays on one side) go to ``<work-dir>/holdout.csv`` and ``holdout_<SITE>.csv`` for
  ``benchmarks/accuracy.py``, never to training;
* ``neon-plots/``: the annotated NEON plots (HARV, OSBS, TEAK);
* ``samples/2019_YELL_2_*_image_crop*.png`` with their Pascal VOC boxes, cut into
  400 px tiles with ``split_raster``;
* ``samples/SOAP_061.png`` (Alive and Dead both mapped to Tree).

Settings come from ``deepforest_lite/configs/tree-lite.yaml``. The result is written
as float16 safetensors to ``deepforest_lite/models/tree-lite.safetensors`` with the
command, data, seed, epochs, wall time, hardware and ground sample distance in its
metadata. ``--resume`` continues an interrupted run in the same work folder.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

import deepforest_lite as dfl
from deepforest_lite.config import ModelConfig, TrainConfig, from_mapping, load_config_file

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "deepforest_lite" / "configs" / "tree-lite.yaml"
OUTPUT = REPO / "deepforest_lite" / "models" / "tree-lite.safetensors"
YELL = ("2019_YELL_2_541000_4977000_image_crop", "2019_YELL_2_528000_4978000_image_crop2")
#: Whole NEON sites never trained on, chosen for three different forest types: Mountain Lake
#: (Appalachian oak-hickory, deciduous), Niwot Ridge (subalpine spruce-fir conifers, dense small
#: crowns) and LBJ grasslands (Texas oak savanna, scattered crowns).
HOLDOUT_SITES: tuple[str, ...] = ("MLBS", "NIWO", "CLBJ")
GSD_M = 0.1  # every training image is at (or brought back to) 0.1 m per pixel
COLUMNS = ["image_path", "xmin", "ymin", "xmax", "ymax", "label"]


def tree_top_view(data: Path, out: Path, size: int = 400) -> pd.DataFrame:
    """The Tree-Top-View export brought back to ``size`` px (0.1 m): images as PNG, boxes scaled.

    Returns the box table with absolute ``image_path`` and the export's ``site`` and ``export_split`` columns.
    """
    root = data / "tree-top-view"
    table = pd.read_csv(root / "annotations.csv")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, group in table.groupby("image_path", sort=True):
        target = out / (Path(name).stem + ".png")
        with Image.open(root / "images" / name) as image:
            factor_x, factor_y = size / image.width, size / image.height
            if not target.exists():
                image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR).save(target)
        boxes = group[["xmin", "ymin", "xmax", "ymax"]].to_numpy(float) * [factor_x, factor_y, factor_x, factor_y]
        boxes = np.clip(boxes, 0, size)
        rows.append(pd.DataFrame(boxes, columns=["xmin", "ymin", "xmax", "ymax"]).assign(
            image_path=str(target), label="Tree", site=group["site"].iloc[0],
            export_split=group["export_split"].iloc[0]))
    result = pd.concat(rows, ignore_index=True)
    keep = (result.xmax - result.xmin >= 1) & (result.ymax - result.ymin >= 1)
    return result[keep].reset_index(drop=True)


def prepare(data: Path, work: Path, exclude_sites: Sequence[str] = (),
            exclude_splits: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write ``train.csv`` and the held-out ``holdout*.csv`` (absolute image paths); returns two paths.

    ``exclude_sites`` / ``exclude_splits``: tree-top-view sites or export splits (``"train"``: the
    copies with black wedges) left out of training too (for ablations; never added to the held-out set).
    """
    ttv = tree_top_view(data, work / "ttv400")
    held = ttv[ttv["site"].isin(HOLDOUT_SITES)]
    ttv = ttv[~ttv["site"].isin(exclude_sites) & ~ttv["export_split"].isin(exclude_splits)]
    for site, group in held.groupby("site"):
        dfl.write_annotations(group[COLUMNS], work / f"holdout_{site}.csv")
    dfl.write_annotations(held[COLUMNS], work / "holdout.csv")
    parts = [ttv[~ttv["site"].isin(HOLDOUT_SITES)][COLUMNS]]
    neon_images = data / "neon-plots" / "images"
    neon = dfl.read_annotations(data / "neon-plots" / "annotations.csv", root_dir=neon_images, label="Tree")
    parts.append(neon[COLUMNS].assign(image_path=lambda t: [str(neon_images / p) for p in t.image_path]))
    tiles = work / "tiles"
    for stem in YELL:
        split = dfl.split_raster(data / "samples" / f"{stem}.png", data / "samples" / f"{stem}.xml",
                                 patch_size=400, patch_overlap=0.05, out_dir=tiles, image_format="png",
                                 label="Tree", progress=False)
        parts.append(split.annotations.assign(image_path=lambda t: [str(tiles / p) for p in t.image_path]))
    soap = dfl.read_annotations(data / "samples" / "SOAP_061.xml", label="Tree")
    parts.append(soap.assign(image_path=str(data / "samples" / "SOAP_061.png")))
    train = pd.concat(parts, ignore_index=True)[COLUMNS]
    if train["image_path"].str.contains("OSBS_029").any():
        raise SystemExit("refusing to train on OSBS_029, the evaluation image")
    dfl.write_annotations(dfl.AnnotationSet(train), work / "train.csv")  # every image has boxes: no empty ones
    print(f"train: {train.image_path.nunique()} images, {len(train)} boxes; held out: sites "
          f"{', '.join(HOLDOUT_SITES)}, {held.image_path.nunique()} images, {len(held)} boxes")
    return work / "train.csv", work / "holdout.csv"


def main() -> None:
    """Prepare the data, train, and write the float16 model with its provenance."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "tree-lite")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--prepare-only", action="store_true",
                        help="write train.csv and the held-out holdout*.csv, then stop (no training)")
    parser.add_argument("--exclude-sites", default="", help="comma-separated tree-top-view sites not to train on")
    parser.add_argument("--exclude-splits", default="",
                        help="comma-separated tree-top-view export splits not to train on (train: the wedged copies)")
    args = parser.parse_args()
    args.data, args.work_dir = args.data.resolve(), args.work_dir.resolve()  # train.csv holds absolute paths

    started = time.perf_counter()
    settings = load_config_file(args.config)
    model_config = from_mapping(ModelConfig, settings.pop("model"), source=str(args.config))
    if args.epochs:
        settings["epochs"] = args.epochs
    train_config = from_mapping(TrainConfig, settings, source=str(args.config))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    exclude_sites = [x for x in args.exclude_sites.split(",") if x]
    exclude_splits = [x for x in args.exclude_splits.split(",") if x]
    train_csv, holdout_csv = prepare(args.data, args.work_dir, exclude_sites, exclude_splits)
    if args.prepare_only:
        return

    torch.manual_seed(train_config.seed)
    detector = dfl.Detector(["Tree"], config=model_config, device="cpu")
    result = detector.fit(train_csv, output_dir=args.work_dir / "run", config=train_config, resume=args.resume)
    final = dfl.load_model(result.last_model, device="cpu")
    provenance = {
        **final.metadata.get("training", {}),
        "command": " ".join(["python", *map(shlex.quote, [os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])]),
        "config": str(args.config.relative_to(REPO)) if args.config.is_relative_to(REPO) else str(args.config),
        "train": os.path.relpath(train_csv, REPO) if train_csv.is_relative_to(REPO) else str(train_csv),
        "data": ("tree-top-view (416 -> 400 px) minus the held-out sites, neon-plots (all annotated plots), "
                 "2019_YELL_2 crops (400 px tiles), SOAP_061; all labelled Tree; never OSBS_029"),
        "holdout_sites": list(HOLDOUT_SITES),
        **({"excluded_sites": exclude_sites} if exclude_sites else {}),
        **({"excluded_splits": exclude_splits} if exclude_splits else {}),
        "gsd_m": GSD_M,
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
