"""Resolution-aware prediction: objects planted at known map positions come back within one raster pixel.

The rasters hold bright squares (value 230) on a flat dark background (40),
planted at fixed positions in metres and written at several GSDs, finer and
coarser than the model's 0.1 m. The stub network below "detects" the squares
in whatever window tensor it is given, with sub-pixel edges: a pixel's
coverage is ``(value - 40) / (230 - 40)``, a square's width is the largest
row sum of coverage and its centre the coverage-weighted centroid. Both are
exact for average resampling (a pixel's value is the mean of what it covers)
and for bilinear enlarging of whole-pixel edges (the ramps are symmetric), so
any error in the window geometry, the resampling or the mapping back to
raster pixels and map coordinates shows up as a box off by more than a pixel.
Squares touching a window's edge are not reported (like a detector ignoring
cut objects); the grid's overlap is wider than any square, so each square is
whole in some window.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from scipy import ndimage
from torch import nn

import deepforest_lite as dfl
from deepforest_lite import gsd as gsd_module
from deepforest_lite.cli import main
from deepforest_lite.raster import RasterSource

FG, BG = 230, 40
MODEL_GSD = 0.1
PATCH = 200  # network px: 20 m at the model's 0.1 m
OVERLAP = 0.3  # >= 6 m shared by neighbouring windows, squares are at most 3.2 m
EXTENT = (40.0, 30.0)  # metres, x and y
#: squares in metres from the raster's top-left corner: (x0, y0, x1, y1), all multiples of 0.2 m
SQUARES_M = ((2.0, 2.0, 4.4, 4.4), (10.0, 5.0, 13.2, 8.2), (21.0, 13.0, 23.0, 15.0),
             (30.0, 20.0, 33.2, 22.4), (6.0, 24.0, 8.6, 26.2), (36.0, 3.0, 38.0, 5.4))


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models run fastest on one thread


class SquareFinder(nn.Module):
    """A RetinaNet stand-in that finds bright squares, with sub-pixel edges (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.shapes: list[tuple[int, int]] = []

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in images:
            self.shapes.append((int(image.shape[1]), int(image.shape[2])))
            value = image.double().mean(dim=0).numpy() * 255
            cover = np.clip((value - BG) / (FG - BG), 0, 1)
            labels, _ = ndimage.label(cover > 0.01)
            boxes = []
            height, width = cover.shape
            for index, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
                if rows.start == 0 or cols.start == 0 or rows.stop == height or cols.stop == width:
                    continue
                patch = cover[rows, cols] * (labels[rows, cols] == index)
                w, h = patch.sum(axis=1).max(), patch.sum(axis=0).max()
                total = patch.sum()
                cx = (patch.sum(axis=0) * (np.arange(cols.start, cols.stop) + 0.5)).sum() / total
                cy = (patch.sum(axis=1) * (np.arange(rows.start, rows.stop) + 0.5)).sum() / total
                boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            n = len(boxes)
            out.append({
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
                "labels": torch.zeros(n, dtype=torch.int64),
                "scores": torch.full((n,), 0.9),
            })
        return out


def stub_detector(model_gsd: float | None = MODEL_GSD) -> dfl.Detector:
    det = dfl.Detector(["Tree"], backbone="resnet18", resize="scale", fpn_channels=32, device="cpu")
    det.model = SquareFinder()
    det.gsd = model_gsd
    return det


def write_squares(path, px: float, py: float, *, crs="EPSG:32617", origin=(400000.0, 3300000.0),
                  metres_per_unit=(1.0, 1.0), squares_px=None, size=None):
    """A raster of the squares at ``px x py`` CRS units per pixel; returns (pixel boxes, transform).

    ``metres_per_unit``: how many metres one CRS unit is per axis (for placing
    the metre squares on rasters in feet or degrees); ``squares_px`` places
    given pixel boxes instead.
    """
    if squares_px is None:
        mx, my = px * metres_per_unit[0], py * metres_per_unit[1]
        width, height = round(EXTENT[0] / mx), round(EXTENT[1] / my)
        squares_px = [(round(x0 / mx), round(y0 / my), round(x1 / mx), round(y1 / my)) for x0, y0, x1, y1 in SQUARES_M]
    else:
        width, height = size
    data = np.full((3, height, width), BG, np.uint8)
    for x0, y0, x1, y1 in squares_px:
        data[:, y0:y1, x0:x1] = FG
    transform = Affine(px, 0.0, origin[0], 0.0, -py, origin[1])
    profile = dict(driver="GTiff", width=width, height=height, count=3, dtype="uint8", photometric="RGB")
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
    return np.array(squares_px, np.float64), transform


def match(found: np.ndarray, planted: np.ndarray) -> np.ndarray:
    """``found`` rows reordered to the planted boxes (nearest centre); one per planted box."""
    assert len(found) == len(planted), f"{len(found)} boxes found for {len(planted)} planted"
    centre = lambda b: np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)  # noqa: E731
    distance = np.linalg.norm(centre(planted)[:, None] - centre(found)[None], axis=2)
    order = distance.argmin(axis=1)
    assert len(set(order.tolist())) == len(planted)
    return found[order]


def check_recovered(table, planted: np.ndarray, transform: Affine) -> None:
    """Pixel boxes within one raster pixel, and map boxes within one pixel size, of the planted ones."""
    got = match(table[["xmin", "ymin", "xmax", "ymax"]].to_numpy(np.float64), planted)
    assert np.abs(got - planted).max() < 1.0, np.abs(got - planted).max()
    x0, x1 = transform.a * planted[:, 0] + transform.c, transform.a * planted[:, 2] + transform.c
    y0, y1 = transform.e * planted[:, 3] + transform.f, transform.e * planted[:, 1] + transform.f
    planted_map = np.stack([x0, y0, x1, y1], axis=1)
    got_map = match(table[["map_xmin", "map_ymin", "map_xmax", "map_ymax"]].to_numpy(np.float64), planted_map)
    tolerance = np.array([abs(transform.a), abs(transform.e)] * 2)
    assert (np.abs(got_map - planted_map) < tolerance).all()


# --------------------------------------------------------------------------- GSDs finer and coarser


@pytest.mark.parametrize("raster_gsd", [0.02, 0.05, 0.2])
def test_squares_recovered_at_other_gsds(tmp_path, raster_gsd):
    planted, transform = write_squares(tmp_path / "r.tif", raster_gsd, raster_gsd)
    det = stub_detector()
    table = det.predict_tile(tmp_path / "r.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False)
    check_recovered(table, planted, transform)
    side = round(PATCH * MODEL_GSD / raster_gsd)
    assert set(det.model.shapes) == {(PATCH, PATCH)}  # the network always sees patch_size px
    assert table.attrs["rescaled"] is True
    assert table.attrs["raster_gsd"] == pytest.approx((raster_gsd, raster_gsd))
    assert table.attrs["raster_gsd_source"] == "transform"
    assert table.attrs["scale"] == pytest.approx((PATCH / side, PATCH / side))
    # the grid is DeepForest's rule over raster pixels with side patch_size * model_gsd / raster_gsd
    width, height = round(EXTENT[0] / raster_gsd), round(EXTENT[1] / raster_gsd)
    expected = len(gsd_module.scaled_grid(height, width, PATCH, OVERLAP, (raster_gsd / MODEL_GSD,) * 2).windows)
    assert table.attrs["windows"] == expected


def test_native_gsd_is_not_resampled(tmp_path):
    planted, transform = write_squares(tmp_path / "r.tif", 0.105, 0.105)  # within 10 % of 0.1 m
    det = stub_detector()
    table = det.predict_tile(tmp_path / "r.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False)
    assert table.attrs["rescaled"] is False and table.attrs["scale"] == (1.0, 1.0)
    assert set(det.model.shapes) == {(PATCH, PATCH)}
    check_recovered(table, planted, transform)


def test_no_rescale_feeds_raster_pixels(tmp_path):
    write_squares(tmp_path / "r.tif", 0.05, 0.05)
    det = stub_detector()
    table = det.predict_tile(tmp_path / "r.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False,
                             rescale=False)
    assert table.attrs["rescaled"] is False
    assert table.attrs["windows"] == len(dfl.window_grid(600, 800, PATCH, OVERLAP))
    assert set(det.model.shapes) == {(PATCH, PATCH)}


def test_gsd_given_for_a_raster_without_crs(tmp_path):
    planted, _ = write_squares(tmp_path / "r.tif", 0.05, 0.05, crs=None)
    det = stub_detector()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a GSD was given: no warning
        table = det.predict_tile(tmp_path / "r.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False,
                                 gsd=0.05)
    assert table.attrs["raster_gsd_source"] == "given" and table.attrs["rescaled"] is True
    got = match(table[["xmin", "ymin", "xmax", "ymax"]].to_numpy(np.float64), planted)
    assert np.abs(got - planted).max() < 1.0


def test_raster_without_gsd_is_used_as_is_with_one_warning(tmp_path):
    write_squares(tmp_path / "r.tif", 0.05, 0.05, crs=None)
    det = stub_detector()
    with pytest.warns(gsd_module.GSDWarning, match="no usable GSD") as caught:
        table = det.predict_tile(tmp_path / "r.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False)
    assert len([w for w in caught if issubclass(w.category, gsd_module.GSDWarning)]) == 1
    assert table.attrs["rescaled"] is False and table.attrs["raster_gsd"] is None


def test_model_without_gsd_is_not_resampled(tmp_path):
    write_squares(tmp_path / "r.tif", 0.05, 0.05)
    det = stub_detector(model_gsd=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = det.predict_tile(tmp_path / "r.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False)
    assert table.attrs["rescaled"] is False and table.attrs["model_gsd"] is None


# --------------------------------------------------------------------------- CRS units and pixel shapes


def test_non_square_pixels(tmp_path):
    planted, transform = write_squares(tmp_path / "r.tif", 0.04, 0.25)
    det = stub_detector()
    table = det.predict_tile(tmp_path / "r.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False)
    sx, sy = round(PATCH * MODEL_GSD / 0.04), round(PATCH * MODEL_GSD / 0.25)
    assert table.attrs["scale"] == pytest.approx((PATCH / sx, PATCH / sy))
    check_recovered(table, planted, transform)


def test_geographic_crs(tmp_path):
    """EPSG:4326 at 45 deg N: 4.5e-7 degree pixels are 0.050 m north-south but 0.035 m east-west."""
    lat = 45.0
    deg = 4.5e-7
    geod = rasterio.crs.CRS.from_epsg(4326)
    import pyproj

    g = pyproj.Geod(ellps="WGS84")
    mx = g.inv(-80.0, lat, -80.0 + deg, lat)[2]
    my = g.inv(-80.0, lat - deg / 2, -80.0, lat + deg / 2)[2]
    width, height = round(EXTENT[0] / mx), round(EXTENT[1] / my)
    origin = (-80.0 - deg * width / 2, lat + deg * height / 2)  # centred on 45 N
    planted, transform = write_squares(tmp_path / "geo.tif", deg, deg, crs=geod, origin=origin,
                                       metres_per_unit=(mx / deg, my / deg))
    with RasterSource(tmp_path / "geo.tif") as source:
        gx, gy = source.gsd
    assert gx == pytest.approx(mx, rel=1e-4) and gy == pytest.approx(my, rel=1e-4)
    assert gx == pytest.approx(gy * math.cos(math.radians(lat)), rel=0.01)
    det = stub_detector()
    table = det.predict_tile(tmp_path / "geo.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False)
    assert table.crs.to_epsg() == 4326 and table.attrs["rescaled"] is True
    check_recovered(table, planted, transform)


def test_projected_crs_in_us_survey_feet(tmp_path):
    foot = 1200 / 3937  # metres per US survey foot
    px = 0.05 / foot  # 0.05 m pixels given in feet
    planted, transform = write_squares(tmp_path / "ft.tif", px, px, crs="EPSG:2236", origin=(700000.0, 900000.0),
                                       metres_per_unit=(foot, foot))
    with RasterSource(tmp_path / "ft.tif") as source:
        assert source.gsd == pytest.approx((0.05, 0.05), rel=1e-9)
    table = stub_detector().predict_tile(tmp_path / "ft.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False)
    check_recovered(table, planted, transform)


# --------------------------------------------------------------------------- arrays and predict_image


def test_array_with_gsd(tmp_path):
    planted, _ = write_squares(tmp_path / "r.tif", 0.05, 0.05)
    image = dfl.read_image(tmp_path / "r.tif")
    det = stub_detector()
    table = det.predict_tile(image, patch_size=PATCH, patch_overlap=OVERLAP, progress=False, gsd=0.05)
    assert table.attrs["rescaled"] is True and set(det.model.shapes) == {(PATCH, PATCH)}
    got = match(table[["xmin", "ymin", "xmax", "ymax"]].to_numpy(np.float64), planted)
    assert np.abs(got - planted).max() < 1.0


@pytest.mark.parametrize("raster_gsd", [0.05, 0.2])
def test_predict_image_resamples_to_the_model_gsd(tmp_path, raster_gsd):
    squares = np.array([(20, 30, 60, 70), (100, 40, 130, 90)])
    size = (160, 120)
    write_squares(tmp_path / "p.tif", 1.0, 1.0, crs=None, squares_px=squares, size=size)
    det = stub_detector()
    table = det.predict_image(tmp_path / "p.tif", gsd=raster_gsd)
    factor = raster_gsd / MODEL_GSD
    assert det.model.shapes == [(round(size[1] * factor), round(size[0] * factor))]
    got = match(table[["xmin", "ymin", "xmax", "ymax"]].to_numpy(np.float64), squares.astype(float))
    assert np.abs(got - squares).max() < 1.0
    assert table.attrs["rescaled"] is True
    # the same pixels as an array give the same boxes
    array_table = det.predict_image(dfl.read_image(tmp_path / "p.tif"), gsd=raster_gsd)
    assert np.allclose(array_table[["xmin", "ymin", "xmax", "ymax"]].to_numpy(),
                       table[["xmin", "ymin", "xmax", "ymax"]].to_numpy())


# --------------------------------------------------------------------------- bounded reads


def test_resampled_reads_are_one_window_each(tmp_path, monkeypatch):
    """Every read is one grid window (never the raster), resampled to patch_size px."""
    write_squares(tmp_path / "r.tif", 0.02, 0.02)  # 2000 x 1500 px
    reads: list[tuple[int, int, tuple[int, int] | None]] = []
    original = RasterSource._read

    def recording(self, window, with_mask, out_shape=None):
        win = self._window(window)
        reads.append((int(win.width), int(win.height), out_shape))
        return original(self, window, with_mask, out_shape)

    monkeypatch.setattr(RasterSource, "_read", recording)
    table = stub_detector().predict_tile(tmp_path / "r.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False)
    side = round(PATCH * MODEL_GSD / 0.02)
    assert len(reads) == table.attrs["windows"]
    assert {r[:2] for r in reads} == {(side, side)}
    assert {r[2] for r in reads} == {(PATCH, PATCH)}


def test_resampled_prediction_memory_stays_below_one_full_resolution_window(tmp_path, monkeypatch):
    """A 1 cm raster for a 0.1 m model: 2000 px windows delivered as 200 px, never held at full resolution.

    docs/performance.md bounds memory by reading one window at a time under a capped GDAL block
    cache; here every read runs under that cap, and the Python-side peak (tracemalloc: numpy
    buffers, tables) of the whole prediction stays below the 12 MB one 2000 x 2000 RGB window
    would take (reading one costs about 28 MB), let alone the 36 MB raster.
    """
    import tracemalloc

    from deepforest_lite.predict import GDAL_CACHE_BYTES

    planted, transform = write_squares(tmp_path / "cm.tif", 0.01, 0.01)  # 4000 x 3000 px
    caches: list[str | int | None] = []
    original = RasterSource._read

    def recording(self, window, with_mask, out_shape=None):
        caches.append(rasterio.env.get_gdal_config("GDAL_CACHEMAX"))
        return original(self, window, with_mask, out_shape)

    monkeypatch.setattr(RasterSource, "_read", recording)
    det = stub_detector()
    det.predict_tile(tmp_path / "cm.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False)  # warm imports
    caches.clear()
    tracemalloc.start()
    try:
        table = det.predict_tile(tmp_path / "cm.tif", patch_size=PATCH, patch_overlap=OVERLAP, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    side = round(PATCH * MODEL_GSD / 0.01)
    assert side == 2000 and table.attrs["windows"] == len(caches) == 6
    assert {int(c) for c in caches} == {GDAL_CACHE_BYTES}
    assert peak < side * side * 3, f"peak {peak / 1e6:.1f} MB"
    check_recovered(table, planted, transform)


def test_overviews_are_used_when_present(tmp_path):
    """A 10x shrinking read comes from the file's overview: stale overview pixels show through."""
    path = tmp_path / "ov.tif"
    write_squares(path, 0.01, 0.01, crs="EPSG:32617", squares_px=[], size=(1000, 1000))
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([10], rasterio.enums.Resampling.average)  # overview of the flat 40 image
        dst.write(np.full((3, 1000, 1000), 200, np.uint8))  # full resolution now 200, overview still 40
    with RasterSource(path) as source:
        full = source.read_window(dfl.Window(0, 0, 1000, 1000), out_shape=(100, 100))
        native = source.read_window(dfl.Window(0, 0, 100, 100))
    assert (native == 200).all()
    assert (full == BG).all()


# --------------------------------------------------------------------------- the command line


def test_cli_recovers_squares_and_reports_the_scale(tmp_path, monkeypatch, capsys):
    import geopandas as gpd

    import deepforest_lite.detector as detector_module

    planted, transform = write_squares(tmp_path / "fine.tif", 0.03, 0.03)
    monkeypatch.setattr(detector_module, "load_model", lambda *a, **k: stub_detector())
    code = main(["predict", str(tmp_path / "fine.tif"), "--output", str(tmp_path / "out.gpkg"),
                 "--patch-size", str(PATCH), "--patch-overlap", str(OVERLAP), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "raster 0.030 m resampled to the model's 0.100 m" in out
    table = gpd.read_file(tmp_path / "out.gpkg")
    check_recovered(table, planted, transform)


def test_cli_gsd_no_rescale_and_the_unknown_gsd_note(tmp_path, monkeypatch, capsys):
    import pandas as pd

    import deepforest_lite.detector as detector_module

    planted, _ = write_squares(tmp_path / "plain.tif", 0.05, 0.05, crs=None)
    monkeypatch.setattr(detector_module, "load_model", lambda *a, **k: stub_detector())
    args = ["predict", str(tmp_path / "plain.tif"), "--patch-size", str(PATCH), "--patch-overlap", str(OVERLAP),
            "--quiet"]
    assert main([*args, "--output", str(tmp_path / "a.csv")]) == 0
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--gsd METRES" in notes[0] and "plain.tif" in notes[0]
    assert "raster GSD unknown, used as is" in captured.out

    assert main([*args, "--output", str(tmp_path / "b.csv"), "--gsd", "0.05"]) == 0
    captured = capsys.readouterr()
    assert "note:" not in captured.err and "raster 0.050 m resampled" in captured.out
    got = match(pd.read_csv(tmp_path / "b.csv")[["xmin", "ymin", "xmax", "ymax"]].to_numpy(np.float64), planted)
    assert np.abs(got - planted).max() < 1.0

    assert main([*args, "--output", str(tmp_path / "c.csv"), "--gsd", "0.05", "--no-rescale"]) == 0
    assert "model 0.100 m, not resampled" in capsys.readouterr().out


def test_cli_rejects_a_bad_gsd(tmp_path, capsys):
    write_squares(tmp_path / "r.tif", 0.05, 0.05)
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(tmp_path / "r.tif"), "--output", str(tmp_path / "o.csv"), "--gsd", "-1"])
    assert exit_info.value.code == 2
    assert "pixel size in metres" in capsys.readouterr().err
