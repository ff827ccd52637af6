"""Engines that run a detector's network: PyTorch (eager) or ONNX Runtime.

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
* ``"auto"`` (default): onnxruntime on the CPU in fp32 when onnxruntime is
  installed, torch otherwise (CUDA, bf16, or no onnxruntime, without a message).

A torch model is exported when onnxruntime first runs it: once per process
(the session is kept in memory, keyed by the weights' SHA-256), and the ONNX
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNet
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from .config import ENGINES
from .errors import InvalidInputError

__all__ = [
    "ENGINES",
    "ExportedRetinaNet",
    "OnnxRuntimeNetwork",
    "onnxruntime_available",
    "check_precision",
    "resolve_engine",
    "prepare_model",
    "model_device",
    "onnxruntime_network",
    "cache_dir",
]

#: onnxruntime's graph optimisation level (``"disable"``, ``"basic"``, ``"extended"``, ``"all"``); chosen by
#: measurement, see docs/performance.md.
ORT_OPTIMIZATION = "all"

_LOG = logging.getLogger("deepforest_lite")
#: weights hash -> onnxruntime network, most recently used last
_SESSIONS: OrderedDict[str, OnnxRuntimeNetwork] = OrderedDict()
_MAX_SESSIONS = 4
#: torch model -> (fingerprint of its tensors, weights hash): the hash is recomputed only when tensors change
_HASHES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], str]] = weakref.WeakKeyDictionary()


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` (and ``onnx``, needed to export) can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def model_device(model: nn.Module) -> torch.device:
    """Where ``model`` computes: its parameters' device (CPU for onnxruntime networks)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def resolve_engine(engine: str, device: torch.device, precision: str = "fp32") -> str:
    """The engine that runs a torch model for ``engine`` on ``device`` at ``precision``: ``"torch"`` or ``"onnxruntime"``."""
    if engine not in ENGINES:
        raise InvalidInputError(f"Unknown engine {engine!r}; choose one of {list(ENGINES)}.")
    check_precision(precision, device)
    if engine == "torch":
        return "torch"
    if engine == "auto":
        fast = device.type == "cpu" and precision == "fp32" and onnxruntime_available()
        return "onnxruntime" if fast else "torch"
    if precision != "fp32":
        raise InvalidInputError(
            f"precision={precision!r} runs on the torch engine only; use engine='torch' (or 'auto'), or precision='fp32'."
        )
    if device.type != "cpu":
        raise InvalidInputError(
            f"engine='onnxruntime' runs on the CPU, but device {str(device)!r} was asked for; "
            "use device='cpu', or engine='torch' (or 'auto') on a GPU."
        )
    if not onnxruntime_available():
        raise InvalidInputError(
            "engine='onnxruntime' needs the onnxruntime and onnx packages, which are not installed; "
            "run `pip install onnxruntime onnx`, or use engine='torch'."
        )
    return "onnxruntime"


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
    :class:`ExportedRetinaNet` view of it whose network runs in onnxruntime
    (exported on first use; ``progress`` shows the export). A model loaded
    from an exported file is checked against the settings and returned.
    """
    check_precision(precision, device)
    if isinstance(model, ExportedRetinaNet):
        return model.check(engine, precision, device)
    if model_device(model) != device:
        model.to(device)
    if not isinstance(model, RetinaNet):  # another torchvision-style detector: only torch can run it
        if engine == "onnxruntime":
            raise InvalidInputError(
                f"engine='onnxruntime' runs torchvision RetinaNets, not a {type(model).__name__}; use engine='torch'."
            )
        return model
    if resolve_engine(engine, device, precision) == "torch":
        return model
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
            :class:`OnnxRuntimeNetwork` or a TorchScript module.
        engine: ``"onnxruntime"`` or ``"torch"`` (TorchScript).
        transform, anchor_generator: torchvision's, built for the model's settings.
        num_classes, score_thresh, nms_thresh, detections_per_img, topk_candidates:
            as for torchvision's RetinaNet.
        source: where the network came from (a file, or ``"in-memory export"``).
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
        if isinstance(network, nn.Module):
            self.network = network  # a submodule: moves with .to(device)
        else:
            self._engine_network = network
        self.eval()

    @classmethod
    def view_of(cls, model: RetinaNet, network: Any, engine: str = "onnxruntime") -> ExportedRetinaNet:
        """A view of the torch ``model`` with ``network`` in place of its own (shares transform and anchors)."""
        return cls(
            network, engine, model.transform, model.anchor_generator,
            num_classes=int(model.head.classification_head.num_classes),
            score_thresh=float(model.score_thresh), nms_thresh=float(model.nms_thresh),
            detections_per_img=int(model.detections_per_img), topk_candidates=int(model.topk_candidates),
        )

    def run_network(self, images: Tensor) -> Sequence[Tensor]:
        """The network's ``2 * L`` output maps for a padded, normalised batch."""
        network = getattr(self, "network", None)
        return (self._engine_network if network is None else network)(images)

    def check(self, engine: str, precision: str, device: torch.device) -> ExportedRetinaNet:
        """This model, after checking it can run with these settings (TorchScript moves to ``device``)."""
        if engine not in ENGINES:
            raise InvalidInputError(f"Unknown engine {engine!r}; choose one of {list(ENGINES)}.")
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


# --------------------------------------------------------------------------- onnxruntime


class OnnxRuntimeNetwork:
    """An ONNX network (as written by :func:`deepforest_lite.export.onnx_bytes`) in an onnxruntime CPU session.

    Args:
        model: the ONNX model's bytes or file path.
        threads: intra-op threads (default: ``torch.get_num_threads()``, so
            ``OMP_NUM_THREADS`` and ``torch.set_num_threads`` apply to both engines).
        optimization: graph optimisation level, ``"disable"``, ``"basic"``,
            ``"extended"`` or ``"all"`` (default :data:`ORT_OPTIMIZATION`).

    ``network(images: FloatTensor[B, 3, H, W])`` returns the output maps as CPU tensors.
    """

    def __init__(self, model: bytes | str | os.PathLike, threads: int | None = None, optimization: str | None = None) -> None:
        import onnxruntime as ort

        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        optimization = optimization or ORT_OPTIMIZATION
        if optimization not in levels:
            raise InvalidInputError(f"Unknown optimisation level {optimization!r}; choose one of {list(levels)}.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = levels[optimization]
        options.log_severity_level = 3  # errors only
        source = model if isinstance(model, bytes) else os.fspath(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.threads = options.intra_op_num_threads
        self.optimization = optimization

    def __call__(self, images: Tensor) -> list[Tensor]:
        """Run the ONNX session on a (B, 3, H, W) float batch; the network's outputs as CPU tensors."""
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        return [torch.from_numpy(out) for out in self.session.run(None, {self.input_name: array})]


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
    key = _weights_hash(model)
    network = _SESSIONS.get(key)
    if network is not None:
        _SESSIONS.move_to_end(key)
        return network
    folder = cache_dir()
    cached = folder / f"{key[:32]}.onnx" if folder is not None else None
    if cached is not None and cached.is_file():
        try:
            network = OnnxRuntimeNetwork(cached)
        except Exception:  # noqa: BLE001  a corrupt or foreign file: export again below
            network = None
    if network is None:
        network = OnnxRuntimeNetwork(_export(model, cached, progress))
    _SESSIONS[key] = network
    while len(_SESSIONS) > _MAX_SESSIONS:
        _SESSIONS.popitem(last=False)
    return network


def _export(model: RetinaNet, cached: Path | None, progress: bool) -> bytes:
    from tqdm.auto import tqdm

    from .export import onnx_bytes
    from .files import atomic_write

    where = f"cached as {cached}" if cached is not None else "not cached on disk"
    _LOG.info("exporting the network to ONNX for onnxruntime (once per process; %s)", where)
    desc = f"exporting the network to ONNX for onnxruntime, once ({where})"
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
