"""Bounding-box-safe augmentation pipelines (the only module that imports albumentations).

A pipeline takes an ``H x W x 3`` uint8 RGB image, boxes as ``xmin, ymin,
xmax, ymax`` pixels (origin top-left, x = column; albumentations'
``pascal_voc`` format) and one label per box, and returns all three
transformed consistently. Boxes are clipped to the output image, and boxes
narrower or shorter than ``min_box_size`` px afterwards are dropped with their
labels.

Presets (:data:`PRESETS`):

* ``"none"``: nothing but the optional crop;
* ``"flip"``: horizontal and vertical flips and 90-degree rotations, each
  with probability 0.5 (an aerial image has no "up");
* ``"default"``: ``"flip"`` plus brightness/contrast (+-20 %, p=0.5) and
  hue/saturation/value shifts (+-10/15/10, p=0.3);
* ``"strong"``: ``"default"`` plus scale jitter (zoom 0.75-1.33, p=0.5) and
  a slight blur (p=0.1);
* ``"robust"``: ``"default"`` plus random local contrast equalisation
  (CLAHE, p=0.5, so raw and contrast-equalised imagery look alike to the
  model), a 0.5-2x rescale (p=0.5, so it holds up at other pixel sizes;
  zoomed-out images are padded with black) and a slight blur (p=0.1).

With ``crop_size``, every pipeline starts with a random ``crop_size`` x
``crop_size`` crop (zero-padded where the image is smaller), so large images
train in patches. A user's own ``albumentations.Compose`` is accepted when it
was built with ``bbox_params`` in ``pascal_voc`` format and label field
``labels`` (see :func:`bbox_params`).
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations would look for updates online

from collections.abc import Sequence  # noqa: E402

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402

from .errors import InvalidInputError  # noqa: E402

__all__ = ["PRESETS", "bbox_params", "build_augmentation", "apply_augmentation"]

PRESETS: tuple[str, ...] = ("none", "flip", "default", "strong", "robust")


def bbox_params(min_box_size: float = 2.0) -> A.BboxParams:
    """The box handling every pipeline uses: pascal_voc pixels, clipped, small boxes dropped."""
    return A.BboxParams(
        format="pascal_voc",
        label_fields=["labels"],
        min_width=float(min_box_size),
        min_height=float(min_box_size),
        clip=True,
        filter_invalid_bboxes=True,
    )


def build_augmentation(
    augment: str | A.Compose | None = "default",
    *,
    crop_size: int | None = None,
    min_box_size: float = 2.0,
) -> A.Compose:
    """A pipeline from a preset name, or a user's ``Compose`` checked for box handling.

    Args:
        augment: a name from :data:`PRESETS`, ``None`` (same as ``"none"``), or
            an ``albumentations.Compose`` with ``bbox_params`` (pascal_voc,
            ``label_fields=["labels"]``).
        crop_size: side in px of a random crop applied first (presets only).
        min_box_size: boxes smaller than this many px on a side after the
            transform are dropped (presets only).
    """
    if isinstance(augment, A.Compose):
        processor = augment.processors.get("bboxes")
        params = getattr(processor, "params", None)
        if params is None or params.format != "pascal_voc" or "labels" not in (params.label_fields or []):
            raise InvalidInputError(
                "A custom augmentation must be an albumentations Compose built with "
                "bbox_params=A.BboxParams(format='pascal_voc', label_fields=['labels']); "
                "deepforest_lite.augment.bbox_params() gives a ready one."
            )
        return augment
    name = "none" if augment is None else augment
    if name not in PRESETS:
        raise InvalidInputError(
            f"Unknown augmentation {augment!r}; choose one of {list(PRESETS)} or pass an albumentations Compose."
        )
    steps: list[A.BasicTransform] = []
    if crop_size is not None:
        steps.append(A.RandomCrop(int(crop_size), int(crop_size), pad_if_needed=True, pad_position="top_left"))
    if name in ("flip", "default", "strong", "robust"):
        steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)]
    if name in ("default", "strong", "robust"):
        steps += [
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=15, val_shift_limit=10, p=0.3),
        ]
    if name == "strong":
        steps += [A.Affine(scale=(0.75, 1.33), keep_ratio=True, p=0.5), A.GaussianBlur(blur_limit=(3, 3), p=0.1)]
    if name == "robust":
        steps += [
            A.CLAHE(clip_limit=(1.0, 4.0), tile_grid_size=(8, 8), p=0.5),
            A.Affine(scale=(0.5, 2.0), keep_ratio=True, border_mode=0, fill=0, p=0.5),
            A.GaussianBlur(blur_limit=(3, 3), p=0.1),
        ]
    return A.Compose(steps or [A.NoOp()], bbox_params=bbox_params(min_box_size))


def apply_augmentation(
    pipeline: A.Compose, image: np.ndarray, boxes: np.ndarray, labels: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``pipeline``; returns ``(image H' x W' x 3 uint8, boxes [M, 4] float32, labels [M] int64)``."""
    out = pipeline(image=image, bboxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4), labels=list(labels))
    kept = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
    return out["image"], kept, np.asarray(out["labels"], dtype=np.int64).reshape(-1)
