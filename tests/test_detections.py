"""Detections -> box tables: boxes the clip to the image left with no width or height never reach a table.

torchvision's RetinaNet clips its boxes to the image and keeps the ones that
became lines (a box past the right edge of a 400 px image comes back as
``[400, y0, 400, y1]``); such a box can match nothing, is refused by
``evaluate_boxes`` and is not a polygon, so prediction drops it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepforest_lite.annotations import LabelMap
from deepforest_lite.boxes import BOX_COLUMNS
from deepforest_lite.config import PredictConfig
from deepforest_lite.predict import predict_image, predict_tile

LABELS = LabelMap(["Tree", "Bird"])
#: two real boxes, a zero-width one at the right edge and a zero-height one, in window pixels
BOXES = [[10, 10, 30, 30], [99.5, 5, 99.5, 20], [50, 60, 70, 60], [40, 45, 60, 85]]
KEPT = np.array([[10, 10, 30, 30], [40, 45, 60, 85]], dtype=np.float64)


class FixedBoxes(nn.Module):
    """Returns :data:`BOXES` (labels Tree, Tree, Bird, Bird; scores 0.9 ... 0.6) for every image."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))  # run_model reads the device off the parameters

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return [
            {
                "boxes": torch.tensor(BOXES, dtype=torch.float32),
                "labels": torch.tensor([0, 0, 1, 1]),
                "scores": torch.tensor([0.9, 0.8, 0.7, 0.6]),
            }
            for _ in images
        ]


def test_predict_image_drops_boxes_of_zero_area():
    table = predict_image(FixedBoxes(), LABELS, np.zeros((100, 100, 3), np.uint8))
    np.testing.assert_array_equal(table[BOX_COLUMNS].to_numpy(), KEPT)
    assert table["label"].tolist() == ["Tree", "Bird"]
    np.testing.assert_allclose(table["score"].to_numpy(), [0.9, 0.6], atol=1e-6)


@pytest.mark.parametrize("windows", [1, 4])
def test_predict_tile_drops_boxes_of_zero_area(windows):
    side = 100 if windows == 1 else 200  # one 100 px window, or a 2 x 2 grid without overlap
    raster = np.full((side, side, 3), 100, np.uint8)
    config = PredictConfig(patch_size=100, patch_overlap=0.0)
    table = predict_tile(FixedBoxes(), LABELS, raster, config, progress=False)
    offsets = [(c, r) for r in range(0, side, 100) for c in range(0, side, 100)]
    want = np.concatenate([KEPT + [c, r, c, r] for c, r in offsets])
    got = table.sort_values(BOX_COLUMNS)[BOX_COLUMNS].to_numpy()
    np.testing.assert_array_equal(got, want[np.lexsort(want.T[::-1])])
