"""The sandbox cluster, used as a researcher uses a cluster: over real SSH with strict host keys, real
sbatch/squeue/sacct, a 2FA login; and the sandbox's own lifecycle (down one component, up again)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import paramiko
import pytest

from atlas_sweeps.errors import SandboxError
from atlas_sweeps.sandbox import daemons, down, status, up
from tests.integration.conftest import SandboxCluster


def _ssh(sb: SandboxCluster, command: str, *, timeout: float = 30, **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run(sb.ssh_argv(command, **kw), capture_output=True, text=True, timeout=timeout)


def test_squeue_over_ssh_with_strict_host_key_checking(sandbox: SandboxCluster) -> None:
    proc = _ssh(sandbox, "squeue")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:4] == ["JOBID", "PARTITION", "NAME", "USER"]


def test_sbatch_parsable_over_ssh_returns_a_job_id(sandbox: SandboxCluster) -> None:
    proc = _ssh(sandbox, "sbatch --parsable --job-name=sb-id --wrap 'true'")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip().splitlines()[-1].split(";")[0]
    assert job_id.isdigit()


def test_array_job_completes_and_sacct_reports_every_task(sandbox: SandboxCluster) -> None:
    proc = _ssh(sandbox, "cd /tmp && sbatch --parsable --array=0-2 --job-name=sb-array "
                         "--output=/dev/null --wrap 'source ~/venv/bin/activate 2>/dev/null; sleep 1'")
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    rows: dict[str, str] = {}
    deadline = time.monotonic() + 90  # generous: accounting records arrive after the tasks end
    while time.monotonic() < deadline:
        out = _ssh(sandbox, f"sacct -X --parsable2 --noheader -j {job} --format=JobID,State,ExitCode").stdout
        rows = {line.split("|")[0]: line.split("|")[1] for line in out.splitlines() if "|" in line}
        if len(rows) == 3 and all(state == "COMPLETED" for state in rows.values()):
            break
        time.sleep(1)
    assert rows == {f"{job}_{i}": "COMPLETED" for i in range(3)}


def test_two_factor_user_needs_key_and_password(sandbox: SandboxCluster) -> None:
    known = paramiko.HostKeys(str(sandbox.known_hosts))
    expected = known.lookup(f"[{sandbox.host}]:{sandbox.port}")
    assert expected is not None
    key = paramiko.Ed25519Key.from_private_key_file(str(sandbox.key_2fa))

    def transport() -> paramiko.Transport:
        t = paramiko.Transport((sandbox.host, sandbox.port))
        t.start_client(timeout=10)
        server_key = t.get_remote_server_key()
        assert expected[server_key.get_name()] == server_key  # strict host-key check
        return t

    t = transport()
    try:  # the key alone is not enough: the server asks for a password next
        assert t.auth_publickey(sandbox.user_2fa, key) == ["password"]
        assert not t.is_authenticated()
        assert t.auth_password(sandbox.user_2fa, sandbox.password_2fa) == []
        assert t.is_authenticated()
        chan = t.open_session()
        chan.exec_command("squeue --noheader --me; echo ok")
        assert chan.recv_exit_status() == 0
        assert chan.makefile().read().decode().strip().endswith("ok")
    finally:
        t.close()

    t = transport()
    try:  # and neither is the password alone
        with pytest.raises(paramiko.BadAuthenticationType):
            t.auth_password(sandbox.user_2fa, sandbox.password_2fa)
        assert not t.is_authenticated()
    finally:
        t.close()

    assert _ssh(sandbox, "true", user=sandbox.user_2fa, key=sandbox.key_2fa).returncode == 255


def test_down_sshd_ends_open_sessions_and_up_brings_it_back(sandbox: SandboxCluster) -> None:
    session = subprocess.Popen(sandbox.ssh_argv("echo $$; exec sleep 300"), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        remote_pid = int(session.stdout.readline())  # the remote shell, then sleep (exec keeps the pid)
        assert daemons.pid_alive(remote_pid)
        assert down(only="sshd") == ["sshd"]
        assert session.wait(timeout=15) != 0
        assert daemons.wait_until(lambda: not daemons.pid_alive(remote_pid), timeout=10)
        assert not daemons.port_open(sandbox.port)
        assert not status().ok
    finally:
        session.kill()
        session.wait()
    info = up(install_venv=False)
    assert info.started == ("sshd",)
    assert _ssh(sandbox, "squeue --noheader").returncode == 0


def test_up_refuses_a_port_taken_by_another_program(sandbox: SandboxCluster) -> None:
    down(only="sshd")
    squatter = subprocess.Popen([sys.executable, "-c", (
        "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {sandbox.port})); s.listen(); print('ok', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout.readline().strip() == "ok"
        with pytest.raises(SandboxError, match=f"port {sandbox.port} .* in use by python"):
            up(install_venv=False)
    finally:
        squatter.kill()
        squatter.wait()
    up(install_venv=False)
    assert status().ok


def test_warm_up_is_quick_and_status_json_reports_every_component(sandbox: SandboxCluster) -> None:
    t0 = time.monotonic()
    info = up()
    assert info.started == ()
    assert time.monotonic() - t0 < 10
    proc = subprocess.run([sys.executable, "-m", "atlas_sweeps", "sandbox", "status", "--json"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["components"]] == ["munge", "mariadb", "slurmdbd", "slurmctld",
                                                         "slurmd", "sshd"]
    assert all(c["alive"] and c["answering"] and c["pid"] for c in report["components"])
