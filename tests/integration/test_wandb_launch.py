"""``launch --backend wandb`` for real: the CLI as a subprocess, the sandbox cluster over SSH, Slurm jobs that
run the real ``wandb agent`` against the W&B stand-in with the cluster user's own ``~/.netrc`` login.
Two launches (composite_grid, and a sweep whose program exits 3) run concurrently and are shared by the
assertions; the preflight failures need no jobs at all."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.wandb_helpers import WandbWorkspace, make_workspace, with_login
from tests.standin.server import StandinServer


@pytest.fixture(scope="module")
def ws(sandbox: SandboxCluster, wandb_standin: StandinServer,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[WandbWorkspace]:
    yield from with_login(make_workspace(tmp_path_factory.mktemp("wandb"), sandbox, wandb_standin, label="wb"))


@dataclass
class Launched:
    grid: dict
    failing: dict
    states: dict[str, str]
    seconds: float


@pytest.fixture(scope="module")
def launched(ws: WandbWorkspace) -> Launched:
    """composite_grid with 2 agents per sweep, and a one-run sweep whose program exits 3, submitted together;
    waits until every task has ended."""
    (ws.project / "fail.py").write_text("import sys\nprint('failing on purpose')\nsys.exit(3)\n")
    (ws.project / "failing.yml").write_text("program: fail.py\nmethod: grid\nparameters:\n  x:\n    values: [1]\n")
    start = time.monotonic()
    grid = json.loads(ws.ok("launch", "composite_grid.yml", "--backend", "wandb", "--nodes", "2", "--cluster", "sbw",
                            "--project", ws.wandb_project, "--json").stdout)
    failing = json.loads(ws.ok("launch", "failing.yml", "--nodes", "2", "--cluster", "sbw",
                               "--project", ws.wandb_project, "--json").stdout)
    job_ids = [j["job_id"] for doc in (grid, failing) for s in doc["sweeps"] for j in s["jobs"]]
    states = ws.wait_for_tasks(job_ids, count=5)
    return Launched(grid=grid, failing=failing, states=states, seconds=time.monotonic() - start)


def _sweep_key(doc_sweep: dict) -> str:
    return doc_sweep["sweep_id"].split("/")[2]


def test_two_sweeps_are_created_with_the_merged_parameters(ws: WandbWorkspace, launched: Launched) -> None:
    sweeps = launched.grid["sweeps"]
    assert [s["name"] for s in sweeps] == ["composite_grid_iso_tests-hp1_iso", "composite_grid_iso_tests-hp2_iso"]
    shared = {"seed": {"value": 42}, "wdb_entity": {"value": "socialiq"}, "tags": {"value": "test"}}
    expected = [{**shared, "hp1": {"values": [1, 2, 3]}, "hp2": {"value": 4}},
                {**shared, "hp1": {"value": 1}, "hp2": {"values": [4, 5, 6]}}]
    for doc, params in zip(sweeps, expected, strict=True):
        entity, project, sweep_id = doc["sweep_id"].split("/")
        assert (entity, project) == (ws.standin.entity, ws.wandb_project)
        sweep = ws.standin.sweep(sweep_id)
        assert sweep.config["parameters"] == params and sweep.config["program"] == "main.py"
        assert doc["url"].endswith(f"/{entity}/{project}/sweeps/{sweep_id}")


def test_agents_in_slurm_jobs_run_every_grid_point_once_with_tags(ws: WandbWorkspace, launched: Launched) -> None:
    expected = {"composite_grid_iso_tests-hp1_iso": ({(1, 4), (2, 4), (3, 4)}, ["iso_tests", "hp1_iso"]),
                "composite_grid_iso_tests-hp2_iso": ({(1, 4), (1, 5), (1, 6)}, ["iso_tests", "hp2_iso"])}
    for doc in launched.grid["sweeps"]:
        points, tags = expected[doc["name"]]
        runs = ws.standin.runs_of(_sweep_key(doc))
        assert sorted((r.config["hp1"], r.config["hp2"]) for r in runs) == sorted(points)
        assert {r.state for r in runs} == {"finished"}
        for run in runs:
            assert run.tags == tags and run.group == doc["name"]
            assert run.config["seed"] == 42 and run.config["wdb_entity"] == "socialiq"
        agents = ws.standin.agents_of(_sweep_key(doc))
        assert len(agents) == 2 and sorted(len(a.run_ids) for a in agents) == [1, 2]
        assert len(doc["jobs"]) == 1 and doc["jobs"][0]["array"] == "0-1"


def test_jobs_end_completed_when_the_sweeps_are_done(ws: WandbWorkspace, launched: Launched) -> None:
    for doc in launched.grid["sweeps"]:
        job = doc["jobs"][0]["job_id"]
        assert {k: v for k, v in launched.states.items() if k.startswith(job + "_")} == {
            f"{job}_0": "COMPLETED|0:0", f"{job}_1": "COMPLETED|0:0"}
        log = Path(doc["log_dir"]) / f"{job}_0.out"
        assert log.read_text().count("ATLAS_EXAMPLE_RECORD") in (1, 2)
    print(f"\nwandb launch: 2 sweeps x 3 runs with 2 agents each, submitted to done in {launched.seconds:.0f} s")


def test_a_failed_run_fails_its_slurm_job_with_the_runs_exit_code(ws: WandbWorkspace, launched: Launched) -> None:
    (doc,) = launched.failing["sweeps"]
    assert doc["runs"] == 1 and doc["jobs"][0]["array"] == "0-0"  # never more agents than runs
    job = doc["jobs"][0]["job_id"]
    assert launched.states[f"{job}_0"] == "FAILED|3:0"
    err = (Path(doc["log_dir"]) / f"{job}_0.err").read_text()
    assert "1 of 1 run(s) failed (last exit code 3)" in err


def test_ls_json_reports_the_sweeps_progress(ws: WandbWorkspace, launched: Launched) -> None:
    doc = json.loads(ws.ok("ls", "--json").stdout)
    launch = next(x for x in doc["launches"] if x["id"] == launched.grid["launch"])
    for sweep in launch["sweeps"]:
        assert sweep["url"] and sweep["wandb_runs"] == {"finished": 3}


def test_the_api_key_appears_nowhere_on_the_cluster_side(ws: WandbWorkspace, launched: Launched) -> None:
    key = ws.standin.api_key
    launch_ids = [launched.grid["launch"], launched.failing["launch"]]
    root = Path(launched.grid["snapshot"]).parents[1]
    checked = 0
    for launch_id in launch_ids:
        for sub in ("launches", "logs", "snapshots", "wandb"):
            for path in (root / sub / launch_id).rglob("*"):
                if path.is_file():
                    checked += 1
                    assert key.encode() not in path.read_bytes(), f"the API key is in {path}"
    assert checked > 20
    job_ids = [j["job_id"] for doc in (launched.grid, launched.failing) for s in doc["sweeps"] for j in s["jobs"]]
    for job in job_ids:
        shown = (ws.slurm("scontrol", "show", "job", "-dd", job) + ws.slurm("sacct", "-j", job, "--batch-script")
                 + ws.slurm("sacct", "-j", job, "--env-vars"))
        assert key not in shown and "WANDB_API_KEY" not in shown
    state = (Path(ws.env["ATLAS_SWEEPS_STATE_DIR"]) / "state.db").read_bytes()
    assert key.encode() not in state


# -- failures before anything is submitted -------------------------------------------------------------
def test_credential_and_server_problems_fail_before_submitting_in_seconds(ws: WandbWorkspace,
                                                                          tmp_path: Path) -> None:
    count = len(json.loads(ws.ok("ls", "--json").stdout)["launches"])
    sweeps = len(ws.standin.sweeps)
    no_key = {k: v for k, v in ws.env.items() if k != "WANDB_API_KEY"}
    cases = {
        "missing key": ((), no_key, "no W&B API key"),
        "wrong key": ((), {**ws.env, "WANDB_API_KEY": "w" * 40}, "refused the API key"),
        "bad entity": (("--entity", "nobody"), None, "entity 'nobody'"),
    }
    ws.add_profile("sbw-down", backend="wandb", base_url="http://127.0.0.1:9")
    ws.add_profile("sbw-nologin", backend="wandb", base_url=f"http://localhost:{ws.standin.port}")
    for label, (args, env, message) in cases.items():
        _expect_quick_failure(ws, label, ["--cluster", "sbw", *args], env, message)
    _expect_quick_failure(ws, "unreachable", ["--cluster", "sbw-down"], None, "cannot reach the W&B server")
    _expect_quick_failure(ws, "no login on the cluster", ["--cluster", "sbw-nologin"], None,
                          f"wandb login --host http://localhost:{ws.standin.port}")
    assert len(json.loads(ws.ok("ls", "--json").stdout)["launches"]) == count
    assert len(ws.standin.sweeps) == sweeps


def _expect_quick_failure(ws: WandbWorkspace, label: str, args: list[str], env: dict[str, str] | None,
                          message: str) -> None:
    start = time.monotonic()
    result = ws.cli("launch", "composite_grid.yml", "--backend", "wandb", "--project", ws.wandb_project, *args,
                    env=env)
    took = time.monotonic() - start
    assert result.returncode != 0, f"{label}: {result.stdout}"
    assert message in result.stderr, f"{label}: {result.stderr}"
    assert took < 15, f"{label} took {took:.1f} s"


def test_status_shows_the_run_each_agent_task_was_on_with_its_searched_parameters(ws: WandbWorkspace,
                                                                                    launched: Launched) -> None:
    doc = json.loads(ws.ok("status", "--once", "--json", "--launch", launched.grid["launch"]).stdout)
    [launch] = doc["launches"]
    table = ws.ok("status", "--once", "--launch", launched.grid["launch"]).stdout
    for sweep in launch["sweeps"]:
        runs = {r.id: r for r in ws.standin.runs_of(sweep["sweep_id"].split("/")[2])}
        last_runs = {a.run_ids[-1] for a in ws.standin.agents_of(sweep["sweep_id"].split("/")[2])}
        searched = "hp1" if sweep["name"].endswith("hp1_iso") else "hp2"
        assert len(sweep["tasks"]) == 2
        shown = set()
        for task in sweep["tasks"]:
            # the agent's last run: its parameters are that run's config at W&B
            [run_id] = [r for r in last_runs if runs[r].config[searched] == task["params"][searched]
                        and runs[r].config["hp1"] == task["params"]["hp1"]]
            shown.add(run_id)
            assert task["params"]["seed"] == 42
            assert f"{run_id}: {searched}={runs[run_id].config[searched]}" in table, table
        assert shown == last_runs
