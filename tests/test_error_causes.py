"""Library errors that wrap an I/O or parsing failure keep it as their ``__cause__`` (``raise ... from exc``)."""

from __future__ import annotations

import pytest

import deepforest_lite as dfl
from deepforest_lite.rasterfile import open_raster


def test_an_unreadable_raster_keeps_rasterios_error(tmp_path):
    from rasterio.errors import RasterioIOError

    bad = tmp_path / "not_an_image.tif"
    bad.write_text("plain text, not a GeoTIFF")
    with pytest.raises(dfl.ImageReadError) as info:
        open_raster(bad)
    assert isinstance(info.value.__cause__, RasterioIOError)


def test_a_broken_csv_keeps_the_parser_error(tmp_path):
    bad = tmp_path / "boxes.csv"
    bad.write_bytes(b"image_path,xmin,ymin,xmax,ymax,label\n\xff\xfe broken \"quote\n")
    with pytest.raises(dfl.AnnotationError) as info:
        dfl.read_annotations(bad)
    assert info.value.__cause__ is not None
    assert not isinstance(info.value.__cause__, dfl.DeepForestLiteError)


def test_a_corrupt_checkpoint_keeps_the_reader_error(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken")
    with pytest.raises(dfl.CheckpointError) as info:
        dfl.load_model(bad, device="cpu")
    assert info.value.__cause__ is not None
