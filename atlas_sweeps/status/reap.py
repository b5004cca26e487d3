"""Reaping (pure): the pending agent tasks of sweeps that have nothing left to run (finished, stopped, paused,
run cap reached, as their backend says) are cancelled by the refresh's own poll script, in one
``scancel --state=PENDING`` for every such array of the cluster, so they stop waiting in the queue for
nothing. Running tasks are never touched: they finish their current run. What was reaped is recorded as
CANCELLED with the cause ``reaped``, which counts as done, not as a failure."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from atlas_sweeps.backends.base import SweepProgress
from atlas_sweeps.slurm.causes import REAPED, Diagnosis
from atlas_sweeps.slurm.scancel import scancel_pending_command
from atlas_sweeps.slurm.squeue import column
from atlas_sweeps.slurm.states import is_terminal
from atlas_sweeps.slurm.task import CANCEL_SOURCE, TaskState
from atlas_sweeps.state.store import JobRecord, SweepRecord, TaskSeen

# Only tasks squeue shows in exactly this state are reaped: a requeued task (REQUEUED, REQUEUE_HOLD, or PENDING
# again with a restart count) is a run that already started and must get to finish.
REAPED_STATE = "PENDING"


@dataclass(frozen=True)
class ReapTarget:
    """A job array of a sweep with nothing left to run, and why (the backend's words)."""

    job_id: str
    sweep: str
    why: str


def reap_targets(jobs: Iterable[JobRecord], sweeps: Iterable[SweepRecord], progress: Mapping[str, SweepProgress],
                 seen: Mapping[tuple[str, int], TaskSeen]) -> list[ReapTarget]:
    """The arrays whose sweep has nothing left to run and that may still hold tasks not known to be final."""
    idle = {s.name: progress[s.sweep_id].nothing_left for s in sweeps
            if s.sweep_id and s.sweep_id in progress and progress[s.sweep_id].nothing_left}
    out = []
    for job in jobs:
        if job.sweep_name in idle and job.job_id.isdigit() and any(
                not is_terminal(seen[(job.job_id, t)].state) if (job.job_id, t) in seen else True for t in job.tasks):
            out.append(ReapTarget(job_id=job.job_id, sweep=job.sweep_name, why=idle[job.sweep_name]))
    return out


def reap_lines(job_ids: Iterable[str]) -> list[str]:
    """Bash lines for the poll script, after its squeue (``$sq``): one ``scancel --state=PENDING`` for the
    arrays of ``job_ids`` that squeue shows pending tasks of; ``emit reap "RC|IDS|OUTPUT"``. Nothing runs
    when none is pending."""
    ids = " ".join(j for j in job_ids if j.isdigit())
    if not ids:
        return []
    # An array with a requeued task waiting again (RestartCnt > 0) is left for a later refresh: that task is a
    # run that started and must get to finish, and Slurm 22.05's scancel --state cancels whole arrays (a task
    # id given with --state is not honoured), so its array-mates cannot be reaped without it.
    awk = (f'BEGIN {{ n = split(ids, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }} '
           f'{{ gsub(/ /, "") }} ${column("State")} == "{REAPED_STATE}" && (${column("ArrayJobID")} in want) '
           f'{{ pend[${column("ArrayJobID")}] = 1; if (${column("RestartCnt")} + 0 > 0) keep[${column("ArrayJobID")}] = 1 }} '
           f'END {{ for (j in pend) if (!(j in keep)) printf "%s ", j }}')
    return [
        f"reap=$(printf '%s\\n' \"$sq\" | awk -F'|' -v ids={shlex.quote(ids)} {shlex.quote(awk)})",
        'if [ -n "$reap" ]; then',
        f'  out=$({scancel_pending_command("$reap")} 2>&1); emit reap "$?|$reap|$out"',
        "fi",
    ]


@dataclass(frozen=True)
class Reaped:
    """What the poll script's scancel did: the arrays it cancelled the pending tasks of, or its error."""

    arrays: frozenset[str]
    error: str | None = None


def parse_reap(value: str | None) -> Reaped:
    """The ``reap`` fact of ``reap_lines`` (None: nothing was pending, scancel did not run)."""
    if value is None:
        return Reaped(arrays=frozenset())
    rc, _, rest = value.partition("|")
    ids, _, message = rest.partition("|")
    if rc.strip() != "0":
        return Reaped(arrays=frozenset(), error=f"scancel exit {rc.strip()}: {' '.join(message.split())}")
    return Reaped(arrays=frozenset(ids.split()))


def reap_squeue(squeue: list[TaskState], arrays: frozenset[str]) -> tuple[list[TaskState], set[tuple[str, int]]]:
    """``squeue``'s states with the reaped tasks (pending ones of ``arrays``) made CANCELLED as recorded by a
    cancel (a later poll confirms them), and their keys."""
    if not arrays:
        return squeue, set()
    out, keys = [], set()
    for state in squeue:
        if state.job_id in arrays and state.state == REAPED_STATE and not state.restarts:
            keys.add((state.job_id, state.task))
            state = replace(state, state="CANCELLED", reason="", node="", end="", exit_code=None, source=CANCEL_SOURCE)
        out.append(state)
    return out, keys


def reaped_diagnosis(why: str) -> Diagnosis:
    """The cause a reaped task is shown and stored with."""
    return Diagnosis(cause=REAPED, error=f"reaped: {why}")


def reap_notes(targets: Iterable[ReapTarget], reaped: Iterable[tuple[str, int]], *, error: str | None) -> list[str]:
    """A launch's note lines for what one refresh reaped of its ``targets``, per sweep, or why it could not."""
    targets = list(targets)
    why = {t.job_id: t for t in targets}
    counts: dict[str, int] = {}
    for job_id, _task in reaped:
        if job_id in why:
            counts[why[job_id].sweep] = counts.get(why[job_id].sweep, 0) + 1
    notes = [f"reaped {n} pending agent task(s) of sweep {sweep}: {next(t.why for t in targets if t.sweep == sweep)}"
             " (running tasks finish their run; 'status --no-reap' leaves them)" for sweep, n in counts.items()]
    if error and targets:
        names = ", ".join(dict.fromkeys(t.sweep for t in targets))
        notes.append(f"could not reap the pending tasks of sweep(s) {names}: {error}")
    return notes
