"""Several runs per array task on the sandbox through the real CLI (tests/integration/data/pack_probe.yml:
six runs that record their CUDA_VISIBLE_DEVICES, pid and times; run 4 fails): ``--runs-per-job 3`` gives two
tasks of three runs each, ``--parallel-per-job 2 --gpus 2`` two runs at once per task on their own GPU of
the node's gres. ``status`` shows one row per run, and ``tail --run`` one run's own output."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CLI = str(Path(__file__).parents[2] / ".venv" / "bin" / "atlas-sweeps")
PROBES = Path("/tmp/atlas-pack-probe")  # where pack_probe.py writes, as the cluster user, on this machine


def run_cli(args: list[str], *, state: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(state), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([CLI, *args], cwd=DATA, env=env, capture_output=True, text=True, timeout=timeout)


def _launch(sandbox, state: Path, *extra: str) -> dict:
    PROBES.mkdir(exist_ok=True)
    PROBES.chmod(0o1777)
    out = run_cli(["launch", "pack_probe", "--cluster", sandbox.profile, "--nodes", "2", "--json", *extra],
                  state=state)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    done = run_cli(["status", "--wait", "--json", "--interval", "2", "--timeout", "150", "--launch",
                    result["launch"]], state=state, timeout=200)
    assert done.returncode == 1, done.stderr  # run 4 failed: not everything completed
    doc = json.loads(done.stdout)
    rows = [t for launch in doc["launches"] for s in launch["sweeps"] for t in s["tasks"]]
    records = [json.loads(p.read_text()) for p in (PROBES / result["launch"]).glob("run*.json")]
    return {"launch": result["launch"], "job_id": result["sweeps"][0]["jobs"][0]["job_id"], "rows": rows,
            "records": sorted(records, key=lambda r: r["run"]), "state": state, "doc": doc}


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
    by_run = {r["run"]: r for r in rows}
    assert by_run[4]["state"] == "FAILED" and by_run[4]["exit_code"] == 5
    assert "ValueError: run 4 was told to fail" in (by_run[4]["error"] or "")
    assert all(by_run[r]["state"] == "COMPLETED" and by_run[r]["exit_code"] == 0 and not by_run[r]["error"]
               for r in (0, 1, 2, 3, 5))
    counts = sequential["doc"]["launches"][0]["sweeps"][0]["counts"]
    assert counts["done"] == 5 and counts["failed"] == 1 and counts["total"] == 6
    # One after another within a task: run 1 starts after run 0 ended.
    rec = {r["run"]: r for r in sequential["records"]}
    assert rec[0]["end"] <= rec[1]["start"] and rec[3]["end"] <= rec[4]["start"]


def test_tail_of_one_run_shows_only_that_runs_output(sequential: dict) -> None:
    job = sequential["job_id"]
    out = run_cli(["tail", f"{job}_1", "--run", "4", "-n", "20"], state=sequential["state"])
    assert out.returncode == 5, out.stderr  # the task's code: its failed run's
    assert "probe run=4 starts" in out.stdout and "probe run=4 done" in out.stdout
    assert "run=3" not in out.stdout and "run=5" not in out.stdout
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
