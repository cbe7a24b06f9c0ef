"""Atomic file writes: a file is either wholly written or not there at all; in a run directory never
through a symbolic link; the leftovers of killed writes are removed by the next command on the run."""

from __future__ import annotations

import io
import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path

import h5py

from pyro_lfads.errors import InputError

#: The file that marks a run directory (``pyro_lfads.fitting.run.INFO_FILE``).
RUN_RECORD = "run.json"

#: The name of :func:`atomic_path`'s temporary files, ``.{name}.{pid}-{12 hex}.tmp``; the writer's pid
#: is missing from those of earlier versions.
TEMPORARY_NAME = re.compile(r"\..+\.(?:(?P<pid>\d+)-)?[0-9a-f]{12}\.tmp")


@contextmanager
def atomic_path(path: str | os.PathLike[str]):
    """Yield a temporary path in ``path``'s directory; on success it replaces ``path``.

    The caller writes the whole file to the temporary path. When the block
    ends normally the file is flushed to disk and renamed onto ``path``
    (``os.replace``, atomic on POSIX); when it raises, or the process is
    killed, ``path`` keeps its earlier content (or stays absent) and the
    temporary file is removed (or, after a kill, left as a hidden ``.tmp``
    that :func:`remove_leftover_temporaries` removes). The directory must
    exist. A write into a run directory is refused as :func:`check_inside_run` says.
    """
    path = Path(path)
    check_inside_run(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp"
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


def check_inside_run(path: str | os.PathLike[str]) -> None:
    """Refuse a write to ``path`` in a run directory (its folder, or the folder above, holds
    run.json) when ``path`` is a symbolic link or a folder on the way to it is one that leads
    elsewhere: pyro-lfads writes nothing through a link, so nothing outside the run directory."""
    path = Path(os.path.abspath(path))
    run_dir = next((folder for folder in (path.parent.parent, path.parent) if (folder / RUN_RECORD).is_file()), None)
    if run_dir is None:
        return
    if path.is_symlink():
        raise InputError(f"{path}: is a symbolic link; pyro-lfads writes no file through a link in a run "
                         "directory: remove the link")
    folder = path.parent.resolve()
    if folder != run_dir.resolve() / path.parent.relative_to(run_dir):
        raise InputError(f"{path}: its folder is a symbolic link to {folder}; pyro-lfads writes no file outside "
                         f"the run directory {run_dir}: replace the link by a folder")


def remove_leftover_temporaries(folder: str | os.PathLike[str]) -> None:
    """Remove from ``folder`` the temporary files of :func:`atomic_path` whose writer was killed (named
    so, and its process no longer running); anything else stays, and a file that cannot be removed
    (a read-only folder) stays too."""
    for path in Path(folder).glob(".*.tmp"):
        match = TEMPORARY_NAME.fullmatch(path.name)
        if match and not _running(match["pid"]):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass


def _running(pid: str | None) -> bool:
    """Whether process ``pid`` runs on this machine (not known where POSIX signals are not: say yes)."""
    if pid is None:
        return False
    if os.name != "posix":
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process, or a number that is no pid: keep its file
        pass
    return True


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
