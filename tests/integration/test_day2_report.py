"""The morning report on the sandboxes through the real CLI: GPU-hours used from sacct (the sandbox allocates
no GPUs: 0, not the estimate; the trixie sandbox keeps no accounting: unknown, not a number) and the best run
of a sweep by its metric, read from the runs' offline W&B files on the cluster in the report's one call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_day2 import launch_and_wait, run_cli, tasks_by_run


@pytest.fixture(scope="module")
def metric_launch(sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """day2_metric.yml run to the end: lr=0.1 and 0.25 complete, lr=0.3 logs the lowest val_loss and fails."""
    state = tmp_path_factory.mktemp("day2-report")
    launch = launch_and_wait("day2_metric", profile=sandbox.profile, nodes=3, state=state, fails=True)
    tasks = tasks_by_run(json.loads(run_cli(["status", "--once", "--json", "--launch", launch], state=state).stdout))
    assert [tasks[i]["state"] for i in range(3)] == ["COMPLETED", "COMPLETED", "FAILED"], tasks
    return {"state": state, "launch": launch}


def test_report_names_the_best_completed_run_by_the_sweeps_metric_in_one_remote_call(metric_launch: dict) -> None:
    out = run_cli(["report", metric_launch["launch"], "--json"], state=metric_launch["state"])
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["remote_calls"] == 1
    (launch,) = doc["launches"]
    best = launch["sweeps"][0]["best"]
    assert (best["metric"], best["goal"], best["run"], best["params"]) == ("val_loss", "minimize", 1, {"lr": 0.25})
    assert best["value"] == pytest.approx(0.0025 + 0.1 / 3) and best["logged"] == 2 and best["run_id"]
    # sacct answered: the sandbox allocates no GPUs, so none were used, whatever the estimate assumed
    assert launch["gpu_hours"] == 0.0 and launch["gpu_hours_unknown"] is None and launch["job_hours"] > 0
    assert launch["estimate_gpu_hours"] == 3.0
    md = run_cli(["report", metric_launch["launch"], "--markdown"], state=metric_launch["state"])
    assert md.returncode == 0, md.stderr
    assert "- best: val\\_loss (minimize): 0.0358333, run 1 lr=0.25" in md.stdout
    assert "- GPU-hours: 0.00 used of 3 estimated" in md.stdout


def test_report_refresh_polls_in_the_same_single_call(metric_launch: dict) -> None:
    out = run_cli(["report", metric_launch["launch"], "--refresh", "--json"], state=metric_launch["state"])
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["remote_calls"] == 1 and doc["launches"][0]["sweeps"][0]["best"]["run"] == 1


def test_an_unreachable_cluster_leaves_usage_unknown_and_the_report_still_prints(metric_launch: dict,
                                                                                 tmp_path: Path) -> None:
    import shutil
    import sqlite3

    state = tmp_path / "state"
    shutil.copytree(metric_launch["state"], state)
    with sqlite3.connect(state / "state.db") as db:
        db.execute("UPDATE launches SET cluster = 'no-such-profile'")
    out = run_cli(["report", metric_launch["launch"], "--json"], state=state)
    assert out.returncode == 0, out.stderr
    assert "no-such-profile not reached:" in out.stderr
    (launch,) = json.loads(out.stdout)["launches"]
    assert launch["gpu_hours"] is None and launch["gpu_hours_unknown"].startswith("the cluster was not reached")
    assert launch["sweeps"][0]["best"]["why"] == "unknown: the cluster was not reached"


def test_without_accounting_the_gpu_hours_used_are_unknown(sandbox_trixie, tmp_path: Path) -> None:
    launch = launch_and_wait("day2_ok", profile=sandbox_trixie.profile, nodes=2, state=tmp_path)
    doc = json.loads(run_cli(["report", launch, "--json"], state=tmp_path).stdout)
    (rep,) = doc["launches"]
    assert rep["counts"]["done"] == 2 and rep["gpu_hours"] is None
    assert rep["gpu_hours_unknown"] == "the cluster keeps no accounting (sacct)"
    text = run_cli(["report", launch, "--markdown"], state=tmp_path).stdout
    assert "- GPU-hours: unknown used (the cluster keeps no accounting (sacct)) of 2 estimated" in text


RESYNC_ME = """\
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--x", type=int)
args, _ = parser.parse_known_args()
if args.x == 2 and not os.path.exists("fixed.txt"):
    raise RuntimeError("x=2 is not fixed in this snapshot")
print(f"x={args.x} ok", flush=True)
"""


def test_retry_resync_runs_the_current_code_in_a_new_snapshot(sandbox, tmp_path: Path) -> None:
    import os
    import subprocess

    from tests.integration.test_day2 import CLI

    project = tmp_path / "project"
    project.mkdir()
    (project / "resync_me.py").write_text(RESYNC_ME)
    (project / "resync.yml").write_text("program: resync_me.py\nmethod: grid\nparameters:\n  x:\n    values: [1, 2]\n")
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)

    out = cli("launch", "resync.yml", "--cluster", sandbox.profile, "--nodes", "2", "--json")
    assert out.returncode == 0, out.stderr
    launch = json.loads(out.stdout)["launch"]
    assert cli("status", "--wait", "--launch", launch).returncode == 1  # x=2 failed
    (project / "fixed.txt").write_text("the fix\n")  # the code changes after the launch
    dry = cli("retry", launch, "--resync", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"--resync: would snapshot the current code of {project} as " in dry.stdout
    assert f"/snapshots/{launch}-r2 and run the round there" in dry.stdout
    done = cli("retry", launch, "--resync", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["code"].endswith(f"/snapshots/{launch}-r2") and doc["arrays"][0]["array"] == "1"
    assert f"--chdir={doc['code']}" in doc["arrays"][0]["sbatch"]
    waited = cli("status", "--wait", "--json", "--launch", launch)
    assert waited.returncode == 0, waited.stderr
    tasks = tasks_by_run(json.loads(waited.stdout))
    assert (tasks[1]["state"], tasks[1]["attempts"], tasks[1]["params"]) == ("COMPLETED", 2, {"x": 2})
    # the launch's own snapshot is unchanged: the fix is only in the round's
    original = Path(doc["code"]).with_name(launch)
    assert not (original / "fixed.txt").exists() and (Path(doc["code"]) / "fixed.txt").exists()
