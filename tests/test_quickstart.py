"""The README's quickstart command runs exactly as written, offline, and finds trees."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from PIL import Image

import deepforest_lite as dfl

REPO = Path(__file__).resolve().parent.parent


def _quickstart_command() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1]
    (command,) = re.findall(r"```bash\n(.*?)\n```", section, re.S)[:1]
    return command.strip()


def test_readme_quickstart_runs_as_written(tmp_path):
    command = _quickstart_command()
    assert command.startswith("deepforest-lite predict sample_data/OSBS_029.tif")
    (tmp_path / "sample_data").symlink_to(REPO / "sample_data")
    result = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    crowns = gpd.read_file(tmp_path / "trees.gpkg")
    with rasterio.open(dfl.get_data("OSBS_029.tif")) as src:
        assert crowns.crs == src.crs
        left, bottom, right, top = src.bounds
    assert len(crowns) >= 20  # OSBS_029 has 61 annotated crowns
    assert set(crowns["label"]) == {"Tree"}
    bounds = crowns.total_bounds
    assert left - 1 <= bounds[0] and bounds[2] <= right + 1 and bottom - 1 <= bounds[1] and bounds[3] <= top + 1
    picture = np.asarray(Image.open(tmp_path / "trees.png"))
    assert picture.shape[:2] == (400, 400)
