"""The JSON ``status --json`` prints: the same data as the table (its task fields from the column spec)."""

from __future__ import annotations

from typing import Any

from atlas_sweeps.status.columns import task_document
from atlas_sweeps.status.model import LaunchStatus, StatusSnapshot


def status_document(snapshot: StatusSnapshot) -> dict[str, Any]:
    """The whole snapshot."""
    return {
        "refreshed": snapshot.refreshed, "stale": snapshot.stale, "error": snapshot.error,
        "counts": snapshot.counts, "remote_calls": snapshot.remote_calls,
        "connections": dict(snapshot.connections),
        "launches": [launch_document(s) for s in snapshot.launches],
    }


def launch_document(status: LaunchStatus, *, tasks: bool = True) -> dict[str, Any]:
    """One launch with its sweeps (and their tasks unless ``tasks`` is false: ``ls`` lists none)."""
    rec = status.launch
    return {
        "id": rec.id, "created": rec.created, "config": rec.config_path, "cluster": rec.cluster,
        "backend": rec.backend, "git_commit": rec.git_commit, "git_dirty": rec.git_dirty, "note": rec.note,
        "polled": status.polled, "accounting": status.accounting, "stale": status.stale, "error": status.error,
        "notes": list(status.notes), "finished": status.finished, "counts": status.counts,
        "sweeps": [{
            "name": s.name, "tags": list(s.tags), "sweep_id": s.sweep_id, "url": s.url, "runs": s.runs,
            "counts": s.counts, "wandb_runs": s.wandb_runs,
            **({"tasks": [task_document(t) for t in s.tasks]} if tasks else {}),
        } for s in status.sweeps],
    }
