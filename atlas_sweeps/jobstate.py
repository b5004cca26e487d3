"""Slurm job states, pure: ``squeue``/``sacct`` command builders and parsers on their literal output, array
id parsing (``123_4``, ``123_[5-9%2]``), Slurm states mapped to what we show, and the merge of squeue,
sacct and the last state seen into one state per array task."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

# squeue -O fields, '|'-delimited; exit_code is the raw wait status (768 = exit 3, 9 = signal 9).
SQUEUE_FIELDS = ("ArrayJobID", "ArrayTaskID", "JobID", "State", "Reason", "NodeList", "TimeUsed", "TimeLimit",
                 "StartTime", "EndTime", "exit_code")
SACCT_FIELDS = ("JobID", "JobIDRaw", "State", "ExitCode", "Elapsed", "Timelimit", "Start", "End", "NodeList",
                "Reason")

# Our categories: what a progress count adds a task to.
PENDING, RUNNING, DONE, FAILED, UNKNOWN = "pending", "running", "done", "failed", "unknown"

_CATEGORY = {
    "PENDING": PENDING, "REQUEUED": PENDING, "REQUEUE_HOLD": PENDING, "REQUEUE_FED": PENDING,
    "RESV_DEL_HOLD": PENDING,
    "RUNNING": RUNNING, "CONFIGURING": RUNNING, "COMPLETING": RUNNING, "SUSPENDED": RUNNING,
    "RESIZING": RUNNING, "SIGNALING": RUNNING, "STAGE_OUT": RUNNING, "STOPPED": RUNNING,
    "COMPLETED": DONE,
    "FAILED": FAILED, "CANCELLED": FAILED, "TIMEOUT": FAILED, "OUT_OF_MEMORY": FAILED, "NODE_FAIL": FAILED,
    "PREEMPTED": FAILED, "BOOT_FAIL": FAILED, "DEADLINE": FAILED, "SPECIAL_EXIT": FAILED, "REVOKED": FAILED,
}
ACTIVE_STATES = tuple(s for s, c in _CATEGORY.items() if c in (PENDING, RUNNING))
_STATE_ALIASES = {"OOM": "OUT_OF_MEMORY", "CA": "CANCELLED", "CD": "COMPLETED", "F": "FAILED", "PD": "PENDING",
                  "R": "RUNNING", "TO": "TIMEOUT", "CG": "COMPLETING", "CF": "CONFIGURING", "NF": "NODE_FAIL"}

_TASK_ID = re.compile(r"^(\d+)(?:_(\d+|\[[^\]]*\]))?(?:\+\d+)?$")


@dataclass(frozen=True)
class ArrayId:
    """A parsed Slurm job id: ``123`` (no task), ``123_4`` (one task) or ``123_[5-9%2]`` (several)."""

    job_id: str
    tasks: tuple[int, ...] | None  # None: the whole job (or a plain job)

    @property
    def task(self) -> int | None:
        """The single task, when exactly one is named."""
        return self.tasks[0] if self.tasks is not None and len(self.tasks) == 1 else None


def parse_task_ranges(text: str) -> tuple[int, ...]:
    """Task indices of ``5-9%2``, ``[1,3,5-7]`` or ``0-10:2`` (the ``%`` throttle is dropped)."""
    text = text.strip().strip("[]").split("%", 1)[0]
    out: list[int] = []
    for part in filter(None, text.split(",")):
        step = 1
        if ":" in part:
            part, step_text = part.split(":", 1)
            step = max(1, int(step_text))
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1, step))
        else:
            out.append(int(part))
    return tuple(out)


def parse_array_id(text: str) -> ArrayId:
    """Parse a job id as users and Slurm write it; ``ValueError`` for anything else."""
    match = _TASK_ID.match(text.strip())
    if not match:
        raise ValueError(f"not a Slurm job id: {text!r} (expected 123, 123_4 or 123_[5-9])")
    job, tasks = match.group(1), match.group(2)
    if tasks is None:
        return ArrayId(job_id=job, tasks=None)
    return ArrayId(job_id=job, tasks=parse_task_ranges(tasks))


def normalize_state(raw: str) -> str:
    """``CANCELLED by 1003`` → ``CANCELLED``; ``OOM`` → ``OUT_OF_MEMORY``; unknown text kept upper-case."""
    word = (raw.strip().split() or ["UNKNOWN"])[0].upper().rstrip("+")
    return _STATE_ALIASES.get(word, word)


def category(state: str) -> str:
    """Which progress count a (normalized) state adds to."""
    return _CATEGORY.get(state, UNKNOWN)


def is_terminal(state: str) -> bool:
    return category(state) in (DONE, FAILED)


def parse_duration(text: str) -> int | None:
    """Seconds of Slurm's ``[D-]HH:MM:SS``, ``MM:SS``, ``M:SS.mmm``; None for UNLIMITED, N/A, empty."""
    text = text.strip()
    if not text or not text[0].isdigit():
        return None
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
    parts = [float(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    if days and len(parts) == 3 and text.count(":") == 0:
        parts = [parts[2], 0.0, 0.0]  # "2-05" means 2 days 5 hours
    hours, minutes, seconds = parts[-3:]
    return int(days * 86400 + hours * 3600 + minutes * 60 + seconds)


def format_duration(seconds: int | None) -> str:
    """``1:02:03``, ``2-01:00:00``, ``0:05``; empty for None."""
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def parse_exit_code(text: str, *, wait_status: bool = False) -> int | None:
    """A job's exit code as a shell would report it (``3:0`` → 3, ``0:9`` → 137); squeue's ``exit_code``
    is a raw wait status (``768`` → 3, ``9`` → 137) when ``wait_status``."""
    text = text.strip()
    try:
        if ":" in text:
            code, sig = (int(x) for x in text.split(":", 1))
            return code if code else (128 + sig if sig else 0)
        value = int(text)
    except ValueError:
        return None
    if not wait_status:
        return value
    sig = value & 0x7F
    return 128 + sig if sig else (value >> 8) & 0xFF


@dataclass(frozen=True)
class TaskState:
    """One array task as last known: Slurm's state and details, and where we learned it."""

    job_id: str  # the array job id
    task: int
    state: str
    reason: str = ""
    node: str = ""
    elapsed: int | None = None
    time_limit: int | None = None
    exit_code: int | None = None
    start: str = ""
    end: str = ""
    source: str = "squeue"  # squeue, sacct, last-seen, none

    @property
    def slurm_id(self) -> str:
        return f"{self.job_id}_{self.task}"

    @property
    def category(self) -> str:
        return category(self.state)


def _clean(value: str) -> str:
    value = value.strip()
    return "" if value in ("None", "N/A", "(null)", "None assigned", "Unknown") else value


def _tasks_of(task_field: str, jobid_field: str) -> tuple[int, ...] | None:
    task_field = task_field.strip()
    if task_field in ("", "N/A"):
        parsed = parse_array_id(jobid_field) if jobid_field.strip() else None
        return parsed.tasks if parsed else None
    return parse_task_ranges(task_field)


def squeue_command(job_names: Iterable[str]) -> str:
    """One ``squeue`` for every array of the selection (by name: squeue filters by name, not comment),
    array tasks expanded one per line, finished ones still held by slurmctld included."""
    fmt = ",".join(f"{f}:|" for f in SQUEUE_FIELDS[:-1]) + f",{SQUEUE_FIELDS[-1]}"
    return (f"squeue --array --states=all --noheader --name={shlex.quote(','.join(job_names))} "
            f"-O {shlex.quote(fmt)}")


def parse_squeue(text: str, *, job_ids: Iterable[str] | None = None) -> list[TaskState]:
    """Tasks in ``squeue_command``'s output; lines of other arrays (``job_ids`` filter) are dropped and a
    pending remainder (``5-9%2``) becomes one state per task."""
    wanted = set(job_ids) if job_ids is not None else None
    out: list[TaskState] = []
    for line in text.splitlines():
        cols = line.split("|")
        if len(cols) < len(SQUEUE_FIELDS):
            continue
        array_job, task_field, raw_id, state, reason, node, used, limit, start, end, code = (
            c.strip() for c in cols[:len(SQUEUE_FIELDS)])
        if not array_job.isdigit() or (wanted is not None and array_job not in wanted):
            continue
        try:
            tasks = _tasks_of(task_field, raw_id)
        except ValueError:
            continue
        norm = normalize_state(state)
        for task in tasks if tasks is not None else (0,):
            out.append(TaskState(
                job_id=array_job, task=task, state=norm, reason=_clean(reason) if norm != "COMPLETED" else "", node=_clean(node),
                elapsed=parse_duration(used), time_limit=parse_duration(limit),
                exit_code=parse_exit_code(code, wait_status=True) if is_terminal(norm) else None,
                start=_clean(start), end=_clean(end) if is_terminal(norm) else "", source="squeue"))
    return out


def sacct_command(*, ids_expr: str, start_expr: str) -> str:
    """``sacct`` for arrays that left squeue: allocations only (``-X``), parsable, since ``start_expr``.
    Both arguments are bash expressions (``"$need"``, ``"$start"``) computed on the cluster: the start
    time in the cluster's own time zone, which also guards against job id reuse. 22.05 has no
    ``--array``: asking for an array id lists every task."""
    return (f"sacct -X --parsable2 --noheader -j {ids_expr} --starttime {start_expr} "
            f"--format={','.join(SACCT_FIELDS)}")


def parse_sacct(text: str, *, job_ids: Iterable[str] | None = None) -> list[TaskState]:
    """Tasks in ``sacct_command``'s output (a later record of the same task, e.g. after a requeue, wins)."""
    wanted = set(job_ids) if job_ids is not None else None
    found: dict[tuple[str, int], TaskState] = {}
    for line in text.splitlines():
        cols = line.split("|")
        if len(cols) < len(SACCT_FIELDS):
            continue
        job, _raw, state, code, elapsed, limit, start, end, node, reason = (c.strip() for c in cols[:10])
        try:
            parsed = parse_array_id(job)
        except ValueError:
            continue
        if wanted is not None and parsed.job_id not in wanted:
            continue
        norm = normalize_state(state)
        for task in parsed.tasks if parsed.tasks is not None else (0,):
            found[(parsed.job_id, task)] = TaskState(
                job_id=parsed.job_id, task=task, state=norm, reason=_clean(reason) if norm != "COMPLETED" else "", node=_clean(node),
                elapsed=parse_duration(elapsed), time_limit=parse_duration(limit),
                exit_code=parse_exit_code(code) if is_terminal(norm) else None,
                start=_clean(start), end=_clean(end) if is_terminal(norm) else "", source="sacct")
    return list(found.values())


def accounting_missing(sacct_stderr: str) -> bool:
    """True when sacct says the cluster keeps no accounting (then only squeue and last-seen states exist)."""
    text = sacct_stderr.lower()
    return "accounting storage is disabled" in text or "slurmdbd" in text and "not" in text and "configured" in text


def merge_tasks(*, arrays: Mapping[str, int], squeue: Iterable[TaskState], sacct: Iterable[TaskState],
                last_seen: Iterable[TaskState]) -> dict[tuple[str, int], TaskState]:
    """One state per task of ``arrays`` (array job id → task count): squeue first (it is live), then sacct
    for tasks that left squeue (and for exit codes squeue lacks), then the last state seen, else UNKNOWN."""
    live = {(t.job_id, t.task): t for t in squeue}
    acct = {(t.job_id, t.task): t for t in sacct}
    seen = {(t.job_id, t.task): t for t in last_seen}
    out: dict[tuple[str, int], TaskState] = {}
    for job_id, count in arrays.items():
        for task in range(count):
            key = (job_id, task)
            if key in live:
                state = live[key]
                if is_terminal(state.state) and key in acct and acct[key].exit_code is not None:
                    state = replace(state, exit_code=acct[key].exit_code)
            elif key in acct:
                state = acct[key]
            elif key in seen:  # a final state stays what it was; a live one is now only "last seen"
                state = seen[key] if is_terminal(seen[key].state) else replace(seen[key], source="last-seen")
            else:
                state = TaskState(job_id=job_id, task=task, state="UNKNOWN", source="none")
            out[key] = state
    return out
