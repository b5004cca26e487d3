"""The relay rsync runs as its ``--rsh`` program: it hands its argv and stdin/stdout/stderr to the parent
atlas-sweeps process over a Unix socket, so the transfer rides the parent's already-open SSH session.

Standard library only and run with ``python -I -S`` so it starts fast; rsync starts it once per transfer.
Invoked by rsync as ``RELAY SOCKET [-l USER] HOST rsync --server ...``.
"""

from __future__ import annotations

import json
import os
import socket
import sys

# ssh options rsync may put before the host that take a value; they mean nothing on an open session.
_OPTIONS_WITH_VALUE = frozenset({"-l", "-p", "-o", "-i", "-F", "-J", "-c", "-m", "-b", "-E", "-S"})


def relay_command_line(argv: list[str]) -> str:
    """The remote command line from ssh-style argv: drop options and the host, join the rest with spaces.

    rsync (3.2.4+) has already backslash-escaped each argument for the remote shell, so quoting them again
    would break them; ssh joins with spaces too.
    """
    index = 0
    while index < len(argv) and argv[index].startswith("-") and argv[index] != "--":
        option = argv[index]
        index += 2 if option in _OPTIONS_WITH_VALUE else 1
    if index < len(argv) and argv[index] == "--":
        index += 1
    if index >= len(argv) - 1:
        raise ValueError(f"relay: expected HOST COMMAND..., got {argv!r}")
    return " ".join(argv[index + 1:])


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: _relay_main SOCKET [-l USER] HOST COMMAND...", file=sys.stderr)
        return 255
    try:
        line = relay_command_line(argv[2:])
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 255
    # rsync hands us a non-blocking stdout; the parent's blocking writes would fail with EAGAIN.
    for fd in (0, 1, 2):
        os.set_blocking(fd, True)
    payload = json.dumps({"command": line}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(argv[1])
        except OSError as exc:
            print(f"relay: cannot reach the atlas-sweeps session at {argv[1]}: {exc}", file=sys.stderr)
            return 255
        socket.send_fds(sock, [payload], [0, 1, 2])
        # Only the parent's copies may stay open, so rsync sees EOF when the remote side ends.
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(64)
            if not chunk:
                break
            reply += chunk
    try:
        return int(reply.strip())
    except ValueError:
        return 255


if __name__ == "__main__":
    sys.exit(main(sys.argv))
