"""The network behind a :class:`~deepforest_lite.Detector`: built new, from a checkpoint or an exported file.

:class:`Network` is what a ``Detector`` holds: the network, its labels, its
settings (the thresholds read live from the network) and provenance.
:func:`new_network` builds the RetinaNet of a new ``Detector``, with ResNet
backbone weights when asked (a state dict file, or torchvision's ImageNet
weights). :func:`load_network` is what :func:`~deepforest_lite.load_model` does
before it wraps the result in a ``Detector``: our checkpoints, DeepForest's
formats, hub and bundled names go through
:func:`~deepforest_lite.checkpoint.load_checkpoint` and
:func:`network_from_checkpoint` (the RetinaNet the checkpoint describes, its
weights checked to fit it); ONNX and TorchScript files written by
:meth:`Detector.export <deepforest_lite.Detector.export>` through
:func:`network_from_exported` (an :class:`~deepforest_lite.engines.ExportedRetinaNet`
that predicts but cannot be trained or saved).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from . import checkpoint as ckpt
from .compat import DeepForestAttributes
from .config import ModelConfig
from .downloads import imagenet_backbone_weights
from .errors import CheckpointError, InvalidInputError
from .labels import LabelMap
from .model import build_retinanet, load_backbone_weights, resolve_device
from .tensorfile import read_state_dict

__all__ = ["Network", "load_network", "network_from_checkpoint", "network_from_exported", "new_network"]

N = TypeVar("N", bound="Network")


class Network(DeepForestAttributes):
    """A network with its labels, settings and provenance: the state a :class:`~deepforest_lite.Detector` holds.

    ``Detector`` subclasses it with the methods that build, save, export,
    predict and train; the functions of this module return a plain ``Network``
    that a ``Detector`` adopts.

    Attributes:
        model: the torchvision RetinaNet (in eval mode, on its device), or an
            :class:`~deepforest_lite.engines.ExportedRetinaNet` for an exported file.
        label_map: class names in id order.
        metadata: provenance stored with the weights (``source``, ``training``...).
    """

    def __init__(
        self, model: nn.Module, label_map: LabelMap, config: ModelConfig, metadata: dict[str, Any] | None = None
    ) -> None:
        self.model: Any = model  # a RetinaNet or an ExportedRetinaNet: torchvision's attribute names either way
        self.label_map = label_map
        self._config = config
        self.metadata: dict[str, Any] = dict(metadata or {})

    def _adopt(self, other: Network) -> None:
        """Take over ``other``'s network, labels, settings and metadata."""
        self.model, self.label_map, self._config, self.metadata = (
            other.model, other.label_map, other._config, other.metadata
        )

    # ------------------------------------------------------------------ settings

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in id order."""
        return self.label_map.names

    @property
    def config(self) -> ModelConfig:
        """The model's settings now (thresholds read live from the network)."""
        return dataclasses.replace(
            self._config,
            score_threshold=float(self.model.score_thresh),
            nms_threshold=float(self.model.nms_thresh),
            detections_per_image=int(self.model.detections_per_img),
        )

    @property
    def gsd(self) -> float | None:
        """Ground sample distance (m per pixel) of the imagery the model was trained at, or ``None``.

        Stored in every checkpoint. Tiled prediction resamples rasters of
        another GSD to it (:mod:`deepforest_lite.gsd`). May be set, e.g. for a
        model whose training GSD you know but its checkpoint does not say;
        ``None`` turns resampling off.
        """
        return self._config.gsd

    @gsd.setter
    def gsd(self, value: float | None) -> None:
        self._config = dataclasses.replace(self._config, gsd=value)

    @property
    def score_threshold(self) -> float:
        """Boxes scoring below this are dropped, in [0, 1]."""
        return float(self.model.score_thresh)

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self.model.score_thresh = dataclasses.replace(self.config, score_threshold=value).score_threshold

    @property
    def nms_threshold(self) -> float:
        """IoU above which a lower-scoring box of the same class in one window is suppressed."""
        return float(self.model.nms_thresh)

    @nms_threshold.setter
    def nms_threshold(self, value: float) -> None:
        self.model.nms_thresh = dataclasses.replace(self.config, nms_threshold=value).nms_threshold

    @property
    def detections_per_image(self) -> int:
        """At most this many boxes per image or window."""
        return int(self.model.detections_per_img)

    @detections_per_image.setter
    def detections_per_image(self, value: int) -> None:
        self.model.detections_per_img = dataclasses.replace(
            self.config, detections_per_image=value
        ).detections_per_image

    @property
    def device(self) -> torch.device:
        """Where the weights are (the CPU for a model loaded from an ONNX file)."""
        from .engines import model_device

        return model_device(self.model)

    @property
    def exported_from(self) -> str | None:
        """The ONNX or TorchScript file this detector was loaded from, or ``None`` for torch weights."""
        from .engines import ExportedRetinaNet

        return self.model.source if isinstance(self.model, ExportedRetinaNet) else None

    def to(self: N, device: str | torch.device) -> N:
        """Move the weights to ``device``; returns ``self``."""
        self.model.to(resolve_device(device))
        return self

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(labels={list(self.labels)}, backbone={c.backbone!r}, "
            f"score_threshold={c.score_threshold}, nms_threshold={c.nms_threshold}, device='{self.device}')"
        )

    def _require_weights(self, action: str) -> None:
        if self.exported_from is not None:
            raise InvalidInputError(
                f"Cannot {action} a detector loaded from the exported file {self.exported_from!r}: it holds no "
                "torch weights; load the checkpoint it was exported from."
            )


def new_network(
    label_map: LabelMap,
    config: ModelConfig,
    backbone_weights: str | os.PathLike | None = None,
    device: str | torch.device | None = "auto",
) -> Network:
    """A new RetinaNet for ``label_map`` and ``config``, on ``device``, in eval mode.

    ``backbone_weights``: ``None`` (torchvision's random initialisation), a
    path to a torchvision ResNet state dict (``.pth``/``.safetensors``), or
    ``"imagenet"`` (downloads torchvision's ImageNet weights for ``config.backbone``).
    """
    model = build_retinanet(config, len(label_map))
    if backbone_weights is not None:
        if str(backbone_weights) == "imagenet":
            weights = imagenet_backbone_weights(config.backbone)
        else:
            weights = read_state_dict(backbone_weights)
        load_backbone_weights(model, weights)
    model.to(resolve_device(device)).eval()
    return Network(model, label_map, config)


def load_network(
    source: str | os.PathLike | None,
    labels: Sequence[str] | None = None,
    *,
    revision: str | None = None,
    device: str | torch.device | None = "auto",
) -> Network:
    """The network of ``source``: an exported file, else anything :func:`~deepforest_lite.checkpoint.load_checkpoint` reads."""
    from .export import exported_format

    if source is not None and exported_format(Path(os.fspath(source)).expanduser()) is not None:
        return network_from_exported(Path(os.fspath(source)).expanduser(), labels, device)
    return network_from_checkpoint(ckpt.load_checkpoint(source, labels, revision=revision), device)


def network_from_checkpoint(checkpoint: ckpt.Checkpoint, device: str | torch.device | None = "auto") -> Network:
    """Build the RetinaNet ``checkpoint.config`` describes and load its weights (all must fit, none be left over).

    Raises:
        CheckpointError: a tensor's shape does not fit the model (e.g. other
            labels than the weights were trained for), or tensors are missing
            or left over (an unsupported architecture).
    """
    model = build_retinanet(checkpoint.config, len(checkpoint.label_map))
    source = checkpoint.metadata.get("source", "the checkpoint")
    try:
        missing, unexpected = model.load_state_dict(checkpoint.state_dict, strict=False)
    except RuntimeError as exc:  # tensor shapes that do not fit
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise CheckpointError(
            f"The weights from {source!r} do not fit the model they describe ({detail[:200]}); "
            "check the labels given for this file."
        ) from exc
    if missing or unexpected:
        raise CheckpointError(
            f"The weights from {source!r} do not fit the model they describe (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); the file may be from an unsupported architecture."
        )
    model.to(resolve_device(device)).eval()
    return Network(model, checkpoint.label_map, checkpoint.config, dict(checkpoint.metadata))


def network_from_exported(path: Path, labels: Sequence[str] | None, device: str | torch.device | None) -> Network:
    """An :class:`~deepforest_lite.engines.ExportedRetinaNet` around the network of an exported file.

    ONNX files run on onnxruntime on the CPU (``device`` ``"auto"``/``None``:
    the CPU); TorchScript files on PyTorch on ``device``.

    Raises:
        CheckpointError: ``labels`` differ from those the file was exported for.
        InvalidInputError: an ONNX file without onnxruntime installed.
    """
    from .engines import ExportedRetinaNet, OnnxRuntimeNetwork, onnxruntime_available
    from .export import read_exported
    from .model import build_anchor_generator, build_transform

    exported = read_exported(path)
    if labels is not None and tuple(labels) != exported.label_map.names:
        raise CheckpointError(
            f"{str(path)!r} was exported for the labels {list(exported.label_map.names)}, not {list(labels)}; "
            "leave labels out."
        )
    config = exported.config
    if exported.format == "onnx":
        if not onnxruntime_available():
            raise InvalidInputError(
                f"{str(path)!r} is an ONNX model, which needs the onnxruntime and onnx packages; "
                "run `pip install onnxruntime onnx`, or load the model's checkpoint."
            )
        network: Any = OnnxRuntimeNetwork(exported.payload)
        engine, target = "onnxruntime", torch.device("cpu") if str(device) in ("auto", "None") else resolve_device(device)
    else:
        network, engine, target = exported.payload, "torch", resolve_device(device)
    model = ExportedRetinaNet(
        network, engine, build_transform(config), build_anchor_generator(config),
        num_classes=len(exported.label_map), score_thresh=config.score_threshold,
        nms_thresh=config.nms_threshold, detections_per_img=config.detections_per_image,
        topk_candidates=config.topk_candidates, source=str(path),
        onnx=exported.payload if exported.format == "onnx" else None,
    )
    metadata = {k: v for k, v in exported.metadata.items() if k not in ("labels", "model")}
    metadata["source"] = str(path)
    return Network(model.check("auto", "fp32", target), exported.label_map, config, metadata)
