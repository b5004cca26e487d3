"""The agent gate: the bash/python lines a W&B agent job runs before its agent, run for real with bash and
this interpreter against the W&B stand-in: a sweep with nothing left ends the job with exit 0 before the
agent, anything else (an open sweep, a check that cannot be made) lets the agent start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from atlas_sweeps.backends.wandb.agent_gate import gate_lines, idle_reason
from tests.standin.server import StandinServer

_GRID = {"method": "grid", "program": "main.py", "parameters": {"x": {"values": [1, 2]}}}


def _run_gate(sweep_path: str, *, base_url: str, tmp_path: Path, key: str | None = None,
              netrc: str | None = None, restarts: int = 0) -> subprocess.CompletedProcess[str]:
    script = "\n".join([*gate_lines(sweep_path, python=f'"{sys.executable}"'), "echo AGENT-STARTS"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    env.update(WANDB_BASE_URL=base_url, NETRC=str(tmp_path / "netrc"), HOME=str(tmp_path),
               SLURM_RESTART_COUNT=str(restarts))
    if key:
        env["WANDB_API_KEY"] = key
    if netrc is not None:
        (tmp_path / "netrc").write_text(netrc)
        (tmp_path / "netrc").chmod(0o600)
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def _sweep(standin: StandinServer, config: dict, *, state: str = "RUNNING") -> str:
    sweep = standin.store.create_sweep(entity=standin.entity, project="gate", config=config, config_yaml="")
    standin.store.set_sweep_state(sweep.id, state)
    return f"{standin.entity}/gate/{sweep.id}"


@pytest.mark.parametrize(("state", "why"), [("FINISHED", "sweep finished"), ("CANCELED", "sweep cancelled"),
                                            ("PAUSED", "sweep paused")])
def test_a_sweep_that_ended_ends_the_job_with_exit_0_before_the_agent(wandb_standin: StandinServer, tmp_path: Path,
                                                                      state: str, why: str) -> None:
    path = _sweep(wandb_standin, _GRID, state=state)
    result = _run_gate(path, base_url=wandb_standin.base_url, tmp_path=tmp_path, key=wandb_standin.api_key)
    assert result.returncode == 0 and "AGENT-STARTS" not in result.stdout
    assert f"W&B sweep {path}: {why}; nothing left to run" in result.stderr


def test_an_open_sweep_starts_the_agent_quietly_with_the_users_netrc_login(wandb_standin: StandinServer,
                                                                            tmp_path: Path) -> None:
    path = _sweep(wandb_standin, _GRID)
    netrc = f"machine {wandb_standin.host}:{wandb_standin.port}\n  login user\n  password {wandb_standin.api_key}\n"
    result = _run_gate(path, base_url=wandb_standin.base_url, tmp_path=tmp_path, netrc=netrc)
    assert result.returncode == 0 and result.stdout.strip() == "AGENT-STARTS" and result.stderr == ""


def test_a_check_that_cannot_be_made_starts_the_agent_anyway(wandb_standin: StandinServer, tmp_path: Path) -> None:
    path = _sweep(wandb_standin, _GRID, state="FINISHED")
    for base_url, key in (("http://127.0.0.1:9", wandb_standin.api_key), (wandb_standin.base_url, None),
                          (wandb_standin.base_url, "x" * 40)):
        result = _run_gate(path, base_url=base_url, tmp_path=tmp_path, key=key)
        assert result.stdout.strip() == "AGENT-STARTS", (base_url, result.stderr)
        assert "could not check W&B sweep" in result.stderr and "starting the agent anyway" in result.stderr
    assert wandb_standin.api_key not in result.stderr


def test_a_requeued_agent_task_starts_its_agent_for_the_run_it_was_on_unless_the_sweep_ended(
        wandb_standin: StandinServer, tmp_path: Path) -> None:
    # Every run of a one-run grid is handed out: a fresh task has nothing to do, a requeued one is owed its run.
    one = {**_GRID, "parameters": {"x": {"values": [1]}}}
    path = _sweep(wandb_standin, one)
    agent = wandb_standin.store.create_agent(sweep_id=path.split("/")[2], host="node")
    assert wandb_standin.store.heartbeat(agent.id, {})[0]["type"] == "run"  # the grid's one run, handed out
    kw = {"base_url": wandb_standin.base_url, "tmp_path": tmp_path, "key": wandb_standin.api_key}
    assert "no runs left (1 of 1 handed out)" in _run_gate(path, **kw).stderr
    assert _run_gate(path, restarts=1, **kw).stdout.strip() == "AGENT-STARTS"
    wandb_standin.store.set_sweep_state(path.split("/")[2], "FINISHED")
    assert "AGENT-STARTS" not in _run_gate(path, restarts=1, **kw).stdout


def test_the_reasons_nothing_is_left() -> None:
    assert idle_reason("RUNNING", 3, 6) == "" and idle_reason("RUNNING", 0, None) == ""
    assert idle_reason("running", 6, 6) == "no runs left (6 of 6 handed out)"
    assert idle_reason("Finished", 1, 6) == "sweep finished"
    assert idle_reason("PENDING", 0, 0) == ""  # not started yet, unbounded: agents may get runs
    assert idle_reason("running", 6, 6, restarted=True) == ""  # W&B hands a preempted run out again
    assert idle_reason("FINISHED", 6, 6, restarted=True) == "sweep finished"


def test_the_wandb_job_script_ends_before_its_agent_when_the_sweep_finished(wandb_standin: StandinServer,
                                                                             tmp_path: Path) -> None:
    from atlas_sweeps.backends.base import CreatedSweep
    from atlas_sweeps.backends.wandb.backend import WandbBackend
    from atlas_sweeps.config.profile import Profile
    from atlas_sweeps.config.templates import load_template
    from atlas_sweeps.launch.jobs import prepare_sweep
    from atlas_sweeps.launch.layout import LaunchLayout
    from tests.unit.test_wandb_backend import _plan, _run_job

    path = _sweep(wandb_standin, _GRID, state="FINISHED")
    prepared = prepare_sweep(_plan(nodes=2)[0], CreatedSweep(sweep_id=path),
                             backend=WandbBackend(base_url=wandb_standin.base_url), profile=Profile(name="t"),
                             layout=LaunchLayout(root=str(tmp_path / "remote"), launch_id="L1"),
                             template=load_template(None), launch_id="L1", project="gate", entity=None,
                             max_array_size=1001)
    netrc = tmp_path / ".netrc"  # the cluster user's own `wandb login` (the job runs with HOME=tmp_path)
    netrc.write_text(f"machine {wandb_standin.host}:{wandb_standin.port}\n  login user\n  password {wandb_standin.api_key}\n")
    netrc.chmod(0o600)
    result = _run_job(tmp_path, prepared.script_text, prepared.files, agent='echo AGENT-STARTS\n', task=0)
    assert result.returncode == 0 and "AGENT-STARTS" not in result.stdout
    assert "sweep finished; nothing left to run, the agent is not started" in result.stderr
    assert "wandb agent exited" not in result.stderr
    assert not list(tmp_path.glob("atlas-sweeps.*")), "the wrapper dir is removed"
