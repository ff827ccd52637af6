"""split_raster: tiles on the prediction grid, georeferencing, pixels, box clipping, files."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from PIL import Image

import deepforest_lite as dfl
from deepforest_lite import tilefiles
from deepforest_lite.boxes import make_boxes
from deepforest_lite.errors import AnnotationError, InvalidInputError
from deepforest_lite.geo import boxes_to_map, write_boxes
from deepforest_lite.preprocess import SplitResult, split_raster, tile_name
from deepforest_lite.raster import RasterSource
from deepforest_lite.windows import Window, window_grid


def _table(coords, name="raster.tif", labels="Tree"):
    coords = np.asarray(coords, dtype=float).reshape(-1, 4)
    names = [labels] * len(coords) if isinstance(labels, str) else list(labels)
    return make_boxes(coords, names, image_path=name)


def _rows(result: SplitResult, tile: str) -> np.ndarray:
    table = result.annotations
    return table.loc[table["image_path"] == tile, ["xmin", "ymin", "xmax", "ymax"]].to_numpy()


def _visible_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- grid, georeferencing, pixels ----------------------------------------------


def test_tiles_match_source_windows_exactly(make_raster, tmp_path):
    src = make_raster("ortho.tif", width=300, height=200, tiled=True, blocksize=32)
    out = tmp_path / "tiles"
    result = split_raster(src.path, src.boxes, patch_size=128, patch_overlap=0.1, out_dir=out,
                          allow_empty=True, progress=False)

    grid = window_grid(200, 300, 128, 0.1)
    assert result.windows == grid  # every window has data, all written, in grid order
    assert [p.name for p in result.tiles] == [f"ortho_{w.col_off}_{w.row_off}.tif" for w in grid]
    with RasterSource(src.path) as source:
        for path, window in zip(result.tiles, result.windows):
            with rasterio.open(path) as tile:
                assert tile.transform == src.transform @ Affine.translation(window.col_off, window.row_off)
                assert tile.crs == rasterio.crs.CRS.from_string(src.crs)
                assert (tile.width, tile.height, tile.count) == (window.width, window.height, 3)
                assert tile.dtypes == ("uint8",) * 3
                pixels = tile.read()
                # north-up: the top-left corner moves by whole pixel sizes, the pixel size is kept
                t, a = tile.transform, src.transform
                assert (t.a, t.e) == (a.a, a.e)
                assert (t.c, t.f) == pytest.approx((a.c + window.col_off * a.a, a.f + window.row_off * a.e))
            np.testing.assert_array_equal(pixels.transpose(1, 2, 0), source.read_window(window))
            np.testing.assert_array_equal(
                pixels, src.data[:, window.row_off:window.row_off + window.height,
                                 window.col_off:window.col_off + window.width]
            )
    # nothing else (no temporary or sidecar files) in the folder
    assert _visible_files(out) == sorted([p.name for p in result.tiles] + ["ortho.csv"])


def test_raster_smaller_than_patch_is_one_tile(make_raster, tmp_path):
    src = make_raster(width=300, height=200)
    result = split_raster(src.path, src.boxes, out_dir=tmp_path / "t", progress=False)
    assert result.windows == [Window(0, 0, 300, 200)]
    np.testing.assert_allclose(
        result.annotations[["xmin", "ymin", "xmax", "ymax"]].to_numpy(),
        src.boxes[["xmin", "ymin", "xmax", "ymax"]].to_numpy(),
    )
    assert set(result.annotations["image_path"]) == {"raster_0_0.tif"}


def test_sixteen_bit_is_scaled_like_prediction_not_wrapped(make_raster, tmp_path):
    src = make_raster("deep.tif", dtype="uint16", width=260, height=160)
    assert src.data.max() > 255  # a plain cast to uint8 would wrap
    result = split_raster(src.path, src.boxes, patch_size=100, patch_overlap=0.0,
                          out_dir=tmp_path / "t", allow_empty=True, progress=False)
    with RasterSource(src.path) as source:
        assert source.value_ranges is not None
        for path, window in zip(result.tiles, result.windows):
            with rasterio.open(path) as tile:
                assert tile.dtypes == ("uint8",) * 3
                pixels = tile.read().transpose(1, 2, 0)
            np.testing.assert_array_equal(pixels, source.read_window(window))
    # the planted objects (the brightest values) are at the top of the stretch, not wrapped
    x0, y0, x1, y1 = 50, 50, 80, 80  # first planted box, inside tile (0, 0)
    with rasterio.open(tmp_path / "t" / "deep_0_0.tif") as tile:
        planted = tile.read(1)[y0:y1, x0:x1]
    wrapped = src.data[0, y0:y1, x0:x1].astype(np.uint8)
    assert (planted == 255).all() and not (wrapped == 255).all()


def test_value_range_and_bands_are_passed_through(make_raster, tmp_path):
    src = make_raster("four.tif", bands=4, dtype="uint16", width=120, height=90,
                      boxes=[(10, 10, 40, 40)])
    result = split_raster(src.path, src.boxes, out_dir=tmp_path / "t", bands=(3, 2, 1),
                          value_range=(1000, 52000), progress=False)
    with RasterSource(src.path, bands=(3, 2, 1), value_range=(1000, 52000)) as source:
        expected = source.read_window(result.windows[0])
    np.testing.assert_array_equal(np.asarray(Image.open(result.tiles[0]).convert("RGB")), expected)


def test_png_tiles(make_raster, tmp_path):
    src = make_raster(width=200, height=150, boxes=[(20, 20, 60, 60), (90, 100, 130, 130)])
    out = tmp_path / "png"
    result = split_raster(src.path, src.boxes, patch_size=100, patch_overlap=0.0, out_dir=out,
                          image_format="png", allow_empty=True, progress=False)
    assert [p.suffix for p in result.tiles] == [".png"] * len(result.windows) and result.tiles
    with RasterSource(src.path) as source:
        for path, window in zip(result.tiles, result.windows):
            with Image.open(path) as im:
                assert im.format == "PNG" and im.mode == "RGB"
                np.testing.assert_array_equal(np.asarray(im), source.read_window(window))
    assert _visible_files(out) == sorted([p.name for p in result.tiles] + ["raster.csv"])
    table = dfl.read_annotations(result.csv_path)
    assert set(table["image_path"]) <= {p.name for p in result.tiles}


def test_tile_name():
    assert tile_name("data/ortho.tif", Window(380, 0, 400, 400)) == "ortho_380_0.tif"
    assert tile_name(Path("x/a.b.tif"), Window(0, 760, 40, 40), "png") == "a.b_0_760.png"
    with pytest.raises(InvalidInputError, match="image_format"):
        tile_name("a.tif", Window(0, 0, 1, 1), "jpg")


# -- boxes ------------------------------------------------------------------------


def test_box_cut_by_tile_edge_kept_by_visible_fraction(make_raster, tmp_path):
    # two 100 x 100 tiles side by side (col 0 and col 100), no overlap
    src = make_raster(width=200, height=100, boxes=())
    boxes = _table([
        (10, 10, 30, 30),     # wholly in tile 0
        (90, 10, 110, 30),    # half in each tile: 0.5 >= 0.5 kept in both
        (95, 40, 135, 50),    # barely in tile 0 (5/40), mostly in tile 1 (35/40)
        (51, 60, 151, 70),    # 49/100 in tile 0 (dropped), 51/100 in tile 1 (kept)
    ])
    result = split_raster(src.path, boxes, patch_size=100, patch_overlap=0.0,
                          out_dir=tmp_path / "a", progress=False)
    np.testing.assert_array_equal(_rows(result, "raster_0_0.tif"), [
        (10, 10, 30, 30),
        (90, 10, 100, 30),
    ])
    np.testing.assert_array_equal(_rows(result, "raster_100_0.tif"), [
        (0, 10, 10, 30),
        (0, 40, 35, 50),
        (0, 60, 51, 70),
    ])

    lower = split_raster(src.path, boxes, patch_size=100, patch_overlap=0.0, min_visible=0.1,
                         out_dir=tmp_path / "b", progress=False)
    np.testing.assert_array_equal(_rows(lower, "raster_0_0.tif"), [
        (10, 10, 30, 30), (90, 10, 100, 30), (95, 40, 100, 50), (51, 60, 100, 70),
    ])
    with pytest.warns(UserWarning, match="3 of 4 box"):
        whole = split_raster(src.path, boxes, patch_size=100, patch_overlap=0.0, min_visible=1.0,
                             out_dir=tmp_path / "c", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default keeps every box somewhere: no warning
        split_raster(src.path, boxes, patch_size=100, patch_overlap=0.0, out_dir=tmp_path / "d",
                     progress=False)
    np.testing.assert_array_equal(_rows(whole, "raster_0_0.tif"), [(10, 10, 30, 30)])
    assert len(_rows(whole, "raster_100_0.tif")) == 0


def test_threshold_on_both_sides_with_fractional_boxes(make_raster, tmp_path):
    src = make_raster(width=200, height=100, boxes=())
    # 40 px wide box, x from 79.6: 20.4 px (0.51) in tile 0; from 80.4: 19.6 px (0.49)
    boxes = _table([(79.6, 10, 119.6, 20), (80.4, 30, 120.4, 40)])
    result = split_raster(src.path, boxes, patch_size=100, patch_overlap=0.0,
                          out_dir=tmp_path / "a", progress=False)
    np.testing.assert_allclose(_rows(result, "raster_0_0.tif"), [(79.6, 10, 100, 20)])
    np.testing.assert_allclose(_rows(result, "raster_100_0.tif"), [(0, 30, 20.4, 40)])


def test_boxes_shifted_into_overlapping_tiles(make_raster, tmp_path):
    src = make_raster(width=300, height=200)
    result = split_raster(src.path, src.boxes, patch_size=128, patch_overlap=0.25,
                          out_dir=tmp_path / "t", allow_empty=True, progress=False)
    coords = src.boxes[["xmin", "ymin", "xmax", "ymax"]].to_numpy()
    for window in result.windows:
        name = tile_name(src.path, window)
        got = _rows(result, name)
        expected = []
        for x0, y0, x1, y1 in coords:
            cx0, cy0 = max(x0, window.col_off), max(y0, window.row_off)
            cx1 = min(x1, window.col_off + window.width)
            cy1 = min(y1, window.row_off + window.height)
            if cx1 > cx0 and cy1 > cy0 and (cx1 - cx0) * (cy1 - cy0) >= 0.5 * (x1 - x0) * (y1 - y0):
                expected.append((cx0 - window.col_off, cy0 - window.row_off,
                                 cx1 - window.col_off, cy1 - window.row_off))
        np.testing.assert_array_equal(got.reshape(-1, 4), np.asarray(expected).reshape(-1, 4))
        assert (got[:, [0, 1]] >= 0).all() and (got[:, 2] <= window.width).all()
        assert (got[:, 3] <= window.height).all()


def test_object_in_no_tile_warns(make_raster, tmp_path):
    src = make_raster(width=200, height=200, boxes=())
    big = _table([(20, 20, 180, 180), (10, 10, 20, 20)])  # 160 px box, tiles of 100 px
    with pytest.warns(UserWarning, match=r"1 of 2 box\(es\) are in no tile.*\(20, 20, 180, 180\)"):
        result = split_raster(src.path, big, patch_size=100, patch_overlap=0.0,
                              out_dir=tmp_path / "t", progress=False)
    assert len(result.annotations) == 1


def test_extra_columns_and_labels_are_kept(make_raster, tmp_path):
    src = make_raster(width=200, height=100, boxes=())
    boxes = _table([(10, 10, 30, 30), (150, 20, 170, 40)], labels=["Alive", "Dead"])
    boxes["score"] = [0.9, 0.4]
    result = split_raster(src.path, boxes, patch_size=100, patch_overlap=0.0,
                          out_dir=tmp_path / "t", progress=False)
    table = result.annotations
    assert list(table["label"]) == ["Alive", "Dead"]
    assert list(table["score"]) == [0.9, 0.4]
    assert list(table["image_path"]) == ["raster_0_0.tif", "raster_100_0.tif"]


# -- empty tiles and no-data windows ----------------------------------------------


def test_allow_empty(make_raster, tmp_path):
    src = make_raster(width=300, height=200, boxes=[(10, 10, 40, 40)])
    plain = split_raster(src.path, src.boxes, patch_size=100, patch_overlap=0.0,
                         out_dir=tmp_path / "a", progress=False)
    assert [p.name for p in plain.tiles] == ["raster_0_0.tif"]
    assert plain.skipped_empty == 5 and plain.annotations.attrs["empty_images"] == []

    result = split_raster(src.path, src.boxes, patch_size=100, patch_overlap=0.0,
                          out_dir=tmp_path / "b", allow_empty=True, progress=False)
    names = [tile_name(src.path, w) for w in window_grid(200, 300, 100, 0.0)]
    assert [p.name for p in result.tiles] == names and result.skipped_empty == 0
    assert dfl.empty_images(result.annotations) == names[1:]
    text = result.csv_path.read_text().splitlines()
    assert "raster_100_0.tif,0,0,0,0,Tree" in text
    back = dfl.read_annotations(result.csv_path)
    assert dfl.empty_images(back) == names[1:]
    assert list(back["image_path"]) == ["raster_0_0.tif"]
    found = result.annotation_set
    assert isinstance(found, dfl.AnnotationSet) and found.empty_images == tuple(names[1:])
    assert found.images == tuple(names) and result.annotations is result.annotations
    assert dfl.read_annotation_set(result.csv_path).images == found.images


def test_annotation_set_input(make_raster, tmp_path):
    src = make_raster(width=200, height=100, boxes=[(10, 10, 40, 40)])
    given = dfl.AnnotationSet(src.boxes, ("other.tif",))
    result = split_raster(src.path, given, patch_size=100, patch_overlap=0.0, out_dir=tmp_path / "a",
                          allow_empty=True, progress=False)
    assert result.annotation_set.empty_images == ("raster_100_0.tif",)  # the input's empty images are not tiles
    pd.testing.assert_frame_equal(result.annotations, split_raster(
        src.path, src.boxes, patch_size=100, patch_overlap=0.0, out_dir=tmp_path / "b", allow_empty=True,
        progress=False).annotations)
    # a raster the annotations list as empty (no boxes) is cut into empty tiles, not refused
    negative = dfl.AnnotationSet(dfl.empty_boxes(scores=False), ("raster.tif",))
    empty = split_raster(src.path, negative, patch_size=100, patch_overlap=0.0, out_dir=tmp_path / "c",
                         allow_empty=True, progress=False)
    assert len(empty.annotation_set.boxes) == 0 and empty.annotation_set.empty_images == ("raster_0_0.tif", "raster_100_0.tif")


def test_nodata_windows_are_skipped(make_raster, tmp_path):
    # columns 150..300 have no data: window col 200 is all nodata, window col 100 half
    src = make_raster(width=300, height=100, boxes=[(20, 20, 50, 50)], nodata=0,
                      nodata_regions=[(150, 0, 300, 100)])
    result = split_raster(src.path, src.boxes, patch_size=100, patch_overlap=0.0,
                          out_dir=tmp_path / "t", allow_empty=True, progress=False)
    assert [p.name for p in result.tiles] == ["raster_0_0.tif", "raster_100_0.tif"]
    assert result.skipped_nodata == 1
    with RasterSource(src.path) as source, rasterio.open(result.tiles[1]) as tile:
        expected = source.valid_mask(result.windows[1])
        assert not expected.all() and expected.any()
        np.testing.assert_array_equal(tile.read_masks(1) > 0, expected)
    with rasterio.open(result.tiles[0]) as tile:  # a tile with data everywhere has no mask
        assert (tile.read_masks(1) == 255).all()


def test_boxes_in_nodata_area_warn(make_raster, tmp_path):
    src = make_raster(width=200, height=100, boxes=(), nodata=0, nodata_regions=[(100, 0, 200, 100)])
    boxes = _table([(10, 10, 30, 30), (130, 10, 160, 30)])
    with pytest.warns(UserWarning, match="1 of 2"):
        result = split_raster(src.path, boxes, patch_size=100, patch_overlap=0.0,
                              out_dir=tmp_path / "t", progress=False)
    assert [p.name for p in result.tiles] == ["raster_0_0.tif"] and result.skipped_nodata == 1


def test_without_annotations_cuts_every_window_with_data(make_raster, tmp_path):
    src = make_raster(width=300, height=100, boxes=(), border=0, nodata_regions=[(200, 0, 300, 100)])
    out = tmp_path / "t"
    result = split_raster(src.path, patch_size=100, patch_overlap=0.0, out_dir=out, progress=False)
    assert [p.name for p in result.tiles] == ["raster_0_0.tif", "raster_100_0.tif"]
    assert result.csv_path is None and len(result.annotations) == 0
    assert dfl.empty_images(result.annotations) == []  # unlabelled is not "no objects"
    assert _visible_files(out) == ["raster_0_0.tif", "raster_100_0.tif"]


# -- annotation inputs ------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_vector_annotations_in_map_coordinates(make_raster, tmp_path, suffix):
    src = make_raster("ortho.tif", width=300, height=200)
    vector = tmp_path / f"crowns{suffix}"
    write_boxes(boxes_to_map(src.boxes, src.transform, src.crs), vector)
    from_vector = split_raster(src.path, vector, patch_size=128, patch_overlap=0.1,
                               out_dir=tmp_path / "v", progress=False)
    from_pixels = split_raster(src.path, src.boxes, patch_size=128, patch_overlap=0.1,
                               out_dir=tmp_path / "p", progress=False)
    assert len(from_vector.annotations) == len(from_pixels.annotations) > len(src.boxes)
    assert list(from_vector.annotations["image_path"]) == list(from_pixels.annotations["image_path"])
    np.testing.assert_allclose(
        from_vector.annotations[["xmin", "ymin", "xmax", "ymax"]].to_numpy(),
        from_pixels.annotations[["xmin", "ymin", "xmax", "ymax"]].to_numpy(),
        atol=1e-6,
    )


def test_vector_label_column(make_raster, tmp_path):
    src = make_raster("ortho.tif", width=200, height=100, boxes=[(10, 10, 30, 30), (120, 10, 150, 40)])
    gdf = boxes_to_map(src.boxes, src.transform, src.crs)
    gdf["species"] = ["Pine", "Oak"]
    write_boxes(gdf, tmp_path / "crowns.gpkg")
    result = split_raster(src.path, tmp_path / "crowns.gpkg", patch_size=100, patch_overlap=0.0,
                          out_dir=tmp_path / "t", label_column="species", progress=False)
    assert list(result.annotations["label"]) == ["Pine", "Oak"]


def test_csv_round_trip(make_raster, tmp_path):
    src = make_raster("ortho.tif", width=300, height=200)
    boxes = src.boxes.copy()
    boxes["image_path"] = "ortho.tif"
    other = _table([(1, 1, 5, 5)], name="other.tif")
    annotations = pd.concat([boxes, other], ignore_index=True)
    csv = tmp_path / "all.csv"
    dfl.write_annotations(annotations, csv)

    result = split_raster(src.path, csv, patch_size=128, patch_overlap=0.1,
                          out_dir=tmp_path / "t", allow_empty=True, progress=False)
    assert result.csv_path == tmp_path / "t" / "ortho.csv"
    back = dfl.read_annotations(result.csv_path)  # image sizes come from the tile headers
    pd.testing.assert_frame_equal(back, result.annotations, check_dtype=False)
    assert dfl.empty_images(back) == dfl.empty_images(result.annotations)
    assert "other.tif" not in set(back["image_path"])
    assert set(dfl.image_paths(back)) == {p.name for p in result.tiles}


def test_annotations_for_other_images_only(make_raster, tmp_path):
    src = make_raster("ortho.tif", width=120, height=100)
    others = _table([(1, 1, 5, 5), (2, 2, 6, 6)], name="plot_a.tif")
    others.loc[1, "image_path"] = "dir/plot_b.tif"
    with pytest.raises(AnnotationError, match=r"no boxes for the raster 'ortho.tif'.*'plot_a.tif', 'plot_b.tif'"):
        split_raster(src.path, others, out_dir=tmp_path / "t", progress=False)
    assert not (tmp_path / "t").exists()  # nothing written on error
    result = split_raster(src.path, others, out_dir=tmp_path / "t", image_name="plot_a.tif",
                          progress=False)
    assert len(result.annotations) == 1 and result.tiles[0].name == "ortho_0_0.tif"


def test_table_without_image_path_belongs_to_the_raster(make_raster, tmp_path):
    src = make_raster(width=120, height=100, boxes=[(10, 10, 40, 40)])
    table = src.boxes.drop(columns=["image_path"])
    result = split_raster(src.path, table, out_dir=tmp_path / "t", progress=False)
    assert len(result.annotations) == len(table)


def test_raster_listed_as_empty_image(make_raster, tmp_path):
    src = make_raster(width=200, height=100, boxes=())
    csv = tmp_path / "neg.csv"
    csv.write_text("image_path,xmin,ymin,xmax,ymax,label\nraster.tif,0,0,0,0,Tree\n")
    with pytest.warns(UserWarning, match="wrote no tiles"):
        none = split_raster(src.path, csv, patch_size=100, patch_overlap=0.0,
                            out_dir=tmp_path / "a", progress=False)
    assert none.tiles == [] and none.skipped_empty == 2
    result = split_raster(src.path, csv, patch_size=100, patch_overlap=0.0,
                          out_dir=tmp_path / "b", allow_empty=True, progress=False)
    assert dfl.empty_images(dfl.read_annotations(result.csv_path)) == ["raster_0_0.tif", "raster_100_0.tif"]


# -- arguments, atomicity, progress ------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_visible": 1.5}, "min_visible"),
        ({"min_visible": float("nan")}, "min_visible"),
        ({"image_format": "jpg"}, "image_format"),
        ({"patch_size": 0}, "patch_size"),
        ({"patch_size": 12.5}, "patch_size"),
        ({"patch_overlap": 1.0}, "patch_overlap"),
        ({"allow_empty": "yes"}, "allow_empty"),
    ],
)
def test_bad_arguments(make_raster, tmp_path, kwargs, match):
    src = make_raster(width=50, height=50)
    with pytest.raises(InvalidInputError, match=match):
        split_raster(src.path, src.boxes, out_dir=tmp_path / "t", progress=False, **kwargs)
    assert not (tmp_path / "t").exists()


def test_bad_paths(make_raster, tmp_path):
    src = make_raster(width=50, height=50)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file"):
        split_raster(src.path, src.boxes, out_dir=tmp_path / "file")
    with pytest.raises(dfl.ImageReadError, match="does not exist"):
        split_raster(tmp_path / "missing.tif", src.boxes, out_dir=tmp_path / "t")
    with pytest.raises(InvalidInputError, match="annotations must be"):
        split_raster(src.path, 42, out_dir=tmp_path / "t")
    # the tiles' CSV never overwrites the input annotations
    dfl.write_annotations(src.boxes, tmp_path / "raster.csv")
    with pytest.raises(InvalidInputError, match="overwrite the input annotations"):
        split_raster(src.path, tmp_path / "raster.csv", out_dir=tmp_path)


def test_failed_write_leaves_no_partial_tile(make_raster, tmp_path, monkeypatch):
    src = make_raster(width=200, height=100, boxes=[(10, 10, 40, 40)])
    calls = []

    def broken(rgb, path, *args):
        calls.append(path)
        Path(path).write_bytes(b"half a tiff")
        raise OSError("disk full")

    monkeypatch.setattr(tilefiles, "write_geotiff", broken)
    out = tmp_path / "t"
    with pytest.raises(OSError, match="the disk is full"):
        split_raster(src.path, src.boxes, patch_size=100, patch_overlap=0.0, out_dir=out, progress=False)
    assert calls and list(out.iterdir()) == []  # neither the tile nor the CSV


def test_progress_bar_on_stderr(make_raster, tmp_path, capsys):
    src = make_raster(width=200, height=100, boxes=[(10, 10, 40, 40)])
    split_raster(src.path, src.boxes, patch_size=50, out_dir=tmp_path / "a", progress=True)
    captured = capsys.readouterr()
    assert "cutting raster.tif" in captured.err and captured.out == ""
    split_raster(src.path, src.boxes, patch_size=50, out_dir=tmp_path / "b", progress=False)
    assert capsys.readouterr().err == ""


def test_sample_data_split(tmp_path):
    image = dfl.get_data("2019_YELL_2_541000_4977000_image_crop.png")
    boxes = dfl.read_annotations(dfl.get_data("2019_YELL_2_541000_4977000_image_crop.xml"))
    result = dfl.split_raster(image, boxes, patch_size=400, out_dir=tmp_path, progress=False)
    assert len(result.tiles) == 12  # 4 x 3 windows of the 1249 x 1035 px crop
    assert len(result.annotations) >= len(boxes)
    back = dfl.read_annotations(result.csv_path)
    assert len(back) == len(result.annotations)


def test_preprocess_does_not_import_torch():
    code = (
        "import sys, deepforest_lite\n"
        "from deepforest_lite import split_raster\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- cutting at a target GSD


def test_split_at_a_coarser_gsd_resamples_tiles_and_boxes(tmp_path, make_raster):
    """0.05 m raster cut at 0.1 m: 200 px tiles cover 400 raster px, boxes halve, transforms say 0.1 m."""
    import rasterio

    from deepforest_lite.gsd import file_gsd

    planted = make_raster("fine.tif", width=800, height=400, pixel_size=(0.05, 0.05),
                          boxes=((100, 100, 160, 140), (500, 200, 580, 300)))
    result = split_raster(planted.path, planted.boxes, patch_size=200, patch_overlap=0.0,
                          out_dir=tmp_path / "tiles", gsd=0.1, progress=False)
    assert result.gsd == 0.1
    assert [(w.col_off, w.row_off, w.width, w.height) for w in result.windows] == [(0, 0, 400, 400), (400, 0, 400, 400)]
    for tile, window in zip(result.tiles, result.windows):
        with rasterio.open(tile) as src:
            assert (src.width, src.height) == (200, 200)
            assert file_gsd(tile) == pytest.approx((0.1, 0.1))
            # the tile's pixel (0, 0) corner is the window's corner in map coordinates
            corner = (planted.transform.c + window.col_off * planted.transform.a,
                      planted.transform.f + window.row_off * planted.transform.e)
            assert (src.transform.c, src.transform.f) == pytest.approx(corner)
    boxes = result.annotations.sort_values("xmin").reset_index(drop=True)
    assert boxes[["xmin", "ymin", "xmax", "ymax"]].to_numpy().tolist() == [[50, 50, 80, 70], [50, 100, 90, 150]]
    assert list(boxes["image_path"]) == ["fine_0_0.tif", "fine_400_0.tif"]


def test_split_gsd_needs_a_georeferenced_raster(tmp_path, make_raster):
    planted = make_raster("plain.png")
    with pytest.raises(InvalidInputError, match="has no usable GSD"):
        split_raster(planted.path, planted.boxes, patch_size=100, out_dir=tmp_path / "t", gsd=0.1)
