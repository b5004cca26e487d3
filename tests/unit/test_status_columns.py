"""The one column spec: the table's headers and cells, the plain text and the JSON all come from it."""

from __future__ import annotations

import io
import time
from dataclasses import replace

import pytest
from rich.console import Console

from atlas_sweeps.slurm.causes import ERROR, Diagnosis
from atlas_sweeps.slurm.task import LAST_SEEN_SOURCE, TaskState
from atlas_sweeps.state.store import JobRecord, LaunchRecord, SweepRecord
from atlas_sweeps.status import columns
from atlas_sweeps.status.columns import TABLE_COLUMNS, TASK_COLUMNS, Column, task_cells, task_document
from atlas_sweeps.status.document import status_document
from atlas_sweeps.status.model import StatusSnapshot, TaskRow, build_launch_status
from atlas_sweeps.status.view import render_status


def _row() -> TaskRow:
    return TaskRow(state=TaskState("12", 3, "FAILED", reason="NonZeroExitCode", node="n1", elapsed=65,
                                   time_limit=600, exit_code=2, source="sacct"), run=7, log_line="boom")


def test_only_the_last_table_column_shrinks_and_one_is_colored() -> None:
    assert [c.shrinks for c in TABLE_COLUMNS] == [False] * (len(TABLE_COLUMNS) - 1) + [True]
    assert [c.header for c in TABLE_COLUMNS if c.colored] == ["state"]


def test_cells_and_json_of_a_row() -> None:
    assert task_cells(_row()) == ["12_3", "7", "", "FAILED", "NonZeroExitCode", "n1", "1:05 / 10:00", "2", "",
                                  "boom"]
    assert list(task_document(_row())) == ["job_id", "array_job_id", "task", "run", "attempts", "params", "state", "category",
                                           "requeues", "reason", "node", "elapsed", "time_limit", "exit_code", "cause", "error",
                                           "start", "end", "source", "log_line"]
    assert task_document(_row())["exit_code"] == 2 and task_document(_row())["category"] == "failed"


def test_a_failed_row_shows_its_parameters_cause_and_error_line() -> None:
    row = replace(_row(), params={"bs": 64, "lr": 0.1, "seed": 1}, label="bs=64 lr=0.1",
                  diagnosis=Diagnosis(ERROR, "ValueError: lr too large"))
    cells = task_cells(row)
    assert cells[2] == "bs=64 lr=0.1" and cells[-2:] == ["error", "ValueError: lr too large"]
    doc = task_document(row)
    assert doc["params"] == {"bs": 64, "lr": 0.1, "seed": 1} and doc["cause"] == "error"
    assert doc["error"] == "ValueError: lr too large" and doc["log_line"] == "boom"
    assert task_document(_row())["cause"] is None
    assert task_cells(replace(row, attempts=3))[1] == "7 (try 3)" and task_document(row)["attempts"] == 1


def test_a_requeued_task_says_how_often_in_its_state_and_json() -> None:
    row = replace(_row(), state=replace(_row().state, state="RUNNING", restarts=2))
    assert task_cells(row)[3] == "RUNNING (requeued 2)" and task_document(row)["requeues"] == 2
    seen = replace(row, state=replace(row.state, source=LAST_SEEN_SOURCE))
    assert task_cells(seen)[3] == "RUNNING (requeued 2, last seen)"
    assert task_cells(_row())[3] == "FAILED" and task_document(_row())["requeues"] == 0


def _snapshot(tasks: int) -> StatusSnapshot:
    launch = LaunchRecord(id="l", created=time.time(), config_path="c.yml", config_text="", cluster="c",
                          backend="local", nodes=1, remote_dir="/r", snapshot="", status="submitted",
                          total_runs=tasks, total_hours=1.0)
    sweeps = [SweepRecord(launch_id="l", name="s", tags=(), runs=tasks, jobs=1, config={}, log_dir="/l")]
    jobs = [JobRecord(launch_id="l", sweep_name="s", chunk=0, job_id="12", job_name="atlas-l-s", array_spec="0",
                      task_offset=0, task_count=tasks, output="/l/%A_%a.out", error="/l/%A_%a.err", script="/s",
                      submitted=time.time())]
    states = {("12", t): TaskState("12", t, "RUNNING", node="n9") for t in range(tasks)}
    status = build_launch_status(launch, sweeps, jobs, states=states, log_lines={}, polled=None, accounting=True)
    return StatusSnapshot(launches=(status,), refreshed=time.time())


def test_a_new_column_is_one_entry_in_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    node = Column("partition", lambda r: "gpu", json={"partition": lambda r: "gpu"})
    spec = (*TASK_COLUMNS[:-1], node, TASK_COLUMNS[-1])
    monkeypatch.setattr(columns, "TASK_COLUMNS", spec)
    monkeypatch.setattr(columns, "TABLE_COLUMNS", tuple(c for c in spec if c.header))
    monkeypatch.setattr(columns, "_JSON_FIELDS", tuple((k, g) for c in spec for k, g in c.json.items()))
    from atlas_sweeps.status import plain, view

    monkeypatch.setattr(view, "TABLE_COLUMNS", columns.TABLE_COLUMNS)
    monkeypatch.setattr(plain, "TABLE_COLUMNS", columns.TABLE_COLUMNS)
    for tasks, plain_view in ((3, False), (3, True)):
        console = Console(file=io.StringIO(), width=120, color_system=None)
        console.print(render_status(_snapshot(tasks), plain=plain_view))
        text = console.file.getvalue()  # type: ignore[attr-defined]
        assert "partition" in text and "gpu" in text, text
    doc = status_document(_snapshot(1))
    assert doc["launches"][0]["sweeps"][0]["tasks"][0]["partition"] == "gpu"
