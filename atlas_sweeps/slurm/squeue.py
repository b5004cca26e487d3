"""``squeue`` as data: the command that lists every task of the selection's arrays, its fields by name (the
``-O`` list, and the awk column of each for remote scripts), and its parser."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from atlas_sweeps.slurm._records import clean, records
from atlas_sweeps.slurm.array_ids import parse_array_id, parse_task_ranges, single_task
from atlas_sweeps.slurm.durations import parse_duration
from atlas_sweeps.slurm.exit_codes import final_code
from atlas_sweeps.slurm.states import is_terminal, normalize_state
from atlas_sweeps.slurm.task import SQUEUE_SOURCE, TaskState

# squeue -O fields, '|'-delimited; exit_code is the raw wait status (768 = exit 3, 9 = signal 9) up to 22.05,
# ``exit:signal`` (``3:0``) since 23.02. RestartCnt: how often the task was requeued.
SQUEUE_FIELDS = ("ArrayJobID", "ArrayTaskID", "JobID", "State", "Reason", "NodeList", "TimeUsed", "TimeLimit",
                 "StartTime", "EndTime", "RestartCnt", "exit_code")


def column(name: str) -> int:
    """The 1-based column (awk's ``$n``) of field ``name`` in ``squeue_command``'s output."""
    return SQUEUE_FIELDS.index(name) + 1


def squeue_command(job_names: Iterable[str]) -> str:
    """One ``squeue`` for every array of the selection (by name: squeue filters by name, not comment),
    array tasks expanded one per line, finished ones still held by slurmctld included."""
    fmt = ",".join(f"{f}:|" for f in SQUEUE_FIELDS[:-1]) + f",{SQUEUE_FIELDS[-1]}"
    return (f"squeue --array --states=all --noheader --name={shlex.quote(','.join(job_names))} "
            f"-O {shlex.quote(fmt)}")


def _tasks_of(task_field: str, jobid_field: str) -> tuple[int, ...] | None:
    one = single_task(task_field)  # most lines of a large array
    if one is not None:
        return (one,)
    if task_field in ("", "N/A"):
        parsed = parse_array_id(jobid_field) if jobid_field else None
        return parsed.tasks if parsed else None
    return parse_task_ranges(task_field)


def parse_squeue(text: str, *, job_ids: Iterable[str] | None = None) -> list[TaskState]:
    """Tasks in ``squeue_command``'s output; lines of other arrays (``job_ids`` filter) are dropped and a
    pending remainder (``5-9%2``) becomes one state per task."""
    wanted = set(job_ids) if job_ids is not None else None
    out: list[TaskState] = []
    for rec in records(text, SQUEUE_FIELDS):
        array_job, raw_id = rec["ArrayJobID"], rec["JobID"]
        if not array_job.isdigit() or (wanted is not None and array_job not in wanted):
            continue
        try:
            tasks = _tasks_of(rec["ArrayTaskID"], raw_id)
        except ValueError:
            continue
        state = normalize_state(rec["State"])
        # The array's original record (JobID equal to the array id) reports the largest exit code of the
        # array's tasks so far, not its own task's: only COMPLETED (exit 0) can be read off it.
        exit_code = final_code(state, rec["exit_code"], wait_status=True)
        if raw_id == array_job and state != "COMPLETED":
            exit_code = None
        reason = clean(rec["Reason"]) if state != "COMPLETED" else ""
        node, start = clean(rec["NodeList"]), clean(rec["StartTime"])
        end = clean(rec["EndTime"]) if is_terminal(state) else ""
        elapsed, limit = parse_duration(rec["TimeUsed"]), parse_duration(rec["TimeLimit"])
        restarts = int(rec["RestartCnt"]) if rec["RestartCnt"].isdigit() else 0
        for task in tasks if tasks is not None else (0,):
            out.append(TaskState(job_id=array_job, task=task, state=state, reason=reason, node=node,
                                 elapsed=elapsed, time_limit=limit, exit_code=exit_code, start=start, end=end,
                                 source=SQUEUE_SOURCE, restarts=restarts))
    return out
