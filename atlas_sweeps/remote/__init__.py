"""The ``Remote`` seam: the cluster's login node over one SSH session (``SshRemote``) or this machine
(``LocalRemote``). ``open_remote`` picks one from a profile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from atlas_sweeps.remote.base import Remote, RemoteTarget, Result
from atlas_sweeps.remote.local import LocalRemote

__all__ = ["LocalRemote", "Remote", "RemoteTarget", "Result", "open_remote", "transport_of"]


def open_remote(profile_like: Any, *, accept_new_host_key: bool = False,
                password_prompt: Callable[[str], str] | None = None) -> Remote:
    """Open the session one CLI invocation uses: SSH when the profile names a host, else this machine.

    ``profile_like`` is a ``RemoteTarget``, a mapping or any object with ``host``, ``port``, ``user``,
    ``identity_file`` (or ``key_file``) and ``known_hosts`` attributes. ``password_prompt`` asks on a
    terminal for a password, one-time code or key passphrase; without it, login needs no such answer.
    """
    target = RemoteTarget.from_profile(profile_like)
    if target.is_local:
        return LocalRemote()
    if transport_of(target) == "openssh":
        from atlas_sweeps.remote.openssh import DEFAULT_PERSIST, OpenSshRemote

        return OpenSshRemote.connect(target, accept_new_host_key=accept_new_host_key,
                                     persist=target.control_persist or DEFAULT_PERSIST)
    # fabric and paramiko are slow to import; only their transport needs them
    from atlas_sweeps.remote.ssh import SshRemote

    return SshRemote.connect(target, accept_new_host_key=accept_new_host_key,
                             password_prompt=password_prompt)


def transport_of(target: RemoteTarget) -> str:
    """The profile's ``transport``; by default ``openssh`` when the user's ssh config already sets
    ControlMaster for the host (they want one login to serve many commands), else ``paramiko``."""
    if target.transport:
        return target.transport
    from atlas_sweeps.remote.openssh import uses_control_master

    return "openssh" if uses_control_master(target.host or "") else "paramiko"
