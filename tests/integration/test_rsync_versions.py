"""Relaunch after an edit with the rsync users really have: Debian 12's / Ubuntu 24.04's 3.2.7 security
updates fail every changed file against a *relative* ``--link-dest`` ("failed verification -- update
discarded"). This runs Debian's own 3.2.7 package on both ends (unpacked from the archive, first on PATH for
this machine and for the cluster user's SSH sessions) and a remote directory whose name a shell would split
or expand; also a Mac's rsync 2.6.9, refused before anything is created."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.test_launch import Workspace, make_workspace, wait_for_tasks

BASHRC = Path("/home/atlas/.bashrc")
_BEGIN, _END = "# >>> atlas-sweeps test: old rsync first on PATH\n", "# <<< atlas-sweeps test\n"


def _apt_versions() -> list[str]:
    out = subprocess.run(["apt-cache", "madison", "rsync"], capture_output=True, text=True).stdout
    return [line.split("|")[1].strip() for line in out.splitlines() if line.count("|") >= 2]


def _regressed_version() -> str | None:
    """A Debian rsync 3.2.x (3.2.4 or later: the versions with the backslash escaping and the regression)."""
    for _attempt in range(2):
        for version in _apt_versions():
            upstream = version.split("-")[0].split("+")[0]
            parts = upstream.split(".")
            if len(parts) >= 3 and parts[:2] == ["3", "2"] and parts[2].isdigit() and int(parts[2]) >= 4:
                return version
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, stdin=subprocess.DEVNULL)
    return None


@pytest.fixture(scope="module")
def old_rsync() -> Iterator[Path]:
    """Debian's rsync 3.2.7 package unpacked into a directory; yields its bin directory."""
    version = _regressed_version()
    if version is None:
        pytest.skip("the Debian archive no longer serves an rsync 3.2.x package")
    root = Path(tempfile.mkdtemp(prefix="atlas-rsync-"))
    try:
        subprocess.run(["apt-get", "download", f"rsync={version}"], cwd=root, check=True, capture_output=True,
                       stdin=subprocess.DEVNULL)
        [deb] = root.glob("rsync_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root / "pkg")], check=True)
        os.chmod(root, 0o755)
        bin_dir = root / "pkg" / "usr" / "bin"
        assert "version 3.2." in subprocess.run([str(bin_dir / "rsync"), "--version"], capture_output=True,
                                                text=True, check=True).stdout
        yield bin_dir
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def cluster_uses_old_rsync(old_rsync: Path, sandbox: SandboxCluster) -> Iterator[Path]:
    """The cluster user's SSH sessions find the old rsync first (bash reads ~/.bashrc for sshd commands)."""
    original = BASHRC.read_bytes()
    BASHRC.write_bytes(f"{_BEGIN}export PATH={old_rsync}:$PATH\n{_END}".encode() + original)
    try:
        yield old_rsync
    finally:
        BASHRC.write_bytes(original)


@pytest.fixture()
def workspace(sandbox: SandboxCluster, tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path, sandbox)


def test_relaunch_after_an_edit_works_with_debians_rsync_327_on_both_ends(
        workspace: Workspace, cluster_uses_old_rsync: Path) -> None:
    assert "version 3.2." in workspace.ssh("rsync --version | head -n 1")
    workspace.env["PATH"] = f"{cluster_uses_old_rsync}:{workspace.env['PATH']}"
    # a remote directory that a shell would split at the space and run the $(...) of
    canary = f"/tmp/atlas-rsync-canary-{os.getpid()}"
    profile = workspace.sandbox.profiles["sandbox"].read_text()
    odd_dir = f"/home/atlas/atlas sweeps $(touch {canary})"
    workspace.add_profile("oddsandbox", profile.replace('remote_dir = "/home/atlas/atlas-sweeps"',
                                                        f"remote_dir = {json.dumps(odd_dir)}"))
    first = workspace.launch_json("simple_grid", "--cluster", "oddsandbox")
    main = workspace.project / "main.py"
    main.write_text(main.read_text() + "\n# a one-line change\n")
    second = workspace.launch_json("simple_grid", "--cluster", "oddsandbox")
    assert second["snapshot"].startswith(odd_dir + "/snapshots/")
    assert second["snapshot_files_transferred"] == 1
    inodes = workspace.ssh(
        "stat -c %i " + " ".join(f"'{snap}/{name}'" for snap in (first["snapshot"], second["snapshot"])
                                 for name in ("simple_grid.yml", "main.py"))).split()
    assert inodes[0] == inodes[2], "unchanged files are hard-linked to the previous snapshot"
    assert inodes[1] != inodes[3], "the changed file is a new copy"
    jobs = [job["job_id"] for sweep in second["sweeps"] for job in sweep["jobs"]]
    states = wait_for_tasks(workspace, jobs, second["totals"]["runs"])
    assert set(states.values()) == {"COMPLETED"}, states
    assert not Path(canary).exists() and workspace.ssh(f"ls {canary} 2>/dev/null || true").strip() == ""


def test_a_macs_rsync_is_refused_before_anything_is_created(workspace: Workspace, tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "rsync").write_text("#!/bin/sh\necho 'rsync  version 2.6.9  protocol version 29'\n")
    (fake / "rsync").chmod(0o755)
    workspace.env["PATH"] = f"{fake}:{workspace.env['PATH']}"
    mark = workspace.sandbox.sshd_log.stat().st_size
    refused = workspace.cli("launch", "simple_grid", "--cluster", "sandbox", check=False)
    assert refused.returncode == 2, refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert "rsync 2.6.9 on this machine is too old" in line and "brew install rsync" in line
    assert json.loads(workspace.cli("ls", "--json").stdout) in ([], {"launches": []})
    with workspace.sandbox.sshd_log.open() as log:
        log.seek(mark)
        assert "Accepted" not in log.read(), "nothing may connect before the local rsync is checked"
