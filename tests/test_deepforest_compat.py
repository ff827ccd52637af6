"""DeepForest checkpoints load and predict exactly what torchvision predicts with DeepForest's preprocessing.

The reference is a torchvision RetinaNet built here, independently of
deepforest_lite, the way torchvision's ``retinanet_resnet50_fpn`` builds it over
a pretrained backbone (frozen batch norm, P6/P7 from P5, default anchors, short
side resized to 800 px), with DeepForest 2.1.0's score threshold 0.1 and NMS
0.05, and random weights. It is saved in each layout DeepForest users have.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.retinanet import RetinaNet
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

import deepforest_lite as dfl
from deepforest_lite.raster import read_image

LABELS = {"Tree": 0, "Snag": 1}


@pytest.fixture(scope="module")
def reference():
    """(state_dict, detections) of an independently built, randomised DeepForest-style RetinaNet."""
    torch.manual_seed(0)
    body = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    model = RetinaNet(backbone, num_classes=len(LABELS), score_thresh=0.1, nms_thresh=0.05)
    with torch.no_grad():
        for name, buf in model.named_buffers():  # frozen batch norm statistics and affine terms
            if name.endswith("running_var") or name.endswith(".weight"):
                buf.uniform_(0.5, 1.5)
            elif name.endswith("running_mean") or name.endswith(".bias"):
                buf.normal_(0, 0.1)
        cls = model.head.classification_head.cls_logits
        cls.weight.normal_(0, 0.05)
        cls.bias.normal_(0, 1.0)
        model.head.regression_head.bbox_reg.weight.normal_(0, 0.01)
    model.eval()
    image = read_image(dfl.get_data("OSBS_029.png"))
    tensor = torch.tensor(image).permute(2, 0, 1) / 255  # DeepForest's preprocessing
    with torch.no_grad():
        (out,) = model([tensor])
    assert len(out["boxes"]) > 20, "the randomised reference should detect many boxes"
    assert set(out["labels"].tolist()) == {0, 1}
    return model.state_dict(), out


def _assert_same(table, out):
    """torchvision's boxes, scores and labels, in order, bit for bit, less those its clip left with zero area."""
    boxes = out["boxes"].numpy().astype(np.float64)
    kept = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    np.testing.assert_array_equal(table[["xmin", "ymin", "xmax", "ymax"]].to_numpy(), boxes[kept])
    np.testing.assert_array_equal(table["score"].to_numpy(), out["scores"].numpy().astype(np.float64)[kept])
    names = {v: k for k, v in LABELS.items()}
    assert table["label"].tolist() == [names[i] for i in out["labels"].numpy()[kept].tolist()]


def _predict(detector):
    # bit-for-bit equality with torchvision is the torch engine's property (onnxruntime: tests/test_engines.py)
    return detector.predict_image(dfl.get_data("OSBS_029.png"), engine="torch")


def test_huggingface_folder_2x_layout(tmp_path, reference):
    state, out = reference
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"num_classes": 2, "label_dict": LABELS, "score_thresh": 0.5}))
    det = dfl.load_model(tmp_path)
    assert det.labels == ("Tree", "Snag")
    assert det.score_threshold == 0.1 and det.nms_threshold == 0.05  # DeepForest 2.1.0's defaults win
    _assert_same(_predict(det), out)


def test_huggingface_folder_1x_layout_with_model_prefix(tmp_path, reference):
    state, out = reference
    save_file({f"model.{k}": v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"config": {"label_dict": LABELS}}))
    _assert_same(_predict(dfl.load_model(tmp_path)), out)


def test_lightning_ckpt(tmp_path, reference):
    state, out = reference
    path = tmp_path / "epoch=3.ckpt"
    torch.save(
        {
            "epoch": 3,
            "global_step": 120,
            "pytorch-lightning_version": "2.1.0",
            "state_dict": {f"model.{k}": v for k, v in state.items()},
            "hyper_parameters": {"label_dict": LABELS},
        },
        path,
    )
    _assert_same(_predict(dfl.load_model(path)), out)


def test_plain_state_dict_with_old_head_names(tmp_path, reference):
    state, out = reference
    old = {}
    for key, value in state.items():
        # torchvision < 0.13 named the head convs conv.0, conv.2, conv.4, conv.6 (ReLUs between)
        parts = key.split(".")
        if parts[0] == "head" and parts[2] == "conv":
            key = ".".join([*parts[:3], str(int(parts[3]) * 2), parts[5]])
        old[key] = value
    assert "head.classification_head.conv.6.weight" in old
    path = tmp_path / "NEON.pt"
    torch.save(old, path)
    with pytest.raises(dfl.CheckpointError, match=r"labels=\['Tree'\]"):
        dfl.load_model(path)
    det = dfl.load_model(path, labels=["Tree", "Snag"])
    _assert_same(_predict(det), out)
    with pytest.raises(dfl.CheckpointError, match="predicts 2 class"):
        dfl.load_model(path, labels=["Tree"])


def test_imported_weights_round_trip_through_our_format(tmp_path, reference):
    state, out = reference
    torch.save(state, tmp_path / "w.pt")
    det = dfl.load_model(tmp_path / "w.pt", labels=["Tree", "Snag"])
    det.save(tmp_path / "ours.safetensors")
    again = dfl.load_model(tmp_path / "ours.safetensors")
    assert again.config == det.config
    _assert_same(_predict(again), out)
