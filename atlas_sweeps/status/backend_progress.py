"""The progress a sweep backend reports beside Slurm's (W&B's run counts per sweep), in one small function
so that ``status`` and ``ls`` call it in one place."""

from __future__ import annotations

from atlas_sweeps.state.store import SweepRecord


def wandb_counts(sweeps: list[SweepRecord], *, base_url: str | None) -> tuple[dict[str, dict[str, int]] | None,
                                                                               str | None]:
    """W&B's run counts per sweep id, through the W&B backend's ``fetch_progress`` (imported only here)."""
    try:
        from atlas_sweeps.backends.wandb.progress import fetch_progress
    except ImportError:
        return None, None
    try:
        progress = fetch_progress([s for s in sweeps if s.sweep_id], base_url=base_url)
    except Exception as exc:  # noqa: BLE001 - W&B being unreachable must not hide the Slurm table
        return None, f"W&B progress unavailable: {exc}"
    return {sid: dict(p.runs_by_state) for sid, p in progress.items()}, None
