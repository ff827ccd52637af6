"""``deepforest-lite evaluate``: score predicted boxes against ground truth.

Prints a short summary (DeepForest's box precision/recall, pooled
precision/recall/F1, mAP, a per-class table) and, when asked, writes the
detailed tables as CSV and pictures as PNG.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..boxes import BOX_COLUMNS, check_columns
from ..errors import AnnotationError, ImageReadError, InvalidInputError, RasterError
from ..files import atomic_write
from ._checks import check_evaluate
from ._common import fraction

if TYPE_CHECKING:
    from ..evaluate import EvaluationResult

__all__ = ["add_parser", "run", "read_box_table"]

_DESCRIPTION = """\
Score predicted boxes against ground-truth boxes, the way DeepForest 2.1.0 does
(Hungarian matching on intersection area, a match when IoU > --iou-threshold),
and print box precision/recall (per-image means), pooled precision/recall/F1,
COCO mAP and a per-class table.

Both files are CSV box tables with columns image_path, xmin, ymin, xmax, ymax
(pixels, origin top-left) and label; predictions also need score for mAP, the
threshold sweep and the precision-recall curve. Rows 0,0,0,0 mark images with
no objects.
"""


_EPILOG = """\
examples:
  deepforest-lite evaluate predictions.csv truth.csv
  deepforest-lite evaluate trees.gpkg truth.csv --iou-threshold 0.5 --output scores/metrics.csv
  deepforest-lite evaluate predictions.csv truth.xml --plot-dir plots/ --root-dir images/
"""


def add_parser(subparsers: Any) -> None:
    """Register ``evaluate`` on the ``deepforest-lite`` subcommand parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted boxes against ground truth (precision, recall, mAP)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("predictions", metavar="PREDICTIONS", help="predicted boxes: a CSV (ours or DeepForest's), or the .gpkg/.geojson/.shp of deepforest-lite predict")
    parser.add_argument("ground_truth", metavar="GROUND_TRUTH", help="ground-truth boxes: DeepForest CSV, Pascal VOC XML or COCO JSON")
    parser.add_argument(
        "--iou-threshold",
        type=fraction,
        default=0.4,
        metavar="IOU",
        help="a matched pair counts when its IoU (0-1) is above this (default 0.4, DeepForest's)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="CSV",
        help="write the summary metrics here (metric,value) and, beside it, STEM_results.csv "
        "(one row per ground-truth box), STEM_per_class.csv, STEM_per_image.csv, "
        "STEM_confusion.csv and, with scores, STEM_sweep.csv (default: print the summary only)",
    )
    parser.add_argument(
        "--plot-dir",
        metavar="DIR",
        help="write IMAGE_evaluation.png overlays (predictions orange, ground truth blue) for "
        "every image file found, and precision_recall.png when predictions have scores, the chosen "
        "threshold marked with its value (default: no pictures)",
    )
    parser.add_argument(
        "--root-dir",
        metavar="DIR",
        help="folder holding the images named in image_path (default: the ground-truth file's folder)",
    )
    parser.set_defaults(run=run)


# --------------------------------------------------------------------------- reading

_VECTOR_SUFFIXES = (".gpkg", ".geojson", ".shp")


def read_box_table(path: str, what: str) -> pd.DataFrame:
    """Read a box table.

    A CSV (kept as written, ``0,0,0,0`` rows included, which
    :func:`evaluate_boxes` reads as "no objects"), a box file written by
    ``deepforest-lite predict`` (``.gpkg``, ``.geojson``, ``.shp``; the pixel columns
    are used), or any other annotation file :func:`read_annotations` reads (VOC, COCO).
    """
    if not os.path.exists(path):
        raise AnnotationError(f"The {what} file {path!r} does not exist; check the path.")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _VECTOR_SUFFIXES:
        import geopandas as gpd

        table = pd.DataFrame(gpd.read_file(path)).drop(columns="geometry", errors="ignore")
    elif suffix == ".csv":
        try:
            table = pd.read_csv(path, dtype={"label": str, "image_path": str})
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise AnnotationError(
                f"Cannot read the {what} file {path!r} as CSV ({str(exc).splitlines()[0]}); "
                "give a CSV with columns image_path, xmin, ymin, xmax, ymax, label."
            ) from None
    else:
        from ..annotations import read_annotations

        table = read_annotations(path)
    from ..annotations import pixel_boxes_from_geometry

    table = pixel_boxes_from_geometry(table, None, f"the {what} file {path!r}")  # DeepForest's geometry-only CSVs
    check_columns(table, ["image_path", *BOX_COLUMNS, "label"], what=f"{what} file {path!r}")
    return table


# --------------------------------------------------------------------------- running


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the summary, write the requested files; returns the exit code."""
    from ..evaluate import best_threshold, evaluate_boxes, mean_average_precision, threshold_sweep

    check_evaluate(args)  # inputs exist, --output and --plot-dir writable, before anything is read
    if args.root_dir is not None and not os.path.isdir(args.root_dir):
        raise InvalidInputError(
            f"--root-dir {args.root_dir!r} is not a folder; give the folder holding the images."
        )
    if args.plot_dir is not None and os.path.exists(args.plot_dir) and not os.path.isdir(args.plot_dir):
        raise InvalidInputError(
            f"--plot-dir {args.plot_dir!r} is a file; give a folder (it is created if missing)."
        )
    if args.output is not None and os.path.isdir(args.output):
        raise InvalidInputError(
            f"--output {args.output!r} is a folder; give a file name such as metrics.csv."
        )

    predictions = read_box_table(args.predictions, "predictions")
    truth = read_box_table(args.ground_truth, "ground truth")
    root = args.root_dir if args.root_dir is not None else os.path.dirname(os.path.abspath(args.ground_truth))
    for table, what in ((predictions, "predictions"), (truth, "ground truth")):
        _check_inside_images(table, what, root)
    map_scores: dict[str, Any] | None = None
    sweep: pd.DataFrame | None = None
    best: float | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = evaluate_boxes(predictions, truth, iou_threshold=args.iou_threshold)
        if "score" in predictions.columns and predictions["score"].notna().any():
            per_image = scores.per_image["n_predictions"]
            most = int(per_image.max()) if len(per_image) else 0
            map_scores = mean_average_precision(predictions, truth, max_detections=max(100, most))
            sweep = threshold_sweep(predictions, truth, iou_threshold=args.iou_threshold)
            if sweep["f1"].notna().any():
                best = best_threshold(sweep)
    user_warnings = (str(w.message) for w in caught if issubclass(w.category, UserWarning))
    for message in dict.fromkeys(user_warnings):  # each distinct warning once, as one line
        print("warning: " + " ".join(message.split()), file=sys.stderr)

    _print_summary(scores, map_scores, sweep, best)
    if args.output is not None:
        for path in _write_tables(args.output, scores, map_scores, sweep, best):
            print(f"wrote {path}")
    if args.plot_dir is not None:
        root = (
            args.root_dir
            if args.root_dir is not None
            else os.path.dirname(os.path.abspath(args.ground_truth))
        )
        for path in _write_plots(args.plot_dir, root, scores, truth, sweep):
            print(f"wrote {path}")
    return 0


def _check_inside_images(table: pd.DataFrame, what: str, root: str) -> None:
    """Refuse boxes lying wholly right of or below their image, for the images found under ``root``."""
    from ..rasterfile import raster_header

    coords = table[BOX_COLUMNS].apply(pd.to_numeric, errors="coerce")
    for image_path in table["image_path"].dropna().astype(str).unique():
        file = image_path if os.path.isabs(image_path) else os.path.join(root, image_path)
        if not os.path.isfile(file):
            continue
        try:
            header = raster_header(file)
        except ImageReadError:  # an unreadable image only means its size is unknown here
            continue
        width, height = header.width, header.height
        rows = (table["image_path"].astype(str) == image_path).to_numpy()
        outside = rows & ((coords["xmin"] >= width) | (coords["ymin"] >= height)).to_numpy()
        if outside.any():
            row = int(outside.nonzero()[0][0])
            raise InvalidInputError(
                f"The {what} has a box wholly outside its image {image_path!r} of {width} x {height} px "
                f"(row {row}: {coords.iloc[row].tolist()}); fix its coordinates (pixels, origin top-left) "
                "or remove it."
            )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"


def _print_summary(
    scores: EvaluationResult, map_scores: dict[str, Any] | None, sweep: pd.DataFrame | None, best: float | None
) -> None:
    n_images = len(scores.per_image)
    print(
        f"{scores.n_predictions} predictions vs {scores.n_truth} ground-truth boxes on "
        f"{n_images} image{'s' if n_images != 1 else ''}; a match needs IoU > {scores.iou_threshold:g}"
    )
    print(f"box precision (DeepForest, mean per image): {_fmt(scores.box_precision)}")
    print(f"box recall    (DeepForest, mean per image): {_fmt(scores.box_recall)}")
    print(
        f"pooled precision / recall / F1: {_fmt(scores.precision)} / {_fmt(scores.recall)} / "
        f"{_fmt(scores.f1)}  ({scores.true_positive} matches)"
    )
    if map_scores is None:
        print("mAP: n/a (the predictions have no score column)")
    else:
        print(
            f"mAP@0.5: {_fmt(map_scores['map_50'])}   mAP@[0.5:0.95] (COCO): {_fmt(map_scores['map'])}   "
            f"mAR@100: {_fmt(map_scores['mar_100'])}"
        )
    if sweep is not None and best is not None:
        from ..evaluate import format_threshold

        row = sweep[sweep["score_threshold"] == best].iloc[0]
        print(
            f"best F1 {_fmt(row['f1'])} at score >= {format_threshold(best)} "
            f"(precision {_fmt(row['precision'])}, recall {_fmt(row['recall'])})"
        )
    table = scores.class_metrics
    if len(table):
        print("per class:")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="n/a"))


def _sibling(output: str, suffix: str) -> str:
    path = Path(output)
    return str(path.with_name(f"{path.stem}_{suffix}.csv"))


def _write_csv(table: pd.DataFrame, path: str, index: bool = False) -> str:
    """Write ``table`` atomically (temporary file beside it, then rename)."""
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=index))


def _write_tables(
    output: str,
    scores: EvaluationResult,
    map_scores: dict[str, Any] | None,
    sweep: pd.DataFrame | None,
    best: float | None,
) -> list[str]:
    metrics: dict[str, Any] = {
        "n_images": len(scores.per_image),
        "n_truth": scores.n_truth,
        "n_predictions": scores.n_predictions,
        "true_positive": scores.true_positive,
        "iou_threshold": scores.iou_threshold,
        "box_precision": scores.box_precision,
        "box_recall": scores.box_recall,
        "precision": scores.precision,
        "recall": scores.recall,
        "f1": scores.f1,
    }
    if map_scores is not None:
        metrics.update({k: v for k, v in map_scores.items() if not isinstance(v, pd.DataFrame)})
    if best is not None:
        metrics["best_score_threshold"] = best
    written = [
        _write_csv(
            pd.DataFrame({"metric": list(metrics), "value": pd.Series(list(metrics.values()), dtype=object)}),
            output,
        )
    ]
    written.append(_write_csv(scores.results, _sibling(output, "results")))
    per_class = scores.class_metrics
    if map_scores is not None and len(map_scores["class_map"]):
        per_class = per_class.merge(map_scores["class_map"], on="label", how="left")
    written.append(_write_csv(per_class, _sibling(output, "per_class")))
    written.append(_write_csv(scores.per_image, _sibling(output, "per_image")))
    written.append(_write_csv(scores.confusion, _sibling(output, "confusion"), index=True))
    if sweep is not None:
        written.append(_write_csv(sweep, _sibling(output, "sweep")))
    return written


def _write_plots(
    plot_dir: str, root: str, scores: EvaluationResult, truth: pd.DataFrame, sweep: pd.DataFrame | None
) -> list[str]:
    from ..visualize import plot_precision_recall, plot_predictions

    os.makedirs(plot_dir, exist_ok=True)
    predictions: pd.DataFrame = scores.predictions
    truth = truth.copy()
    truth["image_path"] = truth["image_path"].fillna("").astype(str)
    truth = truth[~(truth[BOX_COLUMNS] == 0).all(axis=1)]
    labels = set(truth["label"].astype(str)) | set(predictions["label"].astype(str))
    written: list[str] = []
    used: set[str] = set()
    for image_path in scores.per_image["image_path"]:
        image_file = os.path.join(root, image_path) if image_path else ""
        if not image_path or not os.path.isfile(image_file):
            print(
                f"note: no image file {image_file or image_path!r} found; its overlay is skipped "
                "(use --root-dir to point at the images)",
                file=sys.stderr,
            )
            continue
        name = f"{Path(image_path).stem}_evaluation"
        while name in used:
            name += "_"
        used.add(name)
        try:
            plot_predictions(
                image_file,
                predictions[predictions["image_path"] == image_path],
                os.path.join(plot_dir, f"{name}.png"),
                ground_truth=truth[truth["image_path"] == image_path],
                show_labels=len(labels) > 1,
                show_scores=False,
            )
        except RasterError as exc:  # read as prediction reads it: e.g. 4 bands need bands=(r, g, b)
            print(f"note: its overlay is skipped: {exc}", file=sys.stderr)
            continue
        written.append(os.path.join(plot_dir, f"{name}.png"))
    if sweep is not None:
        written.append(plot_precision_recall(sweep, os.path.join(plot_dir, "precision_recall.png")))
    return written
