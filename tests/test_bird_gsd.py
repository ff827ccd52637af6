"""A DeepForest bird checkpoint (weecology/deepforest-bird layout, built here offline) and its GSD.

DeepForest does not document the GSD its bird model was trained at, so an imported one-class
``Bird`` model records none and rasters are used as they are, until the caller gives the model's
GSD (``load_model(..., gsd=)``, ``Detector.gsd = ``, ``--model-gsd``): then the same resampling as
for the tree model applies.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from safetensors.torch import save_file

import deepforest_lite as dfl
from deepforest_lite.cli import main
from deepforest_lite.gsd import scaled_grid

PATCH, OVERLAP = 100, 0.05


@pytest.fixture(scope="module")
def bird_folder(tmp_path_factory):
    """DeepForest 2.x Hugging Face layout: model.safetensors + config.json as weecology/deepforest-bird has."""
    folder = tmp_path_factory.mktemp("deepforest-bird")
    torch.manual_seed(0)
    det = dfl.Detector(["Bird"], backbone="resnet18", frozen_batchnorm=True, device="cpu")
    save_file({k: v.contiguous() for k, v in det.model.state_dict().items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(
        {"architecture": "retinanet", "label_dict": {"Bird": 0}, "nms_thresh": 0.05, "num_classes": 1,
         "score_thresh": 0.1}))
    return folder


def _raster(path, gsd: float, size: int = 100):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (3, size, size), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                       crs="EPSG:32617", transform=Affine(gsd, 0, 400000.0, 0, -gsd, 3300000.0)) as dst:
        dst.write(pixels)
    return path


def test_bird_defaults_and_unknown_gsd(bird_folder, tmp_path):
    det = dfl.load_model(bird_folder, device="cpu")
    assert det.label_map.names == ("Bird",)
    assert det.gsd is None  # DeepForest documents none for its bird model
    assert (det.score_threshold, det.nms_threshold) == (0.1, 0.05)
    assert (det.config.min_size, det.config.max_size, det.config.backbone) == (800, 1333, "resnet18")
    table = det.predict_tile(_raster(tmp_path / "b.tif", 0.04), patch_size=PATCH, patch_overlap=OVERLAP,
                             progress=False)
    assert table.attrs["model_gsd"] is None and table.attrs["rescaled"] is False
    assert table.attrs["scale"] == (1.0, 1.0)
    assert table.attrs["windows"] == len(dfl.window_grid(100, 100, PATCH, OVERLAP))


def test_bird_gsd_override_resamples(bird_folder, tmp_path):
    det = dfl.load_model(bird_folder, device="cpu")
    det.gsd = 0.02
    assert det.gsd == 0.02 and det.config.gsd == 0.02
    det = dfl.load_model(bird_folder, device="cpu", gsd=0.02)
    assert det.gsd == 0.02
    raster = _raster(tmp_path / "b.tif", 0.04)  # 4 cm raster, 2 cm model: 50 px windows read at 100 px
    table = det.predict_tile(raster, patch_size=PATCH, patch_overlap=0.0, progress=False)
    assert table.attrs["rescaled"] is True and table.attrs["model_gsd"] == 0.02
    assert table.attrs["raster_gsd"] == pytest.approx((0.04, 0.04))
    assert table.attrs["scale"] == pytest.approx((2.0, 2.0))
    assert table.attrs["windows"] == len(scaled_grid(100, 100, PATCH, 0.0, (2.0, 2.0)).windows) == 4
    if len(table):  # boxes come back in raster pixels: inside the 100 px raster
        coords = table[["xmin", "ymin", "xmax", "ymax"]].to_numpy()
        assert coords.min() >= 0 and coords.max() <= 100


def test_bird_gsd_override_on_the_command_line(bird_folder, tmp_path, capsys):
    raster = _raster(tmp_path / "b.tif", 0.01)
    args = ["predict", str(raster), "--model", str(bird_folder), "--device", "cpu", "--patch-size", str(PATCH),
            "--quiet"]
    assert main([*args, "--output", str(tmp_path / "a.csv")]) == 0
    assert "model GSD unknown, used as is" in capsys.readouterr().out
    assert main([*args, "--output", str(tmp_path / "b.csv"), "--model-gsd", "0.02"]) == 0
    assert "raster 0.010 m resampled to the model's 0.020 m" in capsys.readouterr().out
