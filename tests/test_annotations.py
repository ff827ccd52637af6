"""Annotation readers/writer: DeepForest CSV, Pascal VOC, COCO, vector files; validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS

import deepforest_lite as dfl
from deepforest_lite.annotations import (
    AnnotationSet,
    LabelMap,
    empty_images,
    image_paths,
    read_annotation_set,
    read_annotations,
    with_empty_images,
    write_annotations,
)
from deepforest_lite.boxes import ANNOTATION_COLUMNS, BOX_COLUMNS, empty_boxes
from deepforest_lite.data import get_data
from deepforest_lite.errors import AnnotationError, ImageReadError, LabelError
from deepforest_lite.geo import pixel_to_map

HEADER = "image_path,xmin,ymin,xmax,ymax,label\n"


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def make_image(path: Path, width: int, height: int, *, crs=None, transform=None) -> Path:
    """A small RGB raster (PNG, or GeoTIFF when a CRS is given)."""
    profile = {"width": width, "height": height, "count": 3, "dtype": "uint8"}
    if crs is not None:
        profile.update(driver="GTiff", crs=crs, transform=transform)
    else:
        profile.update(driver="PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.zeros((3, height, width), dtype=np.uint8))
    return path


def voc_xml(filename: str, objects: list[tuple], size: tuple[int, int] | None = None) -> str:
    parts = [f"<annotation><folder>x</folder><filename>{filename}</filename>"]
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, *coords in objects:
        xmin, ymin, xmax, ymax = coords
        parts.append(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{xmin}</xmin>"
            f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "".join(parts)


def coords_of(table: pd.DataFrame) -> list[list[float]]:
    return table[BOX_COLUMNS].to_numpy().tolist()


# ----------------------------------------------------------------------------
# DeepForest CSV
# ----------------------------------------------------------------------------


def test_csv_reads_boxes_columns_and_dtypes(tmp_path):
    csv = write_text(
        tmp_path / "a.csv",
        "Unnamed: 0,label,image_path,xmin,ymin,xmax,ymax,site\n"
        "0,Tree,a.png,1.5,2,10,12.25,OSBS\n"
        "1,Bird,b.png,0,3,4,9,HARV\n",
    )
    table = read_annotations(csv)
    assert list(table.columns) == [*ANNOTATION_COLUMNS, "site"]
    assert coords_of(table) == [[1.5, 2.0, 10.0, 12.25], [0.0, 3.0, 4.0, 9.0]]
    assert table["image_path"].tolist() == ["a.png", "b.png"]
    assert table["label"].tolist() == ["Tree", "Bird"]
    assert table["site"].tolist() == ["OSBS", "HARV"]
    assert all(table[c].dtype == np.float64 for c in BOX_COLUMNS)
    assert table.dtypes[ANNOTATION_COLUMNS].equals(empty_boxes(scores=False).dtypes)
    assert empty_images(table) == []


def test_csv_numeric_labels_stay_strings(tmp_path):
    csv = write_text(tmp_path / "a.csv", HEADER + "a.png,1,2,3,4,1\na.png,1,2,3,4,NA\n")
    table = read_annotations(csv)
    assert table["label"].tolist() == ["1", "NA"]


def test_header_only_csv_gives_the_empty_table(tmp_path):
    table = read_annotations(write_text(tmp_path / "a.csv", HEADER))
    pd.testing.assert_frame_equal(table, empty_boxes(scores=False))


def test_real_osbs_csv_and_xml_agree():
    csv = read_annotations(get_data("OSBS_029.csv"))
    xml = read_annotations(get_data("OSBS_029.xml"))
    assert len(csv) == 61
    assert csv.iloc[0][ANNOTATION_COLUMNS].tolist() == ["OSBS_029.tif", 203.0, 67.0, 227.0, 90.0, "Tree"]
    pd.testing.assert_frame_equal(csv, xml)


def test_real_soap_xml_matches_testfile_multi():
    xml = read_annotations(get_data("SOAP_061.xml"), label_map=["Alive", "Dead"])
    csv = read_annotations(get_data("testfile_multi.csv"), label_map=LabelMap(["Alive", "Dead"]))
    pd.testing.assert_frame_equal(xml, csv)
    assert len(xml) == 37
    assert xml["label"].value_counts().to_dict() == {"Dead": 28, "Alive": 9}
    assert set(xml["image_path"]) == {"SOAP_061.png"}


def test_csv_image_path_argument_fills_the_missing_column(tmp_path):
    csv = write_text(tmp_path / "a.csv", "xmin,ymin,xmax,ymax,label\n1,2,3,4,Tree\n")
    table = read_annotations(csv, image_path="tile.png")
    assert table["image_path"].tolist() == ["tile.png"]
    with pytest.raises(AnnotationError, match=r"lacks the column\(s\) \['image_path'\].*image_path="):
        read_annotations(csv)


def test_image_path_argument_refused_for_several_images(tmp_path):
    csv = write_text(tmp_path / "a.csv", HEADER + "a.png,1,2,3,4,Tree\nb.png,1,2,3,4,Tree\n")
    with pytest.raises(AnnotationError, match=r"names one image but .* 2 images"):
        read_annotations(csv, image_path="x.png")


def test_fixed_label_replaces_labels(tmp_path):
    csv = write_text(tmp_path / "a.csv", HEADER + "a.png,1,2,3,4,Oak\n")
    assert read_annotations(csv, label="Tree")["label"].tolist() == ["Tree"]


# ----------------------------------------------------------------------------
# Empty images (0,0,0,0 rows) and the writer
# ----------------------------------------------------------------------------


def test_zero_row_marks_an_empty_image(tmp_path):
    csv = write_text(
        tmp_path / "a.csv",
        HEADER + "a.png,1,2,3,4,Tree\nb.png,0,0,0,0,Tree\na.png,0,0,0,0,Tree\nc.png,0,0,0,0,\n",
    )
    table = read_annotations(csv, label_map=["Tree"])
    assert table["image_path"].tolist() == ["a.png"]  # 0,0,0,0 rows are not boxes
    assert table.attrs["empty_images"] == ["b.png", "c.png"]  # a.png has a box: not empty
    assert empty_images(table) == ["b.png", "c.png"]
    assert image_paths(table) == ["a.png", "b.png", "c.png"]


def test_empty_image_helpers():
    table = empty_boxes(scores=False)
    table = pd.concat([table, pd.DataFrame([{"image_path": "a.png", "xmin": 0.0, "ymin": 0.0,
                                             "xmax": 1.0, "ymax": 1.0, "label": "Tree"}])])
    marked = with_empty_images(table, ["b.png", "a.png", "b.png"])
    assert empty_images(marked) == ["b.png"]
    assert image_paths(marked) == ["a.png", "b.png"]
    assert empty_images(table) == []  # the input is not modified
    with pytest.raises(ValueError, match="list of image paths"):
        with_empty_images(table, "b.png")


def test_writer_round_trip(tmp_path):
    table = read_annotations(
        write_text(tmp_path / "in.csv",
                   HEADER.strip() + ",score\na.png,1.1,2.25,10.125,12,Tree,0.5\n"
                   "a.png,0.1,0.2,0.30000000000000004,7,Bird,0.25\nb.png,0,0,0,0,Tree,\n")
    )
    table = with_empty_images(table, ["c.png"])
    out = tmp_path / "out.csv"
    assert write_annotations(table, out) == str(out)
    back = read_annotations(out)
    pd.testing.assert_frame_equal(back, table)  # exact floats, extra column, order
    assert back.attrs["empty_images"] == ["b.png", "c.png"]
    lines = out.read_text().splitlines()
    assert lines[0] == "image_path,xmin,ymin,xmax,ymax,label,score"
    assert lines[1] == "a.png,1.1,2.25,10.125,12,Tree,0.5"
    assert lines[3:] == ["b.png,0,0,0,0,Tree,", "c.png,0,0,0,0,Tree,"]
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "out.csv"]  # no temp file left


def test_writer_empty_images_argument_and_label(tmp_path):
    out = tmp_path / "out.csv"
    write_annotations(empty_boxes(scores=False), out, empty_images=["x.png"], empty_label="Bird")
    assert out.read_text().splitlines() == [HEADER.strip(), "x.png,0,0,0,0,Bird"]
    back = read_annotations(out)
    assert len(back) == 0 and empty_images(back) == ["x.png"]


def _one_box(image: str, label: str = "Tree") -> pd.DataFrame:
    return pd.DataFrame([[image, 1.0, 2.0, 3.0, 4.0, label]], columns=ANNOTATION_COLUMNS)


def test_annotation_set_orders_images_and_refuses_bad_input():
    boxes = pd.concat([_one_box("b.png"), _one_box("a.png"), _one_box("b.png")], ignore_index=True)
    found = AnnotationSet(boxes, ("c.png", "a.png", "c.png"))
    assert found.images == ("b.png", "a.png", "c.png")  # images with boxes in row order, then the empty ones
    assert found.empty_images == ("c.png",) and found.boxes is boxes
    assert found.with_images(["d.png", "b.png"]).empty_images == ("c.png", "d.png")
    assert found.empty_images == ("c.png",)  # frozen: with_images made a new set
    assert repr(found) == "AnnotationSet(3 boxes, 3 images, 1 without boxes)"
    with pytest.raises(dfl.InvalidInputError, match="list of image paths"):
        AnnotationSet(boxes, "c.png")  # type: ignore[arg-type]
    with pytest.raises(dfl.InvalidInputError, match="list of image paths"):
        found.with_images("d.png")
    with pytest.raises(dfl.InvalidInputError, match=r"lacks the column\(s\) \['label'\]"):
        AnnotationSet(boxes.drop(columns=["label"]))


def test_concat_keeps_every_sets_empty_images():
    # (pd.concat of tables with different attrs drops their attrs, and with them the empty images)
    first = AnnotationSet(_one_box("a.png"), ("empty1.png",))
    second = AnnotationSet(_one_box("b.png", "Bird"), ("empty2.png", "a.png"))
    both = AnnotationSet.concat([first, second])
    assert both.images == ("a.png", "b.png", "empty1.png", "empty2.png")
    assert both.empty_images == ("empty1.png", "empty2.png")
    assert both.boxes["image_path"].tolist() == ["a.png", "b.png"] and list(both.boxes.index) == [0, 1]
    assert both.boxes["label"].tolist() == ["Tree", "Bird"]
    # an image empty in one set and with boxes in another has boxes; tables count with their attrs
    later = AnnotationSet.concat([AnnotationSet(empty_boxes(scores=False), ("b.png",)), with_empty_images(_one_box("b.png"), ["c.png"])])
    assert later.images == ("b.png", "c.png") and later.empty_images == ("c.png",)
    nothing = AnnotationSet.concat([])
    assert len(nothing.boxes) == 0 and nothing.images == () and list(nothing.boxes.columns) == ANNOTATION_COLUMNS
    only_empty = AnnotationSet.concat([AnnotationSet(empty_boxes(scores=False), ("x.png",))] * 2)
    assert len(only_empty.boxes) == 0 and only_empty.empty_images == ("x.png",)


def test_annotation_set_round_trips_through_the_csv(tmp_path):
    csv = write_text(tmp_path / "in.csv", HEADER + "a.png,1,2,3,4,Tree\nb.png,0,0,0,0,Tree\n")
    found = read_annotation_set(csv, label_map=["Tree"])
    assert isinstance(found, AnnotationSet)
    assert found.images == ("a.png", "b.png") and found.empty_images == ("b.png",)
    assert "empty_images" not in found.boxes.attrs  # the set holds them, not the table
    pd.testing.assert_frame_equal(found.boxes, read_annotations(csv))
    assert read_annotations(csv).attrs["empty_images"] == ["b.png"]  # the DataFrame view users rely on

    more = AnnotationSet.concat([found, AnnotationSet(_one_box("c.png"), ("d.png",))])
    out = tmp_path / "out.csv"
    write_annotations(more, out, empty_images=["e.png"])
    assert out.read_text().splitlines()[-3:] == ["b.png,0,0,0,0,Tree", "d.png,0,0,0,0,Tree", "e.png,0,0,0,0,Tree"]
    back = read_annotation_set(out)
    assert back.images == ("a.png", "c.png", "b.png", "d.png", "e.png")
    assert back.empty_images == ("b.png", "d.png", "e.png")
    pd.testing.assert_frame_equal(back.boxes, more.boxes)


def test_tables_and_sets_read_with_their_empty_images():
    table = with_empty_images(_one_box("a.png"), ["b.png"])
    from_table = read_annotation_set(table)
    assert from_table.empty_images == ("b.png",)
    from_set = read_annotation_set(AnnotationSet(_one_box("a.png"), ("c.png",)), label_map=["Tree"])
    assert from_set.empty_images == ("c.png",)
    as_frame = read_annotations(AnnotationSet(_one_box("a.png"), ("c.png",)))
    assert isinstance(as_frame, pd.DataFrame) and empty_images(as_frame) == ["c.png"]
    assert AnnotationSet.from_table(table, ["x.png"]).images == ("a.png", "b.png", "x.png")
    assert empty_images(from_set) == ["c.png"] and image_paths(from_set) == ["a.png", "c.png"]
    with pytest.raises(LabelError, match="Tree"):
        read_annotation_set(AnnotationSet(_one_box("a.png")), label_map=["Bird"])


def test_training_dataset_from_an_annotation_set_has_its_empty_images(tmp_path):
    from deepforest_lite.dataset import TrainingDataset

    for name in ("a.png", "b.png", "c.png"):
        make_image(tmp_path / name, 20, 20)
    labels = LabelMap(["Tree"])
    found = AnnotationSet.concat([AnnotationSet(_one_box("a.png"), ("b.png",)), AnnotationSet(empty_boxes(scores=False), ("c.png",))])
    data = TrainingDataset(found, tmp_path, labels)
    assert data.images == ["a.png", "b.png", "c.png"] and data.num_boxes == 1
    image, target, path = data[2]
    assert path == "c.png" and tuple(image.shape) == (3, 20, 20) and target["boxes"].shape == (0, 4)
    # a DataFrame that lists them in attrs (read_annotations' view) keeps them too
    assert TrainingDataset(found.to_table(), tmp_path, labels).images == ["a.png", "b.png", "c.png"]


def test_writer_replaces_existing_file_and_refuses_bad_rows(tmp_path):
    out = write_text(tmp_path / "out.csv", "old content\n")
    table = pd.DataFrame([["a.png", 5.0, 5.0, 5.0, 9.0, "Tree"]], columns=ANNOTATION_COLUMNS)
    with pytest.raises(AnnotationError, match=r"table row 1 \(index 0\).*xmax <= xmin"):
        write_annotations(table, out)
    assert out.read_text() == "old content\n"  # untouched on failure
    table.loc[0, "xmax"] = 8.0
    write_annotations(table, out)
    assert out.read_text().splitlines()[1] == "a.png,5,5,8,9,Tree"
    with pytest.raises(ValueError, match="lacks the column"):
        write_annotations(table.drop(columns="label"), out)


# ----------------------------------------------------------------------------
# Validation of pixel formats
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ("a.png,1,2,abc,4,Tree\n", r"xmax value 'abc' in data row 1 of '.*a\.csv' is not a finite number"),
        ("a.png,1,2,3,4,Tree\na.png,1,,3,4,Tree\n", r"ymin is missing in data row 2 of"),
        ("a.png,1,2,3,4,Tree\na.png,1,2,inf,4,Tree\n", r"xmax value 'inf' in data row 2"),
        ("a.png,1,2,3,4,Tree\na.png,1,2,3,4,Tree\na.png,5,2,5,4,Tree\n",
         r"Box \(5, 2, 5, 4\) in data row 3 of .* has xmax 5 <= xmin 5"),
        ("a.png,1,9,3,4,Tree\na.png,1,9,3,4,Tree\n", r"data row 1 of .* \(and 1 more\) has ymax 4 <= ymin 9"),
        ("a.png,1,2,3,4,\n", r"label is empty in data row 1"),
        (",1,2,3,4,Tree\n", r"image_path is empty in data row 1"),
        ("a.png,-9,2,-1,4,Tree\n", r"Box \(-9, 2, -1, 4\) in data row 1 .* lies wholly outside"),
    ],
)
def test_csv_validation_errors(tmp_path, rows, match):
    csv = write_text(tmp_path / "a.csv", HEADER + rows)
    with pytest.raises(AnnotationError, match=match):
        read_annotations(csv)


def test_missing_columns_are_named(tmp_path):
    csv = write_text(tmp_path / "a.csv", "image_path,xmin,ymin,xmax,label\na.png,1,2,3,Tree\n")
    with pytest.raises(AnnotationError, match=r"lacks the column\(s\) \['ymax'\]"):
        read_annotations(csv)


def test_unknown_labels_list_the_known_ones(tmp_path):
    csv = write_text(tmp_path / "a.csv", HEADER + "a.png,1,2,3,4,Tree\na.png,1,2,3,4,Bird\n")
    with pytest.raises(LabelError, match=r"Label 'Bird' is not in the label map \(1 box\(es\), the first in data row 2 .*the known labels are \['Tree'\]"):
        read_annotations(csv, label_map=["Tree"])
    with pytest.raises(KeyError):  # LabelError is also a KeyError
        read_annotations(csv, label_map=["Tree"])
    assert len(read_annotations(csv, label_map=["Tree", "Bird"])) == 2
    with pytest.raises(LabelError, match=r"Labels \['Tree', 'Bird'\] are not in the label map \(2 box\(es\), the first in data row 1 "):
        read_annotations(csv, label_map=["Oak"])


def test_image_size_from_header_clips_and_refuses(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    make_image(images / "a.png", width=50, height=40)
    csv = write_text(tmp_path / "a.csv", HEADER + "a.png,45,-5,60,30,Tree\nb.png,45,10,60,30,Tree\n")
    with pytest.warns(UserWarning, match=r"Clipped 1 box\(es\).*data row 1 .*\(45, -5, 60, 30\) -> \(45, 0, 50, 30\)"):
        table = read_annotations(csv, root_dir=images)
    # a.png is 50 x 40 (clipped); b.png is not found, so only the 0 side is checked
    assert coords_of(table) == [[45.0, 0.0, 50.0, 30.0], [45.0, 10.0, 60.0, 30.0]]

    outside = write_text(tmp_path / "b.csv", HEADER + "a.png,1,2,3,4,Tree\na.png,50,2,60,4,Tree\n")
    with pytest.raises(AnnotationError, match=r"data row 2 .* wholly outside its image 'a.png' of 50 x 40 px"):
        read_annotations(outside, root_dir=images)
    # without root_dir the image is looked for beside the CSV: not there, so no bound check
    assert len(read_annotations(outside)) == 2


def test_image_size_from_raster_argument(tmp_path):
    raster = make_image(tmp_path / "r.png", width=30, height=30)
    csv = write_text(tmp_path / "sub.csv", HEADER + "other/r.png,1,2,40,4,Tree\n")
    with pytest.warns(UserWarning, match="Clipped"):
        table = read_annotations(csv, raster=raster, root_dir=tmp_path / "nowhere")
    assert table["xmax"].tolist() == [30.0]


def test_dataframe_input_is_checked(tmp_path):
    table = pd.DataFrame(
        {"image_path": ["a.png", "b.png"], "xmin": [1.0, 0.0], "ymin": [2.0, 0.0], "xmax": [3.0, 0.0],
         "ymax": [4.0, 0.0], "label": ["Tree", "Tree"]},
        index=[10, 11],
    )
    out = read_annotations(table)
    assert coords_of(out) == [[1.0, 2.0, 3.0, 4.0]] and empty_images(out) == ["b.png"]
    table.loc[10, "xmax"] = 0.5
    with pytest.raises(AnnotationError, match=r"table row 1 \(index 10\) has xmax 0.5 <= xmin 1"):
        read_annotations(table)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match="does not exist"):
        read_annotations(tmp_path / "nope.csv")
    txt = write_text(tmp_path / "a.txt", HEADER + "a.png,1,2,3,4,Tree\n")
    with pytest.raises(AnnotationError, match=r"Cannot tell the annotation format .*'\.txt'"):
        read_annotations(txt)
    assert len(read_annotations(txt, file_format="csv")) == 1
    with pytest.raises(ValueError, match="Unknown annotation file_format 'yolo'"):
        read_annotations(txt, file_format="yolo")


# ----------------------------------------------------------------------------
# Pascal VOC
# ----------------------------------------------------------------------------


def test_voc_file_and_folder(tmp_path):
    folder = tmp_path / "xml"
    folder.mkdir()
    write_text(folder / "b.xml", voc_xml("b.png", [("Dead", 1, 2, 30.5, 40), ("Alive", 5, 6, 7, 8)]))
    write_text(folder / "a.xml", voc_xml("a.png", [], size=(100, 100)))
    one = read_annotations(folder / "b.xml")
    assert coords_of(one) == [[1.0, 2.0, 30.5, 40.0], [5.0, 6.0, 7.0, 8.0]]
    assert one["label"].tolist() == ["Dead", "Alive"]
    both = read_annotations(folder)
    pd.testing.assert_frame_equal(both, one)
    assert empty_images(both) == ["a.png"]  # no <object>: an empty image
    assert read_annotations(folder / "b.xml", image_path="x.png")["image_path"].tolist() == ["x.png"] * 2


def test_voc_declared_size_bounds_boxes(tmp_path):
    xml = write_text(tmp_path / "a.xml", voc_xml("a.png", [("Tree", 1, 2, 3, 4), ("Tree", 90, 5, 120, 9)],
                                                   size=(100, 50)))
    with pytest.warns(UserWarning, match=r"object 2 in .*\(90, 5, 120, 9\) -> \(90, 5, 100, 9\)"):
        table = read_annotations(xml)
    assert table["xmax"].tolist() == [3.0, 100.0]


@pytest.mark.parametrize(
    ("objects", "match"),
    [
        ([("Tree", 1, 2, 3, 4), ("Tree", 1, 2, "x", 4)], r"xmax value 'x' in object 2 in '.*a\.xml'"),
        ([("Tree", 1, 2, 3, 4), ("Tree", 1, 2, 3, 4), ("Tree", 3, 2, 1, 4)], r"object 3 in .* xmax 1 <= xmin 3"),
        ([("", 1, 2, 3, 4)], r"label is empty in object 1"),
    ],
)
def test_voc_validation_errors(tmp_path, objects, match):
    xml = write_text(tmp_path / "a.xml", voc_xml("a.png", objects))
    with pytest.raises(AnnotationError, match=match):
        read_annotations(xml)


def test_voc_structure_errors(tmp_path):
    bad = write_text(tmp_path / "a.xml", "<annotation><filename>a.png</filename><object><name>T</name>"
                                         "</object></annotation>")
    with pytest.raises(AnnotationError, match=r"object 1 in .* has no <bndbox>"):
        read_annotations(bad)
    with pytest.raises(AnnotationError, match="Cannot parse"):
        read_annotations(write_text(tmp_path / "b.xml", "<annotation>"))
    no_name = write_text(tmp_path / "c.xml", "<annotation></annotation>")
    with pytest.raises(AnnotationError, match=r"has no <filename>; add it or pass image_path="):
        read_annotations(no_name)
    named = read_annotations(no_name, image_path="c.png")
    assert len(named) == 0 and empty_images(named) == ["c.png"]
    with pytest.raises(LabelError, match=r"Label 'T' is not .*object 1 .*\['Tree'\]"):
        read_annotations(write_text(tmp_path / "d.xml", voc_xml("a.png", [("T", 1, 2, 3, 4)])),
                         label_map=["Tree"])


# ----------------------------------------------------------------------------
# COCO
# ----------------------------------------------------------------------------


def coco(annotations: list[dict], images=None) -> str:
    images = images or [
        {"id": 1, "file_name": "a.png", "width": 100, "height": 80},
        {"id": 2, "file_name": "b.png", "width": 100, "height": 80},
    ]
    return json.dumps({"images": images, "annotations": annotations,
                       "categories": [{"id": 7, "name": "Tree"}, {"id": 9, "name": "Bird"}]})


def test_coco_bbox_to_corners_and_empty_images(tmp_path):
    path = write_text(tmp_path / "c.json", coco([
        {"id": 1, "image_id": 1, "category_id": 9, "bbox": [10, 20, 5.5, 6]},
        {"id": 2, "image_id": 1, "category_id": 7, "segmentation": [[1, 2, 9, 3, 4, 8]]},
    ]))
    table = read_annotations(path)
    assert coords_of(table) == [[10.0, 20.0, 15.5, 26.0], [1.0, 2.0, 9.0, 8.0]]
    assert table["label"].tolist() == ["Bird", "Tree"]
    assert table["image_path"].tolist() == ["a.png", "a.png"]
    assert empty_images(table) == ["b.png"]


def test_real_coco_sample():
    table = read_annotations(get_data("coco_sample_file.json"))
    assert len(table) == 6 and set(table["label"]) == {"tree"}
    first = table.iloc[0]
    assert first["image_path"] == "5dded5bc0140b80006d2e565_23.tif"
    assert first[BOX_COLUMNS].tolist() == pytest.approx([1569.34, 220.73, 1569.34 + 221.62, 220.73 + 219.5])
    assert (table["image_path"] == "5b90f92da0d7280005fab355_4310.tif").sum() == 5


@pytest.mark.parametrize(
    ("annotation", "match"),
    [
        ({"image_id": 5, "category_id": 7, "bbox": [1, 2, 3, 4]}, r"annotation 2 \(id 8\) .* image_id 5"),
        ({"image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]}, r"annotation 2 \(id 8\) .* category_id 3, .*known ids \[7, 9\]"),
        ({"image_id": 1, "category_id": 7, "bbox": [1, 2, 0, 4]}, r"annotation 2 \(id 8\) .* xmax 1 <= xmin 1"),
        ({"image_id": 1, "category_id": 7, "bbox": [1, 2, "w", 4]}, r"annotation 2 \(id 8\) .* non-numeric bbox"),
        ({"image_id": 1, "category_id": 7}, r"annotation 2 \(id 8\) .* has no 'bbox'"),
        ({"image_id": 1, "category_id": 7, "bbox": [100, 2, 5, 4]}, r"annotation 2 \(id 8\) .* wholly outside .* 100 x 80 px"),
    ],
)
def test_coco_validation_errors(tmp_path, annotation, match):
    good = {"id": 3, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4]}
    path = write_text(tmp_path / "c.json", coco([good, {"id": 8, **annotation}]))
    with pytest.raises(AnnotationError, match=match):
        read_annotations(path)


def test_coco_unknown_label(tmp_path):
    path = write_text(tmp_path / "c.json", coco([{"id": 4, "image_id": 2, "category_id": 9, "bbox": [1, 2, 3, 4]}]))
    with pytest.raises(LabelError, match=r"Label 'Bird' is not .*annotation 1 \(id 4\).*\['Tree'\]"):
        read_annotations(path, label_map=["Tree"])


# ----------------------------------------------------------------------------
# Vector files in map coordinates
# ----------------------------------------------------------------------------

UTM = CRS.from_epsg(32617)
ORIGIN = Affine(0.5, 0, 700_000.0, 0, -0.5, 3_300_000.0)  # 0.5 m pixels, far from the central meridian
PLANTED = np.array([[10.0, 20.0, 30.0, 45.0], [150.5, 100.0, 190.0, 130.25], [0.0, 0.0, 12.0, 8.0]])


@pytest.fixture
def utm_raster(tmp_path) -> Path:
    return make_image(tmp_path / "ortho.tif", width=200, height=150, crs=UTM, transform=ORIGIN)


def planted_frame(crs) -> gpd.GeoDataFrame:
    polygons = []
    for xmin, ymin, xmax, ymax in PLANTED:
        (x1, x2), (y1, y2) = pixel_to_map(ORIGIN, np.array([xmin, xmax]), np.array([ymin, ymax]))
        polygons.append(shapely.box(x1, y2, x2, y1))
    frame = gpd.GeoDataFrame({"species": ["Oak", "Pine", "Oak"]}, geometry=polygons, crs=UTM)
    return frame.to_crs(crs)


def test_vector_same_crs_exact(tmp_path, utm_raster):
    path = tmp_path / "boxes.gpkg"
    planted_frame(UTM).to_file(path)
    table = read_annotations(path, raster=utm_raster, label_column="species")
    np.testing.assert_allclose(coords_of(table), PLANTED, atol=1e-6)
    assert table["label"].tolist() == ["Oak", "Pine", "Oak"]
    assert table["image_path"].tolist() == ["ortho.tif"] * 3


def test_vector_lonlat_reprojected_to_utm_raster(tmp_path, utm_raster):
    lonlat = planted_frame("EPSG:4326")
    # the boxes really are in degrees (and rotated with respect to the UTM grid)
    assert -80 < lonlat.total_bounds[0] < -78 and 29 < lonlat.total_bounds[1] < 30
    path = tmp_path / "boxes.gpkg"
    lonlat.to_file(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float noise at the image's corner is no clipping warning
        table = read_annotations(path, raster=utm_raster, label_column="species", label_map=["Oak", "Pine"])
    np.testing.assert_allclose(coords_of(table), PLANTED, atol=1e-4)
    assert table.loc[2, "xmin"] >= 0.0 and table.loc[2, "ymin"] >= 0.0
    # GeoJSON is always longitude/latitude
    geojson = tmp_path / "boxes.json"  # told from COCO by its content
    lonlat.to_file(geojson, driver="GeoJSON")
    table = read_annotations(geojson, raster=utm_raster, label="Tree", image_path="x.tif")
    np.testing.assert_allclose(coords_of(table), PLANTED, atol=1e-4)
    assert set(table["label"]) == {"Tree"} and set(table["image_path"]) == {"x.tif"}


def test_vector_outside_raster(tmp_path, utm_raster):
    path = tmp_path / "b.gpkg"
    frame = planted_frame(UTM)
    frame.loc[1, "geometry"] = shapely.affinity.translate(frame.geometry[1], xoff=50.0)  # 100 px right
    frame.to_file(path)
    with pytest.raises(AnnotationError, match=r"feature 2 of .* wholly outside its image 'ortho.tif' of 200 x 150 px"):
        read_annotations(path, raster=utm_raster, label_column="species")
    frame = planted_frame(UTM)
    frame.loc[1, "geometry"] = shapely.affinity.translate(frame.geometry[1], xoff=10.0)  # 20 px right
    frame.to_file(path)
    with pytest.warns(UserWarning, match=r"Clipped 1 box\(es\) .* feature 2 of"):
        table = read_annotations(path, raster=utm_raster, label_column="species")
    np.testing.assert_allclose(coords_of(table)[1], [170.5, 100.0, 200.0, 130.25], atol=1e-6)


def test_vector_crs_and_label_errors(tmp_path, utm_raster):
    no_crs = planted_frame(UTM).set_crs(None, allow_override=True)
    shp = tmp_path / "nocrs.shp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        no_crs.to_file(shp)
    with pytest.raises(AnnotationError, match=r"has no CRS but the raster .* is in 'WGS 84 / UTM zone 17N'"):
        read_annotations(shp, raster=utm_raster, label_column="species")
    gpkg = tmp_path / "b.gpkg"
    planted_frame(UTM).to_file(gpkg)
    with pytest.raises(AnnotationError, match=r"pass raster="):
        read_annotations(gpkg)
    with pytest.raises(AnnotationError, match=r"no column 'label' .*\['species'\]"):
        read_annotations(gpkg, raster=utm_raster)
    plain = make_image(tmp_path / "plain.png", width=200, height=150)
    with pytest.raises(AnnotationError, match=r"raster .*plain.png' has no CRS"):
        read_annotations(gpkg, raster=plain, label_column="species")
    with pytest.raises(ImageReadError, match="does not exist"):
        read_annotations(gpkg, raster=tmp_path / "missing.tif", label_column="species")


def test_vector_without_crs_on_plain_image_is_pixels(tmp_path):
    plain = make_image(tmp_path / "plain.png", width=40, height=40)
    frame = gpd.GeoDataFrame({"label": ["Bird"]}, geometry=[shapely.box(5, 6, 15, 20)])
    shp = tmp_path / "px.shp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame.to_file(shp)
    table = read_annotations(shp, raster=plain)
    assert coords_of(table) == [[5.0, 6.0, 15.0, 20.0]]


def test_real_australia_shapefile():
    shp, tif = get_data("australia.shp"), get_data("australia.tif")
    table = read_annotations(shp, raster=tif, label="Tree")
    minx, miny, maxx, maxy = gpd.read_file(shp).total_bounds
    with rasterio.open(tif) as src:
        t = src.transform
    expected = [(minx - t.c) / t.a, (maxy - t.f) / t.e, (maxx - t.c) / t.a, (miny - t.f) / t.e]
    np.testing.assert_allclose(coords_of(table), [expected], atol=1e-9)
    assert table["image_path"].tolist() == ["australia.tif"]


# ----------------------------------------------------------------------------
# Packaging
# ----------------------------------------------------------------------------


def test_public_names_are_exported():
    assert dfl.read_annotations is read_annotations
    assert dfl.write_annotations is write_annotations
    assert dfl.empty_images is empty_images
    assert dfl.AnnotationSet is AnnotationSet and dfl.read_annotation_set is read_annotation_set


def test_annotations_import_is_torch_free():
    code = "import deepforest_lite.annotations, sys; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
