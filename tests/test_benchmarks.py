"""The benchmark scripts run end to end on tiny inputs and print the figures docs/performance.md records.

They are measured by hand (figures in docs/); these tests only keep them working.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str, cwd: Path) -> dict:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # 5 minutes on 2 cores: the longest test of the suite
def test_predict_tile_benchmark_compares_bf16_with_fp32(tmp_path):
    out = _run("predict_tile.py", "--size", "800", "--cache-dir", str(tmp_path), "--workers", "0",
               "--raw-batches", "1", "--compare-bf16", cwd=tmp_path)
    assert out["size_px"] == [800, 800] and out["windows"] == 9  # 400 px windows, stride 380: 3 x 3
    assert out["seconds"] > 0 and out["raw_forward_windows_per_s"] > 0
    assert 0 < out["in_run_forward_share"] <= 1
    assert out["boxes"] > 0 and 0 <= out["bf16"]["fp32_boxes_matched"] <= out["boxes"]


def test_accuracy_benchmark_scores_the_bundled_model(tmp_path):
    out = _run("accuracy.py", "--annotations", str(REPO / "sample_data" / "OSBS_029.csv"), "--device", "cpu",
               "--output", str(tmp_path / "predictions.csv"), cwd=tmp_path)
    assert out["images"] == 1 and out["truth_boxes"] == 61
    assert out["predicted_boxes"] == sum(1 for _ in open(tmp_path / "predictions.csv")) - 1
    for key in ("box_precision", "box_recall", "precision", "recall", "f1", "map_50", "map"):
        assert out[key] is None or 0 <= out[key] <= 1, key


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_step_benchmark(tmp_path, precision):
    out = _run("train_step.py", "--backbone", "resnet18", "--fpn-channels", "32", "--head-norm", "group",
               "--batch-size", "2", "--patch-size", "96", "--steps", "1", "--warmup", "1",
               "--precision", precision, cwd=tmp_path)
    assert out["precision"] == precision and out["head_norm"] == "group"
    assert out["seconds_per_step"] > 0 and out["images_per_second"] > 0


def test_engine_settings_benchmark_checks_boxes_against_torch(tmp_path):
    out = _run("engine_settings.py", "--model", "bundled", "--size", "800", "--windows", "4", "--rounds", "1",
               "--settings", "torch-b1,torch-fold-b1,ort-b2", "--cache-dir", str(tmp_path), cwd=tmp_path)
    assert out["windows"] == 4 and out["rounds"] == 1 and out["reference_boxes"] > 0
    assert list(out["settings"]) == ["torch-b1", "torch-fold-b1", "ort-b2"]
    for name, setting in out["settings"].items():
        assert len(setting["windows_per_s"]) == 1 and setting["windows_per_s"][0] > 0, name
        # folding batch norm and onnxruntime keep torch's boxes
        assert setting["identical"] and setting["boxes"] == out["reference_boxes"], name
        assert setting["matched_fraction"] == 1.0, name
    assert out["settings"]["torch-b1"]["ratio_to_torch-b1"] == 1.0
