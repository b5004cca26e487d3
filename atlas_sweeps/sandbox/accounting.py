"""Accounting: MariaDB's data directory and slurmdbd's database user, then Slurm's cluster, account and
users in slurmdbd (so ``sacct`` knows every finished job and array task)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping

from atlas_sweeps.errors import SandboxError
from atlas_sweeps.sandbox.config import ACCOUNT, CLUSTER_NAME, SandboxSettings, mysql_bootstrap_sql
from atlas_sweeps.sandbox.paths import SandboxPaths


def ensure_mysql_datadir(paths: SandboxPaths) -> bool:
    """Initialise MariaDB's own data directory once; returns True when it was created."""
    if (paths.mysql_datadir / "mysql").is_dir():
        return False
    if paths.mysql_datadir.exists():
        shutil.rmtree(paths.mysql_datadir)  # a half-made datadir from an interrupted run
    paths.mysql_datadir.mkdir(parents=True)
    shutil.chown(paths.mysql_datadir, "mysql", "mysql")
    installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db") or "mariadb-install-db"
    proc = subprocess.run([installer, f"--defaults-file={paths.my_cnf}", "--user=mysql",
                           f"--datadir={paths.mysql_datadir}", "--auth-root-authentication-method=socket",
                           "--skip-test-db"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"mariadb-install-db failed: {proc.stderr.strip().splitlines()[-1:]}",
                           hint=f"see {paths.log_file('mariadb')}")
    return True


def ensure_db_user(paths: SandboxPaths, *, db_password: str) -> None:
    """Create slurmdbd's database and user (root logs in through the socket as the OS root user)."""
    proc = subprocess.run(["mariadb", f"--defaults-file={paths.my_cnf}", "-uroot"],
                          input=mysql_bootstrap_sql(db_password=db_password), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"could not create slurmdbd's database user: {proc.stderr.strip()}",
                           hint=f"see {paths.log_file('mariadb')}")


def _sacctmgr(args: list[str], env: Mapping[str, str]) -> str:
    proc = subprocess.run(["sacctmgr", *args], capture_output=True, text=True, env=dict(env), timeout=60)
    if proc.returncode != 0:
        raise SandboxError(f"`sacctmgr {' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def parse_names(output: str) -> set[str]:
    """First column of ``sacctmgr -n -P list ...`` output, lower-cased (Slurm stores names so)."""
    return {line.split("|")[0].strip().lower() for line in output.splitlines() if line.strip()}


def ensure_associations(settings: SandboxSettings, env: Mapping[str, str]) -> list[str]:
    """Cluster, account and users in slurmdbd; returns what was added."""
    added = []
    if CLUSTER_NAME not in parse_names(_sacctmgr(["-n", "-P", "list", "cluster", "format=cluster"], env)):
        _sacctmgr(["-i", "add", "cluster", CLUSTER_NAME], env)
        added.append(f"cluster {CLUSTER_NAME}")
    if ACCOUNT not in parse_names(_sacctmgr(["-n", "-P", "list", "account", "format=account"], env)):
        _sacctmgr(["-i", "add", "account", ACCOUNT, f"Cluster={CLUSTER_NAME}",
                   "Description=atlas-sweeps sandbox", "Organization=atlas"], env)
        added.append(f"account {ACCOUNT}")
    users = parse_names(_sacctmgr(["-n", "-P", "list", "user", "format=user"], env))
    for user in settings.users:
        if user not in users:
            _sacctmgr(["-i", "add", "user", user, f"Account={ACCOUNT}", f"Cluster={CLUSTER_NAME}"], env)
            added.append(f"user {user}")
    return added
