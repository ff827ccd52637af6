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

Modules: :mod:`.prepare` (constants, input checks), :mod:`.matching`, :mod:`.summaries`
(:func:`evaluate_boxes`), :mod:`.result` (:class:`EvaluationResult`, what it returns), :mod:`.sweep` (:func:`threshold_sweep`), :mod:`.coco` (:func:`mean_average_precision`).
"""

from __future__ import annotations

from .coco import mean_average_precision
from .matching import _assign as _assign  # for tests of the matching rule
from .prepare import (
    DEFAULT_SWEEP_THRESHOLDS,
    MAP_METRICS,
    MISSING_LABEL,
    SWEEP_QUANTILES,
)
from .result import EvaluationResult
from .summaries import evaluate_boxes
from .sweep import best_threshold, format_threshold, sweep_thresholds, threshold_sweep

__all__ = [
    "evaluate_boxes",
    "EvaluationResult",
    "mean_average_precision",
    "threshold_sweep",
    "best_threshold",
    "DEFAULT_SWEEP_THRESHOLDS",
    "MAP_METRICS",
    "MISSING_LABEL",
    "format_threshold",
    "sweep_thresholds",
    "SWEEP_QUANTILES",
]
