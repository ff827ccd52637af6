"""Raster reading: band rules, dtype scaling, nodata windows, windowed reads, pickling."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window as RioWindow

from deepforest_lite import bands as bands_module
from deepforest_lite.data import get_data
from deepforest_lite.errors import ImageReadError, InvalidInputError, RasterError
from deepforest_lite.raster import (
    RasterHeader,
    RasterSource,
    check_rgb_array,
    raster_header,
    read_image,
    scale_to_uint8,
)
from deepforest_lite.windows import Window, window_grid


def hwc(data: np.ndarray) -> np.ndarray:
    """(bands, H, W) -> (H, W, bands)."""
    return np.ascontiguousarray(np.asarray(data).transpose(1, 2, 0))


def expected_scaled(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """The documented rule, written out: clip(round((v - low) * 255 / (high - low)), 0, 255)."""
    v = (values.astype(np.float64) - low) * 255.0 / (high - low)
    v = np.nan_to_num(v, nan=0.0)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


# -- 3-band uint8, layouts -------------------------------------------------------


@pytest.mark.parametrize(
    ("tiled", "compress"), [(False, None), (True, None), (False, "deflate"), (True, "lzw")]
)
def test_uint8_rgb_windows_are_the_file_pixels(make_raster, tiled: bool, compress: str | None) -> None:
    r = make_raster(tiled=tiled, compress=compress, blocksize=32)
    with rasterio.open(r.path) as src:  # the factory really wrote the layout asked for
        assert src.profile.get("tiled", False) == tiled
        assert (src.compression is not None) == (compress is not None)
    source = RasterSource(r.path)
    assert (source.width, source.height, source.bands, source.alpha_band) == (300, 200, (1, 2, 3), None)
    assert source.value_ranges is None and source.dtype == "uint8"
    for w in [Window(0, 0, 300, 200), Window(37, 11, 100, 90), Window(250, 150, 50, 50), Window(0, 199, 1, 1)]:
        out = source.read_window(w)
        assert out.shape == (w.height, w.width, 3) and out.dtype == np.uint8
        expected = hwc(r.data[:, w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width])
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(source.read_window(None), hwc(r.data))


def test_tiled_and_striped_files_give_identical_windows(make_raster) -> None:
    striped = RasterSource(make_raster("striped.tif", width=333, height=257).path)
    tiled = RasterSource(
        make_raster("tiled.tif", width=333, height=257, tiled=True, blocksize=16, compress="deflate").path
    )
    grid = window_grid(257, 333, patch_size=100, patch_overlap=0.1)
    assert len(grid) > 4
    for w in grid:
        a, b = striped.read_window(w), tiled.read_window(w)
        np.testing.assert_array_equal(a, b)
    # and the planted objects are where the box table says
    r = make_raster("again.tif")
    image = RasterSource(r.path).read_window()
    for _, box in r.boxes.iterrows():
        x0, y0, x1, y1 = (int(box[c]) for c in ("xmin", "ymin", "xmax", "ymax"))
        assert (image[y0:y1, x0:x1] == [230, 220, 210]).all()
        assert image[y0 - 1, x0 - 1].max() <= 80 and image[y1, x1].max() <= 80


def test_rasterio_window_objects_are_accepted(make_raster) -> None:
    r = make_raster()
    source = RasterSource(r.path)
    np.testing.assert_array_equal(
        source.read_window(RioWindow(5, 6, 7, 8)), source.read_window(Window(5, 6, 7, 8))
    )


def test_explicit_band_order_is_applied(make_raster) -> None:
    r = make_raster()
    out = RasterSource(r.path, bands=(3, 2, 1)).read_window()
    np.testing.assert_array_equal(out, hwc(r.data[::-1]))


# -- band rules ------------------------------------------------------------------


def test_alpha_band_is_dropped_and_used_as_mask(make_raster) -> None:
    r = make_raster(alpha=True, border=20)
    source = RasterSource(r.path)
    assert source.bands == (1, 2, 3) and source.alpha_band == 4
    out = source.read_window()
    np.testing.assert_array_equal(out, hwc(r.data[:3]))
    valid = source.valid_mask()
    np.testing.assert_array_equal(valid, r.data[3] > 0)
    assert not valid[:20].any() and valid[20:180, 20:280].all()
    assert source.is_empty(Window(0, 0, 20, 200))  # left border only
    assert not source.is_empty(Window(0, 0, 21, 200))  # one column of data


def test_rgba_png_alpha_is_dropped_and_masks(make_raster) -> None:
    r = make_raster("rgba.png", alpha=True, border=5)
    np.testing.assert_array_equal(read_image(r.path), hwc(r.data[:3]))
    source = RasterSource(r.path)
    assert source.alpha_band == 4 and source.crs is None and not source.is_georeferenced
    assert source.is_empty(Window(0, 0, 300, 5)) and not source.is_empty(Window(0, 0, 300, 6))


def test_more_than_three_bands_need_an_explicit_choice(make_raster) -> None:
    data = np.stack([np.full((40, 50), 10 * (b + 1), dtype=np.uint8) for b in range(5)])
    r = make_raster("five.tif", width=50, height=40, bands=5, data=data)
    with pytest.raises(RasterError, match=r"has 5 non-alpha bands.*bands=\(1, 2, 3\)"):
        RasterSource(r.path)
    with pytest.raises(RasterError, match="bands="):
        read_image(r.path)
    out = RasterSource(r.path, bands=(4, 2, 5)).read_window(Window(0, 0, 3, 3))
    assert out[0, 0].tolist() == [40, 20, 50]
    assert read_image(r.path, bands=(5, 4, 3))[1, 1].tolist() == [50, 40, 30]


def test_four_bands_without_alpha_are_not_taken_as_rgba(make_raster) -> None:
    r = make_raster("rgbn.tif", bands=4)
    with pytest.raises(RasterError, match="4 non-alpha bands"):
        RasterSource(r.path)
    np.testing.assert_array_equal(RasterSource(r.path, bands=(1, 2, 3)).read_window(), hwc(r.data[:3]))


@pytest.mark.parametrize("bands", [1, 2])
def test_one_or_two_bands_are_refused(make_raster, bands: int) -> None:
    r = make_raster(f"gray{bands}.tif", bands=bands)
    with pytest.raises(RasterError, match=rf"has {bands} colour band\(s\).*expand"):
        RasterSource(r.path)
    with pytest.raises(RasterError, match="RGB image with 3 bands is needed"):
        read_image(r.path)


def test_gray_plus_alpha_is_refused(make_raster) -> None:
    r = make_raster("graya.tif", bands=1, alpha=True)
    with pytest.raises(RasterError, match=r"has 1 colour band\(s\) \(2 in all\)"):
        RasterSource(r.path)


@pytest.mark.parametrize(
    ("bands", "message"),
    [((1, 2), "three 1-based band numbers"), ("rgb", "three 1-based band numbers"),
     ((1, 2, 4), r"band\(s\) \[4\].*numbered 1 to 3"), ((0, 1, 2), r"band\(s\) \[0\]")],
)
def test_bad_band_choices_are_rejected(make_raster, bands: object, message: str) -> None:
    r = make_raster()
    with pytest.raises(InvalidInputError, match=message):
        RasterSource(r.path, bands=bands)  # type: ignore[arg-type]


# -- dtype scaling -----------------------------------------------------------------


def test_uint16_percentile_stretch_follows_the_documented_rule(make_raster) -> None:
    r = make_raster("u16.tif", dtype="uint16")
    assert r.data.max() > 255  # a plain cast would wrap
    source = RasterSource(r.path)
    assert source.dtype == "uint16"
    # the raster is smaller than STATS_MAX_SIDE, so the "decimated" read is every pixel
    expected_ranges = np.percentile(r.data.reshape(3, -1).astype(np.float64), [2, 98], axis=1).T
    np.testing.assert_array_equal(source.value_ranges, expected_ranges)
    out = source.read_window()
    for b in range(3):
        np.testing.assert_array_equal(out[..., b], expected_scaled(r.data[b], *expected_ranges[b]))
    # bright planted objects saturate at 255, they never wrap to small values
    x0, y0, x1, y1 = (int(v) for v in r.boxes.iloc[0][["xmin", "ymin", "xmax", "ymax"]])
    assert (out[y0:y1, x0:x1] == 255).all()
    assert (r.data[0, y0:y1, x0:x1].astype(np.uint8) != 255).all()  # what wrapping would give


def test_uint16_fixed_range_is_linear_and_clipped(make_raster) -> None:
    data = np.zeros((3, 4, 6), dtype=np.uint16)
    data[:, 0, :] = [0, 1000, 1500, 2000, 4095, 65535]
    r = make_raster("u16fixed.tif", width=6, height=4, data=data, dtype="uint16")
    out = RasterSource(r.path, value_range=(0, 4095)).read_window()
    # 1000 * 255 / 4095 = 62.3 -> 62; 1500 -> 93.4 -> 93; 2000 -> 124.54 -> 125
    assert out[0, :, 0].tolist() == [0, 62, 93, 125, 255, 255]
    per_band = RasterSource(r.path, value_range=[(0, 4095), (1000, 2000), (0, 65535)]).read_window()
    assert per_band[0, :, 0].tolist() == [0, 62, 93, 125, 255, 255]
    assert per_band[0, :, 1].tolist() == [0, 0, 128, 255, 255, 255]  # (1500 - 1000) * 255 / 1000 = 127.5
    assert per_band[0, :, 2].tolist() == [0, 4, 6, 8, 16, 255]


def test_uint16_png_is_scaled_by_read_image(make_raster) -> None:
    r = make_raster("sixteen.png", dtype="uint16")
    out = read_image(r.path)
    assert out.dtype == np.uint8 and out.shape == (200, 300, 3)
    lo, hi = np.percentile(r.data[0].astype(np.float64), [2, 98])
    np.testing.assert_array_equal(out[..., 0], expected_scaled(r.data[0], lo, hi))


def test_float_raster_with_nan_nodata(make_raster) -> None:
    r = make_raster("float.tif", dtype="float32", nodata=float("nan"), border=10)
    source = RasterSource(r.path)
    valid = np.isfinite(r.data[0])
    lo, hi = np.percentile(r.data[0][valid].astype(np.float64), [2, 98])
    np.testing.assert_allclose(source.value_ranges[0], [lo, hi], rtol=1e-12)
    out = source.read_window()
    np.testing.assert_array_equal(out[..., 0], expected_scaled(r.data[0], lo, hi))
    assert (out[:10] == 0).all()  # NaN becomes 0
    assert source.is_empty(Window(0, 0, 300, 10)) and not source.is_empty(Window(0, 0, 300, 11))
    fixed = RasterSource(r.path, value_range=(0.0, 1.0)).read_window()
    np.testing.assert_array_equal(fixed[10:-10, 10:-10, 1], expected_scaled(r.data[1, 10:-10, 10:-10], 0, 1))


def test_int16_negative_values_clip_to_zero(make_raster) -> None:
    data = np.array([[[-3000, -1, 0, 100, 30000]]] * 3, dtype=np.int16)
    r = make_raster("i16.tif", width=5, height=1, data=data)
    assert RasterSource(r.path, value_range=(0, 200)).read_window()[0, :, 0].tolist() == [0, 0, 0, 128, 255]


def test_percentile_stretch_uses_a_decimated_read(make_raster, monkeypatch) -> None:
    r = make_raster("big16.tif", dtype="uint16", width=300, height=200, tiled=True, blocksize=32)
    calls: list[dict] = []
    original = rasterio.io.DatasetReader.read

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    monkeypatch.setattr(bands_module, "STATS_MAX_SIDE", 60)  # the stretch rule reads it there
    source = RasterSource(r.path, percentiles=(5, 95))
    assert len(calls) == 1 and calls[0]["out_shape"] == (3, 40, 60)
    full = np.percentile(r.data.reshape(3, -1).astype(np.float64), [5, 95], axis=1).T
    # a 1-in-5 sample of a textured background gives nearly the same percentiles
    np.testing.assert_allclose(source.value_ranges, full, rtol=0.05)


def test_constant_band_does_not_divide_by_zero() -> None:
    data = np.array([[[5, 5, 6]], [[0, 0, 0]], [[7, 7, 7]]], dtype=np.uint16)
    out = scale_to_uint8(data, low=[5, 0, 7], high=[5, 0, 7])
    assert out[0].tolist() == [[0, 0, 255]] and out[1].tolist() == [[0, 0, 0]] and out[2].tolist() == [[0, 0, 0]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [(dict(value_range=(10, 5)), "value_range must be"), (dict(value_range=(0, 1, 2)), "value_range must be"),
     (dict(value_range="abc"), "value_range must be"), (dict(percentiles=(98, 2)), "percentiles must be"),
     (dict(percentiles=(2, 101)), "percentiles must be")],
)
def test_bad_scaling_settings_are_rejected(make_raster, kwargs: dict, message: str) -> None:
    r = make_raster("u16.tif", dtype="uint16")
    with pytest.raises(InvalidInputError, match=message):
        RasterSource(r.path, **kwargs)


# -- nodata / empty windows ----------------------------------------------------------


def test_nodata_border_windows_are_empty(make_raster) -> None:
    r = make_raster(nodata=0, border=40)
    source = RasterSource(r.path)
    assert source.nodata == 0
    assert source.is_empty(Window(0, 0, 300, 40))
    assert source.is_empty(Window(260, 0, 40, 200))
    assert not source.is_empty(Window(0, 0, 41, 41))
    rgb, empty = source.read_window_checked(Window(0, 0, 300, 40))
    assert empty and rgb.shape == (40, 300, 3) and not rgb.any()
    rgb, empty = source.read_window_checked(Window(30, 30, 50, 50))
    assert not empty
    np.testing.assert_array_equal(rgb, source.read_window(Window(30, 30, 50, 50)))


def test_nodata_regions_with_uint16_and_a_tiled_file(make_raster) -> None:
    r = make_raster("regions.tif", dtype="uint16", nodata=65535, nodata_regions=[(150, 120, 300, 200)],
                    tiled=True, blocksize=16, compress="deflate", boxes=[(20, 30, 50, 60)])
    source = RasterSource(r.path)
    assert source.is_empty(Window(150, 120, 150, 80))
    assert not source.is_empty(Window(149, 120, 150, 80))
    # 65535 nodata pixels do not widen the stretch
    assert source.value_ranges[:, 1].max() < 65535
    np.testing.assert_array_equal(source.valid_mask(), r.data[0] != 65535)


def test_a_window_is_empty_only_when_all_bands_are_nodata(make_raster) -> None:
    data = np.full((3, 20, 30), 255, dtype=np.uint8)
    data[0, 5, 5] = 17  # one band of one pixel has data
    r = make_raster("allbands.tif", width=30, height=20, data=data, nodata=255)
    source = RasterSource(r.path)
    assert not source.is_empty(Window(0, 0, 30, 20))
    assert not source.is_empty(Window(5, 5, 1, 1))
    assert source.is_empty(Window(6, 0, 24, 20))
    assert source.valid_mask().sum() == 1


def test_black_windows_without_nodata_are_empty(make_raster) -> None:
    r = make_raster(nodata_regions=[(0, 0, 100, 20)])
    source = RasterSource(r.path)
    assert source.nodata is None and source.valid_mask().all()
    assert source.is_empty(Window(0, 0, 100, 20))
    assert not source.is_empty(Window(0, 0, 101, 20))
    assert source.read_window_checked(Window(0, 0, 100, 20))[1]


def test_internal_gdal_mask_marks_nodata(tmp_path) -> None:
    path = tmp_path / "masked.tif"
    data = np.full((3, 32, 48), 100, dtype=np.uint8)
    mask = np.full((32, 48), 255, dtype=np.uint8)
    mask[:, :16] = 0
    with rasterio.open(path, "w", driver="GTiff", width=48, height=32, count=3, dtype="uint8",
                       crs="EPSG:32617", transform=Affine(1, 0, 0, 0, -1, 0)) as dst:
        dst.write(data)
        dst.write_mask(mask)
    source = RasterSource(path)
    assert source.is_empty(Window(0, 0, 16, 32))
    assert not source.is_empty(Window(0, 0, 17, 32))
    np.testing.assert_array_equal(source.valid_mask(), mask > 0)


def test_sample_with_nodata_255_is_not_empty() -> None:
    # OSBS_029.tif declares nodata=255 but every window holds real forest
    source = RasterSource(get_data("OSBS_029.tif"))
    assert source.nodata == 255
    for w in window_grid(source.height, source.width, patch_size=100, patch_overlap=0):
        assert not source.is_empty(w)


def test_sample_tiled_jpeg_geotiff_windows_match_a_full_read() -> None:
    path = get_data("test_tiled.tif")
    with rasterio.open(path) as src:
        full = hwc(src.read())
    source = RasterSource(path)
    assert source.crs.to_epsg() == 28992 and source.transform.a == 0.25
    for w in [Window(0, 0, 400, 400), Window(380, 760, 400, 240), Window(999, 999, 1, 1)]:
        np.testing.assert_array_equal(
            source.read_window(w), full[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
        )


# -- plain images and read_image ----------------------------------------------------------


def test_read_image_matches_rasterio_for_samples() -> None:
    for name in ["OSBS_029.tif", "OSBS_029.png", "AWPE_PigeonLake_2020_DJI_0005.JPG"]:
        path = get_data(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                expected = hwc(src.read((1, 2, 3)))
        out = read_image(path)
        assert out.dtype == np.uint8 and out.shape[2] == 3
        np.testing.assert_array_equal(out, expected)


def test_jpeg_without_georeferencing(make_raster) -> None:
    r = make_raster("photo.jpg")
    source = RasterSource(r.path)
    assert source.crs is None and not source.is_georeferenced and source.transform.is_identity
    out = source.read_window(Window(10, 10, 100, 100))
    assert out.shape == (100, 100, 3)
    diff = np.abs(out.astype(int) - hwc(r.data[:, 10:110, 10:110]).astype(int))
    assert diff.mean() < 20  # lossy (the noise texture suffers most), but the same picture
    x0, y0, x1, y1 = (int(v) for v in r.boxes.iloc[1][["xmin", "ymin", "xmax", "ymax"]])
    block = source.read_window(Window(x0 + 2, y0 + 2, x1 - x0 - 4, y1 - y0 - 4)).astype(int)
    assert np.abs(block - [230, 220, 210]).mean() < 5  # the flat planted object survives


def test_read_image_errors(tmp_path) -> None:
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "missing.tif")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)
    text = tmp_path / "notes.tif"
    text.write_text("not an image")
    with pytest.raises(ImageReadError, match=r"Cannot read .*notes\.tif"):
        read_image(text)
    with pytest.raises(OSError):  # also a built-in
        RasterSource(tmp_path / "missing.tif")


@pytest.mark.parametrize(
    ("window", "message"),
    [(Window(250, 0, 51, 10), "not inside"), (Window(-1, 0, 10, 10), "not inside"),
     (Window(0, 0, 0, 10), "empty or not inside"), (RioWindow(0.5, 0, 10, 10), "whole-pixel"),
     ((0, 0, 10, 10), "col_off, row_off, width and height")],
)
def test_bad_windows_are_rejected(make_raster, window: object, message: str) -> None:
    source = RasterSource(make_raster().path)
    with pytest.raises(InvalidInputError, match=message):
        source.read_window(window)  # type: ignore[arg-type]


def test_raster_header_reads_no_pixels(make_raster, monkeypatch) -> None:
    r = make_raster("rgbn.tif", bands=4, dtype="uint16", nodata=0)
    rgba = make_raster("rgba.tif", alpha=True)
    png = make_raster("plain.png", crs=None)
    reads: list[object] = []
    monkeypatch.setattr(rasterio.io.DatasetReader, "read", lambda self, *a, **k: reads.append(a))
    header = raster_header(r.path)
    assert isinstance(header, RasterHeader)
    assert (header.width, header.height, header.count, header.shape) == (300, 200, 4, (200, 300))
    assert header.dtypes == ("uint16",) * 4 and header.dtype == "uint16" and header.nodata == 0
    assert header.crs.to_epsg() == 32617 and header.is_georeferenced
    assert header.transform == Affine(0.5, 0, 400000.0, 0, -0.25, 3300000.0)
    assert raster_header(rgba.path).colorinterp == ("red", "green", "blue", "alpha")
    plain = raster_header(png.path)
    assert plain.crs is None and not plain.is_georeferenced and plain.count == 3
    assert reads == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.width = 1  # type: ignore[misc]
    monkeypatch.undo()
    with RasterSource(r.path, bands=(1, 2, 3)) as source:  # the source's metadata is the same header
        assert source.header == header and (source.width, source.count, source.crs) == (300, 4, header.crs)
    with pytest.raises(ImageReadError, match="does not exist"):
        raster_header(str(r.path) + ".missing")


def test_read_overview_keeps_the_aspect_and_is_the_resampled_window(make_raster) -> None:
    r = make_raster("big.tif", width=300, height=200, dtype="uint16")
    with RasterSource(r.path) as source:
        overview = source.read_overview(60)
        assert overview.shape == (40, 60, 3) and overview.dtype == np.uint8
        np.testing.assert_array_equal(overview, source.read_window(out_shape=(40, 60)))
        part = source.read_overview(25, window=Window(100, 50, 100, 50))
        np.testing.assert_array_equal(part, source.read_window(Window(100, 50, 100, 50), out_shape=(12, 25)))
        # never enlarged
        np.testing.assert_array_equal(source.read_overview(5000), source.read_window())
        with pytest.raises(InvalidInputError, match="max_side"):
            source.read_overview(0)


def test_check_rgb_array() -> None:
    ok = np.zeros((4, 5, 3), dtype=np.uint8)
    assert check_rgb_array(ok) is ok
    with pytest.raises(InvalidInputError, match="H x W x 3"):
        check_rgb_array(np.zeros((4, 5), dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="uint8"):
        check_rgb_array(np.zeros((4, 5, 3), dtype=np.float32))
    with pytest.raises(InvalidInputError, match="numpy array"):
        check_rgb_array([[0, 0, 0]])


# -- pickling and worker processes ------------------------------------------------------------


def _read_in_worker(source: RasterSource, window: Window) -> np.ndarray:
    return source.read_window(window)


def test_source_pickles_without_its_handle_and_reopens(make_raster) -> None:
    r = make_raster("p.tif", dtype="uint16", alpha=True, border=3, tiled=True)
    source = RasterSource(r.path)
    first = source.read_window(Window(0, 0, 50, 50))
    assert source._handle is not None
    blob = pickle.dumps(source)
    copy = pickle.loads(blob)
    assert copy._handle is None
    np.testing.assert_array_equal(copy.value_ranges, source.value_ranges)  # not recomputed
    np.testing.assert_array_equal(copy.read_window(Window(0, 0, 50, 50)), first)
    assert copy.is_empty(Window(0, 0, 3, 3))
    copy.close()
    with source:
        pass
    assert source._handle is None
    np.testing.assert_array_equal(source.read_window(Window(0, 0, 50, 50)), first)  # reopens


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_source_reads_in_worker_processes(make_raster, method: str) -> None:
    if method == "fork" and sys.platform != "linux":
        pytest.skip("fork is only safe on Linux")
    r = make_raster("w.tif", tiled=True, compress="deflate")
    source = RasterSource(r.path)
    source.read_window(Window(0, 0, 10, 10))  # the parent holds an open handle
    windows = window_grid(200, 300, patch_size=128, patch_overlap=0.1)[:3]
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context(method)) as pool:
        results = list(pool.map(_read_in_worker, [source] * len(windows), windows))
    for w, out in zip(windows, results):
        np.testing.assert_array_equal(out, source.read_window(w))


def test_raster_and_geo_import_without_torch() -> None:
    code = "import deepforest_lite.raster, deepforest_lite.geo, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_source_in_a_torch_dataloader_with_workers(make_raster) -> None:
    torch = pytest.importorskip("torch")
    r = make_raster("dl.tif", dtype="uint16", nodata=0, border=30, tiled=True, blocksize=16)
    source = RasterSource(r.path)
    windows = window_grid(source.height, source.width, patch_size=30, patch_overlap=0)  # 10 x 7

    class Windows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(windows)

        def __getitem__(self, i: int):
            rgb, empty = source.read_window_checked(windows[i])
            return i, torch.from_numpy(rgb), empty

    loader = torch.utils.data.DataLoader(Windows(), batch_size=8, num_workers=2)
    seen = {}
    for idx, images, empties in loader:
        for i, image, empty in zip(idx.tolist(), images, empties.tolist()):
            seen[i] = (image.numpy(), empty)
    assert sorted(seen) == list(range(len(windows)))
    for i, w in enumerate(windows):
        np.testing.assert_array_equal(seen[i][0], source.read_window(w))
        assert seen[i][1] == source.is_empty(w)
    # the outer ring of 30-px windows lies in the 30-px nodata border: 70 - 8 * 5 windows
    assert sum(empty for _, empty in seen.values()) == 30
