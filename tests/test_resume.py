"""Window checkpoints: an interrupted predict_tile resumes mid-raster to exactly the uninterrupted result."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import deepforest_lite.predict as predict_module
from deepforest_lite.config import PredictConfig
from deepforest_lite.resume import WindowCheckpoint

CONFIG = PredictConfig(patch_size=64, batch_size=2, device="cpu", engine="torch")  # 300 x 200 px: 5 x 4 windows


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture
def detector(boxy_detector):
    return boxy_detector()


class Stop(Exception):
    pass


@pytest.fixture
def forwards(monkeypatch):
    """Counts batches forwarded; ``forwards.stop_after = k`` raises on the (k+1)-th batch."""
    original = predict_module.run_model

    class Counter:
        calls = 0
        stop_after: int | None = None

    def counting(*args, **kwargs):
        if Counter.stop_after is not None and Counter.calls >= Counter.stop_after:
            raise Stop("killed")
        Counter.calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(predict_module, "run_model", counting)
    return Counter


def predict(detector, raster, config=CONFIG, **kwargs):
    return predict_module.predict_tile(detector.model, detector.label_map, raster, config, progress=False, **kwargs)


def test_interrupted_run_resumes_mid_raster_to_the_same_boxes(detector, make_raster, tmp_path, forwards) -> None:
    raster = make_raster("r.tif").path
    expected = predict(detector, raster)
    assert forwards.calls == 10 and len(expected) > 0 and expected.attrs["windows"] == 20
    ckpt = tmp_path / "r.partial.npz"
    for stop_after in (3, 7):
        forwards.calls, forwards.stop_after = 0, stop_after
        with pytest.raises(Stop):
            predict(detector, raster, checkpoint=ckpt, checkpoint_seconds=3600)  # saved on the way out
        assert ckpt.exists()
        with np.load(ckpt) as data:
            assert int(data["next"]) == 2 * stop_after  # windows of the finished batches
        forwards.calls, forwards.stop_after = 0, None
        resumed = predict(detector, raster, checkpoint=ckpt)
        assert forwards.calls == 10 - stop_after  # only the batches still to do
        assert resumed.attrs["resumed_windows"] == 2 * stop_after
        pd.testing.assert_frame_equal(pd.DataFrame(resumed), pd.DataFrame(expected))
        ckpt.unlink()
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_periodic_saves_survive_a_kill_without_exception(detector, make_raster, tmp_path, forwards, monkeypatch) -> None:
    """A SIGKILL gives no chance to save on the way out: the saves made every batch are what is left."""
    raster = make_raster("r.tif").path
    expected = predict(detector, raster)
    ckpt = tmp_path / "r.partial.npz"
    saved = []
    original_save = WindowCheckpoint.save

    def save_then_die(self, done, *args):
        original_save(self, done, *args)
        saved.append(done)
        if done == 8:
            raise SystemExit("killed")  # stands in for the kill; the checkpoint after batch 4 is on disk

    monkeypatch.setattr(WindowCheckpoint, "save", save_then_die)
    with pytest.raises(SystemExit):
        predict(detector, raster, checkpoint=ckpt, checkpoint_seconds=0)
    assert saved == [2, 4, 6, 8]
    monkeypatch.setattr(WindowCheckpoint, "save", original_save)
    forwards.calls = 0
    resumed = predict(detector, raster, checkpoint=ckpt, checkpoint_seconds=0)
    assert forwards.calls == 6
    pd.testing.assert_frame_equal(pd.DataFrame(resumed), pd.DataFrame(expected))


def test_a_foreign_checkpoint_is_never_used(detector, make_raster, tmp_path, forwards) -> None:
    raster = make_raster("r.tif").path
    other = make_raster("o.tif", seed=3).path
    ckpt = tmp_path / "r.partial.npz"
    forwards.stop_after = 5
    with pytest.raises(Stop):
        predict(detector, raster, checkpoint=ckpt)
    forwards.stop_after = None
    own = detector.model.score_thresh
    changes = {
        "other settings": dict(config=PredictConfig(patch_size=64, batch_size=2, device="cpu", engine="torch",
                                                    patch_overlap=0.1)),
        "other raster": dict(raster=other),
        "other model": dict(score=0.7),
    }
    for what, change in changes.items():
        before = ckpt.read_bytes()
        detector.model.score_thresh = change.get("score", own)
        forwards.calls = 0
        fresh = predict(detector, change.get("raster", raster), change.get("config", CONFIG), checkpoint=tmp_path / "x.npz")
        (tmp_path / "x.npz").unlink()
        forwards.calls = 0
        with_foreign = predict(detector, change.get("raster", raster), change.get("config", CONFIG), checkpoint=ckpt)
        assert with_foreign.attrs["resumed_windows"] == 0, what
        assert forwards.calls == fresh.attrs["windows"] // 2 + fresh.attrs["windows"] % 2, what
        pd.testing.assert_frame_equal(pd.DataFrame(with_foreign), pd.DataFrame(fresh))
        ckpt.write_bytes(before)
    ckpt.write_bytes(b"garbage")
    detector.model.score_thresh = own
    forwards.calls = 0
    assert predict(detector, raster, checkpoint=ckpt).attrs["resumed_windows"] == 0 and forwards.calls == 10
