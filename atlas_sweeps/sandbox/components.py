"""The sandbox's daemons as data: how each is started, which pid file and port tell its health, and how
to recognise its processes. Starting and stopping live in ``lifecycle``; process helpers in ``daemons``."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from atlas_sweeps.sandbox import daemons
from atlas_sweeps.sandbox.config import SandboxSettings
from atlas_sweeps.sandbox.paths import SandboxPaths
from atlas_sweeps.sandbox.release_config import (
    CGROUP_CONF,
    DAEMONS_CGROUP_CONF,
    DAEMONS_CONF,
    GRES_CONF,
    LOG_FILES,
    MUNGE_SOCKET,
    PID_FILES,
    SLURM_CONF,
    SSHD_CONFIG,
    ReleasePaths,
)

# Start order; ``down`` stops in reverse.
COMPONENTS: tuple[str, ...] = ("munge", "mariadb", "slurmdbd", "slurmctld", "slurmd", "sshd")


@dataclass(frozen=True)
class Component:
    """One daemon of the sandbox."""

    name: str
    exe: str  # basename of the binary, to recognise its processes
    argv: tuple[str, ...]
    pid_file: Path
    log_file: Path
    marker: str  # a sandbox path found in its command line or environment
    port: int | None = None
    socket: Path | None = None
    run_as: str | None = None  # user to start it as (munged refuses to run as root by default)
    detach: bool = False  # True when the program stays in the foreground and we must detach it
    config_files: tuple[Path, ...] = ()
    root: Path | None = None  # the chroot it runs in (argv paths are inside it; pid and log files are not)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}" if self.port is not None else str(self.socket)

    def answering(self) -> bool:
        """True when its port or socket accepts connections."""
        if self.port is not None:
            return daemons.port_open(self.port)
        return self.socket is not None and daemons.unix_socket_open(self.socket)

    def pids(self) -> list[int]:
        """Its live main processes: the pid file's pid if it is ours, plus any of ours found by scanning
        (a half-started daemon, or one whose pid file was removed)."""
        found = {p for p in daemons.all_pids() if _is_ours(self, p) and daemons.pid_alive(p)}
        pid = daemons.read_pid(self.pid_file)
        if pid is not None and daemons.pid_alive(pid) and _is_ours(self, pid, trust_unreadable=True):
            found.add(pid)
        # Keep only the top of each tree (slurmd/sshd fork workers that match too).
        return sorted(p for p in found if daemons.parent_pid(p) not in found)


def _is_ours(comp: Component, pid: int, *, trust_unreadable: bool = False) -> bool:
    """True when ``pid`` runs ``comp``'s binary with a sandbox path in its command line or environment.
    ``trust_unreadable``: accept it when the environment cannot be read (status run by a non-root user)."""
    # comm (the fallback when exe is unreadable) is the name it was started by, cut to 15 characters.
    if daemons.exe_name(pid) not in (comp.exe, os.path.basename(comp.argv[0])[:15] if comp.argv else comp.exe):
        return False
    if comp.root is not None:  # in a chroot, the process's root directory says it is ours
        return daemons.process_root(pid) == comp.root
    if comp.marker in daemons.cmdline(pid):
        return True
    env = _environ(pid)
    return (env is None and trust_unreadable) or (env is not None and comp.marker in env)


def _environ(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b"\n").decode(errors="replace")
    except FileNotFoundError:
        return ""
    except OSError:
        return None


def build_components(settings: SandboxSettings, paths: SandboxPaths) -> dict[str, Component]:
    """Every component of the sandbox, keyed by name, in start order."""
    p, s = paths, settings
    slurm_marker = f"SLURM_CONF={p.slurm_conf}"
    # The Slurm daemons read daemons.conf (slurm.conf plus the GPUs); its path starts with slurm.conf's,
    # the marker, so a daemon started with either file is recognised as ours.
    slurm_files = (p.slurm_conf, p.daemons_conf, p.gres_conf)
    comps = [
        Component(
            name="munge", exe="munged",
            argv=("/usr/sbin/munged", f"--socket={p.munge_socket}", f"--key-file={p.munge_key}",
                  f"--pid-file={p.pid_file('munge')}", f"--log-file={p.log_file('munge')}",
                  f"--seed-file={p.munge_seed}", "--num-threads=10"),
            pid_file=p.pid_file("munge"), log_file=p.log_file("munge"), marker=str(p.munge_socket),
            socket=p.munge_socket, run_as="munge", config_files=(p.munge_key,)),
        Component(
            name="mariadb", exe="mariadbd", argv=("/usr/sbin/mariadbd", f"--defaults-file={p.my_cnf}"),
            pid_file=p.pid_file("mariadb"), log_file=p.log_file("mariadb"), marker=str(p.my_cnf),
            port=s.mysql_port, detach=True, config_files=(p.my_cnf,)),
        Component(
            name="slurmdbd", exe="slurmdbd", argv=("/usr/sbin/slurmdbd",),
            pid_file=p.pid_file("slurmdbd"), log_file=p.log_file("slurmdbd"), marker=slurm_marker,
            port=s.slurmdbd_port, config_files=(p.slurmdbd_conf,)),
        Component(
            name="slurmctld", exe="slurmctld", argv=("/usr/sbin/slurmctld", "-i", "-f", str(p.daemons_conf)),
            pid_file=p.pid_file("slurmctld"), log_file=p.log_file("slurmctld"), marker=str(p.slurm_conf),
            port=s.slurmctld_port, config_files=slurm_files),
        Component(
            name="slurmd", exe="slurmd",
            argv=("/usr/sbin/slurmd", "-f", str(p.daemons_conf), "-N", s.hostname),
            pid_file=p.pid_file("slurmd"), log_file=p.log_file("slurmd"), marker=str(p.slurm_conf),
            port=s.slurmd_port, config_files=slurm_files),
        Component(
            name="sshd", exe="sshd",
            argv=("/usr/sbin/sshd", "-f", str(p.sshd_config), "-E", str(p.log_file("sshd"))),
            pid_file=p.pid_file("sshd"), log_file=p.log_file("sshd"), marker=str(p.sshd_config),
            port=s.ssh_port, config_files=(p.sshd_config,)),
    ]
    # Debian installs some binaries behind alternatives (slurmctld -> slurmctld-wlm): match the real file.
    comps = [replace(c, exe=real_exe(c.argv[0])) for c in comps]
    return {c.name: c for c in comps}


def real_exe(path: str, root: Path | None = None) -> str:
    """Basename of the file ``path`` resolves to (inside ``root`` when given), as /proc/PID/exe shows it."""
    if root is not None:
        from atlas_sweeps.sandbox.chroot import resolve_in_root

        return resolve_in_root(root, path)
    return os.path.basename(os.path.realpath(path))


# Start order of a chroot sandbox (no accounting: no MariaDB, no slurmdbd); ``down`` stops in reverse.
RELEASE_COMPONENTS: tuple[str, ...] = ("munge", "slurmctld", "slurmd", "sshd")


def build_release_components(settings: SandboxSettings, paths: ReleasePaths, node: str) -> dict[str, Component]:
    """The daemons of a chroot sandbox, keyed by name, in start order; each started inside the chroot with
    Debian's default paths (slurm.conf in /etc/slurm, munge's default socket)."""
    s, p, root = settings, paths, paths.root
    conf = (p.inside(SLURM_CONF), p.inside(CGROUP_CONF), p.inside(DAEMONS_CONF), p.inside(GRES_CONF),
            p.inside(DAEMONS_CGROUP_CONF))

    def make(name: str, argv: tuple[str, ...], **kw: object) -> Component:
        return Component(name=name, exe=real_exe(argv[0], root), argv=argv, pid_file=p.pid_file(name),
                         log_file=p.log_file(name), marker=str(root), root=root, **kw)  # type: ignore[arg-type]

    comps = [
        make("munge", ("/usr/sbin/munged", f"--socket={MUNGE_SOCKET}", f"--pid-file={PID_FILES['munge']}",
                       f"--log-file={LOG_FILES['munge']}"), socket=p.inside(MUNGE_SOCKET), run_as="munge"),
        make("slurmctld", ("/usr/sbin/slurmctld", "-i", "-f", DAEMONS_CONF), port=s.slurmctld_port, config_files=conf),
        make("slurmd", ("/usr/sbin/slurmd", "-f", DAEMONS_CONF, "-N", node), port=s.slurmd_port, config_files=conf),
        make("sshd", ("/usr/sbin/sshd", "-f", SSHD_CONFIG, "-E", LOG_FILES["sshd"]), port=s.ssh_port,
             config_files=(p.inside(SSHD_CONFIG),)),
    ]
    return {c.name: c for c in comps}


def daemon_env(paths: SandboxPaths) -> dict[str, str]:
    """The environment daemons start with: ours plus SLURM_CONF (how slurmdbd finds slurmdbd.conf)."""
    return {**os.environ, "SLURM_CONF": str(paths.slurm_conf)}
