"""Reader for Pascal VOC XML files (one file or a folder of them). Torch-free."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any

import pandas as pd

from ..boxes import (
    ANNOTATION_COLUMNS,
    BOX_COLUMNS,
)
from ..errors import AnnotationError
from .raw import _Raw


def _read_voc(path: str, *, image_path: str | None = None) -> _Raw:
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(".xml")
        )
        if not files:
            raise AnnotationError(
                f"The folder {path!r} holds no .xml files; pass a Pascal VOC file or a folder of them."
            )
    else:
        files = [path]
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    empty: list[str] = []
    declared: dict[str, tuple[float, float]] = {}
    for file in files:
        try:
            root = ET.parse(file).getroot()
        except ET.ParseError as exc:
            raise AnnotationError(
                f"Cannot parse {file!r} as XML ({exc}); check the file."
            ) from exc
        if root.tag != "annotation":
            raise AnnotationError(
                f"{file!r} has the root element <{root.tag}>, not <annotation>; "
                "it is not a Pascal VOC file."
            )
        name = (root.findtext("filename") or "").strip() or (image_path or "")
        if not name:
            raise AnnotationError(
                f"{file!r} has no <filename>; add it or pass image_path= to name the image."
            )
        size = root.find("size")
        if size is not None:
            try:
                w, h = float(size.findtext("width", "")), float(size.findtext("height", ""))
            except ValueError:
                w = h = 0.0
            if w > 0 and h > 0:
                declared[name] = (w, h)
        objects = root.findall("object")
        if not objects:
            empty.append(name)
        for k, obj in enumerate(objects):
            here = f"object {k + 1} in {file!r}"
            box = obj.find("bndbox")
            if box is None:
                raise AnnotationError(
                    f"{here} has no <bndbox>; give it xmin, ymin, xmax, ymax or remove it."
                )
            row: dict[str, Any] = {"image_path": name, "label": _text_or_none(obj.findtext("name"))}
            for c in BOX_COLUMNS:
                row[c] = box.findtext(c)
            rows.append(row)
            where.append(here)
    frame = pd.DataFrame(rows, columns=ANNOTATION_COLUMNS)
    return _Raw(frame, where, path, empty=empty, declared_sizes=declared)


def _text_or_none(text: str | None) -> str | None:
    text = (text or "").strip()
    return text or None
