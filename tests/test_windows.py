"""The window grid: DeepForest 2.1.0's rule, edge cases and argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepforest_lite.errors import DeepForestLiteError, InvalidInputError
from deepforest_lite.windows import Window, axis_offsets, window_grid


def reference_offsets(length: int, patch_size: int, overlap: float) -> tuple[int, list[int]]:
    """The grid rule of the issue, written out independently of windows.py.

    side = min(patch, L); step = side - floor(side * overlap); offsets 0, step, ...
    up to L - side, then one window flush with the far edge unless the last
    offset already is L - side.
    """
    side = min(patch_size, length)
    step = side - int(math.floor(side * overlap))
    last = length - side
    offsets = []
    x = 0
    while x <= last:
        offsets.append(x)
        x += step
    if not offsets or offsets[-1] != last:
        offsets.append(last)
    return side, offsets


def as_tuples(windows: list[Window]) -> list[tuple[int, int, int, int]]:
    return [(w.col_off, w.row_off, w.width, w.height) for w in windows]


def test_raster_smaller_than_patch_is_one_window_of_its_size() -> None:
    assert as_tuples(window_grid(200, 300, patch_size=400, patch_overlap=0.05)) == [(0, 0, 300, 200)]


def test_one_axis_smaller_than_patch() -> None:
    # width 1000 > patch, height 150 < patch: one row of 150-px-high windows
    grid = window_grid(150, 1000, patch_size=400, patch_overlap=0.05)
    assert as_tuples(grid) == [(0, 0, 400, 150), (380, 0, 400, 150), (600, 0, 400, 150)]


def test_default_stride_is_380_for_400_and_005() -> None:
    side, offsets = axis_offsets(2000, 400, 0.05)
    assert side == 400
    assert offsets == [0, 380, 760, 1140, 1520, 1600]


def test_exact_multiple_without_overlap_has_no_extra_window() -> None:
    grid = window_grid(800, 1200, patch_size=400, patch_overlap=0)
    assert as_tuples(grid) == [
        (0, 0, 400, 400), (400, 0, 400, 400), (800, 0, 400, 400),
        (0, 400, 400, 400), (400, 400, 400, 400), (800, 400, 400, 400),
    ]


def test_exact_fit_with_overlap_has_no_extra_window() -> None:
    # 400 + 2 * 380 = 1160: the third window ends exactly at the edge
    assert axis_offsets(1160, 400, 0.05) == (400, [0, 380, 760])


def test_non_multiple_gets_one_window_flush_with_the_edge() -> None:
    assert axis_offsets(1000, 400, 0.0) == (400, [0, 400, 600])
    assert axis_offsets(1000, 400, 0.05) == (400, [0, 380, 600])
    assert axis_offsets(401, 400, 0.5) == (400, [0, 1])


def test_length_equal_to_patch_is_one_window() -> None:
    assert axis_offsets(400, 400, 0.05) == (400, [0])


def test_floor_of_side_times_overlap_uses_float_arithmetic_like_deepforest() -> None:
    # 100 * 0.29 == 28.999999999999996 in floating point: floor gives 28, stride 72
    assert axis_offsets(300, 100, 0.29) == (100, [0, 72, 144, 200])


def test_axis_offsets_match_the_reference_rule() -> None:
    lengths = [1, 7, 99, 100, 101, 379, 380, 399, 400, 401, 759, 760, 1000, 1161, 2513]
    for length in lengths:
        for patch_size in [1, 64, 100, 400, 512]:
            for overlap in [0.0, 0.05, 0.1, 0.25, 0.29, 0.5, 0.9, 0.999]:
                expected = reference_offsets(length, patch_size, overlap)
                assert axis_offsets(length, patch_size, overlap) == expected, (length, patch_size, overlap)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (200, 300), (999, 1000), (1160, 401), (2048, 2048)])
@pytest.mark.parametrize(("patch_size", "overlap"), [(400, 0.05), (256, 0.0), (300, 0.25), (1000, 0.1)])
def test_grid_covers_every_pixel_with_equal_windows_inside_the_image(
    height: int, width: int, patch_size: int, overlap: float
) -> None:
    grid = window_grid(height, width, patch_size=patch_size, patch_overlap=overlap)
    covered = np.zeros((height, width), dtype=bool)
    sizes = {(w.width, w.height) for w in grid}
    assert sizes == {(min(patch_size, width), min(patch_size, height))}
    for w in grid:
        assert 0 <= w.col_off and w.col_off + w.width <= width
        assert 0 <= w.row_off and w.row_off + w.height <= height
        covered[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] = True
    assert covered.all()
    # the same set of windows as the reference rule on both axes, no duplicates
    w_side, cols = reference_offsets(width, patch_size, overlap)
    h_side, rows = reference_offsets(height, patch_size, overlap)
    assert sorted(as_tuples(grid)) == sorted((c, r, w_side, h_side) for r in rows for c in cols)
    assert len(set(as_tuples(grid))) == len(grid)


def test_grid_is_ordered_row_by_row() -> None:
    grid = window_grid(1000, 1000, patch_size=400, patch_overlap=0.05)
    keys = [(w.row_off, w.col_off) for w in grid]
    assert keys == sorted(keys)
    assert len(grid) == 9


def test_window_bounds() -> None:
    assert Window(col_off=380, row_off=760, width=400, height=300).bounds == (380, 760, 780, 1060)


@pytest.mark.parametrize("patch_size", [0, -400, 400.0, 1.5, "400", None, True])
def test_invalid_patch_size_is_rejected(patch_size: object) -> None:
    with pytest.raises(InvalidInputError, match=r"patch_size must be a positive whole number.*got"):
        window_grid(500, 500, patch_size=patch_size, patch_overlap=0.05)  # type: ignore[arg-type]


@pytest.mark.parametrize("overlap", [1, 1.0, 1.5, -0.01, "0.05", None])
def test_overlap_outside_0_1_is_rejected(overlap: object) -> None:
    with pytest.raises(InvalidInputError, match=r"patch_overlap must be a fraction in \[0, 1\)"):
        window_grid(500, 500, patch_size=400, patch_overlap=overlap)  # type: ignore[arg-type]


@pytest.mark.parametrize(("height", "width"), [(0, 10), (10, 0), (-5, 10)])
def test_empty_image_is_rejected(height: int, width: int) -> None:
    with pytest.raises(InvalidInputError, match="Image size must be positive"):
        window_grid(height, width)


def test_errors_are_also_value_errors() -> None:
    with pytest.raises(ValueError):
        window_grid(10, 10, patch_size=0)
    with pytest.raises(DeepForestLiteError):
        window_grid(10, 10, patch_overlap=1)
