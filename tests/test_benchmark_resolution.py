"""benchmarks/resolution.py runs end to end on two GSDs and its figures are the package's own.

The full table is measured by hand (docs/predicting.md); this keeps the script working and honest,
and its two rows here reproduce that table's (read from the doc, so that the two cannot drift apart).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from conftest import doc_figures, doc_table

import deepforest_lite as dfl

REPO = Path(__file__).resolve().parent.parent


def test_resolution_benchmark_native_row_is_a_plain_evaluate(tmp_path):
    out_json, out_png, copies = tmp_path / "r.json", tmp_path / "r.png", tmp_path / "copies"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "resolution.py"), "--gsds", "0.1", "0.5",
         "--out-dir", str(copies), "--json", str(out_json), "--plot", str(out_png)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads(out_json.read_text()) == out
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    native, coarse = out["rows"]
    assert (native["gsd"], coarse["gsd"]) == (0.1, 0.5)

    # at the model's own GSD nothing is resampled: both rows equal a direct predict_tile + evaluate_boxes
    det = dfl.load_model(device="cpu")
    boxes = det.predict_tile(REPO / "sample_data" / "OSBS_029.tif", progress=False)
    direct = dfl.evaluate_boxes(boxes, dfl.read_annotations(REPO / "sample_data" / "OSBS_029.csv"), iou_threshold=0.4)
    for key in ("rescaled", "as_is"):
        row = native[key]
        assert row["rescaled"] is False and row["windows"] == 1
        assert row["predicted_boxes"] == direct["n_predictions"] == len(boxes)
        for figure in ("precision", "recall", "f1"):
            assert row[figure] == round(float(direct[figure]), 4), (key, figure)
    assert native["size_px"] == [400, 400]

    # the 0.5 m copy is a GeoTIFF of 80 px whose transform says 0.5 m, with all 61 boxes scaled by 1/5
    tile = copies / "gsd_0.5" / "OSBS_029_0_0.tif"
    with rasterio.open(tile) as src:
        assert (src.width, src.height) == (80, 80)
        assert (src.transform.a, -src.transform.e) == (0.5, 0.5)
    truth = dfl.read_annotations(copies / "gsd_0.5" / "OSBS_029.csv")
    original = dfl.read_annotations(REPO / "sample_data" / "OSBS_029.csv")
    assert len(truth) == len(original) == 61
    assert (truth["xmax"] - truth["xmin"]).sum() == pytest.approx(
        (original["xmax"] - original["xmin"]).sum() / 5, rel=1e-9)
    assert coarse["size_px"] == [80, 80] and coarse["written_gsd"] == 0.5
    assert coarse["rescaled"]["rescaled"] is True and coarse["as_is"]["rescaled"] is False

    # both rows as docs/predicting.md records them (its figures have 3 decimals)
    recorded = {doc_figures(r["GSD (m)"])[0]: r for r in doc_table("predicting.md", "GSD (m)")}
    for row in (native, coarse):
        doc = recorded[row["gsd"]]
        assert row["size_px"][0] == int(doc["size (px)"])
        assert [row["rescaled"]["windows"], row["as_is"]["windows"]] == doc_figures(doc["windows rescaled / as is"])
        for key, column in (("rescaled", "rescaled (default): P / R / F1"), ("as_is", "as is (--no-rescale): P / R / F1")):
            figures = [row[key][f] for f in ("precision", "recall", "f1")]
            assert figures == pytest.approx(doc_figures(doc[column]), abs=0.005), (row["gsd"], key)
