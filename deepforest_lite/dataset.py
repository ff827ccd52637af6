"""Datasets that feed the network: annotated training images, and a raster's windows.

Items are ``(image, target, image_path)``: ``image`` a float32 tensor
``3 x H x W`` in [0, 1] (RGB / 255), ``target`` torchvision's detection target
``{"boxes": FloatTensor[N, 4] xmin, ymin, xmax, ymax px, "labels": Int64Tensor[N]}``.

:class:`WindowDataset` items are ``(image, window)``: one window of a raster
as such a tensor (``None`` when the window is empty) and its position in the
raster; :func:`collate_windows` batches them and leaves empty windows out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .annotations import AnnotationSet
from .errors import ImageReadError, InvalidInputError
from .labels import LabelMap
from .raster import RasterSource, check_rgb_array, read_image, resample_array
from .windows import Window, window_grid

__all__ = [
    "TrainingDataset",
    "collate",
    "WindowDataset",
    "WindowItem",
    "WindowBatch",
    "collate_windows",
    "image_to_tensor",
]


def image_to_tensor(image: np.ndarray) -> Tensor:
    """``H x W x 3`` uint8 RGB -> float32 tensor ``3 x H x W`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)


class TrainingDataset(Dataset):
    """Images with their boxes, augmented on the fly.

    Args:
        annotations: an :class:`~deepforest_lite.annotations.AnnotationSet`,
            whose empty images are included as negatives, or an annotation box
            table (``image_path, xmin, ymin, xmax, ymax, label``; pixels, origin
            top-left), read as :meth:`AnnotationSet.from_table
            <deepforest_lite.annotations.AnnotationSet.from_table>` (the images
            its ``attrs["empty_images"]`` lists are negatives).
        root_dir: folder that relative ``image_path`` values are relative to.
        label_map: turns label names into the network's class ids; a label
            not in it is an error that lists the known ones.
        augmentation: an albumentations pipeline from
            :func:`deepforest_lite.augment.build_augmentation`, or ``None``.
        cache_images: keep decoded images in memory after the first read
            (each DataLoader worker holds its own copy).
        gsd: the GSD (m per pixel) to train at. An image whose GSD is known
            from its file's transform (:func:`deepforest_lite.gsd.file_gsd`)
            and differs by more than 10 % is read resampled to it (average
            when shrinking, bilinear when enlarging) with its boxes scaled;
            images without a usable GSD are taken to be at ``gsd`` already.
            ``None`` uses every image at its own pixel size.

    Every image file must exist when the dataset is built.
    """

    def __init__(
        self,
        annotations: AnnotationSet | pd.DataFrame,
        root_dir: str | os.PathLike | None,
        label_map: LabelMap,
        augmentation: Any = None,
        cache_images: bool = False,
        gsd: float | None = None,
    ) -> None:
        data = annotations if isinstance(annotations, AnnotationSet) else AnnotationSet.from_table(annotations)
        self.label_map = label_map
        self.augmentation = augmentation
        self.root_dir = os.fspath(root_dir) if root_dir is not None else None
        self.images: list[str] = list(data.images)
        groups = {str(path): group for path, group in data.boxes.groupby("image_path", sort=False)}
        self._boxes: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        for path in self.images:
            group = groups.get(path)
            if group is None:
                self._boxes.append(np.zeros((0, 4), np.float32))
                self._labels.append(np.zeros((0,), np.int64))
            else:
                self._boxes.append(group[["xmin", "ymin", "xmax", "ymax"]].to_numpy(np.float32))
                self._labels.append(label_map.encode(group["label"].tolist()))
        missing = [p for p in self.images if not os.path.isfile(self.resolve(p))]
        if missing:
            raise ImageReadError(
                f"{len(missing)} image(s) named in the annotations are missing, e.g. {self.resolve(missing[0])!r}; "
                "set root_dir to the folder that holds the images."
            )
        self._cache: dict[int, np.ndarray] | None = {} if cache_images else None
        self.gsd = gsd
        #: per image, ``(x, y)`` output px per file px when it is resampled to ``gsd``, else ``None``
        self.factors: list[tuple[float, float] | None] = [None] * len(self.images)
        self._sizes: dict[int, tuple[int, int]] = {}  # (width, height) of resampled images' files
        if gsd is not None:
            from .gsd import check_gsd, plan_scale

            target = check_gsd(gsd)
            for i, path in enumerate(self.images):
                with RasterSource(self.resolve(path)) as source:
                    scale = plan_scale(target, source.gsd)
                    if scale.rescaled:
                        self.factors[i] = scale.factor
                        self._sizes[i] = (source.width, source.height)

    def resolve(self, image_path: str) -> str:
        """The file path of an ``image_path`` value."""
        if os.path.isabs(image_path) or self.root_dir is None:
            return image_path
        return os.path.join(self.root_dir, image_path)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_boxes(self) -> int:
        """Boxes in the dataset before augmentation."""
        return int(sum(len(b) for b in self._boxes))

    def _image(self, index: int) -> np.ndarray:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        factor = self.factors[index]
        if factor is None:
            image = read_image(self.resolve(self.images[index]))
        else:
            width, height = self._sizes[index]
            with RasterSource(self.resolve(self.images[index])) as source:
                image = source.read_window(None, out_shape=(max(1, round(height * factor[1])),
                                                            max(1, round(width * factor[0]))))
        if self._cache is not None:
            self._cache[index] = image
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], str]:
        image, boxes, labels = self._image(index), self._boxes[index], self._labels[index]
        if self.factors[index] is not None and len(boxes):
            width, height = self._sizes[index]
            kx, ky = image.shape[1] / width, image.shape[0] / height
            boxes = boxes * np.array([kx, ky, kx, ky], np.float32)
        if self.augmentation is not None:
            from .augment import apply_augmentation  # albumentations loads only for training

            image, boxes, labels = apply_augmentation(self.augmentation, image, boxes, labels)
        target = {
            "boxes": torch.tensor(np.asarray(boxes, np.float32).reshape(-1, 4)),
            "labels": torch.tensor(np.asarray(labels, np.int64).reshape(-1)),
        }
        return image_to_tensor(image), target, self.images[index]


def collate(batch: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """Batch items as parallel lists (images of different sizes cannot be stacked)."""
    return tuple(list(column) for column in zip(*batch))


# --------------------------------------------------------------------------- raster windows


class WindowItem(NamedTuple):
    """One window of a :class:`WindowDataset`.

    Attributes:
        image: float32 tensor ``3 x height x width``, RGB in [0, 1] (uint8 / 255),
            or ``None`` when the window is empty (every pixel no-data or black),
            so that it never reaches the model.
        window: where the window lies in the raster, in raster pixels (origin
            top-left, ``col_off`` = x offset, ``row_off`` = y offset).
    """

    image: torch.Tensor | None
    window: Window


class WindowBatch(NamedTuple):
    """Windows batched by :func:`collate_windows`, empty windows left out.

    Attributes:
        images: the non-empty windows' tensors (each ``3 x h x w`` float32 in [0, 1]).
        windows: ``images[i]``'s window in raster pixels.
        skipped: the windows of this batch that were empty (not in ``images``).
    """

    images: list[torch.Tensor]
    windows: list[Window]
    skipped: list[Window]

    @property
    def size(self) -> int:
        """Windows this batch accounts for, empty ones included."""
        return len(self.windows) + len(self.skipped)


class WindowDataset(Dataset):
    """The windows of one raster (or in-memory image), read lazily one at a time.

    Only the window asked for is read: from the file with a windowed read of
    a :class:`~deepforest_lite.raster.RasterSource` (band and dtype rules of
    :mod:`deepforest_lite.raster`), or sliced from the array. The dataset is
    picklable; a ``DataLoader`` worker gets a copy whose source opens its own
    file handle on first read.

    Args:
        source: a :class:`~deepforest_lite.raster.RasterSource`, or an
            ``H x W x 3`` uint8 RGB array.
        windows: the windows to read, in raster pixels; default the grid of
            :func:`~deepforest_lite.windows.window_grid` for ``patch_size``
            and ``patch_overlap``.
        patch_size, patch_overlap: the grid's settings when ``windows`` is ``None``.
        out_shape: ``(height, width)`` every window is resampled to as it is
            read (rasterio ``out_shape``: average when shrinking, bilinear when
            enlarging; :func:`deepforest_lite.raster.resample_array` for
            arrays), or ``None`` to read windows at their own size. Tile
            prediction uses it to show a raster at the model's GSD
            (:mod:`deepforest_lite.gsd`).

    Items are :class:`WindowItem` ``(image, window)``. A window is empty when
    no pixel both has data and is non-black: from a file, see
    :meth:`RasterSource.is_empty <deepforest_lite.raster.RasterSource.is_empty>`
    (no-data value, alpha 0, GDAL mask, or 0 in all three bands); from an
    array, 0 in all three bands. Its ``image`` is ``None``; batch items with
    :func:`collate_windows`, which leaves such windows out.
    """

    def __init__(
        self,
        source: RasterSource | np.ndarray,
        windows: Sequence[Window] | None = None,
        *,
        patch_size: int = 400,
        patch_overlap: float = 0.05,
        out_shape: tuple[int, int] | None = None,
    ) -> None:
        self.out_shape = None if out_shape is None else (int(out_shape[0]), int(out_shape[1]))
        if isinstance(source, np.ndarray):
            source = check_rgb_array(source)
        elif not isinstance(source, RasterSource):
            raise InvalidInputError(
                f"WindowDataset needs a RasterSource or an H x W x 3 uint8 array, got "
                f"{type(source).__name__}; open a file with deepforest_lite.RasterSource(path)."
            )
        self.source = source
        height, width = self.shape
        if windows is None:
            windows = window_grid(height, width, patch_size, patch_overlap)
        self.windows: list[Window] = list(windows)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the raster in px."""
        if isinstance(self.source, np.ndarray):
            return (int(self.source.shape[0]), int(self.source.shape[1]))
        return self.source.shape

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> WindowItem:
        window = self.windows[index]
        if isinstance(self.source, np.ndarray):
            x0, y0, x1, y1 = window.bounds
            if x0 < 0 or y0 < 0 or x1 > self.source.shape[1] or y1 > self.source.shape[0]:
                raise InvalidInputError(
                    f"Window {window} is not inside the {self.source.shape[1]} x "
                    f"{self.source.shape[0]} px image; use deepforest_lite.windows.window_grid."
                )
            pixels = self.source[y0:y1, x0:x1]
            empty = not pixels.any()
            if self.out_shape is not None and not empty:
                pixels = resample_array(pixels, self.out_shape)
        else:
            pixels, empty = self.source.read_window_checked(window, out_shape=self.out_shape)
        return WindowItem(None if empty else image_to_tensor(pixels), window)


def collate_windows(items: Sequence[WindowItem]) -> WindowBatch:
    """Batch :class:`WindowItem` s as a :class:`WindowBatch`, leaving empty windows out.

    Use as ``DataLoader(dataset, batch_size=..., collate_fn=collate_windows)``.
    """
    images: list[torch.Tensor] = []
    windows: list[Window] = []
    skipped: list[Window] = []
    for image, window in items:
        if image is None:
            skipped.append(window)
        else:
            images.append(image)
            windows.append(window)
    return WindowBatch(images, windows, skipped)
