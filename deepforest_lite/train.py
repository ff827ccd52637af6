"""The training engine: a thin LightningModule around the RetinaNet, the Trainer set-up, checkpoints.

Every epoch writes, in ``output_dir``:

* ``last.safetensors``: our checkpoint format (loads with ``load_model``);
* ``best.safetensors``: the same, for the epoch with the best validation
  mAP@0.5 (only with validation data);
* ``checkpoints/last.ckpt``: Lightning's resumable state (weights, optimizer,
  scheduler, epoch), used by ``resume``;
* ``logs/``: CSV logs (or TensorBoard with ``logger="tensorboard"``).

Validation predicts at a low score threshold (:data:`VAL_SCORE_THRESHOLD`),
so the figures reflect what the model finds while it is still learning, then
picks the score threshold with the best pooled F1 on the validation set
(:func:`~deepforest_lite.evaluate.threshold_sweep`) and logs, at that
threshold, ``val_box_precision`` and ``val_box_recall`` (DeepForest's
per-image means at ``val_iou_threshold``, 0.4 by default) and
``val_precision``/``val_recall``/``val_f1`` (pooled), plus
``val_score_threshold`` (the chosen threshold), ``val_truth_boxes``,
``val_map50``/``val_map`` (COCO mAP over all predictions) and ``val_loss``.
The chosen threshold becomes the model's ``score_threshold`` in the
checkpoints of that epoch. On several devices every rank's predictions are
gathered first, so the figures cover the whole validation set.

Without validation data, a model whose classification head is rebuilt for new
labels gets DeepForest's score threshold 0.1 (:data:`NEW_HEAD_SCORE_THRESHOLD`)
with a warning: the old model's threshold says nothing about the new head.
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
import numpy as np
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

__all__ = ["LR_SCHEDULES", "RUN_FILE", "DetectorModule", "TrainingResult", "choose_labels", "describe_resume", "epochs_done", "fit_model"]

#: Learning-rate schedules by name (all step-wise except ``"plateau"``, which steps each epoch).
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step", "onecycle", "plateau")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
LOGGERS: tuple[str, ...] = ("csv", "tensorboard")
MONITOR = "val_map50"
#: Score threshold of the predictions scored during validation (the chosen threshold is found above it).
VAL_SCORE_THRESHOLD = 0.01
#: Score threshold of a model retrained for new labels without validation data (DeepForest's default).
NEW_HEAD_SCORE_THRESHOLD = 0.1


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
            _plain({
                "labels": list(label_map.names),
                "model_config": dataclasses.asdict(model_config),
                "train_config": dataclasses.asdict(train_config),
            })
        )
        # (image path, predictions, truth) per validation image of this rank
        self._val_items: list[tuple[str, pd.DataFrame, pd.DataFrame]] = []
        self._threshold_before_val: float | None = None
        #: the best-F1 score threshold of the last validation (None before any)
        self.val_score_threshold: float | None = None

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
            boxes = target["boxes"].cpu().numpy()
            truth = make_boxes(boxes, self.label_map.decode(target["labels"].cpu().numpy()), image_path=path)
            self._val_items.append((path, detections_to_table(detection, self.label_map, path), truth))

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

    def on_validation_epoch_start(self) -> None:
        self._threshold_before_val = float(self.model.score_thresh)
        self.model.score_thresh = min(VAL_SCORE_THRESHOLD, self._threshold_before_val)

    def on_validation_epoch_end(self) -> None:
        from .evaluate import best_threshold, evaluate_boxes, mean_average_precision, threshold_sweep

        items = _gather_items(self._val_items)
        self._val_items = []
        chosen = self._threshold_before_val
        if items:
            predictions = pd.concat([p for _, p, _ in items], ignore_index=True)
            truth = pd.concat([t for _, _, t in items], ignore_index=True)
            iou = self.train_config.val_iou_threshold
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if len(predictions):
                    sweep = threshold_sweep(predictions, truth, _sweep_thresholds(predictions["score"]), iou)
                    if not sweep["f1"].isna().all() and sweep["f1"].max() > 0:
                        chosen = best_threshold(sweep)
                kept = predictions[predictions["score"] >= chosen] if chosen is not None else predictions
                scores = evaluate_boxes(kept, truth, iou_threshold=iou)
                maps = mean_average_precision(predictions, truth,
                                              max_detections=max(100, self.model.detections_per_img))
            values = {
                "val_box_precision": scores["box_precision"],
                "val_box_recall": scores["box_recall"],
                "val_precision": scores["precision"],
                "val_recall": scores["recall"],
                "val_f1": scores["f1"],
                "val_map50": maps["map_50"],
                "val_map": maps["map"],
                "val_score_threshold": chosen,
                "val_truth_boxes": len(truth),
            }
            distributed = self.trainer.world_size > 1
            for name, value in values.items():
                # NaN (nothing predicted) would poison "best" tracking: count it as 0.
                value = 0.0 if value is None or math.isnan(value) else float(value)
                self.log(name, value, prog_bar=name in (MONITOR, "val_f1"), sync_dist=distributed)
        if chosen is not None:
            self.model.score_thresh = float(chosen)
            self.val_score_threshold = float(chosen)

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


def _gather_items(
    items: list[tuple[str, pd.DataFrame, pd.DataFrame]],
) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """Every rank's validation items, each image once, sorted by path (one process: ``items`` sorted).

    A distributed sampler pads the ranks' shares with repeated images; keeping
    the first copy of each path scores every validation image exactly once.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        shares: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(shares, items)
        items = [item for share in shares for item in share]
    unique: dict[str, tuple[str, pd.DataFrame, pd.DataFrame]] = {}
    for item in items:
        unique.setdefault(item[0], item)
    return [unique[path] for path in sorted(unique)]


def _sweep_thresholds(scores: pd.Series) -> list[float]:
    """Score thresholds to try: 0.05 steps plus the score deciles (early in training every score may be < 0.05)."""
    grid = np.round(np.arange(0.05, 1.0, 0.05), 2).tolist()
    deciles = np.quantile(scores.to_numpy(float), np.linspace(0.1, 0.9, 9)).round(3).tolist()
    return sorted({VAL_SCORE_THRESHOLD, *grid, *deciles})


def _plain(value: Any) -> Any:
    """``value`` with tuples turned into lists, recursively (``hparams.yaml`` then loads with ``yaml.safe_load``)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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
        self.best_threshold: float | None = None
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
            self.best_threshold = float(pl_module.model.score_thresh)
            save("best.safetensors")

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_threshold": self.best_threshold}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict.get("best_score")
        self.best_threshold = state_dict.get("best_threshold")


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
    _check_run_folder(output, resume)  # a finished or interrupted run is never silently mixed with a new one
    L.seed_everything(config.seed, workers=True, verbose=False)
    wanted = LabelMap(labels) if labels is not None else None
    train_table, train_root = load_annotation_table(train, root_dir, wanted)
    new_head = choose_labels(model, label_map, labels, train_table)
    if new_head != label_map and val is None:
        warnings.warn(
            f"The classification head was rebuilt for the labels {list(new_head.names)}, and without validation "
            f"data its score threshold is set to DeepForest's {NEW_HEAD_SCORE_THRESHOLD} (the old model's "
            f"{float(model.score_thresh):g} says nothing about the new head); pass validation data to choose it "
            "by F1, or set score_threshold after training.",
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


#: the file in ``output_dir`` that records what a run trains (data, labels, model, settings)
RUN_FILE = "run.json"
#: TrainConfig fields that may change when a run is resumed (length and hardware, not what is learned)
_RESUMABLE_CHANGES = frozenset({"epochs", "workers", "accelerator", "devices", "strategy", "num_nodes", "precision",
                                "logger"})


def _last_checkpoints(output: Path) -> list[Path]:
    folder = output / "checkpoints"
    return sorted(folder.glob("last*.ckpt")) if folder.is_dir() else []


def _check_run_folder(output: Path, resume: str | os.PathLike | bool | None) -> None:
    """Refuse a new run in a folder that holds one, and a resume that would pick an ambiguous checkpoint."""
    if output.exists() and not output.is_dir():
        raise InvalidInputError(f"output_dir {str(output)!r} is a file; give a folder (it is created if missing).")
    last = _last_checkpoints(output)
    if resume is None or resume is False:
        held = last or [p for p in (output / "last.safetensors",) if p.is_file()]
        if held:
            raise InvalidInputError(
                f"output_dir {str(output)!r} already holds a training run ({held[0].relative_to(output)}); "
                "continue it with resume=True (--resume on the command line), or choose another output_dir."
            )
    elif resume is True and len(last) > 1:
        raise InvalidInputError(
            f"Cannot resume: {str(output / 'checkpoints')!r} holds the last checkpoints of several runs "
            f"({', '.join(p.name for p in last)}); pass the one to continue as resume='path/to/last.ckpt', "
            "or start a new run in another output_dir."
        )


def _table_fingerprint(table: pd.DataFrame) -> str:
    """A hash of the boxes (image, coordinates, label), independent of row order."""
    columns = [c for c in ("image_path", "xmin", "ymin", "xmax", "ymax", "label") if c in table.columns]
    rows = np.sort(pd.util.hash_pandas_object(table[columns].astype(str), index=False).to_numpy())
    images = sorted(map(str, table.attrs.get("empty_images", [])))
    return f"{len(table)}:{_hash_bytes(rows.tobytes() + repr(images).encode())}"


def _hash_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


def _run_identity(
    train: pd.DataFrame, val: pd.DataFrame | None, label_map: LabelMap, model_config: ModelConfig,
    config: TrainConfig, crop_size: int | None,
) -> dict[str, Any]:
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in _RESUMABLE_CHANGES}
    return {
        "train_data": _table_fingerprint(train),
        "val_data": None if val is None else _table_fingerprint(val),
        "labels": list(label_map.names),
        "model": dataclasses.asdict(model_config),
        "settings": {**settings, "crop_size": crop_size},
        "epochs": config.epochs,
    }


def _write_run_file(output: Path, identity: Mapping[str, Any]) -> None:
    import json

    from .files import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(identity, f, indent=1, default=str)

    atomic_write(output / RUN_FILE, write)


def _read_run_file(output: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads((output / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _checkpoint_for(resume: str | os.PathLike | bool, output: Path) -> Path:
    path = output / "checkpoints" / "last.ckpt" if isinstance(resume, bool) else Path(resume)
    if not path.is_file():
        raise InvalidInputError(
            f"Cannot resume: {str(path)!r} does not exist; resume needs the checkpoints/last.ckpt of an earlier run "
            "with the same output folder."
        )
    return path


def epochs_done(checkpoint: str | os.PathLike) -> int:
    """Epochs a Lightning ``last.ckpt`` has finished (read without loading its weights into memory)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    try:
        # saved at the end of an epoch, which counts as processed before it counts as completed
        return int(state["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int(state.get("epoch", -1)) + 1


def describe_resume(output_dir: str | os.PathLike, resume: str | os.PathLike | bool | None,
                    config: TrainConfig) -> str | None:
    """One line saying what ``fit(..., resume=resume)`` would continue ("resuming epoch N of M ..."), or ``None``.

    Raises the same errors as training would for a folder that holds a run
    when ``resume`` is false, or holds nothing (or several runs) to resume.
    """
    output = Path(output_dir)
    _check_run_folder(output, resume)
    if resume is None or resume is False:
        return None
    path = _checkpoint_for(resume, output)
    done = epochs_done(path)
    return f"resuming {str(path)!r}: epoch {done + 1} of {config.epochs} ({done} finished)"


def _resume_path(
    resume: str | os.PathLike | bool | None, output: Path, identity: Mapping[str, Any] | None = None,
    config: TrainConfig | None = None,
) -> str | None:
    """The checkpoint to resume from, after checking it belongs to this run (data, labels, model, settings)."""
    if resume is None or resume is False:
        return None
    path = _checkpoint_for(resume, output)
    stored = _read_run_file(path.parent.parent) if identity is not None else None
    if stored is not None and identity is not None:
        for key, what in (("train_data", "training data"), ("val_data", "validation data"), ("labels", "labels"),
                          ("model", "model settings"), ("settings", "training settings")):
            old, new = stored.get(key), _json_like(identity.get(key))
            if old != new:
                detail = _first_difference(old, new)
                raise InvalidInputError(
                    f"Cannot resume {str(path)!r}: its run used other {what}{detail}; resume with the same "
                    "data, labels, model and settings, or start a new run in another output_dir."
                )
    if config is not None:
        done = epochs_done(path)
        if done >= config.epochs:
            raise InvalidInputError(
                f"Cannot resume {str(path)!r}: it already finished {done} epoch(s) and epochs={config.epochs}; "
                f"give more than {done} epochs to train longer."
            )
    return str(path)


def _json_like(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    import json

    return json.loads(json.dumps(value, default=str))


def _first_difference(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return f" ({key} was {old.get(key)!r}, now {new.get(key)!r})"
    if isinstance(old, list) and isinstance(new, list):
        return f" ({old} then, {new} now)"
    return ""


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
