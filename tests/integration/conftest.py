"""Integration fixtures: the sandbox cluster, brought up once per session by the project's own code
(``atlas_sweeps.sandbox.up``, the same as ``atlas-sweeps sandbox up``), and the ``integration`` marker."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

_HERE = Path(__file__).parent


# Files whose tests change what every session of the sandbox sees: ``make test`` runs them alone (``-m serial``),
# after the rest has run in parallel (``-n 4 --dist loadfile``: a file's tests stay on one worker).
SERIAL_FILES = {
    "test_status.py": "stops the sandbox's sshd mid-way",
    "test_trixie.py": "takes the trixie sandbox down and up",
    "test_resume_faults.py": "hooks the cluster user's .bashrc, counting every session's calls",
    "test_openssh.py": "counts the cluster user's logins in sshd's log",
    "test_ssh_keys.py": "counts the cluster user's logins in sshd's log",
    "test_remote.py": "counts logins in sshd's log",
    "test_rsync_versions.py": "puts other rsync versions on the cluster user's PATH",
    "test_sandbox.py": "runs sandbox up and down",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration with ``pytest.mark.integration``, and those of SERIAL_FILES with
    ``pytest.mark.serial``."""
    for item in items:
        path = Path(item.path)
        if _HERE in path.parents:
            item.add_marker(pytest.mark.integration)
            if path.name in SERIAL_FILES:
                item.add_marker(pytest.mark.serial)


@dataclass(frozen=True)
class SandboxCluster:
    """What a test needs to reach the sandbox: profiles, SSH endpoint, users, keys, files."""

    profile: str  # "sandbox": the cluster profile name the CLI takes
    profile_2fa: str  # "sandbox-2fa"
    host: str
    port: int
    user: str
    key: Path  # private key of ``user``
    key_passphrase: Path  # a second key of ``user``, passphrase-protected; its passphrase is in passphrase_file
    passphrase_file: Path
    known_hosts: Path
    user_2fa: str
    key_2fa: Path
    password_2fa: str
    password_file_2fa: Path
    sshd_log: Path
    dir: Path  # the sandbox directory
    slurm_conf: Path
    profiles: dict[str, Path]  # profile name -> TOML file written

    def ssh_argv(self, command: str, *, user: str | None = None, key: Path | None = None) -> list[str]:
        """An ``ssh`` command line with strict host-key checking that runs ``command`` on the login node."""
        return ["ssh", "-p", str(self.port), "-i", str(key or self.key), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "ConnectTimeout=10", f"{user or self.user}@{self.host}", command]

    @property
    def slurm_env(self) -> dict[str, str]:
        """Environment for running Slurm's client commands locally, as root."""
        return {**os.environ, "SLURM_CONF": str(self.slurm_conf)}


# ATLAS_TEST_TRANSPORT=openssh runs the suite on the sandbox's openssh profiles (`make test-openssh`).
_TRANSPORT = "-openssh" if os.environ.get("ATLAS_TEST_TRANSPORT") == "openssh" else ""


def _quiet_log(message: str) -> None:
    print(f"sandbox: {message}", file=sys.stderr)


@pytest.fixture(scope="session")
def sandbox() -> SandboxCluster:
    """The sandbox cluster, up (installs packages and starts daemons when needed; seconds when warm)."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox cluster needs root")
    from atlas_sweeps.sandbox import up

    info = up(log=_quiet_log)
    s, p = info.settings, info.paths
    return SandboxCluster(
        profile=f"sandbox{_TRANSPORT}", profile_2fa=f"sandbox-2fa{_TRANSPORT}", host="127.0.0.1", port=s.ssh_port, user=s.user,
        key=p.user_key(s.user), key_passphrase=p.passphrase_key(s.user),
        passphrase_file=p.key_passphrase_file(s.user), known_hosts=p.known_hosts, user_2fa=s.user_2fa,
        key_2fa=p.user_key(s.user_2fa), password_2fa=p.password_file(s.user_2fa).read_text().strip(),
        password_file_2fa=p.password_file(s.user_2fa), sshd_log=p.log_file("sshd"), dir=p.root,
        slurm_conf=p.slurm_conf, profiles=dict(info.profiles))


@pytest.fixture(scope="session")
def sandbox_trixie() -> SandboxCluster:
    """The second sandbox: Debian 13 in a chroot (Slurm 24.11 without accounting, OpenSSH 10, python3 only),
    up (builds the chroot the first time, about a minute or two; a second or so when warm)."""
    if os.geteuid() != 0:
        pytest.skip("the sandbox cluster needs root")
    from atlas_sweeps.sandbox import release_lifecycle

    info = release_lifecycle.up("trixie", log=_quiet_log)
    s, p = info.settings, info.paths
    known = dict(
        profile=f"sandbox-trixie{_TRANSPORT}", profile_2fa=f"sandbox-trixie-2fa{_TRANSPORT}", host="127.0.0.1",
        port=s.ssh_port,
        user=s.user, key=p.user_key(s.user), known_hosts=p.known_hosts, user_2fa=s.user_2fa,
        key_2fa=p.user_key(s.user_2fa), password_2fa=p.password_file(s.user_2fa).read_text().strip(),
        password_file_2fa=p.password_file(s.user_2fa), sshd_log=p.log_file("sshd"), dir=p.base,
        slurm_conf=p.inside("/etc/slurm/slurm.conf"), profiles=dict(info.profiles))
    # Fields the trixie sandbox has no counterpart for (such as a passphrase-protected key) stay None.
    absent = {f.name: None for f in fields(SandboxCluster) if f.name not in known}
    return SandboxCluster(**known, **absent)  # type: ignore[arg-type]


# What each sandbox stands for, recorded on every test that uses it (a user property, as ``record_property``
# makes, in the JUnit report, and a line in the test's captured output, shown when it fails): results that
# depend on the Slurm version or on accounting say which cluster they came from.
SANDBOX_LABELS = {
    "sandbox": "sandbox (host Debian 12: Slurm 22.05 with accounting, OpenSSH 9.2, python in a venv)",
    "sandbox_trixie": "sandbox-trixie (Debian 13 chroot: Slurm 24.11 without accounting, OpenSSH 10, python3 only)",
}


@pytest.fixture(autouse=True)
def _says_which_sandbox(request: pytest.FixtureRequest) -> None:
    for fixture, label in SANDBOX_LABELS.items():
        if fixture in request.fixturenames:
            request.node.user_properties.append(("sandbox", label))
            print(f"ran on {label}")


__all__ = ["SandboxCluster", "sandbox", "sandbox_trixie"]
