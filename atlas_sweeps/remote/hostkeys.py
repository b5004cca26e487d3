"""Strict host-key checking's messages (the login node's key is unknown, or changed) and its one write,
``--accept-new-host-key``'s line. fabric would silently trust unknown keys; we refuse them."""

from __future__ import annotations

import base64
import hashlib
import shlex
from pathlib import Path


def known_hosts_entry_name(host: str, port: int) -> str:
    """The name known_hosts uses for a host: ``host`` on port 22, else ``[host]:port`` (as OpenSSH writes)."""
    return host if port == 22 else f"[{host}]:{port}"


def sha256_fingerprint(key_base64: str) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a base64 public key blob."""
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def append_known_host(path: Path, entry_name: str, *, key_type: str, key_base64: str) -> None:
    """Add ``entry_name key_type key`` as a line of its own to known_hosts (creating the file and a 0700
    parent), even when the file does not end with a newline: glued to the last entry, neither would match."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        handle.seek(0, 2)
        if handle.tell():
            handle.seek(-1, 2)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write(f"{entry_name} {key_type} {key_base64}\n".encode())


def unknown_key_message(host: str, port: int, *, key_type: str, key_base64: str, known_hosts: str) -> str:
    """What to tell a user whose login node's key is not yet trusted, and how to check and accept it."""
    scan = f"ssh-keyscan -p {port} {shlex.quote(host)} | ssh-keygen -lf -"
    return (f"the host key of {host}:{port} is not in {known_hosts} ({key_type} {sha256_fingerprint(key_base64)}); "
            f"verify that fingerprint (e.g. `{scan}` from a trusted network, or your cluster's documentation), "
            f"then rerun with --accept-new-host-key to add it")


def changed_key_message(host: str, port: int, *, key_type: str, key_base64: str, known_hosts: str) -> str:
    """What to tell a user whose login node now shows a different key than known_hosts records."""
    entry = known_hosts_entry_name(host, port)
    return (f"the host key of {host}:{port} CHANGED ({key_type} now {sha256_fingerprint(key_base64)}, "
            f"not the one in {known_hosts}): someone may be intercepting the connection (man-in-the-middle), "
            f"or the host was reinstalled; refusing to connect. If your admins confirm the new key, remove the old "
            f"one with `ssh-keygen -f {shlex.quote(known_hosts)} -R {shlex.quote(entry)}` and connect again")
