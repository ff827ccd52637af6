"""Prediction: images (and raster windows) -> model -> box tables.

Images enter the network as RGB float32 in [0, 1] (uint8 / 255), channels
first, exactly as DeepForest feeds them; the model's own transform normalises
and resizes them, and returns boxes in the coordinates of the image passed in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .annotations import LabelMap
from .boxes import empty_boxes, make_boxes
from .raster import check_rgb_array, read_image

__all__ = ["image_to_tensor", "detections_to_table", "predict_image", "run_model"]


def image_to_tensor(image: np.ndarray) -> Tensor:
    """``H x W x 3`` uint8 RGB -> float32 tensor ``3 x H x W`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)


def detections_to_table(
    detection: dict[str, Tensor], label_map: LabelMap, image_path: str | None = None
) -> pd.DataFrame:
    """One torchvision detection dict (``boxes [N, 4]`` xyxy px, ``labels [N]``, ``scores [N]``) -> box table."""
    boxes = detection["boxes"].detach().float().cpu().numpy()
    if len(boxes) == 0:
        return empty_boxes()
    labels = label_map.decode(detection["labels"].detach().cpu().numpy())
    scores = detection["scores"].detach().float().cpu().numpy()
    return make_boxes(boxes, labels, scores, image_path)


@torch.inference_mode()
def run_model(
    model: nn.Module, images: Sequence[Tensor], precision: str = "fp32"
) -> list[dict[str, Tensor]]:
    """Forward a batch of ``3 x H x W`` float images in eval mode; returns torchvision detections."""
    model.eval()
    device = next(model.parameters()).device
    batch = [img.to(device, non_blocking=True) for img in images]
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            return model(batch)
    return model(batch)


def predict_image(
    model: nn.Module,
    label_map: LabelMap,
    image: str | os.PathLike | np.ndarray,
    *,
    image_path: str | None = None,
    precision: str = "fp32",
) -> pd.DataFrame:
    """Detect objects in one image.

    Args:
        model: a RetinaNet built by :func:`deepforest_lite.model.build_retinanet`.
        label_map: turns class ids into names.
        image: a file path (PNG, JPEG, TIFF) or an ``H x W x 3`` uint8 RGB array.
        image_path: the ``image_path`` value of the rows; defaults to the file's
            base name (as DeepForest writes it), or empty for arrays.
        precision: ``"fp32"`` or ``"bf16"`` (autocast).

    Returns:
        A box table (``xmin, ymin, xmax, ymax, label, score, image_path``) in the
        image's pixel coordinates, sorted by descending score; empty when
        nothing is found.
    """
    if isinstance(image, (str, os.PathLike)):
        if image_path is None:
            image_path = os.path.basename(os.fspath(image))
        array = read_image(image)
    else:
        array = check_rgb_array(image)
    (detection,) = run_model(model, [image_to_tensor(array)], precision)
    return detections_to_table(detection, label_map, image_path)
