"""What the state database knows without asking the cluster: a launch as last seen, which launches may still
have jobs running, and the default selection of ``status``."""

from __future__ import annotations

from pathlib import Path

from atlas_sweeps.slurm.states import PENDING, RUNNING, category
from atlas_sweeps.state.store import LaunchRecord, StateDB
from atlas_sweeps.status.agent_runs import parse_agent_run
from atlas_sweeps.status.diagnosis import stored_diagnosis
from atlas_sweeps.status.model import LaunchStatus, build_launch_status
from atlas_sweeps.status.packed import packed_runs

RECENT_SECONDS = 7 * 86400  # launches never polled count as unfinished only this long


def stored_status(db: StateDB, launch: LaunchRecord, *, stale: bool = False, error: str | None = None) -> LaunchStatus:
    """A launch as the database last saw it (no remote call)."""
    seen = db.task_states(launch.id)
    poll = db.last_poll(launch.id)
    states = {(s.job_id, s.task): s for s in seen}
    logs = {(s.job_id, s.task): s.log_line for s in seen if s.log_line}
    why = {(s.job_id, s.task): d for s in seen if (d := stored_diagnosis(s)) is not None}
    agents = {(s.job_id, s.task): run for s in seen if s.agent_run and (run := parse_agent_run(s.agent_run))}
    runs = db.run_records(launch.id) if packed_runs(launch.options) > 1 else {}
    return build_launch_status(launch, db.sweeps(launch.id), db.jobs(launch.id), states=states, log_lines=logs,
                               polled=poll.polled if poll else None,
                               accounting=poll.accounting if poll else None, stale=stale, error=error,
                               diagnoses=why, agent_runs=agents,
                               run_records={k: v[0] for k, v in runs.items()},
                               run_logs={k: v[1] for k, v in runs.items() if v[1]})


def is_unfinished(db: StateDB, launch: LaunchRecord, *, now: float) -> bool:
    """True when a launch may still have pending or running jobs, as far as the database knows."""
    jobs = db.jobs(launch.id)
    if not jobs:
        return False
    seen = db.task_states(launch.id)
    if not seen:
        return now - launch.created < RECENT_SECONDS
    if any(category(s.state) in (PENDING, RUNNING) for s in seen):
        return True
    return len(seen) < sum(j.task_count for j in jobs) and now - launch.created < RECENT_SECONDS


def default_launches(db: StateDB, *, now: float) -> list[LaunchRecord]:
    """Launches with unfinished jobs plus the most recent one, newest first."""
    launches = db.launches(limit=200)
    if not launches:
        return []
    return [launches[0]] + [rec for rec in launches[1:] if is_unfinished(db, rec, now=now)]


def project_dir_of(launch: LaunchRecord) -> Path:
    """Where the launch's profile was found (its code directory), else here."""
    code = launch.options.get("code_dir") if launch.options else None
    return Path(code) if code and Path(code).is_dir() else Path.cwd()
