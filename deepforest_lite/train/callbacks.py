"""Lightning callbacks: our checkpoint format written after every epoch (``last`` and ``best``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch

from .. import checkpoint as ckpt
from ..config import ModelConfig
from .module import DetectorModule


class _ExportCheckpoints(L.Callback):
    """Writes our checkpoint format after every epoch: ``last`` always, ``best`` on a new best."""

    def __init__(self, output_dir: Path, provenance: Mapping[str, Any], monitor: str | None) -> None:
        self.output_dir = output_dir
        self.provenance = dict(provenance)
        self.monitor = monitor
        self.best_score: float | None = None
        self.best_threshold: float | None = None
        self._started = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        module = cast(DetectorModule, pl_module)  # fit_model gives this callback to a Trainer of a DetectorModule
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
        extra = {
            **self.provenance,
            "epochs_completed": trainer.current_epoch + 1,
            "metrics": metrics,
            "wall_time_s_this_session": round(time.perf_counter() - self._started, 1),
        }
        save = lambda name: ckpt.save_checkpoint(  # noqa: E731
            self.output_dir / name, module.model.state_dict(), module.label_map,
            _live_config(module), extra=extra,
        )
        save("last.safetensors")
        score = metrics.get(self.monitor) if self.monitor else None
        if score is not None and (self.best_score is None or score > self.best_score):
            self.best_score = score
            self.best_threshold = float(module.model.score_thresh)
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
