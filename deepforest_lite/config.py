"""Every default in one place, as frozen dataclasses.

``ModelConfig`` describes the network and its post-processing and is stored in
every checkpoint; ``PredictConfig`` holds the tiling settings of
``predict_tile``; ``TrainConfig`` the training run. :func:`from_mapping` builds
any of them from a dict (e.g. a YAML file) and rejects unknown keys with a
message that lists the valid ones. This module is torch-free.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .checks import check_range, in_range
from .errors import ConfigError, InvalidInputError

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRECISIONS",
    "ModelConfig",
    "PredictConfig",
    "TrainConfig",
    "check_keys",
    "from_mapping",
    "load_config_file",
]

BACKBONES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101")
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
RESIZE_MODES: tuple[str, ...] = ("short_side", "scale")
HEAD_NORMS: tuple[str, ...] = ("none", "group")
#: what runs the network in prediction (see deepforest_lite.engines)
ENGINES: tuple[str, ...] = ("auto", "torch", "onnxruntime", "openvino")

#: prediction precisions: float32, or the network under bfloat16 / float16 autocast (float16 on CUDA only)
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
#: the precisions each engine runs at (``"auto"`` and ``"torch"``: all of them)
ENGINE_PRECISIONS: dict[str, tuple[str, ...]] = {"onnxruntime": ("fp32",), "openvino": ("fp32", "bf16")}

GROUPS = 32  # GroupNorm groups in the heads with head_norm="group"

T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    """The RetinaNet's architecture and post-processing; stored in every checkpoint.

    The defaults are DeepForest 2.1.0's: ResNet-50, 256-channel FPN P3-P7,
    torchvision's default anchors (base sizes 32..512 px at P3..P7, three
    scales and aspect ratios 0.5/1/2 each), windows resized so the short side
    is 800 px (long side at most 1333 px), ImageNet normalisation of RGB in
    [0, 1], score threshold 0.1 and NMS IoU threshold 0.05.

    Attributes:
        backbone: one of :data:`BACKBONES`.
        score_threshold: boxes scoring below it are dropped, in [0, 1].
        nms_threshold: IoU above which a lower-scoring box of the same class is
            suppressed within one image, in [0, 1].
        detections_per_image: at most this many boxes per image (or window).
        topk_candidates: boxes kept per FPN level before NMS.
        resize: ``"short_side"`` (resize every image so its short side is
            ``min_size`` px, long side at most ``max_size`` px: DeepForest's
            behaviour) or ``"scale"`` (multiply both sides by ``scale_factor``).
        min_size, max_size: sizes in px for ``resize="short_side"``.
        scale_factor: factor for ``resize="scale"`` (1.0 = native resolution).
        anchor_sizes: base anchor side in px (network input scale) for P3..P7.
        fpn_channels: channels of every FPN level and of the heads.
        head_norm: ``"none"`` (torchvision's and DeepForest's heads) or
            ``"group"`` (GroupNorm after each head convolution, as torchvision's
            RetinaNet v2; trains better from scratch).
        frozen_batchnorm: ``True`` uses torchvision's FrozenBatchNorm2d in the
            backbone (pretrained backbones, DeepForest checkpoints); ``False``
            trainable BatchNorm2d (training from scratch).
        trainable_backbone_layers: 0..5 ResNet stages that receive gradients.
        image_mean, image_std: per-channel normalisation of RGB in [0, 1].
        gsd: ground sample distance of the imagery the model was trained at,
            in metres per pixel (e.g. 0.1 for NEON's 10 cm imagery), or
            ``None`` when unknown. Tiled prediction resamples rasters of
            another GSD to it (see :mod:`deepforest_lite.gsd`).
    """

    backbone: str = "resnet50"
    score_threshold: float = 0.1
    nms_threshold: float = 0.05
    detections_per_image: int = 300
    topk_candidates: int = 1000
    resize: str = "short_side"
    min_size: int = 800
    max_size: int = 1333
    scale_factor: float = 1.0
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    fpn_channels: int = 256
    head_norm: str = "none"
    frozen_batchnorm: bool = True
    trainable_backbone_layers: int = 3
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD
    gsd: float | None = None

    @classmethod
    def for_weights(cls, pretrained: bool, **options: Any) -> ModelConfig:
        """A new model's settings: defaults for a pretrained backbone or for random weights, then ``options``.

        Over pretrained weights (as torchvision does): frozen batch norm, three
        trainable ResNet stages, torchvision's heads. From random weights
        (measured in docs/training.md): trainable batch norm, all five stages,
        GroupNorm heads (``head_norm="group"``), which learn planted objects at
        the same recall with about twice the precision.
        """
        defaults: dict[str, Any] = {
            "frozen_batchnorm": pretrained,
            "trainable_backbone_layers": 3 if pretrained else 5,
            "head_norm": "none" if pretrained else "group",
        }
        return cls(**{**defaults, **options})

    def __post_init__(self) -> None:
        _check_gsd("gsd", self.gsd)
        if self.backbone not in BACKBONES:
            raise InvalidInputError(
                f"Unknown backbone {self.backbone!r}; choose one of {list(BACKBONES)}."
            )
        _check_unit("score_threshold", self.score_threshold)
        _check_unit("nms_threshold", self.nms_threshold)
        _check_positive_int("detections_per_image", self.detections_per_image)
        _check_positive_int("topk_candidates", self.topk_candidates)
        if self.resize not in RESIZE_MODES:
            raise InvalidInputError(
                f"Unknown resize mode {self.resize!r}; choose one of {list(RESIZE_MODES)}."
            )
        _check_positive_int("min_size", self.min_size)
        _check_positive_int("max_size", self.max_size)
        check_range("scale_factor", self.scale_factor, 0, low_open=True, hint="1.0 keeps native resolution")
        if len(self.anchor_sizes) != 5 or not all(in_range(s, 1) for s in self.anchor_sizes):
            raise InvalidInputError(
                f"anchor_sizes needs five positive sizes in px (one per FPN level P3-P7), "
                f"got {self.anchor_sizes!r}."
            )
        _check_positive_int("fpn_channels", self.fpn_channels)
        if self.head_norm not in HEAD_NORMS:
            raise InvalidInputError(f"Unknown head_norm {self.head_norm!r}; choose one of {list(HEAD_NORMS)}.")
        if self.head_norm == "group" and self.fpn_channels % GROUPS:
            raise InvalidInputError(
                f"head_norm='group' needs fpn_channels divisible by {GROUPS}, got {self.fpn_channels}."
            )
        check_range("trainable_backbone_layers", self.trainable_backbone_layers, 0, 5, integer=True)


@dataclass(frozen=True)
class PredictConfig:
    """Settings of tiled prediction (:meth:`Detector.predict_tile`).

    Attributes:
        patch_size: window side in px (clipped to the raster's side per axis).
        patch_overlap: fraction of the window side shared by neighbours, in [0, 1).
        iou_threshold: IoU above which overlapping boxes from different windows
            are merged (the lower-scoring one is removed).
        class_aware_merge: merge only boxes with the same label (DeepForest
            merges across labels).
        batch_size: windows per forward pass.
        workers: DataLoader worker processes reading windows (0 = main process).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast on the torch
            engine, fp16 on CUDA only; ``"bf16"`` also on OpenVINO). Box decoding
            and NMS run in float32 either way.
        engine: what runs the network: ``"auto"`` (onnxruntime on the CPU in
            fp32 when it is installed, else torch), ``"torch"``,
            ``"onnxruntime"`` (CPU, fp32) or ``"openvino"`` (CPU, fp32 or bf16;
            the ``openvino`` extra); boxes are decoded, suppressed and
            merged by the same torchvision code on every engine. See
            :mod:`deepforest_lite.engines`.
        bands: three 1-based band numbers read as red, green, blue (needed for
            rasters with more than three non-alpha bands), or ``None``.
        value_range: fixed ``(low, high)`` mapped to 0..255 (or three such
            pairs, one per RGB band) instead of the default percentile stretch
            of non-``uint8`` rasters, or ``None``; see :mod:`deepforest_lite.raster`.
        gsd: the raster's ground sample distance in metres per pixel, for
            rasters without a usable CRS or to override the one read from the
            transform; ``None`` reads it from the file.
        rescale: resample windows to the model's GSD when both GSDs are known
            and differ by more than 10 % (:mod:`deepforest_lite.gsd`);
            ``False`` feeds raster pixels as they are.
    """

    patch_size: int = 400
    patch_overlap: float = 0.05
    iou_threshold: float = 0.15
    class_aware_merge: bool = False
    batch_size: int = 4
    workers: int = 0
    device: str = "auto"
    precision: str = "fp32"
    bands: tuple[int, int, int] | None = None
    value_range: tuple[float, float] | tuple[tuple[float, float], ...] | None = None
    engine: str = "auto"
    gsd: float | None = None
    rescale: bool = True

    def __post_init__(self) -> None:
        for name in ("bands", "value_range"):  # a list or array given: the tuple it stands for
            value = getattr(self, name)
            if isinstance(value, Iterable) and not isinstance(value, (tuple, str, bytes)):
                object.__setattr__(self, name, tuple(value))
        _check_gsd("gsd", self.gsd)
        if not isinstance(self.rescale, bool):
            raise InvalidInputError(f"rescale must be True or False, got {self.rescale!r}.")
        _check_positive_int("patch_size", self.patch_size)
        check_range(
            "patch_overlap", self.patch_overlap, 0, 1, high_open=True, kind="",
            hint="0.05 means neighbouring windows share 5 % of their side",
        )
        _check_unit("iou_threshold", self.iou_threshold)
        _check_positive_int("batch_size", self.batch_size)
        check_range("workers", self.workers, 0, integer=True, hint="0 reads windows in the main process")
        if self.bands is not None and (
            isinstance(self.bands, (str, bytes))
            or len(self.bands) != 3
            or not all(in_range(b, 1, integer=True) for b in self.bands)
        ):
            raise InvalidInputError(
                f"bands must be three 1-based band numbers (red, green, blue), got {self.bands!r}; "
                "e.g. bands=(1, 2, 3)."
            )
        if self.precision not in PRECISIONS:
            raise InvalidInputError(
                f"Unknown precision {self.precision!r}; choose one of {list(PRECISIONS)}."
            )
        if self.engine not in ENGINES:
            raise InvalidInputError(f"Unknown engine {self.engine!r}; choose one of {list(ENGINES)}.")
        engine_precisions = ENGINE_PRECISIONS.get(self.engine, PRECISIONS)
        if self.precision not in engine_precisions:
            raise InvalidInputError(
                f"engine={self.engine!r} runs at precision {list(engine_precisions)}, not {self.precision!r}; "
                "use engine='torch' (or 'auto') for it."
            )


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run; see :mod:`deepforest_lite.train`.

    The defaults (AdamW, learning rate 3e-4, batch size 2) were chosen by
    measurement on a planted-object task (docs/training.md): from scratch,
    40 epochs reached recall 0.97 where the earlier SGD 1e-3 / batch 4 found
    nothing.

    Attributes:
        epochs: passes over the training set.
        batch_size: images per step.
        lr: peak learning rate.
        optimizer: ``"adamw"`` or ``"sgd"``.
        weight_decay: L2 penalty.
        momentum: SGD momentum.
        lr_schedule: one of ``"constant"``, ``"cosine"``, ``"step"``, ``"plateau"``, ``"onecycle"``.
        warmup_steps: linear warm-up steps at the start.
        augment: an augmentation preset name (see :mod:`deepforest_lite.augment`).
        min_box_size: boxes smaller than this many px on a side after
            augmentation are dropped.
        workers: DataLoader workers.
        accelerator, devices, strategy, num_nodes, precision,
            accumulate_grad_batches: passed to Lightning's ``Trainer``.
        val_iou_threshold: IoU for validation box precision/recall.
        logger: ``"csv"`` or ``"tensorboard"``.
        seed: random seed for weights, augmentation and shuffling.
    """

    epochs: int = 10
    batch_size: int = 2
    lr: float = 3e-4
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    augment: str = "default"
    min_box_size: float = 2.0
    workers: int = 0
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    val_iou_threshold: float = 0.4
    logger: str = "csv"
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive_int("epochs", self.epochs)
        _check_positive_int("batch_size", self.batch_size)
        check_range("lr", self.lr, 0, low_open=True, hint="e.g. 3e-4")
        _check_positive_int("accumulate_grad_batches", self.accumulate_grad_batches)
        _check_unit("val_iou_threshold", self.val_iou_threshold)


def check_keys(cls: type, keys: Any, source: str = "config") -> None:
    """Raise :class:`ConfigError` naming the keys that are not fields of the dataclass ``cls``, and the valid ones."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(keys) - set(names))
    if unknown:
        from .compat import unknown_keys_hint

        raise ConfigError(
            f"Unknown key(s) {unknown} in {source}; valid keys for {cls.__name__} are {names}"
            f"{unknown_keys_hint(unknown, names)}."
        )


def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None, source: str = "config") -> T:
    """Build the dataclass ``cls`` from ``mapping``; unknown keys are an error.

    Lists are converted to tuples where the field is a tuple. ``source`` names
    where the mapping came from (a file path) for the error message.
    """
    mapping = dict(mapping or {})
    check_keys(cls, mapping, source)
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in mapping.items():
        if isinstance(value, list) and "tuple" in str(hints.get(key, "")):
            value = tuple(value)
        values[key] = value
    return cls(**values)


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (or JSON) file into a dict; errors name the file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"Config file {str(path)!r} does not exist; check the path.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {exc}".replace("\n", " ")) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {str(path)!r} must hold a mapping of keys to values, got {type(data).__name__}."
        )
    return data


def _check_gsd(name: str, value: Any) -> None:
    if value is not None:
        check_range(
            name, value, 0, low_open=True, kind="pixel size in metres",
            hint="e.g. 0.1 for 10 cm pixels, or None",
        )


def _check_unit(name: str, value: float) -> None:
    check_range(name, value, 0, 1)


def _check_positive_int(name: str, value: int) -> None:
    check_range(name, value, 0, low_open=True, integer=True, kind="integer")
