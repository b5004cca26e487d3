"""The status model on literal poll output: which arrays need sacct, facts → tasks, the stored last-seen
states, the default selection, backoff, the table and JSON; tail's events and cancel's targets."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console

from atlas_sweeps.errors import RemoteError, UsageError
from atlas_sweeps.remote.protocol import EMIT_FUNCTION
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord, TaskSeen
from atlas_sweeps.status.document import status_document
from atlas_sweeps.status.poll import _NEED_AWK, ArrayQuery, parse_exit_files, parse_poll, poll_script
from atlas_sweeps.status.refresh import backoff_delay
from atlas_sweeps.status.stored import default_launches, stored_status
from atlas_sweeps.status.tail import exit_status, parse_tail_line, tail_script
from atlas_sweeps.status.view import render_status


def _emit(pairs: list[tuple[str, str]]) -> str:
    script = EMIT_FUNCTION + "\n" + "\n".join(f"emit {k!r} {v!r}" for k, v in pairs)
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout


def _need(squeue: str, spec: str) -> set[str]:
    out = subprocess.run(["awk", "-F|", "-v", f"spec={spec}", "-v", "active=PENDING RUNNING COMPLETING", _NEED_AWK],
                         input=squeue, capture_output=True, text=True, check=True).stdout
    return set(filter(None, out.split(",")))


def test_sacct_is_asked_only_about_arrays_with_tasks_gone_from_squeue() -> None:
    squeue = ("2|0|4|RUNNING|None|vm\n2|1|5|PENDING|None|\n"  # all of array 2 active
              "3|0|6|COMPLETED|None|vm\n3|1|7|RUNNING|None|vm\n"  # one of 3 finished
              "4|[1-5%2]|4|PENDING|JobArrayTaskLimit|\n4|0|9|RUNNING|None|vm\n")  # remainder counts 5
    assert _need(squeue, "2:2 3:2 4:6 5:1") == {"3", "5"}  # 5 is not in squeue at all


def test_poll_output_becomes_tasks_logs_and_accounting() -> None:
    out = "motd noise\n" + _emit([
        ("squeue", "7|0|8|RUNNING|None|vm|0:10|10:00|2026-01-01T00:00:00|N/A|0|0\n"),
        ("accounting", "yes"),
        ("sacct", "7_1|9|COMPLETED|0:0|00:00:04|00:10:00|2026-01-01T00:00:00|2026-01-01T00:00:04|vm|None\n"),
        ("log:7_0", "step 3/10 loss=0.25"),
        ("done", "ok"),
    ])
    result = parse_poll(out, job_ids=["7"])
    assert [(t.task, t.state) for t in result.squeue] == [(0, "RUNNING")]
    assert [(t.task, t.state, t.exit_code) for t in result.sacct] == [(1, "COMPLETED", 0)]
    assert result.accounting is True and result.log_lines == {("7", 0): "step 3/10 loss=0.25"}


def test_a_cluster_without_accounting_is_recognised() -> None:
    out = _emit([("squeue", ""), ("sacct_error", "sacct: error: Slurm accounting storage is disabled"),
                 ("done", "ok")])
    assert parse_poll(out, job_ids=["7"]).accounting is False


def test_an_unreachable_controller_or_cut_output_is_an_error_to_retry() -> None:
    out = _emit([("squeue_error", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)")])
    with pytest.raises(RemoteError, match="Unable to contact slurm controller"):
        parse_poll(out, job_ids=["7"])
    with pytest.raises(RemoteError, match="stopped before its end"):
        parse_poll(_emit([("squeue", "")]), job_ids=["7"])


def test_poll_script_quotes_names_and_log_patterns() -> None:
    script = poll_script([ArrayQuery(job_id="12", job_name="atlas-a-b'c", task_count=3,
                                     output="/logs/it's here/%A_%a.out", submitted=1000.0)])
    assert "pat[12]='/logs/it'\"'\"'s here/%A_%a.out'" in script
    assert "--name='atlas-a-b'\"'\"'c'" in script
    assert "date -d @700 " in script and script.count("squeue --array") == 1 and script.count("sacct -X") == 1
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(n, interval=2) for n in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(3, interval=120) == 120


def _db(tmp_path: Path) -> StateDB:
    db = StateDB(tmp_path / "state.db")
    now = time.time()
    for i, launch_id in enumerate(("old", "mid", "new")):
        db.add_launch(LaunchRecord(id=launch_id, created=now - 1000 + i, config_path="c.yml", config_text="",
                                   cluster="sandbox", backend="local", nodes=1, remote_dir="/r", snapshot="",
                                   status="submitted", total_runs=2, total_hours=1.0))
        db.add_sweep(SweepRecord(launch_id=launch_id, name="s", tags=("a",), runs=2, jobs=1, config={},
                                 log_dir="/l", sweep_id=f"{launch_id}/s"))
        db.add_job(JobRecord(launch_id=launch_id, sweep_name="s", chunk=0, job_id=str(10 + i), job_name="atlas-x-s",
                             array_spec="0-1%1", task_offset=0, task_count=2, output="/l/%A_%a.out",
                             error="/l/%A_%a.err", script="/s", submitted=now))
    return db


def test_default_selection_is_unfinished_launches_plus_the_newest(tmp_path: Path) -> None:
    db = _db(tmp_path)
    done = [TaskSeen(launch_id="old", job_id="10", task=t, state="COMPLETED", exit_code=0) for t in range(2)]
    db.save_task_states("old", done, polled=time.time(), accounting=True)
    db.save_task_states("mid", [TaskSeen(launch_id="mid", job_id="11", task=0, state="RUNNING"),
                                 TaskSeen(launch_id="mid", job_id="11", task=1, state="PENDING")],
                     polled=time.time(), accounting=True)
    assert [r.id for r in default_launches(db, now=time.time())] == ["new", "mid"]
    old = stored_status(db, db.launch("old"))
    assert old.finished and old.counts["done"] == 2 and old.accounting is True


def test_table_and_json_show_the_same_tasks(tmp_path: Path) -> None:
    db = _db(tmp_path)
    db.save_task_states("new", [
        TaskSeen(launch_id="new", job_id="12", task=0, state="FAILED", exit_code=3, reason="NonZeroExitCode",
                 log_line="Traceback: boom"),
        TaskSeen(launch_id="new", job_id="12", task=1, state="RUNNING", node="vm", elapsed=5, time_limit=600)],
        polled=time.time(), accounting=True)
    from atlas_sweeps.status.model import StatusSnapshot

    snap = StatusSnapshot(launches=(stored_status(db, db.launch("new")),), refreshed=time.time())
    console = Console(width=140, record=True, color_system=None)
    console.print(render_status(snap))
    text = console.export_text()
    assert "12_0" in text and "FAILED" in text and "Traceback: boom" in text and "0:05 / 10:00" in text
    assert "1 running" in text and "1 failed" in text
    doc = status_document(snap)
    tasks = doc["launches"][0]["sweeps"][0]["tasks"]
    assert [(t["job_id"], t["state"], t["exit_code"]) for t in tasks] == [("12_0", "FAILED", 3), ("12_1", "RUNNING", None)]


def test_tail_events() -> None:
    assert parse_tail_line("L step 1").text == "step 1"
    assert parse_tail_line("ATLAS fake line from a program") is None
    final = parse_tail_line(_emit([("final", "FAILED|NonZeroExitCode|3:0")]).strip())
    assert (final.kind, final.state, final.exit_code, exit_status(final)) == ("final", "FAILED", 3, 3)
    done = parse_tail_line(_emit([("final", "COMPLETED||0:0")]).strip())
    assert exit_status(done) == 0
    cancelled = parse_tail_line(_emit([("final", "CANCELLED by 0||0:0")]).strip())
    assert cancelled.state == "CANCELLED" and exit_status(cancelled) == 1
    subprocess.run(["bash", "-n"], input=tail_script(slurm_id="12_0", path="/a b/12_0.out", lines=5, interval=2),
                   text=True, check=True)


def test_cancel_resolves_launches_sweeps_and_jobs(tmp_path: Path) -> None:
    from atlas_sweeps.launch.cancel import plan_cancel

    db = _db(tmp_path)
    assert plan_cancel(db, "new").slurm_ids == ("12",) and plan_cancel(db, "new").jobs == 2
    assert plan_cancel(db, "12_1").slurm_ids == ("12_1",) and plan_cancel(db, "12_1").jobs == 1
    assert plan_cancel(db, "mid/s").slurm_ids == ("11",)
    with pytest.raises(UsageError, match="in 3 launches"):
        plan_cancel(db, "s")
    with pytest.raises(UsageError, match="not part of any recorded launch"):
        plan_cancel(db, "999")


def test_a_task_that_finished_since_the_last_poll_gets_its_final_log_line(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in {"squeue": "exit 0", "sacct": 'echo "7_0|8|COMPLETED|0:0|00:00:04|00:10:00|x|y|vm|None"'}.items():
        (bindir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bindir / name).chmod(0o755)
    (tmp_path / "7_0.out").write_text("step 1\nstep 2\ndone: valid_loss=0.75\n\n")
    (tmp_path / "7_1.out").write_text("never re-read: it was not running\n")
    script = poll_script([ArrayQuery(job_id="7", job_name="atlas-l-s", task_count=2,
                                     output=f"{tmp_path}/%A_%a.out", submitted=time.time(), recheck=(0,))])
    out = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, check=True,
                         env={"PATH": f"{bindir}:/usr/bin:/bin"}).stdout
    result = parse_poll(out, job_ids=["7"])
    assert result.log_lines == {("7", 0): "done: valid_loss=0.75"}


# -- a cancelled pending task ends (issue 10) -------------------------------------------------------------------
class _FakeCluster:
    """Runs the poll script with bash against stand-in ``squeue``/``sacct`` that print recorded output."""

    def __init__(self, tmp_path: Path) -> None:
        self.bindir = tmp_path / "bin"
        self.bindir.mkdir()
        self.scripts = 0

    def answer(self, *, squeue: str, sacct: str) -> None:
        for name, text in {"squeue": squeue, "sacct": sacct}.items():
            (self.bindir / name).write_text(f"#!/bin/bash\ncat <<'EOF'\n{text}EOF\n")
            (self.bindir / name).chmod(0o755)

    def describe(self) -> str:
        return "stand-in squeue/sacct on this machine"

    def run_script(self, script: str, *, timeout: float):  # type: ignore[no-untyped-def]
        self.scripts += 1
        return subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, check=True,
                              timeout=timeout, env={"PATH": f"{self.bindir}:/usr/bin:/bin"})

    def close(self) -> None:
        pass


def test_a_cancelled_pending_task_ends_cancelled_and_the_launch_finishes(tmp_path: Path) -> None:
    from atlas_sweeps.launch.cancel import cancelled_states, plan_cancel
    from atlas_sweeps.status.poller import Poller

    db = _db(tmp_path)
    db.save_task_states("new", [TaskSeen(launch_id="new", job_id="12", task=0, state="RUNNING", node="vm"),
                                TaskSeen(launch_id="new", job_id="12", task=1, state="PENDING",
                                         reason="JobArrayTaskLimit")], polled=time.time() - 5, accounting=True)
    plan = plan_cancel(db, "12_1")
    assert plan.tasks == (("12", 1),) and plan.jobs == 1
    db.record_task_states(cancelled_states(db.task_states("new"), plan, now=time.time()))
    cluster = _FakeCluster(tmp_path)
    poller = Poller(db=db, remote_factory=lambda _name: cluster)
    # Right after scancel: task 1 left squeue; sacct's remainder record still names it PENDING.
    cluster.answer(squeue="12|0|13|RUNNING|None|vm|0:05|10:00|2026-01-01T00:00:00|N/A|0|0\n",
                   sacct="12_[1%1]|12|PENDING|0:0|00:00:00|00:10:00|Unknown|Unknown|None assigned|None\n")
    first = poller.poll([db.launch("new")]).launches[0]
    assert [(t.state.state, t.state.source) for t in first.tasks] == [("RUNNING", "squeue"), ("CANCELLED", "scancel")]
    assert not first.finished
    # Task 0 ends; the array's pending record is gone from both: the launch is finished (and failed).
    cluster.answer(squeue="12|0|13|COMPLETED|None|vm|0:09|10:00|2026-01-01T00:00:00|2026-01-01T00:00:09|0|0\n",
                   sacct="12_0|13|COMPLETED|0:0|00:00:09|00:10:00|x|y|vm|None\n")
    second = poller.poll([db.launch("new")]).launches[0]
    assert [t.state.state for t in second.tasks] == ["COMPLETED", "CANCELLED"]
    assert second.finished and second.counts["failed"] == 1
    calls = cluster.scripts
    poller.poll([db.launch("new")])
    assert cluster.scripts == calls  # a finished array is not asked about again
    assert stored_status(db, db.launch("new")).finished


def test_a_recorded_cancel_is_checked_by_one_poll(tmp_path: Path) -> None:
    """A task that finished just before scancel reached it (all of the launch cancelled) shows how it ended."""
    from atlas_sweeps.launch.cancel import cancelled_states, plan_cancel
    from atlas_sweeps.status.poller import Poller

    db = _db(tmp_path)
    db.save_task_states("new", [TaskSeen(launch_id="new", job_id="12", task=t, state="PENDING") for t in range(2)],
                        polled=time.time() - 5, accounting=True)
    db.record_task_states(cancelled_states(db.task_states("new"), plan_cancel(db, "new"), now=time.time()))
    assert stored_status(db, db.launch("new")).counts["failed"] == 2
    cluster = _FakeCluster(tmp_path)
    cluster.answer(squeue="", sacct="12_0|13|COMPLETED|0:0|00:00:09|00:10:00|x|y|vm|None\n"
                                    "12_1|12|CANCELLED by 0|0:0|00:00:00|00:10:00|None|y|None assigned|None\n")
    polled = Poller(db=db, remote_factory=lambda _name: cluster).poll([db.launch("new")])
    assert cluster.scripts == 1
    assert [(t.state.state, t.state.source) for t in polled.launches[0].tasks] == [("COMPLETED", "sacct"),
                                                                                  ("CANCELLED", "sacct")]


def test_cancel_records_only_tasks_not_known_to_be_final(tmp_path: Path) -> None:
    from atlas_sweeps.launch.cancel import cancelled_states, plan_cancel

    db = _db(tmp_path)
    db.save_task_states("new", [TaskSeen(launch_id="new", job_id="12", task=0, state="COMPLETED", exit_code=0),
                                TaskSeen(launch_id="new", job_id="12", task=1, state="RUNNING", node="vm",
                                         start="2026-01-01T00:00:00", log_line="step 3")],
                        polled=time.time(), accounting=True)
    (rec,) = cancelled_states(db.task_states("new"), plan_cancel(db, "new"), now=time.time())
    assert (rec.task, rec.state, rec.source, rec.node, rec.log_line) == (1, "CANCELLED", "scancel", "vm", "step 3")
    never_polled = cancelled_states([], plan_cancel(db, "mid"), now=time.time())
    assert [(r.job_id, r.task, r.state) for r in never_polled] == [("11", 0, "CANCELLED"), ("11", 1, "CANCELLED")]


def test_tail_explains_a_task_cancelled_before_it_started() -> None:
    from atlas_sweeps.status.tail import cancelled_note

    assert "cancelled before it started" in cancelled_note("12_1", state="CANCELLED", start="")
    assert "cancelled" in cancelled_note("12_1", state="CANCELLED", start="2026-01-01T00:00:00")
    assert cancelled_note("12_1", state="PENDING", start="") is None


def test_cancel_of_an_absurd_task_range_is_a_one_line_usage_error(tmp_path: Path) -> None:
    from atlas_sweeps.launch.cancel import plan_cancel

    db = _db(tmp_path)
    start = time.perf_counter()
    with pytest.raises(UsageError, match=r"task index 9999999999 .* beyond the largest Slurm allows") as exc:
        plan_cancel(db, "12_[0-9999999999]")
    assert "\n" not in exc.value.message
    with pytest.raises(UsageError, match="has tasks 0..1"):
        plan_cancel(db, "12_[0-4000000]")  # a valid Slurm range, checked against the job without listing it
    assert time.perf_counter() - start < 0.5
    assert plan_cancel(db, "12_[0-1]").slurm_ids == ("12_0", "12_1")


def test_tail_of_a_task_slurmctld_no_longer_lists_is_missing_not_unknown(tmp_path: Path) -> None:
    """scontrol says ``Job 12_3 not found`` on stdout (22.05) for a task that left slurmctld."""
    for name, body in {"scontrol": 'echo "Job 12_3 not found"; exit 1', "sacct": "exit 0"}.items():
        (tmp_path / name).write_text(f"#!/bin/bash\n{body}\n")
        (tmp_path / name).chmod(0o755)
    out = subprocess.run(["bash", "-s"], input=tail_script(slurm_id="12_3", path=None, lines=5, interval=1),
                         capture_output=True, text=True, timeout=30, env={"PATH": f"{tmp_path}:/usr/bin:/bin"}).stdout
    events = [e for e in map(parse_tail_line, out.splitlines()) if e is not None]
    assert [e.kind for e in events] == ["missing"]


def test_the_poll_reads_the_exit_codes_the_tasks_wrote(tmp_path: Path) -> None:
    """Issue 15: without accounting, the exit-code files are what tells how a task that left squeue ended."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in {"squeue": "exit 0", "sacct": "echo 'accounting storage is disabled' >&2; exit 1"}.items():
        (bindir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bindir / name).chmod(0o755)
    logs = tmp_path / "logs dir"
    logs.mkdir()
    (logs / "7_0.exit").write_text("0\n")
    (logs / "7_1.exit").write_text("3\n")
    (logs / "8_0.exit").write_text("9\n")  # another array's
    script = poll_script([ArrayQuery(job_id="7", job_name="atlas-l-s", task_count=3,
                                     output=f"{logs}/%A_%a.out", submitted=time.time())])
    out = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, check=True,
                         env={"PATH": f"{bindir}:/usr/bin:/bin"}).stdout
    result = parse_poll(out, job_ids=["7"])
    assert result.exit_codes == {("7", 0): 0, ("7", 1): 3} and result.accounting is False
    assert parse_exit_files("7_2.exit:\n7_x.exit:1\n../7_3.exit:4\n8_1.exit:1\n", job_id="7") == {("7", 3): 4}


def test_tasks_that_ran_and_ended_between_two_polls_get_their_last_log_line(tmp_path: Path) -> None:
    """A first poll after the runs ended (a laptop opened the next morning) still shows each run's last line."""
    from atlas_sweeps.status.poller import _queries

    job = JobRecord(launch_id="l", sweep_name="s", chunk=0, job_id="7", job_name="atlas-l-s", array_spec="0-2",
                    task_offset=0, task_count=3, output=f"{tmp_path}/%A_%a.out", error="", script="", submitted=1.0)
    seen = {("7", 0): TaskSeen(launch_id="l", job_id="7", task=0, state="COMPLETED"),
            ("7", 2): TaskSeen(launch_id="l", job_id="7", task=2, state="RUNNING")}
    [query] = _queries([job], seen, polled=None)
    assert query.recheck == (2, 1)  # last seen running first, then the one never seen: not the finished one
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "squeue").write_text("#!/bin/bash\nexit 0\n")
    (bindir / "squeue").chmod(0o755)
    (tmp_path / "7_1.out").write_text("epoch 20/20 loss=0.05\n")
    out = subprocess.run(["bash", "-s"], input=poll_script([query]), capture_output=True, text=True, check=True,
                         env={"PATH": f"{bindir}:/usr/bin:/bin"}).stdout
    assert parse_poll(out, job_ids=["7"]).log_lines == {("7", 1): "epoch 20/20 loss=0.05"}
