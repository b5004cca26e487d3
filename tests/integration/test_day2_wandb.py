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


FLAKY = """\
# Logs valid_loss = hp1 online; hp1=2 fails (exit 3) the first time it runs for this token, then succeeds.
import argparse, os, sys
import wandb
parser = argparse.ArgumentParser()
parser.add_argument("--hp1", type=float)
parser.add_argument("--token")
args, _ = parser.parse_known_args()
run = wandb.init()
marker = os.path.expanduser(f"~/.atlas-flaky-{args.token}")
first = args.hp1 == 2 and not os.path.exists(marker)
if first:
    open(marker, "w").close()
run.log({"valid_loss": args.hp1})
code = 3 if first else 0
print(f"flaky hp1={args.hp1} exit={code}", flush=True)
run.finish(exit_code=code)
sys.exit(code)
"""


def test_retry_runs_the_failed_config_again_as_a_run_of_the_same_sweep(ws: WandbWorkspace) -> None:
    import secrets

    (ws.project / "flaky.py").write_text(FLAKY)
    (ws.project / "flaky.yml").write_text(
        "program: flaky.py\nmethod: grid\nparameters:\n  token:\n    value: t" + secrets.token_hex(4)
        + "\n  subtests:\n    flaky,dev_tests:\n      hp1:\n        values: [1, 2, 3]\n")
    doc = _launch(ws, "flaky.yml")
    _wait(ws, doc, 2)
    (sweep,) = doc["sweeps"]
    sweep_key = sweep["sweep_id"].split("/")[2]
    (failed,) = [r for r in ws.standin.runs_of(sweep_key) if r.state == "failed"]
    assert failed.config["hp1"] == 2
    launch = doc["launch"]
    dry = json.loads(ws.ok("retry", launch, "--dry-run", "--json").stdout)
    assert dry["attempt"] == 2 and dry["runs"] == 1
    (array,) = dry["arrays"]
    (run,) = array["runs"]
    assert (run["run_id"], run["state"], run["params"]["hp1"]) == (failed.id, "failed", 2)
    assert run["params"]["token"] == failed.config["token"]
    assert array["array"] == "0-0" and array["sweep_id"] == sweep["sweep_id"]
    text = ws.ok("retry", launch, "--dry-run").stdout
    assert f"would resubmit 1 runs of launch {launch} as attempt 2" in text and f"run {failed.id} (failed)" in text
    refused = ws.cli("retry", launch)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    done = json.loads(ws.ok("retry", launch, "--yes", "--json").stdout)
    job = done["arrays"][0]["job_id"]
    assert job and job.isdigit()
    ws.wait_for_tasks([job], count=1)
    runs = ws.standin.runs_of(sweep_key)
    again = [r for r in runs if r.id != failed.id and r.config.get("hp1") == 2]
    assert len(runs) == 4 and len(again) == 1  # the retried run belongs to the same sweep
    assert again[0].state == "finished" and again[0].tags == ["flaky", "dev_tests"] and again[0].group == sweep["name"]
    # Its grid point is done now: nothing left to retry; status shows the retry's array after the agents.
    nothing = ws.cli("retry", launch, "--yes")
    assert nothing.returncode == 0 and "nothing to retry" in nothing.stderr
    tasks = json.loads(ws.ok("status", "--once", "--json", "--launch", launch).stdout)["launches"][0]["sweeps"][0]["tasks"]
    assert [(t["array_job_id"], t["run"], t["state"]) for t in tasks][-1] == (job, 2, "COMPLETED")
