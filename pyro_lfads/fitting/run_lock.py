"""The lock of a run directory: one writer at a time.

Every command that writes into a run directory (fit, posterior, decode, diagnose, report, tune on its
out) holds an exclusive ``fcntl.flock`` on RUN_DIR/.pyro-lfads.lock for as long as it runs; the lock
file names the holder (pid, command, start time). A second writer is refused at once, naming the
holder; readers take no lock. The kernel releases a flock when its holder dies, so a killed command
leaves no lock behind (at most the file, which the next writer takes over). The holder removes the
file on release; a writer that locked a file already removed tries again on a fresh one.
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import json
import os
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from pyro_lfads.errors import InputError

LOCK_FILE = ".pyro-lfads.lock"

#: The run directories this process holds locked, with how many nested holds each has.
_held: dict[Path, int] = {}


def _open_locked(path: Path, operation: str) -> int:
    """A descriptor of the lock file at ``path``, exclusively locked; refuses when another holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise InputError(f"{path.parent}: in use by another command ({holder}); wait until it ends, or "
                             "choose another directory") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same_file = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)  # the holder released and removed it between our open and lock: take a fresh one
    record = {"pid": os.getpid(), "command": operation, "argv": shlex.join(sys.argv),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return fd


def _holder(fd: int) -> str:
    """The holder a lock file names, in words."""
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {record['pid']}, {record['command']} ({record['argv']}), started {record['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


@contextmanager
def run_lock(directory: str | Path, operation: str):
    """Hold ``directory``'s lock (made, with the directory, if needed) for the block; ``operation`` is
    what the lock file names as its holder. A lock this process already holds is held again."""
    directory = Path(directory)
    key = directory.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    made = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(directory / LOCK_FILE, operation)
    except (NotADirectoryError, FileExistsError):
        raise InputError(f"{directory}: exists and is not a directory; choose another directory") from None
    except OSError as exc:
        raise InputError(f"{directory}: cannot take the run directory's lock ({exc.strerror}); "
                         "choose a directory you can write to") from None
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        _release(directory, fd, made)


def _release(directory: Path, fd: int, made: bool) -> None:
    """Remove the lock file (still holding it, so no other writer holds a removed one), then unlock; a
    directory that was made for the lock and is still empty goes too."""
    try:
        (directory / LOCK_FILE).unlink(missing_ok=True)
    except OSError:
        pass
    os.close(fd)
    if made:
        try:
            directory.rmdir()
        except OSError:
            pass


def writes_into(argument: str):
    """Decorate a function that writes into the run directory (or folder) given as its ``argument`` (a
    path or a :class:`~pyro_lfads.fitting.run.Run`): the call holds that directory's lock."""
    def decorate(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def locked(*args, **kwargs):
            target = signature.bind(*args, **kwargs).arguments[argument]
            with run_lock(getattr(target, "directory", target), function.__name__):
                return function(*args, **kwargs)
        return locked
    return decorate
