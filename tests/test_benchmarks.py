"""The benchmark scripts run end to end on small inputs and reproduce the figures the docs record.

Timings are measured by hand (docs/performance.md) and never asserted here. What is deterministic
(the bundled model and the sample images are fixed) is checked against the figure the docs record,
read from the doc itself so that the two cannot drift apart: box counts, accuracy, box agreement.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import doc_figures, doc_table

REPO = Path(__file__).resolve().parent.parent
#: a doc's figures have 3 decimals; one box more or less moves them by more than 0.015
TOLERANCE = 0.005


def _run(script: str, *args: str, cwd: Path) -> dict:
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # half a minute or more on 2 cores: fp32 and bf16 runs
def test_predict_tile_benchmark_compares_bf16_with_fp32(tmp_path):
    # docs/performance.md's predict_tile tables were measured with an earlier bundled model, so the
    # box count is checked against the package's own predict_tile on the raster the benchmark built
    import deepforest_lite as dfl

    out = _run("predict_tile.py", "--size", "800", "--cache-dir", str(tmp_path), "--workers", "0",
               "--raw-batches", "1", "--compare-bf16", cwd=tmp_path)
    assert out["size_px"] == [800, 800] and out["windows"] == 9  # 400 px windows, stride 380: 3 x 3
    assert 0 < out["in_run_forward_share"] <= 1
    (raster,) = tmp_path.glob("*.tif")
    assert out["boxes"] == len(dfl.load_model(device="cpu").predict_tile(raster, progress=False)) > 0
    # bf16's rounding depends on the CPU's kernels; on a trained model it keeps nearly every box
    assert out["bf16"]["fp32_boxes_matched_fraction"] >= 0.95


def test_accuracy_benchmark_reproduces_the_recorded_osbs_figures(tmp_path):
    (row,) = [r for r in doc_table("models.md", "evaluation data") if r["evaluation data"].startswith("OSBS_029")]
    out = _run("accuracy.py", "--annotations", str(REPO / "sample_data" / "OSBS_029.csv"), "--device", "cpu",
               "--output", str(tmp_path / "predictions.csv"), cwd=tmp_path)
    assert out["images"] == 1
    assert out["truth_boxes"] == int(row["true boxes"]) and out["predicted_boxes"] == int(row["predicted"])
    assert out["predicted_boxes"] == sum(1 for _ in open(tmp_path / "predictions.csv")) - 1
    recorded = dict(zip(("precision", "recall", "f1"), doc_figures(row["pooled P / R / F1"])))
    recorded.update(box_precision=float(row["box precision"]), box_recall=float(row["box recall"]),
                    map_50=float(row["mAP@0.5"]))
    for key, value in recorded.items():
        assert out[key] == pytest.approx(value, abs=TOLERANCE), key
    for key in ("map", "best_f1"):
        assert 0 <= out[key] <= 1, key


@pytest.mark.slow  # 15-25 s each, mostly start-up; it checks only that the script runs
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_step_benchmark(tmp_path, precision):
    out = _run("train_step.py", "--backbone", "resnet18", "--fpn-channels", "32", "--head-norm", "group",
               "--batch-size", "2", "--patch-size", "96", "--steps", "1", "--warmup", "1",
               "--precision", precision, cwd=tmp_path)
    assert out["precision"] == precision and out["head_norm"] == "group"
    assert out["seconds_per_step"] > 0 and out["images_per_second"] > 0


def _recorded_engine_settings_boxes() -> dict[str, tuple[int, int]]:
    """docs/performance.md's reference box counts of engine_settings.py: model -> (boxes, windows)."""
    text = " ".join((REPO / "docs" / "performance.md").read_text(encoding="utf-8").split())
    found = re.search(r"\(([\d,]+) boxes on the bundled model's (\d+) windows, ([\d,]+) on the ResNet-50's (\d+)\)", text)
    assert found, "docs/performance.md no longer states the engine settings' reference box counts"
    boxes, windows, r50_boxes, r50_windows = (int(g.replace(",", "")) for g in found.groups())
    return {"bundled": (boxes, windows), "deepforest-r50": (r50_boxes, r50_windows)}


def _check_settings(out: dict, settings: list[str], boxes: int) -> None:
    assert out["reference_boxes"] == boxes
    assert list(out["settings"]) == settings
    for name, setting in out["settings"].items():
        assert len(setting["windows_per_s"]) == out["rounds"], name
        # folding batch norm, batching, onnxruntime and OpenVINO at fp32 keep torch's boxes, box for box
        assert setting["identical"] and setting["boxes"] == boxes, name
        assert setting["matched_fraction"] == 1.0, name


def test_engine_settings_benchmark_checks_boxes_against_torch(tmp_path):
    boxes, windows = _recorded_engine_settings_boxes()["bundled"]  # run A: 400 px windows of the 2,000 px raster
    settings = ["torch-b1", "torch-fold-b1", "ort-b2", "openvino-f32-b1"]
    out = _run("engine_settings.py", "--model", "bundled", "--windows", str(windows), "--rounds", "1",
               "--settings", ",".join(settings), "--cache-dir", str(tmp_path), cwd=tmp_path)
    assert out["windows"] == windows and out["rounds"] == 1 and out["patch_size"] == 400
    _check_settings(out, settings, boxes)


@pytest.mark.slow  # a ResNet-50 on four 800 px windows, three times
def test_engine_settings_benchmark_deepforest_r50_boxes(tmp_path):
    boxes, windows = _recorded_engine_settings_boxes()["deepforest-r50"]
    settings = ["torch-b4", "torch-fold-b1"]
    out = _run("engine_settings.py", "--model", "deepforest-r50", "--patch-size", "800", "--windows", str(windows),
               "--rounds", "0", "--settings", ",".join(settings), "--cache-dir", str(tmp_path), cwd=tmp_path)
    assert out["windows"] == windows and out["rounds"] == 0
    _check_settings(out, settings, boxes)


def test_nms_sweep_scores_the_model_at_each_nms_threshold(tmp_path):
    # three "held-out sites", each one copy of OSBS_029: every row must be the bundled model's own
    # boxes at that NMS IoU and the row's chosen score threshold
    import shutil

    import pandas as pd

    import deepforest_lite as dfl

    truth = dfl.read_annotations(REPO / "sample_data" / "OSBS_029.csv")
    tables = []
    for site in ("MLBS", "NIWO", "CLBJ"):
        image = tmp_path / f"{site}_001.tif"
        shutil.copy(REPO / "sample_data" / "OSBS_029.tif", image)
        table = truth.assign(image_path=str(image))
        table.to_csv(tmp_path / f"holdout_{site}.csv", index=False)
        tables.append(table)
    pd.concat(tables).to_csv(tmp_path / "holdout.csv", index=False)

    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "nms_sweep.py"), "--work-dir", str(tmp_path),
                             "--nms", "0.05,0.5"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    *rows, best = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert [r["nms_threshold"] for r in rows] == [0.05, 0.5]
    det = dfl.load_model(device="cpu")
    for row in rows:
        det.nms_threshold, det.score_threshold = row["nms_threshold"], row["threshold"]
        boxes = det.predict_tile(REPO / "sample_data" / "OSBS_029.tif", progress=False)
        assert row["predicted"] == 3 * len(boxes) > 0
        scores = dfl.evaluate_boxes(boxes, truth, iou_threshold=0.4)
        for entry in ("holdout", "MLBS", "NIWO", "CLBJ", "OSBS_029"):
            assert row[entry]["f1"] == pytest.approx(float(scores.f1), abs=0.0006), entry
    assert rows[0]["predicted"] != rows[1]["predicted"]  # the NMS threshold was applied
    top = max(rows, key=lambda r: r["holdout"]["f1"])
    assert best == {"best_nms_threshold": top["nms_threshold"], "threshold": top["threshold"],
                    "holdout_f1": top["holdout"]["f1"]}


@pytest.mark.parametrize("bad", ["0", "0.1,x", "1.5"])
def test_nms_sweep_refuses_bad_values_in_one_line(tmp_path, bad):
    (tmp_path / "holdout.csv").write_text("image_path,xmin,ymin,xmax,ymax,label\n")
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "nms_sweep.py"), "--work-dir", str(tmp_path),
                             "--nms", bad], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "--nms" in result.stderr and "Traceback" not in result.stderr
