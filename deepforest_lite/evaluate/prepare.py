"""Evaluation inputs: the shared constants and the checks and clean-up of both box tables. Torch-free."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..boxes import (
    BOX_COLUMNS,
    check_columns,
)
from ..checks import check_range
from ..errors import EvaluationWarning, InvalidInputError

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


# --------------------------------------------------------------------------- preparation


def _check_iou_threshold(value: float) -> float:
    return check_range("iou_threshold", value, 0, 1, hint="DeepForest uses 0.4")


def _check_thresholds(thresholds: Sequence[float]) -> list[float]:
    values = [] if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Iterable) else list(thresholds)
    if not values:
        raise InvalidInputError(
            f"thresholds must be a non-empty list of numbers in [0, 1], got {thresholds!r}; e.g. [0.1, 0.2, 0.3]."
        )
    return sorted({check_range(f"thresholds[{i}]", t, 0, 1, hint="e.g. [0.1, 0.2, 0.3]") for i, t in enumerate(values)})


def _prepare(table: pd.DataFrame, what: str, keep_score: bool) -> tuple[pd.DataFrame, list[str]]:
    """Validated copy of a box table without marker rows, and the images that only had markers."""
    if isinstance(table, pd.DataFrame) and "geometry" in table.columns:  # DeepForest's geometry-only tables
        from ..annotations import pixel_boxes_from_geometry

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
            EvaluationWarning,
            stacklevel=3,
        )
    out["label"] = out["label"].astype(object).where(~no_label, MISSING_LABEL).astype(str)
    if keep_score and "score" in out.columns:
        out["score"] = pd.to_numeric(out["score"], errors="coerce").astype("float64")
    marker_images = [m for m in marker_images if m not in set(out["image_path"])]
    return out, marker_images


def _prepare_pair(
    predictions: pd.DataFrame, ground_truth: pd.DataFrame, scored_for: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """:func:`_prepare` of both tables: ``(predictions, ground truth, images with only markers)``.

    ``scored_for``: the public function's name when it needs a ``score`` column in the
    predictions; its absence is then an :class:`InvalidInputError` that names the function.
    """
    preds, _ = _prepare(predictions, "predictions", keep_score=True)
    truth, marker_images = _prepare(ground_truth, "ground truth", keep_score=False)
    if scored_for is not None and "score" not in preds.columns:
        raise InvalidInputError(
            f"{scored_for} needs a 'score' column in the predictions, which have only "
            f"{list(predictions.columns)}; pass the table predict_image/predict_tile returns."
        )
    return preds, truth, marker_images


def _and_more(n: int) -> str:
    return f", and {n - 1} more" if n > 1 else ""


def _warn_if_disjoint(preds: pd.DataFrame, truth: pd.DataFrame) -> None:
    if len(preds) and len(truth) and not set(preds["image_path"]) & set(truth["image_path"]):
        warnings.warn(
            "No image_path of the predictions appears in the ground truth "
            f"(e.g. {preds['image_path'].iloc[0]!r} vs {truth['image_path'].iloc[0]!r}), so every "
            "prediction is a false positive; make the image_path values agree (e.g. both file names).",
            EvaluationWarning,
            stacklevel=3,
        )


def _quietly(func: Any) -> Any:
    """Call ``func()`` with pycocotools' progress prints sent nowhere."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return func()
