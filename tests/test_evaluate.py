"""evaluate.py: hand-made cases whose answers are worked out in the comments."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import deepforest_lite as dfl
from deepforest_lite.errors import InvalidInputError
from deepforest_lite.evaluate import (
    DEFAULT_SWEEP_THRESHOLDS,
    MISSING_LABEL,
    _assign,
    best_threshold,
    evaluate_boxes,
    mean_average_precision,
    threshold_sweep,
)


def table(rows, image="a.png", scores=None):
    """Box table from ``[(xmin, ymin, xmax, ymax, label), ...]``; with scores a prediction table."""
    df = pd.DataFrame(rows, columns=["xmin", "ymin", "xmax", "ymax", "label"], dtype=object)
    df[["xmin", "ymin", "xmax", "ymax"]] = df[["xmin", "ymin", "xmax", "ymax"]].astype(float)
    df["label"] = df["label"].astype(str)
    df["image_path"] = image
    if scores is not None:
        df["score"] = np.asarray(scores, dtype=float)
    return df


def cat(*tables):
    return pd.concat(tables, ignore_index=True)


SQUARE = (0, 0, 10, 10, "Tree")  # area 100
OTHER = (20, 20, 30, 30, "Tree")  # no overlap with SQUARE
THIRD = (40, 0, 50, 10, "Tree")


# --------------------------------------------------------------------------- matching


def test_perfect_match():
    truth = table([SQUARE, OTHER])
    preds = table([SQUARE, OTHER], scores=[0.9, 0.8])
    r = evaluate_boxes(preds, truth)
    # 2 matches / 2 predictions, 2 matches / 2 truths
    assert r["box_precision"] == 1.0 and r["box_recall"] == 1.0
    assert (r["precision"], r["recall"], r["f1"]) == (1.0, 1.0, 1.0)
    assert r["results"]["match"].tolist() == [True, True]
    assert r["results"]["IoU"].tolist() == [1.0, 1.0]
    assert r["results"]["prediction_id"].tolist() == [0, 1]
    assert r["results"]["score"].tolist() == [0.9, 0.8]


def test_one_miss():
    truth = table([SQUARE, OTHER, THIRD])
    preds = table([SQUARE, OTHER], scores=[0.9, 0.9])
    r = evaluate_boxes(preds, truth)
    # recall 2/3, precision 2/2
    assert r["box_recall"] == pytest.approx(2 / 3)
    assert r["box_precision"] == 1.0
    missed = r["results"].iloc[2]
    assert not missed["match"] and pd.isna(missed["prediction_id"]) and missed["IoU"] == 0.0
    assert pd.isna(missed["predicted_label"])
    # F1 = 2*2 / (2 + 3)
    assert r["f1"] == pytest.approx(4 / 5)


def test_one_false_positive():
    truth = table([SQUARE, OTHER])
    preds = table([SQUARE, OTHER, THIRD], scores=[0.9, 0.9, 0.9])
    r = evaluate_boxes(preds, truth)
    # precision 2/3, recall 2/2
    assert r["box_precision"] == pytest.approx(2 / 3)
    assert r["box_recall"] == 1.0
    assert len(r["results"]) == 2  # one row per ground-truth box, as DeepForest
    fp = r["predictions"].iloc[2]
    assert not fp["match"] and pd.isna(fp["truth_id"])
    assert r["predictions"]["match"].tolist() == [True, True, False]


@pytest.mark.parametrize(
    "height, iou_threshold, expected",
    [
        (4.1, 0.4, True),  # IoU = 41/100 = 0.41 > 0.4
        (3.9, 0.4, False),  # IoU = 39/100 = 0.39
        (4.0, 0.4, False),  # IoU = 0.40 exactly: not strictly greater
        (3.9, 0.38, True),  # 0.39 > 0.38
    ],
)
def test_iou_threshold_is_strict(height, iou_threshold, expected):
    truth = table([SQUARE])
    preds = table([(0, 0, 10, height, "Tree")], scores=[0.5])  # inside the truth box: IoU = 10*h / 100
    r = evaluate_boxes(preds, truth, iou_threshold=iou_threshold)
    assert r["results"]["IoU"].iloc[0] == pytest.approx(height / 10)
    assert bool(r["results"]["match"].iloc[0]) is expected
    assert r["true_positive"] == int(expected)
    # the pair is assigned either way (positive overlap), only the match flag changes
    assert r["results"]["prediction_id"].iloc[0] == 0


def test_two_predictions_compete_for_one_truth():
    truth = table([SQUARE])
    # intersections with the truth: 60 and 100 -> the assignment takes the second
    preds = table([(0, 0, 10, 6, "Tree"), SQUARE], scores=[0.9, 0.8])
    r = evaluate_boxes(preds, truth)
    assert r["results"]["prediction_id"].iloc[0] == 1
    # one of two predictions matches: precision 1/2, recall 1/1
    assert r["box_precision"] == 0.5 and r["box_recall"] == 1.0
    assert r["predictions"]["match"].tolist() == [False, True]


def test_assignment_maximises_intersection_area_not_iou():
    truth = table([SQUARE])
    # big box: intersection 100, IoU 100/400 = 0.25; tight box: intersection 81, IoU 81/100 = 0.81.
    # DeepForest's assignment maximises intersection area, so the big box is paired and nothing matches.
    preds = table([(0, 0, 20, 20, "Tree"), (1, 1, 10, 10, "Tree")], scores=[0.5, 0.9])
    r = evaluate_boxes(preds, truth)
    row = r["results"].iloc[0]
    assert row["prediction_id"] == 0
    assert row["IoU"] == pytest.approx(0.25)
    assert not row["match"]
    assert r["box_recall"] == 0.0 and r["box_precision"] == 0.0


def test_optimal_not_greedy_assignment():
    # T1 = (0,0,10,10), T2 = (6,0,16,10); Pa = (3,0,13,10) overlaps T1 by 70 and T2 by 70,
    # Pb = (0,0,10,10) overlaps T1 by 100 and T2 by 40.
    # T1-Pb + T2-Pa = 170 beats T1-Pa + T2-Pb = 110, so both truths get a prediction:
    # IoU(T1, Pb) = 1, IoU(T2, Pa) = 70 / (100 + 100 - 70) = 7/13 > 0.4.
    truth = table([SQUARE, (6, 0, 16, 10, "Tree")])
    preds = table([(3, 0, 13, 10, "Tree"), SQUARE], scores=[0.9, 0.9])
    r = evaluate_boxes(preds, truth)
    assert r["results"]["prediction_id"].tolist() == [1, 0]
    assert r["results"]["IoU"].tolist() == pytest.approx([1.0, 7 / 13])
    assert r["box_recall"] == 1.0 and r["box_precision"] == 1.0


def test_multi_class_confusion_and_class_tables():
    # three boxes matched by position; labels (truth -> prediction): A->A, A->B, B->B
    truth = table([(0, 0, 10, 10, "A"), (20, 0, 30, 10, "A"), (40, 0, 50, 10, "B")])
    preds = table([(0, 0, 10, 10, "A"), (20, 0, 30, 10, "B"), (40, 0, 50, 10, "B")], scores=[0.9] * 3)
    r = evaluate_boxes(preds, truth)
    assert r["box_recall"] == 1.0  # matching ignores labels

    conf = r["confusion"]
    assert conf.index.name == "true_label" and conf.columns.name == "predicted_label"
    assert conf.loc["A", "A"] == 1 and conf.loc["A", "B"] == 1
    assert conf.loc["B", "B"] == 1 and conf.loc["B", "A"] == 0

    # DeepForest's class_recall, on matched pairs only:
    # A: 2 matched truths, 1 predicted A -> recall 1/2;
    #    1 matched prediction labelled A, correct -> precision 1
    # B: 1 matched truth, predicted B -> recall 1;
    #    2 matched predictions labelled B, 1 correct -> precision 1/2
    cr = r["class_recall"].set_index("label")
    assert list(r["class_recall"].columns) == ["label", "recall", "precision", "size"]
    assert cr.loc["A", "recall"] == 0.5 and cr.loc["A", "precision"] == 1.0 and cr.loc["A", "size"] == 2
    assert cr.loc["B", "recall"] == 1.0 and cr.loc["B", "precision"] == 0.5 and cr.loc["B", "size"] == 1

    # class_metrics over all boxes: A: 1 correct of 2 truths, 1 prediction -> P 1, R 1/2, F1 2/3
    # B: 1 correct of 1 truth, 2 predictions -> P 1/2, R 1, F1 2/3
    cm = r["class_metrics"].set_index("label")
    assert cm.loc["A", ["n_truth", "n_predictions", "true_positive"]].tolist() == [2, 1, 1]
    assert cm.loc["A", "precision"] == 1.0 and cm.loc["A", "recall"] == 0.5
    assert cm.loc["B", "precision"] == 0.5 and cm.loc["B", "recall"] == 1.0
    assert cm["f1"].tolist() == pytest.approx([2 / 3, 2 / 3])


def test_unmatched_boxes_count_in_class_metrics_not_in_class_recall():
    # truth A, A; prediction A matches the first only
    truth = table([(0, 0, 10, 10, "A"), (20, 0, 30, 10, "A")])
    preds = table([(0, 0, 10, 10, "A")], scores=[0.9])
    r = evaluate_boxes(preds, truth)
    assert r["class_recall"].set_index("label").loc["A", "recall"] == 1.0  # 1 of 1 matched truth
    assert r["class_metrics"].set_index("label").loc["A", "recall"] == 0.5  # 1 of 2 truths


def test_per_image_means_versus_pooled():
    a = cat(table([SQUARE, OTHER], image="a.png"))
    a_pred = table([SQUARE, OTHER], image="a.png", scores=[0.9, 0.9])
    b_marker = table([(0, 0, 0, 0, "Tree")], image="b.png")  # DeepForest's "no objects" row
    b_pred = table([SQUARE, OTHER], image="b.png", scores=[0.9, 0.9])
    c = table([SQUARE, OTHER], image="c.png")
    truth = cat(a, b_marker, c)
    preds = cat(a_pred, b_pred)
    r = evaluate_boxes(preds, truth)

    # per image: a: P 2/2, R 2/2; b (no truth): P 0/2, R undefined; c (no predictions): P undefined, R 0/2
    per = r["per_image"].set_index("image_path")
    assert per.loc["a.png", ["n_truth", "n_predictions", "true_positive"]].tolist() == [2, 2, 2]
    assert per.loc["b.png", ["n_truth", "n_predictions", "true_positive"]].tolist() == [0, 2, 0]
    assert per.loc["c.png", ["n_truth", "n_predictions", "true_positive"]].tolist() == [2, 0, 0]
    assert per.loc["b.png", "precision"] == 0.0 and math.isnan(per.loc["b.png", "recall"])
    assert math.isnan(per.loc["c.png", "precision"]) and per.loc["c.png", "recall"] == 0.0

    # DeepForest's means: recall over images with truth (a, c) = (1 + 0) / 2;
    # precision over images with truth and predictions (a only) = 1. b's false positives are invisible.
    assert r["box_recall"] == 0.5
    assert r["box_precision"] == 1.0
    # pooled: 2 matches, 4 predictions, 4 truths
    assert r["precision"] == 0.5 and r["recall"] == 0.5 and r["f1"] == 0.5
    assert (r["true_positive"], r["n_predictions"], r["n_truth"]) == (2, 4, 4)
    assert len(r["results"]) == 4  # the marker row is not a box


def test_no_predictions_at_all():
    truth = table([SQUARE, OTHER])
    preds = dfl.empty_boxes()
    r = evaluate_boxes(preds, truth)
    # DeepForest: recall 0, precision NaN
    assert r["box_recall"] == 0.0 and math.isnan(r["box_precision"])
    assert r["recall"] == 0.0 and math.isnan(r["precision"]) and r["f1"] == 0.0
    assert len(r["results"]) == 2 and not r["results"]["match"].any()
    assert isinstance(r["class_recall"], pd.DataFrame) and r["class_recall"].empty


def test_no_ground_truth_at_all():
    preds = table([SQUARE], scores=[0.9])
    r = evaluate_boxes(preds, dfl.empty_boxes(scores=False))
    # DeepForest: precision 0, recall undefined (None there, NaN here)
    assert r["box_precision"] == 0.0 and math.isnan(r["box_recall"])
    assert r["precision"] == 0.0 and math.isnan(r["recall"])
    assert r["results"].empty and list(r["results"].columns)[:3] == [
        "image_path",
        "truth_id",
        "prediction_id",
    ]


def test_both_empty_does_not_crash():
    r = evaluate_boxes(dfl.empty_boxes(), dfl.empty_boxes(scores=False))
    assert r["n_truth"] == 0 and r["n_predictions"] == 0
    assert math.isnan(r["precision"]) and math.isnan(r["f1"])
    assert r["per_image"].empty and r["confusion"].empty


def test_images_matched_by_image_path_only():
    truth = table([SQUARE], image="a.png")
    preds = cat(table([SQUARE], image="b.png", scores=[0.9]), table([SQUARE], image="a.png", scores=[0.9]))
    r = evaluate_boxes(preds, truth)
    # the b.png box is a false positive: pooled precision 1/2; per-image precision ignores it
    assert r["precision"] == 0.5 and r["box_precision"] == 1.0


def test_disjoint_image_paths_warn():
    with pytest.warns(UserWarning, match="image_path"):
        r = evaluate_boxes(table([SQUARE], image="/full/a.png", scores=[0.9]), table([SQUARE], image="a.png"))
    assert r["true_positive"] == 0


def test_missing_labels_warn_and_still_match():
    truth = table([SQUARE, OTHER])
    truth.loc[1, "label"] = None
    with pytest.warns(UserWarning, match="no label"):
        r = evaluate_boxes(table([SQUARE, OTHER], scores=[0.9, 0.9]), truth)
    assert r["true_positive"] == 2
    assert set(r["class_metrics"]["label"]) == {"Tree", MISSING_LABEL}


def test_results_columns_and_inputs_untouched():
    truth = table([SQUARE, OTHER])
    preds = table([SQUARE], scores=[0.7])
    before = preds.copy()
    r = evaluate_boxes(preds, truth)
    for col in [
        "truth_id",
        "prediction_id",
        "IoU",
        "score",
        "match",
        "true_label",
        "predicted_label",
        "image_path",
    ]:
        assert col in r["results"].columns
    pd.testing.assert_frame_equal(preds, before)
    assert r["results"]["truth_id"].tolist() == [0, 1]


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda t: t.drop(columns=["label"]), "label"),
        (lambda t: t.assign(xmin="left"), "non-numeric"),
        (lambda t: t.assign(xmax=-5.0), "xmax < xmin"),
        (lambda t: t.assign(ymin=np.nan), "missing coordinate"),
    ],
)
def test_bad_tables_raise_clear_errors(bad, message):
    truth = table([SQUARE])
    with pytest.raises(InvalidInputError, match=message):
        evaluate_boxes(bad(table([SQUARE], scores=[0.9])), truth)


@pytest.mark.parametrize("value", [-0.1, 1.5, "high", None])
def test_bad_iou_threshold(value):
    with pytest.raises(InvalidInputError, match="iou_threshold"):
        evaluate_boxes(table([SQUARE], scores=[0.9]), table([SQUARE]), iou_threshold=value)


def test_not_a_dataframe():
    with pytest.raises(InvalidInputError, match="DataFrame"):
        evaluate_boxes([[0, 0, 1, 1]], table([SQUARE]))


def test_grouped_matching_equals_dense_matching():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 500, (150, 2))
    truth = np.c_[xy, xy + rng.uniform(8, 30, (150, 2))]
    preds = np.r_[truth[:120] + rng.normal(0, 3, (120, 4)), truth[130:] + 40]
    preds[:, 2:] = np.maximum(preds[:, 2:], preds[:, :2] + 1)
    dense = _assign(truth, preds)
    grouped = _assign(truth, preds, dense_limit=1)
    assert sorted(zip(dense[0], dense[1])) == sorted(zip(grouped[0], grouped[1]))
    assert len(dense[0]) >= 120


def test_osbs_ground_truth_against_itself():
    truth = pd.read_csv(dfl.get_data("OSBS_029.csv"))
    r = evaluate_boxes(truth.assign(score=1.0), truth)
    assert r["box_precision"] == 1.0 and r["box_recall"] == 1.0 and r["true_positive"] == len(truth) == 61


# --------------------------------------------------------------------------- threshold sweep


def sweep_case():
    # 4 truths; true positives scored 0.9, 0.8, 0.7, 0.2; two far-away false positives scored 0.6, 0.5
    truth = table([(0, 0, 10, 10, "T"), (20, 0, 30, 10, "T"), (40, 0, 50, 10, "T"), (60, 0, 70, 10, "T")])
    preds = table(
        [
            (0, 0, 10, 10, "T"),
            (20, 0, 30, 10, "T"),
            (40, 0, 50, 10, "T"),
            (60, 0, 70, 10, "T"),
            (200, 200, 210, 210, "T"),
            (300, 300, 310, 310, "T"),
        ],
        scores=[0.9, 0.8, 0.7, 0.2, 0.6, 0.5],
    )
    return preds, truth


def test_threshold_sweep_by_hand():
    preds, truth = sweep_case()
    sweep = threshold_sweep(preds, truth, thresholds=[0.95, 0.1, 0.3, 0.55, 0.65, 0.75, 0.85])
    assert sweep["score_threshold"].tolist() == [0.1, 0.3, 0.55, 0.65, 0.75, 0.85, 0.95]
    # kept / TP: 0.1: 6/4 -> F1 8/10; 0.3: 5/3 -> 6/9; 0.55: 4/3 -> 6/8; 0.65: 3/3 -> 6/7;
    # 0.75: 2/2 -> 4/6; 0.85: 1/1 -> 2/5; 0.95: 0/0 -> 0 (precision undefined)
    assert sweep["n_predictions"].tolist() == [6, 5, 4, 3, 2, 1, 0]
    assert sweep["true_positive"].tolist() == [4, 3, 3, 3, 2, 1, 0]
    assert sweep["f1"].tolist() == pytest.approx([0.8, 6 / 9, 0.75, 6 / 7, 4 / 6, 0.4, 0.0])
    assert sweep["recall"].tolist() == pytest.approx([1, 0.75, 0.75, 0.75, 0.5, 0.25, 0])
    assert math.isnan(sweep["precision"].iloc[-1])
    assert best_threshold(sweep) == 0.65


def test_threshold_sweep_redoes_matching():
    truth = table([SQUARE])
    # the big box wins the assignment (intersection 100 > 81) but fails IoU (0.25);
    # once the score threshold drops it, the tight box (IoU 0.81) matches.
    preds = table([(0, 0, 20, 20, "Tree"), (1, 1, 10, 10, "Tree")], scores=[0.3, 0.9])
    sweep = threshold_sweep(preds, truth, thresholds=[0.0, 0.5])
    assert sweep["recall"].tolist() == [0.0, 1.0]


def test_threshold_sweep_defaults_and_ties():
    preds, truth = sweep_case()
    sweep = threshold_sweep(preds, truth)
    assert sweep["score_threshold"].tolist() == list(DEFAULT_SWEEP_THRESHOLDS)
    assert len(sweep) == 20
    # 0.65 and 0.70 both keep the three top-scoring true positives (F1 6/7, the best);
    # ties go to the highest threshold
    f1 = sweep.set_index("score_threshold")["f1"]
    assert f1[0.65] == f1[0.7] == pytest.approx(6 / 7)
    assert best_threshold(sweep) == 0.7
    assert {"box_precision", "box_recall"} <= set(sweep.columns)


def test_best_threshold_does_not_go_below_the_scores_it_saw():
    # a model that keeps only boxes scoring >= 0.3: thresholds 0.00..0.30 keep the same box and tie
    preds = table([SQUARE, (100, 100, 110, 110, "Tree")], scores=[0.9, 0.32])
    sweep = threshold_sweep(preds, table([SQUARE]))
    f1 = sweep.set_index("score_threshold")["f1"]
    assert f1.iloc[0] == f1[f1.index <= 0.3 + 1e-9].min() == pytest.approx(2 / 3)
    assert (f1[(f1.index > 0.33) & (f1.index < 0.9 + 1e-9)] == 1.0).all()  # dropping the 0.32 box helps
    assert best_threshold(sweep) == pytest.approx(0.9)  # 0.35..0.90 keep the same box: the highest wins
    single = table([SQUARE], scores=[0.32])
    # the default thresholds include the scores themselves: 0.32 keeps the box, the highest that does
    assert best_threshold(threshold_sweep(single, table([SQUARE]))) == pytest.approx(0.32)
    assert best_threshold(threshold_sweep(single, table([SQUARE]), thresholds=DEFAULT_SWEEP_THRESHOLDS)) == 0.3


def test_threshold_sweep_needs_scores():
    with pytest.raises(InvalidInputError, match="score"):
        threshold_sweep(table([SQUARE]), table([SQUARE]))
    with pytest.raises(InvalidInputError, match="thresholds"):
        threshold_sweep(table([SQUARE], scores=[1.0]), table([SQUARE]), thresholds=[2.0])


# --------------------------------------------------------------------------- mAP


def test_map_perfect_is_one():
    truth = cat(table([SQUARE, (20, 20, 60, 60, "Tree")], image="a.png"), table([OTHER], image="b.png"))
    preds = truth.assign(score=[0.9, 0.8, 0.7])
    m = mean_average_precision(preds, truth)
    assert m["map"] == pytest.approx(1.0) and m["map_50"] == pytest.approx(1.0)
    assert m["class_map"]["label"].tolist() == ["Tree"]
    assert m["class_map"]["map"].iloc[0] == pytest.approx(1.0)


def test_map_by_reasoning():
    # two truths; a perfect prediction (score s_tp) for the first, a far-away false positive (s_fp),
    # nothing for the second. COCO reads interpolated precision at 101 recall points 0, 0.01, ..., 1.
    truth = table([SQUARE, OTHER])
    # TP first: precision 1 up to recall 0.5 (51 points), 0 beyond -> AP = 51/101
    preds = table([SQUARE, (100, 100, 110, 110, "Tree")], scores=[0.9, 0.8])
    assert mean_average_precision(preds, truth)["map_50"] == pytest.approx(51 / 101, abs=1e-6)
    # FP first: best precision at recall <= 0.5 is 1/2 -> AP = 0.5 * 51/101
    preds = table([SQUARE, (100, 100, 110, 110, "Tree")], scores=[0.8, 0.9])
    m = mean_average_precision(preds, truth)
    assert m["map_50"] == pytest.approx(0.5 * 51 / 101, abs=1e-6)
    assert m["map"] == pytest.approx(0.5 * 51 / 101, abs=1e-6)  # IoU 1 passes every COCO threshold


@pytest.mark.parametrize("max_detections", [11, 100, 300])
def test_map_does_not_depend_on_max_detections_above_the_box_count(max_detections):
    # pycocotools reads its overall mAP at a fixed 100 detections (-1 for any other setting);
    # the figures must not change with max_detections while every image has fewer boxes.
    truth = table([SQUARE, OTHER])
    preds = table([SQUARE, (100, 100, 110, 110, "Tree")], scores=[0.8, 0.9])
    m = mean_average_precision(preds, truth, max_detections=max_detections)
    assert m["map"] == pytest.approx(0.5 * 51 / 101, abs=1e-6)
    assert m["map_50"] == pytest.approx(0.5 * 51 / 101, abs=1e-6)
    assert m["class_map"]["map"].iloc[0] == pytest.approx(0.5 * 51 / 101, abs=1e-6)


def test_map_is_per_label():
    # a perfectly placed box with the wrong label is no detection for mAP
    truth = table([(0, 0, 10, 10, "A")])
    preds = table([(0, 0, 10, 10, "B")], scores=[0.9])
    m = mean_average_precision(preds, truth)
    assert m["map_50"] == 0.0
    assert evaluate_boxes(preds, truth)["box_recall"] == 1.0  # box matching ignores labels


def test_map_without_ground_truth_is_nan_and_needs_scores():
    m = mean_average_precision(table([SQUARE], scores=[0.9]), dfl.empty_boxes(scores=False))
    assert math.isnan(m["map"])
    with pytest.raises(InvalidInputError, match="score"):
        mean_average_precision(table([SQUARE]), table([SQUARE]))
    with pytest.raises(InvalidInputError, match="max_detections"):
        mean_average_precision(table([SQUARE], scores=[0.9]), table([SQUARE]), max_detections=5)


def test_module_is_torch_free_at_import():
    code = "import sys, deepforest_lite.evaluate, deepforest_lite.visualize; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names_exported():
    assert dfl.evaluate_boxes is evaluate_boxes
    assert dfl.threshold_sweep is threshold_sweep
    assert dfl.mean_average_precision is mean_average_precision
    assert callable(dfl.plot_predictions) and callable(dfl.plot_precision_recall)
