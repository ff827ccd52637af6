"""'I annotated 10 plots of my own forest': fine-tune on N plots of a site, score its other plots, against zero-shot.

    python scripts/train_default_model.py --work-dir runs/tree-lite --prepare-only   # writes runs/tree-lite/holdout_<SITE>.csv
    python benchmarks/finetune_site.py --annotations runs/tree-lite/holdout_CLBJ.csv --plots 10 --val-plots 2 --epochs 15 --lr 1e-4

A plot is the NEON plot id at the start of the image name (``CLBJ_001`` in ``CLBJ_001_2018...``), so
both flights of one plot land on the same side. The first ``--plots`` plot ids (sorted) are the
fine-tuning set, the others the test set; with ``--val-plots K`` the last K of the fine-tuning plots
are kept out of training and used as validation (best epoch and score threshold by F1). The model
(default: the bundled one) is scored on the test plots as it is (zero-shot), then fine-tuned with
``fit``'s defaults (plus ``--epochs``, ``--lr``) and scored again at its stored score threshold. Box precision/recall per image (DeepForest's rule) and pooled
P/R/F1 at IoU 0.4. Prints one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

import deepforest_lite as dfl


def plot_id(image_path: str) -> str:
    """``"CLBJ_001"`` from ``.../CLBJ_001_2018_jpg.rf.123.png``; the file stem when no plot id is found."""
    name = os.path.basename(image_path)
    match = re.match(r"([A-Z]{4}_\d+)", name)
    return match.group(1) if match else Path(name).stem


def score(det: dfl.Detector, truth: pd.DataFrame) -> dict[str, float]:
    """Box precision/recall and pooled P/R/F1 of ``det`` on the images of ``truth`` (absolute paths)."""
    tables = [det.predict_image(path, image_path=path) for path in truth["image_path"].unique()]
    predictions = pd.concat(tables, ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = dfl.evaluate_boxes(predictions, truth, iou_threshold=0.4)
    return {k: round(float(getattr(s, k)), 4) for k in ("box_precision", "box_recall", "precision", "recall", "f1")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", required=True, help="one site's box CSV with absolute image paths")
    parser.add_argument("--model", default=None, help="starting model (default: the bundled tree-lite)")
    parser.add_argument("--plots", type=int, default=10, help="plots to fine-tune on (default 10)")
    parser.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs (default 30)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: fit's)")
    parser.add_argument("--val-plots", type=int, default=0,
                        help="of the fine-tuning plots, this many validate instead of train (default 0)")
    parser.add_argument("--output-dir", default=None, help="training folder (default: a temporary one)")
    args = parser.parse_args()

    truth = dfl.read_annotations(args.annotations)
    plots = sorted({plot_id(p) for p in truth["image_path"]})
    if len(plots) <= args.plots:
        raise SystemExit(f"{args.annotations} has only {len(plots)} plots; --plots must leave some to score")
    if not 0 <= args.val_plots < args.plots:
        raise SystemExit(f"--val-plots must be between 0 and --plots - 1 ({args.plots - 1}), got {args.val_plots}")
    tune_plots = set(plots[: args.plots])
    val_plots = set(plots[args.plots - args.val_plots : args.plots])
    is_tune = truth["image_path"].map(plot_id).isin(tune_plots)
    tune, test = truth[is_tune], truth[~is_tune]
    is_val = tune["image_path"].map(plot_id).isin(val_plots)
    tune, val = tune[~is_val], tune[is_val]

    det = dfl.load_model(args.model, device="cpu")
    zero_shot = score(det, test)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.output_dir or tmp)
        out.mkdir(parents=True, exist_ok=True)
        dfl.write_annotations(tune, out / "finetune.csv")
        options: dict = {"epochs": args.epochs, "progress": False}
        if args.lr is not None:
            options["lr"] = args.lr
        if len(val):
            dfl.write_annotations(val, out / "val.csv")
            options["val"] = out / "val.csv"
        trained = det.fit(out / "finetune.csv", output_dir=out / "run", **options)
        det = dfl.load_model(trained.model_path, device="cpu")  # the best validation epoch when there was validation
    seconds = time.perf_counter() - started
    result = {
        "annotations": args.annotations,
        "model": args.model or "tree-lite (bundled)",
        "finetune_plots": sorted(tune_plots - val_plots),
        "val_plots": sorted(val_plots),
        "lr": args.lr,
        "finetune_images": int(tune["image_path"].nunique()),
        "finetune_boxes": len(tune),
        "test_plots": len(plots) - args.plots,
        "test_images": int(test["image_path"].nunique()),
        "test_boxes": len(test),
        "epochs": args.epochs,
        "score_threshold": det.score_threshold,
        "zero_shot": zero_shot,
        "fine_tuned": score(det, test),
        "finetune_seconds": round(seconds, 1),
    }
    print(f"zero-shot F1 {zero_shot['f1']:.3f} -> fine-tuned F1 {result['fine_tuned']['f1']:.3f} "
          f"on {result['test_images']} images of {result['test_plots']} plots", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
