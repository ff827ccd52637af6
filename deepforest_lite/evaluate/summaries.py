"""``evaluate_boxes``: matching summarised as precision, recall, per-class tables and a confusion matrix."""

from __future__ import annotations

import math
from typing import Any, cast

import pandas as pd

from .matching import _match_all
from .prepare import _check_iou_threshold, _prepare_pair, _warn_if_disjoint
from .result import EvaluationResult

# --------------------------------------------------------------------------- public API


def evaluate_boxes(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    iou_threshold: float = 0.4,
) -> EvaluationResult:
    """Match predicted boxes to ground-truth boxes and compute precision and recall.

    Args:
        predictions: box table with ``xmin, ymin, xmax, ymax`` (float pixels,
            origin top-left, x = column), ``label`` and ``image_path``;
            ``score`` is optional here and copied into ``results``.
        ground_truth: box table with the same columns (``score`` not needed).
            Rows whose four coordinates are all 0 are DeepForest's marker for
            "this image has no objects": they are not boxes, but the image
            counts as an image without ground truth. Such rows are ignored in
            ``predictions`` too.
        iou_threshold: an assigned pair is a match when its IoU (intersection
            area / union area) is strictly greater than this, in [0, 1].
            DeepForest's default is 0.4.

    Matching, per image (``image_path`` equal): the Hungarian algorithm pairs
    each ground-truth box with at most one prediction and vice versa,
    maximising the total intersection area (so a large prediction that
    covers a tree wins over a tighter one that covers less of it, as in
    DeepForest); pairs with IoU > ``iou_threshold`` are matches (true
    positives). Labels play no part in matching.

    Returns:
        An :class:`~deepforest_lite.evaluate.EvaluationResult`: DeepForest's
        ``box_precision``, ``box_recall``, ``class_recall`` and ``results``;
        pooled ``precision``, ``recall``, ``f1`` with their counts
        ``true_positive``, ``n_predictions``, ``n_truth`` and the
        ``iou_threshold``; the tables ``per_image``, ``class_metrics``,
        ``confusion`` and the annotated ``predictions`` (each field is
        described there). Read them as attributes (``result.box_precision``);
        ``result["box_precision"]`` and ``result.to_dict()`` give DeepForest's
        dict.

    Edge cases follow DeepForest: with no predictions at all, ``box_recall``
    is 0.0 and ``box_precision`` NaN; with predictions but no ground truth at
    all, ``box_precision`` is 0.0 and ``box_recall`` NaN (DeepForest returns
    ``None`` there, and ``None`` for empty tables: here tables are always
    DataFrames, empty when there is nothing to list).

    Per-image means versus pooled figures: ``box_precision`` never sees false
    positives on images without ground truth, and weighs a 2-tree image as
    much as a 200-tree image. Report ``precision``/``recall``/``f1`` when the
    evaluation set contains empty images or images of very different sizes.

    Raises:
        InvalidInputError: a table is not a DataFrame, lacks a column, has
            non-numeric or missing coordinates, or ``xmax < xmin`` /
            ``ymax < ymin``; or ``iou_threshold`` is outside [0, 1].
    """
    iou_threshold = _check_iou_threshold(iou_threshold)
    preds, truth, marker_images = _prepare_pair(predictions, ground_truth)
    _warn_if_disjoint(preds, truth)
    matched = _match_all(preds, truth, marker_images, iou_threshold)
    return _summarise(matched, preds, truth, iou_threshold)


# --------------------------------------------------------------------------- summaries


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


def _summarise(
    matched: dict[str, Any], preds: pd.DataFrame, truth: pd.DataFrame, iou_threshold: float
) -> EvaluationResult:
    results: pd.DataFrame = matched["results"]
    per_image: pd.DataFrame = matched["per_image"]
    n_pred, n_truth = len(preds), len(truth)
    tp = int(results["match"].sum())

    # DeepForest's per-image means, including its special cases for empty inputs.
    if n_pred == 0:
        box_recall, box_precision = 0.0, math.nan
    elif n_truth == 0:
        box_recall, box_precision = math.nan, 0.0
    else:
        with_truth = per_image[per_image["n_truth"] > 0]
        box_recall = float(with_truth["recall"].mean())
        both = with_truth[with_truth["n_predictions"] > 0]
        box_precision = float(both["precision"].mean()) if len(both) else math.nan

    matched_rows = results[results["match"]]
    labels = sorted(set(truth["label"]) | set(preds["label"]))
    return EvaluationResult(
        box_precision=box_precision,
        box_recall=box_recall,
        class_recall=_class_recall(matched_rows),
        results=results,
        precision=_ratio(tp, n_pred),
        recall=_ratio(tp, n_truth),
        f1=_ratio(2 * tp, n_pred + n_truth),
        true_positive=tp,
        n_predictions=n_pred,
        n_truth=n_truth,
        iou_threshold=iou_threshold,
        per_image=per_image,
        class_metrics=_class_metrics(matched_rows, preds, truth, labels),
        confusion=_confusion(matched_rows, labels),
        predictions=matched["predictions"],
    )


def _class_recall(matched_rows: pd.DataFrame) -> pd.DataFrame:
    """DeepForest's per-label table, from matched pairs only."""
    true_l = matched_rows["true_label"].astype(str)
    pred_l = matched_rows["predicted_label"].astype(str)
    agree = (true_l == pred_l).to_numpy()
    rows = []
    for label in sorted(set(true_l) | set(pred_l)):
        is_true = (true_l == label).to_numpy()
        is_pred = (pred_l == label).to_numpy()
        size = int(is_true.sum())
        rows.append(
            {
                "label": label,
                "recall": float((agree & is_true).sum() / size) if size else 0.0,
                "precision": float((agree & is_pred).sum() / is_pred.sum()) if is_pred.any() else 0.0,
                "size": size,
            }
        )
    return pd.DataFrame(rows, columns=["label", "recall", "precision", "size"]).astype(
        {"recall": "float64", "precision": "float64", "size": "int64"}
    )


def _class_metrics(
    matched_rows: pd.DataFrame, preds: pd.DataFrame, truth: pd.DataFrame, labels: list[str]
) -> pd.DataFrame:
    correct = matched_rows[
        matched_rows["true_label"].astype(str) == matched_rows["predicted_label"].astype(str)
    ]
    tp_by = correct["true_label"].astype(str).value_counts()
    n_t_by = truth["label"].value_counts()
    n_p_by = preds["label"].value_counts()
    rows = []
    for label in labels:
        tp = int(tp_by.get(label, 0))
        n_t = int(n_t_by.get(label, 0))
        n_p = int(n_p_by.get(label, 0))
        rows.append(
            {
                "label": label,
                "n_truth": n_t,
                "n_predictions": n_p,
                "true_positive": tp,
                "precision": _ratio(tp, n_p),
                "recall": _ratio(tp, n_t),
                "f1": _ratio(2 * tp, n_p + n_t),
            }
        )
    columns = ["label", "n_truth", "n_predictions", "true_positive", "precision", "recall", "f1"]
    return pd.DataFrame(rows, columns=columns).astype(
        {
            "n_truth": "int64",
            "n_predictions": "int64",
            "true_positive": "int64",
            "precision": "float64",
            "recall": "float64",
            "f1": "float64",
        }
    )


def _confusion(matched_rows: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    table = pd.DataFrame(
        0, index=pd.Index(labels, name="true_label"), columns=pd.Index(labels, name="predicted_label")
    )
    for key, n in matched_rows.groupby(["true_label", "predicted_label"]).size().items():
        t, p = cast("tuple[Any, Any]", key)  # grouped by two columns: (true label, predicted label)
        table.loc[str(t), str(p)] = int(n)
    return table.astype("int64")
