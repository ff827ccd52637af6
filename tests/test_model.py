"""model.py: the RetinaNet that build_retinanet makes, checked part by part on a tiny configuration."""

from __future__ import annotations

import pytest
import torch

from deepforest_lite.config import ModelConfig
from deepforest_lite.model import (
    build_anchor_generator,
    build_retinanet,
    count_parameters,
    infer_architecture,
    replace_classification_head,
    resolve_device,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ModelConfig(backbone="resnet18", fpn_channels=32, head_norm="none", resize="scale")


def test_anchors_are_three_scales_times_three_ratios_per_level():
    generator = build_anchor_generator(ModelConfig())
    assert generator.sizes == ((32, 40, 50), (64, 80, 101), (128, 161, 203), (256, 322, 406), (512, 645, 812))
    assert generator.aspect_ratios == ((0.5, 1.0, 2.0),) * 5
    assert generator.num_anchors_per_location() == [9] * 5


def test_build_retinanet_heads_match_classes_and_channels():
    torch.manual_seed(0)
    model = build_retinanet(TINY, num_classes=3)
    cls_logits = model.head.classification_head.cls_logits
    bbox_reg = model.head.regression_head.bbox_reg
    assert (cls_logits.in_channels, cls_logits.out_channels) == (32, 9 * 3)
    assert (bbox_reg.in_channels, bbox_reg.out_channels) == (32, 9 * 4)
    assert model.head.classification_head.num_classes == 3
    assert model.backbone.out_channels == 32


def test_forward_in_eval_returns_one_detection_dict_per_image():
    torch.manual_seed(0)
    model = build_retinanet(TINY, num_classes=2).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64), torch.rand(3, 96, 80)])
    assert len(out) == 2
    for det in out:
        assert set(det) == {"boxes", "scores", "labels"}
        assert det["boxes"].shape[1:] == (4,) and det["boxes"].shape[0] == det["scores"].shape[0]


def test_replace_classification_head_keeps_the_rest():
    torch.manual_seed(0)
    model = build_retinanet(TINY, num_classes=1)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.classification_head")}
    replace_classification_head(model, 4)
    assert model.head.classification_head.cls_logits.out_channels == 9 * 4
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_infer_architecture_reads_back_what_was_built():
    torch.manual_seed(0)
    model = build_retinanet(TINY, num_classes=2)
    found = infer_architecture(model.state_dict())
    assert found["backbone"] == "resnet18"
    assert found["fpn_channels"] == 32
    assert found["num_classes"] == 2
    assert (found["num_anchors"], found["head_norm"]) == (9, "none")
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_resolve_device_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
