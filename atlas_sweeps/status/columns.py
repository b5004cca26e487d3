"""The ONE spec of a task's columns in ``status``: the rich table, the plain aligned text and the JSON
document all read it. A new status column is one entry here (plus the parser that fills its field)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from atlas_sweeps.slurm.durations import format_duration
from atlas_sweeps.slurm.task import LAST_SEEN_SOURCE
from atlas_sweeps.status.model import TaskRow


@dataclass(frozen=True)
class Column:
    """One column: its ``header`` and ``cell`` text in the table (None: only in the JSON document), how it
    is laid out, and the keys it adds to each task of the JSON document."""

    header: str | None
    cell: Callable[[TaskRow], str] | None = None
    json: Mapping[str, Callable[[TaskRow], Any]] = field(default_factory=dict)
    justify: Literal["left", "right"] = "left"
    max_width: int | None = None  # longer cells are cut with an ellipsis
    colored: bool = False  # styled by the task's category (the state)
    shrinks: bool = False  # the one column cut to what the terminal leaves (the last one)


def _elapsed(row: TaskRow) -> str:
    limit = format_duration(row.state.time_limit)
    return format_duration(row.state.elapsed) + (f" / {limit}" if limit else "")


def _run(row: TaskRow) -> str:
    """The run's index, and which attempt the row shows when it was retried."""
    return str(row.run) if row.attempts == 1 else f"{row.run} (try {row.attempts})"


def _cause(row: TaskRow) -> str:
    return row.diagnosis.words if row.diagnosis else ""


def _last_line(row: TaskRow) -> str:
    """A task that did not complete shows its last error line, else the last line of its log."""
    return row.diagnosis.error if row.diagnosis and row.diagnosis.error else row.log_line


def _state(row: TaskRow) -> str:
    """The state, how often the task was requeued (preemption, time limit) and whether it is only last seen."""
    notes = [f"requeued {row.state.restarts}"] if row.state.restarts else []
    notes += ["last seen"] if row.state.source == LAST_SEEN_SOURCE else []
    return row.state.state + (f" ({', '.join(notes)})" if notes else "")


TASK_COLUMNS: tuple[Column, ...] = (
    Column("job", lambda r: r.state.slurm_id, json={
        "job_id": lambda r: r.state.slurm_id, "array_job_id": lambda r: r.state.job_id,
        "task": lambda r: r.state.task}),
    Column("run", _run, json={"run": lambda r: r.run, "attempts": lambda r: r.attempts}, justify="right"),
    Column("params", lambda r: r.label, json={"params": lambda r: r.params}, max_width=32),
    Column("state", _state, json={"state": lambda r: r.state.state, "category": lambda r: r.category,
                                  "requeues": lambda r: r.state.restarts}, colored=True),
    Column("reason", lambda r: r.state.reason, json={"reason": lambda r: r.state.reason}, max_width=18),
    Column("node", lambda r: r.state.node, json={"node": lambda r: r.state.node}, max_width=12),
    Column("elapsed/limit", _elapsed, json={"elapsed": lambda r: r.state.elapsed,
                                            "time_limit": lambda r: r.state.time_limit}),
    Column("exit", lambda r: "" if r.state.exit_code is None else str(r.state.exit_code),
           json={"exit_code": lambda r: r.state.exit_code}, justify="right"),
    Column("cause", _cause, json={"cause": lambda r: r.diagnosis.cause if r.diagnosis else None,
                                  "error": lambda r: r.diagnosis.error if r.diagnosis else None}),
    Column(None, json={"start": lambda r: r.state.start, "end": lambda r: r.state.end,
                       "source": lambda r: r.state.source}),
    Column("last log line", _last_line, json={"log_line": lambda r: r.log_line}, shrinks=True),
)
# The columns the table shows, in order.
TABLE_COLUMNS: tuple[Column, ...] = tuple(c for c in TASK_COLUMNS if c.header is not None)
_JSON_FIELDS = tuple((key, get) for c in TASK_COLUMNS for key, get in c.json.items())


def task_cells(row: TaskRow) -> list[str]:
    """The row's cells as text, in ``TABLE_COLUMNS`` order."""
    return [c.cell(row) if c.cell else "" for c in TABLE_COLUMNS]


def task_document(row: TaskRow) -> dict[str, Any]:
    """The row as ``status --json`` prints it."""
    return {key: get(row) for key, get in _JSON_FIELDS}
