"""Processes by pid: find ours, tell alive from stale, check ports, stop with TERM then KILL.

"Ours" means a process whose command line names a path inside the sandbox directory, so a system Slurm,
MariaDB or sshd on the same machine is never touched."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path

_PROC = Path("/proc")


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None when the file is missing or holds no number."""
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, PermissionError):
        return None
    return int(text) if text.isdigit() else None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(")") + 2:].split()


def pid_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined with spaces ('' when gone)."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def exe_name(pid: int) -> str:
    """Basename of the process's binary; its comm name when /proc/PID/exe is unreadable (not root)."""
    try:
        return os.path.basename(os.readlink(_PROC / str(pid) / "exe"))
    except FileNotFoundError:
        return ""
    except OSError:
        return _comm(pid)


def process_root(pid: int) -> Path | None:
    """The process's root directory (a chroot's path for a process inside one); None when unreadable."""
    try:
        return Path(os.readlink(_PROC / str(pid) / "root"))
    except OSError:
        return None


def all_pids() -> list[int]:
    return [int(p.name) for p in _PROC.iterdir() if p.name.isdigit()]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` in the process tree."""
    children: dict[int, list[int]] = {}
    for p in all_pids():
        ppid = parent_pid(p)
        if ppid is not None:
            children.setdefault(ppid, []).append(p)
    out: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def port_open(port: int, *, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unix_socket_open(path: Path, *, timeout: float = 0.5) -> bool:
    """True when something accepts connections on the Unix socket at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        sock.close()


_TCP_LISTEN = "0A"
_TCP_ESTABLISHED = "01"


def parse_proc_net_tcp(text: str, *, port: int, state: str) -> set[int]:
    """Socket inodes in /proc/net/tcp{,6} text whose local port is ``port`` and state is ``state``
    (hex, as the kernel writes it: 0A listening, 01 established)."""
    inodes = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == state:
            inodes.add(int(fields[9]))
    return inodes


def _socket_owners(inodes: set[int]) -> list[tuple[str, int]]:
    """(process name, pid) of every process holding one of the socket ``inodes`` open."""
    wanted = {f"socket:[{i}]" for i in inodes if i}
    owners = []
    if not wanted:
        return owners
    for pid in all_pids():
        try:
            fds = os.listdir(_PROC / str(pid) / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(_PROC / str(pid) / "fd" / fd) in wanted:
                    owners.append((_comm(pid), pid))
                    break
            except OSError:
                continue
    return owners


def _comm(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def _tcp_inodes(port: int, state: str) -> set[int]:
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            inodes |= parse_proc_net_tcp((_PROC / "net" / table).read_text(), port=port, state=state)
        except OSError:
            continue
    return inodes


def port_listeners(port: int) -> list[tuple[str, int]]:
    """Which processes listen on TCP ``port``, as (name, pid); read from /proc, no ss/lsof needed."""
    return _socket_owners(_tcp_inodes(port, _TCP_LISTEN))


def established_on_port(port: int) -> list[tuple[str, int]]:
    """Processes holding an established TCP connection whose local port is ``port`` (sshd's sessions)."""
    return _socket_owners(_tcp_inodes(port, _TCP_ESTABLISHED))


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop_pids(pids: Iterable[int], *, timeout: float = 10.0) -> list[int]:
    """Send TERM to each pid, wait up to ``timeout`` s, then KILL the survivors. Returns the pids signalled."""
    targets = [p for p in dict.fromkeys(pids) if p > 1 and pid_alive(p)]
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if not wait_until(lambda: not any(pid_alive(p) for p in targets), timeout=timeout):
        for pid in targets:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        wait_until(lambda: not any(pid_alive(p) for p in targets), timeout=5)
    return targets
