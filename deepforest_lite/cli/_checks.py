"""Checks every subcommand runs first: paths, destinations and option values, all torch-free.

Each ``check_*`` function is called at the start of its subcommand's ``run``,
before torch is imported, a model is loaded or a raster is read, so a typo
costs a fraction of a second and no work is lost. Each raises a package
error, which :func:`~deepforest_lite.cli._common.run_safely` prints as one line
with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import CheckpointError, ConfigError, ImageReadError, InvalidInputError
from ..files import check_output_dir, check_output_file, looks_like_path

__all__ = [
    "check_device_name",
    "check_evaluate",
    "check_model_argument",
    "check_predict",
    "check_split",
    "check_train",
]

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
_PRECISIONS = ("64-true", "32-true", "16-true", "bf16-true", "16-mixed", "bf16-mixed",
               "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16")


def check_model_argument(value: str | None, option: str = "--model") -> None:
    """A value that looks like a file path (folder part or checkpoint extension) must exist."""
    if value is None:
        return
    text = os.path.expanduser(str(value))
    if os.path.exists(text):
        if os.path.isfile(text) and not os.access(text, os.R_OK):
            raise CheckpointError(f"{option} {value!r} cannot be read (permission denied); check the file.")
        return
    if looks_like_path(str(value)):
        raise CheckpointError(
            f"{option} {value!r}: no such file or folder; check the path (a hub name looks like "
            "'weecology/deepforest-tree', with no file extension)."
        )


def check_device_name(value: str | None, option: str = "--device") -> None:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (whether it is present is checked later)."""
    if value is not None and not _DEVICE.match(str(value)):
        raise InvalidInputError(
            f"{option} {value!r} is not a device this command can run on; use auto, cpu, cuda or cuda:N."
        )


def _check_input_files(paths: Iterable[str], what: str) -> None:
    for path in paths:
        if not os.path.isfile(path):
            raise ImageReadError(f"{what} {path!r} does not exist or is not a file; check the path.")
        if not os.access(path, os.R_OK):
            raise ImageReadError(f"{what} {path!r} cannot be read (permission denied); check the file.")


# --------------------------------------------------------------------------- per subcommand


def check_predict(args: argparse.Namespace, extensions: Iterable[str]) -> None:
    """``predict``: rasters exist, destinations writable, --model path exists, --device named right."""
    _check_input_files([str(r) for r in args.rasters], "Raster")
    if args.output is not None:
        check_output_file(args.output, "--output", extensions=extensions)
    if args.output_dir is not None:
        check_output_dir(args.output_dir, "--output-dir")
    if args.plot is not None:
        if str(args.plot).lower().endswith(".png"):
            check_output_file(args.plot, "--plot")
        else:
            check_output_dir(args.plot, "--plot")
    check_model_argument(args.model, "--model")
    check_device_name(args.device, "--device")
    labels = getattr(args, "labels", None)
    if labels is not None and not [s for s in labels.split(",") if s.strip()]:
        raise InvalidInputError(f"--labels {labels!r} names no class; give names such as Tree or Alive,Dead.")


#: extensions ``train --output`` accepts (our checkpoint format is written whatever the name)
MODEL_EXTENSIONS: tuple[str, ...] = (".pt", ".pth", ".safetensors")


def check_train(options: Mapping[str, Any]) -> None:
    """``train``: inputs exist, destinations writable, --from path exists, option combinations make sense.

    ``options`` are the merged command-line and ``--config`` options (YAML key names).
    """
    if options.get("from"):
        check_model_argument(str(options["from"]), "--from")
    for key, option in (("train", "--train"), ("val", "--val")):
        value = options.get(key)
        if value is not None and not os.path.exists(str(value)):
            raise ImageReadError(f"{option} {str(value)!r} does not exist; check the path.")
    for key, option in (("root_dir", "--root-dir"), ("val_root_dir", "--val-root-dir")):
        value = options.get(key)
        if value is not None and not os.path.isdir(str(value)):
            raise InvalidInputError(f"{option} {str(value)!r} is not a folder; give the folder holding the images.")
    weights = options.get("backbone_weights")
    if options.get("from"):
        for key, option in (("backbone_weights", "--backbone-weights"), ("model", "model:")):
            if options.get(key):
                raise ConfigError(
                    f"{option} sets up a model built from scratch, but --from {str(options['from'])!r} gives "
                    f"the model; leave {option} out, or leave --from out to build a new model."
                )
    elif weights is not None and str(weights) != "imagenet" and not os.path.isfile(str(weights)):
        raise ImageReadError(f"--backbone-weights {str(weights)!r} does not exist; check the path.")
    labels = options.get("labels")
    if labels is not None and not list(labels):
        raise InvalidInputError("--labels names no class; give names such as Tree or Alive,Dead.")
    precision = options.get("precision")
    if precision is not None and str(precision) not in _PRECISIONS:
        raise InvalidInputError(
            f"--precision {precision!r} is not a precision Lightning knows; use one of "
            "32-true, 16-mixed, bf16-mixed, bf16-true, 64-true."
        )
    check_output_file(str(options["output"]), "--output", extensions=MODEL_EXTENSIONS)
    if options.get("output_dir") is not None:
        check_output_dir(str(options["output_dir"]), "--output-dir")


def check_evaluate(args: argparse.Namespace) -> None:
    """``evaluate``: inputs exist, --output and --plot-dir writable."""
    for path, what in ((args.predictions, "predictions"), (args.ground_truth, "ground truth")):
        if not os.path.exists(path):
            raise ImageReadError(f"The {what} file {path!r} does not exist; check the path.")
    if args.root_dir is not None and not os.path.isdir(args.root_dir):
        raise InvalidInputError(f"--root-dir {args.root_dir!r} is not a folder; give the folder holding the images.")
    if args.output is not None:
        check_output_file(args.output, "--output", extensions=[".csv"])
    if args.plot_dir is not None:
        check_output_dir(args.plot_dir, "--plot-dir")


def check_split(args: argparse.Namespace, options: Mapping[str, Any]) -> None:
    """``split``: the raster and annotations exist, --out-dir writable."""
    _check_input_files([str(args.raster)], "Raster")
    if args.annotations is not None and not os.path.exists(args.annotations):
        raise ImageReadError(f"Annotations {args.annotations!r} do not exist; check the path.")
    if options.get("out_dir") is None:
        raise ConfigError(
            "--out-dir is missing; give the folder the tiles are written to (or out_dir in the --config file)."
        )
    check_output_dir(options["out_dir"], "--out-dir")
