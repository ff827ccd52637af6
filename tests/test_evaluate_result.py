"""EvaluationResult: evaluate_boxes' typed result, with DeepForest's dict behind to_dict() and result[key]."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

import deepforest_lite as dfl
from deepforest_lite.boxes import make_boxes
from deepforest_lite.evaluate import EvaluationResult, evaluate_boxes

#: the dict evaluate_boxes returned before it returned a dataclass: DeepForest's four keys first
DICT_KEYS = [
    "box_precision", "box_recall", "class_recall", "results",
    "precision", "recall", "f1", "true_positive", "n_predictions", "n_truth", "iou_threshold",
    "per_image", "class_metrics", "confusion", "predictions",
]
TABLES = {"class_recall", "results", "per_image", "class_metrics", "confusion", "predictions"}


@pytest.fixture
def result() -> EvaluationResult:
    # a.png: two trees, one found and one missed (IoU 0); b.png: no trees, one false positive
    truth = make_boxes([[0, 0, 10, 10], [20, 20, 30, 30]], ["Tree", "Tree"], image_path="a.png")
    preds = pd.concat(
        [
            make_boxes([[0, 0, 10, 10]], ["Tree"], scores=[0.9], image_path="a.png"),
            make_boxes([[50, 50, 60, 60]], ["Tree"], scores=[0.8], image_path="b.png"),
        ],
        ignore_index=True,
    )
    return evaluate_boxes(preds, truth, iou_threshold=0.4)


def test_fields_hold_the_figures(result):
    assert isinstance(result, EvaluationResult)
    assert result.box_precision == 1.0 and result.box_recall == 0.5  # b.png has no truth: not counted
    assert result.precision == 0.5 and result.recall == 0.5 and result.f1 == 0.5
    assert (result.true_positive, result.n_predictions, result.n_truth) == (1, 2, 2)
    assert result.iou_threshold == 0.4
    assert result.results["match"].tolist() == [True, False]
    assert result.per_image["image_path"].tolist() == ["a.png", "b.png"]


def test_to_dict_has_deepforests_keys_and_the_attributes_values(result):
    d = result.to_dict()
    assert list(d) == DICT_KEYS
    assert [f.name for f in dataclasses.fields(EvaluationResult)] == DICT_KEYS
    for key, value in d.items():
        assert value is getattr(result, key)
        assert result[key] is value  # DeepForest's item access
        if key in TABLES:
            assert isinstance(value, pd.DataFrame)
        else:
            assert isinstance(value, (int, float)) and not isinstance(value, bool)
    assert dict(result).keys() == d.keys() and list(result) == DICT_KEYS
    assert "box_precision" in result and "map" not in result


def test_it_is_frozen(result):
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.box_precision = 0.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.results = pd.DataFrame()  # type: ignore[misc]
    assert result.box_precision == 1.0


def test_an_unknown_key_is_a_clear_key_error(result):
    with pytest.raises(KeyError) as info:
        result["box_precison"]
    assert isinstance(info.value, dfl.DeepForestLiteError)
    assert str(info.value).startswith("An evaluation result has no key 'box_precison'; use one of ['box_precision'")
    with pytest.raises(KeyError):
        result[0]  # type: ignore[index]


def test_repr_names_the_figures_not_the_tables(result):
    text = repr(result)
    assert text.startswith("EvaluationResult(box_precision=1.0, box_recall=0.5, precision=0.5")
    assert "results=<2 rows>" in text and "xmin" not in text


def test_empty_inputs_still_give_every_field():
    r = evaluate_boxes(dfl.empty_boxes(), dfl.empty_boxes(scores=False))
    assert list(r.to_dict()) == DICT_KEYS
    assert math.isnan(r.precision) and r.n_truth == 0 and r.per_image.empty


def test_exported_at_the_top_level():
    assert "EvaluationResult" in dfl.__all__
    assert dfl.EvaluationResult is EvaluationResult
    assert "EvaluationResult" in dfl.evaluate.__all__
