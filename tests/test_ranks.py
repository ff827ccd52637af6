"""Prediction on many processes (issue 12, item 4): work shared out by rank, files equal to a one-process run.

The pure parts (how rasters and windows are dealt out) are checked exactly
here; the processes themselves run as a user starts them: ``--accelerator cpu
--devices 2`` (Lightning's launcher, gloo), and in the slow tests under
``torchrun`` and as a SLURM step (two processes given SLURM's variables, as
``srun`` sets them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from deepforest_lite.cli import main
from deepforest_lite.ranks import Ranks, launched_as_secondary
from deepforest_lite.resume import CHECKPOINT_SUFFIX, rank_checkpoint_path

# --------------------------------------------------------------------------- sharing out


@pytest.mark.parametrize("n, world, unit", [(36, 2, 4), (12, 2, 4), (10, 3, 1), (5, 4, 2), (3, 4, 4), (0, 2, 4), (37, 3, 5)])
def test_blocks_cover_every_window_once_in_order_and_in_whole_batches(n, world, unit):
    blocks = [Ranks(rank, world).block(n, unit=unit) for rank in range(world)]
    assert [i for block in blocks for i in block] == list(range(n))  # contiguous, in rank order, nothing twice
    for block in blocks:
        assert block.start % unit == 0 or block.start == n  # a block starts where a batch of the whole grid starts
    sizes = [-(-len(block) // unit) for block in blocks]  # batches per rank
    assert max(sizes) - min(sizes) <= 1


def test_rasters_go_round_robin_and_every_one_once():
    items = [f"r{i}" for i in range(7)]
    shares = [Ranks(rank, 3).mine(items) for rank in range(3)]
    assert shares == [["r0", "r3", "r6"], ["r1", "r4"], ["r2", "r5"]]


def test_a_single_process_gathers_its_own_object_and_shares_nothing():
    ranks = Ranks.single("cpu")
    assert ranks.main and not ranks.shared
    assert ranks.gather({"a": 1}) == [{"a": 1}]
    assert ranks.mine([1, 2, 3]) == [1, 2, 3] and ranks.block(5, unit=4) == range(5)


def test_rank_checkpoints_are_named_per_rank_and_world():
    path = "out/r0.csv" + CHECKPOINT_SUFFIX
    assert rank_checkpoint_path(path, 0, 1) == path
    assert rank_checkpoint_path(path, 1, 2) == "out/r0.csv.rank1-of-2" + CHECKPOINT_SUFFIX
    assert rank_checkpoint_path(path, 0, 2) != rank_checkpoint_path(path, 0, 3)


@pytest.mark.parametrize("env, secondary", [({}, False), ({"RANK": "0"}, False), ({"LOCAL_RANK": "1"}, True),
                                            ({"SLURM_PROCID": "3"}, True), ({"RANK": "0", "NODE_RANK": "1"}, True)])
def test_secondary_ranks_are_recognised_from_the_launchers_variables(monkeypatch, env, secondary):
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launched_as_secondary() is secondary


# --------------------------------------------------------------------------- refused before any work


@pytest.mark.parametrize("extra, fragment", [
    (["--device", "cpu", "--devices", "2"], "--device 'cpu' picks one device"),
    (["--devices", "two"], "--devices 'two' is not a number"),
    (["--accelerator", "tpu-v9"], "Lightning cannot run accelerator='tpu-v9'"),
])
def test_bad_process_settings_are_one_line(tmp_path, make_raster, extra, fragment, capsys):
    raster = make_raster("r.tif", width=64, height=64)
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(raster.path), "--output", str(tmp_path / "out.csv"), "--quiet", *extra])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.csv").exists()


# --------------------------------------------------------------------------- two processes, as users run them


@pytest.fixture
def survey(tmp_path, make_raster, tiny_detector):
    """A saved tiny model and three rasters of different sizes (2 to 12 windows of 64 px)."""
    model = tiny_detector(["Tree"], seed=3).save(tmp_path / "model.pt")
    rasters = [
        str(make_raster(f"r{i}.tif", width=w, height=h, origin=(400000.0 + 1000 * i, 3300000.0), seed=i).path)
        for i, (w, h) in enumerate([(200, 150), (100, 60), (300, 120)])
    ]
    # threshold 0: a random model's many low-scoring boxes make the merge across windows do real work
    options = ["--model", str(model), "--patch-size", "64", "--score-threshold", "0", "--quiet"]
    return rasters, options


def _cli(*args: str, launcher: tuple[str, ...] = (), env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [*launcher, "-m", "deepforest_lite.cli", *args] if launcher else [sys.executable, "-m", "deepforest_lite.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _catalogue(path: Path) -> pd.DataFrame:
    """The catalogue without what may differ between runs (seconds, the output folder)."""
    table = pd.read_csv(path).drop(columns=["seconds"])
    table["output"] = table["output"].map(os.path.basename)
    return table


def test_two_cpu_processes_write_the_files_of_one(tmp_path, survey):
    rasters, options = survey
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, extra in ((one, []), (two, ["--accelerator", "cpu", "--devices", "2"])):
        args = ["predict", *rasters, *options, "--output-dir", str(folder), "--format", "csv",
                "--merged", str(folder / "all.csv"), *extra]
        if extra:
            done = _cli(*args)  # Lightning's launcher starts rank 1 by running this command again
            assert done.stdout.count("wrote") == 3  # rank 0 speaks: its two rasters and the merged file
        else:
            assert main(args) == 0
    # three rasters on two ranks: round-robin, each rank writes its own files, rank 0 the catalogue and merged file
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir()) == ["all.csv", "index.csv", "r0.csv", "r1.csv", "r2.csv"]
    for name in ("r0.csv", "r1.csv", "r2.csv", "all.csv"):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    assert len(pd.read_csv(one / "all.csv")) > 10
    pd.testing.assert_frame_equal(_catalogue(two / "index.csv"), _catalogue(one / "index.csv"))

    # one raster, two ranks: its windows are shared in blocks of whole batches and merged once
    single_one, single_two = tmp_path / "single1.csv", tmp_path / "single2.csv"
    assert main(["predict", rasters[2], *options, "--batch-size", "2", "--output", str(single_one)]) == 0
    _cli("predict", rasters[2], *options, "--batch-size", "2", "--output", str(single_two),
         "--accelerator", "cpu", "--devices", "2", "--checkpoint-every", "0")
    assert single_two.read_bytes() == single_one.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(CHECKPOINT_SUFFIX)]  # every rank removed its own


@pytest.mark.slow
def test_torchrun_gives_the_files_of_one_process(tmp_path, survey):
    rasters, options = survey
    assert main(["predict", *rasters, *options, "--output", str(tmp_path / "one.csv")]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517"]
    _cli("predict", *rasters, *options, "--output", str(tmp_path / "two.csv"),
         "--accelerator", "cpu", "--devices", "2", launcher=tuple(torchrun))
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


@pytest.mark.slow
def test_a_slurm_step_of_two_tasks_gives_the_files_of_one_process(tmp_path, survey):
    """Two processes with the variables ``srun --ntasks-per-node=2`` sets; Lightning's SLURMEnvironment reads them."""
    rasters, options = survey
    assert main(["predict", *rasters, *options, "--output-dir", str(tmp_path / "one"), "--format", "csv"]) == 0
    command = [sys.executable, "-m", "deepforest_lite.cli", "predict", *rasters, *options,
               "--output-dir", str(tmp_path / "two"), "--format", "csv", "--accelerator", "cpu", "--devices", "2"]
    slurm = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NODEID": "0", "SLURM_JOB_NAME": "predict",
             "SLURM_JOB_ID": "4217", "SLURM_NODELIST": "localhost", "OMP_NUM_THREADS": "1"}
    tasks = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, **slurm, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)})
        for rank in range(2)
    ]
    for task in tasks:
        _, err = task.communicate(timeout=600)
        assert task.returncode == 0, err[-3000:]
    for name in ("r0.csv", "r1.csv", "r2.csv"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
