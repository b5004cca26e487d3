"""Parent side of the rsync relay: a Unix socket in a 0700 temp dir that receives each rsync's ``--rsh``
request (command line + its stdin/stdout/stderr) and runs it on a channel of the existing SSH transport."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atlas_sweeps.remote import _relay_main

_CHUNK = 65536


def exit_status_for_rsync(status: int) -> int:
    """paramiko reports -1 when the server sent no exit status; ssh reports that as 255."""
    return 255 if status < 0 else status


class Relay:
    """Serves rsync's ``--rsh`` requests over ``open_channel`` (a callable returning a new session channel
    on the one transport) until ``close``. ``rsh`` is the value to pass to ``rsync -e``."""

    def __init__(self, *, open_channel: Callable[[], Any], release_channel: Callable[[], None]) -> None:
        self._open_channel = open_channel
        self._release_channel = release_channel
        self._dir = Path(tempfile.mkdtemp(prefix="atlas-relay-"))  # mkdtemp makes it 0700
        self.socket_path = str(self._dir / "relay.sock")
        # Also removed at interpreter exit when a caller forgets close() (e.g. after an exception).
        weakref.finalize(self, shutil.rmtree, str(self._dir), True)
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.socket_path)
        self._server.listen(16)
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="rsync-relay", daemon=True)
        self._thread.start()

    @property
    def rsh(self) -> str:
        argv = [sys.executable, "-I", "-S", _relay_main.__file__, self.socket_path]
        return " ".join(shlex.quote(part) for part in argv)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="rsync-relay-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        fds: list[int] = []
        status = 255
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, _CHUNK, 3)
            while not data.endswith(b"\n"):
                more = conn.recv(_CHUNK)
                if not more:
                    break
                data += more
            if len(fds) != 3:
                return
            command = json.loads(data)["command"]
            status = self._run(command, stdin=fds[0], stdout=fds[1], stderr=fds[2])
        except Exception as exc:  # noqa: BLE001 - reported to rsync's stderr, then status 255
            if len(fds) == 3:
                with contextlib.suppress(OSError):
                    os.write(fds[2], f"atlas-sweeps relay: {exc}\n".encode())
        finally:
            with contextlib.suppress(OSError):
                conn.sendall(f"{status}\n".encode())
            conn.close()

    def _run(self, command: str, *, stdin: int, stdout: int, stderr: int) -> int:
        for fd in (stdin, stdout, stderr):
            os.set_blocking(fd, True)
        channel = self._open_channel()
        try:
            channel.exec_command(command)
            feeder = threading.Thread(target=_pump_stdin, args=(stdin, channel), daemon=True)
            err = threading.Thread(target=_pump_out, args=(channel.recv_stderr, stderr), daemon=True)
            feeder.start()
            err.start()
            _pump_out(channel.recv, stdout)
            err.join()
            # Only now, with both outputs drained, is the status safe to report.
            return exit_status_for_rsync(channel.recv_exit_status())
        finally:
            channel.close()
            self._release_channel()


def _pump_stdin(fd: int, channel: Any) -> None:
    try:
        while True:
            data = os.read(fd, _CHUNK)
            if not data:
                # Half-close: closing the channel here would lose the remote's output and exit status.
                channel.shutdown_write()
                return
            channel.sendall(data)
    except (OSError, EOFError):
        return
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _pump_out(recv: Callable[[int], bytes], fd: int) -> None:
    try:
        while True:
            data = recv(_CHUNK)
            if not data:
                return
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
    except OSError:
        # rsync went away; keep draining so the channel can finish and report its status.
        with contextlib.suppress(Exception):
            while recv(_CHUNK):
                pass
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
