"""detector.py: the Detector's state (labels, live settings), save/load and its error messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepforest_lite as dfl

pytestmark = pytest.mark.usefixtures("one_thread")


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(96, 96, 3), dtype=np.uint8)


def test_labels_and_config_are_what_was_asked(tiny_detector):
    det = tiny_detector(labels=("Tree", "Bird"))
    assert det.labels == ("Tree", "Bird")
    assert det.config.backbone == "resnet18" and det.config.fpn_channels == 32
    assert det.model.head.classification_head.num_classes == 2


def test_settings_are_live_on_the_network(tiny_detector):
    det = tiny_detector()
    det.score_threshold = 0.25
    det.nms_threshold = 0.3
    det.detections_per_image = 7
    assert (det.model.score_thresh, det.model.nms_thresh, det.model.detections_per_img) == (0.25, 0.3, 7)
    assert (det.config.score_threshold, det.config.nms_threshold, det.config.detections_per_image) == (0.25, 0.3, 7)


def test_save_and_load_give_the_same_boxes(tiny_detector, tmp_path):
    det = tiny_detector(labels=("Tree", "Bird"), seed=3)
    det.score_threshold = 0.0
    image = _image()
    before = det.predict_image(image)
    path = det.save(tmp_path / "model.safetensors")
    again = dfl.load_model(path, device="cpu")
    after = again.predict_image(image)
    assert again.labels == det.labels and again.config == det.config
    assert len(before) > 0
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))


def test_bad_setting_is_one_clear_error(tiny_detector):
    det = tiny_detector()
    with pytest.raises(dfl.InvalidInputError, match="score_threshold"):
        det.score_threshold = 1.5
    assert det.score_threshold != 1.5
