"""``sync`` and ``clean`` for real: a local-backend launch on the sandbox writes offline runs; ``sync`` uploads
them from the login node with the cluster user's own login, to the stand-in, with their group and tags;
``clean`` lists the tagged runs, refuses to delete without asking, and deletes them with ``--yes``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.integration.conftest import SandboxCluster
from tests.integration.wandb_helpers import WandbWorkspace, cluster_login, make_workspace
from tests.standin.server import StandinServer


@dataclass
class Synced:
    ws: WandbWorkspace
    launch: dict
    first: dict
    again: dict


@pytest.fixture(scope="module")
def synced(sandbox: SandboxCluster, wandb_standin: StandinServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synced]:
    ws = make_workspace(tmp_path_factory.mktemp("sync"), sandbox, wandb_standin, label="sync")
    ws.add_profile("sbl", backend="local", base_url=wandb_standin.base_url)
    for _ in cluster_login(sandbox, wandb_standin):
        launch = json.loads(ws.ok("launch", "composite_grid.yml", "--nodes", "3", "--cluster", "sbl",
                                  "--project", ws.wandb_project, "--json").stdout)
        job_ids = [j["job_id"] for s in launch["sweeps"] for j in s["jobs"]]
        states = ws.wait_for_tasks(job_ids, count=6)
        assert set(states.values()) == {"COMPLETED|0:0"}, states
        dry = json.loads(ws.ok("sync", launch["launch"], "--dry-run", "--json").stdout)
        assert [(x["pending"], x["exit_code"]) for x in dry["clusters"][0]["launches"]] == [(6, None)]
        assert ws.standin.runs(project=ws.wandb_project) == []
        first = json.loads(ws.ok("sync", launch["launch"], "--json").stdout)
        again = json.loads(ws.ok("sync", "--json").stdout)
        yield Synced(ws=ws, launch=launch, first=first, again=again)


def test_sync_uploads_offline_runs_with_group_and_tags(synced: Synced) -> None:
    (result,) = synced.first["clusters"]
    assert result["cluster"] == "sbl"
    assert [(x["launch_id"], x["pending"], x["exit_code"]) for x in result["launches"]] == [
        (synced.launch["launch"], 6, 0)]
    runs = synced.ws.standin.runs(project=synced.ws.wandb_project)
    assert len(runs) == 6
    by_group: dict[str, set[tuple]] = {}
    for run in runs:
        tags = ["iso_tests", "hp1_iso" if run.group.endswith("hp1_iso") else "hp2_iso"]
        assert run.tags == tags and run.state == "finished"
        by_group.setdefault(run.group, set()).add((run.config["hp1"], run.config["hp2"]))
    assert by_group == {"composite_grid_iso_tests-hp1_iso": {(1, 4), (2, 4), (3, 4)},
                        "composite_grid_iso_tests-hp2_iso": {(1, 4), (1, 5), (1, 6)}}


def test_sync_again_uploads_nothing_twice(synced: Synced) -> None:
    mine = [x for c in synced.again["clusters"] for x in c["launches"] if x["launch_id"] == synced.launch["launch"]]
    assert [(x["pending"], x["already_synced"], x["exit_code"]) for x in mine] == [(0, 6, None)]
    assert len(synced.ws.standin.runs(project=synced.ws.wandb_project)) == 6


def test_sync_of_an_unknown_launch_is_a_usage_error(synced: Synced) -> None:
    result = synced.ws.cli("sync", "nosuch")
    assert result.returncode == 2 and "no launch 'nosuch'" in result.stderr


def test_clean_lists_asks_and_deletes_tagged_runs(synced: Synced) -> None:
    ws, project = synced.ws, synced.ws.wandb_project
    listed = json.loads(ws.ok("clean", "--tag", "hp1_iso", "--project", project, "--cluster", "sbl", "--dry-run",
                              "--json").stdout)
    assert listed["deleted"] == 0 and len(listed["runs"]) == 3
    assert all("hp1_iso" in r["tags"] for r in listed["runs"])
    refused = ws.cli("clean", "--tag", "hp1_iso", "--project", project, "--cluster", "sbl")
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert len(ws.standin.runs(project=project)) == 6
    done = json.loads(ws.ok("clean", "--tag", "hp1_iso", "--project", project, "--cluster", "sbl", "--yes",
                            "--json").stdout)
    assert done["deleted"] == 3
    left = ws.standin.runs(project=project)
    assert len(left) == 3 and all("hp2_iso" in r.tags for r in left)
