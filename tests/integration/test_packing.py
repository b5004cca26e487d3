"""Several runs per array task on the sandbox through the real CLI (tests/integration/data/pack_probe.yml:
six runs that record their CUDA_VISIBLE_DEVICES, pid and times; run 4 fails): ``--runs-per-job 3`` gives two
tasks of three runs each, ``--parallel-per-job 2 --gpus 2`` two runs at once per task on their own GPU of
the node's gres. ``status`` shows one row per run, and ``tail --run`` one run's own output."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CLI = str(Path(__file__).parents[2] / ".venv" / "bin" / "atlas-sweeps")
PROBES = Path("/tmp/atlas-pack-probe")  # where pack_probe.py writes, as the cluster user, on this machine


def run_cli(args: list[str], *, state: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(state), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([CLI, *args], cwd=DATA, env=env, capture_output=True, text=True, timeout=timeout)


def _launch(sandbox, state: Path, *extra: str, probes: Path = PROBES) -> dict:
    probes.mkdir(exist_ok=True)
    probes.chmod(0o1777)
    out = run_cli(["launch", "pack_probe", "--cluster", sandbox.profile, "--nodes", "2", "--json", *extra],
                  state=state)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    early = []  # snapshots while the runs run: each run its own state
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snap = run_cli(["status", "--once", "--json", "--launch", result["launch"]], state=state)
        assert snap.returncode == 0, snap.stderr
        early.append([t for launch in json.loads(snap.stdout)["launches"] for s in launch["sweeps"] for t in s["tasks"]])
        if any(r["state"] == "RUNNING" and r["log_line"] for r in early[-1]):
            break
        time.sleep(1)
    done = run_cli(["status", "--wait", "--json", "--interval", "2", "--timeout", "150", "--launch",
                    result["launch"]], state=state, timeout=200)
    assert done.returncode == 1, done.stderr  # run 4 failed: not everything completed
    doc = json.loads(done.stdout)
    rows = [t for launch in doc["launches"] for s in launch["sweeps"] for t in s["tasks"]]
    records = [json.loads(p.read_text()) for p in (probes / result["launch"]).glob("run*.json")]
    return {"launch": result["launch"], "job_id": result["sweeps"][0]["jobs"][0]["job_id"], "rows": rows,
            "records": sorted(records, key=lambda r: r["run"]), "state": state, "doc": doc, "early": early,
            "result": result}


def _submit_three_per_task(sandbox, state: Path) -> dict:
    """``launch --runs-per-job 3 --json``'s document, not waited for."""
    PROBES.mkdir(exist_ok=True)
    PROBES.chmod(0o1777)
    out = run_cli(["launch", "pack_probe", "--cluster", sandbox.profile, "--runs-per-job", "3", "--json"], state=state)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _start_when_requeued(sandbox, task: str) -> None:
    """A requeued task waits about two minutes (BeginTime) before it may start again: let it start now."""
    for _ in range(60):
        reason = subprocess.run(["squeue", "-h", "-j", task, "-o", "%r"], env=sandbox.slurm_env,
                                capture_output=True, text=True).stdout.strip()
        if reason == "BeginTime":
            subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], env=sandbox.slurm_env,
                           check=True, capture_output=True)
            return
        time.sleep(0.5)


@pytest.fixture(scope="module")
def sequential(sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _launch(sandbox, tmp_path_factory.mktemp("pack-seq"), "--runs-per-job", "3")


@pytest.fixture(scope="module")
def parallel(sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _launch(sandbox, tmp_path_factory.mktemp("pack-par"), "--parallel-per-job", "2", "--gpus", "2")


def test_runs_per_job_runs_every_run_once_in_two_tasks_each_row_its_own_state(sequential: dict) -> None:
    job, rows = sequential["job_id"], sequential["rows"]
    assert [r["run"] for r in sequential["records"]] == [0, 1, 2, 3, 4, 5]  # each run ran once
    assert [r["run"] for r in rows] == [0, 1, 2, 3, 4, 5]  # status: one row per run
    assert [r["job_id"] for r in rows] == [f"{job}_0"] * 3 + [f"{job}_1"] * 3  # two array tasks
    launched = sequential["result"]
    assert launched["totals"]["array_tasks"] == 2 and launched["sweeps"][0]["jobs"][0]["array"] == "0-1"
    assert launched["packing"] == {"runs_per_job": 3, "parallel_per_job": 1}
    by_run = {r["run"]: r for r in rows}
    assert by_run[4]["state"] == "FAILED" and by_run[4]["exit_code"] == 5
    assert "ValueError: run 4 was told to fail" in (by_run[4]["error"] or "")
    assert all(by_run[r]["state"] == "COMPLETED" and by_run[r]["exit_code"] == 0 and not by_run[r]["error"]
               for r in (0, 1, 2, 3, 5))
    assert all(by_run[r]["log_line"] == f"probe run={r} done" for r in range(6))  # each run's own last line
    counts = sequential["doc"]["launches"][0]["sweeps"][0]["counts"]
    assert counts["done"] == 5 and counts["failed"] == 1 and counts["total"] == 6
    # One after another within a task: run 1 starts after run 0 ended.
    rec = {r["run"]: r for r in sequential["records"]}
    assert rec[0]["end"] <= rec[1]["start"] and rec[3]["end"] <= rec[4]["start"]


def test_while_a_packed_task_runs_its_runs_show_running_and_waiting_with_their_own_log_line(sequential: dict) -> None:
    last = {r["run"]: r for r in sequential["early"][-1]}
    running = [r for r in last.values() if r["state"] == "RUNNING"]
    # Two tasks at once (--nodes 2): one run of each runs, the others wait for their turn in the task.
    assert sorted(r["run"] for r in running) == [0, 3], last
    assert running[0]["log_line"] == "probe run=0 starts" and running[1]["log_line"] == "probe run=3 starts"
    waiting = [r for r in last.values() if r["run"] in (1, 2, 4, 5)]
    assert all(r["state"] == "PENDING" and r["reason"] == "WaitingInTask" for r in waiting), waiting


def test_tail_of_one_run_shows_only_that_runs_output(sequential: dict) -> None:
    job = sequential["job_id"]
    out = run_cli(["tail", f"{job}_1", "--run", "4", "-n", "20"], state=sequential["state"])
    assert out.returncode == 5, out.stderr  # the run's own exit code
    assert "probe run=4 starts" in out.stdout and "probe run=4 done" in out.stdout
    assert "run=3" not in out.stdout and "run=5" not in out.stdout
    three = run_cli(["tail", f"{job}_1", "--run", "3"], state=sequential["state"])
    assert three.returncode == 0 and "COMPLETED" in three.stderr, three.stderr  # its own end, not its task's
    assert three.stdout.splitlines()[-1] == "probe run=3 done"
    err = run_cli(["tail", f"{job}_1", "--run", "4", "--err"], state=sequential["state"])
    assert "ValueError: run 4 was told to fail" in err.stdout
    wrong = run_cli(["tail", f"{job}_1", "--run", "0"], state=sequential["state"])
    assert wrong.returncode == 2 and "runs runs 3..5, not run 0" in wrong.stderr


def test_parallel_runs_overlap_on_their_own_gpu(parallel: dict) -> None:
    records, rows = parallel["records"], parallel["rows"]
    assert [r["run"] for r in records] == [0, 1, 2, 3, 4, 5]
    assert len({r["job_id"] for r in rows}) == 3  # two runs per task
    for first in (0, 2, 4):  # the two runs of each task
        a, b = records[first], records[first + 1]
        assert a["start"] < b["end"] and b["start"] < a["end"], (a, b)  # side by side
        assert a["cvd"] and b["cvd"] and a["cvd"] != b["cvd"]  # one GPU each, from Slurm's gres
        assert len(a["cvd"].split(",")) == 1 and a["pid"] != b["pid"]
    by_run = {r["run"]: r for r in rows}
    assert by_run[4]["state"] == "FAILED" and by_run[5]["state"] == "COMPLETED"


def test_dry_run_shows_the_packing_lines_and_counts_tasks(sandbox, tmp_path: Path) -> None:
    out = run_cli(["launch", "pack_probe", "--cluster", sandbox.profile, "--runs-per-job", "3", "--dry-run"],
                  state=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "tasks: 2 (3 runs each, 1 at once)" in out.stdout and "--array=0-1%1" in out.stdout
    assert "atlas_pack_main" in out.stdout and "# --- packing: 3 run(s) per task, 1 at once" in out.stdout
    bad = run_cli(["launch", "pack_probe", "--cluster", sandbox.profile, "--parallel-per-job", "0"], state=tmp_path)
    assert bad.returncode == 2 and "--parallel-per-job must be a whole number of at least 1" in bad.stderr


def test_retry_of_a_packed_task_reruns_only_its_failed_run(sequential: dict) -> None:
    out = run_cli(["retry", sequential["launch"], "--yes", "--json"], state=sequential["state"])
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["runs"] == 1 and plan["arrays"][0]["array"] == "1"  # task 1 again, for run 4
    done = run_cli(["status", "--wait", "--json", "--interval", "2", "--timeout", "120", "--launch",
                    sequential["launch"]], state=sequential["state"], timeout=180)
    assert done.returncode == 1, done.stderr  # run 4 fails again (it always does)
    rows = {t["run"]: t for launch in json.loads(done.stdout)["launches"] for s in launch["sweeps"] for t in s["tasks"]}
    assert rows[4]["attempts"] == 2 and rows[4]["state"] == "FAILED" and rows[4]["exit_code"] == 5
    assert rows[3]["state"] == "COMPLETED" and rows[5]["state"] == "COMPLETED"
    runs = [json.loads(p.read_text())["run"] for p in (PROBES / sequential["launch"]).glob("run*.json")]
    assert sorted(runs) == [0, 1, 2, 3, 4, 4, 5]  # runs 3 and 5, completed in the first attempt, were skipped


def test_parallel_runs_on_slurm_24_get_their_own_gpu_too(sandbox_trixie, tmp_path: Path) -> None:
    """The same on the trixie sandbox: Slurm 24.11 without accounting (states from the exit records)."""
    got = _launch(sandbox_trixie, tmp_path, "--parallel-per-job", "2", "--gpus", "2",
                  probes=sandbox_trixie.dir / "root" / PROBES.relative_to("/"))  # its /tmp is the chroot's
    records = {r["run"]: r for r in got["records"]}
    assert sorted(records) == [0, 1, 2, 3, 4, 5]
    assert all(records[r]["cvd"] != records[r + 1]["cvd"] for r in (0, 2, 4))
    assert {r["run"]: r["state"] for r in got["rows"]} == {0: "COMPLETED", 1: "COMPLETED", 2: "COMPLETED",
                                                           3: "COMPLETED", 4: "FAILED", 5: "COMPLETED"}


def test_a_requeued_packed_task_does_not_rerun_its_completed_runs(sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = _submit_three_per_task(sandbox, state)
    launch, job = result["launch"], result["sweeps"][0]["jobs"][0]["job_id"]
    log_dir = Path(f"/home/{sandbox.user}/atlas-sweeps/logs/{launch}/pack_probe")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # run 0 of task 0 completed, run 1 runs
        records = {p.name: (p.read_text().split() or [""])[0] for p in log_dir.glob(f"{job}_0.r*.exit")}
        if records.get(f"{job}_0.r0.exit") == "0" and records.get(f"{job}_0.r1.exit") == "R":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"run 1 of {job}_0 never started: {records}")
    requeue = subprocess.run(["scontrol", "requeue", f"{job}_0"], env=sandbox.slurm_env, capture_output=True, text=True)
    assert requeue.returncode == 0, requeue.stderr
    _start_when_requeued(sandbox, f"{job}_0")
    done = run_cli(["status", "--wait", "--json", "--interval", "2", "--timeout", "240", "--launch", launch],
                   state=state, timeout=300)
    rows = {t["run"]: t for la in json.loads(done.stdout)["launches"] for s in la["sweeps"] for t in s["tasks"]}
    assert [rows[r]["state"] for r in range(6)] == ["COMPLETED"] * 4 + ["FAILED", "COMPLETED"], done.stderr
    ran = sorted(json.loads(p.read_text())["run"] for p in (PROBES / launch).glob("run*.json"))
    assert ran == [0, 1, 2, 3, 4, 5]  # run 0 once (run 1 was killed before it wrote its record, then ran again)
    assert "run 0 completed before: skipped" in (log_dir / f"{job}_0.err").read_text()


def test_tail_of_a_running_run_ends_with_the_run_while_its_task_runs_on(sandbox, tmp_path: Path) -> None:
    result = _submit_three_per_task(sandbox, tmp_path)
    job = result["sweeps"][0]["jobs"][0]["job_id"]
    tail = run_cli(["tail", f"{job}_0", "--run", "0"], state=tmp_path, timeout=120)
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout.splitlines() == ["probe run=0 starts", "probe run=0 done"]
    task = subprocess.run(["squeue", "-h", "-j", f"{job}_0", "-o", "%T"], env=sandbox.slurm_env,
                          capture_output=True, text=True).stdout.strip()
    assert task == "RUNNING"  # runs 1 and 2 still to go
    run_cli(["cancel", result["launch"], "--yes"], state=tmp_path)


def test_slurms_checkpoint_signal_requeues_a_packed_task_that_reruns_only_its_unfinished_runs(sandbox,
                                                                                              tmp_path: Path) -> None:
    """The preemption path (launch/preemption.py) with packing: USR1 to the batch shell, as Slurm sends it
    before a time limit, reaches the running run; its task requeues itself and, back, skips the run that
    had completed."""
    result = _submit_three_per_task(sandbox, tmp_path)
    launch, job = result["launch"], result["sweeps"][0]["jobs"][0]["job_id"]
    log_dir = Path(f"/home/{sandbox.user}/atlas-sweeps/logs/{launch}/pack_probe")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log_dir / f"{job}_0.r1.exit").exists():
        time.sleep(0.3)
    signal = subprocess.run(["scancel", "--batch", "--signal=USR1", f"{job}_0"], env=sandbox.slurm_env,
                            capture_output=True, text=True)
    assert signal.returncode == 0, signal.stderr
    _start_when_requeued(sandbox, f"{job}_0")
    done = run_cli(["status", "--wait", "--json", "--interval", "2", "--timeout", "240", "--launch", launch],
                   state=tmp_path, timeout=300)
    doc = json.loads(done.stdout)
    rows = {t["run"]: t for la in doc["launches"] for s in la["sweeps"] for t in s["tasks"]}
    assert [rows[r]["state"] for r in range(6)] == ["COMPLETED"] * 4 + ["FAILED", "COMPLETED"], done.stderr
    ran = sorted(json.loads(p.read_text())["run"] for p in (PROBES / launch).glob("run*.json"))
    assert ran == [0, 1, 2, 3, 4, 5]  # run 0 once; run 1, killed by the signal before its record, once more
    err = (log_dir / f"{job}_0.err").read_text()
    assert "run 1 interrupted" in err and "requeueing task" in err and "run 0 completed before: skipped" in err
