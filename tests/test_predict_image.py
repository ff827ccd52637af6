"""Detector.predict_image: inputs, outputs, settings that take effect at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import deepforest_lite as dfl
from deepforest_lite.boxes import PREDICTION_COLUMNS
from deepforest_lite.raster import read_image

IMAGE = dfl.get_data("OSBS_029.png")


@pytest.fixture
def detector(tiny_detector):
    det = tiny_detector(["Tree", "Bird"], seed=2)
    with torch.no_grad():
        det.model.head.classification_head.cls_logits.bias.fill_(0.5)
    return det


def test_path_and_array_give_the_same_table(detector):
    from_path = detector.predict_image(IMAGE)
    from_array = detector.predict_image(read_image(IMAGE), image_path="OSBS_029.png")
    assert list(from_path.columns) == PREDICTION_COLUMNS
    assert len(from_path) > 0
    assert from_path.equals(from_array)
    assert set(from_path["image_path"]) == {"OSBS_029.png"}
    assert set(from_path["label"]) <= {"Tree", "Bird"}
    assert (from_path["xmax"] > from_path["xmin"]).all() and (from_path["ymax"] > from_path["ymin"]).all()
    assert from_path["score"].is_monotonic_decreasing


def test_png_jpeg_and_tiff_are_read(detector, tmp_path):
    pixels = read_image(IMAGE)
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(pixels).save(tmp_path / "a.tif")
    assert detector.predict_image(tmp_path / "a.tif").drop(columns="image_path").equals(
        detector.predict_image(IMAGE).drop(columns="image_path")
    )
    assert len(detector.predict_image(tmp_path / "a.jpg")) > 0


def test_thresholds_changed_after_load_take_effect(detector, tmp_path):
    loaded = dfl.load_model(detector.save(tmp_path / "m.pt"))
    loaded.score_threshold = 0.0
    many = loaded.predict_image(IMAGE)
    loaded.score_threshold = float(many["score"].median())
    fewer = loaded.predict_image(IMAGE)
    assert 0 < len(fewer) < len(many)
    assert fewer["score"].min() >= loaded.score_threshold
    loaded.detections_per_image = 3
    assert len(loaded.predict_image(IMAGE)) == 3
    loaded.detections_per_image = 300
    loaded.nms_threshold = 0.9
    assert len(loaded.predict_image(IMAGE)) > len(fewer)
    assert loaded.config.nms_threshold == 0.9


def test_bad_threshold_values_are_refused(detector):
    with pytest.raises(dfl.InvalidInputError, match=r"score_threshold must be a number in \[0, 1\], got 1.5"):
        detector.score_threshold = 1.5
    with pytest.raises(dfl.InvalidInputError, match="detections_per_image must be a positive integer"):
        detector.detections_per_image = 0
    assert detector.score_threshold == 0.1


def test_nothing_found_is_an_empty_table_with_the_columns(detector):
    detector.score_threshold = 1.0
    result = detector.predict_image(IMAGE)
    assert result.empty
    assert list(result.columns) == PREDICTION_COLUMNS
    assert result["xmin"].dtype == np.float64 and result["score"].dtype == np.float64


def test_bf16_autocast_runs_and_finds_boxes(detector):
    from deepforest_lite.predict import image_to_tensor, run_model

    result = detector.predict_image(IMAGE, precision="bf16")
    assert len(result) > 0 and list(result.columns) == PREDICTION_COLUMNS
    (raw,) = run_model(detector.model, [image_to_tensor(read_image(IMAGE))], "bf16")
    # boxes are decoded in float32: bfloat16 would put every corner above 256 px on a 2 px grid
    assert raw["boxes"].dtype == torch.float32 and raw["scores"].dtype == torch.float32
    large = raw["boxes"][raw["boxes"] > 256]
    assert len(large) > 0 and bool((large % 2 != 0).any())
    with pytest.raises(dfl.InvalidInputError, match="Unknown precision 'fp8'"):
        detector.predict_image(IMAGE, precision="fp8")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((20, 20), np.uint8), r"H x W x 3 RGB array, got shape \(20, 20\)"),
        (np.zeros((20, 20, 4), np.uint8), r"got shape \(20, 20, 4\)"),
        (np.zeros((20, 20, 3), np.float32), "uint8 RGB array .* got dtype float32"),
        ([[1, 2, 3]], "got list"),
    ],
)
def test_bad_arrays_get_one_clear_error(detector, array, message):
    with pytest.raises(dfl.InvalidInputError, match=message):
        detector.predict_image(array)


def test_bad_files_get_one_clear_error(detector, tmp_path):
    with pytest.raises(dfl.ImageReadError, match="does not exist"):
        detector.predict_image(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(dfl.ImageReadError, match="Cannot read"):
        detector.predict_image(tmp_path / "broken.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "gray.png")
    with pytest.raises(dfl.RasterError, match=r"has 1 .*band"):
        detector.predict_image(tmp_path / "gray.png")
