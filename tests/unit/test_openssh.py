"""The openssh transport's command lines (pure): one master socket per trust decision, strict host keys,
nothing secret in argv, rsync's ``-e`` quoting; and the private socket directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atlas_sweeps.errors import UsageError
from atlas_sweeps.remote.base import RemoteTarget
from atlas_sweeps.remote.openssh import SshCommand, _private_dir, control_master_set

TARGET = RemoteTarget(host="login.example.org", port=2222, user="me", identity_file="/k/id_ed25519",
                      known_hosts="/k/known_hosts", transport="openssh")


def test_every_call_uses_the_one_socket_with_strict_host_keys(tmp_path: Path) -> None:
    ssh = SshCommand(target=TARGET, socket_dir=tmp_path)
    master, run = ssh.master(persist="12h"), ssh.run("bash -s")
    for argv in (master, run, ssh.control("check")):
        assert f"ControlPath={ssh.socket}" in argv and argv[-2:] != ["--", ""]
    for argv in (master, run):
        assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/k/known_hosts" in argv
        assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "me"
    assert master[:4] == ["ssh", "-M", "-N", "-f"] and "ControlPersist=12h" in master
    assert "ControlMaster=no" in run and run[-2:] == ["login.example.org", "bash -s"]  # the script goes on stdin
    assert "BatchMode=yes" not in run
    assert "BatchMode=yes" in SshCommand(target=TARGET, socket_dir=tmp_path, batch=True).run("x")
    assert "StrictHostKeyChecking=accept-new" in SshCommand(target=TARGET, socket_dir=tmp_path,
                                                            accept_new_host_key=True).master(persist="1h")


def test_profiles_that_trust_differently_never_share_a_master(tmp_path: Path) -> None:
    from dataclasses import replace

    same = SshCommand(target=TARGET, socket_dir=tmp_path).socket
    assert SshCommand(target=replace(TARGET), socket_dir=tmp_path).socket == same
    for change in ({"known_hosts": "/other"}, {"user": "you"}, {"port": 22}, {"identity_file": "/k/other"}):
        assert SshCommand(target=replace(TARGET, **change), socket_dir=tmp_path).socket != same
    assert len(str(same)) < 104  # a Unix socket path's limit, whatever the directory (short by design)


def test_rsync_e_quotes_paths_with_spaces_and_refuses_double_quotes(tmp_path: Path) -> None:
    from dataclasses import replace

    spaced = SshCommand(target=replace(TARGET, known_hosts="/my keys/known hosts"), socket_dir=tmp_path)
    assert '"UserKnownHostsFile=/my keys/known hosts"' in spaced.rsh()
    with pytest.raises(UsageError, match="double quote"):
        SshCommand(target=replace(TARGET, known_hosts='/a"b'), socket_dir=tmp_path).rsh()


def test_the_socket_directory_is_private(tmp_path: Path) -> None:
    assert oct(_private_dir(tmp_path / "cm").stat().st_mode & 0o777) == "0o700"
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(UsageError, match="0700"):
        _private_dir(shared)
    if os.geteuid() == 0:  # another user's directory is refused even when its mode is right
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)
        with pytest.raises(UsageError, match="only you"):
            _private_dir(theirs)


@pytest.mark.parametrize(("output", "on"), [
    ("host x\ncontrolmaster auto\ncontrolpath ~/.ssh/cm-%C\n", True),
    ("host x\ncontrolmaster true\n", True),
    ("host x\ncontrolmaster false\n", False),
    ("host x\nuser me\n", False),
])
def test_an_ssh_config_with_controlmaster_chooses_the_openssh_transport(output: str, on: bool) -> None:
    assert control_master_set(output) is on
