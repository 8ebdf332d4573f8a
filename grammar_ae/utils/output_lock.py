"""One writer per output directory: an OS file lock that dies with its process.

``hold_output_lock(directory)`` holds ``directory/.grammar-ae.lock`` (``flock``, released by
the OS when the holder exits in any way, ``kill -9`` included, so no lock goes stale) for as
long as a command writes the directory. The file records the holder's PID for the refusal of
a second writer. Acquiring the lock is also the check that the directory can be written,
made before any work starts, and the moment to clear what interrupted writes left behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from grammar_ae.errors import OutputError
from grammar_ae.utils import distributed
from grammar_ae.utils.files import remove_interrupted_writes

LOCK_FILE = ".grammar-ae.lock"


@contextmanager
def hold_output_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Create ``directory`` if needed and hold its lock for the block (yields the directory);
    folders it created are removed again if the block wrote nothing to them.

    OutputError when the directory cannot be written or another process holds the lock. In
    data-parallel training only rank 0 writes, so only it takes the lock.
    """
    directory = Path(directory)
    if distributed.launch_rank() > 0:
        yield directory
        return
    created = [folder for folder in (directory, *directory.parents) if not folder.exists()]
    handle = _acquire(directory)
    try:
        remove_interrupted_writes(directory)
        yield directory
    finally:
        (directory / LOCK_FILE).unlink(missing_ok=True)  # before closing: nobody can lock this file after us
        handle.close()
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that the lock created and nothing was written to."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _acquire(directory: Path) -> IO[str]:
    path = directory / LOCK_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(path, "a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(handle)
                handle.close()
                raise OutputError(
                    f"{directory} is being written by another grammar-ae process ({holder}); "
                    "wait for it to end or choose another directory"
                ) from None
            if _still_linked(handle, path):
                break
            handle.close()  # the previous holder removed the file between our open and lock
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return handle
    except OSError as error:
        raise OutputError(f"{directory}: cannot be written ({error.strerror or error})") from None


def _still_linked(handle: IO[str], path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def _holder(handle: IO[str]) -> str:
    """``PID n`` from the lock file (the holder writes it right after locking)."""
    for _ in range(20):
        handle.seek(0)
        text = handle.read().strip()
        if text.isdigit():
            return f"PID {text}"
        time.sleep(0.05)
    return "PID unknown"
