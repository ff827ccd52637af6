"""Engines that run a detector's network: PyTorch (eager), ONNX Runtime or OpenVINO.

An *engine* runs only the network (backbone, FPN, head convolutions; see
:mod:`deepforest_lite.export`). Everything around it is torchvision's code,
run by PyTorch on every engine: the input transform (normalise, resize, pad),
the anchors (``AnchorGenerator``), decoding, top-k and NMS
(``RetinaNet.postprocess_detections``) and scaling boxes back to the image
(``GeneralizedRCNNTransform.postprocess``). So the engines differ only in the
floating-point arithmetic of the network's convolutions.

Choosing (``PredictConfig.engine`` / ``--engine``):

* ``"torch"``: the model's own torch modules, on its device; ``precision="bf16"``
  autocasts them.
* ``"onnxruntime"``: the network exported to ONNX and run by onnxruntime's CPU
  execution provider, fp32 only.
* ``"openvino"`` (the ``openvino`` extra): the same ONNX network compiled by
  OpenVINO's CPU plugin, at ``precision="fp32"`` (the same boxes as torch) or
  ``"bf16"`` (the fastest CPU path on CPUs with bfloat16 instructions; scores
  to about three digits, like torch's bf16).
* ``"auto"`` (default): onnxruntime on the CPU in fp32 when onnxruntime is
  installed, torch otherwise (CUDA, bf16, or no onnxruntime, without a message).
  It never picks OpenVINO: see docs/performance.md for the measurements.

A torch model is exported when onnxruntime or OpenVINO first runs it: once per
process (the compiled network is kept in memory, keyed by the engine, precision
and the weights' SHA-256), and the ONNX
file is kept in an on-disk cache, ``$DEEPFOREST_LITE_CACHE/onnx/<hash>.onnx``
(default ``~/.cache/deepforest_lite``; ``DEEPFOREST_LITE_CACHE=off`` disables
it), so later processes skip the export. Changing the weights (training,
loading others) changes the hash and makes a new export; thresholds are read
from the model at every prediction and are not part of the export.

A detector loaded from an exported file (:func:`deepforest_lite.load_model`
on ``.onnx`` / TorchScript) holds an :class:`ExportedRetinaNet`: the same
torchvision pre- and post-processing around the file's network.
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNet
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from .config import ENGINE_PRECISIONS, ENGINES
from .errors import InvalidInputError
from .runtimes import (
    OnnxRuntimeNetwork,
    OpenVinoNetwork,
    onnxruntime_available,
    openvino_available,
)

__all__ = [
    "ENGINES",
    "ExportedRetinaNet",
    "OnnxRuntimeNetwork",
    "OpenVinoNetwork",
    "onnxruntime_available",
    "openvino_available",
    "check_precision",
    "resolve_engine",
    "prepare_model",
    "model_device",
    "onnxruntime_network",
    "openvino_network",
    "cache_dir",
]

_LOG = logging.getLogger("deepforest_lite")
#: (engine, precision, weights hash) -> onnxruntime or OpenVINO network, most recently used last
_SESSIONS: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_MAX_SESSIONS = 4
#: torch model -> (fingerprint of its tensors, weights hash): the hash is recomputed only when tensors change
_HASHES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], str]] = weakref.WeakKeyDictionary()


def model_device(model: nn.Module) -> torch.device:
    """Where ``model`` computes: its parameters' device (CPU for onnxruntime networks)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def resolve_engine(engine: str, device: torch.device, precision: str = "fp32") -> str:
    """The engine (``"torch"``, ``"onnxruntime"`` or ``"openvino"``) that runs a torch model for these settings.

    Raises:
        InvalidInputError: an unknown engine, a precision or device the engine
            cannot run, or an engine whose package is not installed.
    """
    if engine not in ENGINES:
        raise InvalidInputError(f"Unknown engine {engine!r}; choose one of {list(ENGINES)}.")
    check_precision(precision, device)
    if engine == "torch":
        return "torch"
    if engine == "auto":
        fast = device.type == "cpu" and precision == "fp32" and onnxruntime_available()
        return "onnxruntime" if fast else "torch"
    precisions = ENGINE_PRECISIONS[engine]
    if precision not in precisions:
        raise InvalidInputError(
            f"engine={engine!r} runs at precision {list(precisions)}, not {precision!r}; "
            "use engine='torch' (or 'auto') for it."
        )
    if device.type != "cpu":
        raise InvalidInputError(
            f"engine={engine!r} runs on the CPU, but device {str(device)!r} was asked for; "
            "use device='cpu', or engine='torch' (or 'auto') on a GPU."
        )
    if engine == "onnxruntime" and not onnxruntime_available():
        raise InvalidInputError(
            "engine='onnxruntime' needs the onnxruntime and onnx packages, which are not installed; "
            "run `pip install onnxruntime onnx`, or use engine='torch'."
        )
    if engine == "openvino" and not openvino_available():
        raise InvalidInputError(
            "engine='openvino' needs the openvino package, which is not installed; "
            "run `pip install deepforest_lite[openvino]` (or `pip install openvino`), or use engine='auto'."
        )
    return engine


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse float16 autocast off CUDA (CPU float16 kernels are few and slow).

    Raises:
        InvalidInputError: ``precision == "fp16"`` on a device other than CUDA.
    """
    if precision == "fp16" and device.type != "cuda":
        raise InvalidInputError(
            f"precision='fp16' runs on CUDA only (command line: --precision fp16), but the device is "
            f"{str(device)!r}; use precision='bf16' (or 'fp32') here."
        )


def prepare_model(
    model: nn.Module, engine: str, precision: str, device: torch.device, progress: bool = False
) -> nn.Module:
    """The module that runs prediction for these settings.

    A torch RetinaNet is moved to ``device`` if its weights are elsewhere (and
    stays there), then returned as it is (torch engine; always for other
    torchvision-style detectors) or as an
    :class:`ExportedRetinaNet` view of it whose network runs in onnxruntime or
    OpenVINO (exported on first use; ``progress`` shows the export). A model
    loaded from an exported file is checked against the settings and returned
    (as an OpenVINO view of its ONNX network for ``engine="openvino"``).
    """
    check_precision(precision, device)
    if isinstance(model, ExportedRetinaNet):
        return model.check(engine, precision, device)
    if model_device(model) != device:
        model.to(device)
    if not isinstance(model, RetinaNet):  # another torchvision-style detector: only torch can run it
        if engine in ("onnxruntime", "openvino"):
            raise InvalidInputError(
                f"engine={engine!r} runs torchvision RetinaNets, not a {type(model).__name__}; use engine='torch'."
            )
        return model
    resolved = resolve_engine(engine, device, precision)
    if resolved == "torch":
        return model
    if resolved == "openvino":
        network = openvino_network(model, precision, progress=progress)
        return ExportedRetinaNet.view_of(model, network, engine="openvino", precision=precision)
    return ExportedRetinaNet.view_of(model, onnxruntime_network(model, progress=progress))


# --------------------------------------------------------------------------- the RetinaNet around a network


class _NoBackbone(nn.Module):
    """Stands in for the backbone of an :class:`ExportedRetinaNet` (RetinaNet asks for ``out_channels``)."""

    out_channels = 0

    def forward(self, *args: Any) -> None:  # pragma: no cover - never called
        raise RuntimeError("the network of an ExportedRetinaNet runs in its engine")


class ExportedRetinaNet(RetinaNet):
    """A torchvision RetinaNet whose network (backbone, FPN, heads) runs in another engine.

    The input transform, anchor generator, thresholds and post-processing are
    torchvision's, exactly as in the model the network came from.
    ``forward(images: list of FloatTensor[3, H, W] in [0, 1])`` returns, in eval
    mode, torchvision's detections (``boxes [N, 4]`` xyxy px of each image,
    ``labels [N]``, ``scores [N]``). Prediction only: there is nothing to train.

    Args:
        network: ``FloatTensor[B, 3, H, W] -> sequence of 2 * L maps`` in the
            layout of :class:`~deepforest_lite.export.RetinaNetNetwork`: an
            :class:`OnnxRuntimeNetwork`, an :class:`OpenVinoNetwork` or a TorchScript module.
        engine: ``"onnxruntime"``, ``"openvino"`` or ``"torch"`` (TorchScript).
        transform, anchor_generator: torchvision's, built for the model's settings.
        num_classes, score_thresh, nms_thresh, detections_per_img, topk_candidates:
            as for torchvision's RetinaNet.
        source: where the network came from (a file, or ``"in-memory export"``).
        precision: what the network computes in (``"bf16"`` only for OpenVINO's
            bf16; the outputs are float32 either way).
        onnx: the ONNX file's bytes for a network loaded from one (so that
            ``engine="openvino"`` can compile it), else ``None``.
    """

    anchor_generator: AnchorGenerator  # set by RetinaNet.__init__ (a submodule: nn.Module would type it Tensor | Module)

    def __init__(
        self,
        network: Any,
        engine: str,
        transform: GeneralizedRCNNTransform,
        anchor_generator: AnchorGenerator,
        *,
        num_classes: int,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        topk_candidates: int,
        source: str = "in-memory export",
        precision: str = "fp32",
        onnx: bytes | None = None,
    ) -> None:
        super().__init__(
            _NoBackbone(), num_classes, anchor_generator=anchor_generator, head=nn.Identity(),
            score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img,
            topk_candidates=topk_candidates,
        )
        self.transform = transform
        self.num_classes = num_classes
        self.engine = engine
        self.source = source
        self.precision = precision
        self.onnx = onnx
        if isinstance(network, nn.Module):
            self.network = network  # a submodule: moves with .to(device)
        else:
            self._engine_network = network
        self.eval()

    @classmethod
    def view_of(
        cls, model: RetinaNet, network: Any, engine: str = "onnxruntime", precision: str = "fp32"
    ) -> ExportedRetinaNet:
        """A view of the torch ``model`` with ``network`` in place of its own (shares transform and anchors)."""
        num_classes = model.num_classes if isinstance(model, ExportedRetinaNet) else model.head.classification_head.num_classes
        return cls(
            network, engine, model.transform, model.anchor_generator,
            num_classes=int(num_classes),
            score_thresh=float(model.score_thresh), nms_thresh=float(model.nms_thresh),
            detections_per_img=int(model.detections_per_img), topk_candidates=int(model.topk_candidates),
            source=model.source if isinstance(model, ExportedRetinaNet) else "in-memory export",
            precision=precision,
        )

    def run_network(self, images: Tensor) -> Sequence[Tensor]:
        """The network's ``2 * L`` output maps for a padded, normalised batch."""
        network = getattr(self, "network", None)
        return (self._engine_network if network is None else network)(images)

    def check(self, engine: str, precision: str, device: torch.device) -> ExportedRetinaNet:
        """This model, after checking it can run with these settings (TorchScript moves to ``device``).

        For ``engine="openvino"`` on a model loaded from an ONNX file: a view
        that runs the file's network in OpenVINO at ``precision``.
        """
        if engine not in ENGINES:
            raise InvalidInputError(f"Unknown engine {engine!r}; choose one of {list(ENGINES)}.")
        if engine == "openvino" and self.onnx is not None:
            resolve_engine(engine, device, precision)
            onnx = self.onnx
            network = _kept(("openvino", precision, f"{self.source}#{hash(onnx)}"), lambda: OpenVinoNetwork(onnx, precision))
            return ExportedRetinaNet.view_of(self, network, engine="openvino", precision=precision)
        if engine not in ("auto", self.engine):
            other = "TorchScript" if self.engine == "torch" else "ONNX"
            raise InvalidInputError(
                f"This model was loaded from the {other} file {self.source!r}, which runs on the {self.engine} "
                f"engine only, not engine={engine!r}; use engine='auto', or load the model's checkpoint."
            )
        if precision != "fp32":
            raise InvalidInputError(
                f"precision={precision!r} needs the model's torch weights, but it was loaded from the exported "
                f"file {self.source!r}; use precision='fp32', or load the model's checkpoint."
            )
        if self.engine == "onnxruntime" and device.type != "cpu":
            raise InvalidInputError(
                f"The ONNX model {self.source!r} runs on the CPU with onnxruntime, not on {str(device)!r}; "
                "use device='cpu', or load the model's checkpoint to predict on a GPU."
            )
        if model_device(self) != device:
            self.to(device)
        return self

    def forward(self, images: list[Tensor], targets: Any = None) -> list[dict[str, Tensor]]:  # type: ignore[override]
        """Detections per image (``boxes`` (N, 4) xyxy in input pixels, ``scores``, ``labels``) from the exported network."""
        if self.training or targets is not None:
            raise InvalidInputError(
                f"The model from {self.source!r} can only predict; to train, load the model's checkpoint."
            )
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        batch, _ = self.transform(images)
        maps = [torch.as_tensor(m) for m in self.run_network(batch.tensors)]
        levels = len(maps) // 2
        head_outputs = {
            "cls_logits": [_flatten(m, self.num_classes) for m in maps[:levels]],
            "bbox_regression": [_flatten(m, 4) for m in maps[levels:]],
        }
        # AnchorGenerator reads only the maps' grid sizes, dtype and device
        anchors = self.anchor_generator(batch, maps[:levels])
        per_level = [t.shape[1] for t in head_outputs["cls_logits"]]
        split_anchors = [list(a.split(per_level)) for a in anchors]
        detections = self.postprocess_detections(head_outputs, split_anchors, batch.image_sizes)
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)


def _flatten(level: Tensor, k: int) -> Tensor:
    """``[N, A * k, H, W] -> [N, H * W * A, k]``: the order torchvision's RetinaNet heads flatten in."""
    n, _, h, w = level.shape
    return level.view(n, -1, k, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, k)


# --------------------------------------------------------------------------- exported networks, kept


def cache_dir() -> Path | None:
    """Folder of the on-disk ONNX cache (``$DEEPFOREST_LITE_CACHE/onnx``), or ``None`` when disabled."""
    root = os.environ.get("DEEPFOREST_LITE_CACHE")
    if root is not None and root.strip().lower() in ("", "0", "off", "false", "no"):
        return None
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "deepforest_lite")
    return Path(root) / "onnx"


def onnxruntime_network(model: RetinaNet, progress: bool = False) -> OnnxRuntimeNetwork:
    """The onnxruntime network of the torch ``model``'s current weights: from memory, the disk cache, or a new export.

    A new export shows a one-line progress bar on stderr when ``progress`` is
    true (and is logged on the ``deepforest_lite`` logger either way).
    """
    network: OnnxRuntimeNetwork = _cached_network(model, "onnxruntime", "fp32", OnnxRuntimeNetwork, progress)
    return network


def openvino_network(model: RetinaNet, precision: str = "fp32", progress: bool = False) -> OpenVinoNetwork:
    """The OpenVINO network of the torch ``model``'s current weights at ``precision`` (``"fp32"``, ``"bf16"``).

    Compiled from the same ONNX export (and disk cache) as :func:`onnxruntime_network`.
    """
    network: OpenVinoNetwork = _cached_network(
        model, "openvino", precision, lambda source: OpenVinoNetwork(source, precision), progress
    )
    return network


def _cached_network(model: RetinaNet, engine: str, precision: str, build: Callable[[Any], Any], progress: bool) -> Any:
    """``build(ONNX file or bytes)`` for ``model``'s weights, kept in memory per (engine, precision, weights)."""
    weights = _weights_hash(model)

    def make() -> Any:
        folder = cache_dir()
        cached = folder / f"{weights[:32]}.onnx" if folder is not None else None
        if cached is not None and cached.is_file():
            try:
                return build(cached)
            except Exception:  # noqa: BLE001  a corrupt or foreign file: export again below
                pass
        return build(_export(model, cached, progress, engine))

    return _kept((engine, precision, weights), make)


def _kept(key: tuple[str, str, str], make: Callable[[], Any]) -> Any:
    """The network kept in memory under ``key``, or ``make()``'s, kept (the last few used)."""
    network = _SESSIONS.get(key)
    if network is None:
        network = make()
    _SESSIONS[key] = network
    _SESSIONS.move_to_end(key)
    while len(_SESSIONS) > _MAX_SESSIONS:
        _SESSIONS.popitem(last=False)
    return network


def _export(model: RetinaNet, cached: Path | None, progress: bool, engine: str = "onnxruntime") -> bytes:
    from tqdm.auto import tqdm

    from .export import onnx_bytes
    from .files import atomic_write

    where = f"cached as {cached}" if cached is not None else "not cached on disk"
    _LOG.info("exporting the network to ONNX for %s (once per process; %s)", engine, where)
    desc = f"exporting the network to ONNX for {engine}, once ({where})"
    with tqdm(total=1, desc=desc, file=sys.stderr, disable=not progress, bar_format="{desc}: {elapsed}") as bar:
        data = onnx_bytes(model)
        bar.update(1)
    if cached is not None:
        try:
            atomic_write(cached, lambda tmp: Path(tmp).write_bytes(data))
        except OSError as exc:  # a read-only or full cache only costs the next process an export
            _LOG.warning("could not write the ONNX cache file %s (%s)", cached, exc)
    return data


def _weights_hash(model: nn.Module) -> str:
    from .export import weights_hash

    fingerprint = tuple(
        (name, t.device.type, t.data_ptr(), t._version, tuple(t.shape)) for name, t in model.state_dict().items()
    )
    known = _HASHES.get(model)
    if known is not None and known[0] == fingerprint:
        return known[1]
    key = weights_hash(model)
    _HASHES[model] = (fingerprint, key)
    return key
