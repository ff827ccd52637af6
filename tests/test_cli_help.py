"""Every ``--help`` answers: each option says what it does, its default (or that it is required),
and each subcommand ends with examples that parse."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from pathlib import Path

import pytest

from deepforest_lite.cli import build_parser
from deepforest_lite.config import PredictConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


NAMES = sorted(subcommands())


def test_the_five_subcommands_are_checked():
    assert NAMES == ["evaluate", "export", "predict", "split", "train"]


@pytest.mark.parametrize("name", NAMES)
def test_every_option_has_help_with_its_default(name):
    parser = subcommands()[name]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
        if action.option_strings:
            text = action.help.lower()
            assert "default" in text or "required" in text, (name, action.option_strings, action.help)


@pytest.mark.parametrize("name", NAMES)
def test_help_ends_with_examples_that_parse(name):
    parser = subcommands()[name]
    assert parser.epilog and parser.epilog.startswith("examples:")
    examples = [line.strip() for line in parser.epilog.splitlines()[1:] if line.strip()]
    assert 2 <= len(examples) <= 3
    assert parser.format_help().rstrip().endswith(examples[-1])
    for example in examples:
        words = shlex.split(example)
        assert words[:2] == ["deepforest-lite", name]
        args = build_parser().parse_args(words[1:])  # a typo in an example would exit here
        assert args.command == name


def test_train_help_states_the_real_defaults():
    parser = subcommands()["train"]
    defaults = TrainConfig()
    checked = 0
    for action in parser._actions:
        field = action.dest
        if field in {f.name for f in dataclasses.fields(TrainConfig)} and field != "logger":
            value = getattr(defaults, field)
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            assert shown in action.help, (field, shown, action.help)
            checked += 1
    assert checked >= 15


def test_predict_help_states_the_real_defaults():
    parser = subcommands()["predict"]
    defaults = PredictConfig()
    for action in parser._actions:
        if action.dest in ("patch_size", "patch_overlap", "iou_threshold", "batch_size", "workers", "precision"):
            assert f"default {getattr(defaults, action.dest)}" in action.help, action.dest


def test_tensorboard_option_names_its_extra_and_the_extra_exists():
    (logger,) = [a for a in subcommands()["train"]._actions if a.dest == "logger"]
    assert "pip install 'deepforest-lite[tensorboard]'" in logger.help
    assert '"tensorboard": ["tensorboard' in (ROOT / "setup.py").read_text()
