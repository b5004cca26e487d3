"""``--parallel-per-job`` with the W&B backend on the sandbox: two real ``wandb agent``s in one Slurm task
against the W&B stand-in, each with its share of the task's runs, its own GPU and its own log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.wandb_helpers import WandbWorkspace, make_workspace, with_login
from tests.standin.server import StandinServer


@pytest.fixture(scope="module")
def ws(sandbox: SandboxCluster, wandb_standin: StandinServer,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[WandbWorkspace]:
    yield from with_login(make_workspace(tmp_path_factory.mktemp("wandb-pack"), sandbox, wandb_standin, label="wp"))


def test_two_agents_in_one_task_share_its_runs_and_gpus(ws: WandbWorkspace) -> None:
    (ws.project / "gpu.py").write_text(
        "import os, sys\nprint('cvd=' + os.environ.get('CUDA_VISIBLE_DEVICES', ''), flush=True)\n")
    (ws.project / "gpu.yml").write_text("program: gpu.py\nmethod: grid\nparameters:\n  x:\n    values: [1, 2, 3]\n")
    doc = json.loads(ws.ok("launch", "gpu.yml", "--nodes", "1", "--cluster", "sbw", "--project", ws.wandb_project,
                           "--parallel-per-job", "2", "--gpus", "2", "--json").stdout)
    (sweep,) = doc["sweeps"]
    job = sweep["jobs"][0]["job_id"]
    assert sweep["jobs"][0]["array"] == "0-0"  # one task: three runs for two agents
    states = ws.wait_for_tasks([job], count=1)
    assert states == {f"{job}_0": "COMPLETED|0:0"}
    key = sweep["sweep_id"].split("/")[2]
    runs = ws.standin.runs_of(key)
    assert sorted(r.config["x"] for r in runs) == [1, 2, 3]  # each grid point handed out once (no wandb.init)
    agents = ws.standin.agents_of(key)
    assert len(agents) == 2 and sorted(len(a.run_ids) for a in agents) == [1, 2]  # shares 2 and 1
    logs = [(Path(sweep["log_dir"]) / f"{job}_0.a{lane}.out").read_text() for lane in (0, 1)]
    seen = [{line for line in log.splitlines() if line.startswith("cvd=")} for log in logs]
    assert all(len(s) == 1 for s in seen) and seen[0] != seen[1], seen  # each agent's runs on its own GPU
