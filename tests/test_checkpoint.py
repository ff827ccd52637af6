"""Our checkpoint format, safety, hub names and ImageNet backbone weights."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import deepforest_lite as dfl
from deepforest_lite.checkpoint import load_checkpoint, read_state_dict

IMAGE = dfl.get_data("OSBS_029.png")


def _confident(det):
    """Make a random detector find boxes: raise all class logits so scores spread over (0, 1)."""
    with torch.no_grad():
        det.model.head.classification_head.cls_logits.bias.fill_(0.5)
    return det


def test_save_load_round_trip_is_bit_exact(tmp_path, tiny_detector):
    det = _confident(tiny_detector(["Alive", "Dead"], seed=1))
    det.score_threshold = 0.3
    det.nms_threshold = 0.2
    det.detections_per_image = 50
    before = det.predict_image(IMAGE)
    assert len(before) > 0 and set(before["label"]) <= {"Alive", "Dead"}
    path = det.save(tmp_path / "model.pt")
    loaded = dfl.load_model(path)
    assert loaded.labels == ("Alive", "Dead")
    assert loaded.config == det.config
    assert (loaded.score_threshold, loaded.nms_threshold, loaded.detections_per_image) == (0.3, 0.2, 50)
    after = loaded.predict_image(IMAGE)
    assert before.equals(after)


def test_metadata_is_json_in_the_safetensors_header(tmp_path, tiny_detector):
    det = tiny_detector(["Bird"])
    path = det.save(tmp_path / "bird.safetensors", extra={"epochs": 3})
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["deepforest_lite"])
    assert meta["format_version"] == 1
    assert meta["labels"] == ["Bird"]
    assert meta["model"]["backbone"] == "resnet18"
    assert meta["model"]["resize"] == "scale" and meta["model"]["scale_factor"] == 1.0
    assert meta["package_version"] == dfl.__version__
    assert meta["training"] == {"epochs": 3}


def test_half_precision_checkpoint_is_smaller_and_close(tmp_path, tiny_detector):
    det = tiny_detector()
    full = det.save(tmp_path / "full.safetensors")
    half = det.save(tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = dfl.load_model(half)
    for (name, a), b in zip(det.model.state_dict().items(), loaded.model.state_dict().values()):
        assert b.dtype == a.dtype, name
        if a.is_floating_point():
            torch.testing.assert_close(a, b, atol=1e-2, rtol=1e-3)


def test_save_is_atomic_and_refuses_a_folder(tmp_path, tiny_detector, monkeypatch):
    det = tiny_detector()
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"previous")

    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(dfl.WriteError, match="the disk is full"):  # a WriteError is an OSError too
        det.save(target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left
    monkeypatch.undo()
    with pytest.raises(dfl.InvalidInputError, match="is a folder"):
        det.save(tmp_path)


def test_labels_given_for_our_checkpoint_must_match(tmp_path, tiny_detector):
    path = tiny_detector(["Tree"]).save(tmp_path / "m.pt")
    assert dfl.load_model(path, labels=["Tree"]).labels == ("Tree",)
    with pytest.raises(dfl.CheckpointError, match=r"trained for the labels \['Tree'\]"):
        dfl.load_model(path, labels=["Bird"])


class _Payload:
    """Pickles to a call that creates a file: proof of code execution if it ever runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_file_needing_full_unpickling_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "hook": _Payload(marker)}, path)
    with pytest.raises(dfl.UnsafeCheckpointError, match="arbitrary code"):
        dfl.load_model(path, labels=["Tree"])
    assert not marker.exists()
    with pytest.raises(ValueError):  # also a built-in
        read_state_dict(path)


def test_unreadable_and_missing_sources(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(dfl.CheckpointError, match="Cannot read"):
        dfl.load_model(junk)
    with pytest.raises(dfl.CheckpointError, match="No such file or folder"):
        dfl.load_model(tmp_path / "missing.pt")  # a path: never sent to the hub
    with pytest.raises(dfl.CheckpointError, match="No model file or folder"):
        dfl.load_model("not-a-model-name")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(dfl.CheckpointError, match="no model.safetensors"):
        dfl.load_model(tmp_path / "empty_folder")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(dfl.CheckpointError, match="not those of a torchvision RetinaNet"):
        dfl.load_model(tmp_path / "other.pt", labels=["Tree"])


def _fill_hub_cache(cache: Path, repo_id: str, state: dict, config: dict) -> None:
    """Lay files out as huggingface_hub's cache does: refs/main -> snapshots/<commit>/."""
    from safetensors.torch import save_file

    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous() for k, v in state.items()}, snapshot / "model.safetensors")
    (snapshot / "config.json").write_text(json.dumps(config))


def test_hub_name_loads_from_the_huggingface_cache(tmp_path, tiny_detector, monkeypatch):
    import huggingface_hub.constants

    source = _confident(tiny_detector(["Tree"], frozen_batchnorm=True))
    # a DeepForest-style upload: torchvision names, label_dict in config.json
    _fill_hub_cache(tmp_path, "weecology/deepforest-tree", source.model.state_dict(), {"label_dict": {"Tree": 0}})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    ckpt = load_checkpoint("weecology/deepforest-tree")
    assert ckpt.label_map.names == ("Tree",)
    assert ckpt.config.backbone == "resnet18" and ckpt.config.fpn_channels == 32
    for key, value in source.model.state_dict().items():
        assert torch.equal(ckpt.state_dict[key], value), key


def test_cached_hub_model_loads_without_contacting_the_hub(tmp_path, tiny_detector, monkeypatch):
    import socket

    import huggingface_hub.constants

    source = tiny_detector(["Tree"], frozen_batchnorm=True)
    _fill_hub_cache(tmp_path, "weecology/deepforest-tree", source.model.state_dict(), {"label_dict": {"Tree": 0}})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # online as far as the hub knows
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    det = dfl.load_model("weecology/deepforest-tree", device="cpu")
    assert det.labels == ("Tree",) and attempts == []
    for key, value in source.model.state_dict().items():
        assert torch.equal(det.model.state_dict()[key], value), key


def test_hub_name_offline_without_cache_says_what_to_do(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(dfl.ModelDownloadError, match=r"Could not fetch 'weecology/deepforest-bird'.*load_model\('path/to/folder'\)"):
        dfl.load_model("weecology/deepforest-bird")


def test_imagenet_backbone_weights_from_local_file_and_torch_cache(tmp_path, monkeypatch):
    import torchvision

    torch.manual_seed(3)
    resnet = torchvision.models.resnet18(weights=None)
    local = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), local)
    det = dfl.Detector(labels=["Tree"], backbone="resnet18", backbone_weights=local, device="cpu")
    assert torch.equal(det.model.backbone.body.conv1.weight, resnet.conv1.weight)
    assert det.config.frozen_batchnorm and det.config.trainable_backbone_layers == 3
    # "imagenet" goes through torchvision's download code, which finds the file in torch's hub cache
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(url)
    cached.parent.mkdir(parents=True)
    torch.save(resnet.state_dict(), cached)
    det2 = dfl.Detector(labels=["Tree"], backbone="resnet18", backbone_weights="imagenet", device="cpu")
    assert torch.equal(det2.model.backbone.body.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)
    # weights of another depth are refused
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(dfl.CheckpointError, match="do not fit this ResNet"):
        dfl.Detector(labels=["Tree"], backbone="resnet18", backbone_weights=tmp_path / "r34.pth", device="cpu")


def test_imagenet_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("torch.hub.download_url_to_file", offline)
    with pytest.raises(dfl.ModelDownloadError, match="pass its path as backbone_weights"):
        dfl.Detector(labels=["Tree"], backbone="resnet18", backbone_weights="imagenet", device="cpu")


def test_every_backbone_builds_and_round_trips(tmp_path):
    for backbone in ("resnet18", "resnet34", "resnet50", "resnet101"):
        det = dfl.Detector(labels=["Tree"], backbone=backbone, device="cpu")
        path = det.save(tmp_path / f"{backbone}.safetensors")
        again = load_checkpoint(path)
        assert again.config.backbone == backbone
        assert np.array_equal(
            again.state_dict["head.regression_head.bbox_reg.weight"].numpy(),
            det.model.head.regression_head.bbox_reg.weight.detach().numpy(),
        )


def test_group_norm_heads_round_trip_and_are_read_off_plain_weights(tmp_path, tiny_detector):
    det = tiny_detector(["Tree", "Snag"], head_norm="group")
    assert isinstance(det.model.head.regression_head.conv[0][1], torch.nn.GroupNorm)
    again = dfl.load_model(det.save(tmp_path / "gn.safetensors"))
    assert again.config.head_norm == "group"
    torch.save(det.model.state_dict(), tmp_path / "plain.pt")
    plain = load_checkpoint(tmp_path / "plain.pt", labels=["Tree", "Snag"])
    assert plain.config.head_norm == "group" and plain.config.fpn_channels == 32
    with pytest.raises(dfl.InvalidInputError, match="divisible by 32"):
        dfl.Detector(["Tree"], backbone="resnet18", fpn_channels=48, head_norm="group", device="cpu")


def test_weights_that_do_not_fit_their_labels_are_a_clear_error(tmp_path, tiny_detector):
    from deepforest_lite.model import replace_classification_head

    det = tiny_detector(["Tree"])
    replace_classification_head(det.model, 3)  # the weights now have 3 classes, the labels say 1
    path = det.save(tmp_path / "broken.safetensors")
    with pytest.raises(dfl.CheckpointError, match="do not fit the model they describe .*size mismatch"):
        dfl.load_model(path)
