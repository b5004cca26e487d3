"""The openssh transport on the sandbox: every command of a morning (launch, status, tail, cancel) goes through
one OpenSSH ControlMaster, so the 2FA user types the password once in total; a master that died is reopened
with one prompt; strict host keys as with paramiko; ``logout`` ends it. Counted in sshd's own log."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.test_launch import CLI, Workspace, make_workspace

SLOW = "program: slow.py\nmethod: grid\nparameters:\n  n:\n    values: [1, 2]\n"
SLOW_PY = ("import argparse, time\np = argparse.ArgumentParser(); p.add_argument('--n', type=int)\n"
           "a = p.parse_args()\nfor i in range(6):\n    print(f'step {i} n={a.n}', flush=True); time.sleep(0.5)\n")


@pytest.fixture
def ws(sandbox: SandboxCluster, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace whose masters live in a socket directory of its own (none open at the start)."""
    workspace = make_workspace(tmp_path, sandbox)
    control = tmp_path / "cm"
    workspace = replace(workspace, env={**workspace.env, "ATLAS_SWEEPS_CONTROL_DIR": str(control)})
    (workspace.project / "slow.yml").write_text(SLOW)
    (workspace.project / "slow.py").write_text(SLOW_PY)
    yield workspace
    workspace.cli("logout", check=False)  # no master outlives the test
    shutil.rmtree(control, ignore_errors=True)


def _accepted(sandbox: SandboxCluster, what: str) -> int:
    return sandbox.sshd_log.read_text().count(what)


def _masters(ws: Workspace) -> list[int]:
    """Pids of this workspace's ssh master processes."""
    control = ws.env["ATLAS_SWEEPS_CONTROL_DIR"]
    out = subprocess.run(["pgrep", "-f", f"ssh -M -N -f .*ControlPath={control}/"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _spawn(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    import pexpect

    return pexpect.spawn(CLI[0], [*CLI[1:], *args], cwd=str(ws.project), env=ws.env, encoding="utf-8", timeout=120)


def test_a_morning_of_commands_logs_in_once(ws: Workspace) -> None:
    sandbox = ws.sandbox
    profile = "sandbox-openssh"
    before = _accepted(sandbox, f"Accepted publickey for {sandbox.user}")
    doc = ws.launch_json("slow", "--cluster", profile, "--nodes", "2")
    job = doc["sweeps"][0]["jobs"][0]["job_id"]
    status = json.loads(ws.cli("status", "--once", "--json", "--launch", doc["launch"]).stdout)
    assert {t["job_id"] for s in status["launches"][0]["sweeps"] for t in s["tasks"]} == {f"{job}_0", f"{job}_1"}
    assert status["connections"][profile].startswith(f"openssh to {sandbox.user}@{sandbox.host}, master up")
    text = ws.cli("status", "--once", "--launch", doc["launch"]).stdout
    assert f"{profile}: openssh to {sandbox.user}@{sandbox.host}, master up" in text
    tail = ws.cli("tail", f"{job}_0", timeout=120)
    assert "step 5 n=1" in tail.stdout
    ws.cli("cancel", doc["launch"], "--yes")
    time.sleep(0.5)
    assert _accepted(sandbox, f"Accepted publickey for {sandbox.user}") - before == 1
    assert len(_masters(ws)) == 1
    out = ws.cli("logout", "--cluster", profile)
    assert "closed the SSH master connection" in out.stderr and _masters(ws) == []
    again = ws.cli("logout", "--cluster", profile)
    assert "no SSH master connection open" in again.stderr


def test_two_factor_user_types_the_password_once_for_launch_status_tail_and_cancel(ws: Workspace) -> None:
    sandbox = ws.sandbox
    profile = "sandbox-2fa-openssh"
    before = _accepted(sandbox, f"Accepted password for {sandbox.user_2fa}")
    child = _spawn(ws, "launch", "slow", "--cluster", profile, "--nodes", "2", "--json")
    child.expect("(?i)password")
    child.sendline(sandbox.password_2fa)
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0, child.before
    doc = json.loads(child.before[child.before.index("{"):])
    job = doc["sweeps"][0]["jobs"][0]["job_id"]
    # Each of these would ask again on the paramiko transport; a prompt now would hang them (no terminal).
    ws.cli("status", "--once", "--launch", doc["launch"])
    assert "step 5 n=2" in ws.cli("tail", f"{job}_1", timeout=120).stdout
    ws.cli("cancel", doc["launch"], "--yes")
    time.sleep(0.5)
    assert _accepted(sandbox, f"Accepted password for {sandbox.user_2fa}") - before == 1

    # The master died (a laptop's sleep, a network change): the next command asks once more, then none.
    for pid in _masters(ws):
        os.kill(pid, 9)
    child = _spawn(ws, "status", "--once", "--launch", doc["launch"])
    child.expect("(?i)password")
    child.sendline(sandbox.password_2fa)
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0, child.before
    ws.cli("status", "--once", "--launch", doc["launch"])
    time.sleep(0.5)
    assert _accepted(sandbox, f"Accepted password for {sandbox.user_2fa}") - before == 2


def test_without_a_terminal_the_2fa_login_fails_at_once_saying_what_to_do(ws: Workspace) -> None:
    t0 = time.monotonic()
    launch = ws.cli("launch", "slow", "--cluster", "sandbox-2fa-openssh", check=False, timeout=60)
    assert launch.returncode == 2, launch.stderr
    assert "refused the login" in launch.stderr and "terminal" in launch.stderr and "Traceback" not in launch.stderr
    assert time.monotonic() - t0 < 30 and _masters(ws) == []


def test_unknown_and_changed_host_keys_are_refused(ws: Workspace, tmp_path: Path) -> None:
    sandbox = ws.sandbox
    base = sandbox.profiles["sandbox-openssh"].read_text()
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    ws.add_profile("unknownkey", re.sub(r'known_hosts = ".*"', f'known_hosts = "{empty}"', base))
    result = ws.cli("launch", "slow", "--cluster", "unknownkey", check=False)
    assert result.returncode == 2, result.stderr
    assert "is not in" in result.stderr and "SHA256:" in result.stderr and "--accept-new-host-key" in result.stderr
    assert empty.read_text() == ""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    key_type, key = (tmp_path / "other.pub").read_text().split()[:2]
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[{sandbox.host}]:{sandbox.port} {key_type} {key}\n")
    ws.add_profile("changedkey", re.sub(r'known_hosts = ".*"', f'known_hosts = "{changed}"', base))
    result = ws.cli("launch", "slow", "--cluster", "changedkey", "--accept-new-host-key", check=False)
    assert result.returncode == 2 and "CHANGED" in result.stderr, result.stderr
    accepted = ws.cli("launch", "slow", "--cluster", "unknownkey", "--accept-new-host-key", check=False)
    assert accepted.returncode == 0, accepted.stderr
    # ssh recorded it (hashed, as Debian's ssh_config asks): ssh-keygen finds the host in the file now.
    found = subprocess.run(["ssh-keygen", "-F", f"[{sandbox.host}]:{sandbox.port}", "-f", str(empty)],
                           capture_output=True, text=True)
    assert found.returncode == 0 and "ssh-ed25519" in found.stdout, found.stdout + found.stderr


def pexpect_eof():  # type: ignore[no-untyped-def]
    import pexpect

    return pexpect.EOF



def test_the_live_table_survives_its_master_dying_with_one_prompt(ws: Workspace) -> None:
    """The 2FA user's live status: the master dies under it, ssh asks once on the terminal, the table goes on."""
    sandbox = ws.sandbox
    profile = "sandbox-2fa-openssh"
    child = _spawn(ws, "launch", "slow", "--cluster", profile, "--nodes", "1", "--json")
    child.expect("(?i)password")
    child.sendline(sandbox.password_2fa)
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0, child.before
    launch = json.loads(child.before[child.before.index("{"):])["launch"]
    session = f"atlas-openssh-{os.getpid()}"
    env = " ".join(f"{k}={ws.env[k]}" for k in ("ATLAS_SWEEPS_STATE_DIR", "XDG_CONFIG_HOME", "ATLAS_SWEEPS_CONTROL_DIR"))
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40"], check=True)
    try:
        _wait_pane(session, lambda t: t.strip() != "", timeout=10)
        subprocess.run(["tmux", "send-keys", "-t", session, f"cd {ws.project} && {env} {' '.join(CLI)} status "
                        f"--launch {launch} --interval 2", "Enter"], check=True)
        _wait_pane(session, lambda t: "last refresh" in t, timeout=30)
        before = _accepted(sandbox, f"Accepted password for {sandbox.user_2fa}")
        for pid in _masters(ws):
            os.kill(pid, 9)
        _wait_pane(session, lambda t: re.search(r"(?i)password:", t) is not None, timeout=30)
        subprocess.run(["tmux", "send-keys", "-t", session, sandbox.password_2fa, "Enter"], check=True)
        after = _wait_pane(session, lambda t: "COMPLETED" in t and "last refresh" in t, timeout=60)
        assert "Traceback" not in after
        assert _accepted(sandbox, f"Accepted password for {sandbox.user_2fa}") - before == 1
        assert len(_masters(ws)) == 1
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def _wait_pane(session: str, predicate, *, timeout: float) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
        if predicate(text):
            return text
        time.sleep(0.5)
    raise AssertionError(f"pane never matched; last capture:\n{text}")
