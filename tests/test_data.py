"""Bundled sample data: lookup, errors, and that a built wheel ships it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import deepforest_lite as dfl
from deepforest_lite.data import list_data

REPO = Path(__file__).resolve().parent.parent


def test_get_data_returns_existing_files():
    path = Path(dfl.get_data("OSBS_029.tif"))
    assert path.is_file() and path.stat().st_size > 100_000
    assert "OSBS_029.csv" in list_data() and "README.md" not in list_data()


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(dfl.DataNotFoundError, match=r"No sample data file named 'nope.tif'; available files are \[.*'OSBS_029.tif'"):
        dfl.get_data("nope.tif")
    with pytest.raises(FileNotFoundError):
        dfl.get_data("../setup.py")


def test_sample_data_stays_small():
    total = sum(p.stat().st_size for p in (REPO / "sample_data").iterdir())
    assert total < 10 * 2**20


@pytest.mark.slow
def test_wheel_ships_sample_data_and_models(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for sample in list_data():
        assert f"deepforest_lite/sample_data/{sample}" in names
