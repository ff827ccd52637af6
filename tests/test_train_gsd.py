"""Training at a chosen GSD: images and boxes resampled to it, the GSD recorded in the model."""

from __future__ import annotations

import numpy as np
import pytest

import deepforest_lite as dfl
from deepforest_lite.dataset import TrainingDataset
from deepforest_lite.gsd import GSDWarning
from deepforest_lite.labels import LabelMap

FAST = dict(epochs=1, batch_size=2, lr=1e-3, augment="none", workers=0, accelerator="cpu", precision="32-true")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models run fastest on one thread


def _tiles(make_raster, pixel=0.05):
    """Two georeferenced 160 x 120 px tiles at ``pixel`` m and their annotation table."""
    boxes = ((20, 20, 60, 50), (90, 40, 130, 100))
    a = make_raster("a.tif", width=160, height=120, boxes=boxes, pixel_size=(pixel, pixel))
    b = make_raster("b.tif", width=160, height=120, boxes=boxes[:1], pixel_size=(pixel, pixel), seed=1)
    import pandas as pd

    return pd.concat([a.boxes, b.boxes], ignore_index=True)


def test_dataset_resamples_images_and_boxes_to_the_gsd(make_raster):
    table = _tiles(make_raster, pixel=0.05)
    data = TrainingDataset(table, None, LabelMap(["Tree"]), gsd=0.1)
    image, target, _ = data[0]
    assert tuple(image.shape) == (3, 60, 80)  # half the pixels per axis
    assert target["boxes"].tolist() == [[10, 10, 30, 25], [45, 20, 65, 50]]
    # the resampled pixels are rasterio's average of the file's 2 x 2 blocks
    raw = dfl.read_image(table["image_path"][0]).astype(np.float64)
    blocks = raw.reshape(60, 2, 80, 2, 3).mean(axis=(1, 3))
    assert np.abs(image.permute(1, 2, 0).numpy() * 255 - blocks).max() <= 0.5 + 1e-6
    native = TrainingDataset(table, None, LabelMap(["Tree"]), gsd=0.052)  # within 10 %: as is
    assert tuple(native[0][0].shape) == (3, 120, 160)


def test_fit_records_the_gsd_given_or_read_from_the_transforms(tmp_path, tiny_detector, make_raster):
    table = _tiles(make_raster, pixel=0.05)
    det = tiny_detector(["Tree"])
    assert det.gsd is None
    det.fit(table, output_dir=tmp_path / "read", **FAST)
    assert det.gsd == pytest.approx(0.05)
    assert dfl.load_model(tmp_path / "read" / "last.safetensors", device="cpu").gsd == pytest.approx(0.05)

    det = tiny_detector(["Tree"])
    det.fit(table, output_dir=tmp_path / "given", gsd=0.1, **FAST)
    assert det.gsd == 0.1
    assert dfl.load_model(tmp_path / "given" / "last.safetensors", device="cpu").gsd == 0.1


def test_fit_on_plain_images_warns_and_records_none(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=2, size=64)
    det = tiny_detector(["Red", "Blue"])
    with pytest.warns(GSDWarning, match="records no GSD"):
        det.fit(folder / "train.csv", output_dir=tmp_path / "run", **FAST)
    assert det.gsd is None


def test_cli_train_gsd_is_recorded_and_a_bad_one_is_one_line(tmp_path, planted_images, capsys):
    from deepforest_lite.cli import main

    folder, _ = planted_images(n_images=2, size=64, per_image=2)
    config = tmp_path / "run.yaml"
    config.write_text("model:\n  backbone: resnet18\n  fpn_channels: 32\n  resize: scale\n"
                      "epochs: 1\nbatch_size: 2\nlr: 0.0001\naugment: none\n")
    args = ["train", "--config", str(config), "--train", str(folder / "train.csv"), "--labels", "Red,Blue",
            "--output-dir", str(tmp_path / "run"), "--quiet"]
    assert main([*args, "--output", str(tmp_path / "m.pt"), "--gsd", "0.03"]) == 0
    assert dfl.load_model(tmp_path / "m.pt", device="cpu").gsd == 0.03  # plain PNGs taken to be at --gsd

    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--output", str(tmp_path / "bad.pt"), "--gsd", "0"])
    assert exit_info.value.code == 2
    assert "argument --gsd: expected a pixel size in metres > 0 like 0.1, got '0'" in capsys.readouterr().err
    config.write_text(config.read_text() + "gsd: -0.1\n")  # from the YAML file: checked before any work
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--output", str(tmp_path / "bad.pt")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "gsd must be a positive pixel size in metres, got -0.1" in err and "Traceback" not in err
    assert not (tmp_path / "bad.pt").exists()
