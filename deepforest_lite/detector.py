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
from .compat import DEEPFOREST_HINTS, deepforest_keywords, unknown_name_error
from .config import ModelConfig, PredictConfig, TrainConfig, check_keys
from .errors import InvalidInputError
from .labels import LabelMap
from .model import build_retinanet, load_backbone_weights, resolve_device
from .raster import RasterSource

if TYPE_CHECKING:
    from .train import TrainingResult

__all__ = ["Detector", "load_model"]


def _model_options() -> list[str]:
    return [f.name for f in dataclasses.fields(ModelConfig)]


def _train_options() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


class Detector:
    """A multi-class RetinaNet detector for RGB imagery.

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

    @deepforest_keywords(extra_names=_model_options)
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
        self.label_map = LabelMap(labels)
        pretrained = backbone_weights is not None
        if config is None:
            config = ModelConfig.for_weights(pretrained, backbone=backbone, **options)
        elif options:
            config = dataclasses.replace(config, **options)
        self._config = config
        self.model = build_retinanet(config, len(self.label_map))
        if pretrained:
            if str(backbone_weights) == "imagenet":
                weights = ckpt.imagenet_backbone_weights(config.backbone)
            else:
                weights = ckpt.read_state_dict(backbone_weights)
            load_backbone_weights(self.model, weights)
        self.metadata: dict[str, Any] = {}
        self.model.to(resolve_device(device)).eval()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_checkpoint(cls, checkpoint: ckpt.Checkpoint, device: str | torch.device | None = "auto") -> Detector:
        """Build a detector from a loaded :class:`~deepforest_lite.checkpoint.Checkpoint`."""
        detector = cls.__new__(cls)
        detector.label_map = checkpoint.label_map
        detector._config = checkpoint.config
        detector.model = build_retinanet(checkpoint.config, len(checkpoint.label_map))
        try:
            missing, unexpected = detector.model.load_state_dict(checkpoint.state_dict, strict=False)
        except RuntimeError as exc:  # tensor shapes that do not fit
            detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
            raise ckpt.CheckpointError(
                f"The weights from {checkpoint.metadata.get('source', 'the checkpoint')!r} do not fit the model "
                f"they describe ({detail[:200]}); check the labels given for this file."
            ) from None
        if missing or unexpected:
            raise ckpt.CheckpointError(
                f"The weights from {checkpoint.metadata.get('source', 'the checkpoint')!r} do not fit the "
                f"model they describe (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                "the file may be from an unsupported architecture."
            )
        detector.metadata = dict(checkpoint.metadata)
        detector.model.to(resolve_device(device)).eval()
        return detector

    # ------------------------------------------------------------------ DeepForest's names

    def __getattr__(self, name: str) -> Any:
        # only called for names the instance and class lack
        if name.startswith("_") or name not in DEEPFOREST_HINTS:
            raise AttributeError(f"'Detector' object has no attribute {name!r}")
        raise unknown_name_error("Detector", name, [], kind="attribute")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in DEEPFOREST_HINTS and not hasattr(type(self), name):
            raise unknown_name_error("Detector", name, [], kind="attribute")
        super().__setattr__(name, value)

    # ------------------------------------------------------------------ settings

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in id order."""
        return self.label_map.names

    @property
    def config(self) -> ModelConfig:
        """The model's settings now (thresholds read live from the network)."""
        return dataclasses.replace(
            self._config,
            score_threshold=float(self.model.score_thresh),
            nms_threshold=float(self.model.nms_thresh),
            detections_per_image=int(self.model.detections_per_img),
        )

    @property
    def gsd(self) -> float | None:
        """Ground sample distance (m per pixel) of the imagery the model was trained at, or ``None``.

        Stored in every checkpoint. Tiled prediction resamples rasters of
        another GSD to it (:mod:`deepforest_lite.gsd`). May be set, e.g. for a
        model whose training GSD you know but its checkpoint does not say;
        ``None`` turns resampling off.
        """
        return self._config.gsd

    @gsd.setter
    def gsd(self, value: float | None) -> None:
        self._config = dataclasses.replace(self._config, gsd=value)

    @property
    def score_threshold(self) -> float:
        """Boxes scoring below this are dropped, in [0, 1]."""
        return float(self.model.score_thresh)

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        self.model.score_thresh = dataclasses.replace(self.config, score_threshold=value).score_threshold

    @property
    def nms_threshold(self) -> float:
        """IoU above which a lower-scoring box of the same class in one window is suppressed."""
        return float(self.model.nms_thresh)

    @nms_threshold.setter
    def nms_threshold(self, value: float) -> None:
        self.model.nms_thresh = dataclasses.replace(self.config, nms_threshold=value).nms_threshold

    @property
    def detections_per_image(self) -> int:
        """At most this many boxes per image or window."""
        return int(self.model.detections_per_img)

    @detections_per_image.setter
    def detections_per_image(self, value: int) -> None:
        self.model.detections_per_img = dataclasses.replace(
            self.config, detections_per_image=value
        ).detections_per_image

    @property
    def device(self) -> torch.device:
        """Where the weights are (the CPU for a model loaded from an ONNX file)."""
        from .engines import model_device

        return model_device(self.model)

    @property
    def exported_from(self) -> str | None:
        """The ONNX or TorchScript file this detector was loaded from, or ``None`` for torch weights."""
        from .engines import ExportedRetinaNet

        return self.model.source if isinstance(self.model, ExportedRetinaNet) else None

    def to(self, device: str | torch.device) -> Detector:
        """Move the weights to ``device``; returns ``self``."""
        self.model.to(resolve_device(device))
        return self

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Detector(labels={list(self.labels)}, backbone={c.backbone!r}, "
            f"score_threshold={c.score_threshold}, nms_threshold={c.nms_threshold}, device='{self.device}')"
        )

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

    def _require_weights(self, action: str) -> None:
        if self.exported_from is not None:
            raise InvalidInputError(
                f"Cannot {action} a detector loaded from the exported file {self.exported_from!r}: it holds no "
                "torch weights; load the checkpoint it was exported from."
            )

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
        ``engine`` (``"auto"``, ``"torch"``, ``"onnxruntime"``) picks what runs
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

    @deepforest_keywords(aliases={"path": "raster", "image": "raster", "raster_path": "raster"})
    def predict_tile(
        self,
        raster: str | os.PathLike | np.ndarray | RasterSource,
        patch_size: int = PredictConfig.patch_size,
        patch_overlap: float = PredictConfig.patch_overlap,
        iou_threshold: float = PredictConfig.iou_threshold,
        *,
        batch_size: int = PredictConfig.batch_size,
        workers: int = PredictConfig.workers,
        device: str | torch.device | None = None,
        class_aware: bool = PredictConfig.class_aware_merge,
        precision: str = PredictConfig.precision,
        bands: Sequence[int] | None = None,
        value_range: Sequence[float] | Sequence[Sequence[float]] | None = None,
        image_path: str | None = None,
        progress: bool = True,
        engine: str = PredictConfig.engine,
        gsd: float | None = None,
        rescale: bool = True,
    ) -> pd.DataFrame:
        """Detect objects in a raster of any size, window by window, in bounded memory.

        Args:
            raster: a GeoTIFF/PNG/JPEG path, an open :class:`~deepforest_lite.raster.RasterSource`,
                or an ``H x W x 3`` uint8 RGB array. DeepForest's keywords ``path=``
                (a file), ``image=`` (an array) and ``raster_path=`` (1.x) work too.
            patch_size: window side in px (clipped to the raster's side per axis).
            patch_overlap: fraction of the window side shared by neighbours, in [0, 1).
            iou_threshold: boxes from different windows overlapping more than
                this (IoU) are duplicates; the lower-scoring one is removed.
            batch_size: windows per forward pass.
            workers: ``DataLoader`` processes reading windows (0: the main process).
            device: where to run; ``None`` keeps the weights where they are,
                otherwise they are moved there (as :meth:`to` does).
            class_aware: merge duplicates only within a label (default: across labels, as DeepForest).
            precision: ``"fp32"`` or ``"bf16"`` (autocast).
            bands: three 1-based band numbers used as RGB (for rasters with more than three bands).
            value_range: fixed ``(low, high)`` scaled to 0-255 instead of the percentile
                stretch of 16-bit/float rasters.
            image_path: the ``image_path`` value of the rows (default: the file's base name).
            progress: tqdm progress bar on stderr.
            engine: what runs the network: ``"auto"`` (onnxruntime on the CPU
                in fp32, torch otherwise), ``"torch"`` or ``"onnxruntime"``; see
                :mod:`deepforest_lite.engines`.
            gsd: the raster's pixel size in metres, for rasters without a usable
                CRS or to override the transform's.
            rescale: when the raster's and the model's GSD (:attr:`gsd`) are
                both known and differ by more than 10 %, read windows of
                ``patch_size * model_gsd / raster_gsd`` raster pixels resampled
                to ``patch_size`` px, so the network sees objects at the size
                it learned; ``False`` feeds raster pixels as they are.
                ``patch_size`` is always the network's window in its own pixels.

        Returns:
            A box table in raster pixels (origin top-left, x = column); for a
            raster with a CRS a GeoDataFrame with map-coordinate columns, box
            polygons and the CRS as well; ``attrs`` report the windows and the
            scale used. See :func:`deepforest_lite.predict.predict_tile`.
        """
        config = PredictConfig(
            patch_size=patch_size,
            patch_overlap=patch_overlap,
            iou_threshold=iou_threshold,
            class_aware_merge=bool(class_aware),
            batch_size=batch_size,
            workers=workers,
            device=str(self.device if device is None else resolve_device(device)),
            precision=precision,
            bands=None if bands is None else tuple(bands),
            value_range=None if value_range is None else tuple(value_range),
            engine=engine,
            gsd=gsd,
            rescale=rescale,
        )
        return _predict.predict_tile(
            self.model, self.label_map, raster, config, image_path=image_path, progress=progress,
            model_gsd=self.gsd,
        )


    # ------------------------------------------------------------------ training

    @deepforest_keywords(extra_names=_train_options)
    def fit(
        self,
        train: str | os.PathLike | pd.DataFrame,
        val: str | os.PathLike | pd.DataFrame | None = None,
        *,
        labels: Sequence[str] | None = None,
        root_dir: str | os.PathLike | None = None,
        val_root_dir: str | os.PathLike | None = None,
        output_dir: str | os.PathLike = "runs/train",
        resume: str | os.PathLike | bool | None = None,
        crop_size: int | None = None,
        config: TrainConfig | None = None,
        progress: bool = True,
        callbacks: Sequence[Any] = (),
        provenance: Mapping[str, Any] | None = None,
        gsd: float | None = None,
        **options: Any,
    ) -> TrainingResult:
        """Train (or fine-tune) this detector in place with Lightning.

        Args:
            train: annotations (DeepForest CSV, Pascal VOC, COCO, vector file
                with a raster... anything :func:`read_annotations` reads) or a
                box table.
            val: validation annotations, evaluated every epoch (optional).
            labels: the classes to train for. When they differ from the
                detector's, the classification head is rebuilt for them while
                backbone, FPN and box regression keep their weights. Default:
                the detector's labels if the data's labels are among them,
                else the data's labels sorted by name.
            root_dir, val_root_dir: folders holding the images (default: the
                annotation file's folder).
            output_dir: where checkpoints and logs go (see :mod:`deepforest_lite.train`);
                one run per folder: a folder that already holds a run is refused
                unless ``resume`` is given.
            resume: ``True`` (this ``output_dir``'s last state) or the path of
                a Lightning ``last.ckpt`` to continue an interrupted run; the
                stored run must match (data, labels, model, settings; ``epochs``
                may grow), else :class:`InvalidInputError` names the difference.
            crop_size: train on random ``crop_size`` px crops of each image.
            config: a :class:`TrainConfig`; ``**options`` override single
                fields (``epochs=20, batch_size=8, lr=1e-3, augment="strong"``);
                an unknown name is a :class:`ConfigError` listing the valid ones.
                ``accelerator``, ``devices``, ``strategy``, ``precision`` and
                ``logger`` are checked before any data is read.
            progress: show Lightning's progress bar (steps and loss).
            callbacks: extra Lightning callbacks.
            provenance: JSON-serialisable facts stored in the saved models'
                ``training`` metadata (``deepforest-lite train`` records the
                ``--from`` model and its full command line here).
            gsd: the ground sample distance (m per pixel) to train at, recorded
                in the model (:attr:`gsd`) and in every checkpoint. Training and
                validation images whose GSD is known from their file's
                transform and differs by more than 10 % are resampled to it,
                boxes with them; images without a usable GSD (plain PNG/JPEG)
                are taken to be at ``gsd``. Default: the model's own GSD if it
                has one, else the training images' common GSD read from their
                transforms (``None``, with a :class:`~deepforest_lite.gsd.GSDWarning`,
                when they have none or disagree by more than 10 %).

        Ctrl-C stops training after Lightning's graceful shutdown and raises
        ``KeyboardInterrupt``; ``resume=True`` continues from the last
        finished epoch.

        Returns:
            A :class:`~deepforest_lite.train.TrainingResult` with the paths of
            the saved checkpoints and the last metrics.
        """
        from .hardware import check_trainer_settings
        from .train import fit_model

        check_keys(TrainConfig, options, "fit options")
        self._require_weights("train")
        config = dataclasses.replace(config or TrainConfig(), **options)
        check_trainer_settings(config)  # accelerator, devices, precision, logger: before any data is read
        self._config = dataclasses.replace(self._config, gsd=self._training_gsd(gsd, train, root_dir, labels))
        result = fit_model(
            self.model, self.label_map, self._config, train, val, config=config, labels=labels,
            root_dir=root_dir, val_root_dir=val_root_dir, output_dir=output_dir, resume=resume,
            crop_size=crop_size, progress=progress, callbacks=callbacks, provenance=provenance,
        )
        self.label_map = result.label_map
        self.metadata["training"] = {"output_dir": str(result.output_dir), "metrics": result.metrics}
        return result

    def _training_gsd(
        self, gsd: float | None, train: Any, root_dir: str | os.PathLike | None, labels: Sequence[str] | None
    ) -> float | None:
        """The GSD :meth:`fit` trains at: ``gsd``, else the model's, else the training images' common one."""
        import warnings

        from .annotations import image_paths
        from .gsd import GSDWarning, check_gsd, common_gsd
        from .train import load_annotation_table

        if gsd is not None:
            return check_gsd(gsd)
        if self.gsd is not None:
            return self.gsd
        table, folder = load_annotation_table(train, root_dir, LabelMap(labels) if labels is not None else None)
        paths = [p if os.path.isabs(p) or folder is None else os.path.join(folder, p) for p in image_paths(table)]
        found, note = common_gsd(paths)
        if found is None:
            warnings.warn(
                f"The model records no GSD: {note}; pass gsd= (metres per pixel) to fit to record it "
                "(and to resample georeferenced images to it).",
                GSDWarning,
                stacklevel=3,
            )
        return found


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
    from .export import exported_format

    if source is not None and exported_format(Path(os.fspath(source)).expanduser()) is not None:
        return _from_exported(Path(os.fspath(source)).expanduser(), labels, device)
    detector = Detector.from_checkpoint(ckpt.load_checkpoint(source, labels, revision=revision), device=device)
    if gsd is not None:
        detector.gsd = gsd
    return detector


def _from_exported(path: Path, labels: Sequence[str] | None, device: str | torch.device | None) -> Detector:
    """A detector around the network of an exported file (:class:`~deepforest_lite.engines.ExportedRetinaNet`)."""
    from .engines import ExportedRetinaNet, OnnxRuntimeNetwork, onnxruntime_available
    from .export import read_exported
    from .model import build_anchor_generator, build_transform

    exported = read_exported(path)
    if labels is not None and tuple(labels) != exported.label_map.names:
        raise ckpt.CheckpointError(
            f"{str(path)!r} was exported for the labels {list(exported.label_map.names)}, not {list(labels)}; "
            "leave labels out."
        )
    config = exported.config
    if exported.format == "onnx":
        if not onnxruntime_available():
            raise InvalidInputError(
                f"{str(path)!r} is an ONNX model, which needs the onnxruntime and onnx packages; "
                "run `pip install onnxruntime onnx`, or load the model's checkpoint."
            )
        network: Any = OnnxRuntimeNetwork(exported.payload)
        engine, target = "onnxruntime", torch.device("cpu") if str(device) in ("auto", "None") else resolve_device(device)
    else:
        network, engine, target = exported.payload, "torch", resolve_device(device)
    model = ExportedRetinaNet(
        network, engine, build_transform(config), build_anchor_generator(config),
        num_classes=len(exported.label_map), score_thresh=config.score_threshold,
        nms_thresh=config.nms_threshold, detections_per_img=config.detections_per_image,
        topk_candidates=config.topk_candidates, source=str(path),
    )
    detector = Detector.__new__(Detector)
    detector.label_map = exported.label_map
    detector._config = config
    detector.model = model.check("auto", "fp32", target)
    detector.metadata = {k: v for k, v in exported.metadata.items() if k not in ("labels", "model")}
    detector.metadata["source"] = str(path)
    return detector
