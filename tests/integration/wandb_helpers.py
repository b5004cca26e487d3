"""Shared helpers for integration tests that launch on the W&B backend: an isolated workspace whose profiles
point at the W&B stand-in, and the sandbox user's ``wandb login`` (a private ~/.netrc entry) for it."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import SandboxCluster
from tests.standin.server import StandinServer

ROOT = Path(__file__).resolve().parents[2]
CLI = [str(ROOT / ".venv" / "bin" / "atlas-sweeps")]


@dataclass
class WandbWorkspace:
    """A user's project, config and state dirs (isolated), with profiles pointing at the stand-in."""

    project: Path
    env: dict[str, str]
    sandbox: SandboxCluster
    standin: StandinServer
    wandb_project: str

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], cwd=self.project, env=env or self.env, capture_output=True, text=True,
                              timeout=timeout)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.cli(*args)
        assert result.returncode == 0, f"atlas-sweeps {' '.join(args)}: {result.stdout}\n{result.stderr}"
        return result

    def slurm(self, *argv: str) -> str:
        """A Slurm client command run here as root (the sandbox's daemons are local; SSH may be restarted
        by other tests meanwhile)."""
        return subprocess.run(list(argv), env=self.sandbox.slurm_env, capture_output=True, text=True,
                              timeout=60).stdout

    def add_profile(self, name: str, *, backend: str, base_url: str) -> None:
        base = (self.sandbox.profiles[self.sandbox.profile]).read_text()
        base = re.sub(r"(?m)^backend\s*=.*$", "", base)
        head, sep, slurm = base.partition("[slurm]")
        text = f'{head}backend = "{backend}"\n\n{sep}{slurm}\n[wandb]\nbase_url = "{base_url}"\n'
        (Path(self.env["XDG_CONFIG_HOME"]) / "atlas-sweeps" / "clusters" / f"{name}.toml").write_text(text)

    def sacct(self, job_ids: list[str]) -> dict[str, str]:
        out = self.slurm("sacct", "-X", "-n", "-P", "-o", "JobID,State,ExitCode", "-j", ",".join(job_ids))
        return {line.split("|")[0]: "|".join(line.split("|")[1:]) for line in out.splitlines() if "|" in line}

    def wait_for_tasks(self, job_ids: list[str], count: int, *, timeout: float = 240) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.sacct(job_ids)
            done = {k: v for k, v in states.items() if "[" not in k and not re.search(r"PENDING|RUNNING", v)}
            if len(done) >= count:
                return done
            time.sleep(2)
        raise AssertionError(f"tasks did not finish in {timeout} s: {states}")


def cluster_login(sandbox: SandboxCluster, standin: StandinServer) -> Iterator[None]:
    """The sandbox user's ``wandb login`` for the stand-in: a 0600 ~/.netrc entry written as that user (the key
    goes over stdin, never on a command line); removed afterwards."""
    machine = f"{standin.host}:{standin.port}"
    entry = f"machine {machine}\n  login user\n  password {standin.api_key}\n"
    drop = f"awk -v m={machine} '$1==\"machine\"{{skip=($2==m)}} !skip' ~/.netrc 2>/dev/null"
    # Under a lock: test files running in parallel (make test) log in to their own stand-ins at once.
    lock = "exec 9>>~/.netrc.lock && flock 9 && "
    _ssh_retrying(sandbox, f"{lock}umask 077; {{ {drop}; cat; }} > ~/.netrc.new && mv ~/.netrc.new ~/.netrc", entry)
    try:
        yield
    finally:
        _ssh_retrying(sandbox, f"{lock}umask 077; {drop} > ~/.netrc.new && mv ~/.netrc.new ~/.netrc", "")


def _ssh_retrying(sandbox: SandboxCluster, command: str, stdin: str) -> None:
    """Run ``command`` as the sandbox user; other tests may restart sshd meanwhile, so retry a few times."""
    for attempt in range(10):
        result = subprocess.run(sandbox.ssh_argv(command), input=stdin, text=True, capture_output=True, timeout=60)
        if result.returncode == 0:
            return
        if result.returncode != 255 or attempt == 9:
            raise AssertionError(f"ssh {command!r} failed: {result.stderr}")
        time.sleep(2)


def make_workspace(tmp: Path, sandbox: SandboxCluster, standin: StandinServer, *, label: str) -> WandbWorkspace:
    project = tmp / "project"
    shutil.copytree(ROOT / "configs", project, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp / "config" / "atlas-sweeps" / "clusters").mkdir(parents=True)
    (tmp / "wandb-config").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "XDG_", "ATLAS_"))}
    env.update(XDG_CONFIG_HOME=str(tmp / "config"), ATLAS_SWEEPS_STATE_DIR=str(tmp / "state"), NO_COLOR="1",
               COLUMNS="200", WANDB_API_KEY=standin.api_key, NETRC=str(tmp / "no-netrc"),
               WANDB_CONFIG_DIR=str(tmp / "wandb-config"), WANDB_ERROR_REPORTING="false")
    ws = WandbWorkspace(project=project, env=env, sandbox=sandbox, standin=standin,
                        wandb_project=f"it-{label}-{secrets.token_hex(3)}")
    ws.add_profile("sbw", backend="wandb", base_url=standin.base_url)
    return ws


def with_login(ws: WandbWorkspace) -> Iterator[WandbWorkspace]:
    """Yield ``ws`` while the sandbox user is logged in to its stand-in (for module fixtures)."""
    for _ in cluster_login(ws.sandbox, ws.standin):
        yield ws
