"""Day 2 on the sandbox through the real CLI: a launch with a note (``-m``) whose runs really fail (a raised
exception, a time limit of one minute outlived, a task cancelled with scancel) and ``status`` saying why,
with each run's parameters, in one remote call per refresh; ``ls`` and ``status`` show the note."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CLI = str(Path(__file__).parents[2] / ".venv" / "bin" / "atlas-sweeps")
NOTE = "does 'sleep' outlive a 1 min limit? (and $HOME stays unexpanded)"
FINAL = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"}


def run_cli(args: list[str], *, state: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(state), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([CLI, *args], cwd=DATA, env=env, capture_output=True, text=True, timeout=timeout)


def launch_and_wait(config: str, *, profile: str, nodes: int, state: Path, fails: bool = False) -> str:
    """Launch ``config`` on ``profile`` and wait until its tasks are final (``status --wait`` exits 1 when
    some failed: ``fails``); the launch id."""
    out = run_cli(["launch", config, "--cluster", profile, "--nodes", str(nodes), "--json"], state=state)
    assert out.returncode == 0, out.stderr
    launch = json.loads(out.stdout)["launch"]
    waited = run_cli(["status", "--wait", "--launch", launch], state=state, timeout=600)
    assert waited.returncode == (1 if fails else 0), waited.stderr
    return launch


def tasks_by_run(doc: dict) -> dict[int, dict]:
    return {t["run"]: t for launch in doc["launches"] for s in launch["sweeps"] for t in s["tasks"]}


def status_json(state: Path, launch: str) -> dict:
    out = run_cli(["status", "--once", "--json", "--launch", launch], state=state)
    doc = json.loads(out.stdout)
    assert out.returncode == 0, (doc["error"], out.stderr)
    return doc


@pytest.fixture(scope="module")
def failed(sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One launch of day2_fail.yml under a one-minute limit, its run 3 cancelled while running, watched
    until every task is final."""
    state = tmp_path_factory.mktemp("day2-state")
    out = run_cli(["launch", "day2_fail", "--cluster", sandbox.profile, "--nodes", "4", "--time", "00:01:00",
                   "-m", NOTE, "--json"], state=state)
    assert out.returncode == 0, out.stderr
    launch = json.loads(out.stdout)["launch"]
    docs = []
    cancelled = False
    deadline = time.monotonic() + 900  # a shared, loaded cluster: the time-limit kill alone takes over a minute
    while time.monotonic() < deadline:
        doc = status_json(state, launch)
        docs.append(doc)
        tasks = tasks_by_run(doc)
        if not cancelled and tasks[3]["state"] == "RUNNING" and tasks[3]["log_line"].startswith("tick"):
            done = run_cli(["cancel", tasks[3]["job_id"], "--yes"], state=state)
            assert done.returncode == 0, done.stderr
            cancelled = True
        if cancelled and all(t["state"] in FINAL for t in tasks.values()) and all(
                t["cause"] for t in tasks.values() if t["state"] != "COMPLETED"):
            break
        time.sleep(3)
    return {"state": state, "launch": launch, "docs": docs, "sandbox": sandbox}


def test_status_says_why_each_run_did_not_complete(failed: dict) -> None:
    tasks = tasks_by_run(failed["docs"][-1])
    assert tasks[0]["state"] == "COMPLETED" and tasks[0]["cause"] is None and tasks[0]["error"] is None
    assert tasks[1]["state"] == "FAILED" and tasks[1]["cause"] == "error"
    assert tasks[1]["error"] == "ValueError: lr too large for this run: 0.1"
    assert tasks[2]["state"] == "TIMEOUT" and tasks[2]["cause"] == "timeout"
    assert "DUE TO TIME LIMIT" in tasks[2]["error"]
    assert tasks[3]["state"] == "CANCELLED" and tasks[3]["cause"] == "cancelled"
    assert [tasks[i]["params"] for i in range(4)] == [{"lr": 0.1, "mode": m} for m in ("ok", "raise", "sleep", "hang")]
    assert all(d["remote_calls"] <= 1 for d in failed["docs"])  # one remote call per refresh


def test_the_table_shows_varying_parameters_causes_and_error_lines(failed: dict) -> None:
    out = run_cli(["status", "--once", "--launch", failed["launch"]], state=failed["state"])
    assert out.returncode == 0, out.stderr
    rows = {line.split()[2]: line for line in out.stdout.splitlines() if line[:1].isdigit() and "mode=" in line}
    assert set(rows) == {"mode=ok", "mode=raise", "mode=sleep", "mode=hang"}  # lr does not vary: not shown
    assert "lr=" not in out.stdout
    assert "error" in rows["mode=raise"] and "ValueError: lr too large for this run: 0.1" in rows["mode=raise"]
    assert "time limit" in rows["mode=sleep"] and "cancelled" in rows["mode=hang"]


def test_a_diagnosed_task_is_stored_and_its_log_is_not_read_again(failed: dict) -> None:
    with sqlite3.connect(failed["state"] / "state.db") as db:
        causes = dict(db.execute("SELECT task, cause FROM task_states WHERE launch_id = ?", (failed["launch"],)))
    assert causes == {0: "", 1: "error", 2: "timeout", 3: "cancelled"}
    # Every task is final and diagnosed: a refresh asks the cluster nothing and shows the same.
    again = status_json(failed["state"], failed["launch"])
    assert again["remote_calls"] == 0
    assert tasks_by_run(again)[1]["error"] == "ValueError: lr too large for this run: 0.1"


def test_the_note_is_recorded_and_shown_by_ls_and_status(failed: dict) -> None:
    listed = run_cli(["ls", "--json"], state=failed["state"])
    assert listed.returncode == 0, listed.stderr
    assert [d["note"] for d in json.loads(listed.stdout)["launches"] if d["id"] == failed["launch"]] == [NOTE]
    assert NOTE in run_cli(["ls"], state=failed["state"]).stdout
    assert f"note: {NOTE}" in run_cli(["status", "--once", "--launch", failed["launch"]], state=failed["state"]).stdout
    assert tasks_by_run(failed["docs"][-1])[0]["state"] == "COMPLETED"


def test_report_groups_failures_by_cause_with_gpu_hours_and_next_commands(failed: dict) -> None:
    out = run_cli(["report", failed["launch"], "--json"], state=failed["state"])
    assert out.returncode == 0, out.stderr
    (doc,) = json.loads(out.stdout)["launches"]
    assert doc["note"] == NOTE and doc["counts"]["done"] == 1 and doc["counts"]["failed"] == 3
    failures = {g["cause"]: g["runs"] for g in doc["sweeps"][0]["failures"]}
    assert set(failures) == {"error", "timeout", "cancelled"}
    assert failures["error"][0]["params"] == {"lr": 0.1, "mode": "raise"}
    assert failures["error"][0]["error"] == "ValueError: lr too large for this run: 0.1"
    # the sandbox profile asks for no GPUs: the estimate is in job hours, sacct says no GPU was allocated
    assert doc["gpu_hours"] == 0.0 and doc["job_hours"] > 0 and doc["estimate_gpu_hours"] == 4.0
    assert any(c.endswith(" --err") for c in doc["commands"])
    assert f"atlas-sweeps retry {failed['launch']} --dry-run" in doc["commands"]
    md = run_cli(["report", "--since", "1h", "--markdown"], state=failed["state"])
    assert md.returncode == 0, md.stderr
    assert f"## Launch {failed['launch']}: day2\\_fail.yml on" in md.stdout and "**time limit** (1)" in md.stdout
    assert "| mode=raise | ValueError: lr too large for this run: 0.1 |" in md.stdout
    bad = run_cli(["report", "--since", "yesterday"], state=failed["state"])
    assert bad.returncode == 2 and "--since 'yesterday' is not a duration" in bad.stderr


def test_retry_resubmits_exactly_the_runs_that_did_not_complete_as_a_new_attempt(failed: dict) -> None:
    state, launch = failed["state"], failed["launch"]
    dry = run_cli(["retry", launch, "--dry-run", "--json"], state=state)
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["attempt"] == 2 and plan["runs"] == 3 and [a["array"] for a in plan["arrays"]] == ["1,2,3"]
    assert [r["params"]["mode"] for r in plan["arrays"][0]["runs"]] == ["raise", "sleep", "hang"]
    listed = run_cli(["retry", launch, "--dry-run"], state=state)
    assert "would resubmit 3 runs" in listed.stdout and "--array=1,2,3" in listed.stdout
    refused = run_cli(["retry", launch], state=state)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    done = run_cli(["retry", launch, "--yes", "--json"], state=state)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)["arrays"][0]["job_id"]
    assert job and job.isdigit()
    cancel = run_cli(["cancel", job, "--yes"], state=state)  # the retried sleepers need not wait for their limit
    assert cancel.returncode == 0, cancel.stderr
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        tasks = tasks_by_run(status_json(state, launch))
        if all(t["state"] in FINAL for t in tasks.values()):
            break
        time.sleep(3)
    assert sorted(tasks) == [0, 1, 2, 3]  # one row per run: its latest attempt
    assert tasks[0]["attempts"] == 1 and tasks[0]["state"] == "COMPLETED"
    assert [(tasks[i]["attempts"], tasks[i]["array_job_id"], tasks[i]["task"]) for i in (1, 2, 3)] == [
        (2, job, 1), (2, job, 2), (2, job, 3)]
    assert [tasks[i]["params"]["mode"] for i in (1, 2, 3)] == ["raise", "sleep", "hang"]
    table = run_cli(["status", "--once", "--launch", launch], state=state).stdout
    assert f"{job}_1" in table and "1 (try 2)" in table
    again = json.loads(run_cli(["retry", launch, "--dry-run", "--json"], state=state).stdout)
    assert again["attempt"] == 3 and again["runs"] == 3  # still not completed: retried from the latest attempt


def test_a_completed_launch_has_nothing_to_retry_and_skip_done_leaves_its_runs_out(sandbox, tmp_path: Path) -> None:
    launch = launch_and_wait("day2_ok", profile=sandbox.profile, nodes=2, state=tmp_path)
    nothing = run_cli(["retry", launch, "--yes"], state=tmp_path)
    assert nothing.returncode == 0 and f"nothing to retry: every run of launch {launch}" in nothing.stderr
    # The same runs under the same tags and project: --skip-done leaves them out.
    again = run_cli(["launch", "day2_ok", "--cluster", sandbox.profile, "--skip-done"], state=tmp_path)
    assert again.returncode == 0 and "nothing to launch: every run of day2_ok completed already" in again.stderr
    more = run_cli(["launch", "day2_ok_more", "--cluster", sandbox.profile, "--skip-done", "--json"], state=tmp_path)
    assert more.returncode == 0, more.stderr
    assert "--skip-done leaves out 2 completed run(s)" in more.stderr
    new = json.loads(more.stdout)["launch"]
    waited = run_cli(["status", "--wait", "--json", "--launch", new], state=tmp_path, timeout=600)
    assert waited.returncode == 0, waited.stderr
    assert [t["params"] for t in tasks_by_run(json.loads(waited.stdout)).values()] == [{"lr": 0.3, "mode": "ok"}]
