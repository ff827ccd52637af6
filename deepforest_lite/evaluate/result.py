"""``EvaluationResult``: what :func:`~deepforest_lite.evaluate.evaluate_boxes` returns, field by field."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import DeepForestLiteError

__all__ = ["EvaluationResult"]


class _UnknownResultKey(DeepForestLiteError, KeyError):
    """``result[key]`` with a key that :meth:`EvaluationResult.to_dict` does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Predicted boxes scored against ground truth (see :func:`~deepforest_lite.evaluate.evaluate_boxes`).

    Read the figures as attributes (``result.box_precision``). ``result["box_precision"]``
    and :meth:`to_dict` give DeepForest's dict with the same names, for code written
    against ``deepforest.evaluate.evaluate_boxes``. Ratios are fractions in
    [0, 1] (NaN where their denominator is 0); box coordinates are pixels with
    the origin at the image's top-left corner, x = column. The tables are the
    result's own (frozen means the fields cannot be reassigned, not that the
    DataFrames cannot be edited: copy one before changing it).

    Attributes:
        box_precision: DeepForest's box precision, the mean over images of
            (matches / predictions in the image). Only images that have ground
            truth *and* at least one prediction take part: predictions on
            images without ground truth are ignored, and an image with ground
            truth but no predictions adds nothing (its precision is
            undefined). NaN when no image qualifies.
        box_recall: DeepForest's box recall, the mean over images that have
            ground truth of (matches / ground-truth boxes in the image); an
            image with ground truth and no predictions counts as 0, images
            without ground truth are ignored.
        class_recall: DeepForest's per-label table ``label, recall, precision,
            size``, computed *on matched pairs only*: ``recall`` is the share
            of matched ground-truth boxes of that label whose prediction has
            the same label, ``precision`` the share of matched predictions of
            that label whose ground truth has the same label, ``size`` the
            number of matched ground-truth boxes of that label (0 and 0.0 where
            a label has none). Unmatched boxes do not count here; see
            :attr:`class_metrics` for figures that count them.
        results: one row per ground-truth box (DeepForest's table):
            ``image_path``; ``truth_id`` (0-based position of the box among
            that image's ground-truth rows, in input order); ``prediction_id``
            (position of the assigned prediction among that image's prediction
            rows, ``<NA>`` when none with a positive overlap was assigned);
            ``IoU`` (0.0 when unassigned); ``score`` of the assigned prediction
            (NaN when none or when predictions have no score); ``match`` (bool,
            IoU > :attr:`iou_threshold`); ``true_label``; ``predicted_label``
            (NaN when unassigned); and the ground-truth box ``xmin, ymin, xmax, ymax``.
        precision: pooled (micro) precision over all boxes of all images:
            matches / all predictions, including those on images without
            ground truth (NaN when there are no predictions).
        recall: pooled recall: matches / all ground-truth boxes (NaN when there
            is no ground truth).
        f1: 2 * matches / (predictions + ground-truth boxes), the harmonic mean
            of :attr:`precision` and :attr:`recall` (NaN when both counts are 0).
        true_positive: the number of matches.
        n_predictions: predicted boxes scored (DeepForest's "no objects"
            marker rows left out).
        n_truth: ground-truth boxes (marker rows left out).
        iou_threshold: the IoU a pair had to exceed to match, in [0, 1].
        per_image: ``image_path, n_truth, n_predictions, true_positive,
            precision, recall`` for every image found in either table
            (marker-only ground-truth images have ``n_truth`` 0); ``precision``
            is NaN without predictions, ``recall`` NaN without ground truth.
        class_metrics: ``label, n_truth, n_predictions, true_positive,
            precision, recall, f1`` per label found in either table, where a
            true positive is a match whose two labels agree: precision =
            true_positive / n_predictions, recall = true_positive / n_truth
            (NaN when the count is 0).
        confusion: matched pairs counted (int) by true label (rows, index name
            ``true_label``) and predicted label (columns, name
            ``predicted_label``), over every label found in either table.
        predictions: a copy of the predictions (marker rows dropped) with
            ``prediction_id``, ``truth_id`` (``<NA>`` when unassigned), ``IoU``
            and ``match`` added.
    """

    box_precision: float
    box_recall: float
    class_recall: pd.DataFrame
    results: pd.DataFrame
    precision: float
    recall: float
    f1: float
    true_positive: int
    n_predictions: int
    n_truth: int
    iou_threshold: float
    per_image: pd.DataFrame
    class_metrics: pd.DataFrame
    confusion: pd.DataFrame
    predictions: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """DeepForest's dict: every field under its own name, in field order (the tables not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def keys(self) -> list[str]:
        """The keys of :meth:`to_dict` (so ``dict(result)`` works as on the old dict)."""
        return [f.name for f in dataclasses.fields(self)]

    def __getitem__(self, key: str) -> Any:
        """``result["box_precision"]``: DeepForest's item access; the attribute of that name."""
        if not isinstance(key, str) or key not in self.keys():
            raise _UnknownResultKey(
                f"An evaluation result has no key {key!r}; use one of {self.keys()} "
                "(or the attribute of that name, e.g. result.box_precision)."
            )
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __repr__(self) -> str:
        figures = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in ("box_precision", "box_recall", "precision", "recall", "f1",
                         "true_positive", "n_predictions", "n_truth", "iou_threshold")
        )
        return f"EvaluationResult({figures}, results=<{len(self.results)} rows>, per_image=<{len(self.per_image)} rows>)"
