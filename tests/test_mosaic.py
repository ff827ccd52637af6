"""--mosaic: tiles of one survey predicted as one raster give exactly the uncut raster's boxes."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import rasterio
from rasterio.windows import Window

import deepforest_lite.predict as predict_module
from deepforest_lite.config import PredictConfig
from deepforest_lite.errors import InvalidInputError
from deepforest_lite.mosaic import MosaicSource, plan_mosaic

CONFIG = PredictConfig(patch_size=64, batch_size=2, device="cpu", engine="torch")
MAP = ["map_xmin", "map_ymin", "map_xmax", "map_ymax", "label", "score"]


@pytest.fixture
def detector(boxy_detector, one_thread):
    return boxy_detector()


def cut(path, folder, col=130, row=90):
    """Four GeoTIFF tiles of ``path`` split at column ``col`` and row ``row``; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    out = []
    with rasterio.open(path) as src:
        spans = {"a": (0, 0, col, row), "b": (col, 0, src.width - col, row),
                 "c": (0, row, col, src.height - row), "d": (col, row, src.width - col, src.height - row)}
        for name, (c, r, w, h) in spans.items():
            window = Window(c, r, w, h)
            profile = src.profile | dict(width=w, height=h, transform=src.window_transform(window))
            target = os.path.join(folder, f"{name}.tif")
            with rasterio.open(target, "w", **profile) as dst:
                dst.write(src.read(window=window))
            out.append(target)
    return out


def predict(detector, raster, **kwargs):
    return predict_module.predict_tile(detector.model, detector.label_map, raster, CONFIG, progress=False, **kwargs)


def test_four_tiles_as_a_mosaic_give_the_uncut_rasters_boxes(detector, make_raster, tmp_path) -> None:
    whole = make_raster("whole.tif")
    tiles = cut(whole.path, tmp_path / "tiles")
    expected = predict(detector, whole.path)
    mosaic = MosaicSource(reversed(tiles))  # the order given does not matter
    try:
        assert mosaic.shape == (200, 300) and mosaic.transform == whole.transform
        found = predict(detector, mosaic)
        assigned = mosaic.assign(found)
    finally:
        mosaic.cleanup()
    assert len(expected) > 10 and found.attrs["windows"] == expected.attrs["windows"]
    pd.testing.assert_frame_equal(pd.DataFrame(found[MAP]), pd.DataFrame(expected[MAP]))
    # each box goes to the tile holding its centre, in that tile's pixels
    offsets = {"a.tif": (0, 0), "b.tif": (130, 0), "c.tif": (0, 90), "d.tif": (130, 90)}
    dx = assigned["image_path"].map(lambda n: offsets[n][0])
    dy = assigned["image_path"].map(lambda n: offsets[n][1])
    assert (assigned["xmin"] + dx).tolist() == expected["xmin"].tolist()
    assert (assigned["ymax"] + dy).tolist() == expected["ymax"].tolist()
    centre_x = (expected["xmin"] + expected["xmax"]) / 2
    assert ((centre_x >= 130) == assigned["image_path"].isin(["b.tif", "d.tif"])).all()
    assert set(assigned["image_path"]) == set(offsets)
    # tile by tile, the edges cut boxes: not the same result
    separate = pd.concat([predict(detector, t) for t in tiles])
    assert len(separate) != len(expected) or not separate["score"].sort_values().reset_index(drop=True).equals(
        expected["score"].sort_values().reset_index(drop=True))


def test_tiles_that_cannot_form_one_mosaic_are_refused(make_raster, tmp_path) -> None:
    a = make_raster("a.tif").path
    other_crs = make_raster("b.tif", crs="EPSG:32618").path
    other_size = make_raster("c.tif", pixel_size=(1.0, 1.0)).path
    shifted = make_raster("d.tif", origin=(400000.25, 3300000.0)).path
    plain = make_raster("e.png").path
    for paths, words in (([a, other_crs], "one CRS"), ([a, other_size], "one pixel size"),
                         ([a, shifted], "fraction of a pixel"), ([a, plain], "has no CRS")):
        with pytest.raises(InvalidInputError, match=words):
            plan_mosaic(paths)
