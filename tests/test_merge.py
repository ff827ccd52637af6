"""Merging window predictions: shifting into raster pixels and NMS across overlaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from deepforest_lite import merge
from deepforest_lite.boxes import BOX_COLUMNS, PREDICTION_COLUMNS, empty_boxes, make_boxes
from deepforest_lite.errors import InvalidInputError
from deepforest_lite.merge import OFFSET_COLUMNS, merge_windows, nms_merge, shift_windows
from deepforest_lite.windows import Window, window_grid


def table(coords, labels=None, scores=None, image_path="r.tif") -> pd.DataFrame:
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 4)
    labels = labels or ["Tree"] * len(coords)
    scores = np.linspace(0.9, 0.5, len(coords)) if scores is None else scores
    return make_boxes(coords, labels, scores=np.asarray(scores, dtype=np.float64), image_path=image_path)


def as_set(t: pd.DataFrame) -> set[tuple[float, ...]]:
    return {tuple(row) for row in t[BOX_COLUMNS].to_numpy().tolist()}


def test_shift_moves_boxes_by_each_window_offset() -> None:
    a = table([[1, 2, 11, 12]])
    b = table([[0, 0, 5, 5], [10.5, 20.25, 30, 40]])
    out = shift_windows([a, b], [Window(100, 50, 400, 400), (380, 760)])
    assert out[BOX_COLUMNS].to_numpy().tolist() == [
        [101, 52, 111, 62], [380, 760, 385, 765], [390.5, 780.25, 410, 800]
    ]
    assert out["score"].tolist() == [0.9, 0.9, 0.5]
    # inputs are not modified
    assert a.loc[0, "xmin"] == 1


def test_concatenated_table_with_offset_columns_gives_the_same_result() -> None:
    a = table([[1, 2, 11, 12]])
    b = table([[0, 0, 5, 5], [10.5, 20.25, 30, 40]])
    windows = [Window(100, 50, 400, 400), Window(380, 760, 400, 400)]
    listed = shift_windows([a, b], windows)
    concatenated = pd.concat(
        [a.assign(window_col_off=100, window_row_off=50), b.assign(window_col_off=380, window_row_off=760)],
        ignore_index=True,
    )
    together = shift_windows(concatenated)
    assert OFFSET_COLUMNS[0] not in together.columns
    pd.testing.assert_frame_equal(together, listed)
    pd.testing.assert_frame_equal(merge_windows(concatenated), merge_windows([a, b], windows))


def test_duplicate_from_two_windows_is_kept_once_with_the_higher_score() -> None:
    # one object at raster (390, 10, 410, 30) seen by windows at col 0 and col 380
    left = table([[390, 10, 410, 30]], scores=[0.6])
    right = table([[10, 10, 30, 30], [200, 200, 220, 220]], scores=[0.8, 0.7])
    out = merge_windows([left, right], [Window(0, 0, 400, 400), Window(380, 0, 400, 400)], iou_threshold=0.15)
    assert list(out.columns) == PREDICTION_COLUMNS
    assert out[BOX_COLUMNS].to_numpy().tolist() == [[390, 10, 410, 30], [580, 200, 600, 220]]
    assert out["score"].tolist() == [0.8, 0.7]
    assert out.index.tolist() == [0, 1]


def test_iou_threshold_is_strict_and_respected() -> None:
    # IoU of (0,0,10,10) and (5,0,15,10) is 50 / 150 = 1/3
    t = table([[0, 0, 10, 10], [5, 0, 15, 10]], scores=[0.9, 0.8])
    assert len(nms_merge(t, iou_threshold=0.3)) == 1
    assert len(nms_merge(t, iou_threshold=0.34)) == 2
    assert len(nms_merge(t, iou_threshold=0.5)) == 2
    # identical boxes have IoU 1, which is never > 1
    same = table([[0, 0, 10, 10], [0, 0, 10, 10]])
    assert len(nms_merge(same, iou_threshold=1.0)) == 2
    assert len(nms_merge(same, iou_threshold=0.99)) == 1


def test_class_agnostic_by_default_and_class_aware_on_request() -> None:
    t = table([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]], labels=["Tree", "Bird", "Bird"], scores=[0.7, 0.9, 0.8])
    agnostic = nms_merge(t, iou_threshold=0.15)
    assert agnostic["label"].tolist() == ["Bird", "Bird"]
    assert agnostic["score"].tolist() == [0.9, 0.8]
    aware = nms_merge(t, iou_threshold=0.15, class_aware=True)
    assert aware["label"].tolist() == ["Bird", "Bird", "Tree"]
    assert aware["score"].tolist() == [0.9, 0.8, 0.7]


def test_equal_scores_keep_the_larger_box_whatever_the_input_order() -> None:
    full, cut = [100, 100, 130, 130], [100, 100, 120, 130]  # IoU 2/3
    for order in ([full, cut], [cut, full]):
        out = nms_merge(table(order, scores=[0.5, 0.5]), iou_threshold=0.15)
        assert out[BOX_COLUMNS].to_numpy().tolist() == [full]


def test_output_sorted_by_score_with_extra_columns_after_the_contract() -> None:
    t = table([[0, 0, 5, 5], [10, 10, 15, 15], [20, 20, 25, 25]], scores=[0.2, 0.9, 0.5])
    t["window_id"] = [7, 8, 9]
    out = nms_merge(t)
    assert out["score"].tolist() == [0.9, 0.5, 0.2]
    assert out["window_id"].tolist() == [8, 9, 7]
    assert list(out.columns) == [*PREDICTION_COLUMNS, "window_id"]
    assert out["image_path"].tolist() == ["r.tif"] * 3


def test_missing_image_path_is_filled() -> None:
    t = table([[0, 0, 5, 5]]).drop(columns="image_path")
    out = nms_merge(t)
    assert list(out.columns) == PREDICTION_COLUMNS and out["image_path"].isna().all()


def test_nothing_found_is_an_empty_prediction_table() -> None:
    expected = empty_boxes()
    pd.testing.assert_frame_equal(merge_windows([], []), expected)
    empties = [empty_boxes(), empty_boxes()]
    pd.testing.assert_frame_equal(merge_windows(empties, [Window(0, 0, 4, 4), Window(4, 0, 4, 4)]), expected)
    pd.testing.assert_frame_equal(nms_merge(empty_boxes()), expected)


def test_tiling_a_raster_returns_each_planted_object_exactly_once() -> None:
    """A stub model that sees every object wholly inside a window, in window pixels."""
    rng = np.random.default_rng(3)
    height, width, patch, overlap = 700, 1000, 200, 0.1  # 20 px overlaps
    objects = []
    while len(objects) < 150:
        w, h = rng.integers(4, 21, size=2)  # at most the overlap, so each fits in some window
        x, y = rng.integers(0, width - w), rng.integers(0, height - h)
        if all(x + w <= a or a + c <= x or y + h <= b or b + d <= y for a, b, c, d in objects):
            objects.append((x, y, w, h))
    truth = np.array([[x, y, x + w, y + h] for x, y, w, h in objects], dtype=np.float64)
    labels = ["Tree" if i % 3 else "Bird" for i in range(len(truth))]
    windows = window_grid(height, width, patch_size=patch, patch_overlap=overlap)
    tables = []
    for win in windows:
        x0, y0, x1, y1 = win.bounds
        inside = (truth[:, 0] >= x0) & (truth[:, 2] <= x1) & (truth[:, 1] >= y0) & (truth[:, 3] <= y1)
        local = truth[inside] - [x0, y0, x0, y0]
        scores = rng.uniform(0.3, 1.0, inside.sum())
        tables.append(make_boxes(local, [labels[i] for i in np.flatnonzero(inside)], scores=scores))
    total = sum(len(t) for t in tables)
    assert total > len(truth) + 20  # there really are duplicates to remove
    for class_aware in (False, True):
        out = merge_windows(tables, windows, iou_threshold=0.15, class_aware=class_aware)
        assert len(out) == len(truth)
        assert as_set(out) == {tuple(b) for b in truth.tolist()}
        by_box = dict(zip(map(tuple, truth.tolist()), labels))
        assert [by_box[tuple(b)] for b in out[BOX_COLUMNS].to_numpy().tolist()] == out["label"].tolist()
        assert out["score"].is_monotonic_decreasing


def random_predictions(n: int, seed: int, size: float = 1500.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * size
    wh = 5 + rng.random((n, 2)) * 40
    scores = rng.integers(1, 60, n) / 60.0  # many ties
    labels = rng.choice(["Tree", "Bird", "Dead"], n).tolist()
    return make_boxes(np.hstack([xy, xy + wh]), labels, scores=scores, image_path="big.tif")


def reference_nms(t: pd.DataFrame, iou: float, class_aware: bool) -> pd.DataFrame:
    """One torchvision call over all boxes, ranked score desc, area desc, input order."""
    coords = t[BOX_COLUMNS].to_numpy()
    areas = (coords[:, 2] - coords[:, 0]) * (coords[:, 3] - coords[:, 1])
    order = np.lexsort((np.arange(len(t)), -areas, -t["score"].to_numpy()))
    ranked = t.iloc[order].reset_index(drop=True)
    pseudo = torch.arange(len(t), 0, -1, dtype=torch.float64)
    boxes = torch.from_numpy(ranked[BOX_COLUMNS].to_numpy(copy=True))
    if class_aware:
        codes = torch.from_numpy(pd.factorize(ranked["label"])[0])
        keep = torchvision.ops.batched_nms(boxes, pseudo, codes, iou)
    else:
        keep = torchvision.ops.nms(boxes, pseudo, iou)
    return ranked.iloc[np.sort(keep.numpy())].reset_index(drop=True)


@pytest.mark.parametrize("class_aware", [False, True])
@pytest.mark.parametrize("iou", [0.0, 0.15, 0.5])
def test_grouped_nms_equals_one_global_nms(monkeypatch, class_aware: bool, iou: float) -> None:
    t = random_predictions(3000, seed=int(iou * 100) + class_aware)
    expected = reference_nms(t, iou, class_aware)
    monkeypatch.setattr(merge, "_DIRECT_NMS_MAX", 0)  # force the grouped path
    grouped = nms_merge(t, iou_threshold=iou, class_aware=class_aware)
    monkeypatch.setattr(merge, "_DIRECT_NMS_MAX", 10**9)  # force one call
    direct = nms_merge(t, iou_threshold=iou, class_aware=class_aware)
    pd.testing.assert_frame_equal(grouped, expected)
    pd.testing.assert_frame_equal(direct, expected)
    assert 0 < len(expected) < len(t)


@pytest.mark.parametrize("iou", [-0.1, 1.5, "0.15", None, True])
def test_bad_iou_threshold_is_rejected(iou: object) -> None:
    with pytest.raises(InvalidInputError, match=r"iou_threshold must be a number in \[0, 1\]"):
        nms_merge(table([[0, 0, 1, 1]]), iou_threshold=iou)  # type: ignore[arg-type]


def test_bad_inputs_are_rejected() -> None:
    t = table([[0, 0, 1, 1]])
    with pytest.raises(InvalidInputError, match="got 1 tables and 2 windows"):
        merge_windows([t], [Window(0, 0, 1, 1), Window(1, 0, 1, 1)])
    with pytest.raises(InvalidInputError, match="got 1 tables and no windows"):
        merge_windows([t])
    with pytest.raises(InvalidInputError, match=r"lacks the column\(s\) \['window_col_off', 'window_row_off'\]"):
        merge_windows(t)
    with pytest.raises(InvalidInputError, match="one table and a list of windows"):
        merge_windows(t, [Window(0, 0, 1, 1)])
    with pytest.raises(InvalidInputError, match=r"lacks the column\(s\) \['score'\]"):
        nms_merge(t.drop(columns="score"))
    with pytest.raises(InvalidInputError, match=r"\(col_off, row_off\) pair"):
        merge_windows([t], ["left"])
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        nms_merge(table([[0, 0, np.nan, 1]]))
