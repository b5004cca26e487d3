"""Preemption and time limits do not lose runs, on the sandbox through the real CLI: a program that checkpoints
every second to a file named by its run id (data/ckpt_train.py) is (a) requeued with ``scontrol requeue`` while
it runs, as a preemption does, and (b) signalled before a two-minute time limit; each run completes once,
resumed from its checkpoint, and ``status`` says the task was requeued once.

A requeued job waits about two minutes (its BeginTime) before it may start again; the tests move that to now
with ``scontrol update StartTime=now`` as root, the cluster administrator, once they saw it held for it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CLI = str(Path(__file__).parents[2] / ".venv" / "bin" / "atlas-sweeps")
REMOTE_DIR = "/home/atlas/atlas-sweeps"  # the sandbox profile's remote_dir


def run_cli(args: list[str], *, state: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATLAS_SWEEPS_STATE_DIR": str(state), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([CLI, *args], cwd=DATA, env=env, capture_output=True, text=True, timeout=timeout)


def the_task(state: Path, launch: str) -> dict:
    out = run_cli(["status", "--once", "--json", "--launch", launch], state=state)
    doc = json.loads(out.stdout)
    assert out.returncode == 0, (doc.get("error"), out.stderr)
    (task,) = [t for lc in doc["launches"] for s in lc["sweeps"] for t in s["tasks"]]
    return task


def scontrol(sandbox, *args: str) -> str:
    done = subprocess.run(["scontrol", *args], env=sandbox.slurm_env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def on_cluster(sandbox, command: str) -> str:
    return subprocess.run(sandbox.ssh_argv(command), capture_output=True, text=True, timeout=60, check=True).stdout


def start_now_if_held(sandbox, job_id: str) -> bool:
    """A requeued task held for its BeginTime starts now; True once it was."""
    shown = scontrol(sandbox, "show", "job", job_id)
    if "JobState=PENDING" in shown and "Reason=BeginTime" in shown:
        scontrol(sandbox, "update", f"jobid={job_id}", "StartTime=now")
        return True
    return False


@pytest.fixture(scope="module")
def preempted(sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two launches of ckpt_train.yml watched together until final: one requeued by hand after a few steps, one
    whose 2-minute limit comes with the signal 30 s before it."""
    state = tmp_path_factory.mktemp("preempt-state")
    launches = {}
    for name, sweep, extra in (("requeue", "ckpt_train", []), ("timeout", "ckpt_train_long",
                                                                ["--time", "2", "--signal-grace", "30"])):
        out = run_cli(["launch", sweep, "--cluster", sandbox.profile, "--json", *extra], state=state)
        assert out.returncode == 0, out.stderr
        launches[name] = json.loads(out.stdout)["launch"]
    seen: dict[str, list[dict]] = {name: [] for name in launches}
    requeued_by_hand = False
    released: set[str] = set()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        for name, launch in launches.items():
            task = the_task(state, launch)
            seen[name].append(task)
            if (name == "requeue" and not requeued_by_hand and task["state"] == "RUNNING"
                    and task["log_line"].startswith("step ") and int(task["log_line"].split()[1]) >= 5):
                scontrol(sandbox, "requeue", task["job_id"])
                requeued_by_hand = True
            if name not in released and task["requeues"] and start_now_if_held(sandbox, task["job_id"]):
                released.add(name)
        if all(s[-1]["state"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") for s in seen.values()):
            break
        time.sleep(3)
    return {"state": state, "launches": launches, "seen": seen, "sandbox": sandbox}


SWEEPS = {"requeue": "ckpt_train", "timeout": "ckpt_train_long"}
STEPS = {"requeue": 25, "timeout": 110}


def checkpoint(sandbox, launch: str, sweep: str) -> dict:
    path = f"{REMOTE_DIR}/wandb/{launch}/{sweep}/checkpoints/{launch}-{sweep}-0.json"  # named by the run id
    return json.loads(on_cluster(sandbox, f"cat {path}"))


def log(sandbox, launch: str, sweep: str, stream: str) -> str:
    return on_cluster(sandbox, f"cat {REMOTE_DIR}/logs/{launch}/{sweep}/*.{stream}")


@pytest.mark.parametrize("name", ["requeue", "timeout"])
def test_the_run_completes_once_resumed_from_its_checkpoint(preempted: dict, name: str) -> None:
    sandbox, launch = preempted["sandbox"], preempted["launches"][name]
    final = preempted["seen"][name][-1]
    assert (final["state"], final["exit_code"], final["requeues"]) == ("COMPLETED", 0, 1), final
    steps = STEPS[name]
    ckpt = checkpoint(sandbox, launch, SWEEPS[name])
    assert ckpt["step"] == steps
    first, second = ckpt["starts"]  # two attempts: the second began where the first stopped, not at 0
    assert first == 0 and second >= 5
    out = log(sandbox, launch, SWEEPS[name], "out")  # --open-mode=append: both attempts' lines in one log
    assert "starts at step 0 (restarts: 0)" in out and f"starts at step {second} (restarts: 1)" in out
    assert out.count(f"finished at step {steps}") == 1


def test_the_time_limit_signal_checkpoints_and_requeues_before_the_limit(preempted: dict) -> None:
    sandbox, launch = preempted["sandbox"], preempted["launches"]["timeout"]
    err = log(sandbox, launch, "ckpt_train_long", "err")
    assert "SIGUSR1 from Slurm (time limit in 30 s, or preemption): SIGUSR1 to the run to checkpoint" in err
    assert "requeueing task" in err and "(requeue 1 of at most 3)" in err
    assert "DUE TO TIME LIMIT" not in err  # it never reached the limit
    out = log(sandbox, launch, "ckpt_train_long", "out")
    assert "checkpointed at step" in out and "on signal 10" in out


def test_status_shows_the_requeue_while_it_happens(preempted: dict) -> None:
    states = {t["state"] for t in preempted["seen"]["requeue"] if t["requeues"] == 1}
    assert "COMPLETED" in states and states & {"PENDING", "RUNNING"}
    out = run_cli(["status", "--once", "--launch", preempted["launches"]["requeue"]], state=preempted["state"])
    assert "COMPLETED (requeued 1)" in out.stdout


# -- (c) the W&B backend: the agent's run checkpoints, the task requeues, the same run finishes -------------
@pytest.fixture(scope="module")
def wandb_ws(sandbox, wandb_standin, tmp_path_factory: pytest.TempPathFactory):
    from tests.integration.wandb_helpers import make_workspace, with_login

    yield from with_login(make_workspace(tmp_path_factory.mktemp("wandb-preempt"), sandbox, wandb_standin,
                                         label="preempt"))


def test_a_requeued_agent_task_finishes_its_run_once_at_the_standin(wandb_ws) -> None:
    ws = wandb_ws
    (ws.project / "ckpt_train.py").write_text((DATA / "ckpt_train.py").read_text())
    (ws.project / "wandb_ckpt.yml").write_text("program: ckpt_train.py\nmethod: grid\nparameters:\n"
                                               "  steps:\n    values: [30]\n  wandb:\n    value: true\n")
    doc = json.loads(ws.ok("launch", "wandb_ckpt.yml", "--cluster", "sbw", "--project", ws.wandb_project,
                           "--json").stdout)
    (sweep,) = doc["sweeps"]
    sweep_key, job = sweep["sweep_id"].split("/")[2], f"{sweep['jobs'][0]['job_id']}_0"
    folder = Path(doc["snapshot"]).parents[1] / "wandb" / doc["launch"] / sweep["name"] / "checkpoints"
    deadline, signalled, released = time.monotonic() + 420, False, False
    while time.monotonic() < deadline:
        files = list(folder.glob("*.json")) if folder.is_dir() else []
        if not signalled and files and json.loads(files[0].read_text())["step"] >= 5:
            ws.slurm("scancel", "--signal=USR1", "--batch", job)  # what --signal=B:USR1@grace does, sooner
            signalled = True
        if signalled and not released:
            shown = ws.slurm("scontrol", "show", "job", job)
            if "Restarts=1" in shown and "Reason=BeginTime" in shown:
                ws.slurm("scontrol", "update", f"jobid={job}", "StartTime=now")
                released = True
        runs = ws.standin.runs_of(sweep_key)
        if released and runs and runs[0].state == "finished" and ws.sacct([job]).get(job, "").startswith("COMPLETED"):
            break
        time.sleep(2)
    (run,) = ws.standin.runs_of(sweep_key)  # one run: handed out again as the same run, not a second one
    assert (run.state, run.resumes, run.config["steps"]) == ("finished", 1, 30)
    ckpt = json.loads((folder / f"{run.id}.json").read_text())
    assert ckpt["step"] == 30 and ckpt["starts"][0] == 0 and ckpt["starts"][1] >= 5
    assert ws.sacct([job])[job] == "COMPLETED|0:0"
    err = (Path(sweep["log_dir"]) / f"{job}.err").read_text()
    assert "SIGUSR1 to the run to checkpoint" in err and "requeueing task" in err
    assert "run(s) failed" not in err  # the interrupted attempt's exit code does not fail the job
    out = (Path(sweep["log_dir"]) / f"{job}.out").read_text()
    assert f"run {run.id} starts at step 0" in out and f"run {run.id} starts at step {ckpt['starts'][1]}" in out
    task = json.loads(ws.ok("status", "--once", "--json", "--launch", doc["launch"]).stdout)
    (row,) = [t for lc in task["launches"] for s in lc["sweeps"] for t in s["tasks"]]
    assert (row["state"], row["requeues"]) == ("COMPLETED", 1)
