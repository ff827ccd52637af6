"""Curves: the precision-recall curve of a threshold sweep, as PNG. Torch-free.

Drawn with matplotlib's Agg canvas (no display needed) and written
atomically (to a temporary file in the same folder, then renamed), so a
reader never sees half a file. Pictures of boxes over images are
:mod:`deepforest_lite.visualize`.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from .boxes import check_columns
from .checks import check_range
from .errors import InvalidInputError
from .evaluate import best_threshold, format_threshold
from .files import atomic_write

__all__ = ["plot_precision_recall"]


def plot_precision_recall(
    sweep: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    size_px: int = 600,
    threshold: float | None = None,
) -> str:
    """Write a precision-recall curve PNG from a :func:`~deepforest_lite.evaluate.threshold_sweep` table.

    Recall is on the x axis, precision on the y axis (both 0-1, pooled over
    all boxes); each point is one score threshold, a few of which are written
    beside their points. The chosen threshold is marked with a star and its
    own value written beside it (``score >= 0.30``, with as many digits as the
    threshold has, e.g. ``0.012``), and named in the legend with its F1.

    Args:
        sweep: table with ``score_threshold, precision, recall, f1``.
        path: PNG file to write (its folder is created).
        title: figure title; default "Precision-recall over score thresholds".
        size_px: width and height of the PNG in pixels.
        threshold: the threshold to mark, one of the sweep's; default the
            best-F1 one (:func:`~deepforest_lite.evaluate.best_threshold`).

    Returns:
        ``path`` as a string.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_columns(sweep, ["score_threshold", "precision", "recall", "f1"], what="threshold sweep table")
    size_px = check_range("size_px", size_px, 100, integer=True, kind="whole number of pixels")
    data = sweep.sort_values("score_threshold").reset_index(drop=True)
    thresholds = data["score_threshold"].to_numpy(float)
    precision = data["precision"].to_numpy(float)
    recall = data["recall"].to_numpy(float)
    f1 = data["f1"].to_numpy(float)

    dpi = 100
    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ok = np.isfinite(precision) & np.isfinite(recall)
    ax.plot(recall[ok], precision[ok], "-o", color="#1f77b4", markersize=3, label="score thresholds")
    # Name about six points, skipping thresholds that land on the same point as a lower one.
    idx = np.flatnonzero(ok)
    distinct = [
        i
        for k, i in enumerate(idx)
        if k == 0 or (recall[i], precision[i]) != (recall[idx[k - 1]], precision[idx[k - 1]])
    ]
    step = max(1, len(distinct) // 6)
    for i in distinct[::step]:
        ax.annotate(
            format_threshold(thresholds[i]),
            (recall[i], precision[i]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
            color="#555555",
        )
    chosen = None
    if threshold is not None:
        hits = np.flatnonzero(np.isclose(thresholds, float(threshold), rtol=0, atol=1e-9))
        if not len(hits):
            raise InvalidInputError(
                f"threshold {threshold!r} is not one of the sweep's score thresholds "
                f"({', '.join(format_threshold(t) for t in thresholds[:8])}...); pass one of them."
            )
        chosen = int(hits[0])
    elif np.isfinite(f1).any():
        chosen = int(np.flatnonzero(thresholds == best_threshold(data))[0])  # its rule for ties
    if chosen is not None and ok[chosen]:
        text = format_threshold(thresholds[chosen])
        what = "best F1" if threshold is None else "F1"
        ax.plot(
            [recall[chosen]],
            [precision[chosen]],
            marker="*",
            markersize=14,
            color="#d62728",
            linestyle="none",
            label=f"{what} {f1[chosen]:.3f} at score >= {text}",
        )
        ax.annotate(
            f"score >= {text}",
            (recall[chosen], precision[chosen]),
            textcoords="offset points",
            xytext=(8, -14),
            fontsize=9,
            fontweight="bold",
            color="#d62728",
        )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or "Precision-recall over score thresholds", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
