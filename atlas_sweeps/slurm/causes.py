"""Why a task did not complete (pure): its Slurm state, exit code and the tail of its ``.err`` log turned
into one cause (out of memory, time limit, node failure, preempted, cancelled, or the program's own error)
and the log's last error line, so ``status`` can say it in words instead of a bare FAILED."""

from __future__ import annotations

import re
from dataclasses import dataclass

from atlas_sweeps.slurm.states import DONE, PENDING, RUNNING, category

OOM, TIMEOUT, NODE_FAIL, PREEMPTED, CANCELLED, ERROR = "oom", "timeout", "node_fail", "preempted", "cancelled", "error"
CAUSES: tuple[str, ...] = (OOM, TIMEOUT, NODE_FAIL, PREEMPTED, CANCELLED, ERROR)
WORDS: dict[str, str] = {OOM: "out of memory", TIMEOUT: "time limit", NODE_FAIL: "node failure",
                         PREEMPTED: "preempted", CANCELLED: "cancelled", ERROR: "error"}
# Not a failure: a pending agent task ``status`` cancelled because its sweep had nothing left to run
# (``status/reap.py``); it counts as done, and ``report`` and ``retry`` leave it alone.
REAPED = "reaped"
WORDS[REAPED] = "reaped"
ERROR_LINE_CHARS = 300  # what one error line keeps: the state database and the table stay small

# Slurm states that say the cause by themselves.
_STATE_CAUSES: dict[str, str] = {"OUT_OF_MEMORY": OOM, "TIMEOUT": TIMEOUT, "DEADLINE": TIMEOUT,
                                 "NODE_FAIL": NODE_FAIL, "BOOT_FAIL": NODE_FAIL, "PREEMPTED": PREEMPTED,
                                 "CANCELLED": CANCELLED}
# slurmstepd's line in the .err log: "*** JOB 12 ON vm CANCELLED AT 2026-12-03T08:00:00 DUE TO TIME LIMIT ***"
# (array tasks say "JOB", job steps "STEP").
_STEPD = re.compile(r"\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+(?: DUE TO (?P<why>[A-Z ]+?))?(?: \*\*\*|$)")
_STEPD_CAUSES: dict[str, str] = {"TIME LIMIT": TIMEOUT, "NODE FAILURE": NODE_FAIL, "PREEMPTION": PREEMPTED,
                                 "JOB REQUEUE": PREEMPTED}
# Out-of-memory text of CUDA, PyTorch, Python and Slurm's cgroup plugin.
_OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED"
                  r"|^MemoryError\b|oom[-_]kill event|Out Of Memory", re.MULTILINE | re.IGNORECASE)
_TRACEBACK = "Traceback (most recent call last):"
# Lines the task script itself writes to the .err log (local backend: the run's argv): never an error line.
_OWN_LINE = re.compile(r"^atlas-sweeps: run \d+: ")
_ERRORISH = re.compile(r"error|exception|fatal|killed|abort|segmentation fault|\*\*\*", re.IGNORECASE)


@dataclass(frozen=True)
class Diagnosis:
    """Why a task did not complete: one of ``CAUSES`` and the log's last error line ("" when none)."""

    cause: str
    error: str = ""

    @property
    def words(self) -> str:
        return WORDS.get(self.cause, self.cause)


def diagnose(state: str, *, exit_code: int | None, err_tail: str = "") -> Diagnosis | None:
    """The cause of a task in (normalized) ``state`` whose ``.err`` log ends with ``err_tail``; None for a task
    that completed, or one that has not ended as far as its state and log tell (pending, running, unknown)."""
    if category(state) in (DONE, PENDING, RUNNING):
        return None
    line = last_error_line(err_tail)
    stepd = _STEPD.search(err_tail)
    cause = _STATE_CAUSES.get(state)
    if cause in (None, CANCELLED) and stepd is not None:  # a cancel "DUE TO TIME LIMIT" is a timeout
        cause = _STEPD_CAUSES.get((stepd.group("why") or "").strip(), CANCELLED)
    if cause in (None, CANCELLED) and _OOM.search(err_tail):
        cause = OOM  # the program died of its own OOM (or was cancelled after one)
    if cause is None:
        if state not in ("FAILED", "SPECIAL_EXIT", "REVOKED") and not (exit_code and line):
            return None  # not ended, or ended with nothing to say why
        cause = ERROR
    return Diagnosis(cause=cause, error=line)


def last_error_line(text: str) -> str:
    """The last error line of a log's tail: the exception line of its last Python traceback, else its last
    line that reads like an error, else its last line; cut to ``ERROR_LINE_CHARS``."""
    lines = [ln.rstrip() for ln in text.replace("\r", "\n").splitlines()]
    lines = [ln for ln in lines if ln.strip() and not _OWN_LINE.match(ln)]
    if not lines:
        return ""
    found = ""
    if _TRACEBACK in text:
        start = max(i for i, ln in enumerate(lines) if ln.startswith(_TRACEBACK))
        # The exception line is the first one after the frames (which are indented).
        found = next((ln for ln in lines[start + 1:] if not ln[:1].isspace()), "")
    if not found:
        found = next((ln for ln in reversed(lines) if _ERRORISH.search(ln)), lines[-1])
    found = found.strip()
    return found if len(found) <= ERROR_LINE_CHARS else found[:ERROR_LINE_CHARS - 1] + "…"
