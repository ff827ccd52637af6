"""The OpenVINO engine: at fp32 the same boxes as torch, box for box; at bf16 nearly all of them.

Same boxes as in tests/test_engines.py (``assert_same_boxes``): as many boxes,
each with its own partner at IoU >= 0.999, the same label, scores within 1e-4.
Checked on real sample rasters for the bundled model and a DeepForest-layout
ResNet-50 RetinaNet, through predict_image, predict_tile, an exported ONNX file
and the CLI. ``openvino`` is in the ``dev`` extra, so CI runs every test here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_same_boxes

import deepforest_lite as dfl
from deepforest_lite import engines
from deepforest_lite.cli import main
from deepforest_lite.engines import ExportedRetinaNet, resolve_engine

pytest.importorskip("openvino")
pytestmark = pytest.mark.usefixtures("engine_cache")


def matched_fraction(reference: pd.DataFrame, other: pd.DataFrame) -> float:
    """Share of ``reference`` boxes with a partner in ``other`` at IoU > 0.5 (the package's one-to-one matching;
    the bundled model has one label, so labels need no check)."""
    return float(dfl.evaluate_boxes(other, reference, iou_threshold=0.5).recall)


def test_fp32_same_boxes_as_torch_predict_image_and_tile(bundled):
    image = dfl.get_data("OSBS_029.tif")
    found = bundled.predict_image(image, engine="openvino")
    assert_same_boxes(bundled.predict_image(image, engine="torch"), found)
    raster = dfl.get_data("2019_YELL_2_541000_4977000_image_crop.png")
    torch_tile = bundled.predict_tile(raster, engine="torch", progress=False)
    openvino_tile = bundled.predict_tile(raster, engine="openvino", progress=False)
    assert torch_tile.attrs["windows"] == openvino_tile.attrs["windows"] > 1
    assert_same_boxes(torch_tile, openvino_tile)


def test_bf16_keeps_nearly_every_box(bundled):
    raster = dfl.get_data("2019_YELL_2_541000_4977000_image_crop.png")
    reference = bundled.predict_tile(raster, engine="torch", progress=False)
    bf16 = bundled.predict_tile(raster, engine="openvino", precision="bf16", progress=False)
    assert len(reference) > 50
    assert matched_fraction(reference, bf16) >= 0.98
    assert not np.allclose(np.sort(reference["score"])[-50:], np.sort(bf16["score"])[-50:], atol=1e-6, rtol=0)


def test_deepforest_resnet50_and_onnx_file(deepforest_resnet50, tmp_path):
    det = dfl.load_model(deepforest_resnet50, device="cpu")
    image = dfl.get_data("OSBS_029.png")
    reference = det.predict_image(image, engine="torch")
    assert_same_boxes(reference, det.predict_image(image, engine="openvino"))
    loaded = dfl.load_model(det.export(tmp_path / "r50.onnx"))
    assert isinstance(loaded.model, ExportedRetinaNet) and loaded.model.engine == "onnxruntime"
    assert_same_boxes(reference, loaded.predict_image(image, engine="openvino"))


def test_cli_engine_openvino_and_onnx_file(bundled, tmp_path):
    onnx_file = tmp_path / "tree.onnx"
    assert main(["export", "tree-lite", str(onnx_file)]) == 0
    raster = str(dfl.get_data("OSBS_029.tif"))
    runs = {
        "torch": ["--engine", "torch"],
        "openvino": ["--engine", "openvino"],
        "file": ["--model", str(onnx_file), "--engine", "openvino"],
    }
    for name, options in runs.items():
        assert main(["predict", raster, *options, "--output", str(tmp_path / f"{name}.csv"), "--quiet"]) == 0
    reference = pd.read_csv(tmp_path / "torch.csv")
    assert len(reference) > 10
    assert_same_boxes(reference, pd.read_csv(tmp_path / "openvino.csv"))
    assert_same_boxes(reference, pd.read_csv(tmp_path / "file.csv"))


def test_compiled_network_is_kept_per_precision(bundled):
    model = bundled.model
    fp32 = engines.openvino_network(model, "fp32")
    assert engines.openvino_network(model, "fp32") is fp32
    bf16 = engines.openvino_network(model, "bf16")
    assert bf16 is not fp32 and (fp32.precision, bf16.precision) == ("fp32", "bf16")
    view = engines.prepare_model(model, "openvino", "bf16", torch.device("cpu"))
    assert isinstance(view, ExportedRetinaNet) and view.engine == "openvino"
    assert view._engine_network is bf16 and view.precision == "bf16"


def test_choices_and_errors(monkeypatch, tiny_detector):
    cpu = torch.device("cpu")
    assert resolve_engine("openvino", cpu, "bf16") == "openvino"
    assert resolve_engine("auto", cpu, "bf16") == "torch"  # "auto" never picks OpenVINO
    with pytest.raises(dfl.InvalidInputError, match="runs on the CPU"):
        resolve_engine("openvino", torch.device("cuda"), "fp32")
    with pytest.raises(dfl.InvalidInputError, match=r"precision \['fp32', 'bf16'\], not 'fp16'"):
        dfl.PredictConfig(engine="openvino", precision="fp16")
    monkeypatch.setattr(engines, "openvino_available", lambda: False)
    with pytest.raises(dfl.InvalidInputError, match=r"deepforest_lite\[openvino\]"):
        tiny_detector().predict_image(dfl.get_data("OSBS_029.png"), engine="openvino")
