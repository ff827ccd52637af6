"""``deepforest-lite train``: options from the command line and YAML, new labels, resume, one-line errors."""

from __future__ import annotations

import shlex

import pytest

import deepforest_lite as dfl
from deepforest_lite.cli import main

TINY_MODEL = """model:
  backbone: resnet18
  fpn_channels: 32
  resize: scale
epochs: 1
batch_size: 2
lr: 0.0001
optimizer: adamw
augment: none
"""


def _run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return exit_info.value.code, capsys.readouterr().err


def test_train_from_a_config_file_writes_a_loadable_model(tmp_path, planted_images, capsys):
    folder, _ = planted_images(n_images=2, size=64, per_image=2)
    config = tmp_path / "run.yaml"
    config.write_text(TINY_MODEL + f"train: {folder / 'train.csv'}\n")
    out = tmp_path / "model.pt"
    code = main(["train", "--config", str(config), "--output", str(out), "--output-dir", str(tmp_path / "run"),
                 "--labels", "Red,Blue", "--quiet"])
    assert code == 0
    assert "model written to" in capsys.readouterr().out
    det = dfl.load_model(out)
    assert det.labels == ("Red", "Blue")
    assert det.config.backbone == "resnet18" and det.config.fpn_channels == 32 and det.config.resize == "scale"
    assert not det.config.frozen_batchnorm  # from scratch: trainable batch norm
    assert det.metadata["training"]["epochs_completed"] == 1
    assert det.metadata["training"]["from"] is None  # a new model
    assert det.metadata["training"]["command_line"].startswith("deepforest-lite train ")


def test_retrain_from_a_model_with_other_labels_and_resume(tmp_path, planted_images, tiny_detector, capsys):
    folder, _ = planted_images(n_images=2, size=64, per_image=2)
    start = tiny_detector(["Tree"]).save(tmp_path / "tree.pt")
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 1\nbatch_size: 2\nlr: 0.0001\naugment: flip\n")
    args = ["train", "--config", str(config), "--train", str(folder / "train.csv"), "--from", str(start),
            "--output", str(tmp_path / "colours.pt"), "--output-dir", str(tmp_path / "run"), "--quiet"]
    assert main(args) == 0
    first = dfl.load_model(tmp_path / "colours.pt")
    assert first.labels == ("Blue", "Red")  # the data's labels, sorted, replace the model's
    record = first.metadata["training"]
    assert record["from"] == str(start)  # the --from model, and the command line exactly as typed
    assert record["command_line"] == shlex.join(["deepforest-lite", *args])
    assert record["config_file"] == str(config)
    assert main([*args, "--resume", "--epochs", "2"]) == 0
    assert dfl.load_model(tmp_path / "colours.pt").metadata["training"]["epochs_completed"] == 2


@pytest.mark.parametrize(
    ("yaml_text", "extra", "message"),
    [
        ("epoch: 3\n", [], r"Unknown key\(s\) \['epoch'\] in .*valid keys are \[.*'epochs'"),
        ("", ["--epochs", "0"], r"argument --epochs: expected a whole number > 0, got '0'"),
        ("", ["--optimizer", "adam"], r"argument --optimizer: invalid choice: 'adam'"),
        ("lr_schedule: exponential\n", [], r"Unknown lr_schedule 'exponential'"),
        ("model: {backbone: resnet9}\n", [], r"Unknown backbone 'resnet9'"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, planted_images, capsys, yaml_text, extra, message):
    folder, _ = planted_images(n_images=1, size=64, per_image=1)
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    code, err = _run(capsys, "train", "--config", str(config), "--train", str(folder / "train.csv"),
                     "--output", str(tmp_path / "m.pt"), *extra)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(message, err), err


def test_missing_inputs_are_one_line_and_exit_2(tmp_path, capsys):
    code, err = _run(capsys, "train", "--output", str(tmp_path / "m.pt"))
    assert code == 2 and "--train is required" in err and len(err.strip().splitlines()) == 1
    code, err = _run(capsys, "train", "--train", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "m.pt"))
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, err = _run(capsys, "train", "--train", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "m.pt"),
                     "--from", str(tmp_path / "nope.pt"))
    assert code == 2 and "--from" in err and "no such file or folder" in err
