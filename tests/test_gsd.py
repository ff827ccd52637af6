"""Ground sample distance: reading it from rasters, deciding the scale, the grid, and models that record it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from affine import Affine
from safetensors import safe_open
from safetensors.torch import save_file

import deepforest_lite as dfl
from deepforest_lite.config import ModelConfig, PredictConfig
from deepforest_lite.errors import InvalidInputError
from deepforest_lite.gsd import (
    DEEPFOREST_GSD,
    check_gsd,
    common_gsd,
    plan_scale,
    raster_gsd,
    scaled_grid,
)

# WGS84: one degree along the equator is a * pi / 180; along the meridian at the equator a (1 - e^2) * pi / 180
WGS84_A = 6378137.0
WGS84_E2 = 0.00669437999014


# --------------------------------------------------------------------------- raster_gsd


def test_projected_metres_and_non_square_pixels():
    assert raster_gsd("EPSG:32617", Affine(0.05, 0, 4e5, 0, -0.08, 3.3e6), 100, 100) == (0.05, 0.08)


def test_projected_feet_are_converted():
    # EPSG:2236 (Florida East) is in US survey feet: 1200 / 3937 m each
    gx, gy = raster_gsd("EPSG:2236", Affine(0.5, 0, 7e5, 0, -0.5, 9e5), 10, 10)
    assert gx == pytest.approx(0.5 * 1200 / 3937, rel=1e-12) and gy == gx
    # EPSG:2264 (North Carolina) uses US survey feet too; EPSG:3361 (South Carolina) international feet
    gx, _ = raster_gsd("EPSG:3361", Affine(1.0, 0, 1e6, 0, -1.0, 1e6), 10, 10)
    assert gx == pytest.approx(0.3048, rel=1e-12)


def test_geographic_degrees_at_the_equator():
    deg = 1e-5
    gx, gy = raster_gsd("EPSG:4326", Affine(deg, 0, -deg * 50, 0, -deg, deg * 50), 100, 100)
    assert gx == pytest.approx(WGS84_A * math.radians(deg), rel=1e-6)
    assert gy == pytest.approx(WGS84_A * (1 - WGS84_E2) * math.radians(deg), rel=1e-6)


def test_geographic_east_west_shrinks_with_latitude():
    deg = 1e-5
    lat = 60.0
    gx, gy = raster_gsd("EPSG:4326", Affine(deg, 0, 10.0, 0, -deg, lat + deg * 50), 100, 100)
    # on the ellipsoid a parallel's radius is a cos(lat) / sqrt(1 - e^2 sin^2 lat)
    radius = WGS84_A * math.cos(math.radians(lat)) / math.sqrt(1 - WGS84_E2 * math.sin(math.radians(lat)) ** 2)
    assert gx == pytest.approx(radius * math.radians(deg), rel=1e-5)
    assert gx / gy == pytest.approx(0.5, rel=0.01)


@pytest.mark.parametrize(
    "crs, transform",
    [
        (None, Affine(0.1, 0, 0, 0, -0.1, 0)),
        ("EPSG:32617", Affine(0.1, 0.01, 0, 0, -0.1, 0)),  # rotated
        ("EPSG:32617", Affine(0.0, 0, 0, 0, -0.1, 0)),  # degenerate
        ("not a crs", Affine(0.1, 0, 0, 0, -0.1, 0)),
    ],
)
def test_no_usable_gsd(crs, transform):
    assert raster_gsd(crs, transform, 10, 10) is None


def test_sample_rasters(shared_data):
    with dfl.RasterSource(dfl.get_data("OSBS_029.tif")) as source:
        assert source.gsd == pytest.approx((0.1, 0.1))
    with dfl.RasterSource(dfl.get_data("OSBS_029.png")) as source:
        assert source.gsd is None
    gsd, note = common_gsd([dfl.get_data("OSBS_029.tif")])
    assert gsd == pytest.approx(0.1) and "transform" in note
    gsd, note = common_gsd([dfl.get_data("OSBS_029.tif"), dfl.get_data("OSBS_029.png")])
    assert gsd is None and "OSBS_029.png" in note


# --------------------------------------------------------------------------- plan_scale and the grid


def test_plan_scale_tolerance_and_controls():
    assert not plan_scale(0.1, (0.109, 0.109)).rescaled  # within 10 %
    s = plan_scale(0.1, (0.111, 0.111))
    assert s.rescaled and s.factor == pytest.approx((1.11, 1.11))
    assert not plan_scale(0.1, (0.02, 0.02), rescale=False).rescaled
    assert not plan_scale(None, (0.02, 0.02)).rescaled
    assert not plan_scale(0.1, None).rescaled
    given = plan_scale(0.1, (0.5, 0.5), given=0.05)
    assert given.raster_gsd == (0.05, 0.05) and given.raster_gsd_source == "given"
    assert given.factor == pytest.approx((0.5, 0.5))
    assert plan_scale(0.1, (0.02, 0.2)).factor == pytest.approx((0.2, 2.0))  # non-square: per axis


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), True, "0.1"])
def test_bad_gsd_values_are_refused(bad):
    with pytest.raises(InvalidInputError, match="positive pixel size in metres"):
        check_gsd(bad)
    with pytest.raises(InvalidInputError, match="positive pixel size in metres"):
        PredictConfig(gsd=bad)
    with pytest.raises(InvalidInputError, match="positive pixel size in metres"):
        ModelConfig(gsd=bad)


def test_scaled_grid_sides_and_output_size():
    # 2 cm raster, 0.1 m model, 400 px patches: 2000 px windows read at 400 px
    grid = scaled_grid(5000, 6000, 400, 0.05, (0.2, 0.2))
    assert {(w.width, w.height) for w in grid.windows} == {(2000, 2000)}
    assert grid.out_shape == (400, 400) and grid.to_raster == (5.0, 5.0)
    cols = sorted({w.col_off for w in grid.windows})
    assert cols == [0, 1900, 3800, 4000]  # stride 2000 - floor(2000 * 0.05), the last flush with the edge
    # coarser raster smaller than one window: the whole raster, enlarged
    grid = scaled_grid(90, 120, 400, 0.05, (3.0, 3.0))  # a window would be round(400 / 3) = 133 px
    assert [(w.width, w.height) for w in grid.windows] == [(120, 90)]
    assert grid.out_shape == (270, 360)  # enlarged by the same factor
    grid = scaled_grid(90, 150, 400, 0.05, (3.0, 3.0))
    assert [(w.col_off, w.width, w.height) for w in grid.windows] == [(0, 133, 90), (17, 133, 90)]
    assert grid.out_shape == (270, 400)
    # non-square pixels
    grid = scaled_grid(1000, 1000, 200, 0.0, (0.4, 2.5))
    assert (grid.windows[0].width, grid.windows[0].height) == (500, 80) and grid.out_shape == (200, 200)


# --------------------------------------------------------------------------- models record their GSD


def test_gsd_is_stored_in_checkpoints(tmp_path, tiny_detector):
    det = tiny_detector(gsd=0.03)
    assert det.gsd == 0.03
    path = det.save(tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["deepforest_lite"])["model"]["gsd"] == 0.03
    assert dfl.load_model(path, device="cpu").gsd == 0.03
    assert dfl.load_model(path, device="cpu", gsd=0.05).gsd == 0.05
    det.gsd = None
    assert dfl.load_model(det.save(tmp_path / "none.safetensors"), device="cpu").gsd is None
    with pytest.raises(InvalidInputError):
        det.gsd = -1


def _strip_gsd(path, out, training=None):
    """Rewrite a checkpoint as written before ModelConfig had gsd (optionally with training metadata)."""
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["deepforest_lite"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    del meta["model"]["gsd"]
    if training is not None:
        meta["training"] = training
    save_file(tensors, str(out), metadata={"deepforest_lite": json.dumps(meta)})
    return out


def test_older_checkpoints_load_with_unknown_gsd_unless_training_metadata_says(tmp_path, tiny_detector):
    path = tiny_detector(gsd=0.2).save(tmp_path / "m.safetensors")
    old = _strip_gsd(path, tmp_path / "old.safetensors")
    assert dfl.load_model(old, device="cpu").gsd is None
    recorded = _strip_gsd(path, tmp_path / "script.safetensors", training={"gsd_m": 0.1, "epochs": 3})
    assert dfl.load_model(recorded, device="cpu").gsd == 0.1


def test_bundled_model_gsd_follows_its_metadata():
    det = dfl.load_model(device="cpu")
    recorded = (det.metadata.get("training") or {}).get("gsd_m")
    assert det.gsd == recorded  # None for a checkpoint that records none


def test_deepforest_imports_get_the_documented_default(tmp_path):
    det = dfl.Detector(["Tree"], backbone="resnet18", frozen_batchnorm=True, device="cpu")
    torch.save(det.model.state_dict(), tmp_path / "plain.pt")
    assert dfl.load_model(tmp_path / "plain.pt", labels=["Tree"], device="cpu").gsd == DEEPFOREST_GSD == 0.1
    assert dfl.load_model(tmp_path / "plain.pt", labels=["Bird"], device="cpu").gsd is None
    assert dfl.load_model(tmp_path / "plain.pt", labels=["Bird"], device="cpu", gsd=0.02).gsd == 0.02
