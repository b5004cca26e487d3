"""What ``status`` shows, as pure value objects: launches → sweeps → tasks with per-sweep progress counts,
and the grouping of merged task states into them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from atlas_sweeps.launch.packing import Packing
from atlas_sweeps.slurm.causes import REAPED, Diagnosis
from atlas_sweeps.slurm.states import DONE, FAILED, PENDING, RUNNING, UNKNOWN, category
from atlas_sweeps.slurm.task import NO_SOURCE, TaskState
from atlas_sweeps.state.store import JobRecord, LaunchRecord, SweepRecord
from atlas_sweeps.status.agent_runs import AgentRun
from atlas_sweeps.status.packed import RunKey, packed_runs, run_state
from atlas_sweeps.status.run_params import params_label, searched_keys, varying_keys


@dataclass(frozen=True)
class TaskRow:
    """One array task as shown: its state, which run it is (and its parameters, where known: ``label`` holds
    the ones that vary within the sweep), its log's last line and, when it did not complete, why; a retried
    run shows its latest attempt and how many it took."""

    state: TaskState
    run: int
    log_line: str = ""
    params: Mapping[str, Any] | None = None
    label: str = ""
    diagnosis: Diagnosis | None = None
    attempts: int = 1
    spent: int = 0  # seconds its attempts ran, all of them (the GPU-hours a report counts)

    @property
    def category(self) -> str:
        """The state's category; a task reaped because its sweep had nothing left to run counts as done."""
        if self.diagnosis is not None and self.diagnosis.cause == REAPED:
            return DONE
        return category(self.state.state)


@dataclass(frozen=True)
class SweepStatus:
    """A sweep's tasks and progress counts (and W&B's own counts for W&B sweeps)."""

    name: str
    tags: tuple[str, ...]
    sweep_id: str | None
    url: str | None
    runs: int
    tasks: tuple[TaskRow, ...]
    wandb_runs: dict[str, int] | None = None

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    @cached_property
    def _counts(self) -> dict[str, int]:  # the views ask for them several times a refresh
        return count_categories(t.category for t in self.tasks)


@dataclass(frozen=True)
class LaunchStatus:
    """A launch and its sweeps as of ``polled`` (None: never polled); ``stale`` when the last poll failed."""

    launch: LaunchRecord
    sweeps: tuple[SweepStatus, ...]
    polled: float | None
    accounting: bool | None
    stale: bool = False
    error: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def tasks(self) -> list[TaskRow]:
        return [t for s in self.sweeps for t in s.tasks]

    @property
    def counts(self) -> dict[str, int]:
        return add_counts(s.counts for s in self.sweeps)

    @property
    def finished(self) -> bool:
        """No task pending or running (unknown tasks count as finished only without accounting)."""
        counts = self.counts
        return counts[PENDING] == 0 and counts[RUNNING] == 0 and (counts[UNKNOWN] == 0 or self.accounting is False)


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything one refresh produced: what the table and ``--json`` show."""

    launches: tuple[LaunchStatus, ...]
    refreshed: float | None
    stale: bool = False
    error: str | None = None
    failures: int = 0
    next_refresh: float | None = None
    remote_calls: int = 0
    fatal: Exception | None = None  # an error retrying cannot fix (changed host key, refused login)
    connections: tuple[tuple[str, str], ...] = ()  # (cluster, how it is reached) of the sessions polled

    @property
    def counts(self) -> dict[str, int]:
        return add_counts(launch.counts for launch in self.launches)


def count_categories(categories: Iterable[str]) -> dict[str, int]:
    counts = {DONE: 0, RUNNING: 0, PENDING: 0, FAILED: 0, UNKNOWN: 0}
    for cat in categories:
        counts[cat] = counts.get(cat, 0) + 1
    counts["total"] = sum(counts.values())
    return counts


def add_counts(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    """The sum of several ``count_categories`` results."""
    counts = count_categories(())
    for part in parts:
        for key, n in part.items():
            counts[key] = counts.get(key, 0) + n
    return counts


def build_launch_status(launch: LaunchRecord, sweeps: list[SweepRecord], jobs: list[JobRecord], *,
                        states: Mapping[tuple[str, int], TaskState], log_lines: Mapping[tuple[str, int], str],
                        polled: float | None, accounting: bool | None, stale: bool = False,
                        error: str | None = None, wandb: dict[str, dict[str, int]] | None = None,
                        notes: tuple[str, ...] = (),
                        diagnoses: Mapping[tuple[str, int], Diagnosis] | None = None,
                        agent_runs: Mapping[tuple[str, int], AgentRun] | None = None,
                        run_records: Mapping[RunKey, str] | None = None,
                        run_logs: Mapping[RunKey, str] | None = None) -> LaunchStatus:
    """Group merged task states by sweep, in the order the launch recorded them, one row per run: its latest
    attempt; a W&B agent task's row shows the run it is on, from ``agent_runs``; a packed task (``runs_per_job``
    in the launch's options) gives one row per run of it, each in its own state from ``run_records``
    (``status.packed``) (pure)."""
    out = []
    why = diagnoses or {}
    per_task = packed_runs(launch.options)
    for sweep in sweeps:
        rows: dict[int, TaskRow] = {}
        keys = varying_keys(sweep.run_params)
        packing = Packing(runs_per_job=per_task) if per_task > 1 and sweep.run_params else None
        for job in (j for j in jobs if j.sweep_name == sweep.name):
            for task in job.tasks:
                key = (job.job_id, task)
                task_state = states.get(key) or TaskState(job_id=job.job_id, task=task, state="UNKNOWN",
                                                          source=NO_SOURCE)
                index = job.task_offset + task
                for run in packing.runs_of(index, sweep.runs) if packing else (index,):
                    state, line = task_state, log_lines.get(key, "")
                    if packing:
                        state = run_state(task_state, (run_records or {}).get((job.job_id, task, run)), now=polled)
                        line = (run_logs or {}).get((job.job_id, task, run), "")
                    params = sweep.run_params[run] if run < len(sweep.run_params) else None
                    label = params_label(params, keys) if params else ""
                    agent = (agent_runs or {}).get(key)
                    if params is None and agent is not None:
                        params, label = agent.params, agent.label(keys or searched_keys(sweep.config))
                    before = rows.pop(run, None)
                    failed = not packing or category(state.state) == FAILED
                    rows[run] = TaskRow(state=state, run=run, log_line=line, params=params, label=label,
                                        diagnosis=why.get(key) if failed else None,
                                        attempts=before.attempts + 1 if before else 1,
                                        spent=(before.spent if before else 0) + (state.elapsed or 0))
        out.append(SweepStatus(name=sweep.name, tags=sweep.tags, sweep_id=sweep.sweep_id, url=sweep.url,
                               runs=sweep.runs, tasks=tuple(sorted(rows.values(), key=lambda r: r.run)),
                               wandb_runs=(wandb or {}).get(sweep.sweep_id or "")))
    return LaunchStatus(launch=launch, sweeps=tuple(out), polled=polled, accounting=accounting, stale=stale,
                        error=error, notes=notes)

