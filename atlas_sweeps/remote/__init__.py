"""The ``Remote`` seam: the cluster's login node over one SSH session (``SshRemote``) or this machine
(``LocalRemote``). ``open_remote`` picks one from a profile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from atlas_sweeps.remote.base import Remote, RemoteTarget, Result
from atlas_sweeps.remote.local import LocalRemote

__all__ = ["LocalRemote", "Remote", "RemoteTarget", "Result", "open_remote"]


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
    # fabric and paramiko are slow to import; only SSH needs them
    from atlas_sweeps.remote.ssh import SshRemote

    return SshRemote.connect(target, accept_new_host_key=accept_new_host_key,
                             password_prompt=password_prompt)
