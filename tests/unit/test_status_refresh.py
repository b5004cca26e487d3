"""status/'s loops and policies with a fake poller, consoles and clock: --wait's progress, end and timeout,
the intervals, tail's job resolution and how tail reports a job's end."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from atlas_sweeps.errors import HostKeyError, RemoteError, UsageError
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord, TaskSeen
from atlas_sweeps.status.job_target import JobTarget, resolve_job
from atlas_sweeps.status.model import StatusSnapshot, build_launch_status
from atlas_sweeps.status.refresh import Clock, Screens, once, refresh_interval, tail_interval, wait
from atlas_sweeps.status.tail import TailEvent
from atlas_sweeps.status.tail_output import TailPrinter, tail_result

LAUNCH = LaunchRecord(id="l1", created=1.0, config_path="c.yml", config_text="", cluster="c", backend="local",
                      nodes=1, remote_dir="/r", snapshot="", status="submitted", total_runs=2, total_hours=1.0)
SWEEPS = [SweepRecord(launch_id="l1", name="s", tags=(), runs=2, jobs=1, config={}, log_dir="/l")]
JOBS = [JobRecord(launch_id="l1", sweep_name="s", chunk=0, job_id="12", job_name="atlas-l1-s", array_spec="0-1",
                  task_offset=0, task_count=2, output="/l/%A_%a.out", error="/l/%A_%a.err", script="/s",
                  submitted=1.0)]


def _snapshot(*states: str, error: str | None = None, fatal: Exception | None = None) -> StatusSnapshot:
    merged = {("12", t): TaskState("12", t, s) for t, s in enumerate(states)}
    status = build_launch_status(LAUNCH, SWEEPS, JOBS, states=merged, log_lines={}, polled=1.0, accounting=True)
    return StatusSnapshot(launches=(status,), refreshed=1.0, error=error, stale=error is not None, fatal=fatal)


class _Poller:
    def __init__(self, *snapshots: StatusSnapshot) -> None:
        self.snapshots = list(snapshots)
        self.polls = 0

    def poll(self, launches: list[LaunchRecord]) -> StatusSnapshot:
        self.polls += 1
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    def clock(self) -> Clock:
        return Clock(now=lambda: self.t, monotonic=lambda: self.t, sleep=self.sleep)


def _screens() -> tuple[Screens, io.StringIO, io.StringIO, list[str]]:
    out, err, echoed = io.StringIO(), io.StringIO(), []
    return (Screens(out=Console(file=out, width=120, color_system=None),
                    err=Console(file=err, width=120, color_system=None), echo=echoed.append), out, err, echoed)


def test_wait_polls_until_finished_says_progress_once_per_change_and_backs_off() -> None:
    poller = _Poller(_snapshot("RUNNING", "PENDING"), _snapshot("RUNNING", "PENDING"),
                     _snapshot("RUNNING", "PENDING", error="c: refused"), _snapshot("COMPLETED", "FAILED"))
    clock = _Clock()
    screens, out, err, _ = _screens()
    code = wait(poller, [LAUNCH], every=5, timeout=None, screens=screens, as_json=False, clock=clock.clock())
    assert code == 1 and poller.polls == 4  # finished, not all completed
    assert clock.slept == [5, 5, 10]  # the failed poll doubles the wait
    lines = err.getvalue().splitlines()
    assert len(lines) == 3 and "(c: refused; retrying)" in lines[1] and "1 done" in lines[2]
    assert "12_1" in out.getvalue() and "FAILED" in out.getvalue()


def test_wait_gives_up_at_its_timeout_and_json_goes_to_echo() -> None:
    clock = _Clock()
    screens, _, err, echoed = _screens()
    code = wait(_Poller(_snapshot("RUNNING", "RUNNING")), [LAUNCH], every=5, timeout=12, screens=screens,
                as_json=True, clock=clock.clock())
    assert code == 1 and clock.slept == [5, 5] and "timed out after 12 s" in err.getvalue()
    assert len(echoed) == 1 and '"state": "RUNNING"' in echoed[0]


def test_all_completed_is_0_and_an_error_retrying_cannot_fix_is_raised() -> None:
    screens, *_ = _screens()
    assert wait(_Poller(_snapshot("COMPLETED", "COMPLETED")), [LAUNCH], every=5, timeout=None, screens=screens,
                as_json=False, clock=_Clock().clock()) == 0
    changed = HostKeyError("CHANGED")
    with pytest.raises(HostKeyError):
        once(_Poller(_snapshot("RUNNING", "RUNNING", error="c: CHANGED", fatal=changed)), [LAUNCH], screens=screens,
             as_json=False)
    assert once(_Poller(_snapshot("RUNNING", "RUNNING", error="c: down")), [LAUNCH], screens=screens,
                as_json=False) == 1


def test_intervals() -> None:
    assert refresh_interval(None, profile=lambda: 30.0) == 30.0 and refresh_interval(0.5, profile=lambda: 30) == 2.0
    assert tail_interval(15.0) == 5.0 and tail_interval(1.0) == 2.0


def test_tail_resolves_a_known_task_to_its_log_and_launch(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    db.add_launch(LAUNCH)
    db.add_sweep(SWEEPS[0])
    db.add_job(JOBS[0])
    assert resolve_job(db, "12_1", stream="err") == JobTarget(slurm_id="12_1", path="/l/12_1.err", launch=LAUNCH)
    assert resolve_job(db, "99_0", stream="out") == JobTarget(slurm_id="99_0")
    with pytest.raises(UsageError, match="array of 2 tasks"):
        resolve_job(db, "12", stream="out")
    with pytest.raises(UsageError, match="several tasks"):
        resolve_job(db, "12_[0-1]", stream="out")


def test_tail_prints_lines_as_they_came_and_reports_the_end() -> None:
    out, err_file = io.StringIO(), io.StringIO()
    err = Console(file=err_file, width=120, color_system=None)
    printer = TailPrinter(slurm_id="12_0", out=out, err=err)
    for event in (TailEvent(kind="line", text="50%", end="\r"), TailEvent(kind="state", state="PENDING",
                                                                          reason="Priority")):
        printer(event)
    assert out.getvalue() == "50%\r\n" and "job 12_0 is PENDING (Priority); waiting" in err_file.getvalue()
    done = TailEvent(kind="final", state="FAILED", exit_code=3)
    assert tail_result(done, job="12_0", slurm_id="12_0", cluster="c", seen=None, err=err) == 3
    cancelled = TaskSeen(launch_id="l1", job_id="12", task=0, state="CANCELLED")
    missing = TailEvent(kind="missing", text="12_0")
    assert tail_result(missing, job="12_0", slurm_id="12_0", cluster="c", seen=cancelled, err=err) == 1
    with pytest.raises(UsageError, match="no job 12_0 on cluster 'c'"):
        tail_result(missing, job="12_0", slurm_id="12_0", cluster="c", seen=None, err=err)
    with pytest.raises(RemoteError, match="lost the log stream"):
        tail_result(None, job="12_0", slurm_id="12_0", cluster="c", seen=None, err=err)
