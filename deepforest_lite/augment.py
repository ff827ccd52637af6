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
  zoomed-out images are padded with black) and a slight blur (p=0.1);
* ``"multiscale"``: ``"default"`` plus a random rescale 0.5-2x (p=0.5),
  nothing else: a multi-resolution augmentation, so one model learns objects
  over a 4x range of pixel sizes (e.g. 0.05-0.2 m for 0.1 m training tiles).

**Random rescale (multi-resolution).** ``scale_range=(low, high)`` adds to
any preset a zoom by a factor drawn uniformly from ``[low, high]`` (with
probability ``scale_p``), about the image centre, on a canvas of the same
size: a factor ``s`` shows every object ``s`` times larger, as imagery of
``gsd / s`` metres per pixel would; zoomed-out images (``s < 1``) are padded
with black, boxes are scaled with the pixels and clipped to the canvas.

With ``crop_size``, every pipeline starts with a random ``crop_size`` x
``crop_size`` crop (zero-padded where the image is smaller), so large images
train in patches. A user's own ``albumentations.Compose`` is accepted when it
was built with ``bbox_params`` in ``pascal_voc`` format and label field
``labels`` (see :func:`bbox_params`).

Pipelines are seeded from torch's seed (:func:`seed_from_torch`) when they first run in a
process, so ``fit(seed=...)`` augments the same way on every run.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations would look for updates online

from collections.abc import Sequence  # noqa: E402

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402

from .checks import check_range  # noqa: E402
from .errors import InvalidInputError  # noqa: E402

__all__ = ["PRESETS", "MULTISCALE_RANGE", "bbox_params", "build_augmentation", "apply_augmentation", "random_rescale",
           "seed_from_torch"]

PRESETS: tuple[str, ...] = ("none", "flip", "default", "strong", "robust", "multiscale")
#: zoom range of the ``"robust"`` and ``"multiscale"`` presets (object size x0.5 to x2)
MULTISCALE_RANGE: tuple[float, float] = (0.5, 2.0)


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


def random_rescale(scale_range: Sequence[float] = MULTISCALE_RANGE, p: float = 0.5) -> A.BasicTransform:
    """A box-safe random zoom by a factor in ``scale_range`` (see the module docstring), for your own ``Compose``.

    Args:
        scale_range: ``(low, high)`` zoom factors, ``0 < low <= high``; e.g.
            ``(0.5, 2.0)`` shows objects at half to twice their size.
        p: probability of applying it, in [0, 1].
    """
    try:
        low, high = (float(v) for v in scale_range)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"scale_range must be two zoom factors (low, high), got {scale_range!r}; e.g. scale_range=(0.5, 2.0)."
        ) from None
    if not (0 < low <= high < float("inf")):
        raise InvalidInputError(
            f"scale_range must satisfy 0 < low <= high, got {scale_range!r}; e.g. scale_range=(0.5, 2.0)."
        )
    p = check_range("scale_p", p, 0, 1, kind="probability")
    return A.Affine(scale=(low, high), keep_ratio=True, border_mode=0, fill=0, p=p)


def build_augmentation(
    augment: str | A.Compose | None = "default",
    *,
    crop_size: int | None = None,
    min_box_size: float = 2.0,
    scale_range: Sequence[float] | None = None,
    scale_p: float = 0.5,
) -> A.Compose:
    """A pipeline from a preset name, or a user's ``Compose`` checked for box handling.

    Args:
        augment: a name from :data:`PRESETS`, ``None`` (same as ``"none"``), or
            an ``albumentations.Compose`` with ``bbox_params`` (pascal_voc,
            ``label_fields=["labels"]``).
        crop_size: side in px of a random crop applied first (presets only).
        min_box_size: boxes smaller than this many px on a side after the
            transform are dropped (presets only).
        scale_range: ``(low, high)``: add a random rescale by a factor in
            that range (:func:`random_rescale`, presets only), e.g.
            ``build_augmentation("default", scale_range=(0.33, 3.0))`` to
            train for imagery from a third to three times the tiles' GSD.
        scale_p: probability of that rescale.
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
    extra = None if scale_range is None else random_rescale(scale_range, scale_p)  # checked before anything else
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
    if name in ("default", "strong", "robust", "multiscale"):
        steps += [
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=15, val_shift_limit=10, p=0.3),
        ]
    if name == "strong":
        steps += [A.Affine(scale=(0.75, 1.33), keep_ratio=True, p=0.5), A.GaussianBlur(blur_limit=(3, 3), p=0.1)]
    if name == "robust":
        steps += [
            A.CLAHE(clip_limit=(1.0, 4.0), tile_grid_size=(8, 8), p=0.5),
            random_rescale(MULTISCALE_RANGE, 0.5),
            A.GaussianBlur(blur_limit=(3, 3), p=0.1),
        ]
    if name == "multiscale":
        steps.append(random_rescale(MULTISCALE_RANGE, 0.5))
    if extra is not None:
        steps.append(extra)
    return A.Compose(steps or [A.NoOp()], bbox_params=bbox_params(min_box_size))


def seed_from_torch(pipeline: A.Compose) -> None:
    """Seed ``pipeline``'s own random state from torch's seed of this process, once per process and seed.

    albumentations keeps a random state of its own that no global seed reaches, so a
    training run seeded with ``seed`` would otherwise augment differently every time.
    The seed is :func:`torch.initial_seed`: the run's seed in the main process, a distinct
    seed per DataLoader worker (torch gives each worker ``base_seed + worker_id``, drawn
    from the seeded main process). A pipeline built with its own ``seed`` is left alone.
    """
    if not hasattr(pipeline, "set_random_seed"):  # older albumentations draw from the seeded globals
        return
    import torch  # here, not at the top: this module stays importable without torch

    key = (os.getpid(), torch.initial_seed())
    marker = getattr(pipeline, "_deepforest_lite_seed", None)
    if marker == "own" or marker == key:
        return
    if marker is None and getattr(pipeline, "seed", None) is not None:
        pipeline._deepforest_lite_seed = "own"  # type: ignore[attr-defined]
        return
    pipeline.set_random_seed(key[1] % 2**32)
    pipeline._deepforest_lite_seed = key  # type: ignore[attr-defined]


def apply_augmentation(
    pipeline: A.Compose, image: np.ndarray, boxes: np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``pipeline``; returns ``(image H' x W' x 3 uint8, boxes [M, 4] float32, labels [M] int64)``.

    The pipeline's random state is seeded from torch's first (:func:`seed_from_torch`), so a
    seeded run augments the same way every time.
    """
    seed_from_torch(pipeline)
    out = pipeline(image=image, bboxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4), labels=list(labels))
    kept = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
    return out["image"], kept, np.asarray(out["labels"], dtype=np.int64).reshape(-1)
