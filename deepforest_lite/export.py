"""Exporting a detector's network to ONNX or TorchScript, and reading such files back.

**What is exported** is *the network*: the ResNet backbone, the FPN (P3-P7) and
the convolutions of both RetinaNet heads. What happens before it (normalising,
resizing, padding a batch: the model's input transform) and after it (anchor
decoding, top-k, per-class NMS, scaling boxes back, merging windows) is not in
the file: deepforest_lite runs those steps with torchvision's own code on every
engine, so boxes are computed the same way whichever engine ran the network.

**Input** ``images``: float32 ``[batch, 3, height, width]``, RGB normalised with
the model's ``image_mean``/``image_std``, at the network's input scale (after the
model's resize), zero-padded so height and width are multiples of 32. Batch,
height and width are dynamic (the network is fully convolutional).

**Outputs**, one pair per pyramid level ``p3`` .. ``p7`` (strides 8 .. 128 px of
the network input):

* ``cls_logits_pN``: ``[batch, A * C, h, w]`` raw class logits (the sigmoid
  gives the score) of the ``A`` anchors at each location for ``C`` classes;
* ``bbox_regression_pN``: ``[batch, A * 4, h, w]`` box deltas ``(dx, dy, dw,
  dh)`` per anchor, decoded with torchvision's ``BoxCoder`` (weights 1, 1, 1, 1).

Channel ``a * C + c`` holds anchor ``a``, class ``c`` (``a * 4 + k`` for deltas),
as in torchvision's RetinaNet heads.

**Metadata** (everything prediction needs) is one JSON document, stored under
the key ``"deepforest_lite"`` in the ONNX model's ``metadata_props``, or as
the extra file ``deepforest_lite.json`` of a TorchScript archive::

    {"format_version": 1, "package_version": "0.1.0", "format": "onnx",
     "labels": ["Tree"],                       # class id order
     "model": {... every ModelConfig field: thresholds, input scale, anchors ...},
     "anchors": {"sizes": [[16, 20, 25], ...], "aspect_ratios": [[0.5, 1.0, 2.0], ...]},
     "input": {...}, "outputs": [...]}         # the contract above, for other tools

ONNX files are written with ``torch.onnx``'s TorchScript-based exporter (opset
:data:`OPSET`) and need only ``onnx`` to add the metadata; TorchScript files
with ``torch.jit.script``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ._version import __version__
from .config import ModelConfig
from .errors import CheckpointError, InvalidInputError
from .files import atomic_write
from .labels import LabelMap

if TYPE_CHECKING:
    from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead

__all__ = [
    "EXPORT_FORMATS",
    "OPSET",
    "LEVELS",
    "RetinaNetNetwork",
    "ExportedFile",
    "export_metadata",
    "onnx_bytes",
    "export_model",
    "exported_format",
    "read_exported",
    "weights_hash",
]

#: ``format=`` values of :func:`export_model`.
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript")
#: ONNX operator set the files are written with.
OPSET = 17
#: Names of the pyramid levels, in output order.
LEVELS: tuple[str, ...] = ("p3", "p4", "p5", "p6", "p7")
FORMAT_VERSION = 1
METADATA_KEY = "deepforest_lite"
_TORCHSCRIPT_EXTRA = "deepforest_lite.json"
#: The size of the example batch traced at export (any size works afterwards).
_EXAMPLE_SHAPE = (1, 3, 256, 256)


class RetinaNetNetwork(nn.Module):
    """A RetinaNet's backbone, FPN and head convolutions; shares (does not copy) their weights.

    ``forward(images: FloatTensor[B, 3, H, W])`` (normalised, H and W multiples
    of 32) returns ``2 * L`` maps for the ``L`` pyramid levels: the class-logit
    maps ``[B, A * C, h_l, w_l]`` of every level, then the box-delta maps
    ``[B, A * 4, h_l, w_l]``. The values are exactly those torchvision's
    ``RetinaNetHead`` computes before it flattens and concatenates them.
    """

    def __init__(self, backbone: nn.Module, head: RetinaNetHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.cls_conv = head.classification_head.conv
        self.cls_logits = head.classification_head.cls_logits
        self.bbox_conv = head.regression_head.conv
        self.bbox_reg = head.regression_head.bbox_reg

    def forward(self, images: Tensor) -> list[Tensor]:
        """Raw head outputs of a (B, 3, H, W) batch: class logits and box deltas per FPN level."""
        features = list(self.backbone(images).values())
        logits = [self.cls_logits(self.cls_conv(f)) for f in features]
        deltas = [self.bbox_reg(self.bbox_conv(f)) for f in features]
        return logits + deltas


@dataclass
class ExportedFile:
    """An exported file read back.

    Attributes:
        path: the file.
        format: ``"onnx"`` or ``"torchscript"``.
        label_map: class names in id order.
        config: the model's settings at export time.
        metadata: the whole JSON document (see the module docstring).
        payload: the ONNX model's bytes, or the loaded TorchScript module.
    """

    path: Path
    format: str
    label_map: LabelMap
    config: ModelConfig
    metadata: dict[str, Any]
    payload: Any


def output_names(levels: int = len(LEVELS)) -> list[str]:
    """``cls_logits_p3`` .. then ``bbox_regression_p3`` .. for ``levels`` levels."""
    names = LEVELS[:levels]
    return [f"cls_logits_{n}" for n in names] + [f"bbox_regression_{n}" for n in names]


def export_metadata(model: RetinaNet, label_map: LabelMap, config: ModelConfig, fmt: str) -> dict[str, Any]:
    """The JSON document stored with an export (see the module docstring).

    ``config`` is serialised field by field (:func:`dataclasses.asdict`), so every
    :class:`~deepforest_lite.config.ModelConfig` field travels, present and future.
    """
    anchors = model.anchor_generator
    return {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "format": fmt,
        "labels": list(label_map.names),
        "model": dataclasses.asdict(config),
        "anchors": {
            "sizes": [list(map(int, s)) for s in anchors.sizes],
            "aspect_ratios": [list(map(float, r)) for r in anchors.aspect_ratios],
            "per_location": int(anchors.num_anchors_per_location()[0]),
        },
        "input": {
            "name": "images",
            "shape": ["batch", 3, "height", "width"],
            "dtype": "float32",
            "meaning": "RGB in [0, 1] normalised with model.image_mean / image_std, resized by the model's "
            "resize rule, zero-padded to multiples of 32",
        },
        "outputs": output_names(len(anchors.sizes)),
    }


def onnx_bytes(model: RetinaNet, metadata: Mapping[str, Any] | None = None) -> bytes:
    """The network of the torchvision RetinaNet ``model`` as an ONNX model (dynamic batch and image size).

    ``metadata`` (a JSON-serialisable dict) is stored under :data:`METADATA_KEY`.
    The model's weights are exported as they are, in float32, from the CPU; the
    model itself is left where it was.
    """
    import onnx

    network = _cpu_network(model)
    levels = len(model.anchor_generator.sizes)
    names = output_names(levels)
    dynamic = {"images": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({n: {0: "batch", 2: f"{n}_height", 3: f"{n}_width"} for n in names})
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices
        torch.onnx.export(
            # the TorchScript-based exporter (dynamo=False) writes to file objects too; torch types only paths
            network, (torch.zeros(_EXAMPLE_SHAPE),), buffer, dynamo=False, opset_version=OPSET,  # type: ignore[arg-type]
            input_names=["images"], output_names=names, dynamic_axes=dynamic, do_constant_folding=True,
        )
    proto = onnx.load_model_from_string(buffer.getvalue())
    proto.producer_name = "deepforest-lite"
    proto.producer_version = __version__
    if metadata is not None:
        entry = proto.metadata_props.add()
        entry.key = METADATA_KEY
        entry.value = json.dumps(metadata)
    return proto.SerializeToString()


def export_model(
    model: RetinaNet, label_map: LabelMap, config: ModelConfig, path: str | os.PathLike, fmt: str = "onnx"
) -> Path:
    """Write the network of ``model`` with its metadata to ``path`` (atomically).

    Args:
        model: a torchvision RetinaNet (e.g. ``Detector.model``).
        label_map: its class names.
        config: its settings now (thresholds included).
        path: the file to write (``.onnx`` for ONNX is usual; ``.pt`` or ``.torchscript`` for TorchScript).
        fmt: ``"onnx"`` or ``"torchscript"``.
    """
    if fmt not in EXPORT_FORMATS:
        raise InvalidInputError(f"Unknown export format {fmt!r}; choose one of {list(EXPORT_FORMATS)}.")
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"Cannot export the model to {str(path)!r}: it is a folder; give a file name.")
    metadata = export_metadata(model, label_map, config, fmt)
    if fmt == "onnx":
        data = onnx_bytes(model, metadata)
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
        return path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's notice that TorchScript is deprecated
        scripted = torch.jit.script(_cpu_network(model))
        extra = {_TORCHSCRIPT_EXTRA: json.dumps(metadata)}
        atomic_write(path, lambda tmp: torch.jit.save(scripted, tmp, _extra_files=extra))
    return path


def _cpu_network(model: RetinaNet) -> nn.Module:
    """An eval-mode float32 CPU copy of ``model``'s network (the original stays on its device)."""
    import copy

    network = RetinaNetNetwork(model.backbone, model.head)
    return copy.deepcopy(network).to("cpu", torch.float32).eval()


# --------------------------------------------------------------------------- reading


def exported_format(path: str | os.PathLike) -> str | None:
    """``"onnx"`` or ``"torchscript"`` when ``path`` is a file this module wrote, else ``None``.

    TorchScript archives are recognised by their ``deepforest_lite.json`` extra
    file; ONNX files by the ``.onnx`` extension.
    """
    path = Path(path)
    if not path.is_file():
        return None
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                if any(name.endswith(f"extra/{_TORCHSCRIPT_EXTRA}") for name in archive.namelist()):
                    return "torchscript"
        except (OSError, zipfile.BadZipFile):
            return None
    return None


def read_exported(path: str | os.PathLike) -> ExportedFile:
    """Read a file written by :func:`export_model` (its metadata, and the ONNX bytes or TorchScript module)."""
    from .config import from_mapping

    path = Path(path)
    fmt = exported_format(path)
    if fmt is None:
        raise CheckpointError(f"{str(path)!r} is not an exported deepforest_lite model (.onnx or TorchScript).")
    if fmt == "onnx":
        payload: Any = path.read_bytes()
        metadata = _onnx_metadata(payload, path)
    else:
        extra = {_TORCHSCRIPT_EXTRA: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                payload = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as exc:  # noqa: BLE001  torch raises RuntimeError subclasses of several kinds
            raise CheckpointError(
                f"Cannot read {str(path)!r} as TorchScript ({str(exc).splitlines()[0][:160]}); "
                "the file may be corrupt: export it again."
            ) from exc
        metadata = json.loads(extra[_TORCHSCRIPT_EXTRA])
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} uses export format version {version!r}, newer than this deepforest-lite "
            f"understands ({FORMAT_VERSION}); upgrade deepforest-lite."
        )
    config = from_mapping(ModelConfig, metadata["model"], source=str(path))
    return ExportedFile(path, fmt, LabelMap(metadata["labels"]), config, metadata, payload)


def _onnx_metadata(data: bytes, path: Path) -> dict[str, Any]:
    import onnx

    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001  protobuf DecodeError and onnx errors
        raise CheckpointError(
            f"Cannot read {str(path)!r} as an ONNX model ({str(exc).splitlines()[0][:160] if str(exc) else exc!r}); "
            "the file may be corrupt: export it again."
        ) from exc
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise CheckpointError(
        f"{str(path)!r} is an ONNX model without deepforest_lite's metadata (labels, thresholds, input scale); "
        "load ONNX files written by Detector.export or `deepforest-lite export`."
    )


def weights_hash(model: nn.Module) -> str:
    """SHA-256 (hex) of ``model``'s state (names, dtypes, shapes and values) and of the exporter's versions.

    Two models with this hash export to the same network file.
    """
    digest = hashlib.sha256()
    digest.update(f"deepforest_lite {__version__} torch {torch.__version__} opset {OPSET}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name} {value.dtype} {tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
