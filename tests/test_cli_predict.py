"""``deepforest-lite predict``: outputs, resume, progress, pictures, and one-line errors for user mistakes."""

from __future__ import annotations

import os
import subprocess
import sys

import geopandas as gpd
import pandas as pd
import pytest
from PIL import Image

import deepforest_lite.predict as predict_module
from deepforest_lite.cli import main

PATCH = ["--patch-size", "200"]  # 300 x 200 px rasters: 2 windows


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models run fastest on one thread


@pytest.fixture
def calls(monkeypatch):
    """Counts predict_tile calls made by the CLI (the model runs only through it)."""
    made: list[str] = []
    original = predict_module.predict_tile

    def counting(model, label_map, raster, *args, **kwargs):
        made.append(os.path.basename(raster.path))
        return original(model, label_map, raster, *args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_tile", counting)
    return made


def cli(*argv: str) -> int:
    return main([str(a) for a in argv])


def fails(capsys, *argv: str) -> str:
    """Run the CLI expecting a user mistake; returns its single stderr line."""
    with pytest.raises(SystemExit) as exc:
        cli(*argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and err.startswith("deepforest-lite")
    return err


# --------------------------------------------------------------------------- outputs


def test_output_dir_one_file_per_raster_and_resume_skips_finished_ones(
    make_raster, model_file, tmp_path, calls, capsys
) -> None:
    a, b = make_raster("a.tif"), make_raster("b.png")
    out = tmp_path / "out"
    assert cli("predict", a.path, b.path, "--model", model_file, "--output-dir", out, *PATCH, "--quiet") == 0
    assert sorted(os.listdir(out)) == ["a.gpkg", "b.csv", "index.csv"]  # gpkg when georeferenced, csv otherwise
    assert calls == ["a.tif", "b.png"]
    gpkg = gpd.read_file(out / "a.gpkg")
    assert gpkg.crs.to_epsg() == 32617 and len(gpkg) > 0 and set(gpkg["image_path"]) == {"a.tif"}
    assert set(pd.read_csv(out / "b.csv")["image_path"]) == {"b.png"}
    printed = capsys.readouterr().out
    assert f"wrote {out / 'a.gpkg'} ({len(gpkg)} boxes, 2 windows, raster " in printed  # then the scale used

    mtimes = {name: os.stat(out / name).st_mtime_ns for name in ("a.gpkg", "b.csv")}
    assert cli("predict", a.path, b.path, "--model", model_file, "--output-dir", out, *PATCH) == 0
    assert calls == ["a.tif", "b.png"]  # the model was not run again
    assert {name: os.stat(out / name).st_mtime_ns for name in ("a.gpkg", "b.csv")} == mtimes
    printed = capsys.readouterr()
    assert f"skipping {a.path}: {out / 'a.gpkg'} exists" in printed.out
    assert f"skipping {b.path}: {out / 'b.csv'} exists" in printed.out
    assert "window" not in printed.err

    os.remove(out / "b.csv")  # as if the batch had been interrupted before b
    assert cli("predict", a.path, b.path, "--model", model_file, "--output-dir", out, *PATCH, "--quiet") == 0
    assert calls == ["a.tif", "b.png", "b.png"]
    assert os.stat(out / "a.gpkg").st_mtime_ns == mtimes["a.gpkg"]
    assert sorted(os.listdir(out)) == ["a.gpkg", "b.csv", "index.csv"]  # no temporary files or checkpoints left
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert index["raster"].tolist() == [str(a.path), str(b.path)]  # in the order given
    assert index["status"].tolist() == ["skipped", "done"]
    assert index["boxes"].tolist() == [len(gpkg), len(pd.read_csv(out / "b.csv"))]
    assert index["crs"].tolist() == ["EPSG:32617", ""] and index["output"].tolist() == [str(out / "a.gpkg"), str(out / "b.csv")]
    assert index["footprint"].iloc[0] == "POLYGON ((400150 3299950, 400150 3300000, 400000 3300000, 400000 3299950, 400150 3299950))"
    assert index["model"].iloc[1] == model_file and index["engine"].iloc[1] == "auto on cpu"
    assert float(index["seconds"].iloc[1]) > 0 and index["windows"].tolist() == [2, 2]


def test_several_rasters_into_one_file(make_raster, model_file, tmp_path) -> None:
    a, b = make_raster("a.tif"), make_raster("b.tif", seed=1)
    single = tmp_path / "single"
    cli("predict", a.path, b.path, "--model", model_file, "--output-dir", single, *PATCH, "--quiet")
    per_raster = {name: len(gpd.read_file(single / f"{name}.gpkg")) for name in ("a", "b")}
    for name in ("all.gpkg", "all.csv"):
        assert cli("predict", a.path, b.path, "--model", model_file, "--output", tmp_path / name, *PATCH, "--quiet") == 0
    together = gpd.read_file(tmp_path / "all.gpkg")
    assert together.crs.to_epsg() == 32617
    assert together["image_path"].value_counts().to_dict() == {"a.tif": per_raster["a"], "b.tif": per_raster["b"]}
    csv = pd.read_csv(tmp_path / "all.csv")
    assert len(csv) == len(together) and {"map_xmin", "geometry", "image_path"} <= set(csv.columns)


def test_mixed_georeferencing_goes_to_csv(make_raster, model_file, tmp_path) -> None:
    a, b = make_raster("geo.tif"), make_raster("plain.png")
    assert cli("predict", a.path, b.path, "--model", model_file, "--output", tmp_path / "x.csv", *PATCH, "--quiet") == 0
    table = pd.read_csv(tmp_path / "x.csv")
    assert set(table["image_path"]) == {"geo.tif", "plain.png"}
    assert table.loc[table["image_path"] == "plain.png", "map_xmin"].isna().all()


def test_settings_reach_the_prediction(make_raster, model_file, tmp_path) -> None:
    r = make_raster("s.tif")
    run = ["predict", r.path, "--model", model_file, *PATCH, "--quiet", "--output"]
    cli(*run, tmp_path / "default.csv")
    cli(*run, tmp_path / "loose.csv", "--iou-threshold", "0.5", "--batch-size", "2", "--workers", "1", "--device", "cpu")
    cli(*run, tmp_path / "strict.csv", "--score-threshold", "0.9", "--precision", "bf16")
    default, loose = pd.read_csv(tmp_path / "default.csv"), pd.read_csv(tmp_path / "loose.csv")
    assert len(loose) > len(default) > 0  # a higher merge IoU keeps more overlapping boxes
    assert len(pd.read_csv(tmp_path / "strict.csv")) == 0  # every score of this model is about 0.62
    assert default["score"].between(0.6, 0.65).all()


def test_progress_bar_on_stderr_and_quiet_turns_it_off(make_raster, model_file, tmp_path, capsys) -> None:
    r = make_raster("p.tif")
    cli("predict", r.path, "--model", model_file, "--output", tmp_path / "p.csv", "--patch-size", "128")
    err = capsys.readouterr().err
    assert "p.tif" in err and "6/6" in err and "window/s" in err  # 3 x 2 windows of 128 px
    cli("predict", r.path, "--model", model_file, "--output", tmp_path / "q.csv", *PATCH, "--quiet")
    assert capsys.readouterr().err == ""


def test_plot_writes_a_png_per_raster(make_raster, model_file, tmp_path, capsys) -> None:
    a, b = make_raster("a.tif"), make_raster("b.tif")
    cli("predict", a.path, "--model", model_file, "--output", tmp_path / "a.csv", *PATCH, "--quiet", "--plot", tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as picture:
        assert picture.size == (300, 200) and picture.mode == "RGB"
    cli("predict", a.path, b.path, "--model", model_file, "--output-dir", tmp_path / "o", *PATCH, "--quiet",
        "--plot", tmp_path / "pictures")
    assert sorted(os.listdir(tmp_path / "pictures")) == ["a.png", "b.png"]
    assert f"wrote {tmp_path / 'pictures' / 'b.png'}" in capsys.readouterr().out


# --------------------------------------------------------------------------- user mistakes


def test_user_mistakes_are_one_line_and_exit_2(make_raster, model_file, tmp_path, capsys) -> None:
    r = make_raster("ok.tif")
    png = make_raster("plain.png")
    gray = make_raster("gray.tif", bands=1)
    four = make_raster("four.tif", bands=4)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a raster")
    out = tmp_path / "never.csv"
    base = ["predict", r.path, "--model", model_file]
    cases = {
        "does not exist": ["predict", tmp_path / "missing.tif", "--model", model_file, "--output", out],
        "no such file or folder": ["predict", r.path, "--model", tmp_path / "nope.pt", "--output", out],
        "--patch-size": [*base, "--output", out, "--patch-size", "0"],
        "--patch-overlap": [*base, "--output", out, "--patch-overlap", "1"],
        "--iou-threshold": [*base, "--output", out, "--iou-threshold", "1.5"],
        "--batch-size": [*base, "--output", out, "--batch-size", "many"],
        "--workers": [*base, "--output", out, "--workers", "-1"],
        "--precision": [*base, "--output", out, "--precision", "fp16"],
        "--bands": [*base, "--output", out, "--bands", "1,2"],
        "--value-range": [*base, "--output", out, "--value-range", "9,1"],
        "is not a device": [*base, "--output", out, "--device", "tpu"],
        "unknown extension": [*base, "--output", tmp_path / "never.txt"],
        "one of the arguments -o/--output --output-dir is required": base,
        "not allowed with": [*base, "--output", out, "--output-dir", tmp_path],
        "Cannot read": ["predict", garbage, "--model", model_file, "--output", out],
        "colour band": ["predict", gray.path, "--model", model_file, "--output", out],
        "bands=(1, 2, 3)": ["predict", four.path, "--model", model_file, "--output", out],
        "has no CRS": ["predict", png.path, "--model", model_file, "--output", tmp_path / "never.gpkg"],
        "needs georeferenced": ["predict", png.path, "--model", model_file, "--output-dir", tmp_path / "d", "--format", "shp"],
        "one PNG file": ["predict", r.path, png.path, "--model", model_file, "--output", out, "--plot", tmp_path / "x.png"],
        "only applies to --output-dir": [*base, "--output", out, "--format", "csv"],
        "listed more than once": ["predict", r.path, r.path, "--model", model_file, "--output", out],
    }
    for expected, argv in cases.items():
        message = fails(capsys, *argv)
        assert expected in message, (expected, message)
    assert not out.exists() and not (tmp_path / "never.gpkg").exists() and not (tmp_path / "d").exists()


def test_same_stem_in_output_dir_is_refused(make_raster, model_file, tmp_path, capsys) -> None:
    a = make_raster("twin.tif")
    os.makedirs(tmp_path / "other")
    b = make_raster(os.path.join("other", "twin.tif"))
    message = fails(capsys, "predict", a.path, b.path, "--model", model_file, "--output-dir", tmp_path / "o")
    assert "twin.*" in message


def test_console_script_reports_a_missing_raster_without_traceback(tmp_path) -> None:
    script = os.path.join(os.path.dirname(sys.executable), "deepforest-lite")
    command = [script] if os.path.exists(script) else [sys.executable, "-c", "import sys; from deepforest_lite.cli import main; sys.exit(main())"]
    done = subprocess.run(
        [*command, "predict", str(tmp_path / "missing.tif"), "--output", str(tmp_path / "x.gpkg")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "missing.tif" in done.stderr and "Traceback" not in done.stderr
