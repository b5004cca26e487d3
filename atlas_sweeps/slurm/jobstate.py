"""Slurm job states, pure: ``squeue``/``sacct`` command builders and parsers on their literal output, array
id parsing (``123_4``, ``123_[5-9%2]``), Slurm states mapped to what we show, and the merge of squeue,
sacct and the last state seen into one state per array task."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

# squeue -O fields, '|'-delimited; exit_code is the raw wait status (768 = exit 3, 9 = signal 9) up to 22.05,
# ``exit:signal`` (``3:0``) since 23.02.
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
# Slurm caps MaxArraySize at 4000001 (src/common/read_config.c), so no task index exceeds 4000000.
MAX_TASK_INDEX = 4_000_000


@dataclass(frozen=True)
class ArrayId:
    """A parsed Slurm job id: ``123`` (no task), ``123_4`` (one task) or ``123_[5-9%2]`` (several)."""

    job_id: str
    spans: tuple[range, ...] | None  # None: the whole job (or a plain job); ranges stay lazy

    @property
    def tasks(self) -> tuple[int, ...] | None:
        """Every task named, in order (at most MAX_TASK_INDEX + 1 of them: ``parse_task_spans`` checked)."""
        return None if self.spans is None else tuple(t for span in self.spans for t in span)

    @property
    def task(self) -> int | None:
        """The single task, when exactly one is named."""
        if self.spans is None or sum(len(span) for span in self.spans) != 1:
            return None
        return next(t for span in self.spans for t in span)

    @property
    def max_task(self) -> int | None:
        """The highest task index named (None for a whole job), found without listing the tasks."""
        return None if self.spans is None else max((span[-1] for span in self.spans if span), default=None)


def parse_task_spans(text: str) -> tuple[range, ...]:
    """Task ranges of ``5-9%2``, ``[1,3,5-7]`` or ``0-10:2`` (the ``%`` throttle is dropped), never expanded;
    ``ValueError`` for an index beyond any Slurm's largest array (``1_[0-9999999999]``) or a malformed part."""
    body = text.strip().strip("[]").split("%", 1)[0]
    spans: list[range] = []
    for part in filter(None, body.split(",")):
        step = 1
        if ":" in part:
            part, step_text = part.split(":", 1)
            step = max(1, _index(step_text, text))
        lo_text, _, hi_text = part.partition("-")
        lo = _index(lo_text, text)
        hi = _index(hi_text, text) if hi_text else lo
        spans.append(range(lo, hi + 1, step))
    if sum(len(span) for span in spans) > MAX_TASK_INDEX + 1:
        raise ValueError(f"{text!r} names more tasks than the largest Slurm array holds ({MAX_TASK_INDEX + 1})")
    return tuple(spans)


def _index(part: str, whole: str) -> int:
    part = part.strip()
    if not (part.isascii() and part.isdigit()):
        raise ValueError(f"not a task index: {part!r} in {whole!r}")
    if len(part) > 9 or int(part) > MAX_TASK_INDEX:
        raise ValueError(f"task index {part} in {whole!r} is beyond the largest Slurm allows ({MAX_TASK_INDEX})")
    return int(part)


def parse_task_ranges(text: str) -> tuple[int, ...]:
    """Task indices of ``5-9%2``, ``[1,3,5-7]`` or ``0-10:2``, listed (bounded by ``parse_task_spans``)."""
    return tuple(t for span in parse_task_spans(text) for t in span)


def parse_array_id(text: str) -> ArrayId:
    """Parse a job id as users and Slurm write it; ``ValueError`` for anything else."""
    match = _TASK_ID.match(text.strip())
    if not match:
        raise ValueError(f"not a Slurm job id: {text!r} (expected 123, 123_4 or 123_[5-9])")
    job, tasks = match.group(1), match.group(2)
    return ArrayId(job_id=job, spans=None if tasks is None else parse_task_spans(tasks))


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
    """A job's exit code as a shell would report it: ``exit:signal`` as sacct, scontrol and squeue since 23.02
    print it (``3:0`` → 3, ``0:9`` → 137), or, when ``wait_status``, the raw wait status squeue 22.05 printed
    (``768`` → 3, ``9`` → 137). None for an empty field (24.11 prints none when the code is unset)."""
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


def consistent_exit_code(state: str, code: int | None) -> int | None:
    """The exit code shown with a final ``state``, so that the two never contradict. slurmctld records
    COMPLETED only for a batch script that exited 0 without a signal (``_job_complete`` in job_mgr.c), so a
    COMPLETED record with another code carries a code that is not its task's: 0. FAILED with 0: unknown."""
    if state == "COMPLETED":
        return 0
    if state == "FAILED" and code == 0:
        return None
    return code


def _final_code(state: str, text: str, *, wait_status: bool = False) -> int | None:
    return consistent_exit_code(state, parse_exit_code(text, wait_status=wait_status)) if is_terminal(state) else None


# ``source`` of a state ``cancel`` recorded: scancel succeeded, and a task that never started leaves squeue
# at once and may have no sacct record of its own.
CANCEL_SOURCE = "scancel"


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
    source: str = "squeue"  # squeue, sacct, exit-file, last-seen, scancel, none

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
        # The array's original record (JobID equal to the array id) reports the largest exit code of the
        # array's tasks so far, not its own task's: only COMPLETED (exit 0) can be read off it.
        exit_code = _final_code(norm, code, wait_status=True)
        if raw_id == array_job and norm != "COMPLETED":
            exit_code = None
        for task in tasks if tasks is not None else (0,):
            out.append(TaskState(
                job_id=array_job, task=task, state=norm, reason=_clean(reason) if norm != "COMPLETED" else "", node=_clean(node),
                elapsed=parse_duration(used), time_limit=parse_duration(limit),
                exit_code=exit_code,
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
    """Tasks in ``sacct_command``'s output. A record of one task beats the array's pending-remainder record
    (``1_[2,4-5%1]``, which lags behind the tasks split off it), which beats a record without a task id;
    among equals a later record (e.g. after a requeue) wins. Only a record of one task gives an exit code,
    and a final record without a task id (the original record, its task not yet written) is left out."""
    wanted = set(job_ids) if job_ids is not None else None
    found: dict[tuple[str, int], TaskState] = {}
    rank: dict[tuple[str, int], int] = {}
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
        level = 0 if parsed.spans is None else 2 if parsed.task is not None else 1
        if level == 0 and is_terminal(norm):
            continue  # the array's original record before its task id is known: which task ended is not said
        for task in parsed.tasks if parsed.tasks is not None else (0,):
            key = (parsed.job_id, task)
            if rank.get(key, -1) > level:
                continue
            rank[key] = level
            found[key] = TaskState(
                job_id=parsed.job_id, task=task, state=norm, reason=_clean(reason) if norm != "COMPLETED" else "", node=_clean(node),
                elapsed=parse_duration(elapsed), time_limit=parse_duration(limit),
                exit_code=_final_code(norm, code) if level == 2 else None,  # a record of several tasks: not theirs
                start=_clean(start), end=_clean(end) if is_terminal(norm) else "", source="sacct")
    return list(found.values())


def accounting_missing(sacct_stderr: str) -> bool:
    """True when sacct says the cluster keeps no accounting (then only squeue and last-seen states exist)."""
    text = sacct_stderr.lower()
    return "accounting storage is disabled" in text or "slurmdbd" in text and "not" in text and "configured" in text


# ``source`` of a state read off the exit-code file the task's script wrote (``jobs.exit_record``).
EXIT_FILE_SOURCE = "exit-file"


def merge_tasks(*, arrays: Mapping[str, int], squeue: Iterable[TaskState], sacct: Iterable[TaskState],
                last_seen: Iterable[TaskState], exit_codes: Mapping[tuple[str, int], int] | None = None,
                accounting: bool | None = None, queried: Iterable[str] = ()) -> dict[tuple[str, int], TaskState]:
    """One state per task of ``arrays`` (array job id → task count): squeue first (it is live), then sacct
    for tasks that left squeue, then the exit code the task's script wrote, then the last state seen, else
    UNKNOWN. A final state's exit code comes from the task's exit-code file, else its own sacct record, else
    squeue. A cancel recorded by ``cancel`` beats a sacct state that is not final (a stale pending-remainder
    record). Without accounting, a task of a ``queried`` array that left squeue with no exit code written
    (killed before its script could write it) has ended, how is not known: UNKNOWN, last seen."""
    live = {(t.job_id, t.task): t for t in squeue}
    acct = {(t.job_id, t.task): t for t in sacct}
    seen = {(t.job_id, t.task): t for t in last_seen}
    codes = exit_codes or {}
    asked = set(queried)
    out: dict[tuple[str, int], TaskState] = {}
    for job_id, count in arrays.items():
        for task in range(count):
            key = (job_id, task)
            cancelled = key in seen and seen[key].source == CANCEL_SOURCE
            if key in live:
                state = live[key]
            elif key in acct and (is_terminal(acct[key].state) or not cancelled):
                state = acct[key]
            elif key in codes:  # the script ran to its end: that beats a cancel recorded after it
                code = codes[key]
                state = TaskState(job_id=job_id, task=task, state="COMPLETED" if code == 0 else "FAILED",
                                  reason="" if code == 0 else "NonZeroExitCode", exit_code=code,
                                  source=EXIT_FILE_SOURCE)
            elif key in seen and is_terminal(seen[key].state):
                state = seen[key]  # a final state stays what it was
            elif key in seen and accounting is False and job_id in asked:
                state = replace(seen[key], state="UNKNOWN", reason=f"ended unseen (last seen {seen[key].state})",
                                source="last-seen")
            elif key in seen:  # a live one is now only "last seen"
                state = replace(seen[key], source="last-seen")
            else:
                state = TaskState(job_id=job_id, task=task, state="UNKNOWN", source="none")
            if is_terminal(state.state) and state.source != EXIT_FILE_SOURCE:
                code = codes.get(key, acct[key].exit_code if key in acct and state is not acct[key] else None)
                if code is not None:
                    state = replace(state, exit_code=consistent_exit_code(state.state, code))
            out[key] = state
    return out
