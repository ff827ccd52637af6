"""Runtimes outside PyTorch that run an exported network: ONNX Runtime and OpenVINO.

Each wraps an ONNX network as written by :func:`deepforest_lite.export.onnx_bytes`
(input ``images: FloatTensor[B, 3, H, W]``, the padded, normalised batch; outputs
the ``2 * L`` head maps) in a callable ``network(images) -> list[Tensor]`` whose
outputs are float32 CPU tensors. Choosing between them, exporting and caching
is :mod:`deepforest_lite.engines`' work.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from .errors import InvalidInputError

__all__ = [
    "ORT_OPTIMIZATION",
    "OPENVINO_PRECISIONS",
    "OnnxRuntimeNetwork",
    "OpenVinoNetwork",
    "onnxruntime_available",
    "openvino_available",
]

#: onnxruntime's graph optimisation level (``"disable"``, ``"basic"``, ``"extended"``, ``"all"``); chosen by
#: measurement, see docs/performance.md.
ORT_OPTIMIZATION = "all"

#: our precision names -> OpenVINO's inference precision hint
OPENVINO_PRECISIONS: dict[str, str] = {"fp32": "f32", "bf16": "bf16"}


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` (and ``onnx``, needed to export) can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def openvino_available() -> bool:
    """Whether ``openvino`` (the ``openvino`` extra) and ``onnx`` (needed to export) can be imported."""
    try:
        import onnx  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _source(model: bytes | str | os.PathLike) -> bytes | str:
    return model if isinstance(model, bytes) else os.fspath(model)


def _threads(threads: int | None) -> int:
    return int(threads or torch.get_num_threads())


class OnnxRuntimeNetwork:
    """An ONNX network in an onnxruntime CPU session.

    Args:
        model: the ONNX model's bytes or file path.
        threads: intra-op threads (default: ``torch.get_num_threads()``, so
            ``OMP_NUM_THREADS`` and ``torch.set_num_threads`` apply to every engine).
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
        options.intra_op_num_threads = _threads(threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = levels[optimization]
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(_source(model), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.threads = options.intra_op_num_threads
        self.optimization = optimization

    def __call__(self, images: Tensor) -> list[Tensor]:
        """Run the ONNX session on a (B, 3, H, W) float batch; the network's outputs as CPU tensors."""
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        return [torch.from_numpy(out) for out in self.session.run(None, {self.input_name: array})]


class OpenVinoNetwork:
    """An ONNX network compiled by OpenVINO's CPU plugin.

    Args:
        model: the ONNX model's bytes or file path.
        precision: ``"fp32"`` (OpenVINO's ``f32`` precision hint: the same
            boxes as torch fp32) or ``"bf16"`` (its ``bf16`` hint: faster on
            CPUs with bfloat16 instructions, scores to about three digits;
            OpenVINO falls back to f32 on CPUs without them).
        threads: inference threads (default: ``torch.get_num_threads()``).

    ``network(images: FloatTensor[B, 3, H, W])`` returns the output maps as
    float32 CPU tensors, whatever the precision inside.
    """

    def __init__(self, model: bytes | str | os.PathLike, precision: str = "fp32", threads: int | None = None) -> None:
        import openvino as ov

        if precision not in OPENVINO_PRECISIONS:
            raise InvalidInputError(
                f"OpenVINO runs at precision {list(OPENVINO_PRECISIONS)}, not {precision!r}; choose one of those."
            )
        core = ov.Core()
        options = {"INFERENCE_NUM_THREADS": _threads(threads), "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision]}
        self.compiled = core.compile_model(core.read_model(_source(model)), "CPU", options)
        self.precision = precision
        self.threads = options["INFERENCE_NUM_THREADS"]

    def __call__(self, images: Tensor) -> list[Tensor]:
        """Run the compiled network on a (B, 3, H, W) float batch; its outputs as float32 CPU tensors."""
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        result = self.compiled(array)
        return [torch.from_numpy(result[out].astype("float32", copy=True)) for out in self.compiled.outputs]
