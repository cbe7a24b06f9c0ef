"""Atomic file writes: a file is either wholly written or not there at all."""

from __future__ import annotations

import io
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

import h5py


@contextmanager
def atomic_path(path: str | os.PathLike[str]):
    """Yield a temporary path in ``path``'s directory; on success it replaces ``path``.

    The caller writes the whole file to the temporary path. When the block
    ends normally the file is flushed to disk and renamed onto ``path``
    (``os.replace``, atomic on POSIX); when it raises, or the process is
    killed, ``path`` keeps its earlier content (or stays absent) and the
    temporary file is removed (or, after a kill, left as a hidden ``.tmp``).
    The directory must exist.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def write_atomically(path: str | os.PathLike[str], content: bytes) -> None:
    """Write ``content`` to ``path`` atomically (:func:`atomic_path`); a full disk or a missing permission
    raises a plain ``OSError`` naming ``path`` (the temporary file is removed)."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            handle.write(content)
    except OSError as exc:  # named by the file being written, not its temporary twin
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None


@contextmanager
def atomic_hdf5(path: str | os.PathLike[str]):
    """Yield an HDF5 file open for writing that is built in memory and, when the block ends normally,
    written to ``path`` atomically (:func:`write_atomically`).

    The HDF5 library never writes to the disk itself: when the disk fills (or a file-size limit is
    reached) the write fails as a plain ``OSError``, where HDF5 would leave a file it cannot close and
    can crash the interpreter at exit. The file's content is held in memory once.
    """
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        yield handle
    write_atomically(path, buffer.getbuffer())
