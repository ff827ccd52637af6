"""Paths to the sample data installed with the package. Torch-free."""

from __future__ import annotations

from pathlib import Path

from .errors import DataNotFoundError

__all__ = ["get_data", "list_data", "data_dir"]

_HERE = Path(__file__).resolve().parent


def data_dir() -> Path:
    """The folder holding the sample data.

    In an installed wheel the files live in ``deepforest_lite/sample_data``; in
    a source checkout (and editable installs) in the repository's
    ``sample_data/``.
    """
    for candidate in (_HERE / "sample_data", _HERE.parent / "sample_data"):
        if candidate.is_dir():
            return candidate
    raise DataNotFoundError(
        "The sample data folder is missing from this installation; reinstall deepforest-lite."
    )


def list_data() -> list[str]:
    """Names of the bundled sample files, sorted."""
    return sorted(
        p.name
        for p in data_dir().iterdir()
        if p.is_file() and p.suffix not in (".py", ".pyc") and p.name != "README.md"
    )


def get_data(name: str) -> str:
    """Return the absolute path of the bundled sample file ``name`` (e.g. ``"OSBS_029.tif"``).

    Raises:
        DataNotFoundError: ``name`` is not bundled; the message lists the names that are.
    """
    path = data_dir() / str(name)
    if str(name) not in list_data():
        raise DataNotFoundError(
            f"No sample data file named {name!r}; available files are {list_data()}."
        )
    return str(path)
