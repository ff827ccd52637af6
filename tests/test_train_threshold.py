"""Validation picks the score threshold: scored at a low threshold, best pooled F1, stored with the model.

A model retrained for new labels never keeps the old model's threshold: with
validation data it gets the best-F1 one, without it DeepForest's 0.1 and a
warning. Validation figures cover every rank's images on several devices.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import lightning as L
import pandas as pd
import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

import deepforest_lite as dfl
from deepforest_lite.config import ModelConfig, TrainConfig
from deepforest_lite.dataset import TrainingDataset, collate
from deepforest_lite.labels import LabelMap
from deepforest_lite.train import NEW_HEAD_SCORE_THRESHOLD, VAL_SCORE_THRESHOLD, DetectorModule

FAST = {"epochs": 1, "batch_size": 2, "lr": 1e-4, "optimizer": "adamw", "augment": "none", "progress": False}


class _Oracle(nn.Module):
    """Stands in for the RetinaNet: each image's true boxes at score 0.04 plus one false box at 0.02.

    Keyed by the image's pixel sum, so it knows the truth of every image it is
    shown; it drops boxes below ``score_thresh`` as torchvision's RetinaNet does.
    """

    def __init__(self, truth: dict[float, torch.Tensor]) -> None:
        super().__init__()
        self.truth = truth
        self.score_thresh = 0.5
        self.detections_per_img = 300
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, images, targets=None):
        if self.training:
            zero = self.weight.sum()
            return {"classification": zero, "bbox_regression": zero}
        out = []
        for image in images:
            boxes = self.truth[round(float(image.sum()), 1)]
            false = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
            all_boxes = torch.cat([boxes, false])
            scores = torch.cat([torch.full((len(boxes),), 0.04), torch.tensor([0.02])])
            keep = scores >= self.score_thresh
            out.append({"boxes": all_boxes[keep], "scores": scores[keep],
                        "labels": torch.zeros(int(keep.sum()), dtype=torch.int64)})
        return out


def test_validation_scores_low_scores_and_picks_the_best_f1_threshold(planted_images, tmp_path):
    folder, table = planted_images(n_images=3, size=96)
    table = table.assign(label="Tree")
    label_map = LabelMap(["Tree"])
    dataset = TrainingDataset(table, folder, label_map)
    oracle = _Oracle({round(float(image.sum()), 1): target["boxes"] for image, target, _ in dataset})
    module = DetectorModule(oracle, label_map, ModelConfig(), TrainConfig())
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = trainer.validate(module, DataLoader(dataset, batch_size=2, collate_fn=collate), verbose=False)[0]
    # At the model's own 0.5 nothing would be found; scored from 0.01, the best F1 keeps the true boxes only.
    assert VAL_SCORE_THRESHOLD < 0.02
    assert 0.02 < metrics["val_score_threshold"] <= 0.04
    assert metrics["val_f1"] == pytest.approx(1.0)
    assert metrics["val_precision"] == pytest.approx(1.0) and metrics["val_recall"] == pytest.approx(1.0)
    assert metrics["val_box_precision"] == pytest.approx(1.0)
    assert metrics["val_truth_boxes"] == len(table)
    assert oracle.score_thresh == pytest.approx(metrics["val_score_threshold"])
    assert module.val_score_threshold == pytest.approx(metrics["val_score_threshold"])


def test_fit_stores_the_chosen_threshold_in_its_checkpoints(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=2, size=96)
    det = tiny_detector(["Red", "Blue"], score_threshold=0.9)
    result = det.fit(folder / "train.csv", folder / "train.csv", output_dir=tmp_path / "run", **FAST)
    chosen = result.metrics["val_score_threshold"]
    assert chosen != 0.9 or result.metrics["val_f1"] == 0  # a random model scores far below 0.9
    assert result.score_threshold == pytest.approx(dfl.load_model(result.best_model).score_threshold)
    assert dfl.load_model(result.last_model).score_threshold == pytest.approx(chosen)
    assert det.score_threshold == pytest.approx(chosen)


def test_new_labels_without_validation_get_deepforest_threshold(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=2, size=96)
    det = tiny_detector(["Tree"], score_threshold=0.3)
    with pytest.warns(UserWarning, match=r"score threshold is set to DeepForest's 0\.1 \(the old model's 0\.3"):
        result = det.fit(folder / "train.csv", output_dir=tmp_path / "run", labels=["Blue", "Red"], **FAST)
    assert NEW_HEAD_SCORE_THRESHOLD == 0.1
    assert det.score_threshold == pytest.approx(0.1) and result.score_threshold == pytest.approx(0.1)
    assert dfl.load_model(result.last_model).score_threshold == pytest.approx(0.1)


def test_same_labels_without_validation_keep_the_threshold(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=2, size=96)
    det = tiny_detector(["Red", "Blue"], score_threshold=0.3)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*score threshold.*")
        result = det.fit(folder / "train.csv", output_dir=tmp_path / "run", **FAST)
    assert det.score_threshold == pytest.approx(0.3) and result.score_threshold == pytest.approx(0.3)


def test_hparams_yaml_loads_with_safe_load(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=2, size=96)
    det = tiny_detector(["Red", "Blue"])
    result = det.fit(folder / "train.csv", output_dir=tmp_path / "run", **FAST)
    hparams = yaml.safe_load((result.log_dir / "hparams.yaml").read_text())
    assert hparams["labels"] == ["Red", "Blue"]
    assert hparams["model_config"]["anchor_sizes"] == list(det.config.anchor_sizes)
    assert hparams["train_config"]["epochs"] == 1


@pytest.mark.slow
def test_validation_on_two_processes_covers_every_image(tmp_path, planted_images):
    """Two CPU processes (DDP, gloo): the logged figures count every validation box once, not rank 0's share."""
    folder, table = planted_images(n_images=5, size=96)
    config = tmp_path / "tiny.yaml"
    config.write_text("model: {backbone: resnet18, fpn_channels: 32, resize: scale}\n")
    command = [
        sys.executable, "-m", "deepforest_lite.cli", "train", "--config", str(config),
        "--train", str(folder / "train.csv"), "--val", str(folder / "train.csv"), "--epochs", "1",
        "--batch-size", "1", "--output", str(tmp_path / "m.safetensors"), "--output-dir", str(tmp_path / "run"),
        "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    logs = pd.concat(pd.read_csv(p) for p in (tmp_path / "run" / "logs").rglob("metrics.csv"))
    counts = logs["val_truth_boxes"].dropna()
    assert len(counts) >= 1 and set(counts) == {float(len(table))}  # 5 images x 4 boxes, each once
    assert dfl.load_model(tmp_path / "m.safetensors").score_threshold == pytest.approx(
        logs["val_score_threshold"].dropna().iloc[-1])
