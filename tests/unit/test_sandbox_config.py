"""The sandbox's rendered configuration files name its own paths and ports, never the system's."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pytest

from atlas_sweeps.errors import UsageError
from atlas_sweeps.sandbox import packages
from atlas_sweeps.sandbox.config import (
    SandboxSettings,
    known_hosts_line,
    mysql_bootstrap_sql,
    real_memory_mb,
    render_my_cnf,
    render_profile,
    render_slurm_conf,
    render_slurmdbd_conf,
    render_sshd_config,
    sandbox_profiles,
)
from atlas_sweeps.sandbox.daemons import parse_proc_net_tcp
from atlas_sweeps.sandbox.packages import parse_dpkg_status
from atlas_sweeps.sandbox.paths import SandboxPaths, default_root

ROOT = Path("/srv/sb")
PATHS = SandboxPaths(ROOT)
SETTINGS = SandboxSettings(hostname="node7", cpus=2, real_memory_mb=21000, ssh_port=2299, min_job_age=7)


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()}


def test_slurm_conf_points_at_sandbox_paths_ports_and_munge_socket() -> None:
    lines = _lines(render_slurm_conf(SETTINGS, PATHS))
    assert "SlurmctldHost=node7(127.0.0.1)" in lines
    assert {"SlurmctldPort=16817", "SlurmdPort=16818", "AccountingStoragePort=16819"} <= lines
    assert "AuthInfo=socket=/srv/sb/run/munge/munge.socket.2" in lines
    assert "AccountingStoragePass=/srv/sb/run/munge/munge.socket.2" in lines
    assert "StateSaveLocation=/srv/sb/state/slurmctld" in lines
    assert "SlurmdSpoolDir=/srv/sb/state/slurmd" in lines
    assert "SlurmctldPidFile=/srv/sb/run/slurmctld.pid" in lines
    assert "MinJobAge=7" in lines
    assert "NodeName=node7 NodeAddr=127.0.0.1 CPUs=2 RealMemory=21000 State=UNKNOWN" in lines
    assert ("PartitionName=debug Nodes=node7 Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4"
            in lines)
    assert {"ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none", "SelectTypeParameters=CR_Core"} <= lines
    assert "/etc/slurm" not in render_slurm_conf(SETTINGS, PATHS)


def test_slurmdbd_conf_uses_own_mariadb_port_and_password() -> None:
    lines = _lines(render_slurmdbd_conf(SETTINGS, PATHS, db_password="s3cret"))
    assert {"DbdPort=16819", "StorageHost=127.0.0.1", "StoragePort=13306", "StoragePass=s3cret",
            "AuthInfo=socket=/srv/sb/run/munge/munge.socket.2", "PidFile=/srv/sb/run/slurmdbd.pid",
            "LogFile=/srv/sb/log/slurmdbd.log"} <= lines


def test_my_cnf_keeps_mariadb_on_loopback_with_own_datadir_and_socket() -> None:
    lines = _lines(render_my_cnf(SETTINGS, PATHS))
    assert {"datadir=/srv/sb/state/mysql", "socket=/srv/sb/run/mysqld/mysqld.sock", "port=13306",
            "bind-address=127.0.0.1", "pid-file=/srv/sb/run/mysqld/mysqld.pid"} <= lines


def test_sshd_config_listens_on_loopback_port_and_sets_slurm_conf() -> None:
    text = render_sshd_config(SETTINGS, PATHS)
    lines = _lines(text)
    assert {"Port 2299", "ListenAddress 127.0.0.1", "HostKey /srv/sb/keys/ssh_host_ed25519_key",
            "PidFile /srv/sb/run/sshd.pid", "UsePAM no", "PasswordAuthentication no",
            "SetEnv SLURM_CONF=/srv/sb/etc/slurm.conf", "AuthorizedKeysFile /srv/sb/etc/authorized_keys/%u",
            "AllowUsers atlas atlas2fa", "Subsystem sftp /usr/lib/openssh/sftp-server"} <= lines
    # Password only for the 2FA user, and only after the key.
    match = text[text.index("Match User atlas2fa"):]
    assert "AuthenticationMethods publickey,password" in match
    assert "PasswordAuthentication yes" in match


def test_profiles_parse_as_toml_with_the_loader_keys() -> None:
    by_name = {p.name: tomllib.loads(render_profile(p)) for p in sandbox_profiles(SETTINGS, PATHS)}
    assert by_name["sandbox"] == {
        "host": "127.0.0.1", "port": 2299, "user": "atlas",
        "identity_file": "/srv/sb/keys/atlas_ed25519", "known_hosts": "/srv/sb/known_hosts",
        "remote_dir": "/home/atlas/atlas-sweeps", "setup": ["source /home/atlas/venv/bin/activate"],
        "interpreter": "python", "backend": "local", "status_interval": 2,
        "slurm": {"partition": "debug", "time": "00:10:00", "cpus_per_task": 1, "mem": "200M"},
    }
    twofa = by_name["sandbox-2fa"]
    assert twofa["user"] == "atlas2fa"
    assert "password_file" not in twofa  # the tool prompts; only tests read the sandbox's password file
    assert twofa["identity_file"] == "/srv/sb/keys/atlas2fa_ed25519"
    from atlas_sweeps.config.profile import _profile_from_table

    for name, table in by_name.items():  # the tool's own loader accepts every key the sandbox writes
        assert _profile_from_table(name, table, "sandbox.toml").port == 2299


def test_known_hosts_line_brackets_the_non_default_port() -> None:
    line = known_hosts_line(port=2299, host_public_key="ssh-ed25519 AAAAC3Nza host@x\n")
    assert line == "[127.0.0.1]:2299 ssh-ed25519 AAAAC3Nza\n"


def test_real_memory_leaves_headroom_below_memtotal() -> None:
    assert real_memory_mb("MemTotal:       24684092 kB\nMemFree: 1 kB\n") == 21695


def test_bootstrap_sql_escapes_the_password() -> None:
    sql = mysql_bootstrap_sql(db_password="a'b")
    assert "IDENTIFIED BY 'a\\'b'" in sql
    assert "'slurm'@'127.0.0.1'" in sql


def test_settings_round_trip_through_json() -> None:
    assert SandboxSettings.from_json(SETTINGS.to_json()) == SETTINGS


def test_sandbox_dir_comes_from_env(monkeypatch) -> None:
    monkeypatch.setenv("ATLAS_SANDBOX_DIR", "/tmp/elsewhere")
    assert default_root() == Path("/tmp/elsewhere")
    monkeypatch.delenv("ATLAS_SANDBOX_DIR")
    assert default_root() == Path("/var/lib/atlas-sweeps/sandbox")


def test_dpkg_status_keeps_only_installed_packages() -> None:
    out = "munge ii \nslurmd un \nrsync:amd64 ii \ntmux rc \n"
    assert parse_dpkg_status(out) == {"munge", "rsync"}


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41350 1 0 100 0 0 10 0
   1: 00000000:41B1 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 37805 1 0 100 0 0 10 0
   2: 0100007F:08AE 0100007F:A2C4 01 00000000:00000000 02:0008F5C1 00000000     0        0 52011 2 0 20 4 30 10 -1
   3: 0100007F:A2C4 0100007F:08AE 01 00000000:00000000 02:0008F5C1 00000000     0        0 52010 2 0 20 4 30 10 -1
"""


def test_proc_net_tcp_finds_listeners_and_sessions_by_local_port() -> None:
    assert parse_proc_net_tcp(PROC_NET_TCP, port=2222, state="0A") == {41350}
    assert parse_proc_net_tcp(PROC_NET_TCP, port=2222, state="01") == {52011}  # not the client's end
    assert parse_proc_net_tcp(PROC_NET_TCP, port=16817, state="0A") == {37805}


def test_up_refuses_non_root_with_usage_error(monkeypatch) -> None:
    monkeypatch.setattr(packages.os, "geteuid", lambda: 1000)
    with pytest.raises(UsageError, match="needs root") as err:
        packages.check_platform()
    assert err.value.exit_code == 2


def test_up_refuses_non_debian(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(packages.os, "geteuid", lambda: 0)
    release = tmp_path / "os-release"
    release.write_text('ID=fedora\nID_LIKE="rhel centos"\n')
    with pytest.raises(UsageError, match="Debian or Ubuntu"):
        packages.check_platform(os_release=release)
    release.write_text('ID=ubuntu\nID_LIKE=debian\n')
    if packages.shutil.which("apt-get"):
        packages.check_platform(os_release=release)


def test_a_recreated_cluster_user_does_not_inherit_an_earlier_users_wandb_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A sandbox rebuilt after its users were deleted gives `atlas` a new uid; wandb's CLI then failed on the
    old user's /tmp/debug-cli.atlas.log (PermissionError), so every agent and `wandb sync` failed."""
    import os

    from atlas_sweeps.sandbox.users import remove_stale_files

    old = tmp_path / "debug-cli.atlas.log"
    old.write_text("x")
    mine = tmp_path / "debug-cli.other.log"
    mine.write_text("x")
    if os.geteuid() == 0:
        os.chown(old, 4242, 4242)
    assert remove_stale_files("atlas", uid=os.getuid() + 1 if os.geteuid() != 0 else 1005, tmp=tmp_path) == [old]
    assert not old.exists() and mine.exists()
