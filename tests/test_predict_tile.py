"""predict_tile: tiling + shifting + merging gives back exactly the planted objects, once each.

The stub model below is a perfect detector for rasters made by the ``make_raster``
fixture: for each window it is given, it finds where that window lies in the
raster by comparing the tensor with the raster's own pixels (so it also checks
that every window handed to the model is exactly the raster's pixels there),
and returns each planted box that is visible in it, clipped to the window and
in the window's pixel coordinates. Like a real detector it does not report
slivers: a box is returned when at least 20 % of its area is inside the
window, with score ``0.5 + 0.4 * visible fraction`` (0.9 when whole). A
fragment's IoU with its whole box is its visible fraction (>= 0.2 > 0.15), so
merging must remove every fragment and keep each object once, as a whole box,
provided each object lies wholly inside some window (patch 100 px with 40 %
overlap, objects at most 40 px).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from affine import Affine
from torch import nn

import deepforest_lite as dfl
from deepforest_lite.annotations import LabelMap
from deepforest_lite.boxes import BOX_COLUMNS, PREDICTION_COLUMNS
from deepforest_lite.config import PredictConfig
from deepforest_lite.errors import ImageReadError, InvalidInputError, RasterError
from deepforest_lite.geo import MAP_COLUMNS
from deepforest_lite.merge import merge_windows
from deepforest_lite.predict import image_to_tensor, predict_tile
from deepforest_lite.raster import RasterSource, read_image
from deepforest_lite.windows import window_grid

LABELS = LabelMap(["Tree", "Bird"])
GRID = dict(patch_size=100, patch_overlap=0.4)  # stride 60 px: 40 px shared by neighbours


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models run fastest on one thread


class PlantedStub(nn.Module):
    """A RetinaNet stand-in returning the planted boxes visible in each window (see the module doc)."""

    def __init__(self, rgb: np.ndarray, planted: pd.DataFrame, label_map: LabelMap = LABELS, min_visible: float = 0.2):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))  # run_model reads the device off the parameters
        self.full = image_to_tensor(rgb)
        self.boxes = planted[BOX_COLUMNS].to_numpy(np.float64)
        self.labels = label_map.encode(planted["label"].tolist())
        self.min_visible = min_visible
        self.seen: list[tuple[int, int]] = []  # (col_off, row_off) of every window given, in order
        self.calls = 0

    def locate(self, image: torch.Tensor) -> tuple[int, int]:
        """The one offset where the raster's pixels equal ``image`` (textured rasters: unique)."""
        _, h, w = image.shape
        height, width = self.full.shape[1:]
        corner = (self.full[:, : height - h + 1, : width - w + 1] == image[:, :1, :1]).all(dim=0)
        hits = [
            (int(c), int(r))
            for r, c in corner.nonzero().tolist()
            if torch.equal(self.full[:, r : r + h, c : c + w], image)
        ]
        assert len(hits) == 1, f"a {w} x {h} window that is not the raster's pixels ({len(hits)} matches)"
        return hits[0]

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self.calls += 1
        out = []
        for image in images:
            col, row = self.locate(image)
            self.seen.append((col, row))
            h, w = image.shape[1:]
            b = self.boxes
            clipped = np.stack(
                [np.clip(b[:, 0], col, col + w), np.clip(b[:, 1], row, row + h),
                 np.clip(b[:, 2], col, col + w), np.clip(b[:, 3], row, row + h)], axis=1,
            )
            area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1]) / area
            keep = visible >= self.min_visible
            out.append(
                {
                    "boxes": torch.tensor(clipped[keep] - [col, row, col, row], dtype=torch.float32),
                    "labels": torch.tensor(self.labels[keep], dtype=torch.int64),
                    "scores": torch.tensor(0.5 + 0.4 * visible[keep], dtype=torch.float32),
                }
            )
        return out


def stub_for(path, planted: pd.DataFrame, **source_options) -> PlantedStub:
    with RasterSource(path, **source_options) as source:
        return PlantedStub(source.read_window(None), planted)


def assert_planted_once(result: pd.DataFrame, planted: pd.DataFrame) -> None:
    """The result holds exactly the planted boxes (coordinates and labels), each once, whole (score 0.9)."""
    got = result.sort_values(BOX_COLUMNS).reset_index(drop=True)
    want = planted.sort_values(BOX_COLUMNS).reset_index(drop=True)
    assert len(got) == len(want)
    np.testing.assert_array_equal(got[BOX_COLUMNS].to_numpy(), want[BOX_COLUMNS].to_numpy())
    assert got["label"].tolist() == want["label"].tolist()
    np.testing.assert_allclose(got["score"].to_numpy(), 0.9, rtol=0, atol=1e-6)


def grid_offsets(height: int, width: int, **grid) -> set[tuple[int, int]]:
    return {(w.col_off, w.row_off) for w in window_grid(height, width, **grid)}


# --------------------------------------------------------------------------- tiling, shifting, merging


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(tiled=True, blocksize=32),
        dict(tiled=True, blocksize=64, compress="deflate"),
        dict(dtype="uint16"),
        dict(dtype="float32", nodata=float("nan"), border=20),
    ],
    ids=["striped", "tiled", "tiled-deflate", "uint16", "float-nan-border"],
)
def test_planted_objects_come_back_once_each(make_raster, options) -> None:
    r = make_raster("planted.tif", **options)
    stub = stub_for(r.path, r.boxes)
    result = predict_tile(stub, LABELS, r.path, PredictConfig(**GRID, batch_size=3), progress=False)
    assert_planted_once(result, r.boxes)
    assert set(result["image_path"]) == {"planted.tif"}
    # every window reached the model once (none is empty here), in batches of at most 3
    assert sorted(stub.seen) == sorted(grid_offsets(200, 300, **GRID))
    assert stub.calls == -(-len(stub.seen) // 3)
    assert {k: result.attrs[k] for k in ("windows", "empty_windows")} == {"windows": 15, "empty_windows": 0}
    assert result.attrs["rescaled"] is False and result.attrs["model_gsd"] is None  # a stub model has no GSD


def test_objects_cut_by_window_edges_are_merged_into_the_whole_box(make_raster) -> None:
    # (100, 80, 140, 110) is cut by the windows starting at x=120 and y=60/100; (50, 50, 80, 80) by x=60
    r = make_raster("cut.tif")
    stub = stub_for(r.path, r.boxes)
    cut = []
    original = stub.forward

    def forward(images):
        out = original(images)
        cut.extend(float(s) for d in out for s in d["scores"] if s < 0.9 - 1e-6)
        return out

    stub.forward = forward  # type: ignore[method-assign]
    result = predict_tile(stub, LABELS, r.path, PredictConfig(**GRID), progress=False)
    assert len(cut) >= 4  # fragments were reported by windows ...
    assert_planted_once(result, r.boxes)  # ... and none survived the merge


def test_one_window_raster_and_objects_touching_the_raster_edge(make_raster) -> None:
    boxes = [(0, 0, 20, 30), (280, 170, 300, 200), (120, 90, 160, 110)]
    r = make_raster("edge.tif", boxes=boxes)
    stub = stub_for(r.path, r.boxes)
    result = predict_tile(stub, LABELS, r.path, PredictConfig(patch_size=400), progress=False)
    assert stub.seen == [(0, 0)]  # smaller than a patch: one window, the raster itself
    assert_planted_once(result, r.boxes)
    stub = stub_for(r.path, r.boxes)
    assert_planted_once(predict_tile(stub, LABELS, r.path, PredictConfig(**GRID), progress=False), r.boxes)


def test_class_agnostic_merge_by_default_class_aware_on_request(make_raster) -> None:
    boxes = [(50, 50, 80, 80), (52, 50, 80, 80), (150, 100, 180, 130)]
    r = make_raster("classes.tif", boxes=boxes, labels=["Tree", "Bird", "Tree"])
    agnostic = predict_tile(stub_for(r.path, r.boxes), LABELS, r.path, PredictConfig(**GRID), progress=False)
    aware = predict_tile(
        stub_for(r.path, r.boxes), LABELS, r.path, PredictConfig(**GRID, class_aware_merge=True), progress=False
    )
    assert_planted_once(aware, r.boxes)
    # across labels the larger "Tree" box (equal score) removes the "Bird" box it overlaps
    assert_planted_once(agnostic, r.boxes.drop(index=1))


# --------------------------------------------------------------------------- empty windows


@pytest.mark.parametrize("kind", ["nodata", "alpha", "black", "uint16-nodata"])
def test_empty_windows_never_reach_the_model(make_raster, kind) -> None:
    region = [(300, 0, 400, 200)]  # the right 100 px column
    if kind == "nodata":
        r = make_raster("e.tif", width=400, nodata=255, nodata_regions=region)
    elif kind == "uint16-nodata":
        r = make_raster("e.tif", width=400, dtype="uint16", nodata=65535, nodata_regions=region)
    elif kind == "black":
        r = make_raster("e.tif", width=400, nodata_regions=region)
    else:
        textured = make_raster("base.tif", width=400).data  # no black pixel anywhere
        r = make_raster("e.tif", width=400, data=textured, alpha=True, nodata_regions=region)
        r = r._replace(boxes=make_raster("base.tif", width=400).boxes.assign(image_path=str(r.path)))
    stub = stub_for(r.path, r.boxes)
    result = predict_tile(stub, LABELS, r.path, PredictConfig(**GRID), progress=False)
    # 6 x 3 windows; the three starting at x=300 hold no data, the ones at x=240 only partly
    assert sorted(stub.seen) == sorted(o for o in grid_offsets(200, 400, **GRID) if o[0] < 300)
    assert (240, 0) in stub.seen
    assert {k: result.attrs[k] for k in ("windows", "empty_windows")} == {"windows": 18, "empty_windows": 3}
    assert_planted_once(result, r.boxes)


def test_all_empty_raster_gives_an_empty_table_without_any_forward_pass(make_raster) -> None:
    r = make_raster("void.tif", boxes=(), nodata=0, border=100)
    stub = stub_for(r.path, r.boxes)
    result = predict_tile(stub, LABELS, r.path, PredictConfig(**GRID), progress=False)
    assert stub.calls == 0
    assert len(result) == 0 and list(result.columns[:7]) == PREDICTION_COLUMNS
    assert result.crs == "EPSG:32617" and result.attrs["empty_windows"] == 15


# --------------------------------------------------------------------------- inputs, workers, settings


def test_workers_give_the_same_result_as_the_main_process(make_raster) -> None:
    r = make_raster("par.tif", tiled=True, blocksize=32, nodata=0, border=30)
    serial_stub, parallel_stub = stub_for(r.path, r.boxes), stub_for(r.path, r.boxes)
    serial = predict_tile(serial_stub, LABELS, r.path, PredictConfig(**GRID, workers=0), progress=False)
    parallel = predict_tile(parallel_stub, LABELS, r.path, PredictConfig(**GRID, workers=2), progress=False)
    pd.testing.assert_frame_equal(pd.DataFrame(serial), pd.DataFrame(parallel))
    assert serial.crs == parallel.crs
    assert serial_stub.seen == parallel_stub.seen  # same windows, same order
    assert_planted_once(parallel, r.boxes)


def test_array_input_is_windowed_in_memory_and_gives_a_plain_table(make_raster) -> None:
    r = make_raster("mem.tif", nodata_regions=[(0, 100, 100, 200)])
    rgb = read_image(r.path)
    stub = PlantedStub(rgb, r.boxes)
    result = predict_tile(stub, LABELS, rgb, PredictConfig(**GRID), progress=False)
    assert type(result) is pd.DataFrame and list(result.columns) == PREDICTION_COLUMNS
    assert result["image_path"].isna().all()
    assert_planted_once(result, r.boxes)
    assert (0, 100) not in stub.seen  # the black window (rows 100-200, columns 0-100) was skipped
    with pytest.raises(InvalidInputError, match="apply to raster files"):
        predict_tile(stub, LABELS, rgb, PredictConfig(bands=(1, 2, 3)), progress=False)


def test_png_without_georeferencing_gives_a_plain_pixel_table(make_raster) -> None:
    r = make_raster("plain.png")
    result = predict_tile(stub_for(r.path, r.boxes), LABELS, r.path, PredictConfig(**GRID), progress=False)
    assert type(result) is pd.DataFrame and list(result.columns) == PREDICTION_COLUMNS
    assert_planted_once(result, r.boxes)
    assert set(result["image_path"]) == {"plain.png"}


def test_georeferenced_output_has_exact_map_coordinates_geometry_and_crs(make_raster) -> None:
    transform = Affine(0.5, 0.0, 400000.0, 0.0, -0.25, 3300000.0)  # non-square pixels
    r = make_raster("geo.tif", transform=transform, crs="EPSG:32617")
    result = predict_tile(stub_for(r.path, r.boxes), LABELS, r.path, PredictConfig(**GRID), progress=False)
    assert result.crs.to_epsg() == 32617
    assert list(result.columns) == [*PREDICTION_COLUMNS, *MAP_COLUMNS, "geometry"]
    row = result.set_index(["xmin", "ymin"]).loc[(100.0, 80.0)]  # planted (100, 80, 140, 110)
    assert (row["map_xmin"], row["map_xmax"]) == (400050.0, 400070.0)
    assert (row["map_ymin"], row["map_ymax"]) == (3300000.0 - 110 * 0.25, 3300000.0 - 80 * 0.25)
    assert row["geometry"].bounds == (400050.0, 3299972.5, 400070.0, 3299980.0)
    for _, box in result.iterrows():  # every box: map = transform applied to pixels
        assert box["map_xmin"] == 400000.0 + 0.5 * box["xmin"]
        assert box["map_ymax"] == 3300000.0 - 0.25 * box["ymin"]
        assert box["geometry"].bounds == tuple(box[MAP_COLUMNS])


def test_rotated_raster_fails_before_any_window_is_read(make_raster) -> None:
    r = make_raster("rot.tif", transform=Affine(0.5, 0.1, 400000.0, 0.0, -0.5, 3300000.0))
    stub = stub_for(r.path, r.boxes)
    with pytest.raises(RasterError, match="rotated"):
        predict_tile(stub, LABELS, r.path, PredictConfig(**GRID), progress=False)
    assert stub.calls == 0


def test_band_choice_and_value_range_reach_the_reader(make_raster) -> None:
    r = make_raster("nir.tif", bands=4)  # RGB + a fourth band: needs bands=
    det = dfl.Detector(labels=["Tree", "Bird"], backbone="resnet18", resize="scale", device="cpu")
    det.model = stub_for(r.path, r.boxes, bands=(1, 2, 3))
    with pytest.raises(RasterError, match="bands=\\(1, 2, 3\\)"):
        det.predict_tile(r.path, progress=False)
    assert_planted_once(det.predict_tile(r.path, 100, 0.4, bands=[1, 2, 3], progress=False), r.boxes)
    u16 = make_raster("u16.tif", dtype="uint16")
    det.model = stub_for(u16.path, u16.boxes, value_range=(0, 60000))
    result = det.predict_tile(u16.path, 100, 0.4, value_range=(0, 60000), progress=False)
    assert_planted_once(result, u16.boxes)  # the stub only knows pixels scaled with 0..60000


def test_detector_method_passes_every_setting(make_raster) -> None:
    boxes = [(50, 50, 80, 80), (52, 50, 80, 80)]
    r = make_raster("det.tif", boxes=boxes, labels=["Tree", "Bird"])
    det = dfl.Detector(labels=["Tree", "Bird"], backbone="resnet18", resize="scale", device="cpu")
    det.model = stub_for(r.path, r.boxes)
    result = det.predict_tile(
        r.path, patch_size=100, patch_overlap=0.4, iou_threshold=0.15, batch_size=2, workers=0,
        device="cpu", class_aware=True, image_path="named", progress=False,
    )
    assert_planted_once(result, r.boxes)
    assert set(result["image_path"]) == {"named"}
    assert det.model.calls == 8 and len(det.model.seen) == 15  # 15 windows in batches of 2
    with pytest.raises(InvalidInputError, match="patch_overlap"):
        det.predict_tile(r.path, patch_overlap=1.0)
    with pytest.raises(InvalidInputError, match="patch_size"):
        det.predict_tile(r.path, patch_size=0)
    with pytest.raises(InvalidInputError, match="Unknown precision 'fp8'"):
        det.predict_tile(r.path, precision="fp8")
    with pytest.raises(InvalidInputError, match="'fp16' runs on CUDA only"):
        det.predict_tile(r.path, precision="fp16", device="cpu")
    with pytest.raises(ImageReadError, match="does not exist"):
        det.predict_tile(r.path.parent / "missing.tif")
    assert_planted_once(det.predict_tile(r.path, np.int64(100), np.float32(0.4), progress=False), r.boxes.iloc[:1])


def test_progress_bar_on_stderr_only_when_asked(make_raster, capsys) -> None:
    r = make_raster("bar.tif")
    predict_tile(stub_for(r.path, r.boxes), LABELS, r.path, PredictConfig(**GRID), progress=True)
    err = capsys.readouterr().err
    assert "bar.tif" in err and "15/15" in err and "window/s" in err
    predict_tile(stub_for(r.path, r.boxes), LABELS, r.path, PredictConfig(**GRID), progress=False)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- a real (tiny) network


@pytest.fixture
def eager_detector(boxy_detector):
    return boxy_detector(seed=3, per_image=40, topk_candidates=100)


def test_one_patch_raster_matches_predict_image_exactly(eager_detector) -> None:
    path = dfl.get_data("OSBS_029.tif")  # 400 x 400 px: one 400 px window, the whole raster
    tile = eager_detector.predict_tile(path, patch_size=400, progress=False)
    image = eager_detector.predict_image(path)
    assert len(image) > 0 and tile.attrs["windows"] == 1
    order = ["score", "xmin", "ymin"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(tile)[PREDICTION_COLUMNS].sort_values(order, ascending=False).reset_index(drop=True),
        image.sort_values(order, ascending=False).reset_index(drop=True),
        check_exact=True,
    )


def test_real_model_end_to_end_equals_window_by_window_prediction(eager_detector, make_raster) -> None:
    r = make_raster("real.tif", tiled=True, blocksize=64)
    rgb = read_image(r.path)
    tile = eager_detector.predict_tile(r.path, 128, 0.1, batch_size=1, progress=False)
    windows = window_grid(200, 300, 128, 0.1)
    per_window = [
        eager_detector.predict_image(rgb[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width])
        for w in windows
    ]
    expected = merge_windows(per_window, windows, iou_threshold=0.15).assign(image_path="real.tif")
    assert len(expected) > 0 and {k: tile.attrs[k] for k in ("windows", "empty_windows")} == {"windows": 6, "empty_windows": 0}
    pd.testing.assert_frame_equal(pd.DataFrame(tile)[PREDICTION_COLUMNS], expected, check_exact=True)
    assert tile.crs.to_epsg() == 32617 and tile.geometry.is_valid.all()
    assert ((tile["xmin"] >= 0) & (tile["xmax"] <= 300) & (tile["ymin"] >= 0) & (tile["ymax"] <= 200)).all()
    batched = eager_detector.predict_tile(r.path, 128, 0.1, batch_size=4, workers=2, progress=False)
    assert len(batched) == len(tile)
    np.testing.assert_allclose(batched[BOX_COLUMNS].to_numpy(), tile[BOX_COLUMNS].to_numpy(), atol=1e-3)
    bf16 = eager_detector.predict_tile(r.path, 128, 0.1, precision="bf16", progress=False)
    assert len(bf16) > 0 and list(bf16.columns) == list(tile.columns)
