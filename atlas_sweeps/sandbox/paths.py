"""Where the sandbox keeps everything: one directory tree it owns, so it clobbers nothing it did not create."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/atlas-sweeps/sandbox")
ROOT_ENV = "ATLAS_SANDBOX_DIR"


def default_root() -> Path:
    """The sandbox directory: ``$ATLAS_SANDBOX_DIR`` if set, else /var/lib/atlas-sweeps/sandbox."""
    value = os.environ.get(ROOT_ENV, "").strip()
    return Path(value).absolute() if value else DEFAULT_ROOT


@dataclass(frozen=True)
class SandboxPaths:
    """Every file and directory of one sandbox, derived from its root (absolute paths only)."""

    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def profiles(self) -> Path:
        return self.root / "profiles"

    # --- configuration files -------------------------------------------------------------------------
    @property
    def slurm_conf(self) -> Path:
        return self.etc / "slurm.conf"

    @property
    def daemons_conf(self) -> Path:
        """The slurm.conf the daemons read: the node's GPUs, then an Include of slurm.conf (see ``gres``)."""
        return self.etc / "slurm.conf.d" / "daemons.conf"

    @property
    def gres_conf(self) -> Path:
        return self.daemons_conf.parent / "gres.conf"

    @property
    def gpu_dir(self) -> Path:
        """The device files standing for the node's GPUs."""
        return self.root / "dev"

    @property
    def slurmdbd_conf(self) -> Path:
        return self.etc / "slurmdbd.conf"

    @property
    def sshd_config(self) -> Path:
        return self.etc / "sshd_config"

    @property
    def my_cnf(self) -> Path:
        return self.etc / "my.cnf"

    @property
    def munge_key(self) -> Path:
        return self.etc / "munge" / "munge.key"

    @property
    def authorized_keys_dir(self) -> Path:
        return self.etc / "authorized_keys"

    # --- runtime -------------------------------------------------------------------------------------
    @property
    def munge_run(self) -> Path:
        return self.run / "munge"

    @property
    def munge_socket(self) -> Path:
        return self.munge_run / "munge.socket.2"

    @property
    def mysql_run(self) -> Path:
        return self.run / "mysqld"

    @property
    def mysql_socket(self) -> Path:
        return self.mysql_run / "mysqld.sock"

    def pid_file(self, component: str) -> Path:
        """The pid file a component's daemon writes (munge and mysql write into their own run dirs)."""
        if component == "munge":
            return self.munge_run / "munged.pid"
        if component == "mariadb":
            return self.mysql_run / "mysqld.pid"
        return self.run / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        if component == "munge":
            return self.log / "munge" / "munged.log"
        if component == "mariadb":
            return self.log / "mysql" / "mariadb.log"
        return self.log / f"{component}.log"

    # --- state ---------------------------------------------------------------------------------------
    @property
    def mysql_datadir(self) -> Path:
        return self.state / "mysql"

    @property
    def munge_seed(self) -> Path:
        return self.state / "munge" / "munged.seed"

    @property
    def slurmctld_state(self) -> Path:
        return self.state / "slurmctld"

    @property
    def slurmd_spool(self) -> Path:
        return self.state / "slurmd"

    @property
    def db_password(self) -> Path:
        return self.state / "slurmdbd.db-password"

    @property
    def settings_file(self) -> Path:
        """The settings ``up`` used last (ports, user names), so ``status`` and ``down`` agree with it."""
        return self.root / "sandbox.json"

    # --- keys and secrets ----------------------------------------------------------------------------
    @property
    def host_key(self) -> Path:
        return self.keys / "ssh_host_ed25519_key"

    def user_key(self, user: str) -> Path:
        return self.keys / f"{user}_ed25519"

    def passphrase_key(self, user: str) -> Path:
        """A second key of ``user``, encrypted: for tests of ssh-agent and the passphrase prompt."""
        return self.keys / f"{user}_ed25519_passphrase"

    def key_passphrase_file(self, user: str) -> Path:
        return self.root / f"{user}.key-passphrase"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def password_file(self, user: str) -> Path:
        return self.root / f"{user}.password"

    def profile(self, name: str) -> Path:
        return self.profiles / f"{name}.toml"


def user_clusters_dir() -> Path:
    """Where the tool looks for cluster profiles: ``$XDG_CONFIG_HOME/atlas-sweeps/clusters``."""
    base = os.environ.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base else Path.home() / ".config"
    return root / "atlas-sweeps" / "clusters"
