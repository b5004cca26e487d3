"""Packing several runs into one array task: the options, the plan's counts, and the rendered bash run with
bash in a temporary directory (each run its own logs and exit record, lanes side by side on their own GPUs,
completed runs skipped on a requeue, the task failing when a run did)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atlas_sweeps.backends.base import CreatedSweep
from atlas_sweeps.backends.local import LocalBackend
from atlas_sweeps.config.composite import load_composite
from atlas_sweeps.errors import UsageError
from atlas_sweeps.launch.jobs import exit_record
from atlas_sweeps.launch.layout import LaunchLayout
from atlas_sweeps.launch.packing import Packing, agent_lanes_command, packing_of, run_log_file
from atlas_sweeps.launch.plan import PlannedSweep, build_plan

PROBE = Path(__file__).parents[1] / "integration" / "data" / "pack_probe.py"


def test_parallel_alone_packs_that_many_runs_and_runs_per_job_must_hold_them() -> None:
    assert packing_of(runs_per_job=None, parallel_per_job=None) == Packing(1, 1)
    assert packing_of(runs_per_job=None, parallel_per_job=2) == Packing(2, 2)
    assert packing_of(runs_per_job=5, parallel_per_job=2) == Packing(5, 2)
    with pytest.raises(UsageError, match="--parallel-per-job 3 is more than --runs-per-job 2"):
        packing_of(runs_per_job=2, parallel_per_job=3)
    for bad in (0, -1, True):
        with pytest.raises(UsageError, match="--runs-per-job must be a whole number of at least 1"):
            packing_of(runs_per_job=bad, parallel_per_job=None)  # type: ignore[arg-type]
    with pytest.raises(UsageError) as info:
        packing_of(runs_per_job=None, parallel_per_job=0)
    assert info.value.exit_code == 2


def _composite(tmp_path: Path, runs: int, *, fail: int = -1, seconds: float = 0.3) -> Path:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (tmp_path / "pack.yml").write_text(
        f"program: {PROBE}\nmethod: grid\nparameters:\n  out:\n    value: {out}\n  seconds:\n    value: {seconds}\n"
        f"  fail:\n    value: {fail}\n  run:\n    values: {list(range(runs))}\n")
    return tmp_path / "pack.yml"


def _sweep(tmp_path: Path, runs: int, packing: Packing, *, nodes: int = 8, **kw: float) -> PlannedSweep:
    plan = build_plan(load_composite(_composite(tmp_path, runs, **kw)), backend="local", expand=True, nodes=nodes,
                      test_time=1.0, gpus_per_job=2, interpreter=sys.executable, packing=packing)
    return plan.sweeps[0]


def test_plan_counts_packed_tasks_jobs_and_gpu_hours(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, 7, Packing(3, 1), nodes=8)
    assert (sweep.runs, sweep.tasks, sweep.jobs) == (7, 3, 3)  # the throttle counts tasks, not runs
    assert sweep.hours == 3 * 3 * 1.0 * 2  # each task holds its 2 GPUs for 3 run times
    parallel = _sweep(tmp_path, 8, Packing(4, 2), nodes=1)
    assert (parallel.tasks, parallel.jobs, parallel.hours) == (2, 1, 2 * 2 * 1.0 * 2)
    plain = _sweep(tmp_path, 7, Packing(), nodes=8)
    assert (plain.tasks, plain.jobs, plain.hours) == (7, 7, 7 * 2.0)


class _Cluster:
    """The files a launch writes for one sweep, and its tasks run with bash as Slurm would run them."""

    def __init__(self, tmp_path: Path, sweep: PlannedSweep) -> None:
        self.layout = LaunchLayout(root=str(tmp_path / "remote"), launch_id="L1")
        self.log_dir = Path(self.layout.log_dir(sweep.name))
        self.log_dir.mkdir(parents=True)
        self.job = LocalBackend().job(sweep, CreatedSweep(sweep_id="L1/x"), layout=self.layout, wrap=None)
        for path, data in self.job.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(data)
        self.out = tmp_path / "out"

    def run_task(self, task: int, *, array: str = "100", gpus: str | None = None, offset: int = 0) -> int:
        script = "\n".join(["set -eo pipefail", "set -u", *exit_record(str(self.log_dir)), *self.job.preamble,
                            self.job.command]) + "\n"
        env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_JOB_ID": array, "SLURM_ARRAY_TASK_ID": str(task)}
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        if offset:  # a later chunk of a sweep cut at MaxArraySize
            env["ATLAS_TASK_OFFSET"] = str(offset)
        with open(self.log_dir / f"{array}_{task}.out", "w") as out, open(self.log_dir / f"{array}_{task}.err", "w") as err:
            return subprocess.run(["bash", "-c", script], env=env, stdout=out, stderr=err, timeout=60).returncode

    def records(self) -> list[dict[str, object]]:
        return sorted((json.loads(p.read_text()) for p in self.out.glob("run*.json")), key=lambda r: r["run"])

    def run_exit(self, array: str, task: int, run: int) -> str:
        """The run's exit code as its record says (``CODE START END``; ``0`` alone for a skipped run)."""
        first, *rest = (self.log_dir / f"{array}_{task}.r{run}.exit").read_text().splitlines()
        code, *times = first.split()
        assert (len(times) in (0, 2) or code == "P") and times == sorted(times)
        if len(times) == 2:  # then the last line of its log, for status once it ended
            assert rest == [f"L probe run={run} done"]
        return code


def test_a_packed_task_runs_its_runs_one_after_another_each_with_its_own_log_and_exit_record(tmp_path: Path) -> None:
    cluster = _Cluster(tmp_path, _sweep(tmp_path, 5, Packing(3, 1), fail=4))
    assert cluster.job.tasks == 2
    assert cluster.run_task(0) == 0
    assert cluster.run_task(1) == 5  # runs 3 and 4; run 4 failed: the task fails with its code
    records = cluster.records()
    assert [r["run"] for r in records] == [0, 1, 2, 3, 4]  # every run once, in its own task
    assert all(str(r["run"]) == r["atlas_run"] for r in records)
    assert records[0]["end"] <= records[1]["start"] and records[1]["end"] <= records[2]["start"]  # in turn
    assert [cluster.run_exit("100", 0, r) for r in (0, 1, 2)] == ["0", "0", "0"]
    assert (cluster.run_exit("100", 1, 3), cluster.run_exit("100", 1, 4)) == ("0", "5")
    assert (cluster.log_dir / "100_1.exit").read_text().strip() == "5"  # the task's own record
    run4 = (cluster.log_dir / "100_1.r4.out").read_text()
    assert "probe run=4 done" in run4 and "run=3" not in run4  # a run's log holds only its output
    assert "ValueError: run 4 was told to fail" in (cluster.log_dir / "100_1.r4.err").read_text()
    assert "ValueError" not in (cluster.log_dir / "100_1.r3.err").read_text()
    task_err = (cluster.log_dir / "100_1.err").read_text()
    assert "atlas-sweeps: run 4 exited 5" in task_err
    assert "[run 4] ValueError: run 4 was told to fail" in task_err  # where status finds the task's cause


def test_a_requeued_or_retried_task_skips_the_runs_that_completed(tmp_path: Path) -> None:
    cluster = _Cluster(tmp_path, _sweep(tmp_path, 3, Packing(3, 1), fail=1))
    assert cluster.run_task(0, array="100") == 5
    assert cluster.run_task(0, array="200") == 5  # a retry: a new array id, the same runs
    runs = [r["run"] for r in cluster.records()]
    assert runs.count(0) == 1 and runs.count(2) == 1 and runs.count(1) == 2  # only the failed one again
    assert "run 0 completed before: skipped" in (cluster.log_dir / "200_0.err").read_text()
    assert [cluster.run_exit("200", 0, r) for r in (0, 1, 2)] == ["0", "5", "0"]  # the retry's records say so


def test_parallel_runs_overlap_each_on_its_own_gpus(tmp_path: Path) -> None:
    cluster = _Cluster(tmp_path, _sweep(tmp_path, 4, Packing(4, 2), seconds=1.0))
    assert cluster.run_task(0, gpus="2,3,5,7") == 0
    records = cluster.records()
    lanes = {r["run"]: r["cvd"] for r in records}
    assert lanes == {0: "2,3", 1: "5,7", 2: "2,3", 3: "5,7"}  # lane l runs l, l+2: Slurm's list split in two
    first, second = records[0], records[1]
    assert first["start"] < second["end"] and second["start"] < first["end"]  # side by side
    assert first["pid"] != second["pid"]


def test_more_parallel_runs_than_gpus_share_them_and_no_gpus_leaves_the_variable_unset(tmp_path: Path) -> None:
    cluster = _Cluster(tmp_path, _sweep(tmp_path, 3, Packing(3, 3)))
    assert cluster.run_task(0, gpus="4") == 0
    assert [r["cvd"] for r in cluster.records()] == ["4", "4", "4"]
    for p in cluster.out.glob("*.json"):
        p.unlink()
    for p in cluster.log_dir.glob("*.exit"):
        p.unlink()
    assert cluster.run_task(0) == 0
    assert [r["cvd"] for r in cluster.records()] == [None, None, None]


def test_wandb_agents_in_one_task_split_its_count_and_its_gpus(tmp_path: Path) -> None:
    preamble, command = agent_lanes_command(count_expr="atlas_count", agent='echo "share=$atlas_share cvd=$CUDA_VISIBLE_DEVICES"',
                                            packing=Packing(3, 3), log_dir=str(tmp_path))
    script = "\n".join(["set -eo pipefail", "set -u", "atlas_count=7", *preamble, command])
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_JOB_ID": "9", "SLURM_ARRAY_TASK_ID": "1",
           "CUDA_VISIBLE_DEVICES": "0,1,2"}
    assert subprocess.run(["bash", "-c", script], env=env, timeout=30).returncode == 0
    outs = [(tmp_path / f"9_1.a{lane}.out").read_text().strip() for lane in range(3)]
    assert outs == ["share=3 cvd=0", "share=2 cvd=1", "share=2 cvd=2"]


def test_run_log_files_sit_beside_their_task_log() -> None:
    assert run_log_file("/l/x/100_3.out", run=7) == "/l/x/100_3.r7.out"
    assert run_log_file("/l/x/100_3.err", run=0) == "/l/x/100_3.r0.err"


def test_a_profile_may_set_the_packing_defaults_checked_like_the_flags() -> None:
    from atlas_sweeps.config.profile import _profile_from_table, profile_toml
    from atlas_sweeps.errors import ConfigError

    profile = _profile_from_table("c", {"runs_per_job": 8, "parallel_per_job": 4}, "/p/c.toml",
                                  text="runs_per_job = 8\nparallel_per_job = 4\n")
    assert (profile.runs_per_job, profile.parallel_per_job) == (8, 4)
    assert "runs_per_job = 8" in profile_toml(profile) and "parallel_per_job = 4" in profile_toml(profile)
    with pytest.raises(ConfigError) as info:
        _profile_from_table("c", {"parallel_per_job": 0}, "/p/c.toml", text="parallel_per_job = 0\n")
    assert info.value.exit_code == 2 and "parallel_per_job = 0" in str(info.value.message)


def test_a_later_chunks_task_runs_the_runs_of_its_place_in_the_sweep(tmp_path: Path) -> None:
    cluster = _Cluster(tmp_path, _sweep(tmp_path, 8, Packing(3, 1)))
    assert cluster.job.tasks == 3
    assert cluster.run_task(0, array="300", offset=2) == 0  # task 2 of the sweep: runs 6 and 7 (8 runs only)
    assert [r["run"] for r in cluster.records()] == [6, 7]


def test_slurms_signal_stops_a_packed_task_without_marking_its_interrupted_run_done(tmp_path: Path) -> None:
    """Preemption: USR1 to the task's process group reaches the running program (here it dies of it, as one
    that does not checkpoint would); its run is recorded interrupted, no new run starts, and the requeued
    task runs it again but not the one that completed."""
    import signal
    import time

    cluster = _Cluster(tmp_path, _sweep(tmp_path, 3, Packing(3, 1), seconds=2.0))
    # As the job script's own USR1 trap does (launch/preemption.py), the batch shell lives on.
    script = "\n".join(["set -eo pipefail", "set -u", "trap 'echo usr1 >&2' USR1", *exit_record(str(cluster.log_dir)),
                        *cluster.job.preamble, f"{cluster.job.command} & wait $! || true; wait || true"]) + "\n"
    env = {"PATH": os.environ["PATH"], "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "0"}
    proc = subprocess.Popen(["bash", "-c", script], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(cluster.log_dir / "100_0.err", "w"))
    record = cluster.log_dir / "100_0.r1.exit"
    deadline = time.monotonic() + 30
    while not (record.exists() and record.read_text().startswith("R ")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGUSR1)
    proc.wait(timeout=30)
    assert cluster.run_exit("100", 0, 0) == "0"
    assert cluster.run_exit("100", 0, 1) == "P"  # interrupted: not done
    assert not (cluster.log_dir / "100_0.r2.exit").exists()  # no run started after the signal
    assert [r["run"] for r in cluster.records()] == [0]
    assert cluster.run_task(0, array="100") == 0  # the requeued task
    assert [r["run"] for r in cluster.records()] == [0, 1, 2]  # run 0 once, 1 again, 2 at last
