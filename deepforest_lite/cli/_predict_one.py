"""``deepforest-lite predict``: one raster predicted: the model, the call, its window checkpoint.

The boxes come from :meth:`Detector.predict_tile <deepforest_lite.detector.Detector.predict_tile>`
as a box table in raster pixels (``boxes.py``'s contract); ground-sample-distance warnings
become one ``note:`` line on stderr. Finished windows are checkpointed beside the output
(``OUT.partial.npz``) and the checkpoint removed once the output is written.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ..config import PredictConfig
    from ..detector import Detector
    from ..ranks import Ranks

__all__ = ["checkpoint_path", "load_detector", "predict_raster", "release_checkpoint", "remove_checkpoint"]


def load_detector(args: argparse.Namespace, device: str) -> Detector:
    """The ``--model`` detector on ``device``, with ``--labels``, ``--score-threshold`` and ``--model-gsd``."""
    from ..detector import load_model

    labels = getattr(args, "labels", None)
    names = [s.strip() for s in labels.split(",") if s.strip()] if labels else None
    detector = load_model(args.model, names, device=device)
    if args.score_threshold is not None:
        detector.score_threshold = args.score_threshold
    if getattr(args, "model_gsd", None) is not None:
        detector.gsd = args.model_gsd
    return detector


def predict_raster(
    detector: Detector, source: Any, config: PredictConfig, args: argparse.Namespace, checkpoint: str | None = None,
    bar: Any = None, window_ranks: Ranks | None = None,
) -> pd.DataFrame:
    """The boxes of one raster (``source``: a ``RasterSource`` or ``MosaicSource``), in raster pixels.

    ``bar``: the run's tqdm bar (``None``: no progress); ``window_ranks``: the processes that share
    this raster's windows (``None``: this process predicts all of them).
    """
    import warnings

    from ..gsd import GSDWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GSDWarning)
        table = _predict_tile(detector, source, config, args, checkpoint, bar, window_ranks)
    for warning in caught:
        if issubclass(warning.category, GSDWarning):
            print("note: " + " ".join(str(warning.message).replace("gsd=... (command line: --gsd)", "--gsd METRES")
                                      .split()), file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return table


def _predict_tile(
    detector: Detector, source: Any, config: PredictConfig, args: argparse.Namespace, checkpoint: str | None = None,
    bar: Any = None, window_ranks: Ranks | None = None,
) -> pd.DataFrame:
    if bar is not None:
        bar.set_description(os.path.basename(source.path) if not hasattr(source, "members") else "mosaic")
    return detector.predict_tile(
        source, config=config,  # every setting in the one PredictConfig run_prediction built
        progress=bar if bar is not None else False,
        checkpoint=None if args.no_checkpoint or checkpoint is None else checkpoint,
        checkpoint_seconds=args.checkpoint_every,
        ranks=window_ranks,
    )


def checkpoint_path(output: str, raster: str | None, mosaic: bool = False) -> str:
    """The window checkpoint beside an output: ``OUT.partial.npz`` (``OUT.STEM.partial.npz`` with ``--output``)."""
    from ..resume import CHECKPOINT_SUFFIX

    if raster is None:
        return output + CHECKPOINT_SUFFIX
    return f"{output}.{'mosaic' if mosaic else Path(raster).stem}{CHECKPOINT_SUFFIX}"


def release_checkpoint(path: str, window_ranks: Ranks | None, wait: bool = True) -> None:
    """Remove a raster's window checkpoint once its output is written (with shared windows: each rank its own).

    With shared windows rank 0 writes the output, so the ranks first wait for it (``wait``).
    """
    if window_ranks is None:
        remove_checkpoint(path)
        return
    from ..resume import rank_checkpoint_path

    if wait:
        window_ranks.barrier()
    remove_checkpoint(rank_checkpoint_path(path, window_ranks.rank, window_ranks.world_size))


def remove_checkpoint(path: str) -> None:
    """Remove ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
