"""``retry``: the runs of a launch that did not complete (failed, out of memory, timed out, node failure,
preempted, cancelled) submitted again, each with its own recorded argument file, as one new array per
chunk and retry round (``--array=1,3,7``: the job script maps a task id to its run as at launch), in the
launch's immutable code snapshot, recorded with the launch as attempt N. Planning is pure; ``submit_retry``
makes the one remote call."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atlas_sweeps.errors import RemoteError, UsageError
from atlas_sweeps.remote.base import Remote
from atlas_sweeps.slurm.sbatch import SparseChunk, Submission
from atlas_sweeps.slurm.states import FAILED
from atlas_sweeps.state.store import JobRecord, StateDB
from atlas_sweeps.status.model import LaunchStatus, TaskRow
from atlas_sweeps.status.packed import packed_runs

if TYPE_CHECKING:
    from atlas_sweeps.launch.jobs import PreparedSweep


@dataclass(frozen=True)
class RetryArray:
    """One array of a retry round: the runs of one chunk of one sweep that did not complete."""

    sweep: str
    chunk: int
    runs: tuple[TaskRow, ...]
    submission: Submission


@dataclass(frozen=True)
class RetryPlan:
    """A retry round of a launch: its attempt number and arrays (none: nothing to retry)."""

    launch_id: str
    attempt: int
    arrays: tuple[RetryArray, ...]
    prepared: tuple[PreparedSweep, ...] = ()  # job files to write first (retry --resync: rendered again)
    root: str = ""  # where ``prepared``'s files go
    code: str = ""  # the snapshot the round runs in when it is not the launch's

    @property
    def runs(self) -> int:
        return sum(len(a.runs) for a in self.arrays)


def plan_retry(status: LaunchStatus, *, jobs: list[JobRecord], sweep: str | None = None) -> RetryPlan:
    """The runs whose latest attempt did not complete, grouped by the chunk that first ran them (pure)."""
    rec = status.launch
    names = [s.name for s in status.sweeps]
    if sweep is not None and sweep not in names:
        raise UsageError(f"launch {rec.id} has no sweep '{sweep}'", hint=f"its sweeps: {', '.join(names)}")
    if not rec.snapshot:
        raise UsageError(f"launch {rec.id} never finished its code snapshot: there is nothing to retry in",
                         hint=f"atlas-sweeps launch --resume {rec.id}")
    attempt = max((j.attempt for j in jobs), default=1) + 1
    first = [j for j in jobs if j.attempt == 1]
    per_task = packed_runs(rec.options)
    arrays = []
    for s in status.sweeps:
        if sweep is not None and s.name != sweep:
            continue
        by_chunk: dict[int, list[TaskRow]] = {}
        chunks = {j.chunk: j for j in first if j.sweep_name == s.name}
        for row in s.tasks:
            if row.category != FAILED:
                continue
            index = row.run // per_task  # the task that runs it (a packed task runs per_task runs)
            owner = next(j for j in chunks.values() if j.task_offset <= index < j.task_offset + j.task_count)
            by_chunk.setdefault(owner.chunk, []).append(row)
        for chunk, rows in sorted(by_chunk.items()):
            job = chunks[chunk]
            # A packed task runs again whole; its runs that completed are skipped (launch/packing.py).
            ids = tuple(dict.fromkeys(r.run // per_task - job.task_offset for r in rows))
            throttle = _throttle(job.array_spec, default=len(ids))
            sparse = SparseChunk(index=chunk, offset=job.task_offset, count=len(ids), throttle=min(throttle, len(ids)),
                                 ids=ids)
            sub = Submission(key=f"{s.name}#{chunk}#{attempt}", job_name=f"{job.job_name}-r{attempt - 1}",
                             script_path=job.script, chunk=sparse, output=job.output, error=job.error,
                             chdir=rec.snapshot)
            arrays.append(RetryArray(sweep=s.name, chunk=chunk, runs=tuple(rows), submission=sub))
    return RetryPlan(launch_id=rec.id, attempt=attempt, arrays=tuple(arrays))


def _throttle(array_spec: str, *, default: int) -> int:
    """The ``%N`` of an ``--array`` value (at most N tasks at once), else ``default``."""
    _, sep, limit = array_spec.partition("%")
    return int(limit) if sep and limit.isdigit() else default


def _task_ids(sub: Submission, array: RetryArray) -> tuple[int, ...]:
    """The task ids of a retry array, as its ``--array`` lists them."""
    chunk = sub.chunk
    return chunk.ids if isinstance(chunk, SparseChunk) else tuple(r.run - chunk.offset for r in array.runs)


def retry_document(plan: RetryPlan, *, submitted: dict[str, str] | None = None) -> dict[str, Any]:
    """The plan (and what was submitted: submission key -> job id) as ``retry --json`` prints it."""
    done = submitted or {}
    return {"launch": plan.launch_id, "attempt": plan.attempt, "runs": plan.runs, "code": plan.code or None,
            "arrays": [{
        "sweep": a.sweep, "chunk": a.chunk, "array": a.submission.chunk.array_spec,
        "job_id": done.get(a.submission.key), "sbatch": a.submission.command(),
        "runs": [{"run": r.run, "job": r.state.slurm_id, "state": r.state.state, "params": r.params,
                  "cause": r.diagnosis.cause if r.diagnosis else None} for r in a.runs],
    } for a in plan.arrays]}


def submit_retry(db: StateDB, remote: Remote, plan: RetryPlan) -> dict[str, str]:
    """Submit the plan's arrays in one remote call, recording each as sbatch prints its id; what was
    submitted (key -> job id). A refused sbatch stops the round, and says what was recorded."""
    from atlas_sweeps.launch.submit import sbatch_script, submit_script

    by_key = {a.submission.key: a for a in plan.arrays}

    def record(key: str, job_id: str) -> None:
        array = by_key[key]
        sub = array.submission
        db.add_job(JobRecord(launch_id=plan.launch_id, sweep_name=array.sweep, chunk=array.chunk,
                             job_id=job_id, job_name=sub.job_name, array_spec=sub.chunk.array_spec,
                             task_offset=sub.chunk.offset, task_count=sub.chunk.count, output=sub.output,
                             error=sub.error, script=sub.script_path, submitted=time.time(),
                             attempt=plan.attempt, task_ids=_task_ids(sub, array)))

    script = (submit_script(list(plan.prepared), root=plan.root) if plan.prepared
              else sbatch_script(a.submission for a in plan.arrays))
    return submit_round(remote, script, launch_id=plan.launch_id, keys=by_key, record=record)


def submit_round(remote: Remote, script: str, *, launch_id: str, keys: Collection[str],
                 record: Callable[[str, str], None]) -> dict[str, str]:
    """Run a retry round's submit ``script`` (one remote call), calling ``record(key, job id)`` as sbatch prints
    each id; what was submitted. A refused sbatch stops the round, and says what was recorded."""
    from atlas_sweeps.launch.submit import parse_submit_line

    submitted: dict[str, str] = {}
    problems: list[str] = []

    def on_line(line: str) -> None:
        event = parse_submit_line(line)
        if event is None or event.kind in ("done", "frozen"):
            return
        if event.kind == "fatal" or event.job_id is None:
            problems.append(event.error or "the retry script failed")
            return
        record(event.key, event.job_id)
        submitted[event.key] = event.job_id

    remote.stream_script(script, on_stdout=on_line)
    if problems or len(submitted) < len(keys):
        raise RemoteError(f"retry of launch {launch_id} stopped: {problems[0] if problems else 'no answer'}; "
                          f"{len(submitted)} of {len(keys)} arrays were submitted and recorded",
                          hint=f"fix the cause, then 'atlas-sweeps retry {launch_id}' resubmits the rest")
    return submitted
