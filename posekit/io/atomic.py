"""Atomic file writes: a file appears complete under its final name, or not at all.

Every writer in posekit goes through here. The data is written to a temporary name in the
destination's folder (same file system, so the final ``os.replace`` is atomic on POSIX and
Windows), renamed onto the destination when the block succeeds, and removed when it fails.
An existing destination is replaced only on success; on failure it is left as it was.

- :func:`atomic_path`: context manager yielding a temporary file path, for writers that
  take a file name (OpenCV, open3d, torch, numpy).
- :func:`atomic_write_bytes`, :func:`atomic_write_text`: write data you already hold.
- :func:`atomic_directory`: the same for a writer that creates a whole folder (rosbag2).
- :func:`output_directory`: create (or accept) a folder that writers will fill.

A destination that cannot be written (it is a folder, its parent is a file, no permission,
read-only file system) raises :class:`~posekit.errors.OutputPathError` naming the path,
before anything is written; the writer's own errors propagate unchanged.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from posekit.errors import OutputPathError
from posekit.validation import as_path


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; a written dataset should get the
# permissions any other new file gets (0o666 minus the umask).
_NEW_FILE_MODE = 0o666 & ~_read_umask()


def _as_path(path, what: str) -> Path:
    return as_path(path, what)


def _unwritable(path: Path, err: OSError, what: str) -> OutputPathError:
    reason = err.strerror or type(err).__name__
    return OutputPathError(f"cannot write {what} {path}: {reason}; choose another path")


def output_directory(path: str | Path, what: str = "output folder") -> Path:
    """Create folder ``path`` (and its parents) if needed; OutputPathError if that is impossible.

    An existing folder is accepted as it is; an existing file at ``path`` or at one of its
    parents, a missing permission or a read-only file system raise OutputPathError.
    """
    path = _as_path(path, what)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path} is an existing file, not a folder; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # FileExistsError / NotADirectoryError: a parent is a file
        raise _unwritable(path, err, what) from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write into {what} {path}: permission denied; choose another path")
    return path


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file exists (empty) when the block starts; the writer overwrites it. It is
    named ``.NAME.XXXX.tmpSUFFIX`` where ``suffix`` defaults to ``path``'s own suffix, since
    libraries such as OpenCV and open3d choose the format by it. The parent folders are
    created. If the block raises, the temporary file is removed, ``path`` is untouched and the
    exception propagates.
    """
    path = _as_path(path, "output file")
    if path.name in ("", ".", ".."):
        raise OutputPathError(f"output file {str(path)!r} has no file name; give one")
    if path.is_dir():
        raise OutputPathError(f"output file {path} is an existing folder; give a file name")
    output_directory(path.parent, "folder of output file")
    suffix = path.suffix if suffix is None else suffix
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    except OSError as err:
        raise _unwritable(path, err, "output file") from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        try:
            if tmp.exists():
                os.chmod(tmp, _NEW_FILE_MODE)
            os.replace(tmp, path)
        except OSError as err:  # e.g. path became a folder meanwhile
            raise _unwritable(path, err, "output file") from err
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); return ``path``."""
    path = _as_path(path, "output file")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically in ``encoding`` (newlines as given); return ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a not-yet-existing path for a writer that creates a folder; move it to ``path`` on success.

    The yielded path has ``path``'s name and lies in a hidden temporary folder next to
    ``path`` (some formats, such as rosbag2, name their files after their folder). ``path``
    must not exist: a folder is never merged into or replaced. The temporary folder is
    removed whatever happens.
    """
    path = _as_path(path, "output folder")
    if path.exists():
        raise OutputPathError(f"output folder {path} exists already; it is never merged into or replaced")
    output_directory(path.parent, "parent of output folder")
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as err:
        raise _unwritable(path, err, "output folder") from err
    try:
        yield tmp_dir / path.name
        try:
            os.replace(tmp_dir / path.name, path)
        except OSError as err:
            raise _unwritable(path, err, "output folder") from err
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


__all__ = ["atomic_directory", "atomic_path", "atomic_write_bytes", "atomic_write_text", "output_directory"]
