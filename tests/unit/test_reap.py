"""Reaping in the refresh: the poll script, run with bash against recorded ``squeue``/``sacct`` output and a
``scancel`` that records its arguments, cancels the pending tasks of sweeps whose backend says they have
nothing left to run, in one scancel per refresh, and the poller records them as reaped (done, not failed)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from atlas_sweeps.backends.base import SweepProgress
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord
from atlas_sweeps.status.model import TaskRow
from atlas_sweeps.status.poller import Poller
from atlas_sweeps.status.reap import parse_reap, reap_targets
from atlas_sweeps.status.report import build_report
from tests.unit.test_status import _FakeCluster

_SQUEUE = ("21|0|22|RUNNING|None|vm|0:05|10:00|2026-01-01T00:00:00|N/A|0|0\n"
           "21|1|21|PENDING|JobArrayTaskLimit||0:00|10:00|N/A|N/A|0|0\n"
           "21|2|21|PENDING|JobArrayTaskLimit||0:00|10:00|N/A|N/A|0|0\n"
           "31|0|31|PENDING|Priority||0:00|10:00|N/A|N/A|0|0\n")


class _Cluster(_FakeCluster):
    """bash with stand-in squeue/sacct printing recorded output and a scancel that logs its argv."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.scancel_log = tmp_path / "scancel.log"
        self.answer(squeue=_SQUEUE)
        self.scancel(rc=0)

    def answer(self, *, squeue: str, sacct: str = "") -> None:
        super().answer(squeue=squeue, sacct=sacct)

    def scancel(self, *, rc: int) -> None:
        (self.bindir / "scancel").write_text(f'#!/bin/bash\necho "$*" >> {self.scancel_log}\n'
                                             f'[ {rc} = 0 ] || echo "scancel: error: Access denied"\nexit {rc}\n')
        (self.bindir / "scancel").chmod(0o755)

    @property
    def scancels(self) -> list[str]:
        return self.scancel_log.read_text().splitlines() if self.scancel_log.exists() else []


class _Backend:
    name = "wandb"

    def __init__(self, idle: dict[str, str]) -> None:
        self.idle = idle

    def progress(self, sweeps: Sequence[SweepRecord]) -> dict[str, SweepProgress]:
        return {s.sweep_id: SweepProgress(runs_by_state={"running": 1}, nothing_left=self.idle.get(s.name, ""))
                for s in sweeps if s.sweep_id}


def _db(tmp_path: Path) -> StateDB:
    db = StateDB(tmp_path / "state.db")
    now = time.time()
    db.add_launch(LaunchRecord(id="L", created=now, config_path="c.yml", config_text="", cluster="c",
                               backend="wandb", nodes=3, remote_dir="/r", snapshot="/s", status="submitted",
                               total_runs=4, total_hours=1.0))
    for name, job_id, tasks in (("idle", "21", 3), ("busy", "31", 1)):
        db.add_sweep(SweepRecord(launch_id="L", name=name, tags=(), runs=tasks, jobs=tasks, config={},
                                 log_dir="/l", sweep_id=f"e/p/{name}"))
        db.add_job(JobRecord(launch_id="L", sweep_name=name, chunk=0, job_id=job_id, job_name=f"atlas-L-{name}",
                             array_spec=f"0-{tasks - 1}", task_offset=0, task_count=tasks, output="/l/%A_%a.out",
                             error="/l/%A_%a.err", script="/s", submitted=now))
    return db


def _poller(db: StateDB, cluster: _Cluster, *, reap: bool) -> Poller:
    backend = _Backend({"idle": "sweep finished"})
    return Poller(db=db, remote_factory=lambda _name: cluster, backend_for=lambda _rec: backend,  # type: ignore[arg-type,return-value]
                  reap_for=lambda _rec: reap)


def _rows(db: StateDB, poller: Poller) -> dict[str, TaskRow]:
    launch = poller.poll([db.launch("L")]).launches[0]  # type: ignore[list-item]
    return {t.state.slurm_id: t for t in launch.tasks}


def test_one_refresh_cancels_only_the_pending_tasks_of_the_idle_sweep(tmp_path: Path) -> None:
    db, cluster = _db(tmp_path), _Cluster(tmp_path)
    poller = _poller(db, cluster, reap=True)
    snapshot = poller.poll([db.launch("L")])  # type: ignore[list-item]
    assert cluster.scripts == 1 and cluster.scancels == ["--state=PENDING -- 21"]
    launch = snapshot.launches[0]
    rows = {t.state.slurm_id: t for t in launch.tasks}
    assert rows["21_0"].state.state == "RUNNING" and rows["21_0"].diagnosis is None
    for key in ("21_1", "21_2"):
        assert (rows[key].state.state, rows[key].category) == ("CANCELLED", "done")
        assert rows[key].diagnosis is not None and rows[key].diagnosis.error == "reaped: sweep finished"
    assert rows["31_0"].state.state == "PENDING"  # its sweep still hands out runs
    assert [n for n in launch.notes if n.startswith("reaped")] == [
        "reaped 2 pending agent task(s) of sweep idle: sweep finished (running tasks finish their run; "
        "'status --no-reap' leaves them)"]
    # Next refresh: sacct has the cancelled remainder; the cause stays, nothing is cancelled again.
    cluster.answer(squeue="21|0|22|RUNNING|None|vm|0:09|10:00|2026-01-01T00:00:00|N/A|0|0\n"
                          "31|0|31|PENDING|Priority||0:00|10:00|N/A|N/A|0|0\n",
                   sacct="21_[1-2]|21|CANCELLED by 1001|0:0|00:00:00|00:10:00|None|y|None assigned|None\n")
    rows = _rows(db, poller)
    assert cluster.scancels == ["--state=PENDING -- 21"]
    assert [(rows[k].state.state, rows[k].diagnosis.cause if rows[k].diagnosis else None)
            for k in ("21_1", "21_2")] == [("CANCELLED", "reaped")] * 2
    report = build_report(poller.poll([db.launch("L")]).launches[0])  # type: ignore[list-item]
    assert all(not s.failures for s in report.sweeps) and report.counts["failed"] == 0


def test_without_reaping_nothing_is_cancelled(tmp_path: Path) -> None:
    db, cluster = _db(tmp_path), _Cluster(tmp_path)
    rows = _rows(db, _poller(db, cluster, reap=False))
    assert cluster.scancels == [] and rows["21_1"].state.state == "PENDING"


def test_a_failed_scancel_is_said_and_the_tasks_stay_pending(tmp_path: Path) -> None:
    db, cluster = _db(tmp_path), _Cluster(tmp_path)
    cluster.scancel(rc=1)
    launch = _poller(db, cluster, reap=True).poll([db.launch("L")]).launches[0]  # type: ignore[list-item]
    assert {t.state.slurm_id: t.state.state for t in launch.tasks}["21_1"] == "PENDING"
    assert any(n.startswith("could not reap the pending tasks of sweep(s) idle: scancel exit 1: scancel: error: "
                            "Access denied") for n in launch.notes)


def test_an_array_whose_requeued_task_waits_again_is_left_until_that_run_is_back(tmp_path: Path) -> None:
    # 21_1 was preempted and requeued (RestartCnt 1): it is a run that started, so its array is not reaped
    # (scancel --state cancels whole arrays) until it runs again.
    db, cluster = _db(tmp_path), _Cluster(tmp_path)
    cluster.answer(squeue="21|0|22|RUNNING|None|vm|0:05|10:00|2026-01-01T00:00:00|N/A|0|0\n"
                          "21|1|23|PENDING|BeginTime||0:00|10:00|N/A|N/A|1|0\n"
                          "21|2|21|PENDING|JobArrayTaskLimit||0:00|10:00|N/A|N/A|0|0\n")
    rows = _rows(db, _poller(db, cluster, reap=True))
    assert cluster.scancels == []
    assert (rows["21_1"].state.state, rows["21_2"].state.state) == ("PENDING", "PENDING")


def test_nothing_pending_runs_no_scancel(tmp_path: Path) -> None:
    db, cluster = _db(tmp_path), _Cluster(tmp_path)
    cluster.answer(squeue="21|0|22|RUNNING|None|vm|0:05|10:00|2026-01-01T00:00:00|N/A|0|0\n")
    _rows(db, _poller(db, cluster, reap=True))
    assert cluster.scancels == []


def test_targets_are_arrays_of_idle_sweeps_not_known_to_be_final() -> None:
    sweeps = [SweepRecord(launch_id="L", name="a", tags=(), runs=1, jobs=1, config={}, log_dir="/l", sweep_id="e/p/a")]
    job = JobRecord(launch_id="L", sweep_name="a", chunk=0, job_id="5", job_name="n", array_spec="0", task_offset=0,
                    task_count=1, output="o", error="e", script="s", submitted=0.0)
    idle = {"e/p/a": SweepProgress(runs_by_state={}, nothing_left="sweep paused")}
    assert [t.why for t in reap_targets([job], sweeps, idle, {})] == ["sweep paused"]
    assert reap_targets([job], sweeps, {"e/p/a": SweepProgress(runs_by_state={})}, {}) == []
    assert parse_reap(None).arrays == frozenset() and parse_reap("0|5 7 |").arrays == {"5", "7"}


def test_status_reaps_unless_no_reap_or_the_profile_says_reap_false(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from atlas_sweeps.cli.status import open_poller

    clusters = tmp_path / "xdg" / "atlas-sweeps" / "clusters"
    clusters.mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    db = _db(tmp_path)
    launch = db.launch("L")
    assert launch is not None
    (clusters / "c.toml").write_text('host = "login"\n')
    assert open_poller(db, [launch], accept_new_host_key=False, reap=True)[0].reap_for(launch)  # status
    assert not open_poller(db, [launch], accept_new_host_key=False, reap=False)[0].reap_for(launch)  # --no-reap (and ls)
    (clusters / "c.toml").write_text('host = "login"\n[wandb]\nreap = false\n')
    assert not open_poller(db, [launch], accept_new_host_key=False, reap=True)[0].reap_for(launch)
