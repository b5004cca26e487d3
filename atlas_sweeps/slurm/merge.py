"""The merge of what a poll learned (squeue, sacct, the exit codes the tasks' scripts wrote) with the last
states seen into one state per array task."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from atlas_sweeps.slurm.exit_codes import consistent_exit_code
from atlas_sweeps.slurm.states import is_terminal
from atlas_sweeps.slurm.task import CANCEL_SOURCE, EXIT_FILE_SOURCE, LAST_SEEN_SOURCE, NO_SOURCE, TaskState


def merge_tasks(*, arrays: Mapping[str, int | Iterable[int]], squeue: Iterable[TaskState], sacct: Iterable[TaskState],
                last_seen: Iterable[TaskState], exit_codes: Mapping[tuple[str, int], int] | None = None,
                accounting: bool | None = None, queried: Iterable[str] = ()) -> dict[tuple[str, int], TaskState]:
    """One state per task of ``arrays`` (array job id → task count, or its task ids): squeue first (it is live), then sacct
    for tasks that left squeue, then the exit code the task's script wrote, then the last state seen, else
    UNKNOWN. A final state's exit code comes from the task's exit-code file, else its own sacct record, else
    squeue. A cancel recorded by ``cancel`` beats a sacct state that is not final (a stale pending-remainder
    record). Without accounting, a task of a ``queried`` array that left squeue with no exit code written
    (killed before its script could write it) has ended, how is not known: UNKNOWN, last seen. A task that
    left squeue keeps the requeue count last seen there."""
    live = {(t.job_id, t.task): t for t in squeue}
    acct = {(t.job_id, t.task): t for t in sacct}
    seen = {(t.job_id, t.task): t for t in last_seen}
    codes = exit_codes or {}
    asked = set(queried)
    out: dict[tuple[str, int], TaskState] = {}
    for job_id, tasks in arrays.items():
        for task in range(tasks) if isinstance(tasks, int) else tasks:
            key = (job_id, task)
            state = live.get(key)
            if state is None:
                state = _left_squeue(key, acct=acct, seen=seen, codes=codes,
                                     ended_unseen=accounting is False and job_id in asked)
                last = seen.get(key)
                if last is not None and last.restarts > state.restarts:  # sacct keeps no restart count
                    state = replace(state, restarts=last.restarts)
            elif not is_terminal(state.state) or (key not in codes and key not in acct):
                out[key] = state  # the common case of a large live array: nothing to fill in
                continue
            if is_terminal(state.state) and state.source != EXIT_FILE_SOURCE:
                code = codes.get(key, acct[key].exit_code if key in acct and state is not acct[key] else None)
                if code is not None:
                    state = replace(state, exit_code=consistent_exit_code(state.state, code))
            out[key] = state
    return out


def _left_squeue(key: tuple[str, int], *, acct: Mapping[tuple[str, int], TaskState],
                 seen: Mapping[tuple[str, int], TaskState], codes: Mapping[tuple[str, int], int],
                 ended_unseen: bool) -> TaskState:
    """The state of a task squeue no longer lists, from sacct, its exit-code file or the last state seen."""
    job_id, task = key
    last = seen.get(key)
    cancelled = last is not None and last.source == CANCEL_SOURCE
    record = acct.get(key)
    if record is not None and (is_terminal(record.state) or not cancelled):
        return record
    if key in codes:  # the script ran to its end: that beats a cancel recorded after it
        code = codes[key]
        return TaskState(job_id=job_id, task=task, state="COMPLETED" if code == 0 else "FAILED",
                         reason="" if code == 0 else "NonZeroExitCode", exit_code=code, source=EXIT_FILE_SOURCE)
    if last is None:
        return TaskState(job_id=job_id, task=task, state="UNKNOWN", source=NO_SOURCE)
    if is_terminal(last.state):
        return last  # a final state stays what it was
    if ended_unseen:
        return replace(last, state="UNKNOWN", reason=f"ended unseen (last seen {last.state})",
                       source=LAST_SEEN_SOURCE)
    return replace(last, source=LAST_SEEN_SOURCE)  # a live one is now only "last seen"
