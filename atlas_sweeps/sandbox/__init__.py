"""The sandbox cluster: a real single-node Slurm (munge, MariaDB, slurmdbd, slurmctld, slurmd) plus an
OpenSSH login node on loopback, all under one directory of its own. ``up``/``down``/``status`` are the API."""

from atlas_sweeps.sandbox.config import SandboxSettings
from atlas_sweeps.sandbox.lifecycle import (
    ComponentStatus,
    SandboxInfo,
    SandboxStatus,
    down,
    load_settings,
    status,
    up,
)
from atlas_sweeps.sandbox.paths import SandboxPaths, default_root

__all__ = ["ComponentStatus", "SandboxInfo", "SandboxPaths", "SandboxSettings", "SandboxStatus",
           "default_root", "down", "load_settings", "status", "up"]
