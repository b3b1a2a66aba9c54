"""Atomic writes: a failing writer leaves nothing behind, a succeeding one replaces the file."""

import os
import stat

import pytest

from posekit.io.atomic import atomic_directory, atomic_path, atomic_write_bytes, atomic_write_text


class WriterFailed(Exception):
    pass


def test_failure_leaves_no_file_and_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.png"
    with pytest.raises(WriterFailed), atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".png" and tmp != target
        tmp.write_bytes(b"half")
        raise WriterFailed
    assert list(target.parent.iterdir()) == []


def test_failure_keeps_the_existing_file(tmp_path):
    target = atomic_write_text(tmp_path / "a.json", "old")
    with pytest.raises(WriterFailed), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise WriterFailed
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_success_replaces_existing_file(tmp_path):
    target = tmp_path / "a.bin"
    assert atomic_write_bytes(target, b"first") == target
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    with atomic_path(target, suffix=".npy") as tmp:
        assert tmp.name.endswith(".tmp.npy")
        tmp.write_bytes(b"third")
    assert target.read_bytes() == b"third"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
    # the mode any new file gets, not the owner-only mode of a temp file
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_text_encoding(tmp_path):
    path = atomic_write_text(tmp_path / "t.txt", "métres\n")
    assert path.read_bytes() == "métres\n".encode()


def test_atomic_directory(tmp_path):
    target = tmp_path / "bag"
    with atomic_directory(target) as tmp:
        assert tmp.name == "bag" and not tmp.exists()
        tmp.mkdir()
        (tmp / "bag_0.db3").write_bytes(b"x")
    assert (target / "bag_0.db3").read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["bag"]
    with pytest.raises(WriterFailed), atomic_directory(tmp_path / "bag2") as tmp:
        tmp.mkdir()
        raise WriterFailed
    assert [p.name for p in tmp_path.iterdir()] == ["bag"]
