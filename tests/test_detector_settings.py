"""Detector.predict_tile(config=PredictConfig), the CLI passing its config through, fit's delegation to fit_model."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pandas as pd
import pytest

import deepforest_lite as dfl
import deepforest_lite.predict as predict_module
from deepforest_lite.loading import Network
from deepforest_lite.train import fit_model, fit_options

pytestmark = pytest.mark.usefixtures("one_thread")


def _raster(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(160, 200, 3), dtype=np.uint8)


@pytest.fixture
def seen(monkeypatch):
    """The PredictConfig each predict_module.predict_tile call received."""
    configs: list[dfl.PredictConfig] = []
    original = predict_module.predict_tile

    def recording(model, label_map, raster, config=None, **kwargs):
        configs.append(config)
        return original(model, label_map, raster, config, **kwargs)

    monkeypatch.setattr(predict_module, "predict_tile", recording)
    return configs


def test_a_whole_config_gives_the_same_boxes_as_its_keywords(tiny_detector, seen):
    det = tiny_detector(seed=2)
    det.score_threshold = 0.0
    config = dfl.PredictConfig(patch_size=96, patch_overlap=0.2, iou_threshold=0.3, batch_size=3, device="cpu")
    by_config = det.predict_tile(_raster(), config=config, progress=False)
    by_keywords = det.predict_tile(_raster(), 96, 0.2, 0.3, batch_size=3, progress=False)
    assert seen[0] == config and seen[1] == config
    assert len(by_config) > 0 and by_config.attrs["windows"] == by_keywords.attrs["windows"] == 6
    pd.testing.assert_frame_equal(by_config, by_keywords)


def test_keywords_given_with_a_config_override_its_fields(tiny_detector, seen):
    det = tiny_detector()
    config = dfl.PredictConfig(patch_size=96, batch_size=3, precision="fp32", device="cpu")
    det.predict_tile(_raster(), 128, config=config, batch_size=1, class_aware=True, bands=None, progress=False)
    assert seen[0] == dataclasses.replace(config, patch_size=128, batch_size=1, class_aware_merge=True)
    assert config.patch_size == 96  # the caller's config is not changed


def test_without_config_the_defaults_run_where_the_weights_are(tiny_detector, seen):
    det = tiny_detector()
    det.predict_tile(_raster(), progress=False)
    assert seen[0] == dfl.PredictConfig(device="cpu")
    with pytest.raises(dfl.InvalidInputError, match="value_range apply to raster files"):
        det.predict_tile(_raster(), progress=False, value_range=[0, 200])
    assert seen[1] == dfl.PredictConfig(device="cpu", value_range=(0, 200))  # a list becomes the tuple


def test_bad_config_and_unknown_keywords_are_one_clear_error(tiny_detector):
    det = tiny_detector()
    with pytest.raises(dfl.InvalidInputError, match="config must be a PredictConfig, got dict"):
        det.predict_tile(_raster(), config={"patch_size": 96}, progress=False)
    with pytest.raises(dfl.ConfigError, match="batch_sise"):
        det.predict_tile(_raster(), batch_sise=2, progress=False)
    with pytest.raises(dfl.ConfigError, match="class_aware_merge"):  # predict_tile spells it class_aware
        det.predict_tile(_raster(), class_aware_merge=True, progress=False)
    with pytest.raises(dfl.InvalidInputError, match="batch_size must be a positive integer"):
        det.predict_tile(_raster(), config=dfl.PredictConfig(device="cpu"), batch_size=0, progress=False)


def test_the_cli_passes_its_config_to_detector_predict_tile(tmp_path, tiny_detector, monkeypatch):
    import rasterio

    from deepforest_lite.cli import main

    model = tiny_detector(seed=1).save(tmp_path / "model.safetensors")
    raster = tmp_path / "tile.tif"
    with rasterio.open(raster, "w", driver="GTiff", height=160, width=200, count=3, dtype="uint8") as dst:
        dst.write(_raster().transpose(2, 0, 1))
    calls = []
    original = dfl.Detector.predict_tile

    def recording(self, raster, *args, **kwargs):
        calls.append((args, kwargs))
        return original(self, raster, *args, **kwargs)

    monkeypatch.setattr(dfl.Detector, "predict_tile", recording)
    out = tmp_path / "boxes.csv"
    assert main(["predict", str(raster), "--model", str(model), "--output", str(out), "--patch-size", "96",
                 "--batch-size", "2", "--device", "cpu", "--quiet"]) == 0
    (args, kwargs), = calls
    assert args == () and kwargs["config"] == dfl.PredictConfig(patch_size=96, batch_size=2, device="cpu")
    assert not set(kwargs) & {f.name for f in dataclasses.fields(dfl.PredictConfig)}  # nothing unpacked


def test_fit_takes_fit_models_keywords_without_repeating_them():
    params = inspect.signature(dfl.Detector.fit).parameters
    assert [p for p in params if params[p].kind is not inspect.Parameter.VAR_KEYWORD] == [
        "self", "train", "val", "config", "gsd"
    ]
    assert fit_options() == [
        "labels", "root_dir", "val_root_dir", "output_dir", "resume", "crop_size", "cache_images",
        "provenance", "progress", "callbacks",
    ]
    assert set(fit_options()) <= set(inspect.signature(fit_model).parameters)


def test_fit_refuses_an_unknown_keyword_before_reading_data(tiny_detector, tmp_path):
    det = tiny_detector()
    with pytest.raises(dfl.ConfigError, match="output_dri"):
        det.fit(tmp_path / "missing.csv", output_dri=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_detector_is_a_network_with_deepforest_attribute_hints(tiny_detector):
    det = tiny_detector()
    assert isinstance(det, Network) and det.to("cpu") is det
    with pytest.raises(dfl.UnknownNameError, match="score_threshold"):
        det.score_thresh = 0.3
    with pytest.raises(AttributeError, match="'Detector' object has no attribute 'nothing'"):
        det.nothing
