"""Day 2 on the W&B backend for real: Slurm jobs on the sandbox run ``wandb agent`` against the W&B stand-in;
``report`` names each sweep's best run by its metric from W&B, and ``launch --skip-done`` counts the grid
points that finished runs with the same tags ran as done: the new sweep gets them as prior runs and its
agents run only the rest."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.wandb_helpers import WandbWorkspace, make_workspace, with_login
from tests.standin.server import StandinServer

GRID = """\
# main.py logs valid_loss; hp1=2 with hp2=5 is the least
program: main.py
method: grid
metric:
  name: valid_loss
  goal: minimize
parameters:
  hp2:
    value: 5
  steps:
    value: 2
  subtests:
    day2_wb,dev_tests:
      hp1:
        values: [{values}]
"""


@pytest.fixture(scope="module")
def ws(sandbox: SandboxCluster, wandb_standin: StandinServer,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[WandbWorkspace]:
    yield from with_login(make_workspace(tmp_path_factory.mktemp("day2-wandb"), sandbox, wandb_standin, label="d2"))


def _launch(ws: WandbWorkspace, config: str, *extra: str) -> dict:
    return json.loads(ws.ok("launch", config, "--backend", "wandb", "--cluster", "sbw", "--nodes", "2",
                            "--project", ws.wandb_project, "--json", *extra).stdout)


def _wait(ws: WandbWorkspace, doc: dict, tasks: int) -> None:
    ws.wait_for_tasks([j["job_id"] for s in doc["sweeps"] for j in s["jobs"]], count=tasks)


@pytest.fixture(scope="module")
def first(ws: WandbWorkspace) -> dict:
    """The three-point grid run to the end by two agents."""
    (ws.project / "day2_wb.yml").write_text(GRID.replace("{values}", "1, 2, 3"))
    (ws.project / "day2_wb_more.yml").write_text(GRID.replace("{values}", "1, 2, 3, 4"))
    doc = _launch(ws, "day2_wb.yml")
    _wait(ws, doc, 2)
    return doc


def test_report_names_the_best_run_from_wandb(ws: WandbWorkspace, first: dict) -> None:
    (sweep,) = first["sweeps"]
    runs = ws.standin.runs_of(sweep["sweep_id"].split("/")[2])
    assert sorted(r.config["hp1"] for r in runs) == [1, 2, 3] and {r.state for r in runs} == {"finished"}
    doc = json.loads(ws.ok("report", first["launch"], "--json").stdout)
    best = doc["launches"][0]["sweeps"][0]["best"]
    (winner,) = [r for r in runs if r.config["hp1"] == 2]
    assert (best["metric"], best["run_id"], best["params"]["hp1"], best["logged"]) == ("valid_loss", winner.id, 2, 3)
    assert best["value"] == pytest.approx(winner.summary["valid_loss"])
    md = ws.ok("report", first["launch"], "--markdown").stdout
    assert f"- best: valid\\_loss (minimize): {best['value']:.6g}, hp1=2 \\[{winner.id}\\] (of 3 that logged it)" in md


def test_skip_done_gives_the_new_sweep_the_finished_runs_as_prior_runs(ws: WandbWorkspace, first: dict) -> None:
    done = {r.id for r in ws.standin.runs_of(first["sweeps"][0]["sweep_id"].split("/")[2])}
    dry = ws.cli("launch", "day2_wb_more.yml", "--backend", "wandb", "--cluster", "sbw", "--nodes", "2",
                 "--project", ws.wandb_project, "--skip-done", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert "--skip-done leaves out 3 completed run(s)" in dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["totals"]["runs"] == 1 and plan["sweeps"][0]["runs"] == 1
    sweeps = len(ws.standin.sweeps)
    text = ws.cli("launch", "day2_wb_more.yml", "--backend", "wandb", "--cluster", "sbw", "--project",
                  ws.wandb_project, "--skip-done", "--dry-run")
    assert "num runs: 1" in text.stdout and len(ws.standin.sweeps) == sweeps  # a dry run creates nothing
    doc = _launch(ws, "day2_wb_more.yml", "--skip-done")
    (sweep,) = doc["sweeps"]
    assert sweep["runs"] == 1 and len(sweep["jobs"]) == 1 and sweep["jobs"][0]["array"] == "0-0"
    created = ws.standin.sweep(sweep["sweep_id"].split("/")[2])
    assert set(created.prior_runs) == done
    _wait(ws, doc, 1)
    assert [r.config["hp1"] for r in ws.standin.runs_of(created.id)] == [4]  # only the new grid point ran
    # Everything done now: nothing to launch.
    again = ws.cli("launch", "day2_wb_more.yml", "--backend", "wandb", "--cluster", "sbw", "--project",
                   ws.wandb_project, "--skip-done")
    assert again.returncode == 0 and "nothing to launch: every run of day2_wb_more.yml completed already" in again.stderr
