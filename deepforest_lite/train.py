"""The training engine: a thin LightningModule around the RetinaNet, the Trainer set-up, checkpoints.

Every epoch writes, in ``output_dir``:

* ``last.safetensors``: our checkpoint format (loads with ``load_model``);
* ``best.safetensors``: the same, for the epoch with the best validation
  mAP@0.5 (only with validation data);
* ``checkpoints/last.ckpt``: Lightning's resumable state (weights, optimizer,
  scheduler, epoch), used by ``resume``;
* ``logs/``: CSV logs (or TensorBoard with ``logger="tensorboard"``).

Validation each epoch logs ``val_loss``, ``val_box_precision`` and
``val_box_recall`` (DeepForest's per-image means at ``val_iou_threshold``,
0.4 by default), ``val_precision``/``val_recall``/``val_f1`` (pooled) and
``val_map50``/``val_map`` (COCO mAP).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import platform
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import checkpoint as ckpt
from .annotations import read_annotations
from .labels import LabelMap
from .augment import build_augmentation
from .boxes import make_boxes
from .config import ModelConfig, TrainConfig
from .dataset import TrainingDataset, collate
from .errors import InvalidInputError
from .model import replace_classification_head
from .predict import detections_to_table

__all__ = ["LR_SCHEDULES", "DetectorModule", "TrainingResult", "choose_labels", "fit_model"]

#: Learning-rate schedules by name (all step-wise except ``"plateau"``, which steps each epoch).
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step", "onecycle", "plateau")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
LOGGERS: tuple[str, ...] = ("csv", "tensorboard")
MONITOR = "val_map50"


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
    """

    output_dir: Path
    last_model: Path
    best_model: Path | None
    resume_checkpoint: Path
    log_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    epochs_completed: int = 0
    label_map: LabelMap | None = None

    @property
    def model_path(self) -> Path:
        """The checkpoint to use: the best one when there was validation, else the last."""
        return self.best_model if self.best_model is not None else self.last_model


class DetectorModule(L.LightningModule):
    """Training, validation and optimisation of a torchvision RetinaNet.

    Args:
        model: the RetinaNet (its ``state_dict`` keys appear prefixed
            ``model.`` in Lightning checkpoints, as DeepForest's do).
        label_map: class names in id order.
        model_config: the architecture, stored with the hyper-parameters.
        train_config: optimiser, schedule and validation settings.
    """

    def __init__(
        self, model: nn.Module, label_map: LabelMap, model_config: ModelConfig, train_config: TrainConfig
    ) -> None:
        super().__init__()
        self.model = model
        self.label_map = label_map
        self.model_config = model_config
        self.train_config = train_config
        self.save_hyperparameters(
            {
                "labels": list(label_map.names),
                "model_config": dataclasses.asdict(model_config),
                "train_config": {k: v for k, v in dataclasses.asdict(train_config).items()},
            }
        )
        self._val_predictions: list[pd.DataFrame] = []
        self._val_truth: list[pd.DataFrame] = []

    # -------------------------------------------------------------- steps

    def training_step(self, batch: tuple[list, list, list], batch_idx: int) -> torch.Tensor:
        images, targets, _ = batch
        losses = self.model(images, targets)
        loss = sum(losses.values())
        size = len(images)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        self.log("train_classification", losses["classification"], on_epoch=True, batch_size=size)
        self.log("train_regression", losses["bbox_regression"], on_epoch=True, batch_size=size)
        return loss

    def validation_step(self, batch: tuple[list, list, list], batch_idx: int) -> None:
        images, targets, paths = batch
        self.log("val_loss", self._loss_without_updating_statistics(images, targets), prog_bar=True,
                 on_epoch=True, batch_size=len(images))
        detections = self.model(images)
        for detection, target, path in zip(detections, targets, paths):
            self._val_predictions.append(detections_to_table(detection, self.label_map, path))
            boxes = target["boxes"].cpu().numpy()
            self._val_truth.append(make_boxes(boxes, self.label_map.decode(target["labels"].cpu().numpy()),
                                              image_path=path))

    def _loss_without_updating_statistics(self, images: list, targets: list) -> torch.Tensor:
        """Training-mode loss with batch norm kept in eval mode (running statistics untouched)."""
        self.model.train()
        for module in self.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        try:
            return sum(self.model(images, targets).values())
        finally:
            self.model.eval()

    def on_validation_epoch_end(self) -> None:
        from .evaluate import evaluate_boxes, mean_average_precision

        if not self._val_truth:
            return
        predictions = pd.concat(self._val_predictions, ignore_index=True)
        truth = pd.concat(self._val_truth, ignore_index=True)
        self._val_predictions, self._val_truth = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = evaluate_boxes(predictions, truth, iou_threshold=self.train_config.val_iou_threshold)
            maps = mean_average_precision(predictions, truth, max_detections=max(100, self.model.detections_per_img))
        values = {
            "val_box_precision": scores["box_precision"],
            "val_box_recall": scores["box_recall"],
            "val_precision": scores["precision"],
            "val_recall": scores["recall"],
            "val_f1": scores["f1"],
            "val_map50": maps["map_50"],
            "val_map": maps["map"],
        }
        for name, value in values.items():
            # NaN (nothing predicted) would poison "best" tracking: count it as 0.
            value = 0.0 if value is None or math.isnan(value) else float(value)
            self.log(name, value, prog_bar=name == MONITOR)

    # -------------------------------------------------------------- optimisation

    def configure_optimizers(self) -> Any:
        cfg = self.train_config
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if cfg.lr_schedule == "plateau":
            monitor = "val_loss" if self.trainer.val_dataloaders is not None else "train_loss_epoch"
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=3)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "monitor": monitor}}
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": _step_scheduler(optimizer, cfg, total), "interval": "step"}}


def _step_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total: int) -> Any:
    """The per-step schedule ``cfg.lr_schedule`` with ``cfg.warmup_steps`` of linear warm-up."""
    sched = torch.optim.lr_scheduler
    warmup = min(cfg.warmup_steps, total - 1) if total > 1 else 0
    rest = max(1, total - warmup)
    if cfg.lr_schedule == "onecycle":
        return sched.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total)
    if cfg.lr_schedule == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=rest, eta_min=cfg.lr * 0.01)
    elif cfg.lr_schedule == "step":
        main = sched.MultiStepLR(optimizer, milestones=[int(rest * 2 / 3), int(rest * 8 / 9)], gamma=0.1)
    else:
        main = sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return main
    ramp = sched.LinearLR(optimizer, start_factor=0.01, end_factor=1.0, total_iters=warmup)
    return sched.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


class _ExportCheckpoints(L.Callback):
    """Writes our checkpoint format after every epoch: ``last`` always, ``best`` on a new best."""

    def __init__(self, output_dir: Path, provenance: Mapping[str, Any], monitor: str | None) -> None:
        self.output_dir = output_dir
        self.provenance = dict(provenance)
        self.monitor = monitor
        self.best_score: float | None = None
        self._started = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: DetectorModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: DetectorModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
        extra = {
            **self.provenance,
            "epochs_completed": trainer.current_epoch + 1,
            "metrics": metrics,
            "wall_time_s_this_session": round(time.perf_counter() - self._started, 1),
        }
        save = lambda name: ckpt.save_checkpoint(  # noqa: E731
            self.output_dir / name, pl_module.model.state_dict(), pl_module.label_map,
            _live_config(pl_module), extra=extra,
        )
        save("last.safetensors")
        score = metrics.get(self.monitor) if self.monitor else None
        if score is not None and (self.best_score is None or score > self.best_score):
            self.best_score = score
            save("best.safetensors")

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict.get("best_score")


def _live_config(module: DetectorModule) -> ModelConfig:
    m = module.model
    return dataclasses.replace(
        module.model_config,
        score_threshold=float(m.score_thresh),
        nms_threshold=float(m.nms_thresh),
        detections_per_image=int(m.detections_per_img),
    )


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
    data: str | os.PathLike | pd.DataFrame, root_dir: str | os.PathLike | None, label_map: LabelMap | None
) -> tuple[pd.DataFrame, str | None]:
    """(box table, image folder) from an annotation file or an existing table."""
    table = read_annotations(data, root_dir=root_dir, label_map=label_map)
    if root_dir is None and not isinstance(data, pd.DataFrame):
        root_dir = os.path.dirname(os.path.abspath(os.fspath(data)))
    return table, (os.fspath(root_dir) if root_dir is not None else None)


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


def fit_model(
    model: nn.Module,
    label_map: LabelMap,
    model_config: ModelConfig,
    train: str | os.PathLike | pd.DataFrame,
    val: str | os.PathLike | pd.DataFrame | None = None,
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
    """Train ``model`` in place on annotated images; see :meth:`deepforest_lite.Detector.fit`."""
    check_train_config(config)
    output = Path(output_dir)
    L.seed_everything(config.seed, workers=True, verbose=False)
    wanted = LabelMap(labels) if labels is not None else None
    train_table, train_root = load_annotation_table(train, root_dir, wanted)
    label_map = choose_labels(model, label_map, labels, train_table)
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

    resume_path = _resume_path(resume, output)
    module = DetectorModule(model, label_map, model_config, config)
    monitor = MONITOR if val_loader is not None else None
    lightning_ckpt = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=output / "checkpoints", filename="epoch{epoch:03d}", auto_insert_metric_name=False,
        save_last=True, save_top_k=1, monitor=monitor, mode="max",
    )
    info = {
        "train": str(train) if not isinstance(train, pd.DataFrame) else "<DataFrame>",
        "val": None if val is None else (str(val) if not isinstance(val, pd.DataFrame) else "<DataFrame>"),
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
    return TrainingResult(
        output_dir=output,
        last_model=output / "last.safetensors",
        best_model=best if monitor and best.exists() else None,
        resume_checkpoint=output / "checkpoints" / "last.ckpt",
        log_dir=Path(logger.log_dir),
        metrics=metrics,
        epochs_completed=trainer.current_epoch,
        label_map=label_map,
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
        precision=config.precision,
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
    """Hide Lightning's start-up chatter (hardware lines, tips) and its advice warnings."""
    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|LeafSpec|no `val_dataloader`"
                                "|Skipping val loop|smaller than the logging interval|exists and is not empty).*")
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


def _resume_path(resume: str | os.PathLike | bool | None, output: Path) -> str | None:
    if resume is None or resume is False:
        return None
    path = output / "checkpoints" / "last.ckpt" if resume is True else Path(resume)
    if not path.is_file():
        raise InvalidInputError(
            f"Cannot resume: {str(path)!r} does not exist; resume needs the checkpoints/last.ckpt of an earlier run "
            "with the same output folder."
        )
    return str(path)


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
