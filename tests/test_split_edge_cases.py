"""``split`` / ``split_raster`` at the edges: nothing written (said in the command's terms), a raster
smaller than the patch, DeepForest's argument names and order."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

import deepforest_lite as dfl
from deepforest_lite.cli import main


@pytest.fixture
def one_big_box(make_raster, tmp_path):
    """A 300 x 200 px raster whose only box (250 x 190 px) fits in no 100 px tile."""
    src = make_raster("ortho.tif", width=300, height=200, boxes=[(10, 5, 260, 195)])
    csv = tmp_path / "boxes.csv"
    dfl.write_annotations(src.boxes.assign(image_path="ortho.tif"), csv)
    return src, csv


def test_split_that_writes_no_tile_says_so_with_the_option_to_use(one_big_box, tmp_path, capsys):
    src, csv = one_big_box
    assert main(["split", str(src.path), str(csv), "--out-dir", str(tmp_path / "t"), "--patch-size", "100"]) == 0
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert any(line.startswith("warning: split wrote no tile for") and "add --allow-empty" in line for line in lines)
    assert any("a larger --patch-size or --patch-overlap, or a smaller --min-visible" in line for line in lines)
    assert not any("allow_empty=True" in line or "min_visible=" in line for line in lines)  # no Python spellings
    assert "wrote 0 tile(s)" in captured.out and "which --allow-empty keeps" in captured.out
    # the option it names does write the tiles
    assert main(["split", str(src.path), str(csv), "--out-dir", str(tmp_path / "t2"), "--patch-size", "100",
                 "--allow-empty", "--quiet"]) == 0
    assert len(list((tmp_path / "t2").glob("*.tif"))) == 12


def test_raster_smaller_than_the_patch_is_one_tile(make_raster, tmp_path):
    src = make_raster("small.tif", width=150, height=120, boxes=[(10, 10, 40, 50), (100, 60, 140, 110)])
    result = dfl.split_raster(src.path, src.boxes.assign(image_path="small.tif"), patch_size=400,
                              out_dir=tmp_path / "t", progress=False)
    assert [p.name for p in result.tiles] == ["small_0_0.tif"]
    with rasterio.open(result.tiles[0]) as tile:
        assert (tile.width, tile.height) == (150, 120)
        assert tile.transform == src.transform  # the whole raster, same georeferencing
        np.testing.assert_array_equal(tile.read(), src.data)
    np.testing.assert_array_equal(result.annotations[["xmin", "ymin", "xmax", "ymax"]].to_numpy(),
                                  [(10, 10, 40, 50), (100, 60, 140, 110)])


def test_deepforest_keywords_and_order(make_raster, tmp_path, capsys):
    src = make_raster("plot.tif", width=300, height=200, boxes=[(20, 20, 60, 60)])
    csv = tmp_path / "plot.csv"
    dfl.write_annotations(src.boxes.assign(image_path="plot.tif"), csv)
    ours = dfl.split_raster(src.path, csv, patch_size=100, out_dir=tmp_path / "a", progress=False)
    theirs = dfl.split_raster(annotations_file=csv, path_to_raster=src.path, patch_size=100,
                              save_dir=tmp_path / "b", progress=False)
    assert [p.name for p in theirs.tiles] == [p.name for p in ours.tiles]
    assert theirs.annotations.equals(ours.annotations)
    with pytest.raises(dfl.InvalidInputError, match=r"annotation file where the raster belongs.*DeepForest's order"):
        dfl.split_raster(str(csv), str(src.path), out_dir=tmp_path / "c")
    with pytest.raises(dfl.UnknownNameError, match=r"'base_dir'.*out_dir"):
        dfl.split_raster(src.path, csv, base_dir=tmp_path / "d")
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
    # the command line says the same in one line
    with pytest.raises(SystemExit) as exc:
        main(["split", str(csv), str(src.path), "--out-dir", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "give the raster first" in err
