"""One check for a number against a range, and its words. Torch-free.

Every setting that must lie in a range (``patch_overlap`` in ``[0, 1)``, a
positive ``batch_size``, an IoU threshold in ``[0, 1]``) is checked by
:func:`check_range`, so the rules are the same everywhere: booleans are not
numbers (``True`` is not ``1``), numpy scalars are, ``NaN`` and infinities are
never in a range, and an integer setting takes whole numbers only (``2.0`` is
refused; the type says what was meant). The message is one sentence naming
the setting, the allowed values and the value given, e.g. ``patch_overlap must
be a fraction in [0, 1), got 1.0; e.g. 0.05.`` The command line's argument
types word the same range with :func:`describe_range` (``symbols=True``) and
test it with :func:`in_range`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal, overload

import numpy as np

from .errors import InvalidInputError

__all__ = ["check_range", "describe_range", "in_range", "is_number"]


def is_number(value: Any, integer: bool = False) -> bool:
    """Whether ``value`` is a real number (an integer when ``integer``): Python or numpy, never a bool."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, numbers.Integral if integer else numbers.Real)


def in_range(
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> bool:
    """Whether ``value`` is a finite number (an integer when ``integer``) within the bounds.

    ``low``/``high`` of ``None`` leave that side unbounded; ``low_open`` /
    ``high_open`` exclude the bound itself (``low=0, low_open=True`` is ``> 0``).
    """
    if not is_number(value, integer):
        return False
    number = float(value)
    if not math.isfinite(number):
        return False
    if low is not None and (number <= low if low_open else number < low):
        return False
    return not (high is not None and (number >= high if high_open else number > high))


def describe_range(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    kind: str | None = None,
    symbols: bool = False,
) -> str:
    """The allowed values in words: ``"a number in [0, 1)"``, ``"a whole number >= 1"``, ``"a positive integer"``.

    ``kind`` is the noun (default ``"whole number"`` for integers, else
    ``"number"``; ``""`` for none: ``"in [0, 1)"``). Numbers above 0 read
    ``"a positive <kind>"``, or ``"a <kind> > 0"`` with ``symbols`` (the
    command line's style).
    """
    noun = kind if kind is not None else ("whole number" if integer else "number")
    if low is not None and high is not None:
        bounds = f"in {'(' if low_open else '['}{_number(low)}, {_number(high)}{')' if high_open else ']'}"
    elif low is not None:
        if low == 0 and low_open and noun and not symbols:
            return f"a positive {noun}"
        bounds = f"{'>' if low_open else '>='} {_number(low)}"
    elif high is not None:
        bounds = f"{'<' if high_open else '<='} {_number(high)}"
    else:
        bounds = ""
    return " ".join(part for part in (_article(noun) if noun else "", noun, bounds) if part)


@overload
def check_range(
    name: str, value: Any, low: float | None = ..., high: float | None = ..., *,
    low_open: bool = ..., high_open: bool = ..., integer: Literal[True], kind: str | None = ..., hint: str | None = ...,
) -> int: ...
@overload
def check_range(
    name: str, value: Any, low: float | None = ..., high: float | None = ..., *,
    low_open: bool = ..., high_open: bool = ..., integer: Literal[False] = ..., kind: str | None = ...,
    hint: str | None = ...,
) -> float: ...
def check_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    kind: str | None = None,
    hint: str | None = None,
) -> int | float:
    """``value`` as a Python ``int`` (``integer``) or ``float`` when it lies in the range; else an error.

    Args:
        name: the setting as the user wrote it (``"patch_overlap"``).
        value: the value to check (Python or numpy number; a bool is refused).
        low, high: the bounds, ``None`` for none; included unless ``low_open`` / ``high_open``.
        integer: whole numbers only (``numbers.Integral``: ``int``, ``np.int64``).
        kind: the noun of the message (see :func:`describe_range`).
        hint: what follows in the message after ``"; "``: an example or what to do.

    Raises:
        InvalidInputError: ``"<name> must be <describe_range(...)>, got <value>; <hint>."``.
    """
    if in_range(value, low, high, low_open=low_open, high_open=high_open, integer=integer):
        return int(value) if integer else float(value)
    allowed = describe_range(low, high, low_open=low_open, high_open=high_open, integer=integer, kind=kind)
    given = repr(value.item()) if isinstance(value, np.generic) else repr(value)
    raise InvalidInputError(f"{name} must be {allowed}, got {given}{f'; {hint}' if hint else ''}.")


def _number(bound: float) -> str:
    """A bound as written by hand: ``0``, ``1``, ``0.5``, ``1e-06``."""
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e15 else repr(float(bound))


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in ("a", "e", "i", "o", "u") else "a"
