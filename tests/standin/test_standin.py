"""The W&B stand-in, driven by the real wandb 0.31 client and CLI in subprocesses."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.standin.fixtures import standin_env
from tests.standin.server import StandinServer

WANDB = str(Path(sys.executable).parent / "wandb")

# Records its argv, then logs a run online; exits 3 for the grid point a=3, b="y".
CHILD = """
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
import wandb
run = wandb.init()
run.log({"loss": 0.25})
code = 3 if {"--a=3", "--b=y"} <= set(sys.argv[1:]) else 0
run.finish(exit_code=code)
sys.exit(code)
"""


def _python(code: str, env: dict[str, str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _create_sweep(config: dict, env: dict[str, str], *, project: str) -> str:
    proc = _python(
        f"""
        import wandb
        print(wandb.sweep({config!r}, entity={env["WANDB_ENTITY"]!r}, project={project!r}))
    """,
        env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@dataclass
class GridSweep:
    """One 3x2 grid sweep run to completion by two concurrent agents with online children."""

    sweep_id: str
    project: str
    config: dict
    argv_lines: list[list[str]]
    agents: list[subprocess.CompletedProcess[str]]
    seconds: float


@pytest.fixture(scope="module")
def grid_sweep(wandb_standin: StandinServer, tmp_path_factory: pytest.TempPathFactory) -> GridSweep:
    workdir = tmp_path_factory.mktemp("grid")
    (workdir / "child.py").write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(standin_env(wandb_standin, workdir))
    env.update(ARGV_LOG=str(workdir / "argv.log"), WANDB_TAGS="grid,standin", WANDB_RUN_GROUP="g1")
    config = {
        "method": "grid",
        "program": "child.py",
        "name": "grid-3x2",
        "parameters": {"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}, "fixed": {"value": 7}},
    }
    project = "grid"
    sweep_id = _create_sweep(config, env, project=project)
    start = time.monotonic()
    agents = [
        subprocess.Popen(
            [WANDB, "agent", "--count", "6", f"{env['WANDB_ENTITY']}/{project}/{sweep_id}"],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    done = []
    for agent in agents:
        out, err = agent.communicate(timeout=90)
        done.append(subprocess.CompletedProcess(agent.args, agent.returncode, out, err))
    seconds = time.monotonic() - start
    argv = [json.loads(line) for line in (workdir / "argv.log").read_text().splitlines()]
    return GridSweep(sweep_id, project, config, argv, done, seconds)


def test_sweep_stores_the_config_it_was_sent(grid_sweep: GridSweep, wandb_standin: StandinServer) -> None:
    sweep = wandb_standin.sweep(grid_sweep.sweep_id)
    assert len(grid_sweep.sweep_id) == 8
    assert (sweep.entity, sweep.project) == (wandb_standin.entity, "grid")
    assert sweep.config == grid_sweep.config


def test_two_agents_run_each_grid_point_exactly_once(
    grid_sweep: GridSweep, wandb_standin: StandinServer
) -> None:
    expected = sorted([f"--a={a}", f"--b={b}", "--fixed=7"] for a in (1, 2, 3) for b in ("x", "y"))
    assert sorted(sorted(argv) for argv in grid_sweep.argv_lines) == expected
    agents = wandb_standin.agents_of(grid_sweep.sweep_id)
    assert len(agents) == 2 and all(a.run_ids for a in agents), "both agents should have got work"
    assert sum(len(a.run_ids) for a in agents) == 6
    assert wandb_standin.errors == []


def test_agents_exit_when_the_sweep_is_done(grid_sweep: GridSweep, wandb_standin: StandinServer) -> None:
    assert [a.returncode for a in grid_sweep.agents] == [0, 0], [a.stderr[-2000:] for a in grid_sweep.agents]
    assert all(a.exited for a in wandb_standin.agents_of(grid_sweep.sweep_id))
    assert wandb_standin.sweep(grid_sweep.sweep_id).state == "FINISHED"
    assert grid_sweep.seconds < 60


def test_online_children_are_recorded_with_config_tags_group_and_state(
    grid_sweep: GridSweep, wandb_standin: StandinServer
) -> None:
    runs = wandb_standin.runs_of(grid_sweep.sweep_id)
    assert len(runs) == 6
    by_point = {(r.config["a"], r.config["b"]): r for r in runs}
    assert set(by_point) == {(a, b) for a in (1, 2, 3) for b in ("x", "y")}
    for (a, b), run in by_point.items():
        assert run.config == {"a": a, "b": b, "fixed": 7}
        assert run.args == {"a": {"value": a}, "b": {"value": b}, "fixed": {"value": 7}}
        assert run.tags == ["grid", "standin"] and run.group == "g1"
        assert run.agent_state == "ended" and run.summary["loss"] == 0.25
    failed = by_point.pop((3, "y"))
    assert (failed.state, failed.exitcode) == ("failed", 3)
    assert {(r.state, r.exitcode) for r in by_point.values()} == {("finished", 0)}


def test_public_api_reads_the_sweep_and_its_runs(grid_sweep: GridSweep, wandb_env: dict[str, str]) -> None:
    proc = _python(
        f"""
        import json, wandb
        s = wandb.Api().sweep("{wandb_env["WANDB_ENTITY"]}/{grid_sweep.project}/{grid_sweep.sweep_id}")
        print(json.dumps({{"id": s.id, "state": s.state, "config": s.config, "expected": s.expected_run_count,
                          "runs": sorted((r.state, r.config["a"], r.config["b"]) for r in s.runs)}}))
    """,
        wandb_env,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])
    assert (got["id"], got["state"], got["expected"]) == (grid_sweep.sweep_id, "FINISHED", 6)
    assert got["config"] == grid_sweep.config
    assert ["failed", 3, "y"] in got["runs"] and len(got["runs"]) == 6


def test_runs_filter_by_tags_and_delete(wandb_standin: StandinServer, wandb_env: dict[str, str]) -> None:
    proc = _python(
        """
        import json, wandb
        ids = []
        for tags in (["x", "keep"], ["y"], ["x"]):
            run = wandb.init(project="filters", tags=tags, config={"n": len(ids)})
            ids.append(run.id)
            run.finish()
        api = wandb.Api()
        tagged = api.runs("atlas-test/filters", filters={"tags": {"$in": ["x"]}})
        found = sorted(r.id for r in tagged)
        next(r for r in tagged if r.id == ids[0]).delete()
        api.flush()
        left = sorted(r.id for r in api.runs("atlas-test/filters", filters={"tags": {"$in": ["x"]}}))
        print(json.dumps({"ids": ids, "found": found, "left": left}))
    """,
        wandb_env,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])
    ids = got["ids"]
    assert got["found"] == sorted([ids[0], ids[2]])
    assert got["left"] == [ids[2]]
    assert {r.id for r in wandb_standin.runs(project="filters")} == {ids[1], ids[2]}
    assert "DeleteRun" in wandb_standin.operations


def test_sync_of_an_offline_run_makes_it_visible(
    wandb_standin: StandinServer, wandb_env: dict[str, str]
) -> None:
    env = {**wandb_env, "WANDB_MODE": "offline", "WANDB_TAGS": "synced,offline", "WANDB_RUN_GROUP": "g-off"}
    made = _python(
        """
        import wandb
        run = wandb.init(project="offline", config={"lr": 0.5})
        run.log({"acc": 0.9})
        run.finish()
        print(run.id)
    """,
        env,
    )
    assert made.returncode == 0, made.stderr
    run_id = made.stdout.strip().splitlines()[-1]
    assert wandb_standin.store.find_run(run_id) is None, "an offline run must not reach the server"
    run_dirs = list((Path(wandb_env["WANDB_DIR"]) / "wandb").glob(f"offline-run-*-{run_id}"))
    synced = subprocess.run(
        [WANDB, "sync", str(run_dirs[0])], env=wandb_env, capture_output=True, text=True, timeout=60
    )
    assert synced.returncode == 0, synced.stderr
    proc = _python(
        f"""
        import json, wandb
        r = wandb.Api().run("atlas-test/offline/{run_id}")
        print(json.dumps({{"tags": r.tags, "group": r.group, "config": r.config, "acc": r.summary["acc"],
                          "state": r.state}}))
    """,
        wandb_env,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got == {
        "tags": ["synced", "offline"],
        "group": "g-off",
        "config": {"lr": 0.5},
        "acc": 0.9,
        "state": "finished",
    }


def test_stop_and_cancel_set_the_sweep_state(wandb_standin: StandinServer, wandb_env: dict[str, str]) -> None:
    config = {"method": "random", "program": "p.py", "run_cap": 2, "parameters": {"a": {"min": 1, "max": 9}}}
    stopped, cancelled = (_create_sweep(config, wandb_env, project="states") for _ in range(2))
    assert wandb_standin.sweep(stopped).config["parameters"]["a"]["distribution"] == "int_uniform"
    for flag, sweep_id in (("--stop", stopped), ("--cancel", cancelled)):
        proc = subprocess.run(
            [WANDB, "sweep", flag, f"atlas-test/states/{sweep_id}"],
            env=wandb_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
    assert wandb_standin.sweep(stopped).state == "FINISHED"
    assert wandb_standin.sweep(cancelled).state == "CANCELED"


def test_wrong_api_key_fails_fast_with_a_clear_error(
    wandb_standin: StandinServer, wandb_env: dict[str, str]
) -> None:
    env = {**wandb_env, "WANDB_API_KEY": "wrong_" + "k" * 40}
    start = time.monotonic()
    proc = _python("import wandb; wandb.sweep({'method': 'grid', 'parameters': {}}, project='nope')", env)
    assert time.monotonic() - start < 15
    assert proc.returncode != 0
    assert "Failed to verify credentials" in proc.stderr and "not logged in" in proc.stderr
    assert any(r.status == 401 for r in wandb_standin.requests)


def test_unknown_entity_and_unknown_operation_are_graphql_errors_naming_them(
    wandb_standin: StandinServer, wandb_env: dict[str, str]
) -> None:
    proc = _python(
        """
        import wandb
        try:
            wandb.sweep({"method": "grid", "parameters": {"a": {"value": 1}}}, entity="nobody-here", project="p")
        except Exception as e:
            print("SWEEP:", e)
        try:
            wandb.Api()._service_api.execute_graphql("query NoSuchOperation { viewer { id } }")
        except Exception as e:
            print("OP:", e)
    """,
        wandb_env,
    )
    assert "SWEEP:" in proc.stdout and "nobody-here" in proc.stdout, proc.stdout + proc.stderr
    assert "OP:" in proc.stdout and "NoSuchOperation" in proc.stdout, proc.stdout + proc.stderr


def test_raw_protocol_gzip_body_and_auth(wandb_standin: StandinServer) -> None:
    import gzip

    def post(body: dict, key: str) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{wandb_standin.base_url}/graphql",
            data=gzip.compress(json.dumps(body).encode()),
            method="POST",
            headers={
                "Content-Encoding": "gzip",
                "Content-Type": "application/json",
                "Authorization": "Basic " + base64.b64encode(f"api:{key}".encode()).decode(),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    ok = post(
        {"query": "query Viewer { viewer { id entity } }", "operationName": "Viewer"}, wandb_standin.api_key
    )
    assert ok == (200, {"data": {"viewer": ok[1]["data"]["viewer"]}})
    assert ok[1]["data"]["viewer"]["entity"] == wandb_standin.entity
    assert post({"query": "query Viewer { viewer { id } }"}, "bad")[0] == 401
    status, body = post({"query": "mutation Frobnicate { x }"}, wandb_standin.api_key)
    assert status == 200 and "Frobnicate" in body["errors"][0]["message"]


def test_grid_expansion_supports_value_values_and_nested_parameters() -> None:
    from tests.standin.store import expand_grid

    points = expand_grid(
        {
            "lr": {"values": [0.1, 0.2]},
            "opt": {"parameters": {"name": {"value": "adam"}, "beta": {"values": [0.9, 0.99]}}},
            "seed": {"value": 1},
        }
    )
    assert [(p["lr"]["value"], p["opt"]["value"]["beta"]) for p in points] == [
        (0.1, 0.9),
        (0.1, 0.99),
        (0.2, 0.9),
        (0.2, 0.99),
    ]
    assert all(p["opt"]["value"]["name"] == "adam" and p["seed"] == {"value": 1} for p in points)


def test_prior_runs_of_a_new_grid_sweep_count_as_done(grid_sweep: GridSweep, wandb_standin: StandinServer,
                                                      wandb_env: dict[str, str]) -> None:
    finished = [r.id for r in wandb_standin.runs_of(grid_sweep.sweep_id) if r.state == "finished"]
    assert len(finished) == 5  # a=3, b=y failed
    config = {**grid_sweep.config, "parameters": {**grid_sweep.config["parameters"], "a": {"values": [1, 2, 3, 4]}}}
    proc = _python(f"""
        import wandb
        print(wandb.sweep({config!r}, entity={wandb_env["WANDB_ENTITY"]!r}, project={grid_sweep.project!r},
                          prior_runs={finished!r}))
    """, wandb_env)
    assert proc.returncode == 0, proc.stderr
    sweep = wandb_standin.sweep(proc.stdout.strip().splitlines()[-1])
    assert sorted(sweep.prior_runs) == sorted(finished)
    assert sorted((p["a"]["value"], p["b"]["value"]) for p in sweep.pending_grid or []) == [(3, "y"), (4, "x"), (4, "y")]


# First attempt: says it is being preempted and stops unfinished; the next one (same run id) finishes.
PREEMPTED_CHILD = """
import os, sys, wandb
marker = os.path.join(os.environ["MARKER_DIR"], os.environ["WANDB_RUN_ID"])
run = wandb.init()
if not os.path.exists(marker):
    open(marker, "w").close()
    run.mark_preempting()
    sys.exit(1)
run.log({"resumed": 1})
run.finish()
"""


def test_a_preempted_run_is_handed_out_again_as_the_same_run(wandb_standin: StandinServer,
                                                             tmp_path: Path) -> None:
    (tmp_path / "child.py").write_text(PREEMPTED_CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(standin_env(wandb_standin, tmp_path), MARKER_DIR=str(tmp_path), WANDB_RESUME="allow")
    sweep_id = _create_sweep({"method": "grid", "program": "child.py", "parameters": {"a": {"values": [1]}}},
                             env, project="preempt")
    path = f"{env['WANDB_ENTITY']}/preempt/{sweep_id}"
    for _ in range(2):  # one agent per Slurm task: the second is the requeued task's
        agent = subprocess.run([WANDB, "agent", "--count", "1", path], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=120)
        assert agent.returncode == 0, agent.stderr
    (run,) = wandb_standin.runs_of(sweep_id)
    assert (run.state, run.resumes, run.config["a"]) == ("finished", 1, 1)
    assert run.history and run.history[-1].get("resumed") == 1
    assert [p.name for p in tmp_path.iterdir() if p.name == run.id] == [run.id]  # its first attempt had the same id
