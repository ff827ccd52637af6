"""Readable, stable evaluation output: fixed mAP names, a threshold sweep that follows the scores,
and a precision-recall picture that names the chosen threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

import deepforest_lite as dfl
from deepforest_lite.boxes import make_boxes
from deepforest_lite.cli import main
from deepforest_lite.evaluate import (
    DEFAULT_SWEEP_THRESHOLDS,
    MAP_METRICS,
    format_threshold,
    sweep_thresholds,
)


def grid_of_boxes(n: int, image: str = "tile.png", scores=None) -> pd.DataFrame:
    """``n`` disjoint 10 px boxes on a 20 px grid (15 per row)."""
    i = np.arange(n)
    x, y = (i % 15) * 20.0, (i // 15) * 20.0
    coords = np.stack([x, y, x + 10, y + 10], axis=1)
    return make_boxes(coords, ["Tree"] * n, scores=scores, image_path=image)


@pytest.mark.parametrize("max_detections", [100, 143, 300])
def test_map_keys_do_not_depend_on_max_detections(max_detections):
    truth = grid_of_boxes(150)
    preds = grid_of_boxes(150, scores=np.linspace(1.0, 0.5, 150))  # every truth found exactly
    with pytest.warns(UserWarning) if max_detections < 150 else _no_warning():
        m = dfl.mean_average_precision(preds, truth, max_detections=max_detections)
    assert set(m) == {*MAP_METRICS, "max_detections", "class_map"}
    assert m["max_detections"] == max_detections
    # COCO's recall at 100 detections: 100 of 150 trees, whatever max_detections is
    assert m["mar_100"] == pytest.approx(100 / 150)
    # counting up to max_detections: min(max_detections, 150) of 150 trees, each at precision 1
    found = min(max_detections, 150) / 150
    assert m["mar_max"] == pytest.approx(found)
    assert m["class_map"]["mar"].iloc[0] == pytest.approx(found)
    assert m["map_50"] == pytest.approx(np.ceil(found * 100 + 1e-9) / 101, abs=1e-6)  # 101-point interpolation


class _no_warning:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error", UserWarning)

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        return False


def test_evaluate_cli_writes_fixed_metric_names(tmp_path):
    truth, preds = grid_of_boxes(143), grid_of_boxes(143, scores=np.linspace(1.0, 0.5, 143))
    dfl.write_annotations(truth, tmp_path / "truth.csv")
    preds.to_csv(tmp_path / "preds.csv", index=False)
    assert main(["evaluate", str(tmp_path / "preds.csv"), str(tmp_path / "truth.csv"), "--output", str(tmp_path / "m.csv")]) == 0
    metrics = pd.read_csv(tmp_path / "m.csv").set_index("metric")["value"]
    assert {*MAP_METRICS, "max_detections"} <= set(metrics.index)
    assert not [k for k in metrics.index if k.startswith("mar_") and k not in MAP_METRICS]  # never mar_143
    assert float(metrics["mar_max"]) == pytest.approx(1.0)
    assert float(metrics["mar_100"]) == pytest.approx(100 / 143)


def test_sweep_refines_where_the_scores_are():
    truth = grid_of_boxes(40)
    scores = np.linspace(0.002, 0.04, 40)  # a weak model: every score below 0.05
    preds = grid_of_boxes(40, scores=scores)
    preds.loc[preds.index % 2 == 1, ["xmin", "xmax"]] += 5  # every other box a miss (IoU 1/3)
    sweep = dfl.threshold_sweep(preds, truth)
    below = sweep[sweep["score_threshold"] < 0.05]
    assert len(below) >= 15  # the coarse grid alone had one point (0.00) there
    assert below["n_predictions"].nunique() >= 15
    assert set(DEFAULT_SWEEP_THRESHOLDS) <= set(sweep["score_threshold"])
    # each added threshold is an actual score floored to 3 decimals, so it keeps that score
    added = sorted(set(sweep["score_threshold"]) - set(DEFAULT_SWEEP_THRESHOLDS))
    for t in added:
        assert any(0 <= s - t < 0.001 for s in scores), t
    assert dfl.best_threshold(sweep) > 0  # not collapsed to the one point 0.00


def test_sweep_thresholds_rule():
    assert sweep_thresholds([]) == list(DEFAULT_SWEEP_THRESHOLDS)
    assert sweep_thresholds([0.3217, 0.9]) == sorted({*DEFAULT_SWEEP_THRESHOLDS, 0.321, 0.9})
    assert format_threshold(0.3) == "0.30" and format_threshold(0.012) == "0.012"


def test_precision_recall_plot_names_the_chosen_threshold(tmp_path, monkeypatch):
    written: list[tuple[str, tuple[float, float]]] = []
    original = Axes.annotate

    def spy(self, text, xy, *args, **kwargs):
        written.append((text, tuple(xy)))
        return original(self, text, xy, *args, **kwargs)

    monkeypatch.setattr(Axes, "annotate", spy)
    truth = grid_of_boxes(30)
    preds = grid_of_boxes(30, scores=np.linspace(0.011, 0.041, 30))
    preds.loc[preds["score"] < 0.0235, ["xmin", "xmax"]] += 6  # the lowest-scoring boxes are misses
    sweep = dfl.threshold_sweep(preds, truth)
    best = dfl.best_threshold(sweep)
    assert 0.022 <= best <= 0.024 and format_threshold(best) == f"{best:.3f}"  # it needs its third digit
    dfl.plot_precision_recall(sweep, tmp_path / "pr.png")
    row = sweep[sweep["score_threshold"] == best].iloc[0]
    assert (f"score >= {format_threshold(best)}", (row["recall"], row["precision"])) in written
    # another chosen threshold, marked with its own value
    written.clear()
    dfl.plot_precision_recall(sweep, tmp_path / "pr2.png", threshold=0.0)
    first = sweep.iloc[0]
    assert ("score >= 0.00", (first["recall"], first["precision"])) in written
    with pytest.raises(dfl.InvalidInputError, match="not one of the sweep's"):
        dfl.plot_precision_recall(sweep, tmp_path / "pr3.png", threshold=0.031234)
