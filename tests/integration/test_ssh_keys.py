"""Passphrase-protected keys against the sandbox's sshd, through the real CLI (``tail`` of a job: it logs in
and streams the job's log): a key loaded in ssh-agent is used without a question; without an agent the passphrase is asked once on the terminal; a wrong passphrase
or no terminal is a one-line error that says to run ssh-add."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.test_launch import CLI, Workspace, make_workspace

pytestmark = pytest.mark.skipif(not Path("/usr/bin/ssh-agent").exists(), reason="needs OpenSSH's ssh-agent")

PROMPT = "Enter passphrase for key"
PROMPT_RE = PROMPT + r" '(.*)': "


@pytest.fixture(scope="module")
def workspace(sandbox: SandboxCluster, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace with profile ``passkey``: the sandbox profile with the passphrase-protected key; no agent."""
    ws = make_workspace(tmp_path_factory.mktemp("keys"), sandbox)
    base = sandbox.profiles["sandbox"].read_text()
    ws.add_profile("passkey", re.sub(r'identity_file = ".*"', f'identity_file = "{sandbox.key_passphrase}"', base))
    for name in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        ws.env.pop(name, None)
    return ws


@pytest.fixture
def agent(workspace: Workspace, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh ssh-agent (ended by its pid afterwards); yields the environment that points at it."""
    out = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout
    values = dict(re.findall(r"(SSH_AUTH_SOCK|SSH_AGENT_PID)=([^;]+);", out))
    try:
        yield {**workspace.env, **values}
    finally:
        os.kill(int(values["SSH_AGENT_PID"]), signal.SIGTERM)


def ssh_add(env: dict[str, str], key: Path, passphrase_file: Path, tmp_path: Path) -> None:
    """ssh-add ``key``, its passphrase given by an SSH_ASKPASS program that reads the 0600 file (no argv)."""
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\nexec cat {passphrase_file}\n")
    askpass.chmod(0o700)
    subprocess.run(["ssh-add", str(key)], env={**env, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"},
                   stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=30)


def fingerprint(key: Path) -> str:
    return subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def logins_with(sandbox: SandboxCluster, key: Path) -> int:
    """How many logins of the cluster user with ``key`` sshd has logged."""
    time.sleep(0.3)  # sshd writes its log asynchronously
    pattern = rf"Accepted publickey for {sandbox.user} from .* {re.escape(fingerprint(key))}$"
    return len(re.findall(pattern, sandbox.sshd_log.read_text(), flags=re.M))


def submit_job(workspace: Workspace, marker: str) -> str:
    """A short Slurm job that prints ``marker``, submitted with the plain key; its id."""
    return workspace.ssh(f"sbatch --parsable -p debug -t 1 --mem=50M -o keytest-%j.out --wrap 'echo {marker}'").strip()


def run_without_terminal(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with no controlling terminal and stdin at EOF, as from cron or CI."""
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, start_new_session=True)


def test_key_in_ssh_agent_is_used_without_asking(workspace: Workspace, agent: dict[str, str], tmp_path: Path) -> None:
    sandbox = workspace.sandbox
    ssh_add(agent, sandbox.key_passphrase, sandbox.passphrase_file, tmp_path)
    job = submit_job(workspace, "hello-from-the-agent")
    before = logins_with(sandbox, sandbox.key_passphrase)
    result = run_without_terminal(agent, workspace.project, "tail", job, "--cluster", "passkey")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello-from-the-agent"]
    assert PROMPT not in result.stderr
    assert logins_with(sandbox, sandbox.key_passphrase) - before == 1


def test_passphrase_is_asked_once_on_the_terminal_without_an_agent(workspace: Workspace) -> None:
    import pexpect

    sandbox = workspace.sandbox
    job = submit_job(workspace, "hello-from-the-prompt")
    before = logins_with(sandbox, sandbox.key_passphrase)
    child = pexpect.spawn(CLI[0], [*CLI[1:], "tail", job, "--cluster", "passkey"], cwd=str(workspace.project),
                          env=workspace.env, encoding="utf-8", timeout=120)
    child.expect(PROMPT_RE)
    assert child.match.group(1) == str(sandbox.key_passphrase)
    child.sendline(sandbox.passphrase_file.read_text().strip())
    child.expect(pexpect.EOF)
    child.close()
    output = child.before or ""
    assert child.exitstatus == 0, output
    assert "hello-from-the-prompt" in output
    assert PROMPT not in output  # asked once: nothing asked after the answer
    assert sandbox.passphrase_file.read_text().strip() not in output  # not echoed
    assert logins_with(sandbox, sandbox.key_passphrase) - before == 1


def test_wrong_passphrase_is_one_line_that_says_to_run_ssh_add(workspace: Workspace) -> None:
    import pexpect

    child = pexpect.spawn(CLI[0], [*CLI[1:], "tail", "1", "--cluster", "passkey"], cwd=str(workspace.project),
                          env=workspace.env, encoding="utf-8", timeout=60)
    child.expect(PROMPT_RE)
    child.sendline("not-the-passphrase")
    child.expect(pexpect.EOF)
    child.close()
    lines = [line for line in (child.before or "").splitlines() if line.strip()]
    assert child.exitstatus == 2, lines
    assert len(lines) == 1 and "wrong passphrase" in lines[0] and "ssh-add" in lines[0], lines


def test_no_terminal_and_no_agent_is_one_line_that_says_to_run_ssh_add(workspace: Workspace) -> None:
    result = run_without_terminal(workspace.env, workspace.project, "tail", "1", "--cluster", "passkey")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "passphrase-protected" in lines[0] and "ssh-add" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
