"""Where a chroot sandbox keeps its files and what its configuration files say (pure: no I/O).

Inside the chroot everything sits where Debian's packages put it (/etc/slurm/slurm.conf, munge's default
socket), as on a real cluster, so sessions need no SLURM_CONF. On the host side the sandbox keeps the chroot,
its users' keys, known_hosts, the settings and the profiles under ``<sandbox dir>/<release>``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from atlas_sweeps.config.profile import Profile
from atlas_sweeps.sandbox.config import SandboxSettings, login_profiles, slurm_conf_text, sshd_config_text
from atlas_sweeps.sandbox.releases import Release

# Paths inside the chroot, as its programs see them.
SLURM_CONF = "/etc/slurm/slurm.conf"
CGROUP_CONF = "/etc/slurm/cgroup.conf"
DAEMONS_CONF = "/etc/slurm/slurm.conf.d/daemons.conf"  # slurm.conf plus the node's GPUs (see sandbox.gres)
GRES_CONF = "/etc/slurm/slurm.conf.d/gres.conf"
DAEMONS_CGROUP_CONF = "/etc/slurm/slurm.conf.d/cgroup.conf"
GPU_DIR = "/var/lib/atlas-sweeps/gpu"
SSHD_CONFIG = "/etc/ssh/atlas_sshd_config"  # ours, beside the package's own sshd_config
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
AUTHORIZED_KEYS_DIR = "/etc/ssh/authorized_keys"
MUNGE_SOCKET = "/run/munge/munge.socket.2"
SLURMCTLD_STATE = "/var/lib/slurm/slurmctld"
SLURMD_SPOOL = "/var/lib/slurm/slurmd"
PID_FILES = {"munge": "/run/munge/munged.pid", "slurmctld": "/run/slurmctld.pid", "slurmd": "/run/slurmd.pid",
             "sshd": "/run/sshd.pid"}
LOG_FILES = {"munge": "/var/log/munge/munged.log", "slurmctld": "/var/log/slurm/slurmctld.log",
             "slurmd": "/var/log/slurm/slurmd.log", "sshd": "/var/log/sshd.log"}


@dataclass(frozen=True)
class ReleasePaths:
    """The host-side files of one chroot sandbox, derived from its base directory."""

    base: Path  # <sandbox dir>/<release>

    @property
    def root(self) -> Path:
        """The chroot."""
        return self.base / "root"

    @property
    def built_marker(self) -> Path:
        """Written last by a successful build; a chroot without it is half-built and gets rebuilt."""
        return self.base / "root.built"

    def inside(self, path: str) -> Path:
        """The host path of ``path`` inside the chroot."""
        return self.root / path.lstrip("/")

    @property
    def keys(self) -> Path:
        return self.base / "keys"

    def user_key(self, user: str) -> Path:
        return self.keys / f"{user}_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.base / "known_hosts"

    def password_file(self, user: str) -> Path:
        return self.base / f"{user}.password"

    @property
    def profiles(self) -> Path:
        return self.base / "profiles"

    def profile(self, name: str) -> Path:
        return self.profiles / f"{name}.toml"

    @property
    def settings_file(self) -> Path:
        return self.base / "sandbox.json"

    def pid_file(self, component: str) -> Path:
        return self.inside(PID_FILES[component])

    def log_file(self, component: str) -> Path:
        return self.inside(LOG_FILES[component])


def profile_name(release: Release) -> str:
    """``sandbox-trixie``: the profile the CLI takes for this sandbox (``-2fa`` for the second user)."""
    return f"sandbox-{release.name}"


def render_slurm_conf(release: Release, settings: SandboxSettings) -> str:
    """slurm.conf for one node without cgroups, systemd or accounting (no slurmdbd: jobs known to squeue
    only until MinJobAge after they end). The controller is this machine (the chroot shares its host name,
    which slurmctld checks); the node is named after the release."""
    return slurm_conf_text(
        settings, title=f"Sandbox cluster {release.name} of atlas-sweeps", cluster=f"atlas-{release.name}",
        node=release.name, munge_socket=MUNGE_SOCKET, state=SLURMCTLD_STATE, spool=SLURMD_SPOOL,
        pid_files=(PID_FILES["slurmctld"], PID_FILES["slurmd"]), log_files=(LOG_FILES["slurmctld"], LOG_FILES["slurmd"]),
        accounting="AccountingStorageType=accounting_storage/none\n")


def render_cgroup_conf(release: Release) -> str:
    """cgroup.conf: disabled where slurmd would otherwise insist on a cgroup mount the chroot lacks."""
    body = "CgroupPlugin=disabled\n" if release.cgroup_disabled else ""
    return f"# Sandbox cluster {release.name} of atlas-sweeps; generated, do not edit.\n{body}"


def render_sshd_config(settings: SandboxSettings) -> str:
    """The login node's sshd_config: Slurm's config is in its default place, so no SetEnv is needed."""
    return sshd_config_text(settings, host_key=HOST_KEY, pid_file=PID_FILES["sshd"],
                            authorized_keys_dir=AUTHORIZED_KEYS_DIR, slurm_conf=None)


def release_profiles(release: Release, settings: SandboxSettings, paths: ReleasePaths) -> list[Profile]:
    """``sandbox-NAME`` and ``sandbox-NAME-2fa``: no venv, the release's own interpreter (``python3``)."""
    return login_profiles(profile_name(release), settings, key_of=paths.user_key,
                          known_hosts=str(paths.known_hosts), interpreter=release.interpreter)


def chroot_mounts(root: Path) -> list[tuple[str, Path]]:
    """(source, target) of the bind mounts a chroot sandbox needs, in mount order."""
    return [(src, root / src.lstrip("/")) for src in ("/proc", "/sys", "/dev", "/dev/pts")]
