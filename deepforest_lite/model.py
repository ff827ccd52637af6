"""Building the torchvision RetinaNet: ResNet backbone, FPN P3-P7, anchors, focal-loss heads.

The network follows torchvision's ``retinanet_resnet50_fpn`` (the architecture
of DeepForest's published models) with every choice taken from a
:class:`~deepforest_lite.config.ModelConfig`:

* backbone: ResNet-18/34/50/101, stages 2-4 feed a feature pyramid whose P6
  and P7 come from P5 (``LastLevelP6P7``), ``fpn_channels`` channels per level;
* anchors: base sizes ``anchor_sizes`` (one per level P3..P7) times the
  scales 2^0, 2^(1/3), 2^(2/3) and aspect ratios 0.5, 1, 2 (9 per location);
* heads: torchvision's RetinaNet classification head (sigmoid focal loss,
  ``num_classes`` outputs per anchor, no background class) and box regression
  head;
* input transform: RGB in [0, 1] is normalised with ``image_mean``/``image_std``
  and resized either so the short side is ``min_size`` px (``resize="short_side"``,
  DeepForest's behaviour) or by ``scale_factor`` (``resize="scale"``). Boxes are
  returned in the coordinates of the image that was passed in.

Tensor names in the state dict are torchvision's (``backbone.body.*``,
``backbone.fpn.*``, ``head.classification_head.*``, ``head.regression_head.*``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetClassificationHead, RetinaNetHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

from .config import GROUPS, ModelConfig
from .errors import CheckpointError, InvalidInputError

__all__ = [
    "build_retinanet",
    "build_anchor_generator",
    "build_transform",
    "load_backbone_weights",
    "replace_classification_head",
    "set_trainable_backbone_layers",
    "ScaleTransform",
    "count_parameters",
    "infer_architecture",
    "resolve_device",
]

_STAGES = ["layer4", "layer3", "layer2", "layer1", "conv1"]


class ScaleTransform(GeneralizedRCNNTransform):
    """torchvision's detection transform, resizing by a fixed factor instead of to a size.

    ``factor == 1`` feeds the image at its native resolution. Images of one
    batch are padded to a common size divisible by 32, as in torchvision.
    """

    def __init__(self, factor: float, image_mean: list[float], image_std: list[float]) -> None:
        super().__init__(min_size=1, max_size=1, image_mean=image_mean, image_std=image_std)
        self.factor = float(factor)

    def resize(
        self, image: Tensor, target: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, dict[str, Tensor] | None]:
        """Scale ``image`` (``C x H x W``) and its target boxes by the fixed factor."""
        if self.factor == 1.0:
            return image, target
        h, w = image.shape[-2:]
        image = nn.functional.interpolate(
            image[None],
            scale_factor=self.factor,
            mode="bilinear",
            recompute_scale_factor=True,
            align_corners=False,
        )[0]
        if target is not None and "boxes" in target:
            target["boxes"] = resize_boxes(target["boxes"], (h, w), image.shape[-2:])
        return image, target

    def __repr__(self) -> str:
        return f"{type(self).__name__}(factor={self.factor}, mean={self.image_mean}, std={self.image_std})"


def build_retinanet(config: ModelConfig, num_classes: int) -> RetinaNet:
    """A RetinaNet for ``num_classes`` classes with randomly initialised weights.

    The ResNet body is initialised as torchvision does (no pretrained weights;
    load them with :func:`load_backbone_weights`).
    """
    norm_layer = FrozenBatchNorm2d if config.frozen_batchnorm else nn.BatchNorm2d
    body = getattr(torchvision.models, config.backbone)(weights=None, norm_layer=norm_layer)
    stage2 = body.inplanes // 8  # channels out of layer1 (64 for resnet18/34, 256 for resnet50/101)
    backbone = BackboneWithFPN(
        body,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=[stage2 * 2, stage2 * 4, stage2 * 8],
        out_channels=config.fpn_channels,
        extra_blocks=LastLevelP6P7(config.fpn_channels, config.fpn_channels),
    )
    anchors = build_anchor_generator(config)
    head = RetinaNetHead(
        config.fpn_channels, anchors.num_anchors_per_location()[0], num_classes, norm_layer=_head_norm(config)
    )
    model = RetinaNet(
        backbone,
        num_classes=num_classes,
        min_size=config.min_size,
        max_size=config.max_size,
        image_mean=list(config.image_mean),
        image_std=list(config.image_std),
        anchor_generator=anchors,
        head=head,
        score_thresh=config.score_threshold,
        nms_thresh=config.nms_threshold,
        detections_per_img=config.detections_per_image,
        topk_candidates=config.topk_candidates,
    )
    if config.resize == "scale":
        model.transform = build_transform(config)
    set_trainable_backbone_layers(model, config.trainable_backbone_layers)
    return model


def build_anchor_generator(config: ModelConfig) -> AnchorGenerator:
    """The anchors of ``config``.

    Each base size in ``anchor_sizes`` (P3..P7) times 2^0, 2^(1/3), 2^(2/3),
    aspect ratios 0.5, 1, 2 (9 per location), in px of the network's input.
    """
    anchor_sizes = tuple(
        (int(s), int(s * 2 ** (1.0 / 3)), int(s * 2 ** (2.0 / 3))) for s in config.anchor_sizes
    )
    return AnchorGenerator(anchor_sizes, ((0.5, 1.0, 2.0),) * len(anchor_sizes))


def build_transform(config: ModelConfig) -> GeneralizedRCNNTransform:
    """The input transform of ``config``: normalisation, resizing (``config.resize``), batching padded to /32."""
    if config.resize == "scale":
        return ScaleTransform(config.scale_factor, list(config.image_mean), list(config.image_std))
    return GeneralizedRCNNTransform(
        config.min_size, config.max_size, list(config.image_mean), list(config.image_std)
    )


def _head_norm(config: ModelConfig) -> Callable[[int], nn.Module] | None:
    return partial(nn.GroupNorm, GROUPS) if config.head_norm == "group" else None


def set_trainable_backbone_layers(model: RetinaNet, trainable_layers: int) -> None:
    """Let gradients reach only the last ``trainable_layers`` ResNet stages (0..5).

    The FPN and heads always train. With 5, the stem's batch norm trains too.
    """
    stages = _STAGES[:trainable_layers] + (["bn1"] if trainable_layers == 5 else [])
    for name, parameter in model.backbone.body.named_parameters():
        parameter.requires_grad_(any(name.startswith(stage) for stage in stages))


def load_backbone_weights(model: RetinaNet, state_dict: Mapping[str, Tensor]) -> None:
    """Copy ImageNet classification weights (a torchvision ResNet state dict) into the body.

    The classifier (``fc.*``) is ignored; any other missing or unexpected tensor
    is an error, so weights of another ResNet depth are refused.
    """
    weights = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    if isinstance(model.backbone.body.bn1, FrozenBatchNorm2d):
        weights = {k: v for k, v in weights.items() if not k.endswith("num_batches_tracked")}
    result = model.backbone.body.load_state_dict(weights, strict=False)
    problems = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if problems or result.unexpected_keys:
        raise CheckpointError(
            "The backbone weights do not fit this ResNet "
            f"(missing {problems[:3]}..., unexpected {result.unexpected_keys[:3]}...); "
            "pass ImageNet weights of the same depth as the backbone."
        )


def replace_classification_head(model: RetinaNet, num_classes: int) -> None:
    """Give ``model`` a fresh classification head for ``num_classes`` classes.

    The backbone, FPN and box-regression head keep their weights; the new head
    is initialised as torchvision does (prior probability 0.01).
    """
    old = model.head.classification_head
    in_channels = old.conv[0][0].in_channels
    norm = old.conv[0][1] if len(old.conv[0]) > 2 else None  # conv, [norm,] ReLU
    norm_layer = partial(nn.GroupNorm, norm.num_groups) if isinstance(norm, nn.GroupNorm) else None
    new = RetinaNetClassificationHead(in_channels, old.num_anchors, num_classes, norm_layer=norm_layer)
    device = next(old.parameters()).device
    model.head.classification_head = new.to(device)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def infer_architecture(state_dict: Mapping[str, Tensor]) -> dict[str, object]:
    """Read backbone depth, FPN width, class and anchor counts off a RetinaNet state dict.

    Returns a dict with ``backbone``, ``fpn_channels``, ``num_classes``,
    ``num_anchors``, ``head_norm`` and ``frozen_batchnorm`` (``True`` when the state dict has no
    ``num_batches_tracked`` buffers, as FrozenBatchNorm2d saves).
    """
    keys = set(state_dict)
    try:
        bottleneck = "backbone.body.layer1.0.conv3.weight" in keys
        layer3 = {k.split(".")[3] for k in keys if k.startswith("backbone.body.layer3.")}
        depth = {(False, 2): "resnet18", (False, 6): "resnet34", (True, 6): "resnet50", (True, 23): "resnet101"}[
            (bottleneck, len(layer3))
        ]
        reg = state_dict["head.regression_head.bbox_reg.weight"]
        cls = state_dict["head.classification_head.cls_logits.weight"]
    except KeyError:
        raise CheckpointError(
            "The weights are not those of a torchvision RetinaNet with a ResNet-18/34/50/101 backbone "
            "(expected keys such as 'backbone.body.layer1.0.conv1.weight' and "
            "'head.classification_head.cls_logits.weight'); pass a RetinaNet checkpoint."
        ) from None
    num_anchors = reg.shape[0] // 4
    return {
        "backbone": depth,
        "fpn_channels": int(reg.shape[1]),
        "num_anchors": int(num_anchors),
        "num_classes": int(cls.shape[0] // num_anchors),
        "frozen_batchnorm": not any(k.endswith("num_batches_tracked") for k in keys),
        "head_norm": "group" if "head.classification_head.conv.0.1.weight" in keys else "none",
    }


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` -> CUDA when available, else CPU; other names as torch understands them."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInputError(
            f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            f"Device {device!r} was asked for but CUDA is not available here; use device='cpu'."
        )
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise InvalidInputError(
            f"Device {device!r} was asked for but this machine has {torch.cuda.device_count()} CUDA device(s); "
            "use 'cuda:0' or 'auto'."
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError(f"Device {device!r} (Apple GPU) is not available here; use device='cpu'.")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise InvalidInputError(
            f"Device {device!r} cannot run the model (it holds no data or is not supported); "
            "use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        )
    return resolved
