"""``sacct`` as data: the command for arrays that left squeue, its fields by name, its parser, the one-job
lookup ``tail`` makes, and how sacct says a cluster keeps no accounting."""

from __future__ import annotations

from collections.abc import Iterable

from atlas_sweeps.slurm._records import clean, records
from atlas_sweeps.slurm.array_ids import parse_array_id, single_task
from atlas_sweeps.slurm.durations import parse_duration
from atlas_sweeps.slurm.exit_codes import final_code
from atlas_sweeps.slurm.states import is_terminal, normalize_state
from atlas_sweeps.slurm.task import SACCT_SOURCE, TaskState

SACCT_FIELDS = ("JobID", "JobIDRaw", "State", "ExitCode", "Elapsed", "Timelimit", "Start", "End", "NodeList",
                "Reason")
# What ``tail`` asks of one job that left slurmctld: its final state and exit code.
FINAL_FIELDS = ("State", "ExitCode")


def sacct_command(*, ids_expr: str, start_expr: str) -> str:
    """``sacct`` for arrays that left squeue: allocations only (``-X``), parsable, since ``start_expr``.
    Both arguments are bash expressions (``"$need"``, ``"$start"``) computed on the cluster: the start
    time in the cluster's own time zone, which also guards against job id reuse. 22.05 has no
    ``--array``: asking for an array id lists every task. ``--duplicates``: a requeued task's earlier
    attempts too (REQUEUED records), which is how a task that left squeue tells how often it was requeued."""
    return (f"sacct -X --parsable2 --noheader --duplicates -j {ids_expr} --starttime {start_expr} "
            f"--format={','.join(SACCT_FIELDS)}")


def sacct_final_command(id_expr: str) -> str:
    """``sacct`` lines of ``FINAL_FIELDS`` for one job (``id_expr`` is a bash expression such as ``"$id"``)."""
    return f"sacct -X -n -P -j {id_expr} --format={','.join(FINAL_FIELDS)}"


def parse_sacct(text: str, *, job_ids: Iterable[str] | None = None) -> list[TaskState]:
    """Tasks in ``sacct_command``'s output. A record of one task beats the array's pending-remainder record
    (``1_[2,4-5%1]``, which lags behind the tasks split off it), which beats a record without a task id;
    among equals a later record (e.g. after a requeue) wins, counting the REQUEUED ones before it. Only a record of one task gives an exit code,
    and a final record without a task id (the original record, its task not yet written) is left out."""
    wanted = set(job_ids) if job_ids is not None else None
    found: dict[tuple[str, int], TaskState] = {}
    rank: dict[tuple[str, int], int] = {}
    requeued: dict[tuple[str, int], int] = {}  # REQUEUED records of one task: its earlier attempts
    for rec in records(text, SACCT_FIELDS):
        try:
            job_id, tasks, level = _tasks_of(rec["JobID"])
        except ValueError:
            continue
        if wanted is not None and job_id not in wanted:
            continue
        state = normalize_state(rec["State"])
        if level == 0 and is_terminal(state):
            continue  # the array's original record before its task id is known: which task ended is not said
        reason = clean(rec["Reason"]) if state != "COMPLETED" else ""
        node, start = clean(rec["NodeList"]), clean(rec["Start"])
        end = clean(rec["End"]) if is_terminal(state) else ""
        elapsed, limit = parse_duration(rec["Elapsed"]), parse_duration(rec["Timelimit"])
        code = final_code(state, rec["ExitCode"]) if level == 2 else None  # a record of several tasks: not theirs
        if level == 2 and rec["State"].startswith("REQUEUED"):
            requeued[(job_id, tasks[0])] = requeued.get((job_id, tasks[0]), 0) + 1
        for task in tasks:
            key = (job_id, task)
            if rank.get(key, -1) > level:
                continue
            rank[key] = level
            found[key] = TaskState(job_id=job_id, task=task, state=state, reason=reason, node=node,
                                   elapsed=elapsed, time_limit=limit, exit_code=code, start=start, end=end,
                                   source=SACCT_SOURCE, restarts=requeued.get(key, 0))
    return list(found.values())


def _tasks_of(job_field: str) -> tuple[str, tuple[int, ...], int]:
    """The array id, tasks and rank of a record's JobID: 2 for one task (``12_3``), 1 for several
    (``12_[4-9%2]``), 0 for none (``12``: it stands for task 0). ``ValueError`` for another id."""
    job_id, _, task = job_field.partition("_")
    one = single_task(task) if job_id.isascii() and job_id.isdigit() else None
    if one is not None:  # most records: one task
        return job_id, (one,), 2
    parsed = parse_array_id(job_field)
    if parsed.tasks is None:
        return parsed.job_id, (0,), 0
    return parsed.job_id, parsed.tasks, 2 if parsed.task is not None else 1


def accounting_missing(sacct_stderr: str) -> bool:
    """True when sacct says the cluster keeps no accounting (then only squeue and last-seen states exist)."""
    text = sacct_stderr.lower()
    return "accounting storage is disabled" in text or "slurmdbd" in text and "not" in text and "configured" in text



def accounting_answer(values: dict[str, str]) -> tuple[bool | None, str | None]:
    """``(accounting, sacct's error)`` from a remote script's ``accounting`` (``yes``/``no``) and
    ``sacct_error`` facts: None when sacct was not asked, False when it says the cluster keeps none."""
    if values.get("accounting") in ("yes", "no"):
        return values["accounting"] == "yes", None
    if "sacct_error" in values:
        if accounting_missing(values["sacct_error"]):
            return False, None
        return None, " ".join(values["sacct_error"].split())
    return None, None
