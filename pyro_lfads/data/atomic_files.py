"""Atomic file writes: a file is either wholly written or not there at all."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path


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
