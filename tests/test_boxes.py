"""Box geometry in boxes.py: exact values on hand-computed boxes."""

from __future__ import annotations

import numpy as np
import pytest

from deepforest_lite.boxes import (
    format_box,
    has_area,
    overlap_groups,
    pairwise_intersection,
    pairwise_iou,
    validate_boxes,
)
from deepforest_lite.errors import AnnotationError, DeepForestLiteError, InvalidInputError


def test_pairwise_iou_exact_values_and_shape():
    a = np.array([[0, 0, 10, 10], [0, 0, 4, 4]], dtype=float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]], dtype=float)
    inter = pairwise_intersection(a, b)
    iou = pairwise_iou(a, b)
    assert inter.shape == iou.shape == (2, 3)
    np.testing.assert_array_equal(inter, [[50, 0, 100], [0, 0, 16]])
    # 50 / (100 + 100 - 50) = 1/3; 16 / (16 + 100 - 16) = 0.16
    np.testing.assert_array_equal(iou, [[50 / 150, 0, 1], [0, 0, 0.16]])


def test_pairwise_iou_matches_torchvision():
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, size=(40, 2))
    a = np.hstack([xy, xy + rng.uniform(1, 20, size=(40, 2))])
    b = a[::-1] + 3.0
    expected = torchvision.ops.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(pairwise_iou(a, b), expected, rtol=1e-12, atol=0)


def test_touching_and_degenerate_boxes_have_zero_iou_not_nan():
    touching = pairwise_iou([[0, 0, 10, 10]], [[10, 0, 20, 10]])
    degenerate = pairwise_iou([[5, 5, 5, 5]], [[5, 5, 5, 5]])
    assert touching.tolist() == [[0.0]] and degenerate.tolist() == [[0.0]]


def test_empty_inputs_give_empty_matrices():
    assert pairwise_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert pairwise_intersection([[0, 0, 1, 1]], []).shape == (1, 0)


def test_wrong_shape_is_a_clear_error():
    with pytest.raises(InvalidInputError, match=r"boxes1 must have shape \(N, 4\).*got shape \(2, 3\)"):
        pairwise_iou(np.zeros((2, 3)), np.zeros((1, 4)))


def test_overlap_groups_one_set_by_iou_and_label():
    boxes = np.array(
        [[0, 0, 10, 10], [1, 0, 11, 10], [2, 0, 12, 10], [50, 50, 60, 60], [10, 0, 20, 10], [51, 50, 61, 60]],
        dtype=float,
    )
    # 0-1 and 1-2 overlap heavily (chain), 4 only touches 0 and overlaps 2 a little, 3-5 overlap
    assert [g.tolist() for g in overlap_groups(boxes)] == [[0, 1, 2, 4], [3, 5]]
    # IoU(2, 4) = 20 / 180 = 0.111..: a threshold of 0.2 cuts it off
    assert [g.tolist() for g in overlap_groups(boxes, iou_above=0.2)] == [[0, 1, 2], [3, 5], [4]]
    labels = np.array(["a", "b", "a", "a", "a", "a"], dtype=object)
    assert [g.tolist() for g in overlap_groups(boxes, labels=labels)] == [[0, 2, 4], [1], [3, 5]]


def test_overlap_groups_bipartite_leaves_out_unlinked_boxes():
    truth = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [5, 5, 15, 15]], dtype=float)
    preds = np.array([[200, 200, 210, 210], [12, 12, 20, 20], [1, 1, 9, 9]], dtype=float)
    groups = overlap_groups(truth, preds)
    # truth 0 and truth 2 overlap each other but are only linked through predictions: pred 2 overlaps both
    assert [(t.tolist(), p.tolist()) for t, p in groups] == [([0, 2], [1, 2])]


def test_validate_boxes_names_the_first_bad_box_and_the_count():
    ok = validate_boxes([[0, 0, 1, 1], [2, 2, 3, 4]])
    assert ok.dtype == np.float64 and ok.shape == (2, 4)
    with pytest.raises(AnnotationError) as info:
        validate_boxes([[0, 0, 1, 1], [5, 0, 5, 2], [9, 0, 3, 2]], where=["a", "row 2 of x.csv", "c"], error=AnnotationError)
    assert str(info.value) == (
        "Box (5, 0, 5, 2) in row 2 of x.csv (and 1 more) has xmax 5 <= xmin 5; boxes need xmax > xmin and "
        "ymax > ymin (xmin, ymin, xmax, ymax in pixels, origin top-left), so fix or remove it."
    )
    assert isinstance(info.value, DeepForestLiteError) and isinstance(info.value, ValueError)
    with pytest.raises(InvalidInputError, match=r"Box \(0, 0, inf, 1\) in row 0 has a coordinate that is not a finite"):
        validate_boxes([[0, 0, np.inf, 1]])
    with pytest.raises(InvalidInputError, match=r"has ymax 1 <= ymin 3"):
        validate_boxes([[0, 3, 1, 1]])


def test_format_box_is_short():
    assert format_box([10.0, 5, 8.5, 20]) == "(10, 5, 8.5, 20)"


def test_package_warnings_share_one_class_and_are_user_warnings():
    import deepforest_lite as dfl

    for name in ("BoxesClippedWarning", "SplitWarning", "EvaluationWarning", "TrainingWarning", "GSDWarning"):
        cls = getattr(dfl, name)
        assert issubclass(cls, dfl.DeepForestLiteWarning) and issubclass(cls, UserWarning), name
    from deepforest_lite.gsd import GSDWarning

    assert GSDWarning is dfl.GSDWarning


def test_clipped_annotation_boxes_warn_with_their_class(tmp_path):
    import deepforest_lite as dfl

    csv = tmp_path / "a.csv"
    csv.write_text("image_path,xmin,ymin,xmax,ymax,label\nimg.png,-5,0,10,10,Tree\n")
    with pytest.warns(dfl.BoxesClippedWarning, match=r"Clipped 1 box\(es\)"):
        table = dfl.read_annotations(csv)
    assert table[["xmin", "ymin", "xmax", "ymax"]].to_numpy().tolist() == [[0.0, 0.0, 10.0, 10.0]]


def test_disjoint_image_paths_warn_as_evaluation_warning():
    import pandas as pd

    import deepforest_lite as dfl

    truth = pd.DataFrame({"image_path": ["a.png"], "xmin": [0.0], "ymin": [0.0], "xmax": [5.0], "ymax": [5.0], "label": ["Tree"]})
    preds = truth.assign(image_path="b.png", score=0.9)
    with pytest.warns(dfl.EvaluationWarning, match="No image_path of the predictions appears in the ground truth"):
        result = dfl.evaluate_boxes(preds, truth)
    assert (result["precision"], result["true_positive"], result["n_predictions"]) == (0.0, 0, 1)


def test_has_area_is_false_for_lines_points_and_inverted_boxes():
    boxes = np.array([[0, 0, 1, 1], [5, 2, 5, 9], [1, 3, 4, 3], [2, 2, 2, 2], [6, 1, 4, 3], [0.5, 0.5, 0.6, 0.6]])
    assert has_area(boxes).tolist() == [True, False, False, False, False, True]
