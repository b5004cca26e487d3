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
