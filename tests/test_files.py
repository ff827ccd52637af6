"""atomic_write: complete file or the old one, never a half-written one."""

from __future__ import annotations

import os

import pytest

from deepforest_lite.files import atomic_write


def test_writes_through_a_temporary_file_and_keeps_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert not target.exists()  # nothing at the target while writing
        with open(tmp, "w") as f:
            f.write("new")

    assert atomic_write(target, write) == str(target)
    assert target.read_text() == "new" and os.path.dirname(seen[0]) == str(target.parent)
    os.chmod(target, 0o640)
    atomic_write(target, lambda tmp: open(tmp, "w").write("newer"))
    assert target.read_text() == "newer" and (target.stat().st_mode & 0o777) == 0o640


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
