"""``launch --skip-done``'s pure part: the runs completed under the same tags (latest attempts) and a plan
without them, its counts, jobs and hours following."""

from __future__ import annotations

import time
from pathlib import Path

from atlas_sweeps.config.composite import load_composite
from atlas_sweeps.launch.done_runs import completed_runs, skip_map
from atlas_sweeps.launch.plan import build_plan, run_key, without_runs
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.state.store import JobRecord, LaunchRecord, SweepRecord
from atlas_sweeps.status.model import build_launch_status

SWEEP = "program: p.py\nmethod: grid\nparameters:\n  seed: 1\n  subtests:\n    a:\n      lr: [0.1, 0.2, 0.3]\n    b:\n      lr: [0.1]\n"


def _plan(tmp_path: Path):
    path = tmp_path / "s.yml"
    path.write_text(SWEEP)
    return build_plan(load_composite(path), backend="local", expand=True, nodes=2, test_time=1.0, gpus_per_job=2)


def test_completed_runs_are_left_out_by_tags_and_a_sweep_with_none_left_is_dropped(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    a, b = plan.sweeps
    rec = LaunchRecord(id="old", created=time.time(), config_path="c", config_text="", cluster="c", backend="local",
                       nodes=1, remote_dir="/r", snapshot="", status="submitted", total_runs=3, total_hours=3.0)
    sweeps = [SweepRecord(launch_id="old", name="x_a", tags=("a",), runs=2, jobs=1, config={}, log_dir="/l",
                          run_params=a.run_params[:2]),
              SweepRecord(launch_id="old", name="x_b", tags=("b",), runs=1, jobs=1, config={}, log_dir="/l",
                          run_params=b.run_params)]
    jobs = [JobRecord(launch_id="old", sweep_name=s.name, chunk=0, job_id=str(10 + i), job_name="j", array_spec="",
                      task_offset=0, task_count=s.runs, output="/o", error="/e", script="/s", submitted=0)
            for i, s in enumerate(sweeps)]
    states = {("10", 0): TaskState("10", 0, "COMPLETED"), ("10", 1): TaskState("10", 1, "FAILED"),
              ("11", 0): TaskState("11", 0, "COMPLETED")}
    done = completed_runs([build_launch_status(rec, sweeps, jobs, states=states, log_lines={}, polled=0,
                                               accounting=True)])
    assert done == {("a",): {run_key(a.run_params[0])}, ("b",): {run_key(b.run_params[0])}}
    skip = skip_map(plan, done)
    assert skip == {a.name: [run_key({"seed": 1, "lr": 0.1})], b.name: [run_key({"lr": 0.1, "seed": 1})]}
    left = without_runs(plan, skip)
    assert [s.name for s in left.sweeps] == [a.name]
    (kept,) = left.sweeps
    assert [p["lr"] for p in kept.run_params] == [0.2, 0.3] and len(kept.run_argv) == 2
    assert kept.runs == 2 and kept.jobs == 2 and kept.hours == 4.0 and left.total_runs == 2
    assert without_runs(plan, {}) is plan
