"""Scoring predicted boxes against ground truth: matching, precision/recall, mAP, score sweep.

Both inputs are box tables (see :mod:`deepforest_lite.boxes`): ``xmin, ymin,
xmax, ymax`` in pixels (origin at the image's top-left corner, x = column),
``label`` and ``image_path``; predictions also carry ``score`` for
:func:`threshold_sweep` and :func:`mean_average_precision`. Several images are
scored at once; boxes belong together when their ``image_path`` strings are
equal.

Matching follows DeepForest 2.1.0 so that box precision and recall can be
compared with its published figures:

* per image, predictions and ground truth are paired one-to-one by an optimal
  assignment (the Hungarian algorithm, :func:`scipy.optimize.linear_sum_assignment`)
  that maximises the summed *intersection area*, not the IoU;
* an assigned pair is a *match* when its IoU is strictly greater than
  ``iou_threshold``;
* matching ignores labels; labels are compared only afterwards, for the
  per-class tables.

This module is torch-free at import; :func:`mean_average_precision` imports
torch and torchmetrics when it is called.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .boxes import BOX_COLUMNS, check_columns, overlap_groups, pairwise_intersection, pairwise_iou
from .errors import InvalidInputError

__all__ = [
    "evaluate_boxes",
    "mean_average_precision",
    "threshold_sweep",
    "best_threshold",
    "DEFAULT_SWEEP_THRESHOLDS",
    "MAP_METRICS",
    "MISSING_LABEL",
    "format_threshold",
    "sweep_thresholds",
]

#: Label given to boxes whose ``label`` is missing (NaN/None) in an input table.
MISSING_LABEL = "(no label)"

#: The coarse grid of score thresholds of :func:`threshold_sweep`: 0.00, 0.05, ..., 0.95
#: (refined where the scores are, see :func:`sweep_thresholds`).
DEFAULT_SWEEP_THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(20))
#: Number of score quantiles :func:`sweep_thresholds` adds to the coarse grid.
SWEEP_QUANTILES: int = 20

#: The scalar keys :func:`mean_average_precision` returns, whatever ``max_detections`` is.
MAP_METRICS: tuple[str, ...] = (
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_max",
)

_REQUIRED = [*BOX_COLUMNS, "label", "image_path"]

_RESULT_COLUMNS = [
    "image_path",
    "truth_id",
    "prediction_id",
    "IoU",
    "score",
    "match",
    "true_label",
    "predicted_label",
    *BOX_COLUMNS,
]


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


def threshold_sweep(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    thresholds: Sequence[float] | None = None,
    iou_threshold: float = 0.4,
) -> pd.DataFrame:
    """Precision, recall and F1 when only predictions scoring at least a threshold are kept.

    Matching is redone at every threshold (dropping a prediction can free a
    ground-truth box for another one), exactly as :func:`evaluate_boxes`.

    Args:
        predictions: box table with a ``score`` column (confidence in [0, 1]).
        ground_truth: box table, as for :func:`evaluate_boxes`.
        thresholds: score thresholds; a prediction is kept when
            ``score >= threshold``. Default :func:`sweep_thresholds` of the
            predictions' scores: 0.00 to 0.95 in steps of 0.05, plus 20 steps
            where the scores are (so scores all below 0.05 still give a curve).
        iou_threshold: as for :func:`evaluate_boxes`.

    Returns:
        One row per threshold, sorted ascending, with columns
        ``score_threshold, n_predictions, true_positive, precision, recall,
        f1`` (pooled, as in :func:`evaluate_boxes`) and ``box_precision,
        box_recall`` (DeepForest's per-image means). Pass it to
        :func:`best_threshold` for the best-F1 threshold.
    """
    iou_threshold = _check_iou_threshold(iou_threshold)
    preds, _ = _prepare(predictions, "predictions", keep_score=True)
    truth, marker_images = _prepare(ground_truth, "ground truth", keep_score=False)
    if "score" not in preds.columns:
        raise InvalidInputError(
            f"threshold_sweep needs a 'score' column in the predictions, which have only "
            f"{list(predictions.columns)}; pass the table predict_image/predict_tile returns."
        )
    if thresholds is None:
        thresholds = sweep_thresholds(preds["score"].to_numpy(dtype=float))
    values = _check_thresholds(thresholds)
    rows = []
    for t in values:
        kept = preds[preds["score"] >= t]
        summary = _summarise(
            _match_all(kept, truth, marker_images, iou_threshold), kept, truth, iou_threshold
        )
        rows.append(
            {
                "score_threshold": t,
                "n_predictions": summary["n_predictions"],
                "true_positive": summary["true_positive"],
                "precision": summary["precision"],
                "recall": summary["recall"],
                "f1": summary["f1"],
                "box_precision": summary["box_precision"],
                "box_recall": summary["box_recall"],
            }
        )
    return pd.DataFrame(rows)


def sweep_thresholds(scores: Sequence[float] | np.ndarray, quantiles: int = SWEEP_QUANTILES) -> list[float]:
    """The default thresholds of :func:`threshold_sweep`: a coarse grid refined where the scores are.

    The coarse grid :data:`DEFAULT_SWEEP_THRESHOLDS` (0.00 to 0.95 by 0.05)
    plus the scores at the quantiles ``0, 1/q, ..., (q-1)/q`` (``q =
    quantiles``; each an actual score, floored to 3 decimals so that the
    threshold keeps that score). Where many scores crowd together (a model
    whose scores are all below 0.05, or all between 0.30 and 0.35), the sweep
    thus has about ``q`` steps among them instead of one or two.

    Returns:
        Sorted, distinct thresholds in [0, 1].
    """
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    extra: list[float] = []
    if len(values):
        q = np.quantile(values, np.arange(int(quantiles)) / int(quantiles), method="lower")
        extra = [round(math.floor(float(v) * 1000 + 1e-9) / 1000, 3) for v in q]
    return sorted({*DEFAULT_SWEEP_THRESHOLDS, *(min(max(v, 0.0), 1.0) for v in extra)})


def format_threshold(value: float) -> str:
    """A score threshold as text with the digits it has: ``0.30``, ``0.012``."""
    value = float(value)
    return f"{value:.2f}" if abs(value - round(value, 2)) < 1e-9 else f"{value:.3f}"


def best_threshold(sweep: pd.DataFrame, metric: str = "f1") -> float:
    """The score threshold of the row of ``sweep`` with the highest ``metric`` (default F1).

    Ties go to the highest threshold. Thresholds that keep the same
    predictions tie, and the lower ones say nothing the data can back: when
    every prediction scores at least 0.3 (the model's own threshold), 0.0 to
    0.3 all tie, and 0.3 is the answer, not a 0.0 that would let unseen
    low-scoring boxes through on the next image. ``sweep`` is the table
    :func:`threshold_sweep` returns.

    Raises:
        InvalidInputError: ``sweep`` lacks ``score_threshold`` or ``metric``, or
            every value of ``metric`` is NaN.
    """
    check_columns(sweep, ["score_threshold", metric], what="threshold sweep table")
    ordered = sweep.sort_values("score_threshold", kind="stable")
    values = pd.to_numeric(ordered[metric], errors="coerce")
    if values.isna().all():
        raise InvalidInputError(
            f"Every {metric!r} value in the sweep is NaN (no predictions and no ground truth?); "
            "check the inputs of threshold_sweep."
        )
    last_best = len(values) - 1 - int(np.nanargmax(values.to_numpy(dtype=float)[::-1]))
    return float(ordered["score_threshold"].iloc[last_best])


def mean_average_precision(
    predictions: pd.DataFrame,
    ground_truth: pd.DataFrame,
    max_detections: int = 100,
) -> dict[str, Any]:
    """COCO-style mean average precision through torchmetrics' ``MeanAveragePrecision``.

    The COCO evaluation runs on the ``pycocotools`` backend: for every IoU
    threshold 0.50, 0.55, ..., 0.95 and every label, predictions are taken in
    decreasing score order and greedily matched to the unmatched ground-truth
    box of the same label with the highest IoU (IoU >= threshold); the
    precision-recall curve is made monotone and read at 101 recall points.
    Unlike :func:`evaluate_boxes` matching is per label and by score, so
    the two give different, complementary numbers.

    Args:
        predictions: box table with ``score``; boxes in pixels, origin
            top-left.
        ground_truth: box table; all-zero marker rows mean "no objects".
        max_detections: at most this many highest-scoring predictions per
            image are counted (COCO's default is 100; a warning is issued
            when an image has more, e.g. a whole tile scored as one image).

    Returns:
        A dict with the same keys whatever ``max_detections`` is
        (:data:`MAP_METRICS`): ``map`` (mean over IoU 0.50:0.95 and labels),
        ``map_50``, ``map_75``, ``map_small``, ``map_medium``, ``map_large``
        (COCO object sizes < 32², 32²-96², > 96² px²), all counting up to
        ``max_detections`` predictions per image; ``mar_1``, ``mar_10``,
        ``mar_100`` (COCO's mean recall with at most 1, 10, 100 predictions
        per image) and ``mar_max`` (mean recall with at most
        ``max_detections``); ``max_detections`` itself (int); and
        ``class_map``: a DataFrame with ``label, map, mar`` (``mar`` at
        ``max_detections``) per label. A figure COCO cannot compute (no
        ground truth of that kind) is NaN, never -1.

    Raises:
        InvalidInputError: bad columns, no ``score`` column, or
            ``max_detections`` < 11.
    """
    preds, _ = _prepare(predictions, "predictions", keep_score=True)
    truth, marker_images = _prepare(ground_truth, "ground truth", keep_score=False)
    if "score" not in preds.columns:
        raise InvalidInputError(
            f"mean_average_precision needs a 'score' column in the predictions, which have only "
            f"{list(predictions.columns)}; pass the table predict_image/predict_tile returns."
        )
    if (
        isinstance(max_detections, bool)
        or not isinstance(max_detections, (int, np.integer))
        or max_detections <= 10
    ):
        raise InvalidInputError(
            f"max_detections must be a whole number above 10, got {max_detections!r}; COCO uses 100."
        )
    max_detections = int(max_detections)

    import torch
    from torchmetrics.detection import MeanAveragePrecision

    labels = sorted(set(preds["label"]) | set(truth["label"]))
    label_ids = {name: i for i, name in enumerate(labels)}
    images = sorted(set(preds["image_path"]) | set(truth["image_path"]) | set(marker_images))
    pred_groups = dict(tuple(preds.groupby("image_path", sort=False)))
    truth_groups = dict(tuple(truth.groupby("image_path", sort=False)))

    most = max((len(g) for g in pred_groups.values()), default=0)
    if most > max_detections:
        warnings.warn(
            f"An image has {most} predictions but mean_average_precision counts only the "
            f"{max_detections} highest-scoring per image; pass max_detections={most} to count all.",
            stacklevel=2,
        )

    def tensors(group: pd.DataFrame | None, with_scores: bool) -> dict[str, Any]:
        if group is None:
            group = preds.iloc[0:0] if with_scores else truth.iloc[0:0]
        out = {
            "boxes": torch.as_tensor(group[BOX_COLUMNS].to_numpy(dtype=np.float32).reshape(-1, 4)),
            "labels": torch.as_tensor(
                np.array([label_ids[x] for x in group["label"]], dtype=np.int64).reshape(-1)
            ),
        }
        if with_scores:
            out["scores"] = torch.as_tensor(group["score"].to_numpy(dtype=np.float32).reshape(-1))
        return out

    metric = MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        max_detection_thresholds=[1, 10, max_detections],
        class_metrics=True,
        backend="pycocotools",
        extended_summary=True,
    )
    preds_in = [tensors(pred_groups.get(i), True) for i in images]
    truth_in = [tensors(truth_groups.get(i), False) for i in images]
    if images:
        metric.update(preds_in, truth_in)
        raw = _quietly(metric.compute)
    else:
        raw = {}

    def scalar(key: str) -> float:
        value = raw.get(key)
        if value is None:
            return math.nan
        value = float(torch.as_tensor(value).reshape(-1)[0])
        return math.nan if value < 0 else value

    # pycocotools' summary reads some figures at a hard-coded 100 detections (-1 for any other
    # max_detections) and torchmetrics names recall after max_detections (mar_143); read the
    # figures from the tables instead, at max_detections, under fixed names (MAP_METRICS).
    # precision: [IoU thresholds 0.50..0.95, 101 recall points, classes, areas (all, small,
    # medium, large), max dets]; recall: the same without the recall points.
    out: dict[str, Any] = {k: math.nan for k in MAP_METRICS}
    rows = []
    if raw:
        precision = torch.as_tensor(raw["precision"])
        recall = torch.as_tensor(raw["recall"])
        out["map"] = _mean_defined(precision[:, :, :, 0, -1])
        out["map_50"] = _mean_defined(precision[0, :, :, 0, -1])
        out["map_75"] = _mean_defined(precision[5, :, :, 0, -1])
        for area, key in ((1, "map_small"), (2, "map_medium"), (3, "map_large")):
            out[key] = _mean_defined(precision[:, :, :, area, -1])
        out["mar_1"] = scalar("mar_1")
        out["mar_10"] = scalar("mar_10")
        out["mar_max"] = _mean_defined(recall[:, :, 0, -1])
        out["mar_100"] = out["mar_max"] if max_detections == 100 else _recall_at_100(metric, preds_in, truth_in)
        classes = torch.as_tensor(raw["classes"]).reshape(-1).tolist()
        per_map = [_mean_defined(precision[:, :, k, 0, -1]) for k in range(precision.shape[2])]
        per_mar = [_mean_defined(recall[:, k, 0, -1]) for k in range(recall.shape[1])]
        if len(per_map) == len(classes):
            for c, m, r in zip(classes, per_map, per_mar):
                rows.append(
                    {
                        "label": labels[int(c)],
                        "map": m if m >= 0 else math.nan,
                        "mar": r if r >= 0 else math.nan,
                    }
                )
    out["max_detections"] = max_detections
    out["class_map"] = pd.DataFrame(rows, columns=["label", "map", "mar"])
    return out


def _recall_at_100(metric: Any, preds: list[dict[str, Any]], truth: list[dict[str, Any]]) -> float:
    """COCO's mean recall with at most 100 detections per image (a second, recall-only pass)."""
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    again = MeanAveragePrecision(
        box_format="xyxy", iou_type="bbox", max_detection_thresholds=[1, 10, 100], backend="pycocotools"
    )
    again.warn_on_many_detections = False  # the cap of 100 is the point of this pass
    again.update(preds, truth)
    value = float(torch.as_tensor(_quietly(again.compute)["mar_100"]).reshape(-1)[0])
    return math.nan if value < 0 else value


def _mean_defined(values: Any) -> float:
    """Mean of the entries COCO could compute (it marks the others -1); NaN when there are none."""
    defined = values[values > -1]
    return float(defined.mean()) if defined.numel() else math.nan


# --------------------------------------------------------------------------- preparation


def _check_iou_threshold(value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise InvalidInputError(
            f"iou_threshold must be a number between 0 and 1, got {value!r}; DeepForest uses 0.4."
        )
    return number


def _check_thresholds(thresholds: Sequence[float]) -> list[float]:
    try:
        values = sorted({float(t) for t in thresholds})
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"thresholds must be numbers between 0 and 1, got {thresholds!r}; e.g. [0.1, 0.2, 0.3]."
        ) from None
    if not values or any(not 0.0 <= t <= 1.0 for t in values):
        raise InvalidInputError(
            f"thresholds must be a non-empty list of numbers between 0 and 1, got {list(thresholds)!r}."
        )
    return values


def _prepare(table: pd.DataFrame, what: str, keep_score: bool) -> tuple[pd.DataFrame, list[str]]:
    """Validated copy of a box table without marker rows, and the images that only had markers."""
    if isinstance(table, pd.DataFrame) and "geometry" in table.columns:  # DeepForest's geometry-only tables
        from .annotations import pixel_boxes_from_geometry

        table = pixel_boxes_from_geometry(table, None, f"the {what}")
    check_columns(table, _REQUIRED, what=what)
    out = table.copy()
    out = out.reset_index(drop=True)
    for column in BOX_COLUMNS:
        numbers = pd.to_numeric(out[column], errors="coerce")
        bad = numbers.isna() & out[column].notna()
        if bad.any():
            raise InvalidInputError(
                f"The {what} column {column!r} holds non-numeric values such as "
                f"{out.loc[bad, column].iloc[0]!r}; box coordinates must be numbers of pixels."
            )
        out[column] = numbers.astype("float64")
    out["image_path"] = out["image_path"].astype(object).where(out["image_path"].notna(), "")
    out["image_path"] = out["image_path"].astype(str)

    marker = (out[BOX_COLUMNS] == 0).all(axis=1)
    marker_images = sorted(set(out.loc[marker, "image_path"]))
    coords = out[BOX_COLUMNS].to_numpy(dtype=np.float64)
    boxes = ~marker.to_numpy()
    width, height = coords[:, 2] - coords[:, 0], coords[:, 3] - coords[:, 1]
    with np.errstate(invalid="ignore"):
        checks = [
            (np.isnan(coords).any(axis=1), "has a box with a missing coordinate", "drop or fill such rows first"),
            (np.isinf(coords).any(axis=1), "has a box with an infinite coordinate",
             "box coordinates must be finite numbers of pixels"),
            ((width < 0) | (height < 0), "has a box with xmax < xmin or ymax < ymin",
             "columns must be xmin, ymin, xmax, ymax in pixels"),
            ((width == 0) | (height == 0), "has a box of zero width or height",
             "boxes need xmax > xmin and ymax > ymin; fix or remove it"),
            ((coords[:, 2] <= 0) | (coords[:, 3] <= 0), "has a box wholly outside its image (left of or above it)",
             "pixel coordinates start at 0 at the image's top-left corner; fix or remove it"),
        ]
    for bad, what_is_wrong, advice in checks:
        bad = bad & boxes
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(
                f"The {what} {what_is_wrong} (row {row}: {coords[row].tolist()}"
                f"{_and_more(int(bad.sum()))}); {advice}."
            )
    if keep_score and "score" in out.columns:
        raw = out["score"]
        scores = pd.to_numeric(raw, errors="coerce")
        bad = (scores.isna() & raw.notna()).to_numpy() | np.isinf(scores.to_numpy(dtype=np.float64))
        bad &= boxes
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(
                f"The {what} has a score that is not a finite number (row {row}: {raw.iloc[row]!r}"
                f"{_and_more(int(bad.sum()))}); scores must be numbers between 0 and 1."
            )
        missing = scores.isna().to_numpy() & boxes
        if missing.any() and (~missing & boxes).any():
            row = int(np.flatnonzero(missing)[0])
            raise InvalidInputError(
                f"The {what} has boxes without a score among boxes with one (row {row}{_and_more(int(missing.sum()))}); "
                "give every predicted box a score, or drop the score column."
            )
    out = out[~marker].reset_index(drop=True)
    no_label = out["label"].isna()
    if no_label.any():
        warnings.warn(
            f"{int(no_label.sum())} box(es) of the {what} have no label (first row "
            f"{int(np.flatnonzero(no_label.to_numpy())[0])}); they are matched as boxes and listed "
            f"under the label {MISSING_LABEL!r}; fill the label column to avoid this.",
            stacklevel=3,
        )
    out["label"] = out["label"].astype(object).where(~no_label, MISSING_LABEL).astype(str)
    if keep_score and "score" in out.columns:
        out["score"] = pd.to_numeric(out["score"], errors="coerce").astype("float64")
    marker_images = [m for m in marker_images if m not in set(out["image_path"])]
    return out, marker_images


def _and_more(n: int) -> str:
    return f", and {n - 1} more" if n > 1 else ""


def _warn_if_disjoint(preds: pd.DataFrame, truth: pd.DataFrame) -> None:
    if len(preds) and len(truth) and not set(preds["image_path"]) & set(truth["image_path"]):
        warnings.warn(
            "No image_path of the predictions appears in the ground truth "
            f"(e.g. {preds['image_path'].iloc[0]!r} vs {truth['image_path'].iloc[0]!r}), so every "
            "prediction is a false positive; make the image_path values agree (e.g. both file names).",
            stacklevel=3,
        )


# --------------------------------------------------------------------------- matching


#: Above this many truth x prediction pairs in one image, matching is done per group of
#: mutually overlapping boxes instead of on one dense matrix (same result, bounded memory).
_DENSE_PAIRS_LIMIT = 1_000_000


def _assign(
    truth: np.ndarray, preds: np.ndarray, dense_limit: int = _DENSE_PAIRS_LIMIT
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal one-to-one pairs maximising total intersection area, for one image.

    Args:
        truth: ``(n, 4)`` and preds: ``(m, 4)`` boxes as ``xmin, ymin, xmax, ymax``.

    Returns:
        ``(truth_rows, pred_cols, ious)`` of the assigned pairs with a positive
        intersection (a zero-overlap assignment pairs nothing).

    Small images use one dense ``n x m`` matrix, as DeepForest does. Larger
    ones are split into connected groups of overlapping boxes: pairs with no
    overlap add nothing to the objective, so the optimum is the union of the
    groups' optima (identical to the dense one unless two assignments tie
    exactly).
    """
    from scipy.optimize import linear_sum_assignment

    n, m = len(truth), len(preds)
    if n * m <= dense_limit:
        groups = [(np.arange(n), np.arange(m))]
    else:
        groups = overlap_groups(truth, preds)  # type: ignore[assignment]
    all_rows, all_cols, all_iou = [], [], []
    for t_idx, p_idx in groups:
        inter = pairwise_intersection(truth[t_idx], preds[p_idx])
        iou = pairwise_iou(truth[t_idx], preds[p_idx])
        rows, cols = linear_sum_assignment(inter, maximize=True)
        keep = inter[rows, cols] > 0
        rows, cols = rows[keep], cols[keep]
        all_rows.append(t_idx[rows])
        all_cols.append(p_idx[cols])
        all_iou.append(iou[rows, cols])
    if not all_rows:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0)
    return np.concatenate(all_rows), np.concatenate(all_cols), np.concatenate(all_iou)


def _match_all(
    preds: pd.DataFrame, truth: pd.DataFrame, marker_images: Sequence[str], iou_threshold: float
) -> dict[str, Any]:
    """Per-image assignment; returns the per-box results, annotated predictions and per-image counts."""
    has_score = "score" in preds.columns
    pred_groups = {k: g for k, g in preds.groupby("image_path", sort=False)}
    truth_groups = {k: g for k, g in truth.groupby("image_path", sort=False)}
    images = sorted(set(pred_groups) | set(truth_groups) | set(marker_images))

    result_parts: list[pd.DataFrame] = []
    pred_parts: list[pd.DataFrame] = []
    per_image = []
    for image in images:
        t = truth_groups.get(image, truth.iloc[0:0])
        p = pred_groups.get(image, preds.iloc[0:0])
        n_t, n_p = len(t), len(p)
        pred_for_truth = np.full(n_t, -1)
        truth_for_pred = np.full(n_p, -1)
        pair_iou = np.zeros(n_t)
        pred_iou = np.zeros(n_p)
        if n_t and n_p:
            rows, cols, ious = _assign(t[BOX_COLUMNS].to_numpy(float), p[BOX_COLUMNS].to_numpy(float))
            pred_for_truth[rows] = cols
            truth_for_pred[cols] = rows
            pair_iou[rows] = ious
            pred_iou[cols] = ious
        match = pair_iou > iou_threshold
        assigned = pred_for_truth >= 0
        p_labels = p["label"].to_numpy(dtype=object)
        p_scores = p["score"].to_numpy(float) if has_score else np.full(n_p, np.nan)
        safe = np.where(assigned, pred_for_truth, 0)
        result_parts.append(
            pd.DataFrame(
                {
                    "image_path": pd.Series([image] * n_t, dtype=object),
                    "truth_id": np.arange(n_t, dtype=np.int64),
                    "prediction_id": _nullable_ids(pred_for_truth),
                    "IoU": pair_iou,
                    "score": np.where(assigned, p_scores[safe], np.nan) if n_p else np.full(n_t, np.nan),
                    "match": match,
                    "true_label": t["label"].to_numpy(dtype=object),
                    "predicted_label": np.where(assigned, p_labels[safe], None) if n_p else [None] * n_t,
                    **{c: t[c].to_numpy(float) for c in BOX_COLUMNS},
                }
            )
        )
        annotated = p.copy()
        annotated["prediction_id"] = np.arange(n_p, dtype=np.int64)
        annotated["truth_id"] = _nullable_ids(truth_for_pred)
        annotated["IoU"] = pred_iou
        annotated["match"] = pred_iou > iou_threshold
        pred_parts.append(annotated)
        tp = int(match.sum())
        per_image.append(
            {
                "image_path": image,
                "n_truth": n_t,
                "n_predictions": n_p,
                "true_positive": tp,
                "precision": tp / n_p if n_p else math.nan,
                "recall": tp / n_t if n_t else math.nan,
            }
        )

    if result_parts:
        results = pd.concat(result_parts, ignore_index=True)
    else:
        results = pd.DataFrame({c: pd.Series(dtype=object) for c in _RESULT_COLUMNS})
    results = results[_RESULT_COLUMNS]
    results = results.astype(
        {
            "truth_id": "int64",
            "prediction_id": "Int64",
            "IoU": "float64",
            "score": "float64",
            "match": "bool",
            **{c: "float64" for c in BOX_COLUMNS},
        }
    )
    annotated_preds = pd.concat(pred_parts, ignore_index=True) if pred_parts else _annotated_empty(preds)
    per_image_df = pd.DataFrame(
        per_image,
        columns=["image_path", "n_truth", "n_predictions", "true_positive", "precision", "recall"],
    ).astype(
        {
            "n_truth": "int64",
            "n_predictions": "int64",
            "true_positive": "int64",
            "precision": "float64",
            "recall": "float64",
        }
    )
    return {"results": results, "predictions": annotated_preds, "per_image": per_image_df}


def _nullable_ids(ids: np.ndarray) -> pd.arrays.IntegerArray:
    """Int64 array of ``ids`` with -1 shown as ``<NA>``."""
    return pd.array([int(i) if i >= 0 else None for i in ids], dtype="Int64")


def _annotated_empty(preds: pd.DataFrame) -> pd.DataFrame:
    out = preds.iloc[0:0].copy()
    out["prediction_id"] = pd.Series(dtype="int64")
    out["truth_id"] = pd.Series(dtype="Int64")
    out["IoU"] = pd.Series(dtype="float64")
    out["match"] = pd.Series(dtype="bool")
    return out


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


def _quietly(func: Any) -> Any:
    """Call ``func()`` with pycocotools' progress prints sent nowhere."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return func()
