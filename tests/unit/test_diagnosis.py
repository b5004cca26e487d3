"""Why tasks failed, through the poll: the poll script (run by bash against stand-in squeue/sacct and real log
files) reads the .err tail of tasks that ended badly, once; the cause is stored with the state; parameters
recorded at launch reach the rows; an older database migrates."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from atlas_sweeps.slurm.causes import Diagnosis
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.state.store import MIGRATIONS, JobRecord, LaunchRecord, StateDB, SweepRecord, TaskSeen
from atlas_sweeps.status.diagnosis import diagnose_tasks, to_diagnose
from atlas_sweeps.status.poll import ArrayQuery, poll_script
from atlas_sweeps.status.poller import Poller
from atlas_sweeps.status.stored import stored_status
from tests.unit.test_status import _FakeCluster

TRACEBACK = ('Traceback (most recent call last):\n  File "t.py", line 3, in <module>\n'
             '    raise ValueError("lr too large")\nValueError: lr too large\n')
STEPD = "slurmstepd: error: *** JOB 13 ON vm CANCELLED AT 2026-12-03T08:41:02 DUE TO TIME LIMIT ***\n"


def _launch(tmp_path: Path) -> tuple[StateDB, Path]:
    db = StateDB(tmp_path / "state.db")
    logs = tmp_path / "logs"
    logs.mkdir()
    db.add_launch(LaunchRecord(id="l1", created=time.time(), config_path="c.yml", config_text="", cluster="c",
                               backend="local", nodes=1, remote_dir="/r", snapshot="", status="submitted",
                               total_runs=3, total_hours=1.0))
    runs = ({"lr": 0.1, "seed": 1}, {"lr": 10.0, "seed": 1}, {"lr": 1.0, "seed": 1})
    db.add_sweep(SweepRecord(launch_id="l1", name="s", tags=("a",), runs=3, jobs=1, config={}, log_dir=str(logs),
                             sweep_id="l1/s", run_params=runs))
    db.add_job(JobRecord(launch_id="l1", sweep_name="s", chunk=0, job_id="12", job_name="atlas-l1-s",
                         array_spec="0-2", task_offset=0, task_count=3, output=f"{logs}/%A_%a.out",
                         error=f"{logs}/%A_%a.err", script="/s", submitted=time.time()))
    return db, logs


SQUEUE = ("12|0|13|COMPLETED|None|vm|0:09|10:00|2026-01-01T00:00:00|2026-01-01T00:00:09|0\n"
          "12|1|14|FAILED|NonZeroExitCode|vm|0:02|10:00|2026-01-01T00:00:00|2026-01-01T00:00:02|1\n"
          "12|2|15|TIMEOUT|TimeLimit|vm|1:00|1:00|2026-01-01T00:00:00|2026-01-01T00:01:00|0\n")
SACCT = ("12_0|13|COMPLETED|0:0|00:00:09|00:10:00|x|y|vm|None\n12_1|14|FAILED|1:0|00:00:02|00:10:00|x|y|vm|None\n"
         "12_2|15|TIMEOUT|0:15|00:01:00|00:01:00|x|y|vm|None\n")


def test_a_poll_reads_the_err_tails_of_failed_tasks_once_and_stores_their_causes(tmp_path: Path) -> None:
    db, logs = _launch(tmp_path)
    (logs / "12_0.err").write_text("Traceback (most recent call last):\nnot read: it completed\n")
    (logs / "12_0.exit").write_text("0\n")
    (logs / "12_1.err").write_text("atlas-sweeps: run 1: python t.py --lr=10.0\n" + TRACEBACK)
    (logs / "12_1.exit").write_text("1\n")
    (logs / "12_2.err").write_text("x" * 10000 + "\n" + STEPD)  # only its last 4 KiB travel
    (logs / "12_2.exit").write_text("0\n")  # what the script's trap writes as Slurm kills it: not trusted
    cluster = _FakeCluster(tmp_path)
    cluster.answer(squeue=SQUEUE, sacct=SACCT)
    poller = Poller(db=db, remote_factory=lambda _name: cluster)
    first = poller.poll([db.launch("l1")]).launches[0]  # type: ignore[list-item]
    rows = {t.state.task: t for t in first.tasks}
    assert rows[0].diagnosis is None and rows[0].label == "lr=0.1" and rows[0].params == {"lr": 0.1, "seed": 1}
    assert rows[1].diagnosis == Diagnosis("error", "ValueError: lr too large")
    assert rows[2].diagnosis == Diagnosis("timeout", STEPD.strip())
    stored = {s.task: (s.cause, s.error) for s in db.task_states("l1")}
    assert stored == {0: ("", ""), 1: ("error", "ValueError: lr too large"), 2: ("timeout", STEPD.strip())}
    # Finished and diagnosed: no poll asks again, and what the database shows is the same.
    (logs / "12_1.err").write_text("changed afterwards: never read\n")
    calls = cluster.scripts
    again = poller.poll([db.launch("l1")]).launches[0]  # type: ignore[list-item]
    assert cluster.scripts == calls
    assert [t.diagnosis for t in again.tasks] == [t.diagnosis for t in first.tasks]
    assert [t.diagnosis for t in stored_status(db, db.launch("l1")).tasks] == [t.diagnosis for t in first.tasks]  # type: ignore[arg-type]


def test_running_and_diagnosed_tasks_are_not_read_and_the_bytes_are_bounded(tmp_path: Path) -> None:
    db, logs = _launch(tmp_path)
    seen = {("12", 0): TaskSeen(launch_id="l1", job_id="12", task=0, state="COMPLETED"),
            ("12", 1): TaskSeen(launch_id="l1", job_id="12", task=1, state="FAILED", cause="error", error="E")}
    job = db.jobs("l1")[0]
    assert to_diagnose(job, seen) == (2,)
    (logs / "12_2.err").write_text("y" * 10000)
    cluster = _FakeCluster(tmp_path)
    cluster.answer(squeue="12|2|15|RUNNING|None|vm|0:05|10:00|2026-01-01T00:00:00|N/A|0\n", sacct="")
    script = poll_script([ArrayQuery(job_id="12", job_name="atlas-l1-s", task_count=3, output=job.output,
                                     submitted=time.time(), error=job.error, diagnose=(2,))])
    assert "ATLAS err:" not in cluster.run_script(script, timeout=30).stdout  # running: not read
    cluster.answer(squeue="12|2|15|FAILED|None|vm|0:05|10:00|2026-01-01T00:00:00|N/A|1\n", sacct="")
    out = cluster.run_script(script, timeout=30).stdout
    assert len(out) < 4096 * 4 / 3 + 200  # one 4 KiB tail, base64-encoded


def test_a_stored_cause_holds_while_the_state_does_and_a_cut_poll_stores_nothing_it_did_not_read() -> None:
    failed = TaskState("12", 0, "FAILED", exit_code=1, source="sacct")
    prev = {("12", 0): TaskSeen(launch_id="l", job_id="12", task=0, state="FAILED", cause="oom", error="CUDA")}
    kept = diagnose_tasks({("12", 0): failed}, seen=prev, err_tails={}, err_cut=False)
    assert kept.shown == {("12", 0): Diagnosis("oom", "CUDA")} and ("12", 0) in kept.final
    cut = diagnose_tasks({("12", 0): failed}, seen={}, err_tails={}, err_cut=True)
    assert cut.shown == {("12", 0): Diagnosis("error", "")} and not cut.final
    requeued = TaskState("12", 0, "PENDING")
    assert diagnose_tasks({("12", 0): requeued}, seen=prev, err_tails={}, err_cut=False).shown == {}


def test_a_version_2_database_migrates_to_causes_and_run_params(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateDB(path, migrations=MIGRATIONS[:2]).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO sweeps (launch_id, name, tags, runs, jobs, config, log_dir) "
                   "VALUES ('l', 's', '[]', 1, 1, '{}', '/l')")
    new = StateDB(path)
    assert new.version == len(MIGRATIONS) and new.sweeps("l")[0].run_params == ()
