"""``DetectorModule``: the LightningModule around the RetinaNet (steps, validation metrics, optimiser)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import nn

from ..boxes import make_boxes
from ..config import ModelConfig, TrainConfig
from ..detections import detections_to_table
from ..labels import LabelMap
from .schedules import _step_scheduler

if TYPE_CHECKING:
    from torchvision.models.detection.retinanet import RetinaNet

MONITOR = "val_map50"
#: Score threshold of the predictions scored during validation (the chosen threshold is found above it).
VAL_SCORE_THRESHOLD = 0.01
#: Score threshold of a model retrained for new labels without validation data (DeepForest's default).
NEW_HEAD_SCORE_THRESHOLD = 0.1


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
        self, model: RetinaNet, label_map: LabelMap, model_config: ModelConfig, train_config: TrainConfig
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
        """The summed RetinaNet losses of one batch (logged as ``train_loss``)."""
        images, targets, _ = batch
        losses = self.model(images, targets)
        loss = sum(losses.values())
        size = len(images)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        self.log("train_classification", losses["classification"], on_epoch=True, batch_size=size)
        self.log("train_regression", losses["bbox_regression"], on_epoch=True, batch_size=size)
        return loss

    def validation_step(self, batch: tuple[list, list, list], batch_idx: int) -> None:
        """Log ``val_loss`` and keep the batch's predictions for the epoch's metrics."""
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
        """Lower the score threshold to ``VAL_SCORE_THRESHOLD`` for validation."""
        self._threshold_before_val = float(self.model.score_thresh)
        self.model.score_thresh = min(VAL_SCORE_THRESHOLD, self._threshold_before_val)

    def on_validation_epoch_end(self) -> None:
        """Score the epoch's predictions, log the metrics and choose the score threshold."""
        from ..evaluate import (
            best_threshold,
            evaluate_boxes,
            mean_average_precision,
            threshold_sweep,
        )

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
                "val_box_precision": scores.box_precision,
                "val_box_recall": scores.box_recall,
                "val_precision": scores.precision,
                "val_recall": scores.recall,
                "val_f1": scores.f1,
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
        """The optimiser and learning-rate schedule of ``train_config``."""
        cfg = self.train_config
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer: torch.optim.Optimizer
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
