"""What ``launch --skip-done`` leaves out: the runs that already completed under the same tags and project,
as the state database recorded them (the last status of earlier launches whose backend runs one array task
per run)."""

from __future__ import annotations

from collections.abc import Iterable

from atlas_sweeps.launch.plan import Plan, run_key
from atlas_sweeps.slurm.states import DONE
from atlas_sweeps.state.store import LaunchRecord, StateDB
from atlas_sweeps.status.model import LaunchStatus


def completed_runs(statuses: Iterable[LaunchStatus]) -> dict[tuple[str, ...], set[str]]:
    """Tags -> the run keys of the runs whose latest attempt completed (pure)."""
    done: dict[tuple[str, ...], set[str]] = {}
    for status in statuses:
        for sweep in status.sweeps:
            keys = {run_key(t.params) for t in sweep.tasks if t.category == DONE and t.params is not None}
            done.setdefault(sweep.tags, set()).update(keys)
    return done


def skip_map(plan: Plan, done: dict[tuple[str, ...], set[str]]) -> dict[str, list[str]]:
    """Sweep name -> the run keys of ``plan`` that ``done`` holds for the sweep's tags (pure)."""
    out = {}
    for s in plan.sweeps:
        keys = [k for k in map(run_key, s.run_params) if k in done.get(s.spec.tags, ())]
        if keys:
            out[s.name] = keys
    return out


def earlier_launches(db: StateDB, *, project: str) -> list[LaunchRecord]:
    """The recorded launches of ``project``."""
    return [rec for rec in db.launches() if (rec.options or {}).get("project") == project]
