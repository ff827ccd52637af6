"""What the network returns, turned into box tables. Torch-free at import.

A detection is one torchvision detection dict of one image: ``boxes``
(``FloatTensor[N, 4]``, ``xmin, ymin, xmax, ymax`` in pixels of the image the
network was given, origin top-left, x = column), ``labels``
(``Int64Tensor[N]``, class ids) and ``scores`` (``FloatTensor[N]``).
torchvision clips boxes to the image but keeps those the clip left with no
width or height (a box beyond the right edge becomes ``[400, y0, 400, y1]``);
:func:`detection_arrays` drops them, so no table ever holds a box of zero area.
:func:`detections_to_table` turns one into a box table (:mod:`deepforest_lite.boxes`);
:class:`WindowBoxes` keeps the detections of many raster windows as small
numpy arrays (never the windows' tensors) with each window's offset, until
:meth:`WindowBoxes.table` makes one table of them for
:func:`~deepforest_lite.merge.merge_windows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .boxes import empty_boxes, has_area, make_boxes
from .labels import LabelMap

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from .windows import Window

__all__ = ["WindowBoxes", "detection_arrays", "detections_to_table"]


def detection_arrays(detection: dict[str, Tensor]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes [n, 4] float64 xyxy px, class ids [n], scores [n] float64)`` of one detection dict.

    Boxes with ``xmax <= xmin`` or ``ymax <= ymin`` (left so by the clip to the image) are dropped.
    """
    boxes = detection["boxes"].detach().float().cpu().numpy().astype(np.float64).reshape(-1, 4)
    labels = detection["labels"].detach().cpu().numpy().reshape(-1)
    scores = detection["scores"].detach().float().cpu().numpy().astype(np.float64).reshape(-1)
    keep = has_area(boxes)
    return boxes[keep], labels[keep], scores[keep]


def detections_to_table(
    detection: dict[str, Tensor], label_map: LabelMap, image_path: str | None = None
) -> pd.DataFrame:
    """One torchvision detection dict (``boxes [N, 4]`` xyxy px, ``labels [N]``, ``scores [N]``) -> box table.

    Boxes of zero width or height are dropped (:func:`detection_arrays`).
    """
    boxes, ids, scores = detection_arrays(detection)
    if len(boxes) == 0:
        return empty_boxes()
    return make_boxes(boxes, label_map.decode(ids), scores, image_path)


class WindowBoxes:
    """Boxes found so far, as small numpy arrays (never the windows' tensors), and window counts.

    Attributes:
        windows: the number of windows of the grid (or of a rank's block).
        empty: windows skipped without reaching the network (no data).
        resumed: windows taken from a checkpoint rather than predicted.
        boxes, labels, scores, offsets: one array per window with boxes:
            ``[n, 4]`` float64 xyxy in window pixels, ``[n]`` class ids,
            ``[n]`` float64 scores, ``[n, 2]`` float64 window offsets
            ``(col_off, row_off)`` in raster pixels.
    """

    def __init__(self, windows: int) -> None:
        self.windows = windows
        self.empty = 0
        self.resumed = 0
        self.boxes: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = []

    def add(self, detection: dict[str, Tensor], window: Window) -> None:
        """Keep one window's detection (nothing when it found no box of non-zero area)."""
        boxes, labels, scores = detection_arrays(detection)
        if len(boxes) == 0:
            return
        self.boxes.append(boxes)
        self.labels.append(labels)
        self.scores.append(scores)
        self.offsets.append(np.tile(np.array([[window.col_off, window.row_off]], np.float64), (len(boxes), 1)))

    def restore(self, state: dict[str, Any] | None) -> int:
        """Take the boxes of a checkpoint's finished windows; returns how many windows it holds."""
        if state is None:
            return 0
        self.empty = state["empty"]
        self.boxes, self.labels = list(state["boxes"]), list(state["labels"])
        self.scores, self.offsets = list(state["scores"]), list(state["offsets"])
        self.resumed = state["next"]
        return self.resumed

    @classmethod
    def concat(cls, parts: Sequence[WindowBoxes]) -> WindowBoxes:
        """The boxes of consecutive blocks of one grid (in grid order) as one."""
        whole = cls(windows=sum(part.windows for part in parts))
        for part in parts:
            whole.empty += part.empty
            whole.resumed += part.resumed
            whole.boxes += part.boxes
            whole.labels += part.labels
            whole.scores += part.scores
            whole.offsets += part.offsets
        return whole

    def save(self, store: Any, done: int) -> None:
        """Save the boxes to ``store`` (a :class:`~deepforest_lite.resume.WindowCheckpoint`), ``done`` windows in."""
        store.save(done, self.empty, self.boxes, self.labels, self.scores, self.offsets)

    def table(self, label_map: LabelMap, image_path: str | None) -> pd.DataFrame:
        """Window boxes with their window offsets (:data:`merge.OFFSET_COLUMNS`)."""
        from .merge import OFFSET_COLUMNS

        if not self.boxes:
            table = empty_boxes()
            offsets = np.zeros((0, 2))
        else:
            labels = label_map.decode(np.concatenate(self.labels))
            table = make_boxes(np.concatenate(self.boxes), labels, np.concatenate(self.scores), image_path)
            offsets = np.concatenate(self.offsets)
        table[OFFSET_COLUMNS[0]] = offsets[:, 0]
        table[OFFSET_COLUMNS[1]] = offsets[:, 1]
        return table
