"""Which rsync runs on each end, and whether it can carry a snapshot (pure parsing, plus one local check).

Snapshots need rsync 3.1 or newer on this machine (``--info=progress2``; ``--protect-args`` so no path is
ever parsed by the remote shell, whatever escaping the rsync version does) and 3.0 or newer on the login
node. macOS ships rsync 2.6.9, or openrsync on recent releases: both are refused with the fix named.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import cache

from atlas_sweeps.errors import RemoteError, UsageError

LOCAL_MINIMUM = (3, 1, 0)
REMOTE_MINIMUM = (3, 0, 0)
_VERSION = re.compile(r"\brsync\s+version\s+v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class RsyncVersion:
    """What ``rsync --version`` said: the numeric version, or None for openrsync and unknown output."""

    text: str
    number: tuple[int, int, int] | None

    @property
    def label(self) -> str:
        if self.number is None:
            return self.text or "an unknown rsync"
        return "rsync " + ".".join(map(str, self.number))

    def at_least(self, minimum: tuple[int, int, int]) -> bool:
        return self.number is not None and self.number >= minimum


def parse_rsync_version(output: str) -> RsyncVersion:
    """Read the first line of ``rsync --version`` (samba rsync; openrsync has no numeric version we trust)."""
    first = next((line.strip() for line in output.splitlines() if line.strip()), "")
    if "openrsync" in output.lower():
        return RsyncVersion(text="openrsync", number=None)
    match = _VERSION.search(first)
    if match is None:
        return RsyncVersion(text=first[:60], number=None)
    major, minor, patch = (int(part or 0) for part in match.groups())
    return RsyncVersion(text=first, number=(major, minor, patch))


@cache
def local_rsync_version() -> RsyncVersion:
    """This machine's rsync (asked once per process)."""
    try:
        done = subprocess.run(["rsync", "--version"], capture_output=True, text=True, timeout=20,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise UsageError("rsync is not installed on this machine; launch copies your code with it",
                         hint="install rsync 3.1 or newer (Debian/Ubuntu: apt-get install rsync; "
                              "macOS: brew install rsync)") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"could not run this machine's rsync: {exc}", hint="check that `rsync --version` works") from None
    return parse_rsync_version(done.stdout + done.stderr)


def require_local_rsync() -> RsyncVersion:
    """This machine's rsync, or a one-line refusal that names the fix (before anything is created)."""
    version = local_rsync_version()
    if not version.at_least(LOCAL_MINIMUM):
        raise UsageError(f"{version.label} on this machine is too old to sync code (atlas-sweeps needs rsync 3.1 "
                         "or newer); nothing was created",
                         hint="macOS: `brew install rsync` and make sure `which rsync` finds it first on PATH; "
                              "Linux: install a current rsync from your distribution")
    return version


def check_remote_rsync(output: str, *, where: str) -> RsyncVersion:
    """The login node's rsync from its ``rsync --version`` output, or a RemoteError naming the fix."""
    if not output.strip():
        raise RemoteError(f"rsync is not installed on the login node {where}; launch copies your code with it",
                          hint="ask the cluster's admins to install rsync 3.0 or newer")
    version = parse_rsync_version(output)
    if not version.at_least(REMOTE_MINIMUM):
        raise RemoteError(f"{version.label} on the login node {where} is too old to receive a snapshot "
                          "(rsync 3.0 or newer is needed)", hint="ask the cluster's admins for a current rsync")
    return version
