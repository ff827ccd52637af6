"""atomic_write and atomic_write_files: complete files or the old ones, never half-written ones."""

from __future__ import annotations

import os

import pytest

from deepforest_lite.errors import WriteError
from deepforest_lite.files import atomic_write, atomic_write_files


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


# --------------------------------------------------------------------------- atomic_write_files: all or none

SIDECARS = (".shx", ".dbf", ".prj", ".cpg")


def _shapefile_writer(content: str, *, prj: bool = True, fail_after: int | None = None, extra: bool = False):
    """A writer that writes ``out.shp`` and its sidecars from the path it is given, like GDAL's driver."""

    def write(tmp):
        stem = os.path.splitext(tmp)[0]
        suffixes = [".shp", ".shx", ".dbf", *([".prj"] if prj else []), ".cpg"]
        for i, suffix in enumerate(suffixes):
            if fail_after is not None and i == fail_after:
                raise OSError(28, "No space left on device")
            with open(stem + suffix, "w") as f:
                f.write(f"{content}{suffix}")
        if extra:
            with open(tmp + ".aux.xml", "w") as f:  # a side file nobody asked for
                f.write("statistics")

    return write


def _contents(folder):
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_files_appear_together_and_nothing_temporary_is_left(tmp_path):
    target = tmp_path / "out.shp"
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert not target.exists()
        _shapefile_writer("new", extra=True)(tmp)

    assert atomic_write_files(target, write, sidecars=SIDECARS) == str(target)
    assert _contents(tmp_path) == {f"out{s}": f"new{s}" for s in (".cpg", ".dbf", ".prj", ".shp", ".shx")}
    folder = os.path.dirname(seen[0])  # the writer wrote into a hidden folder beside the target
    assert os.path.basename(seen[0]) == "out.shp" and os.path.dirname(folder) == str(tmp_path)
    assert os.path.basename(folder).startswith(".out.shp.") and folder.endswith(".tmp")


@pytest.mark.parametrize("old", [False, True])
@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_writer_failing_half_way_changes_nothing(tmp_path, old, error):
    target = tmp_path / "out.shp"
    if old:
        atomic_write_files(target, _shapefile_writer("old"), sidecars=SIDECARS)
    before = _contents(tmp_path)

    def broken(tmp):
        _shapefile_writer("new")(tmp)  # every file written ...
        raise error  # ... then the disk fills up or Ctrl-C

    expected = WriteError if isinstance(error, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        atomic_write_files(target, broken, sidecars=SIDECARS)
    with pytest.raises(WriteError, match=r"Cannot write '.*out\.shp': the disk is full"):
        atomic_write_files(target, _shapefile_writer("new", fail_after=2), sidecars=SIDECARS)
    assert _contents(tmp_path) == before  # the old files (or none), no temporary folder
    assert len(before) == (5 if old else 0)


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_move_failing_half_way_restores_the_old_files(tmp_path, monkeypatch, hard_links):
    target = tmp_path / "out.shp"
    atomic_write_files(target, _shapefile_writer("old"), sidecars=SIDECARS)
    (tmp_path / "out.qix").write_text("old index")  # a stale sidecar the new write would remove
    before = _contents(tmp_path)
    real_replace = os.replace
    moves = []

    def flaky_replace(src, dst):
        if os.path.dirname(os.fspath(dst)) == str(tmp_path) and ".old" not in os.fspath(src):
            moves.append(os.path.basename(dst))
            if len(moves) == 3:  # two sidecars are in place, the third move fails
                raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    if not hard_links:
        monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(OSError(1, "Operation not permitted")))
    with pytest.raises(WriteError, match="Input/output error"):
        atomic_write_files(target, _shapefile_writer("new"), sidecars=(*SIDECARS, ".qix"))
    assert moves == ["out.cpg", "out.dbf", "out.prj"]
    assert _contents(tmp_path) == before  # every old file back, byte for byte; no temporary folder


def test_old_files_are_replaced_only_on_success_and_stale_sidecars_go(tmp_path):
    target = tmp_path / "out.shp"
    atomic_write_files(target, _shapefile_writer("old"), sidecars=SIDECARS)
    os.chmod(tmp_path / "out.dbf", 0o640)
    (tmp_path / "other.txt").write_text("keep me")
    atomic_write_files(target, _shapefile_writer("new", prj=False), sidecars=SIDECARS)  # no CRS this time
    assert _contents(tmp_path) == {
        "other.txt": "keep me", "out.cpg": "new.cpg", "out.dbf": "new.dbf", "out.shp": "new.shp", "out.shx": "new.shx",
    }  # the old .prj would describe the new file wrongly: removed
    assert ((tmp_path / "out.dbf").stat().st_mode & 0o777) == 0o640  # permissions of the replaced file


def test_a_single_file_and_the_writers_side_files(tmp_path):
    target = tmp_path / "sub" / "tile.tif"

    def write(tmp):
        for name, text in ((tmp, "pixels"), (tmp + ".aux.xml", "statistics"), (tmp[:-4] + ".prj", "crs")):
            with open(name, "w") as f:
                f.write(text)

    atomic_write_files(target, write)  # no sidecars asked for
    assert _contents(target.parent) == {"tile.tif": "pixels"}  # only the main file; the writer's side files dropped


def test_missing_main_file_or_a_folder_in_the_way(tmp_path):
    target = tmp_path / "out.shp"
    with pytest.raises(WriteError, match="Cannot write"):
        atomic_write_files(target, lambda tmp: open(tmp[:-4] + ".dbf", "w").close(), sidecars=SIDECARS)
    assert list(tmp_path.iterdir()) == []  # the .dbf did not arrive without its .shp
    (tmp_path / "dir.shp").mkdir()
    with pytest.raises(WriteError, match="it is a folder; give a file name"):
        atomic_write_files(tmp_path / "dir.shp", _shapefile_writer("x"))
