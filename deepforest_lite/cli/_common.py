"""What every subcommand shares: one-line errors and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from ..checks import describe_range, in_range
from ..errors import ConfigError, DeepForestLiteError

#: Exit code for a user mistake (bad option, missing file, unknown model).
USAGE_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{self.prog}: error: {message}{_cli_hint(message)} (see '{self.prog} --help')")


def _cli_hint(message: str) -> str:
    """"; <hint>" for the first DeepForest-style option among argparse's unrecognized arguments."""
    from ..compat import CLI_HINTS, DEEPFOREST_HINTS

    if not message.startswith("unrecognized arguments:"):
        return ""
    for word in message.split(":", 1)[1].split():
        option = word.split("=", 1)[0]
        if option in CLI_HINTS or option[2:].replace("-", "_") in DEEPFOREST_HINTS:
            from ..compat import spelling_hint

            return f"; {option}: {spelling_hint(option, [])}"
    return ""


def fail(message: str) -> NoReturn:
    """Print ``message`` as one line on stderr and exit with :data:`USAGE_ERROR`."""
    print(" ".join(str(message).split()), file=sys.stderr)
    raise SystemExit(USAGE_ERROR)


def run_safely(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a subcommand; user mistakes become one line on stderr and exit code 2."""
    try:
        return int(func(args) or 0)
    except (DeepForestLiteError, FileNotFoundError) as exc:
        fail(f"deepforest-lite {args.command}: error: {exc}")
    except OSError as exc:  # read-only folder, full disk, no permission: one line, never a traceback
        from ..files import describe_os_error

        where = f" ({exc.filename!r})" if getattr(exc, "filename", None) else ""
        fail(f"deepforest-lite {args.command}: error: {describe_os_error(exc)}{where}; check the paths and free space.")
    except KeyboardInterrupt as exc:
        print(f"deepforest-lite {args.command}: interrupted" + (f"; {exc}" if str(exc) else ""), file=sys.stderr)
        return 130


def parse_number(
    text: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    kind: str | None = None,
    like: str | None = None,
    allowed: str | None = None,
) -> int | float:
    """``text`` as a number in the range (see :func:`deepforest_lite.checks.check_range`); for argparse types.

    ``allowed`` words the range instead of :func:`~deepforest_lite.checks.describe_range`
    (which writes ``"a whole number > 0"``); ``like`` is an example shown after it.

    Raises:
        argparse.ArgumentTypeError: ``"expected <allowed>[ like <like>], got '<text>'"``.
    """
    try:
        value: int | float | None = int(text) if integer else float(text)
    except ValueError:
        value = None
    if not in_range(value, low, high, low_open=low_open, high_open=high_open, integer=integer):
        words = allowed or describe_range(
            low, high, low_open=low_open, high_open=high_open, integer=integer, kind=kind, symbols=True
        )
        raise argparse.ArgumentTypeError(f"expected {words}{f' like {like}' if like else ''}, got {text!r}")
    assert value is not None
    return value


def positive_int(text: str) -> int:
    """Argparse type: an integer > 0."""
    return int(parse_number(text, 0, low_open=True, integer=True))


def non_negative_int(text: str) -> int:
    """Argparse type: an integer >= 0."""
    return int(parse_number(text, 0, integer=True))


def fraction(text: str) -> float:
    """Argparse type: a number in [0, 1]."""
    return float(parse_number(text, 0, 1, allowed="a number between 0 and 1"))


def overlap(text: str) -> float:
    """Argparse type: a fraction in [0, 1) (``--patch-overlap``)."""
    return float(parse_number(text, 0, 1, high_open=True, kind="fraction"))


def gsd_metres(text: str) -> float:
    """Argparse type: a pixel size in metres > 0 (``--gsd``)."""
    return float(parse_number(text, 0, low_open=True, kind="pixel size in metres", like="0.1"))


def duration(text: str) -> float:
    """Argparse type: a number of seconds >= 0."""
    return float(parse_number(text, 0, kind="number of seconds", like="30"))


def parse_devices(value: Any) -> Any:
    """Lightning's ``devices`` from a command-line or YAML value.

    ``"2"`` -> ``2``, ``"0,1"`` -> ``[0, 1]``; ``"auto"``, ``"-1"``, numbers
    and lists pass through.

    Raises:
        ConfigError: text that is neither a number, a list of ids, ``auto`` nor ``-1``.
    """
    if not isinstance(value, str) or value in ("auto", "-1"):
        return value
    parts = [d.strip() for d in value.split(",") if d.strip()]
    if not parts or not all(d.isdigit() for d in parts):
        raise ConfigError(f"--devices {value!r} is not a number or a list of device ids such as 0,1.")
    return [int(d) for d in parts] if len(parts) > 1 else int(parts[0])


def add_device_arguments(group: Any, defaults: Any) -> None:
    """``--accelerator``, ``--devices``, ``--strategy``, ``--num-nodes`` (Lightning's names), shared by train and predict.

    ``defaults`` has ``accelerator``, ``devices``, ``strategy`` and ``num_nodes`` attributes (shown in the help).
    """
    group.add_argument("--accelerator", metavar="NAME", help="Lightning accelerator: auto, cpu, gpu, mps "
                       f"(default {defaults.accelerator})")
    group.add_argument("--devices", metavar="N_OR_LIST", help="number of devices, or a list of ids such as 0,1 "
                       f"(default {defaults.devices})")
    group.add_argument("--strategy", metavar="NAME", help=f"Lightning strategy: auto, ddp, ... (default {defaults.strategy})")
    group.add_argument("--num-nodes", type=positive_int, metavar="N", help="machines taking part "
                       f"(default {defaults.num_nodes})")
