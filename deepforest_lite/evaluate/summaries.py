"""``evaluate_boxes``: matching summarised as precision, recall, per-class tables and a confusion matrix."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .matching import _match_all
from .prepare import _check_iou_threshold, _prepare, _warn_if_disjoint

# --------------------------------------------------------------------------- public API


def evaluate_boxes(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    iou_threshold: float = 0.4,
) -> dict[str, Any]:
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
        A dict. DeepForest's keys, with DeepForest's meaning:

        * ``box_precision`` (float): mean over images of (matches / predictions
          in the image). Only images that have ground truth *and* at least one
          prediction take part: predictions on images without ground truth
          are ignored, and an image with ground truth but no predictions adds
          nothing (its precision is undefined). NaN when no image qualifies.
        * ``box_recall`` (float): mean over images that have ground truth of
          (matches / ground-truth boxes in the image); an image with ground
          truth and no predictions counts as 0, images without ground truth
          are ignored.
        * ``class_recall`` (DataFrame ``label, recall, precision, size``),
          computed as DeepForest does *on matched pairs only*: ``recall`` is
          the share of matched ground-truth boxes of that label whose
          prediction has the same label, ``precision`` the share of matched
          predictions of that label whose ground truth has the same label,
          ``size`` the number of matched ground-truth boxes of that label
          (0 and 0.0 where a label has none). Unmatched boxes do not count
          here; see ``class_metrics`` for figures that count them.
        * ``results`` (DataFrame, one row per ground-truth box): ``image_path``;
          ``truth_id`` (0-based position of the box among that image's
          ground-truth rows, in input order); ``prediction_id`` (position of
          the assigned prediction among that image's prediction rows, ``<NA>``
          when none with a positive overlap was assigned); ``IoU`` (0.0 when
          unassigned); ``score`` of the assigned prediction (NaN when none or
          when predictions have no score); ``match`` (bool, IoU >
          ``iou_threshold``); ``true_label``; ``predicted_label`` (NaN when
          unassigned); and the ground-truth box ``xmin, ymin, xmax, ymax``.

        Pooled (micro) figures over all boxes of all images:

        * ``precision``: matches / all predictions, including those on images
          without ground truth (NaN when there are no predictions);
        * ``recall``: matches / all ground-truth boxes (NaN when there is no
          ground truth);
        * ``f1``: 2 * matches / (predictions + ground-truth boxes), the
          harmonic mean of the two (NaN when both counts are 0);
        * ``true_positive``, ``n_predictions``, ``n_truth`` (ints),
          ``iou_threshold`` (float).

        More tables:

        * ``per_image`` (DataFrame): ``image_path, n_truth, n_predictions,
          true_positive, precision, recall`` for every image found in either
          table (marker-only ground-truth images have ``n_truth`` 0);
          ``precision`` is NaN without predictions, ``recall`` NaN without
          ground truth.
        * ``class_metrics`` (DataFrame): ``label, n_truth, n_predictions,
          true_positive, precision, recall, f1`` per label found in either
          table, where a true positive is a match whose two labels agree:
          precision = true_positive / n_predictions, recall = true_positive /
          n_truth (NaN when the count is 0).
        * ``confusion`` (DataFrame of int): matched pairs counted by true label
          (rows, index name ``true_label``) and predicted label (columns,
          name ``predicted_label``), over every label found in either table.
        * ``predictions``: a copy of the predictions (marker rows dropped) with
          ``prediction_id``, ``truth_id`` (``<NA>`` when unassigned), ``IoU``
          and ``match`` added.

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
    preds, _ = _prepare(predictions, "predictions", keep_score=True)
    truth, marker_images = _prepare(ground_truth, "ground truth", keep_score=False)
    _warn_if_disjoint(preds, truth)
    matched = _match_all(preds, truth, marker_images, iou_threshold)
    return _summarise(matched, preds, truth, iou_threshold)


# --------------------------------------------------------------------------- summaries


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


def _summarise(
    matched: dict[str, Any], preds: pd.DataFrame, truth: pd.DataFrame, iou_threshold: float
) -> dict[str, Any]:
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
    return {
        "box_precision": box_precision,
        "box_recall": box_recall,
        "class_recall": _class_recall(matched_rows),
        "results": results,
        "precision": _ratio(tp, n_pred),
        "recall": _ratio(tp, n_truth),
        "f1": _ratio(2 * tp, n_pred + n_truth),
        "true_positive": tp,
        "n_predictions": n_pred,
        "n_truth": n_truth,
        "iou_threshold": iou_threshold,
        "per_image": per_image,
        "class_metrics": _class_metrics(matched_rows, preds, truth, labels),
        "confusion": _confusion(matched_rows, labels),
        "predictions": matched["predictions"],
    }


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
    for (t, p), n in matched_rows.groupby(["true_label", "predicted_label"]).size().items():
        table.loc[str(t), str(p)] = int(n)
    return table.astype("int64")
