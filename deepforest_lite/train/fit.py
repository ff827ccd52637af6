"""``fit_model``: data, labels, Trainer set-up and the training run; ``TrainingResult``."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
import platform
import signal
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..annotations import AnnotationSet, read_annotation_set
from ..augment import build_augmentation
from ..config import ModelConfig, TrainConfig
from ..dataset import TrainingDataset, collate
from ..errors import InvalidInputError, TrainingWarning
from ..labels import LabelMap
from ..model import replace_classification_head
from .callbacks import _ExportCheckpoints
from .module import MONITOR, NEW_HEAD_SCORE_THRESHOLD, DetectorModule
from .resume import _check_run_folder, _resume_path, _run_identity, _write_run_file
from .schedules import LR_SCHEDULES, OPTIMIZERS

if TYPE_CHECKING:
    from lightning.fabric.connector import _PRECISION_INPUT
    from torchvision.models.detection.retinanet import RetinaNet

LOGGERS: tuple[str, ...] = ("csv", "tensorboard")


@dataclass
class TrainingResult:
    """Where a training run left its files, and its last metrics.

    Attributes:
        output_dir: the run's folder.
        last_model: our checkpoint of the last epoch.
        best_model: our checkpoint of the best validation epoch (``None`` without validation).
        resume_checkpoint: Lightning's resumable ``last.ckpt``.
        log_dir: the logger's folder.
        metrics: the last logged value of every metric (floats).
        epochs_completed: epochs finished, counting those of a resumed run.
        label_map: the labels the model was trained for.
        score_threshold: the score threshold stored with :attr:`model_path`:
            the best-F1 threshold on the validation set when there was
            validation, else the model's threshold.
    """

    output_dir: Path
    last_model: Path
    best_model: Path | None
    resume_checkpoint: Path
    log_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    epochs_completed: int = 0
    label_map: LabelMap | None = None
    score_threshold: float | None = None

    @property
    def model_path(self) -> Path:
        """The checkpoint to use: the best one when there was validation, else the last."""
        return self.best_model if self.best_model is not None else self.last_model


def check_train_config(cfg: TrainConfig) -> None:
    """Names in a :class:`TrainConfig` that must come from a fixed list."""
    for name, value, allowed in (
        ("lr_schedule", cfg.lr_schedule, LR_SCHEDULES),
        ("optimizer", cfg.optimizer, OPTIMIZERS),
        ("logger", cfg.logger, LOGGERS),
    ):
        if value not in allowed:
            raise InvalidInputError(f"Unknown {name} {value!r}; choose one of {list(allowed)}.")


def load_annotation_table(
    data: str | os.PathLike | pd.DataFrame | AnnotationSet, root_dir: str | os.PathLike | None,
    label_map: LabelMap | None,
) -> tuple[AnnotationSet, str | None]:
    """(annotations with their empty images, image folder) from an annotation file, a table or a set.

    The image folder is ``root_dir``, else the annotation file's folder
    (``None`` for a table or a set).
    """
    table = read_annotation_set(data, root_dir=root_dir, label_map=label_map)
    if root_dir is None and not isinstance(data, (pd.DataFrame, AnnotationSet)):
        root_dir = os.path.dirname(os.path.abspath(os.fspath(data)))
    return table, (os.fspath(root_dir) if root_dir is not None else None)


def _describe_data(data: str | os.PathLike | pd.DataFrame | AnnotationSet) -> str:
    """The path of annotation data, or ``<DataFrame>`` / ``<AnnotationSet>`` for data in memory."""
    return f"<{type(data).__name__}>" if isinstance(data, (pd.DataFrame, AnnotationSet)) else str(data)


def choose_labels(
    model: nn.Module, current: LabelMap, labels: Sequence[str] | None, table: pd.DataFrame
) -> LabelMap:
    """The label map to train for; rebuilds the classification head when it changes.

    ``labels`` given: exactly those. Otherwise the model's labels when the
    data's labels are among them, else the data's labels sorted by name. A
    new label map gets a fresh classification head; backbone, FPN and box
    regression keep their weights.
    """
    if labels is not None:
        chosen = LabelMap(labels)
    else:
        found = sorted(set(table["label"].astype(str)))
        chosen = current if set(found) <= set(current.names) else LabelMap(found)
    if chosen != current:
        replace_classification_head(model, len(chosen))
    return chosen


def training_gsd(
    gsd: float | None,
    model_gsd: float | None,
    train: str | os.PathLike | pd.DataFrame | AnnotationSet,
    root_dir: str | os.PathLike | None = None,
    labels: Sequence[str] | None = None,
) -> float | None:
    """The GSD (m per pixel) a run trains at: ``gsd``, else the model's, else the training images' common one.

    The last is read from the images' transforms (:func:`~deepforest_lite.gsd.common_gsd`);
    ``None``, with a :class:`~deepforest_lite.errors.GSDWarning`, when they have
    none or disagree by more than 10 %.
    """
    from ..gsd import GSDWarning, check_gsd, common_gsd

    if gsd is not None:
        return check_gsd(gsd)
    if model_gsd is not None:
        return model_gsd
    table, folder = load_annotation_table(train, root_dir, LabelMap(labels) if labels is not None else None)
    paths = [p if os.path.isabs(p) or folder is None else os.path.join(folder, p) for p in table.images]
    found, note = common_gsd(paths)
    if found is None:
        warnings.warn(
            f"The model records no GSD: {note}; pass gsd= (metres per pixel) to fit to record it "
            "(and to resample georeferenced images to it).",
            GSDWarning,
            stacklevel=4,
        )
    return found


def fit_options() -> list[str]:
    """The keywords of :func:`fit_model` besides ``config``: ``labels``, ``root_dir``, ... ``callbacks``.

    :meth:`Detector.fit <deepforest_lite.Detector.fit>` passes these through
    and takes every other keyword as a :class:`~deepforest_lite.config.TrainConfig` field.
    """
    params = inspect.signature(fit_model).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "config"]


def fit_model(
    model: RetinaNet,
    label_map: LabelMap,
    model_config: ModelConfig,
    train: str | os.PathLike | pd.DataFrame | AnnotationSet,
    val: str | os.PathLike | pd.DataFrame | AnnotationSet | None = None,
    *,
    config: TrainConfig,
    labels: Sequence[str] | None = None,
    root_dir: str | os.PathLike | None = None,
    val_root_dir: str | os.PathLike | None = None,
    output_dir: str | os.PathLike = "runs/train",
    resume: str | os.PathLike | bool | None = None,
    crop_size: int | None = None,
    cache_images: bool = True,
    provenance: Mapping[str, Any] | None = None,
    progress: bool = True,
    callbacks: Sequence[L.Callback] = (),
) -> TrainingResult:
    """Train ``model`` in place on annotated images; :meth:`Detector.fit <deepforest_lite.Detector.fit>` calls it.

    Args:
        model: the torchvision RetinaNet to train (its classification head is
            replaced when the labels change).
        label_map: the labels ``model`` predicts now.
        model_config: its settings (``gsd`` is the GSD images are resampled to).
        train: annotations (DeepForest CSV, Pascal VOC, COCO, vector file with
            a raster... anything :func:`~deepforest_lite.annotations.read_annotations`
            reads), a box table or an :class:`~deepforest_lite.annotations.AnnotationSet`
            (images without boxes are trained as negatives).
        val: validation annotations, evaluated every epoch (optional).
        config: the run's :class:`~deepforest_lite.config.TrainConfig`.
        labels: the classes to train for. When they differ from ``label_map``,
            the classification head is rebuilt for them while backbone, FPN
            and box regression keep their weights. Default: ``label_map`` if the
            data's labels are among its names, else the data's labels sorted by name.
        root_dir, val_root_dir: folders holding the images (default: the
            annotation file's folder).
        output_dir: where checkpoints and logs go (see :mod:`deepforest_lite.train`);
            one run per folder: a folder that already holds a run is refused
            unless ``resume`` is given.
        resume: ``True`` (this ``output_dir``'s last state) or the path of a
            Lightning ``last.ckpt`` to continue an interrupted run; the stored
            run must match (data, labels, model, settings; ``epochs`` may
            grow), else :class:`~deepforest_lite.errors.InvalidInputError` names the difference.
        crop_size: train on random ``crop_size`` px crops of each image.
        cache_images: keep decoded images in memory after the first read
            (each DataLoader worker holds its own copy).
        provenance: JSON-serialisable facts stored in the saved models'
            ``training`` metadata (``deepforest-lite train`` records the
            ``--from`` model and its full command line here).
        progress: show Lightning's progress bar (steps and loss).
        callbacks: extra Lightning callbacks.

    Returns:
        A :class:`TrainingResult`.
    """
    check_train_config(config)
    output = Path(output_dir)
    _check_run_folder(output, resume)  # a finished or interrupted run is never silently mixed with a new one
    L.seed_everything(config.seed, workers=True, verbose=False)
    wanted = LabelMap(labels) if labels is not None else None
    train_table, train_root = load_annotation_table(train, root_dir, wanted)
    new_head = choose_labels(model, label_map, labels, train_table.boxes)
    if new_head != label_map and val is None:
        warnings.warn(
            f"The classification head was rebuilt for the labels {list(new_head.names)}, and without validation "
            f"data its score threshold is set to DeepForest's {NEW_HEAD_SCORE_THRESHOLD} (the old model's "
            f"{float(model.score_thresh):g} says nothing about the new head); pass validation data to choose it "
            "by F1, or set score_threshold after training.",
            TrainingWarning,
            stacklevel=3,
        )
        model.score_thresh = NEW_HEAD_SCORE_THRESHOLD
    label_map = new_head
    augmentation = build_augmentation(config.augment, crop_size=crop_size, min_box_size=config.min_box_size)
    train_set = TrainingDataset(train_table, train_root, label_map, augmentation, cache_images=cache_images,
                                gsd=model_config.gsd)  # images resampled to the model's GSD
    if len(train_set) == 0:
        raise InvalidInputError(f"The training data {train!r} holds no images; give annotations with at least one image.")
    loader = _loader(train_set, config, shuffle=True)
    val_loader = None
    if val is not None:
        val_table, val_root = load_annotation_table(val, val_root_dir if val_root_dir is not None else None, label_map)
        val_set = TrainingDataset(val_table, val_root, label_map, None, cache_images=cache_images,
                                  gsd=model_config.gsd)
        val_loader = _loader(val_set, config, shuffle=False)

    identity = _run_identity(train_table, val_table if val is not None else None, label_map, model_config,
                             config, crop_size)
    resume_path = _resume_path(resume, output, identity, config)
    if resume_path is None:
        _write_run_file(output, identity)
    module = DetectorModule(model, label_map, model_config, config)
    monitor = MONITOR if val_loader is not None else None
    lightning_ckpt = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=output / "checkpoints", filename="epoch{epoch:03d}", auto_insert_metric_name=False,
        save_last=True, save_top_k=1, monitor=monitor, mode="max",
        enable_version_counter=False,  # one run per folder: a resumed run (also a moved one) rewrites last.ckpt
    )
    info = {
        "train": _describe_data(train),
        "val": None if val is None else _describe_data(val),
        "train_images": len(train_set),
        "train_boxes": train_set.num_boxes,
        "train_config": dataclasses.asdict(config),
        "crop_size": crop_size,
        "hardware": _hardware(),
        **(provenance or {}),
    }
    export = _ExportCheckpoints(output, info, monitor)
    if config.logger == "tensorboard":
        logger: Any = L.pytorch.loggers.TensorBoardLogger(output, name="logs")
    else:
        logger = L.pytorch.loggers.CSVLogger(output, name="logs")
    model.train()  # Lightning keeps the mode it finds; Detector models rest in eval mode
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with _quiet_lightning():
            trainer = _trainer(config, [lightning_ckpt, export, *callbacks], logger, progress, len(loader), output)
            trainer.fit(module, loader, val_loader, ckpt_path=resume_path, weights_only=True)
    except SystemExit:  # Lightning turns Ctrl-C into sys.exit(1) after a graceful shutdown
        if trainer.interrupted:
            raise KeyboardInterrupt(
                f"Training was interrupted; continue it with resume=True and output_dir={str(output)!r}."
            ) from None
        raise
    finally:
        model.eval()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, sigint)  # Lightning leaves Ctrl-C ignored
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
    best = output / "best.safetensors"
    has_best = bool(monitor) and best.exists()
    threshold = export.best_threshold if has_best and export.best_threshold is not None else float(model.score_thresh)
    return TrainingResult(
        output_dir=output,
        last_model=output / "last.safetensors",
        best_model=best if has_best else None,
        resume_checkpoint=output / "checkpoints" / "last.ckpt",
        log_dir=Path(logger.log_dir),
        metrics=metrics,
        epochs_completed=trainer.current_epoch,
        label_map=label_map,
        score_threshold=threshold,
    )


def _trainer(
    config: TrainConfig, callbacks: list, logger: Any, progress: bool, steps_per_epoch: int, output: Path
) -> L.Trainer:
    return L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        num_nodes=config.num_nodes,
        precision=cast("_PRECISION_INPUT", config.precision),  # a Lightning name (check_trainer_settings checked it)
        accumulate_grad_batches=config.accumulate_grad_batches,
        callbacks=[*callbacks, L.pytorch.callbacks.LearningRateMonitor("step")],
        logger=logger,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, steps_per_epoch)),
        default_root_dir=output,
    )


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hide Lightning's start-up chatter (hardware lines, tips) and its advice warnings.

    Filtered by class, not message text: Lightning's ``PossibleUserWarning`` (worker counts,
    logging intervals) and the plain ``UserWarning`` warnings issued from Lightning's own modules
    (checkpoint folder not empty, no validation loop). Warnings of this package pass.
    """
    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        from lightning.fabric.utilities.warnings import PossibleUserWarning

        warnings.filterwarnings("ignore", category=PossibleUserWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"lightning(\.|$)")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(lightning|torch\.utils\._pytree)(\.|$)")
        try:
            yield
        finally:
            log.setLevel(level)


def _loader(dataset: TrainingDataset, config: TrainConfig, shuffle: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=shuffle,
        num_workers=config.workers,
        collate_fn=collate,
        persistent_workers=config.workers > 0,
    )


def _hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
