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

Modules: :mod:`.module` (:class:`DetectorModule`), :mod:`.schedules`, :mod:`.callbacks`,
:mod:`.fit` (:func:`fit_model`, :func:`training_gsd`), :mod:`.resume` (run folders, resuming).
"""

from __future__ import annotations

from .fit import (
    LOGGERS,
    TrainingResult,
    check_train_config,
    choose_labels,
    fit_model,
    fit_options,
    load_annotation_table,
    training_gsd,
)
from .module import (
    MONITOR,
    NEW_HEAD_SCORE_THRESHOLD,
    VAL_SCORE_THRESHOLD,
    DetectorModule,
)
from .resume import RUN_FILE, describe_resume, epochs_done
from .schedules import LR_SCHEDULES, OPTIMIZERS
from .schedules import _step_scheduler as _step_scheduler  # for tests of the schedules

__all__ = [
    "LR_SCHEDULES",
    "RUN_FILE",
    "DetectorModule",
    "TrainingResult",
    "choose_labels",
    "describe_resume",
    "epochs_done",
    "fit_model",
    "fit_options",
    "training_gsd",
    "OPTIMIZERS",
    "LOGGERS",
    "MONITOR",
    "VAL_SCORE_THRESHOLD",
    "NEW_HEAD_SCORE_THRESHOLD",
    "check_train_config",
    "load_annotation_table",
]
