"""One-to-one matching of predictions to ground truth per image (DeepForest's rule). Torch-free."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from ..boxes import (
    BOX_COLUMNS,
    overlap_groups,
    pairwise_intersection,
    pairwise_iou,
)
from .prepare import _RESULT_COLUMNS

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
    # _prepare made image_path str; pandas types group keys as any scalar
    pred_groups = {cast(str, k): g for k, g in preds.groupby("image_path", sort=False)}
    truth_groups = {cast(str, k): g for k, g in truth.groupby("image_path", sort=False)}
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
