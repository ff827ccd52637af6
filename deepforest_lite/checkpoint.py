"""Checkpoints: our format written and read, DeepForest's formats read, bundled and hub names resolved.

**Our format** is a single safetensors file whose header metadata holds a JSON
document under the key ``"deepforest_lite"``::

    {"format_version": 1, "package_version": "0.1.0",
     "labels": ["Alive", "Dead"],            # id order
     "model": {... ModelConfig fields: backbone, thresholds, input scale, gsd ...},
     "weights_dtype": "float32",
     "training": {...}}                       # optional provenance

**DeepForest's formats** (read, never written):

* a Hugging Face style folder with ``model.safetensors`` + ``config.json``
  (1.x layout: tensor names prefixed ``model.``; 2.x layout: no prefix),
  labels from ``config.json``'s ``label_dict``;
* a Lightning ``.ckpt`` whose ``state_dict`` names are prefixed ``model.``,
  labels from ``hyper_parameters``' ``label_dict`` when present;
* a plain torchvision RetinaNet state dict ``.pt`` (e.g. the old ``NEON.pt``),
  including the old head names ``conv.0/2/4/6`` (renamed to ``conv.N.0``);
* a hub name such as ``weecology/deepforest-tree``, fetched with
  ``huggingface_hub`` into its cache (:mod:`deepforest_lite.downloads`).

Such weights get DeepForest 2.1.0's settings: ResNet-50 (read off the weights),
torchvision's default anchors, short side resized to 800 px (max 1333),
ImageNet normalisation, score threshold 0.1, NMS IoU 0.05.

**Ground sample distance.** ``ModelConfig.gsd`` (metres per pixel of the
training imagery) is stored in every checkpoint we write. A checkpoint written
before it existed loads with ``gsd=None`` (unknown: rasters are not
resampled), unless its training metadata records ``"gsd_m"`` (as
``scripts/train_default_model.py`` writes), which is then used. Imported
DeepForest checkpoints get :data:`~deepforest_lite.gsd.DEEPFOREST_GSD` (0.1 m:
DeepForest's tree model was trained on 0.1 m NEON imagery), except a
one-class ``Bird`` model (``weecology/deepforest-bird``), whose training GSD
DeepForest does not document: it gets ``None``. ``load_model(..., gsd=...)``
or ``Detector.gsd = ...`` overrides either.

Nothing here executes code from a file: safetensors, or
``torch.load(..., weights_only=True)`` (:func:`~deepforest_lite.tensorfile.read_state_dict`,
re-exported here); a file that needs full unpickling is refused with
:class:`~deepforest_lite.errors.UnsafeCheckpointError`. ImageNet backbone
weights come from :func:`~deepforest_lite.downloads.imagenet_backbone_weights`
(re-exported here too).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from ._version import __version__
from .config import ModelConfig, from_mapping
from .downloads import download_from_hub, imagenet_backbone_weights
from .errors import CheckpointError, InvalidInputError, MissingLabelsError
from .files import atomic_write, looks_like_path
from .gsd import DEEPFOREST_GSD
from .labels import LabelMap
from .model import infer_architecture
from .tensorfile import first_line, is_safetensors, read_state_dict, unreadable

__all__ = [
    "FORMAT_VERSION",
    "BUNDLED_MODELS",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "read_state_dict",
    "imagenet_backbone_weights",
]

FORMAT_VERSION = 1
_METADATA_KEY = "deepforest_lite"
_MODELS_DIR = Path(__file__).resolve().parent / "models"

#: Short names of the models shipped inside the package -> file in deepforest_lite/models/.
BUNDLED_MODELS: dict[str, str] = {"tree-lite": "tree-lite.safetensors"}
DEFAULT_MODEL = "tree-lite"

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_OLD_HEAD_KEY = re.compile(r"^(head\.(?:classification|regression)_head\.conv)\.(\d+)\.(weight|bias)$")


@dataclass
class Checkpoint:
    """What a checkpoint file holds, ready to build a model from.

    Attributes:
        state_dict: tensor name -> tensor (torchvision RetinaNet names, float32).
        label_map: the class names in id order.
        config: the architecture and post-processing settings.
        metadata: everything else stored with the weights (provenance, source).
    """

    state_dict: dict[str, Tensor]
    label_map: LabelMap
    config: ModelConfig
    metadata: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- writing


def save_checkpoint(
    path: str | os.PathLike,
    state_dict: Mapping[str, Tensor],
    label_map: LabelMap,
    config: ModelConfig,
    *,
    extra: Mapping[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write our checkpoint format atomically (temporary file, then rename).

    Args:
        path: destination file (any extension; ``.safetensors`` or ``.pt`` are usual).
        state_dict: the RetinaNet's tensors.
        label_map: class names in id order.
        config: the model's settings at save time.
        extra: JSON-serialisable provenance stored under ``"training"``.
        dtype: floating-point tensors are stored in this dtype (``torch.float16``
            halves the file; loading converts back to float32).
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"Cannot save the model to {str(path)!r}: it is a folder; give a file name.")
    metadata = {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "labels": list(label_map.names),
        "model": dataclasses.asdict(config),
        "weights_dtype": str(dtype).replace("torch.", ""),
        "training": dict(extra or {}),
    }
    tensors = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in state_dict.items()
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={_METADATA_KEY: json.dumps(metadata)}))
    return path


# --------------------------------------------------------------------------- reading


def load_checkpoint(
    source: str | os.PathLike | None = None,
    labels: Sequence[str] | None = None,
    *,
    revision: str | None = None,
) -> Checkpoint:
    """Read any supported checkpoint into a :class:`Checkpoint`.

    Args:
        source: a file or folder path, a bundled model name (``"tree-lite"``),
            a Hugging Face hub name (``"weecology/deepforest-tree"``), or ``None``
            for the bundled default model.
        labels: class names in id order for files that store none (DeepForest's
            plain state dicts); must agree in number with the weights.
        revision: hub revision (branch, tag or commit) for hub names.
    """
    if source is None:
        source = DEFAULT_MODEL
    text = os.fspath(source)
    if text in BUNDLED_MODELS:
        path = _MODELS_DIR / BUNDLED_MODELS[text]
        if not path.is_file():
            raise CheckpointError(
                f"The bundled model {text!r} is missing from this installation ({path}); reinstall deepforest-lite."
            )
        return _load_path(path, labels)
    path = Path(text).expanduser()
    if path.exists():
        return _load_path(path, labels)
    if looks_like_path(text):  # a folder part or a checkpoint extension: a file was meant
        raise CheckpointError(
            f"No such file or folder: {text!r}; check the path (a hub name looks like "
            "'weecology/deepforest-tree', with no file extension)."
        )
    if _HUB_NAME.match(text) and not text.startswith((".", "/")):
        return _load_path(download_from_hub(text, revision), labels, source_name=text)
    raise CheckpointError(
        f"No model file or folder at {text!r}, and it is neither a bundled model "
        f"({sorted(BUNDLED_MODELS)}) nor a hub name like 'weecology/deepforest-tree'; check the path."
    )


def _load_path(path: Path, labels: Sequence[str] | None, source_name: str | None = None) -> Checkpoint:
    source_name = source_name or str(path)
    if path.is_dir():
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise CheckpointError(
                f"The folder {str(path)!r} has no model.safetensors; pass a Hugging Face style model "
                "folder (model.safetensors + config.json) or a checkpoint file."
            )
        own = _own_metadata(weights)
        if own is not None:
            return _from_own(weights, own, labels)
        config_file = path / "config.json"
        hub_config = _read_json(config_file) if config_file.is_file() else {}
        return _from_deepforest(read_state_dict(weights), _label_dict(hub_config), labels, source_name)
    own = _own_metadata(path) if is_safetensors(path) else None
    if own is not None:
        return _from_own(path, own, labels)
    obj = read_state_dict(path)
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):  # Lightning checkpoint
        hparams = obj.get("hyper_parameters") or {}
        if "model_config" in hparams and "labels" in hparams:  # written by deepforest_lite's training
            return _from_training_state(obj["state_dict"], hparams, labels, source_name)
        return _from_deepforest(obj["state_dict"], _label_dict(hparams), labels, source_name)
    return _from_deepforest(obj, _label_dict(obj) if "label_dict" in obj else None, labels, source_name)


def _from_own(path: Path, metadata: dict[str, Any], labels: Sequence[str] | None) -> Checkpoint:
    from safetensors.torch import load_file

    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} uses checkpoint format version {version!r}, newer than this deepforest-lite "
            f"understands ({FORMAT_VERSION}); upgrade deepforest-lite."
        )
    label_map = LabelMap(metadata["labels"])
    if labels is not None and tuple(labels) != label_map.names:
        raise CheckpointError(
            f"{str(path)!r} was trained for the labels {list(label_map.names)}, not {list(labels)}; "
            "leave labels out, or retrain for new classes with Detector.fit."
        )
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise unreadable(path, first_line(exc)) from exc
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    model_settings = dict(metadata["model"])
    if "gsd" not in model_settings:  # written before checkpoints stored the GSD
        recorded = (metadata.get("training") or {}).get("gsd_m")
        if isinstance(recorded, (int, float)) and not isinstance(recorded, bool) and recorded > 0:
            model_settings["gsd"] = float(recorded)
    config = from_mapping(ModelConfig, model_settings, source=str(path))
    info = {k: v for k, v in metadata.items() if k not in ("labels", "model")}
    return Checkpoint(state, label_map, config, {**info, "source": str(path)})


def _from_training_state(
    raw: Mapping[str, Any], hparams: Mapping[str, Any], labels: Sequence[str] | None, source: str
) -> Checkpoint:
    """A Lightning checkpoint of our own training: architecture and labels from its hyper-parameters."""
    label_map = LabelMap(hparams["labels"])
    if labels is not None and tuple(labels) != label_map.names:
        raise CheckpointError(
            f"{source!r} was trained for the labels {list(label_map.names)}, not {list(labels)}; leave labels out."
        )
    config = from_mapping(ModelConfig, hparams["model_config"], source=source)
    return Checkpoint(_normalise_keys(raw), label_map, config, {"source": source, "lightning": True})


def _from_deepforest(
    raw: Mapping[str, Any],
    label_dict: Mapping[str, int] | None,
    labels: Sequence[str] | None,
    source: str,
) -> Checkpoint:
    state = _normalise_keys(raw)
    arch = infer_architecture(state)
    if arch["num_anchors"] != 9:
        raise CheckpointError(
            f"{source!r} has {arch['num_anchors']} anchors per location; only torchvision's default "
            "9 (3 sizes x 3 aspect ratios) are supported for imported checkpoints."
        )
    if labels is not None:
        label_map = LabelMap(labels)
    elif label_dict:
        label_map = LabelMap.from_dict(label_dict)
    else:
        raise MissingLabelsError(
            f"{source!r} stores no label names for its {arch['num_classes']} class(es); "
            "pass them, e.g. load_model(path, labels=['Tree']) (on the command line: --labels Tree).",
            num_classes=int(cast(int, arch["num_classes"])),
        )
    if len(label_map) != arch["num_classes"]:
        raise CheckpointError(
            f"{source!r} predicts {arch['num_classes']} class(es) but {len(label_map)} label(s) "
            f"{list(label_map.names)} were given; give one label per class."
        )
    config = ModelConfig(
        backbone=str(arch["backbone"]),
        fpn_channels=int(cast(int, arch["fpn_channels"])),
        frozen_batchnorm=bool(arch["frozen_batchnorm"]),
        head_norm=str(arch["head_norm"]),
        gsd=None if label_map.names == ("Bird",) else DEEPFOREST_GSD,
    )
    if config.frozen_batchnorm:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return Checkpoint(state, label_map, config, {"source": source, "imported_from": "deepforest"})


def _normalise_keys(raw: Mapping[str, Any]) -> dict[str, Tensor]:
    """Strip the ``model.`` prefix, keep tensors only, rename old head keys."""
    tensors = {k: v for k, v in raw.items() if isinstance(v, Tensor)}
    if tensors and all(k.startswith("model.") for k in tensors if not k.startswith(("backbone.", "head."))):
        prefixed = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        if prefixed:
            tensors = prefixed
    out: dict[str, Tensor] = {}
    for key, value in tensors.items():
        match = _OLD_HEAD_KEY.match(key)
        if match:
            prefix, index, kind = match.groups()
            key = f"{prefix}.{int(index) // 2}.0.{kind}"
        out[key] = value.float() if value.is_floating_point() else value
    return out


def _label_dict(config: Mapping[str, Any]) -> dict[str, int] | None:
    """DeepForest's ``label_dict`` from a config mapping (top level or nested under ``config``)."""
    for scope in (config, config.get("config") if isinstance(config, Mapping) else None):
        if isinstance(scope, Mapping) and isinstance(scope.get("label_dict"), Mapping):
            return dict(scope["label_dict"])
    return None


def _own_metadata(path: Path) -> dict[str, Any] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"Cannot read {str(path)!r} as safetensors ({exc}); the file may be corrupt.") from exc
    if _METADATA_KEY not in meta:
        return None
    try:
        metadata = json.loads(meta[_METADATA_KEY])
    except ValueError as exc:
        raise CheckpointError(
            f"The deepforest_lite metadata of {str(path)!r} is not valid JSON ({exc}); the file is damaged: "
            "save the model again (Detector.save) or use another copy."
        ) from exc
    missing = [k for k in ("format_version", "labels", "model") if not isinstance(metadata, dict) or k not in metadata]
    if missing or not isinstance(metadata.get("model"), dict) or not isinstance(metadata.get("labels"), list):
        raise CheckpointError(
            f"The deepforest_lite metadata of {str(path)!r} lacks or mangles {missing or ['labels', 'model']}; "
            "the file is damaged: save the model again (Detector.save) or use another copy."
        )
    return metadata


def _read_json(path: Path) -> dict[str, Any]:
    """A Hugging Face ``config.json`` as a dict; a broken one is a :class:`CheckpointError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise CheckpointError(
            f"{str(path)!r} is not valid JSON ({first_line(exc)}); fix it or download the model folder again."
        ) from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{str(path)!r} holds a {type(data).__name__}, not a JSON object; fix it.")
    return data
