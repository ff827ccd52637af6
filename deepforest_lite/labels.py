"""``LabelMap``: class names <-> the contiguous integer ids the network uses. Torch-free.

Ids run ``0..n-1`` in the order the names are given; there is no background
class. Both directions are checked: an unknown name or an out-of-range id is a
:class:`~deepforest_lite.errors.LabelError` that lists what is known.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import InvalidInputError, LabelError

__all__ = ["LabelMap"]


class LabelMap:
    """An ordered, two-way mapping between label names and ids ``0..n-1``.

    Args:
        labels: the class names; the i-th name gets id ``i``.

    Example:
        >>> lm = LabelMap(["Alive", "Dead"])
        >>> lm.id("Dead"), lm.name(0)
        (1, 'Alive')
    """

    def __init__(self, labels: Iterable[str]) -> None:
        if isinstance(labels, str):
            raise InvalidInputError(
                f"labels must be a list of names, got the string {labels!r}; "
                f"write labels=[{labels!r}]."
            )
        names = tuple(labels)
        if not names:
            raise InvalidInputError("labels is empty; give at least one class name, e.g. ['Tree'].")
        bad = [n for n in names if not isinstance(n, str) or not n.strip()]
        if bad:
            raise InvalidInputError(
                f"Every label must be a non-empty string, got {bad!r}; name the classes, e.g. ['Tree']."
            )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInputError(f"Labels must be unique; {duplicates} appear more than once.")
        self._names = names
        self._ids = {n: i for i, n in enumerate(names)}

    @classmethod
    def from_dict(cls, label_dict: Mapping[str, int]) -> LabelMap:
        """Build from DeepForest's ``label_dict`` (``{"Tree": 0}``); ids must be 0..n-1."""
        try:
            items = sorted(((int(i), str(n)) for n, i in label_dict.items()))
        except (TypeError, ValueError, AttributeError):
            raise InvalidInputError(
                f"label_dict must map names to integer ids, got {label_dict!r}."
            ) from None
        ids = [i for i, _ in items]
        if ids != list(range(len(ids))):
            raise InvalidInputError(
                f"label_dict ids must be 0..{len(ids) - 1} with no gaps or repeats, got {label_dict!r}."
            )
        return cls(n for _, n in items)

    @property
    def names(self) -> tuple[str, ...]:
        """The label names in id order."""
        return self._names

    def to_dict(self) -> dict[str, int]:
        """``{name: id}``, DeepForest's ``label_dict``."""
        return dict(self._ids)

    def id(self, name: str) -> int:
        """The id of ``name``; :class:`LabelError` lists the known names if it is unknown."""
        try:
            return self._ids[name]
        except (KeyError, TypeError):
            raise LabelError(
                f"Unknown label {name!r}; the known labels are {list(self._names)}."
            ) from None

    def name(self, label_id: int) -> str:
        """The name of ``label_id``; :class:`LabelError` if it is out of range."""
        i = int(label_id)
        if not 0 <= i < len(self._names):
            raise LabelError(
                f"Label id {label_id!r} is out of range; ids run from 0 to {len(self._names) - 1} "
                f"for {list(self._names)}."
            )
        return self._names[i]

    def encode(self, names: Sequence[str]) -> np.ndarray:
        """Ids of ``names`` as an int64 array of shape ``(N,)``."""
        return np.array([self.id(n) for n in names], dtype=np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Names of ``ids``."""
        return [self.name(i) for i in np.asarray(ids).reshape(-1)]

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelMap) and other._names == self._names

    def __hash__(self) -> int:
        return hash(self._names)

    def __repr__(self) -> str:
        return f"LabelMap({list(self._names)!r})"
