"""The ``Remote`` seam: run scripts, stream output and rsync on the cluster's login node, plus the value
objects they return. Two implementations: ``SshRemote`` (one SSH session per CLI run) and ``LocalRemote``."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from atlas_sweeps.errors import RemoteError


@dataclass(frozen=True)
class Result:
    """What one remote command did: its exit code and captured output."""

    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self, *, what: str) -> Result:
        """Return self, or raise ``RemoteError`` naming ``what`` failed and the command's last stderr line."""
        if self.ok:
            return self
        detail = _last_lines(self.stderr) or _last_lines(self.stdout) or "no output"
        raise RemoteError(f"{what} failed (exit {self.exit_code}): {detail}")


def _last_lines(text: str, *, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


MAX_LINE_BYTES = 65536
_LINE_END = re.compile(rb"\r\n|\r|\n")


class LineSplitter:
    """Cuts a byte stream into lines as it arrives, in time linear in its length. ``\\n``, ``\\r\\n`` and a
    lone ``\\r`` end a line (progress bars redraw with ``\\r``); a line longer than ``limit`` bytes is passed
    on cut at ``limit`` and the rest of it dropped, so output without line ends never grows a buffer."""

    def __init__(self, *, limit: int = MAX_LINE_BYTES) -> None:
        self._limit = limit
        self._part = bytearray()
        self._cut = False  # the current line was passed on at the limit: drop the rest of it
        self._after_cr = False  # the last chunk ended with \r: a \n opening the next one ends no new line

    def feed(self, data: bytes) -> list[str]:
        """The lines ``data`` completes (a partial last line waits for the next chunk or ``close``)."""
        lines: list[str] = []
        start = 1 if self._after_cr and data[:1] == b"\n" else 0
        for match in _LINE_END.finditer(data, start):
            self._add(data[start:match.start()], lines)
            if not self._cut:
                lines.append(self._part.decode(errors="replace"))
            self._part.clear()
            self._cut = False
            start = match.end()
        self._add(data[start:], lines)
        if data:
            self._after_cr = data.endswith(b"\r")
        return lines

    def close(self) -> list[str]:
        """The last line, when the stream ended without a line end."""
        rest = [] if self._cut or not self._part else [self._part.decode(errors="replace")]
        self._part.clear()
        self._cut = False
        return rest

    def _add(self, piece: bytes, lines: list[str]) -> None:
        if self._cut or not piece:
            return
        room = self._limit - len(self._part)
        if len(piece) <= room:
            self._part += piece
            return
        self._part += piece[:room]
        lines.append(self._part.decode(errors="replace"))
        self._part.clear()
        self._cut = True


@runtime_checkable
class Remote(Protocol):
    """The login node as the rest of the tool sees it. One instance lives for one CLI invocation."""

    def run_script(self, script: str, *, timeout: float | None = None) -> Result:
        """Run ``script`` with ``bash -s`` (sent on stdin, so the login shell's syntax never matters)."""
        ...

    def stream_script(self, script: str, *, on_stdout: Callable[[str], None],
                      stop: threading.Event | None = None) -> int:
        """Run ``script`` under bash, calling ``on_stdout`` per output line as it arrives, until it ends or
        ``stop`` is set (then the remote processes are killed). Returns the exit code (-1 if stopped)."""
        ...

    def rsync(self, args: list[str], *, on_progress: Callable[[str], None] | None = None) -> Result:
        """Run local ``rsync`` with ``args`` so that the transfer reuses this session (no second login).
        Write remote paths with ``rsync_path``."""
        ...

    def rsync_path(self, path: str) -> str:
        """The rsync argument naming ``path`` on the login node (``host:path`` over SSH, ``path`` locally)."""
        ...

    @property
    def calls(self) -> int:
        """Remote round trips so far (each script, stream or rsync counts one)."""
        ...

    def describe(self) -> str:
        """The transport and where it goes (openssh: whether its master is up), for ``status`` and ``doctor``."""
        ...

    def close(self) -> None:
        ...


class CallCounter:
    """Counts a Remote's round trips (thread-safe: rsync relays and streams run in threads)."""

    def __init__(self) -> None:
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return self._calls

    def _count(self) -> None:
        with self._lock:
            self._calls += 1


LOCAL_HOST = "local"  # a profile's ``host`` that means: the login node is this machine, no SSH
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def runs_here(host: str | None) -> bool:
    """No SSH: commands run on this machine (``host = "local"``, or none given)."""
    return host in (None, "", LOCAL_HOST)


def on_this_machine(host: str | None) -> bool:
    """The cluster is this machine, with or without SSH to loopback (the sandbox, a cluster on a laptop)."""
    return runs_here(host) or host in _LOOPBACK


@dataclass(frozen=True)
class RemoteTarget:
    """Where the login node is (``runs_here``: this machine, no SSH)."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    transport: str | None = None  # "paramiko" (one session per command) or "openssh" (a ControlMaster); None: auto
    control_persist: str | None = None  # how long an openssh master outlives its command

    @property
    def is_local(self) -> bool:
        return runs_here(self.host)

    @classmethod
    def from_profile(cls, profile_like: Any) -> RemoteTarget:
        """Read a target from a profile object, a mapping or a target; unknown fields are ignored."""
        if isinstance(profile_like, RemoteTarget):
            return profile_like
        if profile_like is None:
            return cls()

        def get(*names: str) -> Any:
            for name in names:
                value = (profile_like.get(name) if isinstance(profile_like, Mapping)
                         else getattr(profile_like, name, None))
                if value not in (None, ""):
                    return value
            return None

        port = get("port")
        identity = get("identity_file", "key_file", "key")
        known = get("known_hosts", "known_hosts_file")
        return cls(host=get("host", "hostname"), port=int(port) if port is not None else None,
                   user=get("user", "username"), identity_file=str(identity) if identity else None,
                   known_hosts=str(known) if known else None, transport=get("transport"),
                   control_persist=get("control_persist"))


def wrap_for_streaming(script: str) -> str:
    """Wrap ``script`` so that when the client goes away (stdin closes) everything it started dies too.

    Sent to ``bash -s`` with stdin left open: bash reads the whole ``{ ...; }`` group before running any
    of it, so the watcher's ``cat`` sees only the client's end-of-input, then kills the process group
    (sshd gives each session its own; ``LocalRemote`` starts a new session). ``tail -F`` would otherwise
    linger on the login node after ``atlas-sweeps tail`` stops.
    """
    return (
        "{\n"
        "__atlas_stream() {\n"
        f"{script}\n"
        "}\n"
        "exec 3<&0\n"
        "__atlas_stream </dev/null 3<&- &\n"
        "__atlas_job=$!\n"
        "{ cat >/dev/null 2>&1; kill -TERM 0; } <&3 >/dev/null 2>&1 &\n"
        "wait \"$__atlas_job\"\n"
        "exit $?\n"
        "}\n"
    )
