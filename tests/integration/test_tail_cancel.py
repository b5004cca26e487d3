"""``tail`` and ``cancel`` on the sandbox through the real CLI: tail waits while a task is pending, follows
its output as it is written and exits with the job's exit code; cancel leaves no job of a launch in squeue,
and for a W&B launch also stops its sweeps on the W&B stand-in, so no agent starts another run."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_status import CLI, DATA, run_cli, tasks_of
from tests.integration.wandb_helpers import WandbWorkspace, make_workspace, with_login


@pytest.fixture(scope="module")
def launch(sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict:
    state = tmp_path_factory.mktemp("tail-state")
    out = run_cli(["launch", "status_sleep", "--cluster", sandbox.profile, "--nodes", "1", "--json"], state=state)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    return {"state": state, "launch": result["launch"], "job_id": result["sweeps"][0]["jobs"][0]["job_id"],
            "sandbox": sandbox}


def test_tail_follows_a_pending_then_running_task_and_exits_with_its_code(launch: dict) -> None:
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(launch["state"]), "NO_COLOR": "1"}
    proc = subprocess.Popen([CLI, "tail", f"{launch['job_id']}_1", "-n", "100"], cwd=DATA, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    arrivals: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            arrivals.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    code = proc.wait(timeout=90)
    reader.join(5)
    end = time.monotonic()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0, stderr
    assert "PENDING" in stderr and "COMPLETED" in stderr  # said it waits, then the final state
    lines = [text for _, text in arrivals]
    assert lines[0] == "tick 0 run=1" and lines[-1] == "finished run=1"
    # Followed as written: the first line arrived well before the job ended (it runs ~9 s).
    assert end - arrivals[0][0] > 4


def test_tail_of_a_failed_task_exits_with_its_exit_code(launch: dict) -> None:
    out = run_cli(["tail", f"{launch['job_id']}_4", "-n", "2"], state=launch["state"], timeout=120)
    assert out.returncode == 3, out.stderr
    assert out.stdout.splitlines()[-1] == "finished run=4" and "FAILED" in out.stderr


def test_tail_of_an_unknown_job_is_a_clear_error(launch: dict) -> None:
    out = run_cli(["tail", "987654", "--cluster", launch["sandbox"].profile], state=launch["state"])
    assert out.returncode == 2 and "no job 987654" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    bad = run_cli(["tail", "12;ls"], state=launch["state"])
    assert bad.returncode == 2 and "not a job id" in bad.stderr


def test_cancel_asks_then_leaves_no_job_of_the_launch_in_squeue(sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = run_cli(["launch", "status_sleep", "--cluster", sandbox.profile, "--nodes", "1", "--json"], state=state)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    launch_id, job = result["launch"], result["sweeps"][0]["jobs"][0]["job_id"]
    refused = run_cli(["cancel", launch_id], state=state)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = run_cli(["cancel", launch_id, "--yes"], state=state)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = subprocess.run(sandbox.ssh_argv(f"squeue --array --noheader -j {job} -O JobArrayID,State"),
                                capture_output=True, text=True)
        if not listed.stdout.strip():
            break
        time.sleep(1)
    assert not listed.stdout.strip(), listed.stdout
    status = json.loads(run_cli(["status", "--once", "--json", "--launch", launch_id], state=state).stdout)
    states = {t["state"] for s in status["launches"][0]["sweeps"] for t in s["tasks"]}
    assert states == {"CANCELLED"}


@pytest.fixture
def wandb_ws(sandbox, wandb_standin, tmp_path: Path) -> Iterator[WandbWorkspace]:
    yield from with_login(make_workspace(tmp_path, sandbox, wandb_standin, label="cancel"))


def test_cancel_of_a_wandb_launch_stops_its_sweeps_and_agents(wandb_ws: WandbWorkspace) -> None:
    ws = wandb_ws
    shutil.copy(DATA / "status_sleep.py", ws.project / "status_sleep.py")
    (ws.project / "slow.yml").write_text("program: status_sleep.py\nmethod: grid\nparameters:\n"
                                         "  seconds:\n    value: 300\n  run:\n    values: [0, 1, 2, 3, 4, 5]\n")
    doc = json.loads(ws.ok("launch", "slow.yml", "--backend", "wandb", "--nodes", "3", "--cluster", "sbw",
                           "--project", ws.wandb_project, "--json").stdout)
    (sweep,) = doc["sweeps"]
    key = sweep["sweep_id"].split("/")[2]
    jobs = [j["job_id"] for j in sweep["jobs"]]
    # Cancel while the agents' first runs are under way (each would take 5 minutes; the program does not
    # call wandb.init, so its agent's heartbeat is what says it runs).
    ws.standin.wait_until(lambda: any(r.agent_state == "running" for r in ws.standin.runs_of(key)), timeout=120)
    assert ws.standin.sweep(key).state == "RUNNING"
    handed_out = ws.standin.sweep(key).handed_out

    done = ws.cli("cancel", doc["launch"], "--yes")
    assert done.returncode == 0, done.stderr
    assert f"stopped W&B sweep {sweep['sweep_id']}" in done.stderr
    assert ws.standin.sweep(key).state == "FINISHED"  # what WandbBackend.stop sets: no new runs start

    def gone() -> bool:
        listed = ws.slurm("squeue", "--noheader", "--array", "-j", ",".join(jobs), "-O", "JobArrayID,State")
        agents = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        return not listed.strip() and not any("wandb agent" in line and key in line for line in agents.splitlines())

    ws.standin.wait_until(gone, timeout=60, interval=1)
    assert ws.standin.sweep(key).handed_out == handed_out < 6
    states = ws.sacct(jobs)
    assert states and all(v.startswith("CANCELLED") for k, v in states.items()), states


def test_a_cancelled_pending_task_ends_cancelled_and_tail_says_it_never_started(sandbox, tmp_path: Path) -> None:
    """Issue 10: a task cancelled while pending leaves squeue at once and sacct has no record of it; status
    shows it CANCELLED (not pending for good), --wait ends, and tail says why there is no log."""
    state = tmp_path / "state"
    out = run_cli(["launch", "status_sleep", "--cluster", sandbox.profile, "--nodes", "1", "--json"], state=state)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    launch_id, job = result["launch"], result["sweeps"][0]["jobs"][0]["job_id"]
    first = json.loads(run_cli(["status", "--once", "--json", "--launch", launch_id], state=state).stdout)
    assert tasks_of(first)[f"{job}_3"]["state"] == "PENDING"  # one task at a time: 3 waits ~27 s
    done = run_cli(["cancel", f"{job}_3", "--yes"], state=state)
    assert done.returncode == 0, done.stderr
    assert "(1 unfinished job)" in done.stderr
    gone = subprocess.run(sandbox.ssh_argv(f"squeue --array --states=all --noheader -j {job}_3 -O JobID"),
                          capture_output=True, text=True)
    assert not gone.stdout.strip()  # the cluster no longer lists it: only the recorded cancel knows
    now = tasks_of(json.loads(run_cli(["status", "--once", "--json", "--launch", launch_id], state=state).stdout))
    assert (now[f"{job}_3"]["state"], now[f"{job}_3"]["exit_code"]) == ("CANCELLED", None)
    assert now[f"{job}_4"]["state"] == "PENDING"  # the rest of the array goes on
    waited = run_cli(["status", "--wait", "--timeout", "150", "--json", "--launch", launch_id], state=state,
                     timeout=200)
    assert waited.returncode == 1, waited.stderr  # finished, not all completed
    final = tasks_of(json.loads(waited.stdout))
    assert [final[f"{job}_{i}"]["state"] for i in range(5)] == ["COMPLETED"] * 3 + ["CANCELLED", "FAILED"]
    tail = run_cli(["tail", f"{job}_3"], state=state)
    assert tail.returncode == 1, tail.stderr
    assert f"job {job}_3 was cancelled before it started" in tail.stderr
    assert len(tail.stderr.strip().splitlines()) == 1 and not tail.stdout


def test_cancel_of_an_absurd_task_range_is_refused_in_one_line(launch: dict) -> None:
    out = run_cli(["cancel", f"{launch['job_id']}_[0-9999999999]", "--yes"], state=launch["state"], timeout=30)
    assert out.returncode == 2, out.stderr
    assert "beyond the largest Slurm allows" in out.stderr and len(out.stderr.strip().splitlines()) <= 2
    assert "MemoryError" not in out.stderr and "Traceback" not in out.stderr


def test_tail_shows_a_progress_bar_as_it_is_drawn_and_a_finished_one_as_its_last_state(sandbox, tmp_path: Path) -> None:
    """Issue 9: a bar drawn with carriage returns (as tqdm does) reaches the terminal redraw by redraw while
    the job runs, each ending with \\r as the program wrote it; tail of the finished log shows its last state."""
    bar = "for i in $(seq 0 100); do printf '\\r%d%%' $i; sleep 0.03; done"
    job = f"printf 'start\\n'; sleep 4; {bar}; printf '\\n'; printf 'done\\n'"
    submitted = subprocess.run(sandbox.ssh_argv(f"sbatch --parsable --output=tail-bar-%j.out --wrap {shlex.quote(job)}"),
                               capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1"}
    tail = [CLI, "tail", job_id, "--cluster", sandbox.profile, "-n", "10"]
    try:
        followed = subprocess.run(tail, cwd=DATA, env=env, capture_output=True, timeout=120)
        assert followed.returncode == 0, followed.stderr
        start, drawn, done, rest = followed.stdout.decode().split("\n")
        assert (start, done, rest) == ("start", "done", "")
        states = drawn.split("\r")
        assert states[-1] == "100%" and len(states) > 20 and "\r50%\r" in drawn  # redraws passed on as drawn
        finished = subprocess.run(tail, cwd=DATA, env=env, capture_output=True, timeout=120)
        assert finished.returncode == 0, finished.stderr
        assert finished.stdout == b"start\n100%\ndone\n"
    finally:
        subprocess.run(sandbox.ssh_argv(f"rm -f tail-bar-{job_id}.out"), capture_output=True, timeout=60)
