"""The second sandbox (a release in a chroot): its rendered configs keep Debian's default paths inside the
chroot, run without accounting and cgroups on their own ports; the host's mirror is read from apt's sources;
/proc/mounts and in-chroot symlinks are read right."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pytest

from atlas_sweeps.errors import UsageError
from atlas_sweeps.sandbox.chroot import (
    chroot_argv,
    host_mirror,
    parse_apt_sources,
    parse_mount_points,
    pick_mirror,
    resolve_in_root,
)
from atlas_sweeps.sandbox.components import RELEASE_COMPONENTS, build_release_components
from atlas_sweeps.sandbox.config import SandboxSettings, render_profile
from atlas_sweeps.sandbox.release_config import (
    ReleasePaths,
    chroot_mounts,
    release_profiles,
    render_cgroup_conf,
    render_slurm_conf,
    render_sshd_config,
)
from atlas_sweeps.sandbox.releases import RELEASES, get_release

TRIXIE = RELEASES["trixie"]
PATHS = ReleasePaths(Path("/srv/sb/trixie"))
SETTINGS = SandboxSettings(hostname="vm", cpus=2, real_memory_mb=21000, ssh_port=TRIXIE.ssh_port,
                           slurmctld_port=TRIXIE.slurmctld_port, slurmd_port=TRIXIE.slurmd_port, min_job_age=10)


def _lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()}


def test_trixie_slurm_conf_has_no_accounting_and_its_own_ports_and_node() -> None:
    lines = _lines(render_slurm_conf(TRIXIE, SETTINGS))
    assert {"AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none"} <= lines
    assert not any(line.startswith(("AccountingStorageHost", "AccountingStoragePort")) for line in lines)
    assert {"SlurmctldPort=16827", "SlurmdPort=16828", "MinJobAge=10"} <= lines
    assert "SlurmctldHost=vm(127.0.0.1)" in lines  # the chroot shares the machine's host name
    assert "NodeName=trixie NodeAddr=127.0.0.1 CPUs=2 RealMemory=21000 State=UNKNOWN" in lines
    assert "PartitionName=debug Nodes=trixie Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4" in lines
    assert {"ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "AuthInfo=socket=/run/munge/munge.socket.2"} <= lines
    assert "/srv/sb" not in render_slurm_conf(TRIXIE, SETTINGS)  # paths as the chroot sees them


def test_trixie_cgroup_conf_disables_the_plugin() -> None:
    assert "CgroupPlugin=disabled" in _lines(render_cgroup_conf(TRIXIE))


def test_trixie_sshd_config_needs_no_slurm_conf_variable_and_keeps_the_2fa_user() -> None:
    text = render_sshd_config(SETTINGS)
    lines = _lines(text)
    assert {"Port 2223", "ListenAddress 127.0.0.1", "UsePAM no", "HostKey /etc/ssh/ssh_host_ed25519_key",
            "AuthorizedKeysFile /etc/ssh/authorized_keys/%u", "PidFile /run/sshd.pid"} <= lines
    assert "SetEnv" not in text  # slurm.conf is where Slurm looks by default
    assert "AuthenticationMethods publickey,password" in text[text.index("Match User atlas2fa"):]


def test_trixie_profiles_name_python3_and_no_venv() -> None:
    by_name = {p.name: tomllib.loads(render_profile(p)) for p in release_profiles(TRIXIE, SETTINGS, PATHS)}
    assert set(by_name) == {"sandbox-trixie", "sandbox-trixie-2fa", "sandbox-trixie-openssh",
                            "sandbox-trixie-2fa-openssh"}
    assert by_name["sandbox-trixie-openssh"]["transport"] == "openssh" and "transport" not in by_name["sandbox-trixie"]
    plain = by_name["sandbox-trixie"]
    assert plain["interpreter"] == "python3" and "setup" not in plain
    assert plain["port"] == 2223 and plain["known_hosts"] == "/srv/sb/trixie/known_hosts"
    assert plain["identity_file"] == "/srv/sb/trixie/keys/atlas_ed25519"
    assert by_name["sandbox-trixie-2fa"]["user"] == "atlas2fa"


def test_trixie_daemons_start_inside_the_chroot_with_host_side_pid_and_log_files(tmp_path: Path) -> None:
    comps = build_release_components(SETTINGS, PATHS, "trixie")
    assert tuple(comps) == RELEASE_COMPONENTS == ("munge", "slurmctld", "slurmd", "sshd")
    assert all(c.root == PATHS.root for c in comps.values())
    assert comps["slurmd"].argv == ("/usr/sbin/slurmd", "-f", "/etc/slurm/slurm.conf.d/daemons.conf", "-N", "trixie")
    assert comps["sshd"].argv == ("/usr/sbin/sshd", "-f", "/etc/ssh/atlas_sshd_config", "-E", "/var/log/sshd.log")
    assert comps["sshd"].pid_file == Path("/srv/sb/trixie/root/run/sshd.pid")
    assert comps["munge"].socket == Path("/srv/sb/trixie/root/run/munge/munge.socket.2")
    assert chroot_argv(PATHS.root, comps["munge"].argv, run_as="munge")[:5] == [
        "chroot", "/srv/sb/trixie/root", "setpriv", "--reuid=munge", "--regid=munge"]


def test_mounts_are_proc_sys_dev_and_pts_in_order() -> None:
    assert [str(t.relative_to(PATHS.root)) for _, t in chroot_mounts(PATHS.root)] == ["proc", "sys", "dev", "dev/pts"]


def test_mount_points_decode_escaped_spaces_and_keep_stacked_mounts() -> None:
    text = ("proc /srv/sb/trixie/root/proc proc rw 0 0\n"
            "tmpfs /srv/my\\040dir tmpfs rw 0 0\n"
            "proc /srv/sb/trixie/root/proc proc rw 0 0\n")
    assert parse_mount_points(text) == [Path("/srv/sb/trixie/root/proc"), Path("/srv/my dir"),
                                        Path("/srv/sb/trixie/root/proc")]


DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
"""


def test_mirror_is_the_source_that_serves_the_host_release() -> None:
    sources = parse_apt_sources(DEB822, deb822=True)
    assert sources == [("http://mirror.example/debian", ("bookworm", "bookworm-updates")),
                       ("http://mirror.example/debian-security", ("bookworm-security",))]
    assert pick_mirror(sources, codename="bookworm") == "http://mirror.example/debian"
    one_line = ("# deb http://old.example/debian bookworm main\n"
                "deb [arch=amd64 signed-by=/k.gpg] http://other.example/vendor stable main\n"
                "deb http://list.example/debian bookworm main contrib\n")
    sources = parse_apt_sources(one_line, deb822=False)
    assert sources == [("http://other.example/vendor", ("stable",)), ("http://list.example/debian", ("bookworm",))]
    assert pick_mirror(sources, codename="bookworm") == "http://list.example/debian"


def test_host_mirror_refuses_a_host_of_another_distribution(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "ubuntu.sources").write_text(
        "Types: deb\nURIs: http://archive.example/ubuntu\nSuites: noble\nComponents: main\n")
    os_release = tmp_path / "os-release"
    os_release.write_text('ID=ubuntu\nVERSION_CODENAME=noble\n')
    with pytest.raises(UsageError, match="no debian mirror") as err:
        host_mirror(TRIXIE, apt_dir=tmp_path, os_release=os_release)
    assert "--mirror" in (err.value.hint or "")
    os_release.write_text('ID=debian\nVERSION_CODENAME=noble\n')
    assert host_mirror(TRIXIE, apt_dir=tmp_path, os_release=os_release) == "http://archive.example/ubuntu"


def test_symlinks_resolve_inside_the_chroot_not_on_the_host(tmp_path: Path) -> None:
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "etc/alternatives").mkdir(parents=True)
    (tmp_path / "usr/sbin/slurmctld-wlm").write_text("")
    (tmp_path / "etc/alternatives/slurmctld").symlink_to("/usr/sbin/slurmctld-wlm")  # absolute: in the chroot
    (tmp_path / "usr/sbin/slurmctld").symlink_to("/etc/alternatives/slurmctld")
    (tmp_path / "usr/sbin/sd").symlink_to("slurmctld")  # relative
    assert resolve_in_root(tmp_path, "/usr/sbin/slurmctld") == "slurmctld-wlm"
    assert resolve_in_root(tmp_path, "/usr/sbin/sd") == "slurmctld-wlm"
    assert resolve_in_root(tmp_path, "/usr/sbin/munged") == "munged"


def test_unknown_release_is_a_usage_error_naming_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown sandbox release 'focal'") as err:
        get_release("focal")
    assert "trixie" in (err.value.hint or "") and err.value.exit_code == 2
