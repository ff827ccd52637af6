"""Optimisers and learning-rate schedules: names, and the per-step schedule with warm-up."""

from __future__ import annotations

from typing import Any

import torch

from ..config import TrainConfig

#: Learning-rate schedules by name (all step-wise except ``"plateau"``, which steps each epoch).
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "step", "onecycle", "plateau")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")


def _step_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total: int) -> Any:
    """The per-step schedule ``cfg.lr_schedule`` with ``cfg.warmup_steps`` of linear warm-up."""
    sched = torch.optim.lr_scheduler
    warmup = min(cfg.warmup_steps, total - 1) if total > 1 else 0
    rest = max(1, total - warmup)
    if cfg.lr_schedule == "onecycle":
        return sched.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total)
    main: sched.LRScheduler
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
