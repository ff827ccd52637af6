"""``deepforest-lite split``: tiles and CSV written, options, config file, one-line errors with exit 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import rasterio

import deepforest_lite as dfl
from deepforest_lite.cli import main
from deepforest_lite.geo import boxes_to_map, write_boxes


def _fails(argv, capsys) -> str:
    """Run the CLI expecting a user error; returns the single stderr line."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture
def labelled(make_raster, tmp_path):
    src = make_raster("ortho.tif", width=300, height=200, boxes=[(20, 20, 60, 60), (220, 120, 260, 160)])
    csv = tmp_path / "boxes.csv"
    table = src.boxes.copy()
    table["image_path"] = "ortho.tif"
    dfl.write_annotations(table, csv)
    return src, csv


def test_split_with_csv(labelled, tmp_path, capsys):
    src, csv = labelled
    out = tmp_path / "tiles"
    code = main(["split", str(src.path), str(csv), "--out-dir", str(out), "--patch-size", "100",
                 "--patch-overlap", "0", "--quiet"])
    assert code == 0
    assert capsys.readouterr().out == ""  # --quiet
    assert sorted(p.name for p in out.iterdir()) == ["ortho.csv", "ortho_0_0.tif", "ortho_200_100.tif"]
    table = dfl.read_annotations(out / "ortho.csv")
    np.testing.assert_array_equal(
        table[["xmin", "ymin", "xmax", "ymax"]].to_numpy(), [(20, 20, 60, 60), (20, 20, 60, 60)]
    )
    with rasterio.open(out / "ortho_200_100.tif") as tile:
        assert tile.transform.c == pytest.approx(src.transform.c + 200 * src.transform.a)
        assert tile.crs is not None


def test_summary_allow_empty_png(labelled, tmp_path, capsys):
    src, csv = labelled
    out = tmp_path / "tiles"
    code = main(["split", str(src.path), str(csv), "--out-dir", str(out), "--patch-size", "100",
                 "--patch-overlap", "0", "--allow-empty", "--format", "png"])
    assert code == 0
    text = capsys.readouterr().out
    assert f"wrote 6 tile(s) to {out}" in text
    assert "2 box(es), 4 tile(s) without boxes" in text
    assert len(list(out.glob("*.png"))) == 6
    assert len(dfl.empty_images(dfl.read_annotations(out / "ortho.csv"))) == 4


def test_summary_counts_skipped_windows(labelled, tmp_path, capsys):
    src, csv = labelled
    assert main(["split", str(src.path), str(csv), "--out-dir", str(tmp_path / "t"),
                 "--patch-size", "100", "--patch-overlap", "0"]) == 0
    text = capsys.readouterr().out
    assert "wrote 2 tile(s)" in text and "(skipped 4 without boxes, which --allow-empty keeps)" in text


def test_without_annotations(make_raster, tmp_path, capsys):
    src = make_raster("scene.tif", width=300, height=200)
    out = tmp_path / "t"
    assert main(["split", str(src.path), "--out-dir", str(out), "--patch-size", "100",
                 "--patch-overlap", "0"]) == 0
    assert sorted(p.suffix for p in out.iterdir()) == [".tif"] * 6  # no CSV
    assert "wrote 6 tile(s)" in capsys.readouterr().out


def test_vector_with_label_column_and_min_visible(make_raster, tmp_path, capsys):
    src = make_raster("ortho.tif", width=200, height=100, boxes=[(10, 10, 30, 30), (90, 40, 110, 60)])
    gdf = boxes_to_map(src.boxes, src.transform, src.crs)
    gdf["species"] = ["Pine", "Oak"]
    write_boxes(gdf, tmp_path / "crowns.gpkg")
    argv = ["split", str(src.path), str(tmp_path / "crowns.gpkg"), "--patch-size", "100",
            "--patch-overlap", "0", "--label-column", "species"]
    assert main([*argv, "--out-dir", str(tmp_path / "a")]) == 0
    half = dfl.read_annotations(tmp_path / "a" / "ortho.csv")
    assert sorted(half["label"]) == ["Oak", "Oak", "Pine"]  # the cut box is half in each tile
    assert main([*argv, "--out-dir", str(tmp_path / "b"), "--min-visible", "0.6"]) == 0
    strict = dfl.read_annotations(tmp_path / "b" / "ortho.csv")
    assert list(strict["label"]) == ["Pine"]
    assert "warning: 1 of 2 box(es) are in no tile" in capsys.readouterr().err


def test_config_file(labelled, tmp_path, capsys):
    src, csv = labelled
    config = tmp_path / "split.yaml"
    config.write_text(f"out_dir: {tmp_path / 'cfg'}\npatch_size: 100\npatch_overlap: 0.0\nformat: png\n")
    assert main(["split", str(src.path), str(csv), "--config", str(config), "--quiet"]) == 0
    assert len(list((tmp_path / "cfg").glob("*.png"))) == 2
    # the command line wins over the file
    assert main(["split", str(src.path), str(csv), "--config", str(config), "--format", "tif",
                 "--out-dir", str(tmp_path / "cli"), "--quiet"]) == 0
    assert len(list((tmp_path / "cli").glob("*.tif"))) == 2

    config.write_text("patch_size: 100\npatchsize: 3\n")
    err = _fails(["split", str(src.path), str(csv), "--config", str(config), "--out-dir", str(tmp_path)], capsys)
    assert "Unknown key(s) ['patchsize']" in err and "'patch_overlap'" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--patch-size", "0"], "--patch-size"),
        (["--patch-size", "ten"], "--patch-size"),
        (["--patch-overlap", "1"], "patch_overlap"),
        (["--format", "jpg"], "--format"),
        (["--min-visible", "2"], "--min-visible"),
        (["--bands", "1,2"], "--bands"),
        (["--value-range", "5,1"], "--value-range"),
    ],
)
def test_bad_options_exit_2(labelled, tmp_path, capsys, extra, message):
    src, csv = labelled
    err = _fails(["split", str(src.path), str(csv), "--out-dir", str(tmp_path / "t"), *extra], capsys)
    assert err.startswith("deepforest-lite split: error:") and message in err
    assert not (tmp_path / "t").exists()


def test_user_mistakes_exit_2(labelled, make_raster, tmp_path, capsys):
    src, csv = labelled
    err = _fails(["split", str(tmp_path / "missing.tif"), str(csv), "--out-dir", str(tmp_path / "t")], capsys)
    assert "missing.tif" in err and "does not exist" in err
    err = _fails(["split", str(src.path), str(csv)], capsys)
    assert "--out-dir is missing" in err
    err = _fails(["split", str(src.path), str(tmp_path / "nope.csv"), "--out-dir", str(tmp_path / "t")], capsys)
    assert "nope.csv" in err
    other = make_raster("other.tif", width=120, height=100, boxes=[(10, 10, 40, 40)])
    err = _fails(["split", str(other.path), str(csv), "--out-dir", str(tmp_path / "t")], capsys)
    assert "'other.tif'" in err and "['ortho.tif']" in err and "--image-name" in err
    assert main(["split", str(other.path), str(csv), "--out-dir", str(tmp_path / "t"),
                 "--image-name", "ortho.tif", "--quiet"]) == 0
    assert "warning: 1 of 2 box(es) are in no tile" in capsys.readouterr().err  # (220, 120) is outside
    (tmp_path / "afile").write_text("x")
    err = _fails(["split", str(src.path), str(csv), "--out-dir", str(tmp_path / "afile")], capsys)
    assert "is a file" in err


def test_console_script_help_and_error(labelled, tmp_path):
    src, _ = labelled
    run = [sys.executable, "-c", "import sys; from deepforest_lite.cli import main; sys.exit(main())"]
    shown = subprocess.run([*run, "split", "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "--allow-empty" in shown.stdout and "--min-visible" in shown.stdout
    failed = subprocess.run([*run, "split", str(src.path), "--out-dir", str(tmp_path / "t"),
                             "--patch-size", "-3"], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1
