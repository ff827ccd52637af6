"""checks.check_range: one rule and one sentence for every number that must lie in a range."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest

from deepforest_lite.checks import check_range, describe_range, in_range, is_number
from deepforest_lite.cli import _common
from deepforest_lite.errors import DeepForestLiteError, InvalidInputError


def _message(*args, **kwargs) -> str:
    with pytest.raises(InvalidInputError) as caught:
        check_range(*args, **kwargs)
    return str(caught.value)


def test_values_in_range_come_back_as_python_numbers():
    assert check_range("x", 0.5, 0, 1) == 0.5 and type(check_range("x", 0.5, 0, 1)) is float
    assert type(check_range("x", 1, 0, 1)) is float  # a number setting is a float, even when given as int
    assert check_range("n", 3, 1, integer=True) == 3 and type(check_range("n", 3, 1, integer=True)) is int
    # numpy scalars are numbers
    assert type(check_range("x", np.float32(0.25), 0, 1)) is float and check_range("x", np.float32(0.25), 0, 1) == 0.25
    assert type(check_range("n", np.int64(7), 0, low_open=True, integer=True)) is int
    assert check_range("n", np.uint8(200), 100, integer=True) == 200
    assert check_range("x", -1e300) == -1e300  # no bounds: any finite number


def test_bounds_are_included_unless_open():
    assert check_range("x", 0, 0, 1) == 0.0 and check_range("x", 1, 0, 1) == 1.0
    assert in_range(0.999, 0, 1, high_open=True) and not in_range(1, 0, 1, high_open=True)
    assert not in_range(0, 0, low_open=True) and in_range(1e-12, 0, low_open=True)
    assert in_range(5, high=5) and not in_range(5, high=5, high_open=True) and in_range(-3, high=5, high_open=True)
    assert not in_range(11, 0, 10) and not in_range(-0.1, 0, 10)


@pytest.mark.parametrize("value", [True, False, np.True_, np.bool_(False)])
def test_booleans_are_not_numbers(value):
    assert not is_number(value) and not is_number(value, integer=True)
    assert _message("flag", value, 0, 1) == f"flag must be a number in [0, 1], got {bool(value)!r}."
    assert not in_range(value, 0, 1, integer=True)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_nan_and_infinities_are_in_no_range(value):
    assert not in_range(value) and not in_range(value, 0)
    with pytest.raises(InvalidInputError, match="lr must be a positive number, got"):
        check_range("lr", value, 0, low_open=True)


def test_integer_settings_take_whole_numbers_only():
    assert _message("batch_size", 2.0, 0, low_open=True, integer=True, kind="integer") == (
        "batch_size must be a positive integer, got 2.0."
    )
    assert _message("workers", -1, 0, integer=True, hint="0 reads windows in the main process") == (
        "workers must be a whole number >= 0, got -1; 0 reads windows in the main process."
    )
    assert is_number(np.int32(3), integer=True) and not is_number(np.float32(3), integer=True)


@pytest.mark.parametrize("value", ["0.5", None, [0.5], b"1", 1 + 0j])
def test_other_types_are_refused_with_their_repr(value):
    assert _message("iou_threshold", value, 0, 1, hint="e.g. 0.15") == (
        f"iou_threshold must be a number in [0, 1], got {value!r}; e.g. 0.15."
    )


def test_exact_messages():
    assert _message("patch_overlap", 1.0, 0, 1, high_open=True, kind="fraction", hint="e.g. 0.05") == (
        "patch_overlap must be a fraction in [0, 1), got 1.0; e.g. 0.05."
    )
    assert _message("patch_overlap", 1.0, 0, 1, high_open=True, kind="") == "patch_overlap must be in [0, 1), got 1.0."
    assert _message("patch_size", 0, 0, low_open=True, integer=True, kind="whole number of pixels") == (
        "patch_size must be a positive whole number of pixels, got 0."
    )
    assert _message("gsd", -0.1, 0, low_open=True, kind="pixel size in metres") == (
        "gsd must be a positive pixel size in metres, got -0.1."
    )
    assert _message("max_detections", 10, 10, low_open=True, integer=True, hint="COCO uses 100") == (
        "max_detections must be a whole number > 10, got 10; COCO uses 100."
    )
    assert _message("size_px", 99, 100, integer=True, kind="whole number of pixels") == (
        "size_px must be a whole number of pixels >= 100, got 99."
    )
    assert _message("x", 2, -1, 0.5, low_open=True) == "x must be a number in (-1, 0.5], got 2."
    assert _message("x", 5, high=1, high_open=True) == "x must be a number < 1, got 5."
    assert _message("step", 0.0, 0, low_open=True, kind="") == "step must be > 0, got 0.0."
    assert _message("n", -2, 0, 5, integer=True) == "n must be a whole number in [0, 5], got -2."
    assert _message("p", 1.5, 0, 1, kind="probability") == "p must be a probability in [0, 1], got 1.5."
    assert _message("e", 0, 0, low_open=True, kind="element") == "e must be a positive element, got 0."


def test_numpy_values_are_shown_as_plain_numbers():
    assert _message("score_threshold", np.float64(1.5), 0, 1) == "score_threshold must be a number in [0, 1], got 1.5."
    assert _message("n", np.int64(0), 0, low_open=True, integer=True) == "n must be a positive whole number, got 0."


def test_the_error_is_the_packages_and_a_value_error():
    with pytest.raises(ValueError):
        check_range("x", 2, 0, 1)
    assert issubclass(InvalidInputError, DeepForestLiteError)


def test_describe_range_words_and_symbols():
    assert describe_range(0, low_open=True, integer=True) == "a positive whole number"
    assert describe_range(0, low_open=True, integer=True, symbols=True) == "a whole number > 0"
    assert describe_range(0, integer=True, symbols=True) == "a whole number >= 0"
    assert describe_range(1e-6, 0.25, high_open=True) == "a number in [1e-06, 0.25)"
    assert describe_range(0, 100, kind="integer") == "an integer in [0, 100]"
    assert describe_range() == "a number" and describe_range(kind="") == ""


@pytest.mark.parametrize(
    "parse, text, message",
    [
        (_common.positive_int, "0", "expected a whole number > 0, got '0'"),
        (_common.positive_int, "1.5", "expected a whole number > 0, got '1.5'"),
        (_common.non_negative_int, "-1", "expected a whole number >= 0, got '-1'"),
        (_common.fraction, "1.5", "expected a number between 0 and 1, got '1.5'"),
        (_common.fraction, "nan", "expected a number between 0 and 1, got 'nan'"),
        (_common.overlap, "1", "expected a fraction in [0, 1), got '1'"),
        (_common.gsd_metres, "inf", "expected a pixel size in metres > 0 like 0.1, got 'inf'"),
        (_common.duration, "-1", "expected a number of seconds >= 0 like 30, got '-1'"),
        (_common.duration, "soon", "expected a number of seconds >= 0 like 30, got 'soon'"),
    ],
)
def test_command_line_types_word_the_same_ranges(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        parse(text)
    assert str(caught.value) == message


def test_command_line_types_return_the_number():
    assert _common.positive_int("3") == 3 and _common.non_negative_int("0") == 0
    assert _common.fraction("1") == 1.0 and _common.overlap("0.25") == 0.25
    assert _common.gsd_metres("0.1") == 0.1 and _common.duration("0") == 0.0
