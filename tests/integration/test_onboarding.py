"""Onboarding a cluster on the sandbox: ``cluster add`` from an ~/.ssh/config alias writes a profile with which
a launch succeeds unchanged; ``doctor`` names a broken set-up line, a missing partition and a missing W&B
login, each with its fix, and says ready for a good profile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.integration.conftest import SandboxCluster

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "atlas_sweeps"]


@pytest.fixture
def home(sandbox: SandboxCluster, tmp_path: Path) -> dict[str, str]:
    """A user with an ssh config alias for the sandbox's login node and no cluster profile yet."""
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True, mode=0o700)
    (ssh / "config").write_text(
        f"Host sbx\n  HostName {sandbox.host}\n  Port {sandbox.port}\n  User {sandbox.user}\n"
        f"  IdentityFile {sandbox.key}\n  UserKnownHostsFile {sandbox.known_hosts}\n")
    project = tmp_path / "project"
    shutil.copytree(ROOT / "configs", project, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "XDG_", "ATLAS_", "SSH_AUTH"))}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               ATLAS_SWEEPS_STATE_DIR=str(tmp_path / "state"), NO_COLOR="1", COLUMNS="160",
               ATLAS_SWEEPS_CONTROL_DIR=str(tmp_path / "cm"), PROJECT=str(project))
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=env["PROJECT"], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_cluster_add_from_an_ssh_alias_writes_a_profile_a_launch_uses_unchanged(home: dict[str, str]) -> None:
    added = _cli(home, "cluster", "add", "mine", "--host", "sbx", "--yes")
    assert added.returncode == 0, added.stdout + added.stderr
    path = Path(home["XDG_CONFIG_HOME"]) / "atlas-sweeps" / "clusters" / "mine.toml"
    written = tomllib.loads(path.read_text())
    assert written["host"] == "sbx" and "port" not in written and "user" not in written  # the alias says them
    assert written["setup"] == ["source ~/venv/bin/activate"] and written["slurm"]["partition"] == "debug"
    assert "Slurm 22.05" in added.stdout and "partition debug" in added.stdout
    assert "atlas-sweeps doctor --cluster mine" in added.stderr
    listed = json.loads(_cli(home, "cluster", "ls", "--json").stdout)
    assert [c["name"] for c in listed["clusters"]] == ["mine"]
    assert 'host = "sbx"' in _cli(home, "cluster", "show", "mine").stdout
    launched = _cli(home, "launch", "composite_grid", "--cluster", "mine", "--nodes", "2", "--json")
    assert launched.returncode == 0, launched.stderr
    waited = _cli(home, "status", "--wait", "--timeout", "300", "--json", "--launch", json.loads(launched.stdout)["launch"],
                  timeout=400)
    assert waited.returncode == 0, waited.stdout[-2000:] + waited.stderr
    tasks = [t for launch in json.loads(waited.stdout)["launches"] for s in launch["sweeps"] for t in s["tasks"]]
    assert len(tasks) == 6 and {t["state"] for t in tasks} == {"COMPLETED"}
    again = _cli(home, "cluster", "add", "mine", "--host", "sbx", "--yes")
    assert again.returncode == 2 and "exists already" in again.stderr and "--force" in again.stderr


def test_cluster_add_asks_before_writing_and_probes_compute_nodes_on_request(home: dict[str, str]) -> None:
    quiet = _cli(home, "cluster", "add", "other", "--host", "sbx")  # no terminal to confirm on
    assert quiet.returncode == 2 and "pass --yes" in quiet.stderr
    assert not (Path(home["XDG_CONFIG_HOME"]) / "atlas-sweeps" / "clusters" / "other.toml").exists()
    # A W&B server the compute nodes cannot reach (a closed loopback port): the local backend is proposed.
    probed = _cli(home, "cluster", "add", "other", "--host", "sbx", "--probe-compute", "--wandb-url",
                  "http://127.0.0.1:9", "--json")
    assert probed.returncode == 0, probed.stderr
    doc = json.loads(probed.stdout)
    assert doc["compute_reaches_wandb"] is False and doc["written"] is False
    assert 'backend = "local"' in doc["toml"] and any("cannot reach W&B" in r for r in doc["reasons"])
    bad = _cli(home, "cluster", "add", "x y", "--host", "sbx")
    assert bad.returncode == 2 and "not a plain name" in bad.stderr
    hostile = _cli(home, "cluster", "add", "x", "--host", "x$(id)")
    assert hostile.returncode == 2 and "not a valid host name" in hostile.stderr


def test_doctor_names_each_problem_with_its_fix(sandbox: SandboxCluster, home: dict[str, str]) -> None:
    clusters = Path(home["XDG_CONFIG_HOME"]) / "atlas-sweeps" / "clusters"
    clusters.mkdir(parents=True)
    good = sandbox.profiles["sandbox"].read_text()
    (clusters / "good.toml").write_text(good)
    broken = good.replace('setup = ["source /home/atlas/venv/bin/activate"]',
                          'setup = ["source /home/atlas/venv/bin/activate", "source /opt/nowhere/bin/activate"]')
    broken = broken.replace('partition = "debug"', 'partition = "gpu-a100"').replace('backend = "local"', 'backend = "wandb"')
    broken += '\n[wandb]\nbase_url = "http://127.0.0.1:9"\n'
    (clusters / "broken.toml").write_text(broken)
    ok = _cli(home, "doctor", "--cluster", "good")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ready: atlas-sweeps launch FILE --cluster good" in ok.stdout and "FAIL" not in ok.stdout
    out = _cli(home, "doctor", "--cluster", "broken")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout
    assert "FAIL set-up lines" in lines and "line 2 failed: 'source /opt/nowhere/bin/activate'" in lines
    assert "No such file or directory" in lines and "fix or remove that line of setup" in lines
    assert "FAIL partition" in lines and "no partition 'gpu-a100' (partitions: debug*)" in lines
    assert "FAIL W&B login" in lines and "wandb login --host http://127.0.0.1:9" in lines
    assert "would stop a launch" in lines
    doc = json.loads(_cli(home, "doctor", "--cluster", "broken", "--json").stdout)
    assert doc["ok"] is False and {c["name"] for c in doc["checks"] if c["status"] == "fail"} >= \
        {"set-up lines", "partition", "W&B login", "sbatch --test-only"}
