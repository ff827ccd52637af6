"""Training engine: checkpoints, resume, new labels, schedules, validation metrics."""

from __future__ import annotations

import lightning as L
import pytest
import torch

import deepforest_lite as dfl
from deepforest_lite.train import choose_labels

FAST = {"epochs": 1, "batch_size": 2, "lr": 1e-4, "optimizer": "adamw", "augment": "none", "progress": False}


def test_two_class_training_round_trip(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=2, size=96)
    det = tiny_detector(["Red", "Blue"])
    result = det.fit(folder / "train.csv", folder / "train.csv", output_dir=tmp_path / "run", **FAST)
    assert result.best_model == tmp_path / "run" / "best.safetensors" and result.best_model.is_file()
    assert result.last_model.is_file() and result.resume_checkpoint.is_file()
    assert result.epochs_completed == 1
    for name in ("val_loss", "val_box_precision", "val_box_recall", "val_precision", "val_recall", "val_map50"):
        assert name in result.metrics, name
    assert (result.log_dir / "metrics.csv").is_file()
    loaded = dfl.load_model(result.last_model)
    assert loaded.labels == ("Red", "Blue")
    assert loaded.config == det.config
    meta = loaded.metadata["training"]
    assert meta["train_images"] == 2 and meta["epochs_completed"] == 1 and meta["train_boxes"] == 8
    for key, value in det.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    loaded.score_threshold = 0.0
    predicted = loaded.predict_image(folder / "img0.png")
    assert set(predicted["label"]) <= {"Red", "Blue"} and len(predicted) > 0


def test_new_labels_rebuild_only_the_classification_head(tiny_detector):
    det = tiny_detector(["Tree"])
    before = {k: v.clone() for k, v in det.model.state_dict().items()}
    table = dfl.read_annotations(dfl.get_data("testfile_multi.csv"))
    new = choose_labels(det.model, det.label_map, None, table)
    assert new.names == ("Alive", "Dead")  # the data's labels, sorted
    after = det.model.state_dict()
    cls = "head.classification_head."
    for key, value in before.items():
        if key.startswith(cls):
            continue
        assert torch.equal(after[key], value), f"{key} changed"
    assert after[f"{cls}cls_logits.weight"].shape[0] == 9 * 2
    assert before[f"{cls}cls_logits.weight"].shape[0] == 9 * 1
    assert not torch.equal(after[f"{cls}conv.0.0.weight"], before[f"{cls}conv.0.0.weight"])


def test_same_labels_keep_every_weight(tiny_detector):
    det = tiny_detector(["Alive", "Dead"])
    before = {k: v.clone() for k, v in det.model.state_dict().items()}
    table = dfl.read_annotations(dfl.get_data("testfile_multi.csv"))
    assert choose_labels(det.model, det.label_map, None, table) is det.label_map
    assert choose_labels(det.model, det.label_map, ["Alive", "Dead"], table) == det.label_map
    for key, value in det.model.state_dict().items():
        assert torch.equal(before[key], value), key


def test_fit_with_new_labels_changes_the_detector(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=2, size=96)
    det = tiny_detector(["Tree"])
    result = det.fit(folder / "train.csv", output_dir=tmp_path / "run", labels=["Blue", "Red"], **FAST)
    assert det.labels == ("Blue", "Red") and result.label_map.names == ("Blue", "Red")
    assert result.best_model is None and result.model_path == result.last_model
    assert dfl.load_model(result.last_model).labels == ("Blue", "Red")
    with pytest.raises(dfl.LabelError, match=r"Label 'Red' is not in the label map.*\['Blue', 'Green'\]"):
        det.fit(folder / "train.csv", output_dir=tmp_path / "run2", labels=["Blue", "Green"], **FAST)


class _StopAtEpoch(L.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_where_it_stopped(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=2, size=96)
    options = {**FAST, "epochs": 3}
    det = tiny_detector(["Red", "Blue"])
    with pytest.raises(KeyboardInterrupt, match="resume=True"):
        det.fit(folder / "train.csv", output_dir=tmp_path / "run", callbacks=[_StopAtEpoch(1)], **options)
    interrupted = dfl.load_model(tmp_path / "run" / "last.safetensors")
    assert interrupted.metadata["training"]["epochs_completed"] == 1
    resumed = tiny_detector(["Red", "Blue"], seed=99)  # fresh weights: everything must come from the checkpoint
    result = resumed.fit(folder / "train.csv", output_dir=tmp_path / "run", resume=True, **options)
    assert result.epochs_completed == 3
    assert dfl.load_model(result.last_model).metadata["training"]["epochs_completed"] == 3
    with pytest.raises(dfl.InvalidInputError, match="Cannot resume"):
        resumed.fit(folder / "train.csv", output_dir=tmp_path / "elsewhere", resume=True, **options)


def _lrs(schedule: str, total: int = 20, warmup: int = 4) -> list[float]:
    from deepforest_lite.config import TrainConfig
    from deepforest_lite.train import _step_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = _step_scheduler(optimizer, TrainConfig(lr=0.1, lr_schedule=schedule, warmup_steps=warmup), total)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_learning_rate_schedules_by_name():
    constant = _lrs("constant")
    assert constant[0] == pytest.approx(0.001) and constant[4:] == [pytest.approx(0.1)] * 16  # warm-up, then flat
    assert constant[:5] == sorted(constant[:5])
    cosine = _lrs("cosine")
    assert max(cosine) == pytest.approx(0.1) and cosine[-1] < 0.01 and cosine[4:] == sorted(cosine[4:], reverse=True)
    step = _lrs("step", warmup=0)
    assert sorted(set(round(x, 6) for x in step), reverse=True) == [0.1, 0.01, 0.001]
    onecycle = _lrs("onecycle")
    assert onecycle[0] < 0.01 and max(onecycle) == pytest.approx(0.1, rel=0.05) and onecycle[-1] < 0.001


def test_plateau_schedule_trains(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=1, size=64, per_image=1)
    det = tiny_detector(["Red", "Blue"])
    result = det.fit(folder / "train.csv", output_dir=tmp_path / "p", **{**FAST, "epochs": 2, "lr_schedule": "plateau"})
    assert result.epochs_completed == 2 and "lr-AdamW" in result.metrics


def test_unknown_settings_are_refused(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=1, size=64, per_image=1)
    det = tiny_detector(["Red", "Blue"])
    with pytest.raises(dfl.InvalidInputError, match=r"Unknown lr_schedule 'exp'; choose one of \['constant'"):
        det.fit(folder / "train.csv", output_dir=tmp_path / "x", lr_schedule="exp", **FAST)
    with pytest.raises(dfl.ConfigError, match=r"Detector.fit\(\) has no keyword 'learning_rate'; that is DeepForest's name; here it is lr"):
        det.fit(folder / "train.csv", output_dir=tmp_path / "x", learning_rate=0.1)
    with pytest.raises(dfl.ImageReadError, match="set root_dir"):
        det.fit(folder / "train.csv", root_dir=tmp_path, output_dir=tmp_path / "x", **FAST)


def test_lightning_checkpoint_of_our_training_loads(tmp_path, tiny_detector, planted_images):
    folder, _ = planted_images(n_images=1, size=64, per_image=2)
    det = tiny_detector(["Red", "Blue"])
    result = det.fit(folder / "train.csv", output_dir=tmp_path / "run", **FAST)
    from_lightning = dfl.load_model(result.resume_checkpoint)
    assert from_lightning.labels == ("Red", "Blue") and from_lightning.config == det.config
    for key, value in det.model.state_dict().items():
        assert torch.equal(from_lightning.model.state_dict()[key], value), key


def test_new_head_keeps_group_norm(tiny_detector):
    det = tiny_detector(["Tree"], head_norm="group")
    table = dfl.read_annotations(dfl.get_data("testfile_multi.csv"))
    choose_labels(det.model, det.label_map, None, table)
    head = det.model.head.classification_head
    assert isinstance(head.conv[0][1], torch.nn.GroupNorm) and head.cls_logits.out_channels == 9 * 2
