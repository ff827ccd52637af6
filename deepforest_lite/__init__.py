"""deepforest_lite: tree crown and bird detection in aerial RGB imagery.

The public API is listed in ``__all__``. Names are imported lazily, so
``import deepforest_lite`` is fast and torch-free: torch is loaded only when a
model-related name (``Detector``, ``load_model``, ...) is first used.

Example:
    >>> import deepforest_lite as dfl
    >>> det = dfl.load_model()                    # the bundled tree model
    >>> boxes = det.predict_tile(dfl.get_data("OSBS_029.tif"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "DeepForestLiteError": "errors",
    "InvalidInputError": "errors",
    "ImageReadError": "errors",
    "RasterError": "errors",
    "AnnotationError": "errors",
    "LabelError": "errors",
    "CheckpointError": "errors",
    "UnsafeCheckpointError": "errors",
    "ModelDownloadError": "errors",
    "DataNotFoundError": "errors",
    "ConfigError": "errors",
    "MissingLabelsError": "errors",
    "WriteError": "errors",
    "UnknownNameError": "errors",
    # warnings (all subclasses of DeepForestLiteWarning, itself a UserWarning)
    "DeepForestLiteWarning": "errors",
    "BoxesClippedWarning": "errors",
    "SplitWarning": "errors",
    "EvaluationWarning": "errors",
    "TrainingWarning": "errors",
    "GSDWarning": "errors",
    # configuration and contracts
    "ModelConfig": "config",
    "PredictConfig": "config",
    "TrainConfig": "config",
    "empty_boxes": "boxes",
    "LabelMap": "labels",
    "AnnotationSet": "annotations",
    "read_annotations": "annotations",
    "read_annotation_set": "annotations",
    "write_annotations": "annotations",
    "empty_images": "annotations",
    "image_paths": "annotations",
    "with_empty_images": "annotations",
    "window_grid": "windows",
    "split_raster": "preprocess",
    "Window": "windows",
    "read_image": "raster",
    "RasterSource": "raster",
    "boxes_to_map": "geo",
    "write_boxes": "geo",
    "get_data": "data",
    # evaluation and pictures
    "evaluate_boxes": "evaluate",
    "EvaluationResult": "evaluate",
    "mean_average_precision": "evaluate",
    "threshold_sweep": "evaluate",
    "best_threshold": "evaluate",
    "plot_predictions": "visualize",
    "plot_precision_recall": "plots",
    # model
    "Detector": "detector",
    "load_model": "detector",
    # tiled prediction
    "WindowDataset": "dataset",
    "collate_windows": "dataset",
    # survey-scale prediction
    "expand_inputs": "survey",
    "MosaicSource": "mosaic",
}

__all__ = ["__version__", *_EXPORTS]

_SUBMODULES = frozenset(
    """annotations augment bands boxes checkpoint cli compat config data dataset detector engines errors evaluate export geo
    merge model mosaic plots predict preprocess raster rasterfile resample resume survey train visualize windows""".split()
)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in _SUBMODULES:  # `dfl.config`, `dfl.train`, ... without an explicit import
            return importlib.import_module(f".{name}", __name__)
        if not name.startswith("_"):
            from .compat import DEEPFOREST_HINTS, unknown_name_error

            if name in DEEPFOREST_HINTS:  # DeepForest's spelling: say ours
                raise unknown_name_error("deepforest_lite", name, __all__, kind="name")
        raise AttributeError(f"module 'deepforest_lite' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for static type checkers only
    from .annotations import (
        AnnotationSet,
        empty_images,
        image_paths,
        read_annotation_set,
        read_annotations,
        with_empty_images,
        write_annotations,
    )
    from .boxes import empty_boxes
    from .config import ModelConfig, PredictConfig, TrainConfig
    from .data import get_data
    from .dataset import WindowDataset, collate_windows
    from .detector import Detector, load_model
    from .errors import (
        AnnotationError,
        BoxesClippedWarning,
        CheckpointError,
        ConfigError,
        DataNotFoundError,
        DeepForestLiteError,
        DeepForestLiteWarning,
        EvaluationWarning,
        GSDWarning,
        ImageReadError,
        InvalidInputError,
        LabelError,
        MissingLabelsError,
        ModelDownloadError,
        RasterError,
        SplitWarning,
        TrainingWarning,
        UnknownNameError,
        UnsafeCheckpointError,
        WriteError,
    )
    from .evaluate import (
        EvaluationResult,
        best_threshold,
        evaluate_boxes,
        mean_average_precision,
        threshold_sweep,
    )
    from .geo import boxes_to_map, write_boxes
    from .labels import LabelMap
    from .mosaic import MosaicSource
    from .plots import plot_precision_recall
    from .preprocess import split_raster
    from .raster import RasterSource, read_image
    from .survey import expand_inputs
    from .visualize import plot_predictions
    from .windows import Window, window_grid
