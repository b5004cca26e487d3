"""Strict host-key checking, as pure decisions and messages: is the login node's key the one in
known_hosts, unknown, or changed? fabric would silently trust unknown keys; we refuse them."""

from __future__ import annotations

import base64
import enum
import hashlib
import shlex
from collections.abc import Mapping


class HostKeyVerdict(enum.Enum):
    KNOWN = "known"
    UNKNOWN = "unknown"
    CHANGED = "changed"


def known_hosts_entry_name(host: str, port: int) -> str:
    """The name known_hosts uses for a host: ``host`` on port 22, else ``[host]:port`` (as OpenSSH writes)."""
    return host if port == 22 else f"[{host}]:{port}"


def host_key_verdict(known: Mapping[str, str], *, key_type: str, key_base64: str) -> HostKeyVerdict:
    """Compare the offered key with the known keys for this host (key type -> base64 blob).

    A known key of the same type with other bytes is a changed key; no key of that type is unknown.
    """
    stored = known.get(key_type)
    if stored is None:
        return HostKeyVerdict.UNKNOWN
    return HostKeyVerdict.KNOWN if stored == key_base64 else HostKeyVerdict.CHANGED


def sha256_fingerprint(key_base64: str) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a base64 public key blob."""
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_line(host: str, port: int, *, key_type: str, key_base64: str) -> str:
    """The line ``--accept-new-host-key`` appends to known_hosts."""
    return f"{known_hosts_entry_name(host, port)} {key_type} {key_base64}\n"


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
