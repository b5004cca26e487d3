"""One process at a time per launch: an exclusive ``flock`` on ``<state dir>/locks/<launch>.lock``, taken
without waiting. Two ``launch --resume`` of one launch would otherwise both submit its missing arrays."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from atlas_sweeps.errors import StateError


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().strip())
        return f"pid {pid}"
    return "a process that has not written its pid yet"


@contextlib.contextmanager
def launch_lock(locks_dir: Path, launch_id: str) -> Iterator[None]:
    """Hold ``launch_id``'s lock for the ``with`` block, or raise ``StateError`` naming the holder's pid.

    The kernel releases a ``flock`` when its holder dies, so a killed process never leaves a launch locked.
    The file is removed on release; a process that opened it just before checks that the path still names
    the file it locked, and starts over if not."""
    locks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = locks_dir / f"{launch_id}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(f"launch {launch_id} is in use by another atlas-sweeps process ({_holder(path)})",
                             hint="wait for it to finish, then run the command again") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
