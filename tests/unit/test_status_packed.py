"""``status`` of packed tasks: the runs' exit records and last log lines read by the one poll script (run with
bash on files as a packed task leaves them), each run's state from its record and its task's state, one row
per run in the table and ``--json``, kept in the state database, and ``tail --run``'s log path."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from atlas_sweeps.errors import UsageError
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord, TaskSeen
from atlas_sweeps.status.document import status_document
from atlas_sweeps.status.model import StatusSnapshot
from atlas_sweeps.status.packed import parse_run_exit_files, run_log_path, run_state
from atlas_sweeps.status.poll import ArrayQuery, parse_poll, poll_script
from atlas_sweeps.status.stored import stored_status


def test_run_exit_records_are_told_from_the_tasks_own_in_one_grep_output() -> None:
    grep = "7_0.exit:0\n7_0.r0.exit:0\n7_0.r1.exit:R\n7_1.r3.exit:5\n7_1.r4.exit:\n8_0.r0.exit:0\n7_x.r1.exit:0\n"
    assert parse_run_exit_files(grep, job_id="7") == {("7", 0, 0): "0", ("7", 0, 1): "R", ("7", 1, 3): "5"}


def _task(state: str, **kw: object) -> TaskState:
    return TaskState(job_id="7", task=0, state=state, node="vm", elapsed=30, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("task", "record", "want", "reason", "code"), [
    ("RUNNING", "0", "COMPLETED", "", 0),
    ("RUNNING", "5", "FAILED", "NonZeroExitCode", 5),
    ("RUNNING", "R", "RUNNING", "", None),
    ("RUNNING", None, "PENDING", "WaitingInTask", None),  # its turn has not come
    ("PENDING", None, "PENDING", "Priority", None),
    ("TIMEOUT", "R", "TIMEOUT", "", None),  # killed with its task
    ("CANCELLED", None, "CANCELLED", "", None),  # never started
    ("COMPLETED", "0", "COMPLETED", "", 0),
])
def test_a_runs_state_comes_from_its_record_and_its_tasks_state(task: str, record: str | None, want: str,
                                                                 reason: str, code: int | None) -> None:
    state = run_state(_task(task, reason="Priority" if task == "PENDING" else ""), record)
    assert (state.state, state.reason, state.exit_code) == (want, reason, code)
    assert state.slurm_id == "7_0"  # a run shows the task it runs in


def test_a_runs_elapsed_time_comes_from_its_record() -> None:
    assert run_state(_task("RUNNING"), "0 100 145").elapsed == 45  # not its task's 30
    assert run_state(_task("RUNNING"), "0").elapsed == 0  # skipped: it completed before
    assert run_state(_task("RUNNING"), "R 100", now=112.5).elapsed == 12
    assert run_state(_task("TIMEOUT"), "R 100", now=112.5).elapsed is None
    assert parse_run_exit_files("7_0.r1.exit:5 100  145\n7_0.r2.exit:R 100\n", job_id="7") == {
        ("7", 0, 1): "5 100 145", ("7", 0, 2): "R 100"}


def test_the_poll_reads_run_records_and_the_running_runs_last_lines(tmp_path: Path) -> None:
    squeue = tmp_path / "bin" / "squeue"  # an empty queue; no sacct: a cluster without accounting
    squeue.parent.mkdir()
    squeue.write_text("#!/bin/sh\n")
    squeue.chmod(0o755)
    logs = tmp_path / "logs dir"
    logs.mkdir()
    files = {"7_0.r0.exit": "0 10 20\nL finished\n", "7_0.r0.out": "finished\n", "7_0.r1.exit": "R 15\n",
             "7_0.r1.out": "epoch 1\n\nepoch 2 loss=0.3\n", "7_1.exit": "5\n", "7_1.r3.exit": "5\n"}
    for name, text in files.items():
        (logs / name).write_text(text)
    query = ArrayQuery(job_id="7", job_name="atlas-l-s", task_count=2, output=f"{logs}/%A_%a.out",
                       submitted=time.time(), packed=True)
    out = subprocess.run(["bash", "-s"], input=poll_script([query]), capture_output=True, text=True, check=True,
                         env={"PATH": f"{squeue.parent}:/usr/bin:/bin"}).stdout
    result = parse_poll(out, job_ids=["7"])
    assert result.run_exits == {("7", 0, 0): "0 10 20", ("7", 0, 1): "R 15", ("7", 1, 3): "5"}
    # A running run's log is read; an ended one's last line is in its record.
    assert result.run_logs == {("7", 0, 1): "epoch 2 loss=0.3", ("7", 0, 0): "finished"}
    assert result.exit_codes == {("7", 1): 5}  # the tasks' own records are read as before
    unpacked = poll_script([ArrayQuery(job_id="7", job_name="x", task_count=2, output=f"{logs}/%A_%a.out",
                                       submitted=time.time())])
    assert "runlast" not in unpacked


def _packed_db(tmp_path: Path) -> tuple[StateDB, LaunchRecord]:
    db = StateDB(tmp_path / "state.db")
    now = time.time()
    rec = LaunchRecord(id="p1", created=now, config_path="c.yml", config_text="", cluster="sandbox",
                       backend="local", nodes=1, remote_dir="/r", snapshot="/r/snap", status="submitted",
                       total_runs=5, total_hours=1.0, options={"runs_per_job": 3, "parallel_per_job": 1})
    db.add_launch(rec)
    db.add_sweep(SweepRecord(launch_id="p1", name="s", tags=(), runs=5, jobs=1, config={}, log_dir="/l",
                             sweep_id="p1/s", run_params=[{"run": i} for i in range(5)]))
    db.add_job(JobRecord(launch_id="p1", sweep_name="s", chunk=0, job_id="7", job_name="atlas-p1-s",
                         array_spec="0-1%1", task_offset=0, task_count=2, output="/l/%A_%a.out",
                         error="/l/%A_%a.err", script="/s", submitted=now))
    return db, rec


def test_a_packed_launch_shows_one_row_per_run_from_the_database(tmp_path: Path) -> None:
    db, rec = _packed_db(tmp_path)
    db.save_task_states("p1", [TaskSeen(launch_id="p1", job_id="7", task=0, state="COMPLETED", exit_code=0),
                               TaskSeen(launch_id="p1", job_id="7", task=1, state="RUNNING")], polled=time.time(),
                        accounting=True)
    db.save_run_records("p1", {("7", 0, 0): ("0", "done 0"), ("7", 0, 1): ("0", ""), ("7", 0, 2): ("0", ""),
                               ("7", 1, 3): ("R", "epoch 3")})
    db.save_run_records("p1", {("7", 1, 3): ("3", "")})  # it ended: its last line stays
    status = stored_status(db, rec)
    rows = status.sweeps[0].tasks
    assert [(r.run, r.state.slurm_id, r.state.state, r.log_line) for r in rows] == [
        (0, "7_0", "COMPLETED", "done 0"), (1, "7_0", "COMPLETED", ""), (2, "7_0", "COMPLETED", ""),
        (3, "7_1", "FAILED", "epoch 3"), (4, "7_1", "PENDING", "")]  # run 4 waits for its turn
    assert [r.params for r in rows] == [{"run": i} for i in range(5)]
    doc = status_document(StatusSnapshot(launches=(status,), refreshed=time.time()))
    tasks = doc["launches"][0]["sweeps"][0]["tasks"]
    assert [(t["run"], t["job_id"], t["exit_code"]) for t in tasks] == [
        (0, "7_0", 0), (1, "7_0", 0), (2, "7_0", 0), (3, "7_1", 3), (4, "7_1", None)]
    assert doc["launches"][0]["sweeps"][0]["counts"] == {"done": 3, "running": 0, "pending": 1, "failed": 1,
                                                         "unknown": 0, "total": 5}


def test_tail_run_finds_the_runs_own_log_and_refuses_a_run_of_another_task() -> None:
    assert run_log_path("/l/7_1.out", task_index=1, runs_per_job=3, runs=5, run=4, slurm_id="7_1") == "/l/7_1.r4.out"
    with pytest.raises(UsageError, match="task 7_1 runs runs 3..4, not run 2"):
        run_log_path("/l/7_1.out", task_index=1, runs_per_job=3, runs=5, run=2, slurm_id="7_1")
    with pytest.raises(UsageError, match="runs one run only"):
        run_log_path("/l/7_1.out", task_index=1, runs_per_job=1, runs=5, run=1, slurm_id="7_1")
