"""Reader for COCO JSON box annotations. Torch-free."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ..boxes import (
    ANNOTATION_COLUMNS,
)
from ..errors import AnnotationError
from .raw import _Raw


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"Cannot parse {path!r} as JSON ({exc}); check the file.") from exc


def _read_coco(path: str, data: Any = None) -> _Raw:
    if data is None:
        data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise AnnotationError(
            f"{path!r} is not a COCO file: it lacks the 'images' list; a COCO file has "
            "'images', 'annotations' and 'categories'."
        )
    images: dict[Any, dict[str, Any]] = {}
    declared: dict[str, tuple[float, float]] = {}
    for k, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "id" not in img or not img.get("file_name"):
            raise AnnotationError(
                f"Image {k + 1} in {path!r} lacks an 'id' or 'file_name' ({img!r}); "
                "every COCO image needs both."
            )
        images[img["id"]] = img
        try:
            w, h = float(img.get("width", 0)), float(img.get("height", 0))
        except (TypeError, ValueError):
            w = h = 0.0
        if w > 0 and h > 0:
            declared[str(img["file_name"])] = (w, h)
    categories: dict[Any, str] = {}
    for k, cat in enumerate(data.get("categories") or []):
        if not isinstance(cat, dict) or "id" not in cat or not cat.get("name"):
            raise AnnotationError(
                f"Category {k + 1} in {path!r} lacks an 'id' or 'name' ({cat!r}); "
                "every COCO category needs both."
            )
        categories[cat["id"]] = str(cat["name"])
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    used: set[Any] = set()
    for k, ann in enumerate(data.get("annotations") or []):
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        here = f"annotation {k + 1} (id {ann_id!r}) in {path!r}"
        if not isinstance(ann, dict):
            raise AnnotationError(f"{here} is not a JSON object; each COCO annotation is an object.")
        if ann.get("image_id") not in images:
            raise AnnotationError(
                f"{here} refers to image_id {ann.get('image_id')!r}, which is not in 'images'; "
                "fix the image_id or add the image."
            )
        if ann.get("category_id") not in categories:
            raise AnnotationError(
                f"{here} has category_id {ann.get('category_id')!r}, which is not in 'categories' "
                f"(known ids {sorted(categories, key=str)}); fix the id or add the category."
            )
        xmin, ymin, xmax, ymax = _coco_box(ann, here)
        used.add(ann["image_id"])
        rows.append({
            "image_path": str(images[ann["image_id"]]["file_name"]),
            "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax,
            "label": categories[ann["category_id"]],
        })
        where.append(here)
    empty = [str(img["file_name"]) for i, img in images.items() if i not in used]
    frame = pd.DataFrame(rows, columns=ANNOTATION_COLUMNS)
    return _Raw(frame, where, path, empty=empty, declared_sizes=declared)


def _coco_box(ann: dict[str, Any], here: str) -> tuple[float, float, float, float]:
    bbox = ann.get("bbox")
    if bbox is None:
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg and all(isinstance(p, list) and p for p in seg):
            try:
                xy = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in seg])
            except (TypeError, ValueError):
                raise AnnotationError(
                    f"{here} has a polygon segmentation that is not a flat list of x, y numbers; fix it."
                ) from None
            return xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()
        raise AnnotationError(
            f"{here} has no 'bbox' (and no polygon segmentation to take one from); "
            "give it bbox = [x, y, width, height]."
        )
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise AnnotationError(f"{here} has bbox {bbox!r}; a COCO bbox is [x, y, width, height].")
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise AnnotationError(
            f"{here} has the non-numeric bbox {bbox!r}; "
            "a COCO bbox is four numbers [x, y, width, height]."
        ) from None
    return x, y, x + w, y + h
