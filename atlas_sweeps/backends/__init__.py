"""Sweep backends and their registry: who creates sweeps and decides what each job runs. ``local``
(embedded: runs expanded here, one array task per run, W&B offline) and ``wandb`` (W&B sweeps, jobs run
``wandb agent``). A new backend is its module under ``backends/`` and one entry in ``_FACTORIES``; nothing
outside this package asks which backend a launch uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from atlas_sweeps.errors import UsageError

if TYPE_CHECKING:  # the registry stays light: `--help` and the profile loader import it
    from atlas_sweeps.backends.base import SweepBackend
    from atlas_sweeps.config.profile import Profile
    from atlas_sweeps.state.store import LaunchRecord


def _local(profile: Profile | None, dry_run: bool) -> SweepBackend:
    from atlas_sweeps.backends.local import LocalBackend

    return LocalBackend(online=bool(profile and profile.wandb_online))


def _wandb(profile: Profile | None, dry_run: bool) -> SweepBackend:
    from atlas_sweeps.backends.wandb.backend import WandbBackend  # no wandb import until a sweep is made

    return WandbBackend(base_url=profile.wandb_base_url if profile else None, dry_run=dry_run)


_FACTORIES: dict[str, Callable[[Profile | None, bool], SweepBackend]] = {"local": _local, "wandb": _wandb}
NAMES = tuple(_FACTORIES)


def make_backend(name: str, *, profile: Profile | None = None, dry_run: bool = False) -> SweepBackend:
    """The backend called ``name``, set up from the cluster profile; a dry run creates nothing anywhere."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise UsageError(f"unknown backend {name!r}", hint=f"use one of: {', '.join(NAMES)}")
    return factory(profile, dry_run)


def backend_of(record: LaunchRecord) -> SweepBackend:
    """The backend a recorded launch used, set up from its cluster's profile as found where it was launched
    (defaults when that profile is gone or broken: reading progress must not fail on it)."""
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.status.stored import project_dir_of

    try:
        profile = load_profile(record.cluster, project_dir=project_dir_of(record))
    except UsageError:
        profile = None
    return make_backend(record.backend, profile=profile)


def choose_backend(requested: str | None, profile: Profile) -> tuple[str, str | None]:
    """The backend to use and, when chosen for the user, a one-line notice saying why: the one asked for,
    else the profile's, else W&B when this machine has W&B credentials, else the embedded local backend."""
    if requested:
        return requested, None
    if profile.backend:
        return profile.backend, None
    from atlas_sweeps.backends.wandb.credentials import find_api_key, resolve_base_url

    if find_api_key(resolve_base_url(profile.wandb_base_url)) is not None:
        return "wandb", None
    return "local", ("no W&B credentials found: using the embedded local backend; runs are kept offline "
                     "on the cluster, upload them later with 'atlas-sweeps sync'")
