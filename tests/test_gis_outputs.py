"""GIS-standard box files: RFC 7946 GeoJSON, reprojection (``crs=`` / ``--crs``), the CSV's stated CRS.

The CRS a file carries is read back with pyogrio (GDAL), as QGIS would see it.
Expected map coordinates are computed here with pyproj from the known
transform, independently of the package.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from affine import Affine
from pyproj import Transformer

from deepforest_lite.boxes import make_boxes
from deepforest_lite.cli import main
from deepforest_lite.errors import InvalidInputError
from deepforest_lite.geo import MAP_COLUMNS, boxes_to_map, write_boxes

TRANSFORM = Affine(0.5, 0.0, 400000.0, 0.0, -0.25, 3300000.0)  # UTM 17N, Florida
PIXELS = np.array([[10, 20, 30, 60], [100.5, 7.25, 140, 9.75]], dtype=np.float64)


def boxes():
    table = make_boxes(PIXELS, ["Tree", "Bird"], scores=[0.9, 0.5], image_path="a.tif")
    return boxes_to_map(table, TRANSFORM, "EPSG:32617")


def expected_corners(epsg: int) -> np.ndarray:
    """The four map corners of each box, reprojected from UTM with pyproj: [box, corner, xy]."""
    x0, y0 = TRANSFORM.c + TRANSFORM.a * PIXELS[:, 0], TRANSFORM.f + TRANSFORM.e * PIXELS[:, 1]
    x1, y1 = TRANSFORM.c + TRANSFORM.a * PIXELS[:, 2], TRANSFORM.f + TRANSFORM.e * PIXELS[:, 3]
    to = Transformer.from_crs(32617, epsg, always_xy=True)
    corners = []
    for xs, ys in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        corners.append(np.stack(to.transform(xs, ys), axis=-1))
    return np.stack(corners, axis=1)


def test_geojson_is_rfc7946_by_default(tmp_path) -> None:
    path = write_boxes(boxes(), tmp_path / "trees.geojson")
    raw = json.loads(path.read_text())
    assert "crs" not in raw  # RFC 7946 section 4: no crs member
    assert pyogrio.read_info(path)["crs"] == "EPSG:4326"
    expected = expected_corners(4326)
    for feature, corners in zip(raw["features"], expected):
        ring = np.asarray(feature["geometry"]["coordinates"][0])
        # longitude, latitude, to GDAL's RFC 7946 precision of 7 decimals
        assert sorted(map(tuple, np.round(ring[:4], 7))) == sorted(map(tuple, np.round(corners, 7)))
        assert shapely.Polygon(ring).exterior.is_ccw  # RFC 7946 section 3.1.6: outer rings counter-clockwise
    props = pd.DataFrame([f["properties"] for f in raw["features"]])
    np.testing.assert_array_equal(props[["xmin", "ymin", "xmax", "ymax"]].to_numpy(), PIXELS)  # pixels unchanged
    # the map columns follow the file's CRS: the lon/lat bounds of each box
    np.testing.assert_allclose(props["map_xmin"], expected[:, :, 0].min(axis=1), rtol=0, atol=1e-9)
    np.testing.assert_allclose(props["map_ymax"], expected[:, :, 1].max(axis=1), rtol=0, atol=1e-9)


def test_geojson_keeps_the_raster_crs_when_asked(tmp_path) -> None:
    path = write_boxes(boxes(), tmp_path / "utm.geojson", crs="raster")
    assert pyogrio.read_info(path)["crs"] == "EPSG:32617"
    assert "32617" in json.loads(path.read_text())["crs"]["properties"]["name"]


@pytest.mark.parametrize("ext", [".gpkg", ".shp", ".geojson"])
def test_crs_reprojects_every_vector_format(tmp_path, ext: str) -> None:
    path = write_boxes(boxes(), tmp_path / f"merc{ext}", crs="EPSG:3857")
    assert pyogrio.read_info(path)["crs"] == "EPSG:3857"
    back = pyogrio.read_dataframe(path)
    expected = expected_corners(3857)
    bounds = np.asarray(back.geometry.bounds)
    np.testing.assert_allclose(bounds[:, 0], expected[:, :, 0].min(axis=1), rtol=0, atol=1e-6)
    np.testing.assert_allclose(bounds[:, 3], expected[:, :, 1].max(axis=1), rtol=0, atol=1e-6)
    np.testing.assert_allclose(back[MAP_COLUMNS].to_numpy(), bounds, rtol=0, atol=1e-6)


def test_default_vector_files_keep_the_raster_crs(tmp_path) -> None:
    for ext in (".gpkg", ".shp"):
        assert pyogrio.read_info(write_boxes(boxes(), tmp_path / f"b{ext}"))["crs"] == "EPSG:32617"


def test_csv_states_its_crs_and_reprojects(tmp_path) -> None:
    native = pd.read_csv(write_boxes(boxes(), tmp_path / "utm.csv"))
    assert native["map_crs"].tolist() == ["EPSG:32617", "EPSG:32617"]
    np.testing.assert_array_equal(native[MAP_COLUMNS].to_numpy(), boxes()[MAP_COLUMNS].to_numpy())
    lonlat = pd.read_csv(write_boxes(boxes(), tmp_path / "wgs84.csv", crs="EPSG:4326"))
    assert lonlat["map_crs"].tolist() == ["EPSG:4326", "EPSG:4326"]
    expected = expected_corners(4326)
    np.testing.assert_allclose(lonlat["map_xmin"], expected[:, :, 0].min(axis=1), rtol=0, atol=1e-9)
    np.testing.assert_allclose(lonlat["map_ymin"], expected[:, :, 1].min(axis=1), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(lonlat[["xmin", "ymin", "xmax", "ymax"]].to_numpy(), PIXELS)
    plain = pd.read_csv(write_boxes(make_boxes(PIXELS, ["Tree", "Tree"]), tmp_path / "plain.csv"))
    assert "map_crs" not in plain.columns  # pixels only: no CRS to state


def test_bad_crs_requests_are_one_sentence(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match=r"Unknown CRS 'EPSG:99999'.*'raster'"):
        write_boxes(boxes(), tmp_path / "x.gpkg", crs="EPSG:99999")
    with pytest.raises(InvalidInputError, match="no CRS.*nothing to reproject from"):
        write_boxes(make_boxes(PIXELS, ["Tree", "Tree"]), tmp_path / "x.csv", crs="EPSG:4326")
    assert list(tmp_path.iterdir()) == []


# -- the command line ---------------------------------------------------------------------------


def cli(*argv) -> int:
    return main([str(a) for a in argv])


@pytest.mark.usefixtures("one_thread")
def test_predict_crs_option_reaches_every_output(make_raster, model_file, tmp_path) -> None:
    r = make_raster("a.tif")
    run = ["predict", r.path, "--model", model_file, "--patch-size", "200", "--quiet"]
    assert cli(*run, "--output", tmp_path / "native.gpkg") == 0
    assert cli(*run, "--output", tmp_path / "default.geojson") == 0
    assert cli(*run, "--output", tmp_path / "wgs84.gpkg", "--crs", "EPSG:4326") == 0
    assert cli(*run, "--output", tmp_path / "wgs84.csv", "--crs", "EPSG:4326") == 0
    assert cli(*run, "--output-dir", tmp_path / "dir", "--format", "shp", "--crs", "EPSG:3857") == 0
    assert pyogrio.read_info(tmp_path / "native.gpkg")["crs"] == "EPSG:32617"
    assert pyogrio.read_info(tmp_path / "default.geojson")["crs"] == "EPSG:4326"
    assert "crs" not in json.loads((tmp_path / "default.geojson").read_text())
    assert pyogrio.read_info(tmp_path / "wgs84.gpkg")["crs"] == "EPSG:4326"
    assert pyogrio.read_info(tmp_path / "dir" / "a.shp")["crs"] == "EPSG:3857"
    native = pyogrio.read_dataframe(tmp_path / "native.gpkg")
    csv = pd.read_csv(tmp_path / "wgs84.csv")
    assert len(native) > 0 and set(csv["map_crs"]) == {"EPSG:4326"}
    to = Transformer.from_crs(32617, 4326, always_xy=True)
    x0, y0, x1, y1 = (native[c].to_numpy() for c in MAP_COLUMNS)
    lon, lat = np.stack([to.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))], axis=-1)
    np.testing.assert_allclose(csv["map_xmin"], lon.min(axis=1), rtol=0, atol=1e-9)  # bounds of the 4 corners
    np.testing.assert_allclose(csv["map_ymax"], lat.max(axis=1), rtol=0, atol=1e-9)


@pytest.mark.usefixtures("one_thread")
def test_rasters_in_two_crs_go_into_one_reprojected_file(make_raster, model_file, tmp_path, capsys) -> None:
    a = make_raster("a.tif")
    b = make_raster("b.tif", crs="EPSG:32616", origin=(800000.0, 3300000.0))
    run = ["predict", a.path, b.path, "--model", model_file, "--patch-size", "200", "--quiet"]
    assert cli(*run, "--output", tmp_path / "both.geojson") == 0  # WGS84 holds both
    assert set(pyogrio.read_dataframe(tmp_path / "both.geojson")["image_path"]) == {"a.tif", "b.tif"}
    with pytest.raises(SystemExit) as exc:
        cli(*run, "--output", tmp_path / "both.gpkg")
    assert exc.value.code == 2 and "--crs EPSG:xxxx" in capsys.readouterr().err
    assert cli(*run, "--output", tmp_path / "both.gpkg", "--crs", "EPSG:4326") == 0
    assert pyogrio.read_info(tmp_path / "both.gpkg")["crs"] == "EPSG:4326"


def test_unknown_crs_option_is_a_one_line_error(make_raster, model_file, tmp_path, capsys) -> None:
    r = make_raster("a.tif")
    with pytest.raises(SystemExit) as exc:
        cli("predict", r.path, "--model", model_file, "--output", tmp_path / "x.gpkg", "--crs", "EPSG:99999")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "unknown CRS 'EPSG:99999'" in err
    assert not (tmp_path / "x.gpkg").exists()
