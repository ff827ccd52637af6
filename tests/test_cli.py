"""The ``deepforest-lite`` entry point: help, version, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

import deepforest_lite as dfl
from deepforest_lite.cli import main


def test_console_script_help_lists_every_command():
    result = subprocess.run(["deepforest-lite", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("predict", "train", "evaluate", "split"):
        assert command in result.stdout


def test_each_command_has_help(capsys):
    for command in ("predict", "train", "evaluate", "split"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert f"usage: deepforest-lite {command}" in capsys.readouterr().out


def test_version_and_unknown_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and dfl.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["fly"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1 and "invalid choice: 'fly'" in err


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "deepforest_lite.cli", "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and dfl.__version__ in result.stdout
