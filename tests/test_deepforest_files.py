"""Box files both ways between deepforest_lite and DeepForest 2.1.0, pinned against DeepForest's layout.

DeepForest is not installed here. Its documented CSV layout is written out in
the tests (``image_path, xmin, ymin, xmax, ymax, label`` plus, for
predictions, ``score`` and a ``geometry`` column of pixel boxes as WKT), and
:func:`deepforest_read_csv` restates what DeepForest 2.1.0's
``utilities.read_file`` does with a CSV: read it with pandas; when a
``geometry`` column of text is present, parse it as WKT and trust it;
otherwise build ``shapely.box(xmin, ymin, xmax, ymax)``. DeepForest's
``evaluate_boxes`` matches boxes by those geometries, so a file loads
"the same" in DeepForest exactly when its geometries are its pixel boxes.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine

import deepforest_lite as dfl
from deepforest_lite.annotations import read_annotations
from deepforest_lite.boxes import make_boxes
from deepforest_lite.cli import main
from deepforest_lite.errors import AnnotationError
from deepforest_lite.geo import MAP_COLUMNS, boxes_to_map, write_boxes

BOX = ["xmin", "ymin", "xmax", "ymax"]
TRANSFORM = Affine(0.1, 0.0, 404211.0, 0.0, -0.1, 3285104.0)  # OSBS_029-like: 0.1 m pixels, UTM 17N


def deepforest_read_csv(path) -> gpd.GeoDataFrame:
    """DeepForest 2.1.0's ``read_file`` for a CSV, as its code and documentation describe it."""
    df = pd.read_csv(path)
    if "geometry" in df.columns:
        if pd.api.types.infer_dtype(df["geometry"]) == "string":
            df["geometry"] = gpd.GeoSeries.from_wkt(df["geometry"])
    else:
        df["geometry"] = [shapely.box(r.xmin, r.ymin, r.xmax, r.ymax) for r in df.itertuples()]
    return gpd.GeoDataFrame(df, geometry="geometry")


def as_deepforest_sees_it(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """The boxes DeepForest's evaluation uses: the geometries' bounds."""
    out = pd.DataFrame(frame.drop(columns="geometry"))
    out[BOX] = np.asarray(frame.geometry.bounds)
    return out


@pytest.fixture
def truth_and_predictions():
    """Ground truth and predictions of one georeferenced plot (some matches, a miss, a false positive)."""
    truth = make_boxes(
        np.array([[10, 10, 50, 50], [60, 60, 100, 110], [200, 20, 240, 70], [300, 300, 330, 340]], float),
        ["Tree"] * 4, image_path="plot.tif",
    )
    predicted = make_boxes(
        np.array([[12, 11, 49, 52], [58, 65, 101, 108], [205.5, 22.25, 238, 71], [120, 120, 150, 160]], float),
        ["Tree"] * 4, scores=[0.9, 0.8, 0.6, 0.4], image_path="plot.tif",
    )
    return truth, boxes_to_map(predicted, TRANSFORM, "EPSG:32617")


# -- ours -> DeepForest ----------------------------------------------------------------------


def test_our_csv_of_a_georeferenced_raster_loads_in_deepforest_as_the_same_boxes(tmp_path, truth_and_predictions):
    truth, predicted = truth_and_predictions
    path = write_boxes(predicted, tmp_path / "predictions.csv")
    seen = deepforest_read_csv(path)
    # the geometry DeepForest trusts is the pixel box, box for box
    np.testing.assert_array_equal(np.asarray(seen.geometry.bounds), predicted[BOX].to_numpy())
    assert (seen.geometry.area == seen.geometry.envelope.area).all()  # DeepForest reads them as 'box'
    assert seen["label"].tolist() == predicted["label"].tolist()
    assert seen["image_path"].tolist() == ["plot.tif"] * 4
    # map coordinates stay in the map_* columns, and the CSV says their CRS
    np.testing.assert_array_equal(seen[MAP_COLUMNS].to_numpy(), predicted[MAP_COLUMNS].to_numpy())
    assert set(seen["map_crs"]) == {"EPSG:32617"}
    # so scores by DeepForest's boxes equal ours
    ours = dfl.evaluate_boxes(predicted, truth, iou_threshold=0.4)
    theirs = dfl.evaluate_boxes(as_deepforest_sees_it(seen), truth, iou_threshold=0.4)
    for key in ("box_precision", "box_recall", "precision", "recall", "true_positive"):
        assert theirs[key] == ours[key], key
    assert (ours["box_precision"], ours["box_recall"]) == (0.75, 0.75)


def test_our_csv_of_a_plain_image_has_no_geometry_and_deepforest_builds_the_same_boxes(tmp_path):
    table = make_boxes(np.array([[1.5, 2, 30, 40.25]]), ["Bird"], scores=[0.7], image_path="photo.png")
    path = write_boxes(table, tmp_path / "photo.csv")
    assert "geometry" not in pd.read_csv(path).columns
    seen = deepforest_read_csv(path)
    assert tuple(seen.geometry.iloc[0].bounds) == (1.5, 2.0, 30.0, 40.25)


@pytest.mark.usefixtures("one_thread")
def test_predict_cli_csv_loads_in_deepforest(make_raster, boxy_detector, tmp_path):
    model = boxy_detector(scale_factor=0.5, per_image=10).save(tmp_path / "m.pt")
    r = make_raster("ortho.tif")
    out = tmp_path / "ortho.csv"
    assert main(["predict", str(r.path), "--model", str(model), "--output", str(out), "--patch-size", "200", "--quiet"]) == 0
    seen = deepforest_read_csv(out)
    assert len(seen) > 0
    np.testing.assert_array_equal(np.asarray(seen.geometry.bounds), seen[BOX].to_numpy())
    assert set(seen["map_crs"]) == {"EPSG:32617"}
    assert (seen["map_xmin"] > 399000).all()  # map coordinates in metres of UTM, in their own columns


# -- DeepForest -> ours ----------------------------------------------------------------------

# A predictions CSV as DeepForest 2.1.0 writes it: results.to_csv(path) of predict_tile's GeoDataFrame,
# with pandas' index column, string labels and pixel geometries as WKT.
DEEPFOREST_PREDICTIONS_CSV = """\
,xmin,ymin,xmax,ymax,label,score,image_path,geometry
0,12.0,11.0,49.0,52.0,Tree,0.9,plot.tif,"POLYGON ((49 11, 49 52, 12 52, 12 11, 49 11))"
1,58.0,65.0,101.0,108.0,Tree,0.8,plot.tif,"POLYGON ((101 65, 101 108, 58 108, 58 65, 101 65))"
2,205.5,22.25,238.0,71.0,Tree,0.6,plot.tif,"POLYGON ((238 22.25, 238 71, 205.5 71, 205.5 22.25, 238 22.25))"
3,120.0,120.0,150.0,160.0,Tree,0.4,plot.tif,"POLYGON ((150 120, 150 160, 120 160, 120 120, 150 120))"
"""

# DeepForest's annotation CSV layout (its sample OSBS_029.csv), with an empty-image row
DEEPFOREST_ANNOTATIONS_CSV = """\
image_path,xmin,ymin,xmax,ymax,label
plot.tif,10,10,50,50,Tree
plot.tif,60,60,100,110,Tree
plot.tif,200,20,240,70,Tree
plot.tif,300,300,330,340,Tree
empty.tif,0,0,0,0,Tree
"""

# polygon annotations as DeepForest 2.x reads them: geometry only, in pixels
DEEPFOREST_GEOMETRY_ONLY_CSV = """\
image_path,label,geometry
plot.tif,Tree,"POLYGON ((10 10, 50 10, 50 50, 10 50, 10 10))"
plot.tif,Snag,"POLYGON ((60 60, 100 70, 90 110, 60 60))"
"""


def test_deepforest_csvs_load_in_ours(tmp_path, truth_and_predictions, capsys):
    truth, predicted = truth_and_predictions
    (tmp_path / "pred.csv").write_text(DEEPFOREST_PREDICTIONS_CSV)
    (tmp_path / "truth.csv").write_text(DEEPFOREST_ANNOTATIONS_CSV)
    preds = read_annotations(tmp_path / "pred.csv")
    np.testing.assert_array_equal(preds[BOX].to_numpy(), predicted[BOX].to_numpy())
    assert preds["score"].tolist() == [0.9, 0.8, 0.6, 0.4]
    gt = read_annotations(tmp_path / "truth.csv")
    np.testing.assert_array_equal(gt[BOX].to_numpy(), truth[BOX].to_numpy())
    assert dfl.empty_images(gt) == ["empty.tif"]
    # and our evaluate command scores them as it scores our own tables
    assert main(["evaluate", str(tmp_path / "pred.csv"), str(tmp_path / "truth.csv")]) == 0
    printed = capsys.readouterr().out
    expected = dfl.evaluate_boxes(predicted, truth)
    assert f"box precision (DeepForest, mean per image): {expected['box_precision']:.3f}" in printed
    assert f"box recall    (DeepForest, mean per image): {expected['box_recall']:.3f}" in printed


def test_deepforest_geometry_only_csv_gets_pixel_columns_from_the_geometry(tmp_path):
    (tmp_path / "polygons.csv").write_text(DEEPFOREST_GEOMETRY_ONLY_CSV)
    table = read_annotations(tmp_path / "polygons.csv")
    assert table[BOX].to_numpy().tolist() == [[10, 10, 50, 50], [60, 60, 100, 110]]
    assert table["label"].tolist() == ["Tree", "Snag"]


def test_deepforest_geodataframes_load_in_ours(tmp_path, truth_and_predictions):
    truth, predicted = truth_and_predictions
    # read_file's output: pixel geometry, no CRS, pixel columns as well
    df_truth = deepforest_read_csv(_write(tmp_path / "t.csv", DEEPFOREST_ANNOTATIONS_CSV))
    df_truth = df_truth[df_truth["xmax"] > 0]
    df_preds = deepforest_read_csv(_write(tmp_path / "p.csv", DEEPFOREST_PREDICTIONS_CSV))
    scores = dfl.evaluate_boxes(df_preds, df_truth)
    assert scores["box_precision"] == dfl.evaluate_boxes(predicted, truth)["box_precision"] == 0.75
    np.testing.assert_array_equal(read_annotations(df_truth)[BOX].to_numpy(), truth[BOX].to_numpy())
    # geometry only (e.g. shapefile_to_annotations' output): the pixel columns come from its bounds
    only = gpd.GeoDataFrame(df_truth[["image_path", "label"]], geometry=df_truth.geometry.values)
    np.testing.assert_array_equal(read_annotations(only)[BOX].to_numpy(), truth[BOX].to_numpy())
    assert dfl.evaluate_boxes(df_preds, only)["box_recall"] == 0.75


def test_deepforest_geodataframe_in_map_coordinates(make_raster, truth_and_predictions):
    _, predicted = truth_and_predictions
    raster = make_raster("plot.tif", width=400, height=400, boxes=(), transform=TRANSFORM)
    # image_to_geo_coordinates' output: map geometry with a CRS, pixel columns kept -> the pixels are trusted
    geo = gpd.GeoDataFrame(pd.DataFrame(predicted.drop(columns=["geometry", *MAP_COLUMNS])),
                           geometry=predicted.geometry.values, crs="EPSG:32617")
    np.testing.assert_array_equal(read_annotations(geo)[BOX].to_numpy(), predicted[BOX].to_numpy())
    # map geometry without pixel columns: converted with the raster's transform (also from WGS84)
    only = gpd.GeoDataFrame({"label": ["Tree"] * 4}, geometry=predicted.geometry.values, crs="EPSG:32617")
    with pytest.raises(AnnotationError, match="map coordinates.*pass raster="):
        read_annotations(only)
    for frame in (only, only.to_crs("EPSG:4326")):
        back = read_annotations(frame, raster=raster.path)
        np.testing.assert_allclose(back[BOX].to_numpy(), predicted[BOX].to_numpy(), rtol=0, atol=1e-3)
        assert set(back["image_path"]) == {"plot.tif"}


def _write(path, text):
    path.write_text(text)
    return path
