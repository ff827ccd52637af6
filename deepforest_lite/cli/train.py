"""``deepforest-lite train``: (re)train a detector from annotation files.

Options come from the command line and, optionally, a YAML file
(``--config``); the command line wins. The YAML keys are the long option
names with underscores (``batch_size: 8``, ``from: model.pt``) plus a
``model:`` mapping of :class:`~deepforest_lite.config.ModelConfig` fields for
a model built from scratch. An unknown key is an error that lists the valid
ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

from ..compat import unknown_keys_hint
from ..config import BACKBONES, ModelConfig, TrainConfig, from_mapping, load_config_file
from ..errors import ConfigError, WriteError, first_sentence
from ..files import atomic_write, check_output_dir, is_disk_full
from ._checks import check_train
from ._common import (
    add_device_arguments,
    fail,
    fraction,
    gsd_metres,
    non_negative_int,
    parse_devices,
    positive_int,
)

#: YAML keys that describe the run rather than TrainConfig fields.
RUN_KEYS: tuple[str, ...] = (
    "train", "val", "root_dir", "val_root_dir", "labels", "from", "backbone", "backbone_weights",
    "output", "output_dir", "crop_size", "model", "gsd",
)
_TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))


_DESCRIPTION = """\
Train a detector from scratch, or fine-tune one (--from), on annotation files
(DeepForest CSV, Pascal VOC, COCO, or tiles cut by `deepforest-lite split`).
New labels get a new classification head; backbone, FPN and box regression keep
their weights. Every epoch writes OUTPUT_DIR/last.safetensors (and
best.safetensors when --val is given); the best model (else the last) is
copied to --output. Its metadata records the --from model and this command line.

Options may also come from a YAML file (--config): the long option names with
underscores (batch_size: 8, from: model.pt), plus a model: mapping of
architecture settings for a new model. The command line wins.
"""

_EPILOG = """\
examples:
  deepforest-lite train --train tiles/ortho.csv --from tree-lite --labels Alive,Dead --epochs 20 --output alive_dead.pt
  deepforest-lite train --train train.csv --val val.csv --from weecology/deepforest-tree --lr 0.0005 --output tree.pt --logger tensorboard
  deepforest-lite train --config my_run.yaml --resume
"""


def add_parser(subparsers: Any) -> None:
    """Add the ``train`` subcommand and its options to ``subparsers``."""
    d = TrainConfig()
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune a detector on annotated images",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run = p.add_argument_group("data and model")
    run.add_argument("--config", metavar="YAML", help="read options from this YAML file; the command line wins "
                     "(default: none)")
    run.add_argument("--train", metavar="ANNOTATIONS", help="training annotations: CSV, VOC XML or folder, COCO JSON "
                     "(required, here or in --config)")
    run.add_argument("--val", metavar="ANNOTATIONS", help="validation annotations, scored every epoch; the epoch with "
                     "the best validation mAP@0.5 becomes --output (default: none, the last epoch is kept)")
    run.add_argument("--root-dir", metavar="DIR", help="folder of the training images (default: the annotation "
                     "file's folder)")
    run.add_argument("--val-root-dir", metavar="DIR", help="folder of the validation images (default: the "
                     "validation file's folder)")
    run.add_argument("--labels", metavar="A,B,...", help="comma-separated class names in id order, e.g. Alive,Dead "
                     "(default: the --from model's labels if the data's are among them, else the data's, sorted)")
    run.add_argument("--from", dest="from_", metavar="MODEL", help="start from this checkpoint, bundled name "
                     "(tree-lite) or hub name (weecology/deepforest-tree) (default: a new model)")
    run.add_argument("--backbone", choices=BACKBONES, help="ResNet backbone of a new model (default "
                     f"{ModelConfig.backbone}; ignored with --from)")
    run.add_argument("--backbone-weights", metavar="PATH", help="torchvision ImageNet ResNet weights (.pth or "
                     ".safetensors) for a new model, or 'imagenet' to download them (default: random weights)")
    run.add_argument("--output", metavar="MODEL", help="file the trained model is written to, e.g. model.pt "
                     "(required, here or in --config)")
    run.add_argument("--output-dir", metavar="DIR", help="folder for per-epoch checkpoints and logs "
                     "(default: runs/<--output file name without extension>)")
    run.add_argument("--resume", action="store_true", help="continue the interrupted run in --output-dir from its "
                     "last finished epoch (default: start afresh)")
    run.add_argument("--gsd", type=gsd_metres, metavar="METRES", help="train at this pixel size in metres, "
                     "recorded in the model: georeferenced images at another GSD are resampled to it (boxes "
                     "scaled), plain PNG/JPEG taken to be at it (default: the --from model's GSD, else the "
                     "images' common GSD from their transforms)")
    run.add_argument("--crop-size", type=positive_int, metavar="PX", help="train on random crops of this many "
                     "pixels a side (default: whole images)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=positive_int, metavar="N", help=f"passes over the training images "
                     f"(default {d.epochs})")
    opt.add_argument("--batch-size", type=positive_int, metavar="N", help=f"images per optimizer step and device "
                     f"(default {d.batch_size})")
    opt.add_argument("--lr", type=float, metavar="RATE", help=f"peak learning rate (default {d.lr:g}; "
                     "fine-tuning usually wants 1e-4 to 1e-3)")
    opt.add_argument("--optimizer", choices=("sgd", "adamw"), help=f"optimizer (default {d.optimizer}, with "
                     "--momentum)")
    opt.add_argument("--momentum", type=float, metavar="M", help=f"SGD momentum, in [0, 1) (default "
                     f"{d.momentum:g}; ignored by adamw)")
    opt.add_argument("--lr-schedule", choices=("constant", "cosine", "step", "onecycle", "plateau"),
                     help=f"learning-rate schedule over the run: cosine decays to 1%% of --lr, step divides by "
                     "10 at 2/3 and 8/9 of the steps, onecycle ramps up then down, plateau divides by 10 after "
                     f"3 epochs without a lower loss (default {d.lr_schedule})")
    opt.add_argument("--warmup-steps", type=non_negative_int, metavar="N", help="optimizer steps of linear "
                     f"warm-up from 1%% of --lr (default {d.warmup_steps}: none)")
    opt.add_argument("--weight-decay", type=float, metavar="W", help=f"L2 weight penalty (default {d.weight_decay:g})")
    opt.add_argument("--augment", metavar="PRESET", help="augmentation preset: none, flip (flips and 90-degree "
                     "turns), default (flip + brightness/contrast), strong (+ scale jitter), robust (+ local "
                     f"contrast, 0.5-2x rescale), multiscale (default + 0.5-2x rescale: objects at half to twice their size) "
                     f"(default: the {d.augment!r} preset)")
    opt.add_argument("--min-box-size", type=float, metavar="PX", help="boxes smaller than this many pixels a side "
                     f"after augmentation are dropped (default {d.min_box_size:g})")
    opt.add_argument("--seed", type=int, metavar="N", help=f"random seed of weights, augmentation and shuffling "
                     f"(default {d.seed})")
    hw = p.add_argument_group("hardware and logging")
    add_device_arguments(hw, d)
    hw.add_argument("--precision", metavar="MODE", help=f"Lightning precision: 32-true, 16-mixed, bf16-mixed "
                    f"(default {d.precision})")
    hw.add_argument("--accumulate-grad-batches", type=positive_int, metavar="N", help="batches whose gradients "
                    f"are summed per optimizer step (default {d.accumulate_grad_batches})")
    hw.add_argument("--workers", type=non_negative_int, metavar="N", help="data loading processes "
                    f"(default {d.workers}: the main process)")
    hw.add_argument("--val-iou-threshold", type=fraction, metavar="IOU", help="IoU above which a validation "
                    f"prediction matches a box, in [0, 1] (default {d.val_iou_threshold:g}, DeepForest's)")
    hw.add_argument("--logger", choices=("csv", "tensorboard"), help=f"training log format in OUTPUT_DIR/logs "
                    f"(default {d.logger}); tensorboard needs the tensorboard extra: "
                    "pip install 'deepforest-lite[tensorboard]'")
    hw.add_argument("--quiet", action="store_true", help="no progress bar (default: progress on stderr)")
    p.set_defaults(run=run_train)


def gather_options(args: argparse.Namespace) -> dict[str, Any]:
    """File options overridden by command-line options; unknown file keys are an error."""
    options: dict[str, Any] = {}
    if args.config:
        options = load_config_file(args.config)
        unknown = sorted(set(options) - set(RUN_KEYS) - set(_TRAIN_KEYS))
        if unknown:
            raise ConfigError(
                f"Unknown key(s) {unknown} in {args.config!r}; valid keys are {sorted(RUN_KEYS + _TRAIN_KEYS)}"
                f"{unknown_keys_hint(unknown, RUN_KEYS + _TRAIN_KEYS)}."
            )
        base = os.path.dirname(os.path.abspath(args.config))
        for key in ("train", "val", "root_dir", "val_root_dir", "from", "backbone_weights", "output", "output_dir"):
            value = options.get(key)
            if isinstance(value, str) and not os.path.isabs(value) and os.path.exists(os.path.join(base, value)):
                options[key] = os.path.join(base, value)  # paths in the file are relative to the file
    for key, value in vars(args).items():
        key = "from" if key == "from_" else key
        if key in RUN_KEYS + _TRAIN_KEYS and value is not None:
            options[key] = value
    if isinstance(options.get("labels"), str):
        options["labels"] = [s.strip() for s in options["labels"].split(",") if s.strip()]
    if "devices" in options:
        options["devices"] = parse_devices(options["devices"])
    for required in ("train", "output"):
        if not options.get(required):
            fail(f"deepforest-lite train: error: --{required} is required (on the command line or in --config)")
    return options


def run_train(args: argparse.Namespace) -> int:
    """Run ``deepforest-lite train`` with parsed ``args``; returns the exit code."""
    from ..annotations import read_annotations

    options = gather_options(args)
    from ..gsd import check_gsd

    check_gsd(options.get("gsd"), "gsd")  # a --config value too, before anything is read
    check_train(options)  # torch-free: paths, destinations, --from, option combinations
    train_config = from_mapping(TrainConfig, {k: options[k] for k in _TRAIN_KEYS if k in options}, source="train options")
    output = Path(options["output"])
    output_dir = Path(options.get("output_dir") or Path("runs") / output.stem)
    if options.get("output_dir") is None:
        check_output_dir(output_dir, "--output-dir")
    from ..hardware import check_trainer_settings

    check_trainer_settings(train_config)  # --accelerator, --devices, --precision, --logger, before any data
    from ..detector import Detector
    from ..train import describe_resume

    labels = options.get("labels")
    if options.get("from"):
        detector = _load_start_model(options["from"], labels)
        backbone = options.get("backbone")
        if backbone and backbone != detector.config.backbone:
            raise ConfigError(
                f"--backbone {backbone} differs from the backbone of --from {str(options['from'])!r} "
                f"({detector.config.backbone}); leave --backbone out to fine-tune that model, or leave --from out "
                f"to train a new {backbone} model."
            )
    else:
        if labels is None:
            labels = sorted(set(read_annotations(options["train"], root_dir=options.get("root_dir"))["label"]))
        model_options = dict(options.get("model") or {})
        if not isinstance(model_options, dict):
            raise ConfigError(f"'model' in the config must be a mapping of ModelConfig fields, got {model_options!r}.")
        if options.get("backbone"):
            model_options["backbone"] = options["backbone"]
        pretrained = options.get("backbone_weights") is not None
        from_mapping(ModelConfig, model_options, source="model options")  # unknown keys: one clear error
        detector = Detector(labels, config=ModelConfig.for_weights(pretrained, **model_options),
                            backbone_weights=options.get("backbone_weights"))
    note = describe_resume(output_dir, bool(args.resume), train_config)
    if note:
        print(note)
    try:
        result = detector.fit(
            options["train"], options.get("val"), labels=labels, root_dir=options.get("root_dir"),
            val_root_dir=options.get("val_root_dir"), output_dir=output_dir, resume=bool(args.resume),
            crop_size=options.get("crop_size"), config=train_config, progress=not args.quiet,
            provenance=_provenance(args, options, detector), gsd=options.get("gsd"),
        )
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"the finished epochs are saved in {str(output_dir)!r}; continue with the same command plus --resume"
        ) from None
    except RuntimeError as exc:  # torch.save inside Lightning reports a failed write as RuntimeError
        if "write" not in str(exc).lower():
            raise
        raise WriteError(f"Cannot write a checkpoint into {str(output_dir)!r}: {_write_cause(output_dir, exc)}; "
                         "free some space or choose another --output-dir, then continue with --resume.") from None
    _copy_atomically(result.model_path, output)
    metrics = ", ".join(f"{k}={v:.3f}" for k, v in sorted(result.metrics.items()) if k.startswith("val_") and "_step" not in k)
    how = "best F1 on the validation data" if result.best_model is not None else "no validation data to choose it"
    print(f"trained {list(detector.labels)} for {result.epochs_completed} epoch(s); model written to {output} "
          f"with score threshold {result.score_threshold:.2f} ({how})" + (f" ({metrics})" if metrics else ""))
    return 0


def _write_cause(folder: Path, exc: BaseException) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if is_disk_full(exc) or (free is not None and free < 64 * 2**20):
        return "the disk is full"
    return first_sentence(exc, 160)


def _load_start_model(source: str, labels: list[str] | None) -> Any:
    """The --from model; a checkpoint without label names (DeepForest's NEON.pt) takes them from --labels."""
    from ..detector import load_model
    from ..errors import MissingLabelsError

    try:
        return load_model(source)
    except MissingLabelsError as exc:
        if labels is None:
            raise MissingLabelsError(
                f"--from {source!r} stores no label names for its {exc.num_classes} class(es); "
                "name them with --labels (e.g. --labels Tree)."
            ) from None
        if exc.num_classes == len(labels):
            return load_model(source, labels)  # the classes keep their trained weights
        # another number of classes: load under placeholder names; fit() gives --labels a new head
        return load_model(source, [f"class{i}" for i in range(exc.num_classes or 0)])


def _provenance(args: argparse.Namespace, options: dict[str, Any], detector: Any) -> dict[str, Any]:
    """What the trained model's metadata records of this run: the --from model and the command line."""
    import shlex

    given = options.get("from")
    return {
        "from": None if not given else str(given),  # None: a new model
        "from_source": None if not given else detector.metadata.get("source"),
        "command_line": shlex.join(["deepforest-lite", *getattr(args, "argv", [])]),
        "config_file": None if not args.config else os.path.abspath(args.config),
    }


def _copy_atomically(source: Path, target: Path) -> None:
    atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))
