"""``deepforest-lite export``: write a model's network for deployment (ONNX or TorchScript).

The file holds the backbone, FPN and head convolutions with dynamic batch and
image size, and in its metadata the labels, thresholds, input scale, anchors,
every model setting and the package version (:mod:`deepforest_lite.export`).
``deepforest-lite predict --model OUT.onnx`` and ``load_model("OUT.onnx")``
predict with it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ._common import fraction

__all__ = ["add_parser", "run"]

#: file extension -> export format, when --format is not given
EXTENSIONS: dict[str, str] = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}

_DESCRIPTION = """\
Export a model's network (backbone, FPN, heads) to an ONNX file, run by
onnxruntime on any CPU, or to a TorchScript file, run by PyTorch or LibTorch.
Labels, thresholds, input scale and anchors go into the file's metadata, so
`deepforest-lite predict RASTER --model OUT.onnx` predicts with it directly.
Anchor decoding, NMS and merging are not in the file: deepforest-lite does
them the same way for every engine.

The format comes from OUT's extension (.onnx: ONNX; .pt, .ts, .torchscript:
TorchScript) unless --format is given.
"""

_EPILOG = """\
examples:
  deepforest-lite export tree-lite tree.onnx
  deepforest-lite export weecology/deepforest-tree deepforest-tree.onnx --score-threshold 0.3
  deepforest-lite export my_model.pt my_model.torchscript
"""


def add_parser(subparsers: Any) -> None:
    """Register ``export`` on the ``deepforest-lite`` subcommand parser."""
    parser = subparsers.add_parser(
        "export",
        help="write a model's network to an ONNX or TorchScript file for deployment",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model", metavar="MODEL",
        help="a checkpoint file, a DeepForest checkpoint or hub name, or a bundled model name (tree-lite)",
    )
    parser.add_argument("output", metavar="OUT", help="the file to write, e.g. tree.onnx")
    parser.add_argument("--format", choices=("onnx", "torchscript"), help="default: from OUT's extension")
    parser.add_argument(
        "--labels", metavar="NAME,NAME", help="comma-separated class names for checkpoints that store none, e.g. Tree (default: the checkpoint's own)"
    )
    parser.add_argument(
        "--score-threshold", type=fraction, default=None, metavar="SCORE",
        help="the score threshold stored in the file (default: the model's own)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the output, load the model, export; returns the exit code."""
    from ..detector import load_model

    fmt = args.format or EXTENSIONS.get(Path(args.output).suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"Cannot tell the format of {args.output!r} from its extension; name it .onnx (ONNX) or "
            ".pt/.ts/.torchscript (TorchScript), or give --format."
        )
    if os.path.isdir(args.output):
        raise InvalidInputError(f"{args.output!r} is a folder; give the file name to write, e.g. tree.onnx.")
    labels = [name.strip() for name in args.labels.split(",") if name.strip()] if args.labels else None
    detector = load_model(args.model, labels, device="cpu")
    if args.score_threshold is not None:
        detector.score_threshold = args.score_threshold
    path = detector.export(args.output, format=fmt)
    size_mb = path.stat().st_size / 2**20
    print(f"wrote {path} ({fmt}, {size_mb:.1f} MB, labels {list(detector.labels)})")
    return 0
