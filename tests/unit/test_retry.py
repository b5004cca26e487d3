"""``retry``'s pure part: which runs a round resubmits (the latest attempt of each run that did not
complete), grouped by the chunk that first ran them, as sparse arrays with the chunk's offset; the W&B case
is a one-line error."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from atlas_sweeps.cli import main
from atlas_sweeps.errors import UsageError
from atlas_sweeps.launch.retry import plan_retry, retry_document
from atlas_sweeps.slurm.sbatch import SparseChunk, Submission
from atlas_sweeps.slurm.task import TaskState
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord
from atlas_sweeps.status.model import build_launch_status

SNAP = "/r/snapshots/k3"


def _job(job_id: str, *, chunk: int, offset: int, count: int, attempt: int = 1,
         ids: tuple[int, ...] = ()) -> JobRecord:
    return JobRecord(launch_id="k3", sweep_name="s", chunk=chunk, job_id=job_id, job_name=f"atlas-k3-s-c{chunk}",
                     array_spec=f"0-{count - 1}%2", task_offset=offset, task_count=count, output="/l/%A_%a.out",
                     error="/l/%A_%a.err", script="/r/launches/k3/s/job.sbatch", submitted=time.time(),
                     attempt=attempt, task_ids=ids)


def _status(jobs: list[JobRecord], states: dict[tuple[str, int], str], *, snapshot: str = SNAP):
    rec = LaunchRecord(id="k3", created=time.time(), config_path="c.yml", config_text="", cluster="c",
                       backend="local", nodes=2, remote_dir="/r", snapshot=snapshot, status="submitted",
                       total_runs=6, total_hours=6.0)
    sweep = SweepRecord(launch_id="k3", name="s", tags=("t",), runs=6, jobs=2, config={}, log_dir="/l",
                        run_params=tuple({"lr": i} for i in range(6)))
    merged = {k: TaskState(k[0], k[1], v, elapsed=60, source="sacct") for k, v in states.items()}
    return build_launch_status(rec, [sweep], jobs, states=merged, log_lines={}, polled=time.time(), accounting=True)


def test_a_round_resubmits_the_failed_runs_of_each_chunk_as_a_sparse_array_with_its_offset() -> None:
    jobs = [_job("10", chunk=0, offset=0, count=3), _job("11", chunk=1, offset=3, count=3)]
    states = {("10", 0): "COMPLETED", ("10", 1): "TIMEOUT", ("10", 2): "OUT_OF_MEMORY",
              ("11", 0): "COMPLETED", ("11", 1): "RUNNING", ("11", 2): "CANCELLED"}
    plan = plan_retry(_status(jobs, states), jobs=jobs)
    assert plan.attempt == 2 and plan.runs == 3
    first, second = plan.arrays
    assert [r.run for r in first.runs] == [1, 2] and [r.run for r in second.runs] == [5]
    assert first.submission.argv() == [
        "sbatch", "--parsable", "--job-name=atlas-k3-s-c0-r1", "--array=1,2", "--output=/l/%A_%a.out",
        "--error=/l/%A_%a.err", f"--chdir={SNAP}", "/r/launches/k3/s/job.sbatch"]
    assert "--array=2" in second.submission.argv() and "--export=ALL,ATLAS_TASK_OFFSET=3" in second.submission.argv()
    doc = retry_document(plan, submitted={first.submission.key: "20"})
    assert doc["arrays"][0]["job_id"] == "20" and doc["arrays"][0]["runs"][0]["params"] == {"lr": 1}


def test_status_shows_a_runs_latest_attempt_and_the_next_round_starts_from_it() -> None:
    jobs = [_job("10", chunk=0, offset=0, count=3), _job("20", chunk=0, offset=0, count=2, attempt=2, ids=(1, 2))]
    states = {("10", 0): "COMPLETED", ("10", 1): "FAILED", ("10", 2): "FAILED", ("20", 1): "COMPLETED",
              ("20", 2): "FAILED"}
    status = _status(jobs, states)
    rows = {r.run: r for r in status.tasks}
    assert [(r.state.job_id, r.attempts, r.state.state) for r in rows.values()] == [
        ("10", 1, "COMPLETED"), ("20", 2, "COMPLETED"), ("20", 2, "FAILED")]
    assert status.counts["done"] == 2 and status.counts["failed"] == 1 and status.counts["total"] == 3
    assert [r.spent for r in rows.values()] == [60, 120, 120]  # every attempt's time counts (report's GPU-hours)
    plan = plan_retry(status, jobs=jobs)
    assert plan.attempt == 3 and [r.run for a in plan.arrays for r in a.runs] == [2]
    assert plan.arrays[0].submission.chunk.array_spec == "2"


def test_nothing_to_retry_an_unknown_sweep_and_a_launch_without_a_snapshot() -> None:
    jobs = [_job("10", chunk=0, offset=0, count=2)]
    done = _status(jobs, {("10", 0): "COMPLETED", ("10", 1): "COMPLETED"})
    assert plan_retry(done, jobs=jobs).arrays == ()
    with pytest.raises(UsageError, match="launch k3 has no sweep 'x'"):
        plan_retry(done, jobs=jobs, sweep="x")
    with pytest.raises(UsageError, match="never finished its code snapshot"):
        plan_retry(_status(jobs, {}, snapshot=""), jobs=jobs)
    many = SparseChunk(index=0, offset=0, count=3, throttle=2, ids=(1, 4, 9))
    assert many.array_spec == "1,4,9%2" and Submission(key="k", job_name="j", script_path="/s", chunk=many,
                                                        output="/o", error="/e", chdir="/c").argv()[3] == "--array=1,4,9%2"


def test_retry_of_a_wandb_launch_refuses_bad_input_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ATLAS_SWEEPS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = StateDB(tmp_path / "state.db")
    db.add_launch(LaunchRecord(id="w1", created=time.time(), config_path="c.yml", config_text="", cluster="c",
                               backend="wandb", nodes=1, remote_dir="/r", snapshot=SNAP, status="submitted",
                               total_runs=1, total_hours=1.0))
    assert main(["retry", "w1", "--sweep", "nope", "--yes"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "launch w1 has no sweep 'nope'" in err
    assert main(["retry", "w1", "--yes"]) == 2  # its cluster profile is gone: said, nothing asked of W&B
    assert "no cluster profile named 'c'" in capsys.readouterr().err
    assert main(["retry", "w1", "--resync", "--dry-run"]) == 2  # never another directory's code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--resync: the code directory of launch w1 (not recorded) is not on this machine" in err
