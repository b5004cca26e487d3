"""Sweeps that cancel their idle jobs, for real: W&B agent jobs on the sandbox cluster against the W&B stand-in.
A sweep with more agent tasks than can run at once (a throttle of 1) is stopped the way a
user stops it in the UI (``wandb sweep --stop``) while one runs; ``status --no-reap`` leaves the others pending,
then one ``status --once`` cancels them in its refresh and the running one finishes its current run. A second
launch's agent job starts after its sweep was stopped: the gate ends it with exit 0 without starting an agent."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.wandb_helpers import ROOT, WandbWorkspace, make_workspace, with_login
from tests.standin.server import StandinServer

RUN_SECONDS = 40  # long enough for the stop and two refreshes while the first run is running


@pytest.fixture(scope="module")
def ws(sandbox: SandboxCluster, wandb_standin: StandinServer,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[WandbWorkspace]:
    ws = make_workspace(tmp_path_factory.mktemp("reap"), sandbox, wandb_standin, label="reap")
    clusters = Path(ws.env["XDG_CONFIG_HOME"]) / "atlas-sweeps" / "clusters"
    text = (clusters / "sbw.toml").read_text()
    # Tasks that start 20 s after the launch: the gate's sweep is stopped before they do, and the reaped
    # launch's array is throttled to one task at a time meanwhile (the sandbox's partition oversubscribes its
    # CPUs, so no resource request would keep the other tasks queued).
    (clusters / "sbw-late.toml").write_text(re.sub(r"(?m)^(cpus_per_task\s*=.*)$", '\\1\nextra = ["--begin=now+20"]', text))
    (ws.project / "slow.py").write_text(
        f"import sys, time\nprint('RUN-START', sys.argv[1:], flush=True)\ntime.sleep({RUN_SECONDS})\n"
        "print('RUN-END', flush=True)\n")
    (ws.project / "reap.yml").write_text("program: slow.py\nmethod: grid\nparameters:\n  x:\n    values: [1, 2, 3, 4, 5, 6]\n")
    (ws.project / "late.yml").write_text("program: slow.py\nmethod: grid\nparameters:\n  x:\n    values: [1, 2]\n")
    yield from with_login(ws)


def _stop_sweep(ws: WandbWorkspace, sweep_path: str) -> None:
    """``wandb sweep --stop``, as a user does from their laptop (or the UI's stop button)."""
    env = {**ws.env, "WANDB_BASE_URL": ws.standin.base_url, "WANDB_API_KEY": ws.standin.api_key}
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "wandb"), "sweep", "--stop", sweep_path], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert ws.standin.sweep(sweep_path.split("/")[2]).state == "FINISHED"


def _queue(ws: WandbWorkspace, job_id: str) -> dict[str, str]:
    out = ws.slurm("squeue", "--array", "--noheader", "-j", job_id, "-o", "%i %T")
    return dict(line.split() for line in out.splitlines() if line.strip())


def _status(ws: WandbWorkspace, launch: str, *extra: str) -> dict:
    """One refresh of ``launch``; again when it failed for a dropped connection (other tests restart the
    sandbox's sshd), since a refresh that never ran cannot have reaped anything."""
    for _attempt in range(3):
        result = ws.cli("status", "--once", "--json", "--launch", launch, *extra)
        if result.returncode == 0 or "connection may have dropped" not in result.stdout + result.stderr:
            break
        time.sleep(2)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)["launches"][0]


@dataclass
class Reaped:
    doc: dict
    job: str
    running: str  # the task that was running when the sweep stopped
    before: dict[str, str]  # squeue after `status --no-reap`
    no_reap: dict
    reap: dict
    after: dict[str, str]  # squeue right after the reaping refresh


@pytest.fixture(scope="module")
def late(ws: WandbWorkspace) -> dict:
    """A one-task launch whose task may start only 20 s after submission; its sweep is stopped at once."""
    doc = json.loads(ws.ok("launch", "late.yml", "--nodes", "1", "--cluster", "sbw-late", "--project",
                           ws.wandb_project, "--json").stdout)
    _stop_sweep(ws, doc["sweeps"][0]["sweep_id"])
    return doc


@pytest.fixture(scope="module")
def reaped(ws: WandbWorkspace, late: dict) -> Reaped:
    doc = json.loads(ws.ok("launch", "reap.yml", "--nodes", "4", "--cluster", "sbw-late", "--project",
                           ws.wandb_project, "--json").stdout)
    sweep = doc["sweeps"][0]
    job = sweep["jobs"][0]["job_id"]
    ws.slurm("scontrol", "update", f"JobId={job}", "ArrayTaskThrottle=1")
    assert "%1" in ws.slurm("squeue", "--noheader", "-j", job, "-o", "%i")
    deadline = time.monotonic() + 300
    running: list[str] = []
    while time.monotonic() < deadline:  # the shared cluster may be busy with other tests' jobs
        queue = _queue(ws, job)
        running = [k for k, v in queue.items() if v == "RUNNING"]
        if running and (Path(sweep["log_dir"]) / f"{running[0]}.out").exists() and \
                "RUN-START" in (Path(sweep["log_dir"]) / f"{running[0]}.out").read_text():
            break
        time.sleep(1)
    assert len(running) == 1, f"no task of {job} started its run: {_queue(ws, job)}"
    _stop_sweep(ws, sweep["sweep_id"])
    no_reap = _status(ws, doc["launch"], "--no-reap")
    before = _queue(ws, job)
    reap = _status(ws, doc["launch"])
    return Reaped(doc=doc, job=job, running=running[0], before=before, no_reap=no_reap, reap=reap,
                  after=_queue(ws, job))


def _tasks(launch: dict) -> dict[str, dict]:
    return {t["job_id"]: t for s in launch["sweeps"] for t in s["tasks"]}


def test_no_reap_leaves_the_idle_sweeps_pending_tasks_queued(reaped: Reaped) -> None:
    assert sorted(reaped.before.values()) == ["PENDING", "PENDING", "PENDING", "RUNNING"]
    assert {t["state"] for k, t in _tasks(reaped.no_reap).items() if k != reaped.running} == {"PENDING"}
    assert not any("reaped" in n for n in reaped.no_reap["notes"])


def test_one_refresh_cancels_the_pending_tasks_of_a_stopped_sweep_and_says_so(reaped: Reaped) -> None:
    assert reaped.after == {reaped.running: "RUNNING"}  # every pending task is gone from the queue
    tasks = _tasks(reaped.reap)
    others = {k: t for k, t in tasks.items() if k != reaped.running}
    assert len(others) == 3
    for task in others.values():
        assert (task["state"], task["cause"], task["category"]) == ("CANCELLED", "reaped", "done")
        assert task["error"] == "reaped: sweep finished"
    assert tasks[reaped.running]["state"] == "RUNNING" and tasks[reaped.running]["cause"] is None
    assert any(n.startswith("reaped 3 pending agent task(s) of sweep reap: sweep finished") for n in reaped.reap["notes"])


def test_the_running_task_finishes_its_run_and_nothing_counts_as_failed(ws: WandbWorkspace, reaped: Reaped) -> None:
    states = ws.wait_for_tasks([reaped.job], count=1, timeout=RUN_SECONDS + 120)
    assert states == {reaped.running: "COMPLETED|0:0"}
    log = (Path(reaped.doc["sweeps"][0]["log_dir"]) / f"{reaped.running}.out").read_text()
    assert log.count("RUN-START") == 1 and "RUN-END" in log  # its current run, and no other
    # The reaped tasks never started: sacct keeps them as the array's pending remainder, cancelled.
    rest = {k: v for k, v in ws.sacct([reaped.job]).items() if k != reaped.running}
    assert len(rest) == 1 and next(iter(rest.values())).startswith("CANCELLED"), rest
    launch = _status(ws, reaped.doc["launch"])
    assert launch["finished"] and launch["counts"]["done"] == launch["counts"]["total"] == 4
    assert {t["cause"] for k, t in _tasks(launch).items() if k != reaped.running} == {"reaped"}  # still, from sacct
    report = json.loads(ws.ok("report", reaped.doc["launch"], "--json").stdout)
    text = json.dumps(report)
    assert '"failures": []' in text and '"failed": 0' in text


def test_an_agent_job_starting_after_its_sweep_stopped_exits_0_without_an_agent(ws: WandbWorkspace,
                                                                               late: dict) -> None:
    sweep = late["sweeps"][0]
    job = sweep["jobs"][0]["job_id"]
    states = ws.wait_for_tasks([job], count=1, timeout=240)
    assert states == {f"{job}_0": "COMPLETED|0:0"}
    err = (Path(sweep["log_dir"]) / f"{job}_0.err").read_text()
    assert f"W&B sweep {sweep['sweep_id']}: sweep finished; nothing left to run, the agent is not started" in err
    assert "wandb agent exited" not in err
    sweep_key = sweep["sweep_id"].split("/")[2]
    assert ws.standin.agents_of(sweep_key) == [] and ws.standin.runs_of(sweep_key) == []
    elapsed = ws.slurm("sacct", "-X", "-n", "-P", "-o", "ElapsedRaw", "-j", f"{job}_0").split()
    assert elapsed and int(elapsed[0]) < 15, elapsed
