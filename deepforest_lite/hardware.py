"""Training settings that depend on this machine, checked before any data is read.

Lightning validates ``accelerator``, ``devices``, ``strategy``, ``num_nodes``
and ``precision`` only when a ``Trainer`` is built, which in a training run
happens after the annotations and images were loaded. :func:`check_trainer_settings`
builds a throw-away ``Trainer`` with the same settings at once (no data, no
model, no files) and turns Lightning's refusal into one
:class:`~deepforest_lite.errors.InvalidInputError` sentence; it also checks that
the logger's package is installed.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from typing import TYPE_CHECKING, cast

from .config import TrainConfig
from .errors import InvalidInputError, first_sentence

if TYPE_CHECKING:
    from lightning.fabric.connector import _PRECISION_INPUT

__all__ = ["check_logger", "check_trainer_settings"]


def check_logger(name: str) -> None:
    """``"tensorboard"`` needs the tensorboard (or tensorboardX) package; ``"csv"`` needs nothing."""
    if name == "tensorboard" and not (_module_available("tensorboard") or _module_available("tensorboardX")):
        raise InvalidInputError(
            "logger 'tensorboard' needs the tensorboard package, which is not installed; "
            "run `pip install tensorboard`, or use logger 'csv'."
        )


def check_trainer_settings(config: TrainConfig) -> None:
    """Refuse, before any work, hardware settings this machine or Lightning cannot run.

    Raises:
        InvalidInputError: e.g. ``accelerator="gpu"`` without a GPU, an unknown
            ``precision`` or ``strategy``, more ``devices`` than there are.
    """
    check_logger(config.logger)
    import lightning as L

    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.ERROR)  # no "GPU available: False" lines for a check
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            L.Trainer(
                accelerator=config.accelerator,
                devices=config.devices,
                strategy=config.strategy,
                num_nodes=config.num_nodes,
                # any text: checking it against Lightning's names is what this Trainer is built for
                precision=cast("_PRECISION_INPUT", config.precision),
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
    except Exception as exc:  # MisconfigurationException, ValueError, RuntimeError, ...
        raise InvalidInputError(
            f"Lightning cannot train with accelerator={config.accelerator!r}, devices={config.devices!r}, "
            f"strategy={config.strategy!r}, precision={config.precision!r} here: {first_sentence(exc)}; "
            "change these settings (accelerator 'cpu' always works)."
        ) from None
    finally:
        log.setLevel(level)


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None

