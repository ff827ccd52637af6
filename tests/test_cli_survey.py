"""``predict`` at survey scale: many inputs, catalogue, merged file, --mosaic, mid-raster resume, one bar."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import geopandas as gpd
import pandas as pd
import pytest
from test_cli_predict import PATCH, cli, fails
from test_mosaic import cut

from deepforest_lite.survey import expand_inputs

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture
def make_raster(make_raster, tmp_path):
    """``make_raster`` that creates the folders of the name first."""

    def make(name, **kwargs):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        return make_raster(name, **kwargs)

    return make


def test_inputs_expand_from_globs_folders_and_lists(make_raster, tmp_path) -> None:
    a, b = make_raster("tiles/a.tif").path, make_raster("tiles/b.tif").path
    c = make_raster("tiles/sub/c.png").path
    (tmp_path / "tiles" / "notes.txt").write_text("not a raster")
    listing = tmp_path / "lists" / "l.txt"
    listing.parent.mkdir()
    listing.write_text("# survey\n\n../tiles/b.tif\n" + str(c) + "\n")
    assert expand_inputs([str(tmp_path / "tiles")]) == [str(a), str(b)]  # not recursive, rasters only
    assert expand_inputs([str(tmp_path / "tiles" / "**" / "*.*g")]) == [str(c)]
    assert expand_inputs([f"@{listing}"]) == [os.path.join(str(listing.parent), "../tiles/b.tif"), str(c)]
    assert expand_inputs([str(a), str(tmp_path / "tiles" / "*.tif")]) == [str(a), str(a), str(b)]


def test_input_mistakes_are_one_line_before_the_model_loads(make_raster, tmp_path, capsys) -> None:
    make_raster("tiles/a.tif")
    (tmp_path / "empty").mkdir()
    (tmp_path / "blank.txt").write_text("# nothing\n\n")
    (tmp_path / "never_loaded.pt").write_bytes(b"not a checkpoint")  # loading it would fail otherwise
    out = ["--output-dir", tmp_path / "o", "--model", tmp_path / "never_loaded.pt"]
    cases = {
        "matches no file": [tmp_path / "tiles" / "*.jp2"],
        "holds no raster": [tmp_path / "empty"],
        "does not exist": [f"@{tmp_path / 'missing.txt'}"],
        "names no raster": [f"@{tmp_path / 'blank.txt'}"],
        "more than once": [tmp_path / "tiles", tmp_path / "tiles" / "a.tif"],
    }
    for words, rasters in cases.items():
        message = fails(capsys, "predict", *rasters, *out)
        assert words in message, (words, message)
    assert "--merged only applies" in fails(capsys, "predict", tmp_path / "tiles", "--output", tmp_path / "x.csv",
                                            "--merged", tmp_path / "m.csv")
    assert not (tmp_path / "o").exists()


def test_merged_file_of_a_survey_and_crs_rules(make_raster, model_file, tmp_path, capsys) -> None:
    make_raster("s/a.tif"), make_raster("s/b.tif", seed=1)
    make_raster("z/c.tif", crs="EPSG:32616", origin=(600000.0, 3300000.0))
    out = tmp_path / "out"
    assert cli("predict", tmp_path / "s", "--model", model_file, "--output-dir", out, *PATCH, "--quiet",
               "--merged", tmp_path / "all.gpkg", "--index", "gpkg") == 0
    merged = gpd.read_file(tmp_path / "all.gpkg")
    per = {n: gpd.read_file(out / f"{n}.gpkg") for n in ("a", "b")}
    assert merged["image_path"].value_counts().to_dict() == {"a.tif": len(per["a"]), "b.tif": len(per["b"])}
    assert merged.crs.to_epsg() == 32617
    index = gpd.read_file(out / "index.gpkg")
    assert index.crs.to_epsg() == 4326 and index["status"].tolist() == ["done", "done"]
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(32617, 4326, always_xy=True).transform(
        [400000.0, 400150.0, 400150.0, 400000.0], [3299950.0, 3299950.0, 3300000.0, 3300000.0])
    expected = (min(lon), min(lat), max(lon), max(lat))  # the raster's corners in lon/lat
    assert index.geometry.iloc[0].bounds == pytest.approx(expected, abs=1e-9)
    # a raster in another UTM zone: refused for one vector file unless --crs reprojects everything
    both = [tmp_path / "s", tmp_path / "z"]
    message = fails(capsys, "predict", *both, "--model", model_file, "--output-dir", out, "--merged", tmp_path / "x.gpkg")
    assert "different CRSs" in message and not (out / "c.gpkg").exists()
    assert cli("predict", *both, "--model", model_file, "--output-dir", out, *PATCH, "--quiet",
               "--merged", tmp_path / "all4326.gpkg", "--crs", "EPSG:4326") == 0
    wgs = gpd.read_file(tmp_path / "all4326.gpkg")
    assert wgs.crs.to_epsg() == 4326 and set(wgs["image_path"]) == {"a.tif", "b.tif", "c.tif"}
    assert cli("predict", *both, "--model", model_file, "--output-dir", out, "--quiet", *PATCH,
               "--merged", tmp_path / "all.csv") == 0  # a CSV keeps each file's own CRS
    table = pd.read_csv(tmp_path / "all.csv")
    assert table.groupby("image_path")["map_crs"].first().to_dict() == {  # c.gpkg was written with --crs EPSG:4326
        "a.tif": "EPSG:32617", "b.tif": "EPSG:32617", "c.tif": "EPSG:4326"}
    index = pd.read_csv(out / "index.csv")  # the default catalogue of the later runs
    assert index["status"].tolist() == ["skipped"] * 3 and index["crs"].tolist()[2] == "EPSG:32616"


def test_mosaic_of_four_tiles_gives_the_uncut_rasters_boxes(make_raster, model_file, tmp_path, capsys) -> None:
    whole = make_raster("whole.tif")
    cut(whole.path, tmp_path / "tiles")
    assert cli("predict", whole.path, "--model", model_file, "--output", tmp_path / "whole.gpkg", *PATCH, "--quiet") == 0
    assert cli("predict", tmp_path / "tiles", "--mosaic", "--model", model_file, "--output", tmp_path / "m.gpkg",
               *PATCH, "--quiet") == 0
    expected, mosaic = gpd.read_file(tmp_path / "whole.gpkg"), gpd.read_file(tmp_path / "m.gpkg")
    columns = ["map_xmin", "map_ymin", "map_xmax", "map_ymax", "label", "score"]
    assert len(expected) > 0
    pd.testing.assert_frame_equal(pd.DataFrame(mosaic[columns]), pd.DataFrame(expected[columns]))
    assert set(mosaic["image_path"]) <= {"a.tif", "b.tif", "c.tif", "d.tif"}
    assert cli("predict", tmp_path / "tiles", "--mosaic", "--model", model_file, "--output-dir", tmp_path / "o",
               *PATCH, "--quiet") == 0
    assert sorted(os.listdir(tmp_path / "o")) == ["index.csv", "mosaic.gpkg"]
    assert len(gpd.read_file(tmp_path / "o" / "mosaic.gpkg")) == len(expected)
    other = make_raster("utm16.tif", crs="EPSG:32616")
    message = fails(capsys, "predict", tmp_path / "tiles", other.path, "--mosaic", "--model", model_file,
                    "--output", tmp_path / "never.gpkg")
    assert "one CRS" in message and not (tmp_path / "never.gpkg").exists()


def test_a_killed_cli_run_resumes_mid_raster(make_raster, model_file, tmp_path, monkeypatch, capsys) -> None:
    import deepforest_lite.predict as predict_module

    r = make_raster("r.tif")
    args = ["predict", r.path, "--model", model_file, "--patch-size", "64", "--batch-size", "2", "--engine", "torch",
            "--checkpoint-every", "0", "--quiet"]
    assert cli(*args, "--output", tmp_path / "once.csv") == 0
    original, calls = predict_module.run_model, []

    def dies_after_four(*a, **k):
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C, or SIGTERM of a batch scheduler turned into one
        calls.append(1)
        return original(*a, **k)

    monkeypatch.setattr(predict_module, "run_model", dies_after_four)
    out = tmp_path / "out"
    assert cli(*args, "--output-dir", out) == 130
    assert sorted(os.listdir(out)) == ["r.gpkg.partial.npz"]  # no box file, the windows done so far
    monkeypatch.setattr(predict_module, "run_model", original)
    calls.clear()
    monkeypatch.setattr(predict_module, "run_model", lambda *a, **k: (calls.append(1), original(*a, **k))[1])
    assert cli(*args, "--output-dir", out) == 0
    assert len(calls) == 10 - 4  # 20 windows in batches of 2, 4 batches were done
    assert sorted(os.listdir(out)) == ["index.csv", "r.gpkg"]  # the checkpoint is gone
    index = pd.read_csv(out / "index.csv")
    assert index["status"].tolist() == ["resumed"]
    resumed = gpd.read_file(out / "r.gpkg")
    once = pd.read_csv(tmp_path / "once.csv")
    assert resumed["score"].tolist() == once["score"].tolist() and resumed["xmin"].tolist() == once["xmin"].tolist()


def test_one_progress_bar_over_all_rasters(make_raster, model_file, tmp_path, capsys) -> None:
    a, b = make_raster("a.tif"), make_raster("b.tif")
    assert cli("predict", a.path, b.path, "--model", model_file, "--output-dir", tmp_path / "o", "--patch-size", "128") == 0
    err = capsys.readouterr().err
    assert "12/12" in err and "6/12" in err and "b.tif" in err and "window/s" in err  # 2 x 6 windows, one bar
    assert "6/6" not in err


@pytest.mark.slow
def test_killed_with_sigkill_at_random_points_resumes_to_the_same_file(make_raster, model_file, tmp_path) -> None:
    """A real process stopped at random moments (first SIGTERM, as a scheduler sends, then SIGKILL, no chance to
    clean up); each rerun goes on from the checkpoint."""
    r = make_raster("big.tif", width=900, height=600)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(__import__("pathlib").Path(__file__).parent.parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "deepforest_lite.cli", "predict", str(r.path), "--model", model_file,
               "--patch-size", "64", "--batch-size", "2", "--engine", "torch", "--checkpoint-every", "0", "--quiet"]
    once = tmp_path / "once"
    subprocess.run([*command, "--output-dir", str(once)], env=env, check=True, timeout=600, capture_output=True)
    out = tmp_path / "out"
    ckpt = out / "big.gpkg.partial.npz"
    rng = random.Random(12)
    kills = 0
    for round_ in range(3):
        process = subprocess.Popen([*command, "--output-dir", str(out)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not ckpt.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGTERM if round_ == 0 else signal.SIGKILL)
            kills += 1
        code = process.wait(timeout=60)
        if round_ == 0 and kills:
            assert code == 130 and ckpt.exists()  # stopped like Ctrl-C, the windows done are saved
        if (out / "big.gpkg").exists():
            break
    assert kills >= 1
    subprocess.run([*command, "--output-dir", str(out)], env=env, check=True, timeout=600, capture_output=True)
    assert not ckpt.exists() and not [n for n in os.listdir(out) if n.endswith(".tmp")]
    a, b = gpd.read_file(once / "big.gpkg"), gpd.read_file(out / "big.gpkg")
    pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")), pd.DataFrame(b.drop(columns="geometry")))
    assert a.geometry.equals(b.geometry)
