"""Score-threshold sweeps: precision/recall/F1 at many thresholds, and the best one. Torch-free."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..boxes import (
    check_columns,
)
from ..errors import InvalidInputError
from .matching import _match_all
from .prepare import (
    DEFAULT_SWEEP_THRESHOLDS,
    SWEEP_QUANTILES,
    _check_iou_threshold,
    _check_thresholds,
    _prepare_pair,
)
from .summaries import _summarise


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
    preds, truth, marker_images = _prepare_pair(predictions, ground_truth, scored_for="threshold_sweep")
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
                "n_predictions": summary.n_predictions,
                "true_positive": summary.true_positive,
                "precision": summary.precision,
                "recall": summary.recall,
                "f1": summary.f1,
                "box_precision": summary.box_precision,
                "box_recall": summary.box_recall,
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
