"""``status`` of packed tasks (pure): the runs' own exit records (``launch/packing.py``) read by the same grep
as the tasks' ones, each run's state from its record and its task's Slurm state, and one row per run.

A run's record says ``R START`` while it runs and ``CODE START END`` once it ended (``0`` alone: skipped, it
had completed before). Its state, with its own elapsed time where the record tells it:

    code 0 → COMPLETED;  other code → FAILED (its exit code);
    R        → its task's state while the task is active (RUNNING), else the task's final one (killed with it);
    P        → interrupted by Slurm's USR1 (it checkpointed, the task requeues): like none
    none     → PENDING while the task is active (waiting for its turn, or its task still pending), else the
               task's final state (COMPLETED tasks only end after every run did)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from atlas_sweeps.launch.layout import EXIT_STREAM, task_file_lines
from atlas_sweeps.slurm.states import PENDING, RUNNING, category, is_terminal
from atlas_sweeps.slurm.task import EXIT_FILE_SOURCE, TaskState

RUNNING_MARK = "R"
PREEMPTED_MARK = "P"  # Slurm's USR1 interrupted it (launch/packing.py): it runs again after the requeue
RunKey = tuple[str, int, int]  # (array job id, task, run)


def _record_lines(text: str, *, job_id: str) -> list[tuple[RunKey, str]]:
    """``grep``'s ``<array>_<task>.r<run>.exit:<line>`` lines of array ``job_id`` as ``(run key, line)``,
    the tasks' own ``.exit`` lines left out."""
    out = []
    for rest, content in task_file_lines(text, job_id=job_id, stream=EXIT_STREAM):
        task, dot, run = rest.partition(".r")
        if dot and task.isdigit() and run.isdigit():
            out.append(((job_id, int(task), int(run)), content))
    return out


def parse_run_exit_files(text: str, *, job_id: str) -> dict[RunKey, str]:
    """The runs' exit records (``R START`` or ``CODE START END``) in the poll's grep of exit files."""
    out: dict[RunKey, str] = {}
    for key, content in _record_lines(text, job_id=job_id):
        record = " ".join(content.split())
        first = record.split(" ", 1)[0]
        if first.isdigit() or first in (RUNNING_MARK, PREEMPTED_MARK):
            out[key] = record
    return out


def parse_run_last_lines(text: str, *, job_id: str) -> dict[RunKey, str]:
    """The last log lines ended runs wrote into their exit records (``L <line>``)."""
    return {key: content[2:].strip() for key, content in _record_lines(text, job_id=job_id)
            if content.startswith("L ") and content[2:].strip()}


RUN_LOG_FACT = "runlog:"


def run_log_lines(arrays: list[tuple[str, str]], *, max_runs: int, line_bytes: int) -> list[str]:
    """Bash for the poll script: for each ``(array id, log dir)``, the last non-empty line of every run
    whose record says it runs, as ``runlog:<array>_<task>.r<run>`` facts (at most ``max_runs`` a poll)."""
    if not arrays:
        return []
    return [
        "nrun=0",
        "runlast() {  # LOG_DIR ARRAY_ID: the running runs' last log lines",
        '  local f s',
        '  for f in "$1/$2"_*.r*.exit; do',
        f'    [ -r "$f" ] && [ "$(head -c 1 -- "$f")" = {RUNNING_MARK} ] || continue',
        f'    [ "$nrun" -lt {max_runs} ] || return 0',
        '    nrun=$((nrun + 1)); s=${f%.exit}; s=${s##*/}',
        f"    emit \"{RUN_LOG_FACT}$s\" \"$(tail -c 4096 -- \"${{f%.exit}}.out\" 2>/dev/null | tr '\\r' '\\n' "
        f"| grep -v '^[[:space:]]*$' | tail -n 1 | head -c {line_bytes})\"",
        "  done",
        "}",
        *(f"runlast {shlex.quote(directory)} {job_id}" for job_id, directory in arrays),
    ]


def parse_run_log_fact(key: str, value: str) -> dict[RunKey, str]:
    """A ``runlog:<array>_<task>.r<run>`` fact as ``{(array, task, run): line}`` (empty when malformed)."""
    array, _, rest = key.removeprefix(RUN_LOG_FACT).partition("_")
    task, dot, run = rest.partition(".r")
    if not (array.isdigit() and dot and task.isdigit() and run.isdigit()):
        return {}
    return {(array, int(task), int(run)): value}


def run_state(task: TaskState, record: str | None, *, now: float | None = None) -> TaskState:
    """One run's state from its exit record and its task's state (see the module's table); ``now`` gives a
    running run its elapsed time."""
    words = (record or "").split()
    times = [int(w) for w in words[1:3] if w.isdigit()]
    if words and words[0].isdigit():
        code = int(words[0])
        return replace(task, state="COMPLETED" if code == 0 else "FAILED",
                       reason="" if code == 0 else "NonZeroExitCode", exit_code=code, source=EXIT_FILE_SOURCE,
                       elapsed=times[1] - times[0] if len(times) == 2 else 0)
    active = category(task.state) in (PENDING, RUNNING) and not is_terminal(task.state)
    if not active:
        return replace(task, elapsed=None) if words else task  # killed with its task: how long it ran is unknown
    if words and words[0] == RUNNING_MARK:
        return replace(task, elapsed=int(now) - times[0] if times and now else None)
    waiting = category(task.state) == RUNNING  # its task runs others first
    return replace(task, state="PENDING", reason="WaitingInTask" if waiting else task.reason, exit_code=None,
                   elapsed=None)


def run_log_path(task_log: str, *, task_index: int, runs_per_job: int, runs: int, run: int, slurm_id: str) -> str:
    """The log of run ``run`` of a packed task (``tail --run``), or a ``UsageError`` when the task does not
    run it; ``task_index`` counts from the sweep's first task."""
    from atlas_sweeps.errors import UsageError
    from atlas_sweeps.launch.packing import Packing, run_log_file

    if runs_per_job <= 1:
        raise UsageError(f"task {slurm_id} runs one run only: --run is for packed tasks (launch --runs-per-job)",
                         hint=f"atlas-sweeps tail {slurm_id}")
    mine = Packing(runs_per_job=runs_per_job).runs_of(task_index, runs)
    if run not in mine:
        raise UsageError(f"task {slurm_id} runs runs {mine.start}..{mine.stop - 1}, not run {run}",
                         hint="'atlas-sweeps status' lists each run with its task")
    return run_log_file(task_log, run=run)


def run_record_of(run_log: str) -> str:
    """The exit record beside a run's log: ``X/123_4.r7.out`` (or ``.err``) → ``X/123_4.r7.exit``."""
    return run_log.rpartition(".")[0] + ".exit"


def run_end_lines(record: str | None) -> list[str]:
    """Bash for ``tail --run``'s script: ``run_ended`` ends the tail (after the log's last lines) with the
    run's own state and exit code once its exit record holds them."""
    if record is None:
        return []
    return [
        f"record={shlex.quote(record)}",
        "run_ended() {",
        "  local rc",
        "  rc=$(awk 'NR == 1 && $1 ~ /^[0-9]+$/ {print $1}' \"$record\" 2>/dev/null)",
        '  [ -n "$rc" ] || return 0',
        "  stop_tail",
        '  if [ -z "$tailpid" ] && [ -r "$file" ]; then tail -n "$n" -- "$file" | prefix 0; fi',
        '  if [ "$rc" = 0 ]; then emit final "COMPLETED||0:0"; else emit final "FAILED|NonZeroExitCode|$rc:0"; fi',
        "  exit 0",
        "}",
    ]


def packed_runs(launch_options: Mapping[str, Any] | None) -> int:
    """Runs per array task of a launch (1: not packed), as ``launch`` recorded its options."""
    value = (launch_options or {}).get("runs_per_job")
    return value if isinstance(value, int) and value > 1 else 1


__all__ = ["RUNNING_MARK", "RUN_LOG_FACT", "RunKey", "packed_runs", "parse_run_exit_files", "parse_run_last_lines",
           "parse_run_log_fact", "run_end_lines", "run_log_lines", "run_log_path", "run_record_of", "run_state"]
