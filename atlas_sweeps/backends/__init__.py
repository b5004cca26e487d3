"""Sweep backends: who creates sweeps and decides what each job runs. ``local`` (embedded: runs expanded
here, one array task per run, W&B offline) and ``wandb`` (W&B sweeps, jobs run ``wandb agent``)."""

from __future__ import annotations

from atlas_sweeps.backends.base import CreatedSweep, JobCommand, SweepBackend, SweepProgress

__all__ = ["CreatedSweep", "JobCommand", "SweepBackend", "SweepProgress", "make_backend"]


def make_backend(name: str, **options: object) -> SweepBackend:
    """The backend called ``name``; wandb is imported only here, only when asked for."""
    if name == "local":
        from atlas_sweeps.backends.local import LocalBackend

        return LocalBackend()
    if name == "wandb":
        from atlas_sweeps.backends.wandb.backend import WandbBackend

        return WandbBackend(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {name!r}")
