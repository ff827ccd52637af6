"""LabelMap (checked both ways) and the configuration dataclasses."""

from __future__ import annotations

import pytest

import deepforest_lite as dfl
from deepforest_lite.config import ModelConfig, PredictConfig, from_mapping, load_config_file


def test_label_map_both_ways():
    lm = dfl.LabelMap(["Alive", "Dead"])
    assert [lm.id("Alive"), lm.id("Dead")] == [0, 1]
    assert [lm.name(0), lm.name(1)] == ["Alive", "Dead"]
    assert lm.encode(["Dead", "Alive", "Dead"]).tolist() == [1, 0, 1]
    assert lm.decode([1, 0]) == ["Dead", "Alive"]
    assert lm.to_dict() == {"Alive": 0, "Dead": 1}
    assert dfl.LabelMap.from_dict({"Dead": 1, "Alive": 0}) == lm
    assert "Dead" in lm and "Tree" not in lm and len(lm) == 2


def test_label_map_errors():
    lm = dfl.LabelMap(["Alive", "Dead"])
    with pytest.raises(dfl.LabelError, match=r"Unknown label 'Tree'; the known labels are \['Alive', 'Dead'\]"):
        lm.id("Tree")
    with pytest.raises(KeyError):
        lm.name(2)
    with pytest.raises(dfl.LabelError, match="ids run from 0 to 1"):
        lm.name(-1)
    with pytest.raises(dfl.InvalidInputError, match="appear more than once"):
        dfl.LabelMap(["Tree", "Tree"])
    with pytest.raises(dfl.InvalidInputError, match=r"write labels=\['Tree'\]"):
        dfl.LabelMap("Tree")
    with pytest.raises(dfl.InvalidInputError, match="labels is empty"):
        dfl.LabelMap([])
    with pytest.raises(dfl.InvalidInputError, match="no gaps or repeats"):
        dfl.LabelMap.from_dict({"Tree": 1})


def test_unknown_config_keys_list_the_valid_ones(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("patch_size: 600\npatch_overlp: 0.1\n")
    with pytest.raises(dfl.ConfigError, match=r"Unknown key\(s\) \['patch_overlp'\] in .*c.yaml; valid keys for PredictConfig are \['patch_size', 'patch_overlap'"):
        from_mapping(PredictConfig, load_config_file(path), source=str(path))
    assert from_mapping(PredictConfig, {"patch_size": 600}).patch_size == 600
    assert from_mapping(ModelConfig, {"anchor_sizes": [16, 32, 64, 128, 256]}).anchor_sizes == (16, 32, 64, 128, 256)


def test_config_values_are_checked(tmp_path):
    with pytest.raises(dfl.InvalidInputError, match=r"Unknown backbone 'resnet9'; choose one of \['resnet18'"):
        ModelConfig(backbone="resnet9")
    with pytest.raises(dfl.InvalidInputError, match=r"patch_overlap must be in \[0, 1\), got 1.0"):
        PredictConfig(patch_overlap=1.0)
    with pytest.raises(dfl.InvalidInputError, match="anchor_sizes needs five"):
        ModelConfig(anchor_sizes=(8, 16))
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(dfl.ConfigError, match="must hold a mapping"):
        load_config_file(tmp_path / "bad.yaml")
    with pytest.raises(dfl.ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.yaml")
