"""visualize.py: PNG sizes, box-edge pixel colours, windows, downsampled rasters, atomic writes.

Rasters are drawn with exactly the pixels prediction reads (RasterSource, bands=, value_range=).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from PIL import Image

import deepforest_lite as dfl
from deepforest_lite.errors import ImageReadError, InvalidInputError, RasterError
from deepforest_lite.evaluate import threshold_sweep
from deepforest_lite.raster import RasterSource
from deepforest_lite.visualize import (
    PREDICTION_COLOR,
    TRUTH_COLOR,
    draw_boxes,
    plot_precision_recall,
    plot_predictions,
    save_png,
)

RED = (255, 0, 0)


def boxes(rows, scores=None, image="img.png"):
    df = pd.DataFrame(rows, columns=["xmin", "ymin", "xmax", "ymax"], dtype=float)
    df["label"] = "Tree"
    if scores is not None:
        df["score"] = scores
    df["image_path"] = image
    return df


def read_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def test_draw_boxes_edges_have_the_colour():
    image = np.zeros((50, 60, 3), dtype=np.uint8)
    out = draw_boxes(
        image, boxes([(10, 20, 30, 40)]), RED, line_width=2, show_labels=False, show_scores=False
    )
    assert out.shape == (50, 60, 3) and out.dtype == np.uint8
    # box columns 10..29, rows 20..39; a 2 px outline inside it
    assert tuple(out[20, 15]) == RED and tuple(out[21, 15]) == RED  # top edge
    assert tuple(out[39, 15]) == RED  # bottom edge
    assert tuple(out[30, 10]) == RED and tuple(out[30, 29]) == RED  # left, right edges
    assert tuple(out[30, 20]) == (0, 0, 0)  # inside
    assert tuple(out[19, 15]) == (0, 0, 0) and tuple(out[30, 30]) == (0, 0, 0)  # just outside
    assert image.max() == 0  # input untouched


def test_draw_boxes_writes_labels_and_scores():
    image = np.zeros((80, 80, 3), dtype=np.uint8)
    plain = draw_boxes(image, boxes([(20, 40, 60, 70)], scores=[0.87]), show_labels=False, show_scores=False)
    captioned = draw_boxes(image, boxes([(20, 40, 60, 70)], scores=[0.87]))
    # the caption sits above the box (rows < 40) and differs from the plain drawing there
    assert (captioned[:40] != plain[:40]).any()
    assert (plain[:40] == 0).all()


def test_draw_boxes_captions_never_overlap_and_the_best_score_wins():
    image = np.zeros((80, 80, 3), dtype=np.uint8)
    a, b = (20, 40, 60, 70), (24, 42, 64, 72)  # captions would overlap above the boxes
    for scores, winner in (([0.9, 0.5], a), ([0.5, 0.9], b)):
        both = draw_boxes(image, boxes([a, b], scores=scores))
        alone = draw_boxes(image, boxes([winner], scores=[0.9]))
        assert (both[:40] == alone[:40]).all()  # rows above both boxes: the winner's caption only
        assert (both[:40] != 0).any()
    # far apart, both are captioned
    apart = draw_boxes(image, boxes([(2, 20, 30, 30), (45, 60, 75, 75)], scores=[0.9, 0.5]))
    assert (apart[:20, :30] != 0).any() and (apart[45:60, 45:] != 0).any()


def test_draw_boxes_rejects_bad_input():
    with pytest.raises(InvalidInputError, match="uint8"):
        draw_boxes(np.zeros((5, 5, 3), dtype=float), boxes([(0, 0, 1, 1)]))
    with pytest.raises(InvalidInputError, match="colour"):
        draw_boxes(np.zeros((5, 5, 3), dtype=np.uint8), boxes([(0, 0, 1, 1)]), color=(300, 0, 0))


def test_plot_predictions_array_with_ground_truth(tmp_path):
    image = np.full((100, 120, 3), 40, dtype=np.uint8)
    preds = boxes([(10, 10, 40, 40)], scores=[0.9])
    truth = boxes([(60, 50, 100, 90)])
    out_path = tmp_path / "sub" / "overlay.png"
    picture = plot_predictions(
        image, preds, out_path, ground_truth=truth, show_labels=False, show_scores=False
    )
    png = read_png(out_path)
    assert png.shape == (100, 120, 3)
    np.testing.assert_array_equal(png, picture)
    assert tuple(png[39, 25]) == PREDICTION_COLOR  # bottom edge of the prediction
    assert tuple(png[89, 80]) == TRUTH_COLOR  # bottom edge of the ground truth
    assert tuple(png[25, 25]) == (40, 40, 40)  # inside: the image


def test_plot_predictions_window_shifts_boxes():
    image = np.zeros((300, 400, 3), dtype=np.uint8)
    preds = boxes([(150, 80, 190, 120)], scores=[0.9])
    picture = plot_predictions(
        image, preds, window=dfl.Window(100, 50, 200, 100), show_labels=False, show_scores=False
    )
    assert picture.shape == (100, 200, 3)
    # full-image box (150, 80, 190, 120) is (50, 30, 90, 70) in the window: bottom edge row 69
    assert tuple(picture[69, 60]) == PREDICTION_COLOR
    assert tuple(picture[30, 60]) == PREDICTION_COLOR
    # a tuple window gives the same picture
    same = plot_predictions(image, preds, window=(100, 50, 200, 100), show_labels=False, show_scores=False)
    np.testing.assert_array_equal(picture, same)
    with pytest.raises(InvalidInputError, match="window"):
        plot_predictions(image, preds, window=(1000, 1000, 10, 10))


@pytest.fixture
def big_raster(tmp_path):
    """A 1200 x 800 px (width x height) RGB GeoTIFF with internal overviews."""
    path = tmp_path / "big.tif"
    rng = np.random.default_rng(0)
    data = rng.integers(0, 120, (3, 800, 1200), dtype=np.uint8)
    profile = dict(
        driver="GTiff",
        width=1200,
        height=800,
        count=3,
        dtype="uint8",
        crs="EPSG:32617",
        transform=Affine(0.1, 0, 400000, 0, -0.1, 3285000),
        tiled=True,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.build_overviews([2, 4], rasterio.enums.Resampling.average)
    return str(path)


def test_large_raster_is_read_downsampled(big_raster, tmp_path, monkeypatch):
    calls = []
    real_open = rasterio.open

    class Spy:
        def __init__(self, dataset):
            self._ds = dataset

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._ds.close()

        def __getattr__(self, name):
            return getattr(self._ds, name)

        def read(self, *args, **kwargs):
            calls.append(kwargs)
            return self._ds.read(*args, **kwargs)

    monkeypatch.setattr(rasterio, "open", lambda *a, **k: Spy(real_open(*a, **k)))
    preds = boxes([(600, 400, 900, 600)], scores=[0.5], image="big.tif")
    out = tmp_path / "big.png"
    picture = plot_predictions(big_raster, preds, out, max_size=300, show_labels=False, show_scores=False)
    # longest side 1200 -> 300: factor 1/4 on both axes
    assert picture.shape == (200, 300, 3)
    assert read_png(out).shape == (200, 300, 3)
    assert calls and all(c.get("out_shape") is not None and c["out_shape"][1:] == (200, 300) for c in calls)
    # box (600, 400, 900, 600) -> (150, 100, 225, 150): bottom edge row 149, right edge column 224
    assert tuple(picture[149, 180]) == PREDICTION_COLOR
    assert tuple(picture[120, 224]) == PREDICTION_COLOR
    assert tuple(picture[120, 180]) != PREDICTION_COLOR


def test_raster_window_from_file(big_raster):
    preds = boxes([(600, 400, 700, 500)], scores=[0.5], image="big.tif")
    picture = plot_predictions(
        big_raster, preds, window=(500, 300, 400, 400), show_labels=False, show_scores=False
    )
    assert picture.shape == (400, 400, 3)
    # (600, 400, 700, 500) -> (100, 100, 200, 200) in the window
    assert tuple(picture[199, 150]) == PREDICTION_COLOR
    with rasterio.open(big_raster) as src:
        expected = src.read((1, 2, 3), window=rasterio.windows.Window(500, 300, 400, 400)).transpose(1, 2, 0)
    np.testing.assert_array_equal(picture[300:, 300:], expected[300:, 300:])  # pixels away from the box


def test_sixteen_bit_raster_is_stretched(tmp_path):
    path = tmp_path / "u16.tif"
    data = np.linspace(0, 4000, 64 * 64 * 3).reshape(3, 64, 64).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint16") as dst:
        dst.write(data)
    picture = plot_predictions(str(path), boxes([]).astype({"label": str}))
    assert picture.dtype == np.uint8 and picture.shape == (64, 64, 3)
    assert picture.min() == 0 and picture.max() == 255


NO_BOXES = boxes([]).astype({"label": str})


@pytest.fixture
def four_band_u16(make_raster):
    """A 300 x 200 px 4-band uint16 GeoTIFF (RGB + NIR) with internal overviews; values exceed 255."""
    r = make_raster("rgbn.tif", bands=4, dtype="uint16", tiled=True, blocksize=64)
    with rasterio.open(r.path, "r+") as dst:
        dst.build_overviews([2, 4], rasterio.enums.Resampling.average)
    return r.path


def test_four_band_16_bit_raster_is_drawn_with_the_pixels_prediction_reads(four_band_u16):
    # four non-alpha bands: like prediction, the picture needs bands=
    with pytest.raises(RasterError, match="bands="):
        plot_predictions(four_band_u16, NO_BOXES)
    for bands in ((1, 2, 3), (4, 3, 2)):
        picture = plot_predictions(four_band_u16, NO_BOXES, bands=bands)
        with RasterSource(four_band_u16, bands=bands) as source:
            np.testing.assert_array_equal(picture, source.read_window())
    # bands= is honoured: another band order gives other pixels
    assert not np.array_equal(
        plot_predictions(four_band_u16, NO_BOXES, bands=(1, 2, 3)),
        plot_predictions(four_band_u16, NO_BOXES, bands=(3, 2, 1)),
    )
    np.testing.assert_array_equal(
        plot_predictions(four_band_u16, NO_BOXES, bands=(3, 2, 1))[..., ::-1],
        plot_predictions(four_band_u16, NO_BOXES, bands=(1, 2, 3)),
    )


def test_window_of_a_16_bit_raster_uses_the_raster_wide_stretch(four_band_u16):
    # a window holding only background: a per-window stretch would spread it over 0..255
    window = (200, 150, 80, 40)
    picture = plot_predictions(four_band_u16, NO_BOXES, window=window, bands=(1, 2, 3))
    with RasterSource(four_band_u16, bands=(1, 2, 3)) as source:
        expected = source.read_window(dfl.Window(*window))
    np.testing.assert_array_equal(picture, expected)
    assert picture.max() < 128  # dark background stays dark next to the bright crowns elsewhere


def test_downsampled_16_bit_picture_equals_the_resampled_prediction_read(four_band_u16):
    picture = plot_predictions(four_band_u16, NO_BOXES, max_size=100, bands=(1, 2, 3), value_range=(0, 60000))
    assert picture.shape == (67, 100, 3)  # 300 x 200 px, factor 1/3
    with RasterSource(four_band_u16, bands=(1, 2, 3), value_range=(0, 60000)) as source:
        np.testing.assert_array_equal(picture, source.read_window(out_shape=(67, 100)))
        np.testing.assert_array_equal(picture, source.read_overview(100))
        # an open source draws the same picture and stays open
        np.testing.assert_array_equal(plot_predictions(source, NO_BOXES, max_size=100), picture)
        assert source.read_window(dfl.Window(0, 0, 2, 2)).shape == (2, 2, 3)


def test_value_range_is_honoured(four_band_u16):
    narrow = plot_predictions(four_band_u16, NO_BOXES, bands=(1, 2, 3), value_range=(0, 10000))
    wide = plot_predictions(four_band_u16, NO_BOXES, bands=(1, 2, 3), value_range=(0, 65535))
    with RasterSource(four_band_u16, bands=(1, 2, 3), value_range=(0, 10000)) as source:
        np.testing.assert_array_equal(narrow, source.read_window())
    assert wide.mean() < narrow.mean()


def test_bands_and_value_range_need_a_file(four_band_u16):
    with pytest.raises(InvalidInputError, match="array"):
        plot_predictions(np.zeros((10, 10, 3), np.uint8), NO_BOXES, bands=(1, 2, 3))
    with RasterSource(four_band_u16, bands=(1, 2, 3)) as source:
        with pytest.raises(InvalidInputError, match="RasterSource"):
            plot_predictions(source, NO_BOXES, value_range=(0, 1000))
    with pytest.raises(InvalidInputError, match="bands"):
        plot_predictions(four_band_u16, NO_BOXES, bands=(1, 2, 9))


def test_osbs_overlay(tmp_path):
    truth = pd.read_csv(dfl.get_data("OSBS_029.csv"))
    preds = truth.assign(score=0.8)
    out = tmp_path / "osbs.png"
    plot_predictions(dfl.get_data("OSBS_029.tif"), preds, out, ground_truth=truth)
    assert read_png(out).shape == (400, 400, 3)
    b = truth.iloc[1]  # (256, 99, 288, 140): bottom edge row 139
    assert tuple(read_png(out)[int(b.ymax) - 1, int(b.xmin) + 10]) == PREDICTION_COLOR


def test_plot_predictions_errors(tmp_path):
    two = pd.concat([boxes([(0, 0, 5, 5)], image="a.png"), boxes([(0, 0, 5, 5)], image="b.png")])
    with pytest.raises(InvalidInputError, match="2 images"):
        plot_predictions(np.zeros((10, 10, 3), np.uint8), two)
    with pytest.raises(ImageReadError, match="does not exist"):
        plot_predictions(str(tmp_path / "missing.tif"), boxes([(0, 0, 5, 5)]))
    with pytest.raises(InvalidInputError, match="xmin"):
        plot_predictions(np.zeros((10, 10, 3), np.uint8), pd.DataFrame({"x": [1]}))


def test_save_png_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    save_png(np.full((4, 6, 3), 7, np.uint8), path)
    assert read_png(path).shape == (4, 6, 3)

    def broken_save(self, *args, **kwargs):
        with open(args[0], "wb") as fh:
            fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="the disk is full"):
        save_png(np.zeros((9, 9, 3), np.uint8), path)
    monkeypatch.undo()
    # the old file is intact and no temporary file is left behind
    assert read_png(path).shape == (4, 6, 3)
    assert os.listdir(tmp_path) == ["out.png"]


def test_precision_recall_png(tmp_path):
    truth = pd.read_csv(dfl.get_data("OSBS_029.csv"))
    preds = truth.assign(score=np.linspace(0.1, 1.0, len(truth)))
    preds.loc[:20, "xmin"] += 30  # make some of them misses
    preds.loc[:20, "xmax"] += 30
    sweep = threshold_sweep(preds, truth)
    out = plot_precision_recall(sweep, tmp_path / "pr.png")
    assert out == str(tmp_path / "pr.png")
    png = read_png(out)
    assert png.shape == (600, 600, 3)
    assert len(np.unique(png.reshape(-1, 3), axis=0)) > 10  # something was drawn
    assert read_png(plot_precision_recall(sweep, tmp_path / "small.png", size_px=300)).shape == (300, 300, 3)
    with pytest.raises(InvalidInputError, match="f1"):
        plot_precision_recall(sweep.drop(columns=["f1"]), tmp_path / "x.png")
