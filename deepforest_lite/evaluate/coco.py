"""COCO-style mean average precision through torchmetrics (torch is imported when called)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..boxes import (
    BOX_COLUMNS,
)
from ..checks import check_range
from ..errors import EvaluationWarning
from .prepare import MAP_METRICS, _prepare_pair, _quietly


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
    preds, truth, marker_images = _prepare_pair(predictions, ground_truth, scored_for="mean_average_precision")
    max_detections = check_range("max_detections", max_detections, 10, low_open=True, integer=True, hint="COCO uses 100")

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
            EvaluationWarning,
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
