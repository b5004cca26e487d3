"""The other distribution releases a sandbox can run in a chroot, as data: which suite debootstrap fetches,
which packages go in, and the quirks its Slurm needs. Adding a release is adding a row here (and, if its
Slurm or OpenSSH needs other settings, a field the renderers read)."""

from __future__ import annotations

from dataclasses import dataclass

from atlas_sweeps.errors import UsageError


@dataclass(frozen=True)
class Release:
    """One chroot sandbox: a distribution release with its own Slurm, OpenSSH, rsync and Python."""

    name: str  # what `sandbox up --release NAME` takes; also the sandbox's subdirectory and node name
    distro: str  # "debian" or "ubuntu": whose mirror serves the suite
    suite: str  # what debootstrap fetches
    packages: tuple[str, ...]
    stands_for: str  # one line for help and status: the kind of cluster it imitates
    interpreter: str = "python3"  # the login node's Python; the profile names it
    cgroup_disabled: bool = True  # slurmd 24.11+ needs a cgroup mount unless cgroup.conf disables it
    ssh_port: int = 2223
    slurmctld_port: int = 16827
    slurmd_port: int = 16828


RELEASES: dict[str, Release] = {
    "trixie": Release(
        name="trixie", distro="debian", suite="trixie",
        packages=("slurmctld", "slurmd", "slurm-client", "munge", "openssh-server", "rsync", "python3"),
        stands_for="Debian 13: Slurm 24.11 without accounting, OpenSSH 10, rsync 3.5, python3 but no python"),
}


def get_release(name: str) -> Release:
    """The release called ``name``, or a one-line usage error naming the known ones."""
    try:
        return RELEASES[name]
    except KeyError:
        raise UsageError(f"unknown sandbox release {name!r}",
                         hint=f"choose one of {', '.join(RELEASES)}") from None
