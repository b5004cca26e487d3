"""The one session a CLI invocation opens to a cluster: asked on the terminal for what the login needs
(a password, a one-time code, a key's passphrase), opened by the commands or handed to the services."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atlas_sweeps.config.profile import Profile
    from atlas_sweeps.remote import Remote


def password_prompt(prompt: str) -> str:
    """Ask on the terminal (for clusters that want a password or a one-time code after the key)."""
    import getpass

    return getpass.getpass(prompt.strip() + " " if prompt.strip() else "Password: ")


def open_session(profile: Profile, *, accept_new_host_key: bool) -> Remote:
    """The session to ``profile``'s login node (or this machine), asking on the terminal when it must."""
    from atlas_sweeps.remote import open_remote

    return open_remote(profile, accept_new_host_key=accept_new_host_key, password_prompt=password_prompt)


def remote_factory(*, accept_new_host_key: bool) -> Callable[[Profile], Remote]:
    """What a service calls with a profile to open this invocation's session to it."""

    def factory(profile: Profile) -> Remote:
        return open_session(profile, accept_new_host_key=accept_new_host_key)

    return factory
