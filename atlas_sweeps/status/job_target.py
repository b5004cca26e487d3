"""Which job ``tail`` follows: a job id as users write it, resolved against the state database (its task,
its log file and its launch), or passed on as it is for a job the database does not know."""

from __future__ import annotations

from dataclasses import dataclass

from atlas_sweeps.errors import UsageError
from atlas_sweeps.launch.layout import log_path
from atlas_sweeps.slurm.array_ids import parse_array_id
from atlas_sweeps.state.store import LaunchRecord, StateDB


@dataclass(frozen=True)
class JobTarget:
    """One job to follow: its Slurm id, its log path (None: ask scontrol) and its launch (None: unknown)."""

    slurm_id: str
    path: str | None = None
    launch: LaunchRecord | None = None


def resolve_job(db: StateDB, job: str, *, stream: str) -> JobTarget:
    """JOB as the state database knows it; ``UsageError`` for what is not one task of a known job."""
    try:
        parsed = parse_array_id(job)
    except ValueError:
        raise UsageError(f"'{job}' is not a job id", hint="use 123 or 123_4, as 'atlas-sweeps status' prints them") from None
    if parsed.tasks is not None and len(parsed.tasks) != 1:
        raise UsageError(f"'{job}' names several tasks: tail follows one", hint=f"e.g. {parsed.job_id}_{parsed.tasks[0]}")
    record = db.job_by_id(parsed.job_id)
    if record is None:
        return JobTarget(slurm_id=job)
    task = parsed.task
    if task is None:
        if record.task_count != 1:
            raise UsageError(f"job {parsed.job_id} is an array of {record.task_count} tasks: pick one",
                             hint=f"atlas-sweeps tail {parsed.job_id}_0 (tasks 0..{record.task_count - 1})")
        task = record.tasks[0]
    if task not in record.tasks:
        raise UsageError(f"job {parsed.job_id} has no task {task} (tasks {record.tasks[0]}..{record.tasks[-1]})",
                         hint="'atlas-sweeps status' lists them")
    pattern = record.error if stream == "err" else record.output
    return JobTarget(slurm_id=f"{parsed.job_id}_{task}", path=log_path(pattern, job_id=parsed.job_id, task=task),
                     launch=db.launch(record.launch_id))
