"""Reliability: every mistake answered at once in one sentence, every write failure handled, no output left half-done.

One table of bad inputs and faults (``CASES``) across the causes of issue 13,
through the CLI (exit code 2, one line on stderr, no traceback) and the API
(the package's error class), each with the message fragment it must show and
the output paths that must not exist afterwards. Faults a test cannot cause
honestly without root (a full disk, a read-only file system) are made by
patching the lowest writer to raise the ``OSError`` the kernel would raise.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import deepforest_lite as dfl
from deepforest_lite.cli import main

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny models run fastest on one thread


# --------------------------------------------------------------------------- the world the cases run in


class Models:
    """The model and broken-checkpoint files the cases only read, written once per module (``models``)."""

    def __init__(self, root: Path, detector: Callable[..., Any]) -> None:
        from safetensors.torch import save_file

        det = detector(["Tree"], seed=1)
        self.model = str(det.save(root / "model.pt"))
        self.plain = root / "plain.pt"  # DeepForest's NEON.pt style: weights only, no label names
        torch.save(det.model.state_dict(), self.plain)
        bad = root / "bad"
        bad.mkdir()
        (bad / "text.pt").write_text("hello world\n")
        torch.save({"a": torch.zeros(2)}, bad / "zip.safetensors")
        save_file({"a": torch.zeros(2)}, str(bad / "notjson.safetensors"), metadata={"deepforest_lite": "{not json"})
        save_file({"a": torch.zeros(2)}, str(bad / "nolabels.safetensors"),
                  metadata={"deepforest_lite": json.dumps({"format_version": 1, "model": {}})})
        (bad / "empty.pt").write_bytes(b"")
        (bad / "trunc.safetensors").write_bytes((bad / "nolabels.safetensors").read_bytes()[:30])
        torch.save({"w": torch.zeros(1), "obj": _Opaque()}, bad / "pickle.pt")
        hf = bad / "hf"
        hf.mkdir()
        save_file({k: v.contiguous() for k, v in det.model.state_dict().items()}, str(hf / "model.safetensors"))
        (hf / "config.json").write_text("{broken")
        self.bad = bad


class World:
    """Files every case may use: the module's read-only ``Models``, and inputs made afresh per test in ``root``."""

    def __init__(self, root: Path, make_raster: Callable[..., Any], models: Models) -> None:
        self.root = root
        self.raster = str(make_raster("ortho.tif", width=96, height=64, boxes=((10, 10, 30, 30),)).path)
        self.afile = root / "afile.txt"
        self.afile.write_text("not a folder")
        self.folder = root / "existing"
        self.folder.mkdir()
        self.model = models.model
        self.plain = models.plain
        self.bad = models.bad
        self.truth = root / "truth.csv"
        self.truth.write_text("image_path,xmin,ymin,xmax,ymax,label\northo.tif,10,10,30,30,Tree\n")
        self.preds = root / "preds.csv"
        self.preds.write_text("image_path,xmin,ymin,xmax,ymax,label,score\northo.tif,10,10,30,30,Tree,0.9\n")
        self.train = root / "train.csv"
        self.train.write_text("image_path,xmin,ymin,xmax,ymax,label\northo.tif,10,10,30,30,Tree\n")

    def p(self, name: str) -> str:
        return str(self.root / name)

    def predictions(self, row: str) -> str:
        """A predictions CSV with one given data row (image ortho.tif, label Tree)."""
        path = self.root / "bad_preds.csv"
        path.write_text(f"image_path,xmin,ymin,xmax,ymax,label,score\n{row}\n")
        return str(path)


class _Opaque:
    """A Python object a weights-only load must refuse to unpickle."""


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_detector) -> Models:
    return Models(tmp_path_factory.mktemp("models"), tiny_detector)


@pytest.fixture
def world(tmp_path, make_raster, models) -> World:
    return World(tmp_path, make_raster, models)


def _refuse_probe(code: int) -> Callable[[pytest.MonkeyPatch], None]:
    """Patch the destination probe as a read-only file system (EROFS) or a forbidden folder (EACCES) answers."""

    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        original = tempfile.mkstemp

        def mkstemp(*args: Any, **kwargs: Any) -> Any:
            if str(kwargs.get("prefix", "")).startswith(".deepforest-lite-probe"):
                raise OSError(code, os.strerror(code))
            return original(*args, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)

    return patch


def _fail_writer(target: str, exc: BaseException) -> Callable[[pytest.MonkeyPatch], None]:
    """Patch ``module.attr`` (``target``) to write a few bytes, then raise ``exc`` (a disk filling up mid-write)."""

    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        def broken(*args: Any, **kwargs: Any) -> None:
            for arg in args:
                if isinstance(arg, (str, os.PathLike)) and ".tmp" in os.fspath(arg):
                    Path(arg).write_bytes(b"half")  # a partial file the writer must remove
                    break
            raise exc

        monkeypatch.setattr(target, broken)

    return patch


def _no_tensorboard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("deepforest_lite.hardware._module_available", lambda name: False)


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


# --------------------------------------------------------------------------- the table


@dataclass
class Case:
    """One bad input or fault.

    ``run`` returns CLI arguments (a list: exit code 2 expected) or calls the
    API itself (returns ``None``: ``error`` expected). ``absent`` names files
    (relative to the world's root) that must not exist afterwards.
    """

    id: str
    run: Callable[[World], list[str] | None]
    fragment: str
    error: type[BaseException] | None = None
    absent: tuple[str, ...] = ()
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    marks: tuple[Any, ...] = field(default_factory=tuple)


def predict(w: World, *extra: str) -> list[str]:
    return ["predict", w.raster, "--model", w.model, "--patch-size", "64", "--quiet", *extra]


def train(w: World, *extra: str) -> list[str]:
    return ["train", "--train", str(w.train), "--quiet", *extra]


def evaluate(w: World, *extra: str, preds: str | None = None) -> list[str]:
    return ["evaluate", preds or str(w.preds), str(w.truth), *extra]


def split(w: World, *extra: str) -> list[str]:
    return ["split", w.raster, str(w.truth), *extra]


def api(func: Callable[[World], Any]) -> Callable[[World], None]:
    def call(w: World) -> None:
        func(w)

    return call


CASES: list[Case] = [
    # 1. destinations checked before the work ---------------------------------------------------
    Case("predict-output-under-a-file", lambda w: predict(w, "--output", f"{w.afile}/x.gpkg"), "which is a file, not a folder"),
    Case("predict-output-is-a-folder", lambda w: predict(w, "--output", str(w.folder)), "is a folder"),
    Case("predict-output-unknown-extension", lambda w: predict(w, "--output", w.p("x.txt")), "unknown extension", absent=("x.txt",)),
    Case("predict-output-dir-is-a-file", lambda w: predict(w, "--output-dir", str(w.afile)), "is a file"),
    Case("predict-output-dir-under-a-file", lambda w: predict(w, "--output-dir", f"{w.afile}/out"), "which is a file, not a folder"),
    Case("predict-plot-under-a-file", lambda w: predict(w, "--output", w.p("x.csv"), "--plot", f"{w.afile}/p.png"), "which is a file", absent=("x.csv",)),
    Case("predict-plot-dir-is-a-file", lambda w: predict(w, "--output", w.p("x.csv"), "--plot", str(w.afile)), "is a file", absent=("x.csv",)),
    Case("predict-output-read-only", lambda w: predict(w, "--output", w.p("ro/x.gpkg")), "the file system is read-only", absent=("ro",), patch=_refuse_probe(errno.EROFS)),
    Case("predict-output-dir-no-permission", lambda w: predict(w, "--output-dir", w.p("out")), "permission denied", absent=("out",), patch=_refuse_probe(errno.EACCES)),
    Case("train-output-under-a-file", lambda w: train(w, "--output", f"{w.afile}/m.pt"), "which is a file, not a folder"),
    Case("train-output-is-a-folder", lambda w: train(w, "--output", str(w.folder)), "is a folder"),
    Case("train-output-unknown-extension", lambda w: train(w, "--output", w.p("m.txt")), "unknown extension", absent=("m.txt",)),
    Case("train-output-dir-is-a-file", lambda w: train(w, "--output", w.p("m.pt"), "--output-dir", str(w.afile)), "is a file", absent=("m.pt",)),
    Case("train-output-read-only", lambda w: train(w, "--output", w.p("ro/m.pt"), "--output-dir", w.p("run")), "read-only", absent=("ro", "run"), patch=_refuse_probe(errno.EROFS)),
    Case("evaluate-output-is-a-folder", lambda w: evaluate(w, "--output", str(w.folder)), "is a folder"),
    Case("evaluate-output-unknown-extension", lambda w: evaluate(w, "--output", w.p("m.txt")), "unknown extension", absent=("m.txt",)),
    Case("evaluate-output-under-a-file", lambda w: evaluate(w, "--output", f"{w.afile}/m.csv"), "which is a file, not a folder"),
    Case("evaluate-plot-dir-is-a-file", lambda w: evaluate(w, "--plot-dir", str(w.afile)), "is a file"),
    Case("evaluate-plot-dir-read-only", lambda w: evaluate(w, "--plot-dir", w.p("plots")), "read-only", absent=("plots",), patch=_refuse_probe(errno.EROFS)),
    Case("split-out-dir-is-a-file", lambda w: split(w, "--out-dir", str(w.afile)), "is a file"),
    Case("split-out-dir-under-a-file", lambda w: split(w, "--out-dir", f"{w.afile}/tiles"), "which is a file, not a folder"),
    Case("split-out-dir-no-permission", lambda w: split(w, "--out-dir", w.p("tiles")), "permission denied", absent=("tiles",), patch=_refuse_probe(errno.EACCES)),
    Case("api-split-out-dir-read-only", api(lambda w: dfl.split_raster(w.raster, w.truth, 32, out_dir=w.p("tiles"), progress=False)), "read-only", error=dfl.WriteError, absent=("tiles",), patch=_refuse_probe(errno.EROFS)),
    # 2. every OSError at write time: one line, a package error, no partial file ------------------
    Case("predict-gpkg-disk-full-oserror", lambda w: predict(w, "--output", w.p("x.gpkg")), "the disk is full", absent=("x.gpkg",), patch=_fail_writer("geopandas.GeoDataFrame.to_file", _disk_full())),
    Case("predict-gpkg-disk-full-sqlite", lambda w: predict(w, "--output", w.p("x.gpkg")), "the disk is full", absent=("x.gpkg",),
         patch=_fail_writer("geopandas.GeoDataFrame.to_file", RuntimeError("sqlite3_exec(INSERT INTO gpkg_contents " + "x" * 5000 + ") failed: database or disk is full"))),
    Case("predict-csv-read-only-at-write", lambda w: predict(w, "--output", w.p("x.csv")), "the file system is read-only", absent=("x.csv",), patch=_fail_writer("pandas.DataFrame.to_csv", OSError(errno.EROFS, "Read-only file system"))),
    Case("predict-output-dir-disk-full", lambda w: predict(w, "--output-dir", w.p("out"), "--format", "csv"), "the disk is full", absent=("out/ortho.csv",), patch=_fail_writer("pandas.DataFrame.to_csv", _disk_full())),
    Case("predict-plot-disk-full", lambda w: predict(w, "--output", w.p("x.csv"), "--plot", w.p("p.png")), "the disk is full", absent=("p.png",), patch=_fail_writer("PIL.Image.Image.save", _disk_full())),
    Case("evaluate-output-disk-full", lambda w: evaluate(w, "--output", w.p("m.csv")), "the disk is full", absent=("m.csv",), patch=_fail_writer("pandas.DataFrame.to_csv", _disk_full())),
    Case("split-tile-disk-full", lambda w: split(w, "--out-dir", w.p("tiles")), "the disk is full", absent=("tiles/ortho_0_0.tif", "tiles/ortho.csv"), patch=_fail_writer("deepforest_lite.tilefiles.write_geotiff", _disk_full())),
    Case("api-write-boxes-disk-full", api(lambda w: dfl.write_boxes(dfl.read_annotations(w.truth), w.p("b.csv"))), "the disk is full", error=dfl.WriteError, absent=("b.csv",), patch=_fail_writer("pandas.DataFrame.to_csv", _disk_full())),
    Case("api-write-boxes-onto-a-folder", api(lambda w: dfl.write_boxes(dfl.read_annotations(w.truth), w.folder)), "it is a folder", error=dfl.WriteError),
    Case("api-save-disk-full", api(lambda w: dfl.load_model(w.model).save(w.p("saved.pt"))), "the disk is full", error=dfl.WriteError, absent=("saved.pt",), patch=_fail_writer("safetensors.torch.save_file", _disk_full())),
    Case("api-write-annotations-read-only", api(lambda w: dfl.write_annotations(dfl.read_annotations(w.truth), w.p("a.csv"))), "read-only", error=dfl.WriteError, absent=("a.csv",), patch=_fail_writer("pandas.DataFrame.to_csv", OSError(errno.EROFS, "Read-only file system"))),
    # 3. fast answers: paths checked before torch; path-like model names never go to the hub ------
    Case("predict-missing-raster", lambda w: ["predict", w.p("nothere.tif"), "--output", w.p("x.gpkg")], "does not exist", absent=("x.gpkg",)),
    Case("predict-model-path-missing", lambda w: predict(w, "--output", w.p("x.gpkg"), "--model", "ck/nothere.pt"), "no such file", absent=("x.gpkg",)),
    Case("predict-model-file-missing", lambda w: predict(w, "--output", w.p("x.gpkg"), "--model", "nothere.safetensors"), "no such file", absent=("x.gpkg",)),
    Case("train-from-path-missing", lambda w: train(w, "--output", w.p("m.pt"), "--from", "ck/nothere.pt"), "no such file", absent=("m.pt",)),
    Case("train-missing-annotations", lambda w: ["train", "--train", w.p("nothere.csv"), "--output", w.p("m.pt")], "does not exist", absent=("m.pt",)),
    Case("train-missing-backbone-weights", lambda w: train(w, "--output", w.p("m.pt"), "--backbone-weights", w.p("w.pth")), "does not exist", absent=("m.pt",)),
    Case("evaluate-missing-predictions", lambda w: evaluate(w, preds=w.p("nothere.csv")), "does not exist"),
    Case("split-missing-raster", lambda w: ["split", w.p("nothere.tif"), "--out-dir", w.p("tiles")], "does not exist", absent=("tiles",)),
    Case("api-load-model-path-missing", api(lambda w: dfl.load_model("ck/nothere.pt")), "No such file", error=dfl.CheckpointError),
    # 4. corrupt checkpoints: one CheckpointError line --------------------------------------------
    Case("predict-text-renamed-pt", lambda w: predict(w, "--output", w.p("x.csv"), "--model", str(w.bad / "text.pt")), "Cannot read", absent=("x.csv",)),
    Case("predict-torch-zip-renamed-safetensors", lambda w: predict(w, "--output", w.p("x.csv"), "--model", str(w.bad / "zip.safetensors")), "not a safetensors file", absent=("x.csv",)),
    Case("predict-metadata-not-json", lambda w: predict(w, "--output", w.p("x.csv"), "--model", str(w.bad / "notjson.safetensors")), "is not valid JSON", absent=("x.csv",)),
    Case("predict-metadata-without-labels", lambda w: predict(w, "--output", w.p("x.csv"), "--model", str(w.bad / "nolabels.safetensors")), "lacks or mangles ['labels']", absent=("x.csv",)),
    Case("predict-broken-hf-config", lambda w: predict(w, "--output", w.p("x.csv"), "--model", str(w.bad / "hf")), "config.json' is not valid JSON", absent=("x.csv",)),
    Case("predict-needs-full-unpickling", lambda w: predict(w, "--output", w.p("x.csv"), "--model", str(w.bad / "pickle.pt")), "unpickling can run arbitrary code", absent=("x.csv",)),
    Case("predict-empty-pt", lambda w: predict(w, "--output", w.p("x.csv"), "--model", str(w.bad / "empty.pt")), "Cannot read", absent=("x.csv",)),
    Case("predict-truncated-safetensors", lambda w: predict(w, "--output", w.p("x.csv"), "--model", str(w.bad / "trunc.safetensors")), "Cannot read", absent=("x.csv",)),
    Case("api-text-renamed-pt", api(lambda w: dfl.load_model(w.bad / "text.pt")), "Cannot read", error=dfl.CheckpointError),
    Case("api-torch-zip-renamed-safetensors", api(lambda w: dfl.load_model(w.bad / "zip.safetensors")), "rename it to .pt", error=dfl.CheckpointError),
    Case("api-metadata-not-json", api(lambda w: dfl.load_model(w.bad / "notjson.safetensors")), "not valid JSON", error=dfl.CheckpointError),
    Case("api-broken-hf-config", api(lambda w: dfl.load_model(w.bad / "hf")), "not valid JSON", error=dfl.CheckpointError),
    Case("api-needs-full-unpickling", api(lambda w: dfl.load_model(w.bad / "pickle.pt")), "_Opaque, which only full unpickling could restore", error=dfl.UnsafeCheckpointError),
    # 5. devices and training options ----------------------------------------------------------
    Case("predict-device-mps", lambda w: predict(w, "--output", w.p("x.csv"), "--device", "mps"), "is not available here", absent=("x.csv",)),
    Case("predict-device-meta", lambda w: predict(w, "--output", w.p("x.csv"), "--device", "meta"), "is not a device", absent=("x.csv",)),
    Case("predict-device-unknown", lambda w: predict(w, "--output", w.p("x.csv"), "--device", "gpu7"), "is not a device", absent=("x.csv",)),
    Case("api-detector-device-meta", api(lambda w: dfl.load_model(w.model, device="meta")), "cannot run the model", error=dfl.InvalidInputError),
    Case("train-accelerator-gpu-without-gpu", lambda w: train(w, "--output", w.p("m.pt"), "--accelerator", "gpu"), "No supported gpu backend found", absent=("m.pt",)),
    Case("train-precision-bogus", lambda w: train(w, "--output", w.p("m.pt"), "--precision", "bogus"), "is not a precision Lightning knows", absent=("m.pt",)),
    Case("train-logger-tensorboard-missing", lambda w: train(w, "--output", w.p("m.pt"), "--logger", "tensorboard"), "needs the tensorboard package", absent=("m.pt",), patch=_no_tensorboard),
    Case("train-devices-not-ids", lambda w: train(w, "--output", w.p("m.pt"), "--devices", "a,b"), "is not a number or a list of device ids", absent=("m.pt",)),
    Case("train-strategy-unknown", lambda w: train(w, "--output", w.p("m.pt"), "--strategy", "nope"), "invalid strategy name", absent=("m.pt",)),
    Case("api-fit-precision-bogus", api(lambda w: dfl.load_model(w.model).fit(w.train, output_dir=w.p("run"), precision="bogus")), "Precision 'bogus' is invalid", error=dfl.InvalidInputError, absent=("run",)),
    Case("api-fit-accelerator-gpu", api(lambda w: dfl.load_model(w.model).fit(w.train, output_dir=w.p("run"), accelerator="gpu")), "No supported gpu backend", error=dfl.InvalidInputError, absent=("run",)),
    Case("api-fit-logger-tensorboard-missing", api(lambda w: dfl.load_model(w.model).fit(w.train, output_dir=w.p("run"), logger="tensorboard")), "pip install tensorboard", error=dfl.InvalidInputError, absent=("run",), patch=_no_tensorboard),
    # 6. options that were ignored or missing ---------------------------------------------------
    Case("predict-plain-state-dict-without-labels", lambda w: predict(w, "--output", w.p("x.csv"), "--model", str(w.plain)), "stores no label names", absent=("x.csv",)),
    Case("predict-labels-count-mismatch", lambda w: predict(w, "--output", w.p("x.csv"), "--model", str(w.plain), "--labels", "Tree,Bird"), "predicts 1 class(es) but 2 label(s)", absent=("x.csv",)),
    Case("predict-labels-differ-from-stored", lambda w: predict(w, "--output", w.p("x.csv"), "--labels", "Bird"), "was trained for the labels ['Tree']", absent=("x.csv",)),
    Case("train-from-plain-without-labels", lambda w: train(w, "--output", w.p("m.pt"), "--output-dir", w.p("run"), "--from", str(w.plain)), "name them with --labels", absent=("m.pt",)),
    Case("train-from-backbone-mismatch", lambda w: train(w, "--output", w.p("m.pt"), "--output-dir", w.p("run"), "--from", w.model, "--backbone", "resnet50"), "differs from the backbone", absent=("m.pt", "run")),
    Case("train-from-with-backbone-weights", lambda w: train(w, "--output", w.p("m.pt"), "--from", w.model, "--backbone-weights", w.model), "sets up a model built from scratch", absent=("m.pt",)),
    Case("api-detector-unknown-option", api(lambda w: dfl.Detector(["Tree"], backbone="resnet18", fpn_chanels=32)), "did you mean fpn_channels", error=dfl.ConfigError),
    Case("api-fit-unknown-option", api(lambda w: dfl.load_model(w.model).fit(w.train, output_dir=w.p("run"), learning_rate=0.1)), "that is DeepForest's name; here it is lr", error=dfl.ConfigError, absent=("run",)),
    # 7. evaluate checks its inputs -------------------------------------------------------------
    Case("evaluate-infinite-coordinate", lambda w: evaluate(w, preds=w.predictions("ortho.tif,10,10,inf,30,Tree,0.9")), "infinite coordinate (row 0"),
    Case("evaluate-zero-area-box", lambda w: evaluate(w, preds=w.predictions("ortho.tif,10,10,10,30,Tree,0.9")), "zero width or height (row 0"),
    Case("evaluate-inverted-box", lambda w: evaluate(w, preds=w.predictions("ortho.tif,30,10,10,30,Tree,0.9")), "xmax < xmin or ymax < ymin (row 0"),
    Case("evaluate-box-outside-the-image", lambda w: evaluate(w, preds=w.predictions("ortho.tif,-30,10,-10,30,Tree,0.9")), "wholly outside its image"),
    Case("evaluate-box-beyond-the-image", lambda w: evaluate(w, preds=w.predictions("ortho.tif,100,10,120,30,Tree,0.9")), "wholly outside its image 'ortho.tif' of 96 x 64 px (row 0"),
    Case("evaluate-non-numeric-score", lambda w: evaluate(w, preds=w.predictions("ortho.tif,10,10,30,30,Tree,a")), "score that is not a finite number (row 0: 'a')"),
    Case("api-map-non-numeric-score", api(lambda w: dfl.mean_average_precision(pd.read_csv(w.predictions("ortho.tif,10,10,30,30,Tree,a")), pd.read_csv(w.truth))), "not a finite number", error=dfl.InvalidInputError),
    Case("api-evaluate-infinite-truth", api(lambda w: dfl.evaluate_boxes(pd.read_csv(w.preds), pd.read_csv(w.predictions("ortho.tif,10,10,30,inf,Tree,")))), "infinite coordinate", error=dfl.InvalidInputError),
    Case("train-checkpoint-disk-full", lambda w: train(w, "--output", w.p("m.pt"), "--output-dir", w.p("run"), "--from", w.model, "--epochs", "1", "--batch-size", "1", "--augment", "none"),
         "the disk is full", absent=("m.pt", "run/last.safetensors"), patch=_fail_writer("safetensors.torch.save_file", _disk_full()), marks=(pytest.mark.slow,)),
    # 8. resume never continues the wrong run (runs needing a finished training run are in test_resume_*) --
    Case("train-resume-with-nothing-to-resume", lambda w: train(w, "--output", w.p("m.pt"), "--output-dir", w.p("empty"), "--resume", "--from", w.model), "Cannot resume", absent=("m.pt",)),
]


def _ids() -> list[Any]:
    return [pytest.param(case, id=case.id, marks=case.marks) for case in CASES]


def test_the_table_covers_at_least_sixty_cases():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", _ids())
def test_case(case: Case, world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(world.root)
    if case.patch is not None:
        case.patch(monkeypatch)
    argv = None
    if case.error is None:
        argv = case.run(world)
        assert isinstance(argv, list)
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, err
        assert "Traceback" not in err
        assert err.count("\n") == 1 and err.startswith("deepforest-lite"), err
        assert case.fragment in err, err
    else:
        with pytest.raises(case.error) as error_info:
            case.run(world)
        assert isinstance(error_info.value, dfl.DeepForestLiteError)
        assert case.fragment in str(error_info.value), str(error_info.value)
    for name in case.absent:
        assert not (world.root / name).exists(), name
    leftovers = [p for p in world.root.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [], leftovers  # no temporary file or folder left behind


# --------------------------------------------------------------------------- answered before torch is imported


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "nothere.tif", "--output", "x.gpkg"],
        ["predict", "{raster}", "--output", "x.gpkg", "--model", "ck/nothere.pt"],
        ["predict", "{raster}", "--output", "{afile}/x.gpkg"],
        ["predict", "{raster}", "--output", "x.gpkg", "--device", "meta"],
        ["train", "--train", "nothere.csv", "--output", "m.pt"],
        ["train", "--train", "{truth}", "--output", "m.pt", "--precision", "bogus"],
        ["evaluate", "nothere.csv", "{truth}"],
        ["split", "{raster}", "--out-dir", "{afile}"],
    ],
    ids=["raster", "model", "output", "device", "train-data", "precision", "evaluate", "split"],
)
def test_mistakes_are_answered_without_importing_torch(tmp_path, make_raster, argv):
    raster = make_raster("r.tif", width=64, height=64, boxes=())
    (tmp_path / "afile").write_text("x")
    (tmp_path / "truth.csv").write_text("image_path,xmin,ymin,xmax,ymax,label\nr.tif,1,1,9,9,Tree\n")
    values = {"raster": raster.path, "afile": tmp_path / "afile", "truth": tmp_path / "truth.csv"}
    argv = [a.format(**values) for a in argv]
    code = textwrap.dedent(
        f"""
        import sys
        from deepforest_lite.cli import main
        try:
            main({argv!r})
        except SystemExit as exc:
            print("exit", exc.code, "torch", "torch" in sys.modules)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, check=False,
                            timeout=300)
    assert result.stdout.strip() == "exit 2 torch False", result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


# --------------------------------------------------------------------------- plain state dicts with --labels


def test_predict_labels_name_the_classes_of_a_plain_state_dict(world, capsys):
    out = world.root / "plain.csv"
    assert main(predict(world, "--output", str(out), "--model", str(world.plain), "--labels", "Tree")) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:4]) == ["xmin", "ymin", "xmax", "ymax"]
    assert set(table["label"]) <= {"Tree"}


def test_train_from_a_plain_state_dict_with_labels(world, capsys):
    """--labels names a plain state dict's classes (one class here); another number of labels gets a new head."""
    common = ["--from", str(world.plain), "--epochs", "1", "--batch-size", "1", "--augment", "none"]
    assert main(train(world, "--output", world.p("one.pt"), "--output-dir", world.p("r1"), "--labels", "Tree", *common)) == 0
    assert dfl.load_model(world.p("one.pt")).labels == ("Tree",)
    assert main(train(world, "--output", world.p("two.pt"), "--output-dir", world.p("r2"), "--labels", "Tree,Bird", *common)) == 0
    two = dfl.load_model(world.p("two.pt"))
    assert two.labels == ("Tree", "Bird")
    assert two.model.head.classification_head.cls_logits.out_channels == 9 * 2  # 9 anchors x 2 classes


# --------------------------------------------------------------------------- predict --output-dir resume


def test_output_dir_redoes_empty_or_unreadable_outputs_and_removes_leftovers(world, capsys):
    out = world.root / "out"
    out.mkdir()
    (out / "ortho.gpkg").write_bytes(b"")  # a run killed before its rename never leaves this, but a copy can
    leftover_file = out / ".ortho.gpkg.abc123.tmp"
    leftover_file.write_bytes(b"half")
    leftover_dir = out / ".ortho.gpkg.def456.tmp"
    leftover_dir.mkdir()
    (leftover_dir / "ortho.gpkg").write_bytes(b"half")
    assert main(predict(world, "--output-dir", str(out))) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["index.csv", "ortho.gpkg"]  # leftovers removed; the catalogue written
    import geopandas as gpd

    assert gpd.read_file(out / "ortho.gpkg").crs is not None  # a real GeoPackage now
    (out / "ortho.gpkg").write_bytes(b"garbage")
    assert main(predict(world, "--output-dir", str(out))) == 0
    assert "wrote" in capsys.readouterr().out  # unreadable: predicted again
    assert main(predict(world, "--output-dir", str(out))) == 0
    assert "skipping" in capsys.readouterr().out  # complete: skipped


# --------------------------------------------------------------------------- resume never continues the wrong run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny finished CLI training run (1 epoch): its annotations, model and run folder."""
    from conftest import write_planted_images

    root = tmp_path_factory.mktemp("run")
    write_planted_images(root, n_images=2, size=64, per_image=2)
    torch.manual_seed(0)
    start = dfl.Detector(["Red", "Blue"], backbone="resnet18", fpn_channels=32, resize="scale", device="cpu")
    start.save(root / "start.pt")
    args = ["train", "--train", str(root / "train.csv"), "--from", str(root / "start.pt"), "--epochs", "1",
            "--batch-size", "2", "--lr", "0.0001", "--optimizer", "adamw", "--augment", "none", "--quiet",
            "--output", str(root / "m.pt"), "--output-dir", str(root / "run")]
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        assert main(args) == 0
    return root, args


def _copy_run(finished_run, tmp_path) -> list[str]:
    root, args = finished_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    return [str(run) if a == str(root / "run") else str(tmp_path / "m.pt") if a == str(root / "m.pt") else a
            for a in args]


def _one_line_failure(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_resume_second_run_into_a_run_folder_is_refused(finished_run, tmp_path, capsys):
    args = _copy_run(finished_run, tmp_path)
    before = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    err = _one_line_failure(capsys, args)
    assert "already holds a training run (checkpoints/" in err and "--resume" in err
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == before  # no last-v1.ckpt
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (["--lr", "0.01"], "other training settings (lr was 0.0001, now 0.01)"),
        (["--labels", "Blue,Red"], "other labels"),
        (["--batch-size", "1"], "other training settings (batch_size was 2, now 1)"),
        (["--epochs", "1"], "already finished 1 epoch(s)"),
    ],
    ids=["lr", "labels", "batch-size", "no-epochs-left"],
)
def test_resume_refuses_a_run_that_does_not_match(finished_run, tmp_path, capsys, change, fragment):
    args = _copy_run(finished_run, tmp_path)
    err = _one_line_failure(capsys, [*args, "--resume", "--epochs", "2", *change])
    assert fragment in err, err
    assert not (tmp_path / "m.pt").exists()


def test_resume_refuses_other_data(finished_run, tmp_path, capsys):
    args = _copy_run(finished_run, tmp_path)
    root, _ = finished_run
    table = pd.read_csv(root / "train.csv")
    table.loc[0, "xmax"] += 1
    other = root / "other.csv"
    table.to_csv(other, index=False)
    args = [str(other) if a == str(root / "train.csv") else a for a in args]
    err = _one_line_failure(capsys, [*args, "--resume", "--epochs", "2"])
    assert "other training data" in err


def test_resume_refuses_to_guess_between_several_runs(finished_run, tmp_path, capsys):
    args = _copy_run(finished_run, tmp_path)
    checkpoints = tmp_path / "run" / "checkpoints"
    shutil.copy(checkpoints / "last.ckpt", checkpoints / "last-v1.ckpt")  # what an older version left
    err = _one_line_failure(capsys, [*args, "--resume", "--epochs", "2"])
    assert "holds the last checkpoints of several runs (last-v1.ckpt, last.ckpt)" in err


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_resume_says_what_it_continues(finished_run, tmp_path, capsys):
    args = _copy_run(finished_run, tmp_path)
    assert main([*args, "--resume", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "epoch 2 of 2 (1 finished)" in out
    assert dfl.load_model(tmp_path / "m.pt").metadata["training"]["epochs_completed"] == 2
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("last*.ckpt")) == ["last.ckpt"]


def test_ctrl_c_during_training_says_how_to_resume(world, monkeypatch, capsys):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt("Training was interrupted")

    monkeypatch.setattr("deepforest_lite.detector.Detector.fit", interrupted)
    code = main(train(world, "--output", world.p("m.pt"), "--output-dir", world.p("run"), "--from", world.model))
    err = capsys.readouterr().err
    assert code == 130
    assert "interrupted" in err and "same command plus --resume" in err and "Traceback" not in err
    assert not (world.root / "m.pt").exists()
