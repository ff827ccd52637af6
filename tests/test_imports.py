"""Importing the package never touches the network, and torch-free layers stay torch-free."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import deepforest_lite


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_no_import_contacts_the_network():
    result = _run(
        """
        import socket
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(args)
            raise OSError("network access attempted during import")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.getaddrinfo = refuse
        socket.create_connection = refuse
        import importlib, pkgutil
        import deepforest_lite
        for name in deepforest_lite.__all__:
            getattr(deepforest_lite, name)
        for info in pkgutil.walk_packages(deepforest_lite.__path__, "deepforest_lite."):
            importlib.import_module(info.name)
        deepforest_lite.Detector(labels=["Tree"], backbone="resnet18", device="cpu")
        print("attempts", len(attempts))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "attempts 0" in result.stdout


def test_top_level_import_and_torch_free_layers_do_not_load_torch():
    result = _run(
        """
        import sys
        import deepforest_lite
        import deepforest_lite.errors, deepforest_lite.config, deepforest_lite.boxes
        import deepforest_lite.annotations, deepforest_lite.windows, deepforest_lite.raster
        import deepforest_lite.geo, deepforest_lite.data, deepforest_lite.evaluate
        deepforest_lite.get_data("OSBS_029.tif")
        deepforest_lite.LabelMap(["Tree"])
        print("torch loaded:", "torch" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "torch loaded: False" in result.stdout


def test_public_api_is_declared():
    assert "Detector" in deepforest_lite.__all__ and "load_model" in deepforest_lite.__all__
    for name in deepforest_lite.__all__:
        assert getattr(deepforest_lite, name) is not None
    assert issubclass(deepforest_lite.InvalidInputError, deepforest_lite.DeepForestLiteError)
    assert issubclass(deepforest_lite.InvalidInputError, ValueError)
    assert issubclass(deepforest_lite.ImageReadError, OSError)
    assert issubclass(deepforest_lite.LabelError, KeyError)
