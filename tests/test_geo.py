"""Pixel <-> map conversion of box tables and box file output."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine

from deepforest_lite import geo
from deepforest_lite.boxes import PREDICTION_COLUMNS, empty_boxes, make_boxes
from deepforest_lite.data import get_data
from deepforest_lite.errors import InvalidInputError, RasterError
from deepforest_lite.geo import (
    MAP_COLUMNS,
    boxes_to_map,
    boxes_to_pixels,
    map_to_pixel,
    pixel_to_map,
    write_boxes,
)
from deepforest_lite.raster import RasterSource

# dyadic pixel sizes and origin: every conversion below is exact in float64
DYADIC = Affine(0.5, 0.0, 400000.0, 0.0, -0.25, 3300000.0)


def predictions(n: int = 3) -> pd.DataFrame:
    coords = np.array([[10, 20, 30, 60], [0, 0, 1, 1], [100.5, 7.25, 140, 9.75]], dtype=np.float64)[:n]
    return make_boxes(coords, ["Tree", "Bird", "Tree"][:n], scores=[0.9, 0.5, 0.25][:n], image_path="a.tif")


def test_pixel_to_map_exact_for_a_known_transform() -> None:
    x, y = pixel_to_map(DYADIC, np.array([0.0, 10.0, 3.5]), np.array([0.0, 20.0, 1.25]))
    assert x.tolist() == [400000.0, 400005.0, 400001.75]
    assert y.tolist() == [3300000.0, 3299995.0, 3299999.6875]
    px, py = map_to_pixel(DYADIC, x, y)
    assert px.tolist() == [0.0, 10.0, 3.5] and py.tolist() == [0.0, 20.0, 1.25]


def test_boxes_to_map_exact_with_non_square_pixels() -> None:
    gdf = boxes_to_map(predictions(), DYADIC, "EPSG:32617")
    assert isinstance(gdf, gpd.GeoDataFrame)
    assert gdf.crs.to_epsg() == 32617
    assert list(gdf.columns) == [*PREDICTION_COLUMNS, *MAP_COLUMNS, "geometry"]
    # box (10, 20, 30, 60): x 400000 + 0.5 * [10, 30]; y 3300000 - 0.25 * [60, 20]
    assert gdf.loc[0, MAP_COLUMNS].tolist() == [400005.0, 3299985.0, 400015.0, 3299995.0]
    assert gdf.loc[2, MAP_COLUMNS].tolist() == [400050.25, 3299997.5625, 400070.0, 3299998.1875]
    bounds = np.asarray(gdf.geometry.bounds)
    np.testing.assert_array_equal(bounds, gdf[MAP_COLUMNS].to_numpy())
    # a rectangle: its area is the pixel area times the pixel size product
    np.testing.assert_array_equal(gdf.geometry.area.to_numpy(), [20 * 40 * 0.125, 0.125, 39.5 * 2.5 * 0.125])
    # the pixel columns and the rest are untouched
    pd.testing.assert_frame_equal(pd.DataFrame(gdf[PREDICTION_COLUMNS]), predictions())


def test_map_min_max_are_ordered_whatever_the_axis_signs() -> None:
    south_up = Affine(2.0, 0.0, 100.0, 0.0, 4.0, 50.0)  # e > 0
    flipped = Affine(-2.0, 0.0, 100.0, 0.0, -4.0, 50.0)  # a < 0
    table = predictions(1)
    up = boxes_to_map(table, south_up)
    assert up.loc[0, MAP_COLUMNS].tolist() == [120.0, 130.0, 160.0, 290.0]
    flip = boxes_to_map(table, flipped)
    assert flip.loc[0, MAP_COLUMNS].tolist() == [40.0, -190.0, 80.0, -30.0]
    assert up.crs is None
    for transform, gdf in [(south_up, up), (flipped, flip)]:
        back = boxes_to_pixels(gdf, transform)
        assert back.loc[0, ["xmin", "ymin", "xmax", "ymax"]].tolist() == [10.0, 20.0, 30.0, 60.0]


def test_round_trip_is_exact_for_dyadic_transforms() -> None:
    rng = np.random.default_rng(1)
    xy = rng.integers(0, 4000, size=(500, 2)) / 4.0  # quarter-pixel coordinates
    wh = rng.integers(1, 200, size=(500, 2)) / 2.0
    table = make_boxes(np.hstack([xy, xy + wh]), ["Tree"] * 500, scores=rng.random(500))
    gdf = boxes_to_map(table, DYADIC, "EPSG:32617")
    back = boxes_to_pixels(gdf, DYADIC)
    pd.testing.assert_frame_equal(back[table.columns], table, check_exact=True)
    # from the geometry alone (e.g. a file read back) as well
    geometry_only = gpd.GeoDataFrame(table.drop(columns=["xmin", "ymin", "xmax", "ymax"]), geometry=gdf.geometry)
    back = boxes_to_pixels(geometry_only, DYADIC)
    np.testing.assert_array_equal(back[["xmin", "ymin", "xmax", "ymax"]].to_numpy(), np.hstack([xy, xy + wh]))


def test_round_trip_within_tolerance_for_decimal_transforms() -> None:
    # OSBS_029.tif: 0.1 m pixels, origin 404211.9 / 3285142.9 (not representable exactly)
    source = RasterSource(get_data("OSBS_029.tif"))
    table = make_boxes(np.array([[0, 0, 400, 400], [12.3, 45.6, 78.9, 101.1]]), ["Tree", "Tree"])
    gdf = boxes_to_map(table, source.transform, source.crs)
    assert gdf.crs.to_epsg() == 32617
    np.testing.assert_allclose(
        gdf.loc[0, MAP_COLUMNS].to_numpy(dtype=float), [404211.9, 3285102.9, 404251.9, 3285142.9], rtol=0, atol=1e-6
    )
    back = boxes_to_pixels(gdf, source.transform)
    np.testing.assert_allclose(back[["xmin", "ymin", "xmax", "ymax"]].to_numpy(),
                               table[["xmin", "ymin", "xmax", "ymax"]].to_numpy(), rtol=0, atol=1e-6)


def test_boxes_match_planted_objects_in_a_factory_raster(make_raster) -> None:
    r = make_raster(pixel_size=(0.5, 0.25), origin=(400000.0, 3300000.0))
    source = RasterSource(r.path)
    gdf = boxes_to_map(r.boxes, source.transform, source.crs)
    x0, y0, x1, y1 = r.boxes.loc[0, ["xmin", "ymin", "xmax", "ymax"]]
    assert gdf.loc[0, MAP_COLUMNS].tolist() == [400000 + 0.5 * x0, 3300000 - 0.25 * y1,
                                                  400000 + 0.5 * x1, 3300000 - 0.25 * y0]
    assert gdf.crs == source.crs


def test_rotated_transform_is_refused() -> None:
    rotated = Affine.rotation(10) @ Affine.scale(0.5, -0.5)
    with pytest.raises(RasterError, match=r"rotated or sheared.*gdalwarp"):
        boxes_to_map(predictions(), rotated, "EPSG:32617")
    with pytest.raises(RasterError, match="rotated or sheared"):
        pixel_to_map(Affine(1, 0.1, 0, 0, -1, 0), np.zeros(1), np.zeros(1))
    with pytest.raises(RasterError, match="zero pixel size"):
        map_to_pixel(Affine(0, 0, 0, 0, -1, 0), np.zeros(1), np.zeros(1))


def test_bad_inputs_to_boxes_to_map() -> None:
    with pytest.raises(InvalidInputError, match="affine.Affine"):
        boxes_to_map(predictions(), (0.5, 0, 0, 0, -0.5, 0), None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"lacks the column\(s\) \['ymax'\]"):
        boxes_to_map(predictions().drop(columns="ymax"), DYADIC)
    with pytest.raises(InvalidInputError, match="boxes_to_pixels needs the columns"):
        boxes_to_pixels(predictions(), DYADIC)


def test_empty_table_gives_an_empty_geodataframe() -> None:
    gdf = boxes_to_map(empty_boxes(), DYADIC, "EPSG:32617")
    assert len(gdf) == 0 and gdf.crs.to_epsg() == 32617
    assert list(gdf.columns) == [*PREDICTION_COLUMNS, *MAP_COLUMNS, "geometry"]


# -- write_boxes ----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".gpkg", ".geojson", ".shp"])
def test_vector_files_carry_the_crs_and_boxes(tmp_path, ext: str) -> None:
    gdf = boxes_to_map(predictions(), DYADIC, "EPSG:32617")
    path = write_boxes(gdf, tmp_path / f"boxes{ext}", crs="raster")  # GeoJSON would be WGS84 by default
    assert path == tmp_path / f"boxes{ext}"
    back = gpd.read_file(path)
    assert back.crs.to_epsg() == 32617
    assert back["label"].tolist() == ["Tree", "Bird", "Tree"]
    assert back["score"].tolist() == [0.9, 0.5, 0.25]
    np.testing.assert_allclose(np.asarray(back.geometry.bounds), gdf[MAP_COLUMNS].to_numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(back[MAP_COLUMNS].to_numpy(), gdf[MAP_COLUMNS].to_numpy())
    assert back["xmin"].tolist() == [10.0, 0.0, 100.5]
    # only the finished file(s) are left, no temporary folder
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = {".shp": ["boxes.cpg", "boxes.dbf", "boxes.prj", "boxes.shp", "boxes.shx"]}
    assert names == expected.get(ext, [f"boxes{ext}"])


@pytest.mark.parametrize("ext", [".gpkg", ".geojson", ".shp"])
def test_empty_vector_files_keep_the_crs(tmp_path, ext: str) -> None:
    gdf = boxes_to_map(empty_boxes(), DYADIC, "EPSG:32617")
    back = gpd.read_file(write_boxes(gdf, tmp_path / f"empty{ext}"))
    assert len(back) == 0 and back.crs.to_epsg() == (4326 if ext == ".geojson" else 32617)


def test_csv_keeps_columns_pixel_geometry_as_wkt_and_names_the_crs(tmp_path) -> None:
    gdf = boxes_to_map(predictions(), DYADIC, "EPSG:32617")
    path = write_boxes(gdf, tmp_path / "boxes.CSV")  # extension case does not matter
    back = pd.read_csv(path)
    assert list(back.columns) == [*gdf.columns, "map_crs"]
    # geometry is the pixel box, written as DeepForest writes it (shapely.box(xmin, ymin, xmax, ymax))
    assert back["geometry"].tolist() == [
        "POLYGON ((30 20, 30 60, 10 60, 10 20, 30 20))",
        "POLYGON ((1 0, 1 1, 0 1, 0 0, 1 0))",
        "POLYGON ((140 7.25, 140 9.75, 100.5 9.75, 100.5 7.25, 140 7.25))",
    ]
    assert back["map_crs"].tolist() == ["EPSG:32617"] * 3
    np.testing.assert_array_equal(back[MAP_COLUMNS].to_numpy(), gdf[MAP_COLUMNS].to_numpy())
    plain = write_boxes(predictions(), tmp_path / "sub" / "dir" / "plain.csv")  # folders are created
    pd.testing.assert_frame_equal(pd.read_csv(plain), predictions(), check_dtype=False)


def test_vector_format_without_geometry_is_an_error(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match=r"\.gpkg file holds geometries.*no geometry column.*boxes_to_map"):
        write_boxes(predictions(), tmp_path / "boxes.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension_lists_the_supported_ones(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match=r"unknown extension '\.xlsx'.*'\.csv', '\.gpkg', '\.geojson', '\.shp'"):
        write_boxes(predictions(), tmp_path / "boxes.xlsx")
    with pytest.raises(InvalidInputError, match="unknown extension ''"):
        write_boxes(predictions(), tmp_path / "boxes")


@pytest.mark.parametrize("ext", [".csv", ".gpkg", ".shp"])
def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch, ext: str) -> None:
    gdf = boxes_to_map(predictions(), DYADIC, "EPSG:32617")
    path = tmp_path / f"out{ext}"
    write_boxes(gdf.iloc[:1], path)  # an earlier complete result
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(self, target, *args, **kwargs):
        target = str(target)
        with open(target, "wb") as f:  # half a file, then the disk "fills up"
            f.write(b"partial")
        if target.endswith(".shp"):
            with open(target[:-4] + ".dbf", "wb") as f:
                f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", broken)
    with pytest.raises(OSError, match="No space left"):
        write_boxes(gdf, path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # no temporary folder, no partial file, the old result intact


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch) -> None:
    gdf = boxes_to_map(predictions(), DYADIC, "EPSG:32617")

    def interrupted(self, target, *args, **kwargs):
        with open(str(target), "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_boxes(gdf, tmp_path / "out.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_columns_give_a_clear_error(tmp_path) -> None:
    gdf = boxes_to_map(predictions(), DYADIC, "EPSG:32617")
    gdf["complex"] = [1 + 2j, 3j, 4.0 + 0j]  # no OGR field type for complex numbers
    with pytest.raises(InvalidInputError, match=r"Writing 3 boxes as \.gpkg failed"):
        write_boxes(gdf, tmp_path / "bad.gpkg")
    assert list(tmp_path.iterdir()) == []


def test_rewriting_a_shapefile_removes_stale_sidecars(tmp_path) -> None:
    gdf = boxes_to_map(predictions(), DYADIC, "EPSG:32617")
    (tmp_path / "out.qix").write_bytes(b"old spatial index")
    (tmp_path / "out.prj").write_text("an old projection")
    (tmp_path / "other.txt").write_text("keep me")
    write_boxes(gdf, tmp_path / "out.shp")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["other.txt", "out.cpg", "out.dbf", "out.prj", "out.shp", "out.shx"]
    assert gpd.read_file(tmp_path / "out.shp").crs.to_epsg() == 32617


def test_geo_public_names() -> None:
    assert set(geo.__all__) >= {"boxes_to_map", "boxes_to_pixels", "write_boxes", "pixel_to_map", "map_to_pixel"}
    assert geo.SUPPORTED_EXTENSIONS == (".csv", ".gpkg", ".geojson", ".shp")
