"""The ``deepforest-lite`` command line: one module per subcommand.

Each subcommand module exposes ``add_parser(subparsers)`` and ``run(args) -> int``.
This package is the only place that prints; user mistakes print one line on
stderr and exit with code 2, never a traceback.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from ._common import ArgumentParser, run_safely

__all__ = ["main"]

#: Subcommand name -> module (relative to this package) that implements it.
SUBCOMMANDS: dict[str, str] = {
    "evaluate": ".evaluate",
    "export": ".export",
    "predict": ".predict",
    "split": ".split",
    "train": ".train",
}


def build_parser() -> ArgumentParser:
    from .._version import __version__

    parser = ArgumentParser(
        prog="deepforest-lite",
        description="Detect tree crowns and birds in aerial RGB imagery, and retrain the detector.",
    )
    parser.add_argument("--version", action="version", version=f"deepforest-lite {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    subparsers.required = True
    for name, module in SUBCOMMANDS.items():
        importlib.import_module(module, __name__).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    import sys

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = [str(a) for a in argv]  # the command line as given, for provenance (train)
    return run_safely(args.run, args)

