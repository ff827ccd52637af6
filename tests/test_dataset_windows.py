"""WindowDataset: a raster's windows read lazily, empty windows flagged and left out of batches."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from deepforest_lite.dataset import WindowBatch, WindowDataset, WindowItem, collate_windows
from deepforest_lite.errors import InvalidInputError
from deepforest_lite.raster import RasterSource, read_image
from deepforest_lite.windows import Window, window_grid


def as_tensor(rgb: np.ndarray) -> torch.Tensor:
    """The network input written out: H x W x 3 uint8 -> 3 x H x W float32 in [0, 1]."""
    return torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255.0)


def test_items_are_the_grid_windows_as_float_tensors(make_raster) -> None:
    r = make_raster("a.tif", tiled=True, blocksize=32)
    source = RasterSource(r.path)
    dataset = WindowDataset(source, patch_size=128, patch_overlap=0.1)
    assert dataset.windows == window_grid(200, 300, 128, 0.1)
    assert len(dataset) == 6 and dataset.shape == (200, 300)
    for item, window in zip(dataset, dataset.windows):
        assert isinstance(item, WindowItem) and item.window == window
        assert item.image.dtype == torch.float32 and item.image.shape == (3, window.height, window.width)
        x0, y0, x1, y1 = window.bounds
        expected = as_tensor(np.ascontiguousarray(r.data[:, y0:y1, x0:x1].transpose(1, 2, 0)))
        assert torch.allclose(item.image, expected, atol=1e-7, rtol=0)
        assert 0.0 <= float(item.image.min()) and float(item.image.max()) <= 1.0


def test_uint16_windows_follow_the_raster_scaling(make_raster) -> None:
    r = make_raster("u16.tif", dtype="uint16")
    source = RasterSource(r.path)
    full = source.read_window(None)
    dataset = WindowDataset(source, patch_size=100, patch_overlap=0.0)
    for image, window in dataset:
        x0, y0, x1, y1 = window.bounds
        assert torch.equal(image, as_tensor(full[y0:y1, x0:x1]))


def test_empty_windows_have_no_image_and_collate_leaves_them_out(make_raster) -> None:
    # 400 x 200, windows of 100 px without overlap; the right column of windows is all nodata
    r = make_raster("nd.tif", width=400, nodata=255, nodata_regions=[(300, 0, 400, 200)])
    dataset = WindowDataset(RasterSource(r.path), patch_size=100, patch_overlap=0.0)
    empty = [w for (image, w) in dataset if image is None]
    assert empty == [Window(300, 0, 100, 100), Window(300, 100, 100, 100)]
    batch = collate_windows([dataset[i] for i in range(len(dataset))])
    assert isinstance(batch, WindowBatch)
    assert batch.skipped == empty
    assert len(batch.images) == len(batch.windows) == 6 and batch.size == 8
    assert all(w.col_off < 300 for w in batch.windows)
    assert all(isinstance(image, torch.Tensor) for image in batch.images)


def test_alpha_zero_and_black_windows_are_empty(make_raster) -> None:
    textured = make_raster("base.tif", width=400).data.copy()  # no zeros anywhere (values 20..230)
    alpha = make_raster("alpha.tif", width=400, data=textured, alpha=True, nodata_regions=[(300, 0, 400, 100)])
    black = make_raster("black.tif", width=400, nodata_regions=[(300, 100, 400, 200)])
    assert alpha.data[:3, :100, 300:].min() > 0  # RGB is not black under alpha 0
    for r, expected in ((alpha, Window(300, 0, 100, 100)), (black, Window(300, 100, 100, 100))):
        dataset = WindowDataset(RasterSource(r.path), patch_size=100, patch_overlap=0.0)
        assert [w for image, w in dataset if image is None] == [expected]


def test_array_source_gives_the_same_items_as_the_file(make_raster) -> None:
    r = make_raster("arr.tif", width=400, nodata_regions=[(300, 0, 400, 100)])
    from_file = WindowDataset(RasterSource(r.path), patch_size=100, patch_overlap=0.0)
    from_array = WindowDataset(read_image(r.path), patch_size=100, patch_overlap=0.0)
    assert from_array.windows == from_file.windows
    for (a, wa), (b, wb) in zip(from_array, from_file):
        assert wa == wb
        assert (a is None) == (b is None) == (wa == Window(300, 0, 100, 100))
        if a is not None:
            assert torch.equal(a, b)


def test_explicit_windows_are_used_as_given(make_raster) -> None:
    r = make_raster("w.tif")
    windows = [Window(10, 20, 30, 40), Window(0, 0, 300, 200)]
    dataset = WindowDataset(RasterSource(r.path), windows)
    assert [item.window for item in dataset] == windows
    assert dataset[0].image.shape == (3, 40, 30)
    with pytest.raises(InvalidInputError, match="not inside"):
        WindowDataset(read_image(r.path), [Window(250, 0, 100, 100)])[0]


def test_only_the_asked_window_is_read(make_raster, monkeypatch) -> None:
    r = make_raster("lazy.tif")
    source = RasterSource(r.path)
    reads: list[object] = []
    original = RasterSource.read_window_checked

    def spy(self, window=None, out_shape=None):
        reads.append(window)
        return original(self, window, out_shape=out_shape)

    monkeypatch.setattr(RasterSource, "read_window_checked", spy)
    monkeypatch.setattr(RasterSource, "read_window", lambda *a, **k: pytest.fail("whole-window read"))
    dataset = WindowDataset(source, patch_size=100, patch_overlap=0.0)
    assert reads == []  # building it reads nothing
    dataset[4]
    assert reads == [dataset.windows[4]]


def test_dataset_pickles_and_loads_in_worker_processes(make_raster) -> None:
    r = make_raster("dl.tif", tiled=True, blocksize=16, nodata=0, border=50)
    source = RasterSource(r.path)
    source.read_window(Window(0, 0, 8, 8))  # the parent holds an open handle
    dataset = WindowDataset(source, patch_size=50, patch_overlap=0.0)
    assert pickle.loads(pickle.dumps(dataset)).windows == dataset.windows

    def run(workers: int) -> dict:
        out = {}
        loader = DataLoader(dataset, batch_size=3, num_workers=workers, collate_fn=collate_windows)
        for batch in loader:
            for image, window in zip(batch.images, batch.windows):
                out[window] = image
            for window in batch.skipped:
                out[window] = None
        return out

    serial, parallel = run(0), run(2)
    assert set(serial) == set(dataset.windows) == set(parallel)
    assert len(serial) == 24  # 6 x 4 windows of 50 px
    assert sum(v is None for v in serial.values()) == 16  # the 50 px nodata border fills every edge window
    for window, image in serial.items():
        assert (image is None) == (parallel[window] is None)
        if image is not None:
            assert torch.equal(image, parallel[window])


def test_bad_source_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="RasterSource"):
        WindowDataset("raster.tif")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="uint8"):
        WindowDataset(np.zeros((10, 10, 3), dtype=np.float32))
