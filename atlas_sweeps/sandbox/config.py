"""Pure rendering of the sandbox's configuration files (slurm.conf, slurmdbd.conf, my.cnf, sshd_config,
cluster profiles) from settings and paths. No I/O here, so every rendered line is unit-testable."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from atlas_sweeps.config.profile import Profile, SlurmOptions, profile_toml
from atlas_sweeps.sandbox.paths import SandboxPaths

CLUSTER_NAME = "atlas-sandbox"
ACCOUNT = "atlas"
DB_NAME = "slurm_acct_db"
DB_USER = "slurm"
PROFILE_HEADER = "# Written by `atlas-sweeps sandbox up`; rewritten on every run.\n"


@dataclass(frozen=True)
class SandboxSettings:
    """What ``up`` was asked for: ports, users, node shape. Saved next to the sandbox for status/down."""

    hostname: str
    cpus: int
    real_memory_mb: int
    ssh_port: int = 2222
    slurmctld_port: int = 16817
    slurmd_port: int = 16818
    slurmdbd_port: int = 16819
    mysql_port: int = 13306
    min_job_age: int = 10
    user: str = "atlas"
    user_2fa: str = "atlas2fa"
    partition: str = "debug"

    @property
    def users(self) -> tuple[str, str]:
        return (self.user, self.user_2fa)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SandboxSettings:
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def real_memory_mb(meminfo: str) -> int:
    """RealMemory for slurm.conf from /proc/meminfo text: 90% of MemTotal, so slurmd never finds less
    than configured (which would drain the node)."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            kib = int(line.split()[1])
            return max(256, kib * 9 // 10 // 1024)
    raise ValueError("no MemTotal line in /proc/meminfo")


def munge_auth_info(paths: SandboxPaths) -> str:
    return f"socket={paths.munge_socket}"


def render_slurm_conf(settings: SandboxSettings, paths: SandboxPaths) -> str:
    """slurm.conf for one node without cgroups or systemd, accounting through our slurmdbd."""
    s, p = settings, paths
    return slurm_conf_text(
        s, title="Sandbox cluster of atlas-sweeps", cluster=CLUSTER_NAME, node=s.hostname,
        munge_socket=str(p.munge_socket), state=str(p.slurmctld_state), spool=str(p.slurmd_spool),
        pid_files=(str(p.pid_file("slurmctld")), str(p.pid_file("slurmd"))),
        log_files=(str(p.log_file("slurmctld")), str(p.log_file("slurmd"))),
        plugstack=str(p.etc / "plugstack.conf"),
        accounting=f"""\
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={s.slurmdbd_port}
AccountingStoragePass={p.munge_socket}
""")


def slurm_conf_text(settings: SandboxSettings, *, title: str, cluster: str, node: str, munge_socket: str,
                    state: str, spool: str, pid_files: tuple[str, str], log_files: tuple[str, str],
                    accounting: str, plugstack: str | None = None) -> str:
    """slurm.conf of a one-node sandbox (paths as its daemons see them; ``accounting``: the
    AccountingStorage lines; the controller is this machine, ``settings.hostname``)."""
    s = settings
    plugstack_line = f"PlugStackConfig={plugstack}\n" if plugstack else ""
    return f"""\
# {title}; generated, do not edit (rewritten by `atlas-sweeps sandbox up`).
ClusterName={cluster}
SlurmctldHost={s.hostname}(127.0.0.1)
SlurmctldPort={s.slurmctld_port}
SlurmdPort={s.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={pid_files[0]}
SlurmdPidFile={pid_files[1]}
SlurmctldLogFile={log_files[0]}
SlurmdLogFile={log_files[1]}
{plugstack_line}ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge={s.min_job_age}
SlurmctldTimeout=30
SlurmdTimeout=30
{accounting}JobCompType=jobcomp/none
NodeName={node} NodeAddr=127.0.0.1 CPUs={s.cpus} RealMemory={s.real_memory_mb} State=UNKNOWN
PartitionName={s.partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


def render_slurmdbd_conf(settings: SandboxSettings, paths: SandboxPaths, *, db_password: str) -> str:
    """slurmdbd.conf (must be mode 0600: it holds the database password)."""
    s, p = settings, paths
    return f"""\
# Sandbox cluster of atlas-sweeps; generated, do not edit.
AuthType=auth/munge
AuthInfo={munge_auth_info(p)}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={s.slurmdbd_port}
SlurmUser=root
PidFile={p.pid_file("slurmdbd")}
LogFile={p.log_file("slurmdbd")}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={s.mysql_port}
StorageUser={DB_USER}
StoragePass={db_password}
StorageLoc={DB_NAME}
"""


def render_my_cnf(settings: SandboxSettings, paths: SandboxPaths) -> str:
    """MariaDB's option file: own datadir, socket, pid file and a loopback port, away from the system's."""
    p = paths
    return f"""\
# Sandbox MariaDB of atlas-sweeps; generated, do not edit.
[client]
socket={p.mysql_socket}
port={settings.mysql_port}

[mysqld]
user=mysql
datadir={p.mysql_datadir}
socket={p.mysql_socket}
pid-file={p.pid_file("mariadb")}
log-error={p.log_file("mariadb")}
bind-address=127.0.0.1
port={settings.mysql_port}
skip-name-resolve
innodb_buffer_pool_size=128M
innodb_lock_wait_timeout=900
innodb_log_file_size=64M
"""


def render_sshd_config(settings: SandboxSettings, paths: SandboxPaths) -> str:
    """sshd_config for the login node: loopback port, own host key, keys from the sandbox, SLURM_CONF set
    for every session, and a second user that needs key *and* password."""
    return sshd_config_text(settings, host_key=str(paths.host_key), pid_file=str(paths.pid_file("sshd")),
                            authorized_keys_dir=str(paths.authorized_keys_dir),
                            slurm_conf=str(paths.slurm_conf))


def sshd_config_text(settings: SandboxSettings, *, host_key: str, pid_file: str, authorized_keys_dir: str,
                     slurm_conf: str | None) -> str:
    """The login node's sshd_config, paths as sshd sees them; ``slurm_conf`` None: Slurm's default place,
    so no SLURM_CONF is set for sessions."""
    s = settings
    set_env = f"SetEnv SLURM_CONF={slurm_conf}\n" if slurm_conf else ""
    return f"""\
# Sandbox login node of atlas-sweeps; generated, do not edit.
Port {s.ssh_port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {pid_file}
UsePAM no
PermitRootLogin no
AllowUsers {" ".join(s.users)}
PubkeyAuthentication yes
AuthorizedKeysFile {authorized_keys_dir}/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
PrintMotd no
MaxSessions 64
MaxStartups 64:30:128
{set_env}Subsystem sftp /usr/lib/openssh/sftp-server

Match User {s.user_2fa}
    PasswordAuthentication yes
    AuthenticationMethods publickey,password
"""


def sandbox_profiles(settings: SandboxSettings, paths: SandboxPaths) -> list[Profile]:
    """The profiles: ``sandbox`` (key only) and ``sandbox-2fa`` (key and password), each also with the openssh
    transport (``sandbox-openssh``, ``sandbox-2fa-openssh``)."""
    return login_profiles("sandbox", settings, key_of=paths.user_key, known_hosts=str(paths.known_hosts),
                          interpreter="python", setup=(f"source /home/{settings.user}/venv/bin/activate",))


def login_profiles(name: str, settings: SandboxSettings, *, key_of: Callable[[str], Path], known_hosts: str,
                   interpreter: str, setup: tuple[str, ...] = ()) -> list[Profile]:
    """Profiles ``NAME`` (key only) and ``NAME-2fa`` (key and password) for a sandbox's login node, on the
    default (paramiko) transport, and the same as ``NAME-openssh`` and ``NAME-2fa-openssh`` on OpenSSH's
    ControlMaster."""
    slurm = SlurmOptions(partition=settings.partition, time="00:10:00", cpus_per_task=1, mem="200M")

    def make(profile_name: str, user: str, transport: str | None = None) -> Profile:
        return Profile(name=profile_name, host="127.0.0.1", port=settings.ssh_port, user=user,
                       identity_file=str(key_of(user)), known_hosts=known_hosts, transport=transport,
                       remote_dir=f"/home/{user}/atlas-sweeps", setup=setup, interpreter=interpreter,
                       backend="local", status_interval=2, slurm=slurm)

    # The 2FA user's password stays in the sandbox dir for tests; the tool itself always prompts.
    return [make(name, settings.user), make(f"{name}-2fa", settings.user_2fa),
            make(f"{name}-openssh", settings.user, "openssh"), make(f"{name}-2fa-openssh", settings.user_2fa, "openssh")]


def render_profile(profile: Profile) -> str:
    """The profile file the sandbox writes: a header that marks it as ours, then the TOML."""
    return profile_toml(profile, header=PROFILE_HEADER)


def known_hosts_line(*, port: int, host_public_key: str) -> str:
    """A known_hosts entry for a non-default port: ``[127.0.0.1]:PORT type key``."""
    kind, key = host_public_key.split()[:2]
    return f"[127.0.0.1]:{port} {kind} {key}\n"


def mysql_bootstrap_sql(*, db_password: str) -> str:
    """SQL that gives slurmdbd its database and user (idempotent)."""
    pw = db_password.replace("\\", "\\\\").replace("'", "\\'")
    stmts = [f"CREATE DATABASE IF NOT EXISTS {DB_NAME}"]
    for host in ("localhost", "127.0.0.1"):
        stmts += [f"CREATE USER IF NOT EXISTS '{DB_USER}'@'{host}' IDENTIFIED BY '{pw}'",
                  f"ALTER USER '{DB_USER}'@'{host}' IDENTIFIED BY '{pw}'",
                  f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'{host}'"]
    return ";\n".join(stmts) + ";\n"
