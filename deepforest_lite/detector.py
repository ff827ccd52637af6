"""``Detector``: a RetinaNet with its labels and settings; each method a short delegation."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from . import checkpoint as ckpt
from . import predict as _predict
from .compat import deepforest_keywords
from .config import ModelConfig, PredictConfig, TrainConfig, check_keys
from .errors import InvalidInputError
from .labels import LabelMap
from .loading import Network, load_network, network_from_checkpoint, new_network
from .model import resolve_device
from .raster import RasterSource

if TYPE_CHECKING:
    from .annotations import AnnotationSet
    from .ranks import Ranks
    from .train import TrainingResult

__all__ = ["Detector", "load_model"]


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _tile_keywords() -> list[str]:  # PredictConfig fields, but class_aware and device are predict_tile's own
    return [name for name in _fields(PredictConfig) if name not in ("class_aware_merge", "device")]


def _fit_keywords() -> list[str]:
    from .train import fit_options

    return [*fit_options(), *_fields(TrainConfig)]


class Detector(Network):
    """A multi-class RetinaNet detector for RGB imagery.

    The network, its labels and settings (:attr:`labels`, :attr:`config`,
    :attr:`gsd`, :attr:`score_threshold`, :attr:`device`...) are
    :class:`~deepforest_lite.loading.Network`'s; the methods here build, save,
    export, predict and train.

    Args:
        labels: class names; the i-th gets id ``i`` (no background class).
        backbone: ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"resnet101"``.
        backbone_weights: ``None`` (random initialisation, the default), a path
            to a torchvision ResNet ImageNet state dict (``.pth``/``.safetensors``),
            or ``"imagenet"`` to download torchvision's ImageNet weights (the
            only case that touches the network).
        config: every architecture setting at once (overrides ``backbone``).
            Without it, a new model gets :meth:`ModelConfig.for_weights`'s
            defaults: trainable batch norm, all five ResNet stages and
            GroupNorm heads from random weights; frozen batch norm, three
            trainable stages and torchvision's heads over pretrained weights.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``...
        **options: single :class:`~deepforest_lite.config.ModelConfig` fields,
            e.g. ``resize="scale", scale_factor=1.0``; an unknown name is a
            :class:`~deepforest_lite.errors.ConfigError` listing the valid ones.

    The model is in evaluation mode after construction. ``score_threshold``,
    ``nms_threshold`` and ``detections_per_image`` may be changed at any time
    and take effect on the next prediction.

    DeepForest's names work where its users reach for them
    (``predict_image(path=...)``, ``predict_tile(path=...)``); its other
    spellings (``score_thresh``, ``label_dict``, ``save_model``, ...) raise an
    :class:`~deepforest_lite.errors.UnknownNameError` that names ours, also
    when set as attributes (``det.score_thresh = 0.3`` would otherwise do
    nothing). See ``docs/from-deepforest.md``.
    """

    @deepforest_keywords(extra_names=lambda: _fields(ModelConfig))
    def __init__(
        self,
        labels: Sequence[str] = ("Tree",),
        backbone: str = "resnet50",
        *,
        backbone_weights: str | os.PathLike | None = None,
        config: ModelConfig | None = None,
        device: str | torch.device | None = "auto",
        **options: Any,
    ) -> None:
        check_keys(ModelConfig, options, "Detector options")
        if config is None:
            config = ModelConfig.for_weights(backbone_weights is not None, backbone=backbone, **options)
        elif options:
            config = dataclasses.replace(config, **options)
        self._adopt(new_network(LabelMap(labels), config, backbone_weights, device))

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_checkpoint(cls, checkpoint: ckpt.Checkpoint, device: str | torch.device | None = "auto") -> Detector:
        """Build a detector from a loaded :class:`~deepforest_lite.checkpoint.Checkpoint`."""
        return cls._from_network(network_from_checkpoint(checkpoint, device))

    @classmethod
    def _from_network(cls, network: Network) -> Detector:
        detector = cls.__new__(cls)
        detector._adopt(network)
        return detector

    # ------------------------------------------------------------------ files

    def save(
        self,
        path: str | os.PathLike,
        *,
        half: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Save weights and metadata in our checkpoint format (safetensors + JSON header).

        ``half=True`` stores float16 weights (half the size; predictions may
        differ in the last digits). Loading with :func:`load_model` with
        ``half=False`` reproduces this detector's predictions bit for bit.
        """
        self._require_weights("save")
        return ckpt.save_checkpoint(
            path,
            self.model.state_dict(),
            self.label_map,
            self.config,
            extra={**self.metadata.get("training", {}), **(extra or {})},
            dtype=torch.float16 if half else torch.float32,
        )

    def export(self, path: str | os.PathLike, format: str = "onnx") -> Path:
        """Write the network for deployment, with what prediction needs, to one file.

        The file holds the backbone, FPN and head convolutions (dynamic batch
        size and image size) and, in its metadata, the labels, thresholds,
        input scale, anchors, every :class:`ModelConfig` field and the package
        version (see :mod:`deepforest_lite.export` for the input, outputs and
        metadata). :func:`load_model` reads it back and predicts through the
        same API; anchor decoding, NMS and merging stay in this package.

        Args:
            path: the file to write (atomically), e.g. ``"tree.onnx"``.
            format: ``"onnx"`` (run by onnxruntime) or ``"torchscript"`` (run by
                PyTorch / LibTorch without this package's model code).

        Returns:
            ``path`` as a :class:`~pathlib.Path`.
        """
        from .export import export_model

        self._require_weights("export")
        return export_model(self.model, self.label_map, self.config, path, format)

    # ------------------------------------------------------------------ prediction

    @deepforest_keywords(aliases={"path": "image"})
    def predict_image(
        self,
        image: str | os.PathLike | np.ndarray,
        *,
        image_path: str | None = None,
        precision: str = "fp32",
        engine: str = PredictConfig.engine,
        gsd: float | None = None,
        rescale: bool = True,
    ) -> pd.DataFrame:
        """Detect objects in one image (path to PNG/JPEG/TIFF, or ``H x W x 3`` uint8 RGB array).

        DeepForest's ``path=`` works for ``image`` (as does ``image=`` itself).
        ``gsd``: the image's pixel size in metres (a georeferenced file's
        transform gives it otherwise). When it and the model's :attr:`gsd`
        differ by more than 10 % the image is resampled to the model's GSD
        first (``rescale=False`` turns this off).
        ``engine`` (``"auto"``, ``"torch"``, ``"onnxruntime"``, ``"openvino"``) picks what runs
        the network on the weights' device, as for :meth:`predict_tile`.

        Returns a box table (``xmin, ymin, xmax, ymax, label, score, image_path``)
        in the image's pixel coordinates (origin top-left, x = column); an empty
        table with those columns when nothing is found.
        """
        PredictConfig(precision=precision, engine=engine)  # one-sentence errors for bad values
        return _predict.predict_image(
            self.model, self.label_map, image, image_path=image_path, precision=precision, engine=engine,
            gsd=gsd, rescale=rescale, model_gsd=self.gsd,
        )

    @deepforest_keywords(aliases={"path": "raster", "image": "raster", "raster_path": "raster"}, extra_names=_tile_keywords)
    def predict_tile(
        self,
        raster: str | os.PathLike | np.ndarray | RasterSource,
        patch_size: int | None = None,
        patch_overlap: float | None = None,
        iou_threshold: float | None = None,
        *,
        config: PredictConfig | None = None,
        device: str | torch.device | None = None,
        class_aware: bool | None = None,
        image_path: str | None = None,
        progress: bool | Any = True,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_seconds: float = 30.0,
        ranks: Ranks | None = None,
        **options: Any,
    ) -> pd.DataFrame:
        """Detect objects in a raster of any size, window by window, in bounded memory.

        The settings are a :class:`~deepforest_lite.config.PredictConfig`:
        ``config`` (default ``PredictConfig()`` on the weights' device), with
        every setting given as a keyword overriding that field of it.

        Args:
            raster: a GeoTIFF/PNG/JPEG path, an open :class:`~deepforest_lite.raster.RasterSource`,
                or an ``H x W x 3`` uint8 RGB array. DeepForest's keywords ``path=``
                (a file), ``image=`` (an array) and ``raster_path=`` (1.x) work too.
            patch_size: window side in px of the network's input (default 400).
            patch_overlap: fraction of the window side shared by neighbours, in [0, 1) (default 0.05).
            iou_threshold: boxes from different windows overlapping more than
                this (IoU) are duplicates; the lower-scoring one is removed (default 0.15).
            config: every setting at once, e.g. the one ``deepforest-lite predict`` builds.
            device: where to run (``config.device``); ``None`` keeps the weights
                where they are (or, with ``config``, uses its device),
                otherwise they are moved there (as :meth:`to` does).
            class_aware: ``config.class_aware_merge``: merge duplicates only
                within a label (default: across labels, as DeepForest).
            image_path: the ``image_path`` value of the rows (default: the file's base name).
            progress: tqdm progress bar on stderr (or a tqdm bar to advance).
            checkpoint, checkpoint_seconds: save finished windows' boxes to
                this ``.npz`` file (at most every ``checkpoint_seconds``) and go
                on from it after an interruption; see :func:`deepforest_lite.predict.predict_tile`.
            ranks: the processes sharing this raster (:func:`deepforest_lite.ranks.launch`).
            **options: other :class:`~deepforest_lite.config.PredictConfig` fields:
                ``batch_size``, ``workers``, ``precision`` (``"fp32"``, ``"bf16"``,
                ``"fp16"``), ``engine`` (``"auto"``, ``"torch"``,
                ``"onnxruntime"``, ``"openvino"``; :mod:`deepforest_lite.engines`), ``bands``
                (three 1-based band numbers used as RGB), ``value_range``
                (fixed ``(low, high)`` scaled to 0-255 instead of the
                percentile stretch), ``gsd`` (the raster's pixel size in
                metres, overriding its transform's) and ``rescale`` (``False``
                feeds raster pixels as they are instead of resampling windows
                to the model's :attr:`gsd`); an unknown name is a
                :class:`~deepforest_lite.errors.ConfigError` listing the valid ones.

        Returns:
            A box table in raster pixels (origin top-left, x = column); for a
            raster with a CRS a GeoDataFrame with map-coordinate columns, box
            polygons and the CRS as well; ``attrs`` report the windows and the
            scale used. See :func:`deepforest_lite.predict.predict_tile`.
        """
        given = {"patch_size": patch_size, "patch_overlap": patch_overlap, "iou_threshold": iou_threshold,
                 "class_aware_merge": None if class_aware is None else bool(class_aware),
                 "device": None if device is None else str(resolve_device(device))}
        options.update({k: v for k, v in given.items() if v is not None})
        if config is None:
            config = PredictConfig(device=str(self.device))
        elif not isinstance(config, PredictConfig):
            raise InvalidInputError(
                f"config must be a PredictConfig, got {type(config).__name__}; "
                "build one with deepforest_lite.PredictConfig(patch_size=..., ...)."
            )
        return _predict.predict_tile(
            self.model, self.label_map, raster, dataclasses.replace(config, **options), image_path=image_path,
            progress=progress, model_gsd=self.gsd, checkpoint=checkpoint, checkpoint_seconds=checkpoint_seconds,
            ranks=ranks,
        )

    # ------------------------------------------------------------------ training

    @deepforest_keywords(extra_names=_fit_keywords)
    def fit(
        self,
        train: str | os.PathLike | pd.DataFrame | AnnotationSet,
        val: str | os.PathLike | pd.DataFrame | AnnotationSet | None = None,
        *,
        config: TrainConfig | None = None,
        gsd: float | None = None,
        **options: Any,
    ) -> TrainingResult:
        """Train (or fine-tune) this detector in place with Lightning.

        Args:
            train: annotations (DeepForest CSV, Pascal VOC, COCO, vector file
                with a raster... anything :func:`read_annotations` reads), a
                box table or an :class:`~deepforest_lite.annotations.AnnotationSet`
                (images without boxes are trained as negatives).
            val: validation annotations, evaluated every epoch (optional).
            config: a :class:`TrainConfig`; its fields given as keywords
                override it (``epochs=20, batch_size=8, lr=1e-3, augment="strong"``).
                ``accelerator``, ``devices``, ``strategy``, ``precision`` and
                ``logger`` are checked before any data is read.
            gsd: the ground sample distance (m per pixel) to train at, recorded
                in the model (:attr:`gsd`) and in every checkpoint. Training and
                validation images whose GSD is known from their file's
                transform and differs by more than 10 % are resampled to it,
                boxes with them; images without a usable GSD (plain PNG/JPEG)
                are taken to be at ``gsd``. Default: the model's own GSD if it
                has one, else the training images' common GSD read from their
                transforms (``None``, with a :class:`~deepforest_lite.gsd.GSDWarning`,
                when they have none or disagree by more than 10 %).
            **options: :class:`TrainConfig` fields, and the run's keywords, passed to
                :func:`~deepforest_lite.train.fit_model` as they are and documented
                there: ``labels`` (the classes to train for; new ones get a new
                classification head), ``root_dir``, ``val_root_dir``, ``output_dir``
                (default ``"runs/train"``), ``resume``, ``crop_size``, ``cache_images``,
                ``provenance``, ``progress``, ``callbacks``. Any other name is a
                :class:`ConfigError` listing the valid ones.

        Ctrl-C stops training after Lightning's graceful shutdown and raises
        ``KeyboardInterrupt``; ``resume=True`` continues from the last
        finished epoch.

        Returns:
            A :class:`~deepforest_lite.train.TrainingResult` with the paths of
            the saved checkpoints and the last metrics.
        """
        from .hardware import check_trainer_settings
        from .train import fit_model, fit_options, training_gsd

        run = {name: options.pop(name) for name in fit_options() if name in options}
        check_keys(TrainConfig, options, "fit options")
        self._require_weights("train")
        config = dataclasses.replace(config or TrainConfig(), **options)
        check_trainer_settings(config)  # accelerator, devices, precision, logger: before any data is read
        gsd = training_gsd(gsd, self.gsd, train, run.get("root_dir"), run.get("labels"))
        self._config = dataclasses.replace(self._config, gsd=gsd)
        result = fit_model(self.model, self.label_map, self._config, train, val, config=config, **run)
        assert result.label_map is not None  # fit_model always says which labels it trained
        self.label_map = result.label_map
        self.metadata["training"] = {"output_dir": str(result.output_dir), "metrics": result.metrics}
        return result


@deepforest_keywords(aliases={"model_name": "source"})
def load_model(
    source: str | os.PathLike | None = None,
    labels: Sequence[str] | None = None,
    *,
    revision: str | None = None,
    device: str | torch.device | None = "auto",
    gsd: float | None = None,
) -> Detector:
    """Load a detector from a checkpoint, a hub name, an exported file or the bundled model.

    Args:
        source: ``None`` for the bundled default tree model, a bundled name
            (``"tree-lite"``), a path to one of our checkpoints, a DeepForest
            checkpoint (Hugging Face folder, Lightning ``.ckpt``, torchvision
            state dict ``.pt``), a hub name (``"weecology/deepforest-tree"``),
            or a file written by :meth:`Detector.export` (``.onnx``, run by
            onnxruntime on the CPU; TorchScript, run by PyTorch), which
            predicts but cannot be trained or saved.
        labels: class names for files that store none (e.g. ``["Tree"]``).
        revision: hub branch, tag or commit.
        device: where to put the weights (``"auto"``: CUDA when available; the
            CPU for ONNX files).
        gsd: the model's GSD in metres per pixel, overriding what the
            checkpoint records (DeepForest tree checkpoints get 0.1 m, see
            :mod:`deepforest_lite.checkpoint`); ``None`` keeps the checkpoint's.

    See :mod:`deepforest_lite.checkpoint` and :mod:`deepforest_lite.export` for the formats.
    """
    detector = Detector._from_network(load_network(source, labels, revision=revision, device=device))
    if gsd is not None:
        detector.gsd = gsd
    return detector
