"""The progress a sweep backend reports beside Slurm's (W&B's run counts per sweep), in one small function
so that ``status`` and ``ls`` ask the backend seam in one place."""

from __future__ import annotations

from atlas_sweeps.backends.base import SweepBackend, SweepProgress
from atlas_sweeps.state.store import SweepRecord


def sweep_progress(backend: SweepBackend, sweeps: list[SweepRecord]) -> tuple[dict[str, dict[str, int]] | None,
                                                                              str | None]:
    """The backend's run counts per sweep id (None when it keeps none: Slurm's states are the progress), and
    why they are missing when the backend could not be asked."""
    progress, error = ask_progress(backend, sweeps)
    return run_counts(progress), error


def ask_progress(backend: SweepBackend, sweeps: list[SweepRecord]) -> tuple[dict[str, SweepProgress] | None,
                                                                            str | None]:
    """The backend's progress per sweep id (None: it could not be asked, and why)."""
    try:
        return backend.progress([s for s in sweeps if s.sweep_id]), None
    except Exception as exc:  # noqa: BLE001 - the backend being unreachable must not hide the Slurm table
        return None, f"{backend.name} progress unavailable: {exc}"


def run_counts(progress: dict[str, SweepProgress] | None) -> dict[str, dict[str, int]] | None:
    """Runs per state per sweep id, None when there are none."""
    return {sid: dict(p.runs_by_state) for sid, p in (progress or {}).items()} or None
