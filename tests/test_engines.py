"""Engines: torch and onnxruntime give the same boxes, box for box; exported files load and predict.

Same boxes means: as many boxes, each pair (in score order) with IoU >= 0.999,
the same label and scores within 1e-4. Checked on real sample rasters, for
the bundled model and for a DeepForest-layout ResNet-50 RetinaNet built here
with random weights, through predict_image, predict_tile and the CLI.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import assert_same_boxes

import deepforest_lite as dfl
from deepforest_lite.cli import main
from deepforest_lite.engines import ExportedRetinaNet, resolve_engine

pytestmark = pytest.mark.usefixtures("engine_cache")


def test_bundled_model_same_boxes_predict_image_and_tile(bundled):
    image = dfl.get_data("OSBS_029.tif")
    assert_same_boxes(bundled.predict_image(image, engine="torch"), bundled.predict_image(image, engine="onnxruntime"))
    raster = dfl.get_data("2019_YELL_2_541000_4977000_image_crop.png")
    torch_tile = bundled.predict_tile(raster, engine="torch", progress=False)
    ort_tile = bundled.predict_tile(raster, engine="onnxruntime", progress=False)
    assert torch_tile.attrs["windows"] == ort_tile.attrs["windows"] > 1
    assert_same_boxes(torch_tile, ort_tile)


def test_deepforest_resnet50_same_boxes_and_onnx_file(deepforest_resnet50, tmp_path):
    det = dfl.load_model(deepforest_resnet50, device="cpu")
    image = dfl.get_data("OSBS_029.png")
    reference = det.predict_image(image, engine="torch")
    assert_same_boxes(reference, det.predict_image(image, engine="onnxruntime"))
    path = det.export(tmp_path / "r50.onnx")
    loaded = dfl.load_model(path)
    assert isinstance(loaded.model, ExportedRetinaNet) and loaded.labels == ("Tree",)
    assert loaded.config == det.config  # every ModelConfig field travels in the metadata
    assert_same_boxes(reference, loaded.predict_image(image))
    tile = det.predict_tile(image, patch_size=250, engine="torch", progress=False)
    # about 1,150 boxes of this random network score 0.9993-0.9996: ties the merge settles by float noise
    assert_same_boxes(tile, loaded.predict_tile(image, patch_size=250, progress=False), near_ties=0.005)


def test_cli_export_and_predict_with_onnx_file(bundled, tmp_path):
    onnx_file = tmp_path / "tree.onnx"
    assert main(["export", "tree-lite", str(onnx_file)]) == 0
    raster = str(dfl.get_data("OSBS_029.tif"))
    assert main(["predict", raster, "--engine", "torch", "--output", str(tmp_path / "torch.csv"), "--quiet"]) == 0
    assert main(["predict", raster, "--model", str(onnx_file), "--output", str(tmp_path / "onnx.csv"), "--quiet"]) == 0
    assert main(["predict", raster, "--engine", "onnxruntime", "--output", str(tmp_path / "ort.csv"), "--quiet"]) == 0
    torch_boxes = pd.read_csv(tmp_path / "torch.csv")
    assert_same_boxes(torch_boxes, pd.read_csv(tmp_path / "onnx.csv"))
    assert_same_boxes(torch_boxes, pd.read_csv(tmp_path / "ort.csv"))


def test_metadata_holds_what_prediction_needs(bundled, tmp_path):
    import onnx

    path = bundled.export(tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}["deepforest_lite"])
    assert meta["labels"] == ["Tree"] and meta["package_version"] == dfl.__version__
    assert meta["model"]["score_threshold"] == bundled.score_threshold
    assert meta["model"]["scale_factor"] == bundled.config.scale_factor
    assert meta["anchors"]["sizes"][0] == [16, 20, 25]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def test_torchscript_export_predicts_the_same(tiny_detector, tmp_path):
    det = tiny_detector(score_threshold=0.0, detections_per_image=20)
    image = dfl.get_data("OSBS_029.png")
    path = det.export(tmp_path / "m.torchscript", format="torchscript")
    loaded = dfl.load_model(path, device="cpu")
    assert loaded.model.engine == "torch"
    assert_same_boxes(det.predict_image(image, engine="torch"), loaded.predict_image(image))


def test_auto_engine_choice_and_errors(tiny_detector, tmp_path):
    cpu = torch.device("cpu")
    assert resolve_engine("auto", cpu, "fp32") == "onnxruntime"
    assert resolve_engine("auto", cpu, "bf16") == "torch"
    assert resolve_engine("auto", torch.device("cuda"), "fp32") == "torch"
    with pytest.raises(dfl.InvalidInputError, match="engine"):
        dfl.PredictConfig(engine="tensorrt")
    with pytest.raises(dfl.InvalidInputError, match=r"runs at precision \['fp32'\], not 'bf16'"):
        dfl.PredictConfig(engine="onnxruntime", precision="bf16")
    det = tiny_detector()
    loaded = dfl.load_model(det.export(tmp_path / "m.onnx"))
    with pytest.raises(dfl.InvalidInputError, match="onnxruntime engine only"):
        loaded.predict_image(dfl.get_data("OSBS_029.png"), engine="torch")
    with pytest.raises(dfl.InvalidInputError, match="exported file"):
        loaded.save(tmp_path / "x.pt")
    with pytest.raises(dfl.InvalidInputError, match="export format"):
        det.export(tmp_path / "m.bin", format="tflite")


def test_bf16_still_runs_on_torch(tiny_detector):
    det = tiny_detector(score_threshold=0.0, detections_per_image=5)
    boxes = det.predict_image(dfl.get_data("OSBS_029.png"), precision="bf16")
    assert len(boxes) == 5


def test_cli_export_unknown_extension_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "tree-lite", str(tmp_path / "model.bin")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--format" in err and len(err.strip().splitlines()) == 1
