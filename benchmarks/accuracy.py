"""Accuracy of a model on a box CSV + images: DeepForest-compatible box precision/recall, pooled P/R/F1, mAP.

    python benchmarks/accuracy.py --annotations sample_data/OSBS_029.csv            # bundled model
    python benchmarks/accuracy.py --model weecology/deepforest-tree --annotations truth.csv --root-dir images/

Each image is predicted with ``predict_tile`` (one window for images no larger than a patch, so the
same as ``predict_image``), then all images are scored together. Prints a short summary on stderr
and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings

import pandas as pd

import deepforest_lite as dfl
from deepforest_lite.annotations import image_paths


def _figure(value: float) -> float | None:
    """Rounded to 4 decimals; ``None`` (JSON null) for a figure that cannot be computed (NaN)."""
    value = float(value)
    return None if math.isnan(value) else round(value, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint, bundled or hub name (default: the bundled model)")
    parser.add_argument("--annotations", required=True, help="ground truth (DeepForest CSV, VOC, COCO)")
    parser.add_argument("--root-dir", help="folder of the images (default: the annotation file's folder)")
    parser.add_argument("--iou-threshold", type=float, default=0.4)
    parser.add_argument("--score-threshold", type=float, help="override the model's score threshold")
    parser.add_argument("--patch-size", type=int, default=400)
    parser.add_argument("--patch-overlap", type=float, default=0.05)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", help="write the predictions to this CSV")
    args = parser.parse_args()

    det = dfl.load_model(args.model, device=args.device)
    if args.score_threshold is not None:
        det.score_threshold = args.score_threshold
    truth = dfl.read_annotations(args.annotations, root_dir=args.root_dir)
    root = args.root_dir or os.path.dirname(os.path.abspath(args.annotations))
    started = time.perf_counter()
    tables = []
    for name in image_paths(truth):
        boxes = det.predict_tile(os.path.join(root, name), patch_size=args.patch_size,
                                 patch_overlap=args.patch_overlap, image_path=name, progress=False)
        tables.append(pd.DataFrame(boxes[["xmin", "ymin", "xmax", "ymax", "label", "score", "image_path"]]))
    seconds = time.perf_counter() - started
    predictions = pd.concat(tables, ignore_index=True) if tables else dfl.empty_boxes()
    if args.output:
        predictions.to_csv(args.output, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = dfl.evaluate_boxes(predictions, truth, iou_threshold=args.iou_threshold)
        maps = dfl.mean_average_precision(predictions, truth, max_detections=max(100, det.detections_per_image))
        sweep = dfl.threshold_sweep(predictions, truth, iou_threshold=args.iou_threshold)
    result = {
        "model": args.model or "tree-lite (bundled)",
        "annotations": args.annotations,
        "images": len(image_paths(truth)),
        "truth_boxes": int(scores.n_truth),
        "predicted_boxes": int(scores.n_predictions),
        "iou_threshold": args.iou_threshold,
        "score_threshold": det.score_threshold,
        "box_precision": _figure(scores.box_precision),
        "box_recall": _figure(scores.box_recall),
        "precision": _figure(scores.precision),
        "recall": _figure(scores.recall),
        "f1": _figure(scores.f1),
        "map_50": _figure(maps["map_50"]),
        "map": _figure(maps["map"]),
        "best_f1_threshold": dfl.best_threshold(sweep),
        "best_f1": _figure(sweep["f1"].max()),
        "seconds": round(seconds, 2),
    }
    shown = {k: "n/a" if v is None else f"{v:.3f}" for k, v in result.items() if isinstance(v, float) or v is None}
    print(
        f"{result['images']} image(s), {result['truth_boxes']} true boxes, {result['predicted_boxes']} predicted: "
        f"box precision {shown['box_precision']}, box recall {shown['box_recall']}, "
        f"pooled P/R/F1 {shown['precision']}/{shown['recall']}/{shown['f1']}, mAP@0.5 {shown['map_50']}",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
