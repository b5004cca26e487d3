"""A dry run: every sweep's scripts and ``sbatch`` calls rendered as a launch would render them, contacting
nothing and creating nothing (pure, apart from reading the home directory of a local profile)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from atlas_sweeps.backends import make_backend
from atlas_sweeps.config.profile import Profile
from atlas_sweeps.launch.jobs import PreparedSweep
from atlas_sweeps.launch.launcher import Prepared, prepare_all
from atlas_sweeps.launch.layout import guessed_home, is_under_home, resolve_root
from atlas_sweeps.remote.base import runs_here
from atlas_sweeps.slurm.sbatch import DEFAULT_MAX_ARRAY_SIZE


@dataclass(frozen=True)
class DryRunRoot:
    """Where a dry run shows the launch's remote files (absolute, as the scripts will have them) and, when
    that path depends on a home directory only the login node knows, the note saying so."""

    path: str
    note: str | None = None


def dry_run_root(profile: Profile) -> DryRunRoot:
    """The profile's ``remote_dir`` made absolute for a dry run. On this machine (a local profile) the home
    is known; on a login node it is shown as ``/home/<user>`` (the profile's user, else ours, as ssh would
    log in) and resolved for real by the preflight at launch."""
    if not is_under_home(profile.remote_dir):
        return DryRunRoot(path=profile.remote_dir)
    if runs_here(profile.host) and profile.source is not None:
        return DryRunRoot(path=resolve_root(profile.remote_dir, home=str(Path.home())))
    home = guessed_home(profile.user)
    return DryRunRoot(path=resolve_root(profile.remote_dir, home=home),
                      note=f"remote_dir {profile.remote_dir} is shown under {home}, a guess at the login node's "
                           "home directory: the real one is resolved there at launch")


@dataclass(frozen=True)
class DryRun:
    """What a dry run shows: the prepared launch, where its files would go, and every sweep rendered."""

    prepared: Prepared
    root: DryRunRoot
    sweeps: tuple[PreparedSweep, ...]


def dry_run(prepared: Prepared) -> DryRun:
    """Render every sweep of ``prepared`` with placeholder sweep ids and Slurm's default MaxArraySize."""
    backend = make_backend(prepared.backend, profile=prepared.profile, dry_run=True)
    root = dry_run_root(prepared.profile)
    sweeps = prepare_all(prepared, launch_id="DRYRUN", root=root.path, backend=backend,
                         created={}, max_array_size=DEFAULT_MAX_ARRAY_SIZE)
    return DryRun(prepared=prepared, root=root, sweeps=tuple(sweeps))
