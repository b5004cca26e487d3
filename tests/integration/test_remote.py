"""The Remote seam against a real OpenSSH sshd on loopback: one login per CLI-sized workflow, rsync through
the relay, 2FA, strict host keys, snapshots with hard links, rsync errors, log streaming.

Uses a module-local sshd (own dir, own host key, port 2299 or a free one) with two users: ``rtsh``, whose
login shell is /bin/sh (dash, not bash), and ``rt2fa`` with ``AuthenticationMethods publickey,password``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from atlas_sweeps.errors import HostKeyError, RemoteError
from atlas_sweeps.remote import LocalRemote, RemoteTarget, open_remote
from atlas_sweeps.remote.snapshot import sync_snapshot

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists() or not shutil.which("rsync"),
                       reason="needs root, OpenSSH's sshd and rsync"),
]

SHELL_USER = "rtsh"
TWO_FACTOR_USER = "rt2fa"
TWO_FACTOR_PASSWORD = "s3cret-pw"


@dataclass
class Sshd:
    dir: Path
    port: int
    key: Path
    known_hosts: Path
    log: Path

    def target(self, user: str = SHELL_USER, **changes: object) -> RemoteTarget:
        values = dict(host="127.0.0.1", port=self.port, user=user, identity_file=str(self.key),
                      known_hosts=str(self.known_hosts))
        values.update(changes)
        return RemoteTarget(**values)  # type: ignore[arg-type]

    def log_mark(self) -> int:
        return self.log.stat().st_size

    def log_since(self, mark: int) -> str:
        time.sleep(0.2)  # sshd writes its log lines asynchronously to our calls returning
        with self.log.open() as handle:
            handle.seek(mark)
            return handle.read()


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise RuntimeError("no free port")


def _ensure_user(name: str, shell: str) -> None:
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", shell, name], check=True)
    subprocess.run(["usermod", "-s", shell, name], check=True)


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    # Not under pytest's tmp dir: sshd reads authorized_keys as the user, who cannot enter /tmp/pytest-of-root.
    root = Path(tempfile.mkdtemp(prefix="atlas-remote-sshd-"))
    root.chmod(0o755)
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    _ensure_user(SHELL_USER, "/bin/sh")
    subprocess.run(["usermod", "-p", "*", SHELL_USER], check=True)  # unlocked, no password
    _ensure_user(TWO_FACTOR_USER, "/bin/bash")
    subprocess.run(["chpasswd"], input=f"{TWO_FACTOR_USER}:{TWO_FACTOR_PASSWORD}", text=True, check=True)
    (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
    (root / "authorized_keys").chmod(0o644)
    port = _free_port(2299)
    config = root / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {root}/host_key
PidFile {root}/sshd.pid
UsePAM no
AuthorizedKeysFile {root}/authorized_keys
PasswordAuthentication yes
StrictModes no
LogLevel VERBOSE
Subsystem sftp /usr/lib/openssh/sftp-server
Match User {TWO_FACTOR_USER}
    AuthenticationMethods publickey,password
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    log = root / "sshd.log"
    subprocess.run(["/usr/sbin/sshd", "-f", str(config), "-E", str(log)], check=True)
    host_pub = (root / "host_key.pub").read_text().split()
    known = root / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    try:
        yield Sshd(dir=root, port=port, key=root / "user_key", known_hosts=known, log=log)
    finally:
        pid = int((root / "sshd.pid").read_text())
        os.kill(pid, 15)
        shutil.rmtree(root, ignore_errors=True)


def _clean(remote, path: str) -> None:  # type: ignore[no-untyped-def]
    remote.run_script(f"chmod -R u+w {path} 2>/dev/null; rm -rf {path}").check(what="cleanup")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "pkg").mkdir(parents=True)
    (proj / "data").mkdir()
    (proj / ".gitignore").write_text("data/\n*.ckpt\n")
    (proj / "data" / "big.bin").write_bytes(b"x" * 1000)
    (proj / "model.ckpt").write_text("weights")
    for i in range(20):
        (proj / "pkg" / f"m{i}.py").write_text(f"VALUE = {i}\n")
    (proj / "train.py").write_text("print('hi')\n")
    return proj


def test_scripts_run_under_bash_though_the_login_shell_is_dash(sshd: Sshd) -> None:
    remote = open_remote(sshd.target())
    try:
        shell = remote.run_script("getent passwd \"$(id -un)\" | cut -d: -f7").stdout.strip()
        assert shell == "/bin/sh"
        # [[ ]], arrays and $BASH_VERSION are bash-only: dash would fail on them.
        result = remote.run_script('arr=(a b c)\n[[ ${#arr[@]} -eq 3 ]] && echo "bash ${BASH_VERSION%%.*} ${arr[1]}"')
        assert result.ok and result.stdout.startswith("bash 5 b"), result
        failing = remote.run_script("echo to-stderr >&2; exit 7")
        assert (failing.exit_code, failing.stderr, failing.ok) == (7, "to-stderr\n", False)
    finally:
        remote.close()


def test_a_cli_sized_workflow_logs_in_exactly_once(sshd: Sshd, project: Path) -> None:
    mark = sshd.log_mark()
    remote = open_remote(sshd.target())
    try:
        _clean(remote, "wf")
        remote.run_script("mkdir -p wf/logs").check(what="mkdir")
        first = sync_snapshot(remote, local_dir=project, remote_root="~/wf", snapshot_name="s1",
                              previous=None, excludes=[])
        remote.run_script("cat > wf/job.sbatch <<'EOF'\n#!/bin/bash\necho hi\nEOF").check(what="write")
        (project / "train.py").write_text("print('changed')\n")
        second = sync_snapshot(remote, local_dir=project, remote_root="~/wf", snapshot_name="s2",
                               previous="s1", excludes=[])
        codes: list[int] = []
        workers = [threading.Thread(target=lambda i=i: codes.append(
            remote.rsync(["-a", f"{project}/", remote.rsync_path(f"wf/par{i}/")]).exit_code)) for i in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        listing = remote.run_script("ls wf/snapshots; ls wf/par3/pkg | wc -l").stdout.split()
        calls = remote.calls
    finally:
        remote.close()
    assert codes == [0, 0, 0, 0]
    assert listing == ["s1", "s2", "20"]
    assert first.files_transferred == 22 and second.files_transferred == 1
    assert calls >= 12
    log = sshd.log_since(mark)
    assert log.count(f"Accepted publickey for {SHELL_USER}") == 1, log


def test_two_factor_user_authenticates_once_for_several_rsyncs(sshd: Sshd, project: Path) -> None:
    prompts: list[str] = []

    def prompt(text: str) -> str:
        prompts.append(text)
        return TWO_FACTOR_PASSWORD

    mark = sshd.log_mark()
    remote = open_remote(sshd.target(TWO_FACTOR_USER), password_prompt=prompt)
    try:
        _clean(remote, "twofa")
        remote.run_script("mkdir twofa").check(what="mkdir")
        for i in range(3):
            remote.rsync(["-a", f"{project}/", remote.rsync_path(f"twofa/copy{i}/")]).check(what="rsync")
        assert remote.run_script("ls twofa").stdout.split() == ["copy0", "copy1", "copy2"]
    finally:
        remote.close()
    assert prompts == [f"{TWO_FACTOR_USER}@127.0.0.1:{sshd.port} password: "]
    log = sshd.log_since(mark)
    assert log.count(f"Partial publickey for {TWO_FACTOR_USER}") == 1, log
    assert log.count(f"Accepted password for {TWO_FACTOR_USER}") == 1, log


def test_two_factor_without_a_prompt_fails_with_a_clear_message(sshd: Sshd) -> None:
    with pytest.raises(RemoteError, match="asked for a password"):
        open_remote(sshd.target(TWO_FACTOR_USER))


def test_unknown_host_key_is_refused_until_accepted(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    with pytest.raises(HostKeyError) as refused:
        open_remote(sshd.target(known_hosts=str(known)))
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(sshd.dir / "host_key.pub")], capture_output=True,
                                 text=True, check=True).stdout.split()[1]
    assert fingerprint in str(refused.value)
    assert "--accept-new-host-key" in str(refused.value)
    assert refused.value.exit_code == 2
    assert not known.exists()
    known.parent.mkdir()
    other = "login.example.org " + " ".join((sshd.dir / "user_key.pub").read_text().split()[:2])
    known.write_text(other)  # edited by hand: no final newline
    open_remote(sshd.target(known_hosts=str(known)), accept_new_host_key=True).close()
    lines = known.read_text().splitlines()
    assert lines[0] == other and lines[1].startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ") and len(lines) == 2
    open_remote(sshd.target(known_hosts=str(known))).close()  # now trusted without the flag


def test_proxyjump_chain_from_ssh_config_checks_every_hops_host_key(sshd: Sshd, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host cluster\n  HostName 127.0.0.1\n  Port {sshd.port}\n  ProxyJump localhost:{sshd.port},127.0.0.1:{sshd.port}\n"
        f"Host *\n  User {SHELL_USER}\n  IdentityFile {sshd.key}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    known = tmp_path / "known_hosts"
    shutil.copy(sshd.known_hosts, known)  # knows [127.0.0.1]:port, not [localhost]:port
    target = RemoteTarget(host="cluster", known_hosts=str(known))
    with pytest.raises(HostKeyError, match=f"host key of localhost:{sshd.port} is not in"):
        open_remote(target)
    mark = sshd.log_mark()
    remote = open_remote(target, accept_new_host_key=True)
    try:
        assert remote.run_script("echo through two hops").stdout == "through two hops\n"
    finally:
        remote.close()
    assert f"[localhost]:{sshd.port} ssh-ed25519 " in known.read_text()
    assert sshd.log_since(mark).count(f"Accepted publickey for {SHELL_USER}") == 3  # two jump hosts, the target


def test_changed_host_key_is_always_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = (tmp_path / "other_key.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    for accept in (False, True):
        with pytest.raises(HostKeyError, match="CHANGED.*man-in-the-middle.*ssh-keygen .*-R"):
            open_remote(sshd.target(known_hosts=str(known)), accept_new_host_key=accept)
    assert known.read_text() == f"[127.0.0.1]:{sshd.port} {kind} {blob}\n"


def test_connection_refused_names_host_and_port(sshd: Sshd) -> None:
    with pytest.raises(RemoteError, match=r"cannot connect to 127\.0\.0\.1:1: .*check host and port"):
        open_remote(sshd.target(port=1))


def test_second_snapshot_transfers_one_file_and_hard_links_the_rest(sshd: Sshd, project: Path) -> None:
    remote = open_remote(sshd.target())
    try:
        _clean(remote, "snaps")
        first = sync_snapshot(remote, local_dir=project, remote_root="~/snaps", snapshot_name="a",
                              previous=None, excludes=["train.py"])
        (project / "pkg" / "m3.py").write_text("VALUE = 'changed'\n")
        second = sync_snapshot(remote, local_dir=project, remote_root="~/snaps", snapshot_name="b",
                               previous="a", excludes=["train.py"])
        inodes = remote.run_script(
            "cd snaps/snapshots && stat -c %i a/pkg/m1.py b/pkg/m1.py a/pkg/m3.py b/pkg/m3.py").stdout.split()
        listing = remote.run_script("cd snaps/snapshots/b && find . -type f | sort").stdout.split()
        writable = remote.run_script("find snaps/snapshots -mindepth 1 -perm /222 | wc -l").stdout.strip()
        with pytest.raises(RemoteError, match="already exists and is read-only"):
            sync_snapshot(remote, local_dir=project, remote_root="~/snaps", snapshot_name="a",
                          previous=None, excludes=[])
    finally:
        remote.close()
    assert first.files_transferred == 21
    assert (second.files_transferred, second.linked_to) == (1, "a")
    assert second.remote_path == f"/home/{SHELL_USER}/snaps/snapshots/b"
    assert inodes[0] == inodes[1] and inodes[2] != inodes[3]
    assert "./.gitignore" in listing and "./pkg/m0.py" in listing
    assert not any(p.startswith(("./data", "./model.ckpt", "./train.py")) for p in listing)
    assert writable == "0"


def test_rsync_errors_surface_with_rsyncs_message(sshd: Sshd, project: Path) -> None:
    remote = open_remote(sshd.target())
    try:
        _clean(remote, "ro")
        remote.run_script("mkdir -p ro/snapshots && chmod a-w ro/snapshots").check(what="mkdir")
        with pytest.raises(RemoteError, match=r"rsync of .* failed \(exit 11\): .*Permission denied"):
            sync_snapshot(remote, local_dir=project, remote_root="~/ro", snapshot_name="s", previous=None,
                          excludes=[])
        missing = remote.rsync(["-a", remote.rsync_path("no/such/dir/"), str(project / "out")])
        assert missing.exit_code == 23 and "No such file or directory" in missing.stderr
    finally:
        remote.close()


def test_stream_script_follows_a_log_and_stopping_kills_the_remote_tail(sshd: Sshd) -> None:
    remote = open_remote(sshd.target())
    try:
        remote.run_script("printf 'one\\ntwo\\n' > stream.log").check(what="write")
        lines: list[str] = []
        stop = threading.Event()

        def on_line(line: str) -> None:
            lines.append(line)
            if line == "three":
                stop.set()

        codes: list[int] = []
        follower = threading.Thread(target=lambda: codes.append(
            remote.stream_script("exec tail -n +1 -F stream.log", on_stdout=on_line, stop=stop)))
        follower.start()
        time.sleep(1.0)
        remote.run_script("echo three >> stream.log").check(what="append")
        follower.join(10)
        assert codes == [-1] and lines == ["one", "two", "three"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            alive = remote.run_script("pgrep -u \"$(id -u)\" -x tail | xargs -r ps -o stat= -p | grep -v Z || true")
            if not alive.stdout.strip():
                break
            time.sleep(0.2)
        assert not alive.stdout.strip()
        seen: list[str] = []
        assert remote.stream_script("echo a; echo b; exit 4", on_stdout=seen.append) == 4
        assert seen == ["a", "b"]
    finally:
        remote.close()


def test_local_remote_snapshots_and_scripts(tmp_path: Path, project: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    remote = LocalRemote(home=home)
    assert remote.run_script("echo $HOME; [[ -n $BASH_VERSION ]] && echo bash").stdout.split() == [str(home), "bash"]
    sync_snapshot(remote, local_dir=project, remote_root="~/r", snapshot_name="a", previous=None, excludes=[])
    (project / "train.py").write_text("print(2)\n")
    second = sync_snapshot(remote, local_dir=project, remote_root="~/r", snapshot_name="b", previous="a",
                           excludes=[])
    assert second.files_transferred == 1
    assert second.remote_path == str(home / "r" / "snapshots" / "b")
    assert (home / "r/snapshots/a/pkg/m1.py").stat().st_ino == (home / "r/snapshots/b/pkg/m1.py").stat().st_ino
    assert remote.calls == 7
