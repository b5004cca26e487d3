"""The state database keeps launches, sweeps and jobs across processes, and forgets nothing by accident."""

from __future__ import annotations

from pathlib import Path

from atlas_sweeps.state import JobRecord, LaunchRecord, StateDB, SweepRecord


def _launch(launch_id: str, created: float) -> LaunchRecord:
    return LaunchRecord(id=launch_id, created=created, config_path="/p/c.yml", config_text="program: x\n",
                        cluster="c", backend="local", nodes=2, remote_dir="/r", snapshot="", status="recorded",
                        total_runs=3, total_hours=3.0, git_commit="abc", git_branch="main", git_dirty=True,
                        options={"nodes": 2})


def test_round_trip_across_connections(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "s" / "state.db")
    db.add_launch(_launch("a1", 1.0))
    db.add_launch(_launch("b2", 2.0))
    db.add_sweep(SweepRecord(launch_id="a1", name="s", tags=("x", "y"), runs=3, jobs=2, config={"k": [1]},
                             log_dir=""))
    db.set_sweep_id("a1", "s", sweep_id="a1/s", url=None, log_dir="/r/logs/a1/s")
    db.add_job(JobRecord(launch_id="a1", sweep_name="s", chunk=0, job_id="77", job_name="atlas-a1-s",
                         array_spec="0-2%2", task_offset=0, task_count=3, output="/o/%A_%a.out",
                         error="/o/%A_%a.err", script="/r/job.sbatch", submitted=3.0))
    db.update_launch("a1", status="submitted", snapshot="/r/snapshots/a1")
    db.close()
    again = StateDB(tmp_path / "s" / "state.db")
    assert [launch.id for launch in again.launches()] == ["b2", "a1"]
    launch = again.launch("a1")
    assert launch is not None and launch.status == "submitted" and launch.git_dirty is True
    assert launch.options == {"nodes": 2}
    [sweep] = again.sweeps("a1")
    assert sweep.tags == ("x", "y") and sweep.config == {"k": [1]} and sweep.sweep_id == "a1/s"
    job = again.job_by_id("77_1")
    assert job is not None and job.sweep_name == "s"
    assert again.job_by_id("78") is None
    again.delete_launch("b2")
    assert [launch.id for launch in again.launches()] == ["a1"]
