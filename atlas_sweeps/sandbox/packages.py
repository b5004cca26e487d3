"""The Debian packages the sandbox runs on, installed with apt-get when missing (root only)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from atlas_sweeps.errors import SandboxError, UsageError

PACKAGES: tuple[str, ...] = (
    "slurmctld", "slurmd", "slurm-client", "slurmdbd", "munge", "mariadb-server",
    "openssh-server", "openssh-client", "rsync", "tmux", "python3-venv",
)
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
_POLICY_BODY = "#!/bin/sh\n# atlas-sweeps sandbox: keep apt from starting daemons during its install.\nexit 101\n"


@dataclass(frozen=True)
class InstallResult:
    """What ``ensure_packages`` did: the packages it installed (empty when all were present)."""

    installed: tuple[str, ...]
    updated_lists: bool


def check_platform(*, os_release: Path = Path("/etc/os-release")) -> None:
    """Refuse, with a one-line reason, when not root or not on Debian/Ubuntu (exit 2)."""
    if os.geteuid() != 0:
        raise UsageError("the sandbox needs root: it installs packages, adds users and starts daemons",
                         hint="run it as root, e.g. `sudo atlas-sweeps sandbox up`")
    text = os_release.read_text() if os_release.exists() else ""
    ids = set()
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids.update(value.strip().strip('"').split())
    if not ({"debian", "ubuntu"} & ids) or shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        raise UsageError("the sandbox runs on Debian or Ubuntu only (it installs Debian's Slurm with apt-get)",
                         hint="use a Debian 12 machine or container")


def parse_dpkg_status(output: str) -> set[str]:
    """Installed package names from ``dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n'`` output."""
    installed = set()
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("ii"):
            installed.add(parts[0].split(":")[0])
    return installed


def missing_packages(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Which of ``packages`` dpkg does not list as installed."""
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *packages],
                          capture_output=True, text=True)
    have = parse_dpkg_status(proc.stdout)
    return [p for p in packages if p not in have]


def _needs_update(stderr: str) -> bool:
    return any(s in stderr for s in ("Unable to locate package", "has no installation candidate",
                                     "Failed to fetch", "404  Not Found", "404 Not Found"))


def ensure_packages(*, log: Callable[[str], None] = lambda _m: None,
                    packages: tuple[str, ...] = PACKAGES) -> InstallResult:
    """Install the missing packages with apt-get; run ``apt-get update`` only if an install fails for lack
    of package lists. A policy-rc.d exiting 101 is in place meanwhile, so apt starts no daemons."""
    missing = missing_packages(packages)
    if not missing:
        return InstallResult(installed=(), updated_lists=False)
    log(f"installing {' '.join(missing)} with apt-get")
    wrote_policy = False
    if not POLICY_RC_D.exists():
        POLICY_RC_D.write_text(_POLICY_BODY)
        POLICY_RC_D.chmod(0o755)
        wrote_policy = True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock_wait = ["-o", "DPkg::Lock::Timeout=600"]  # another apt run (say a background install) finishes first
    cmd = ["apt-get", *lock_wait, "install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold",
           *missing]
    updated = False
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 and _needs_update(proc.stderr + proc.stdout):
            log("package lists are missing or stale; running apt-get update")
            upd = subprocess.run(["apt-get", *lock_wait, "update"], capture_output=True, text=True, env=env,
                                 stdin=subprocess.DEVNULL)
            if upd.returncode != 0:
                raise SandboxError(f"apt-get update failed: {_last_line(upd.stderr)}",
                                   hint="check the machine's apt sources and network")
            updated = True
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise SandboxError(f"apt-get install {' '.join(missing)} failed: {_last_line(proc.stderr)}",
                               hint="run the same apt-get command by hand to see the whole output")
    finally:
        if wrote_policy:
            POLICY_RC_D.unlink(missing_ok=True)
    still = missing_packages(packages)
    if still:
        raise SandboxError(f"apt-get finished but these packages are still missing: {' '.join(still)}")
    return InstallResult(installed=tuple(missing), updated_lists=updated)


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"
