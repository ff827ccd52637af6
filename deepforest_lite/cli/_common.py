"""What every subcommand shares: one-line errors and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from ..errors import DeepForestLiteError

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


def positive_int(text: str) -> int:
    """Argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """Argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """Argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value
