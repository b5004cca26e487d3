"""``launch --skip-done`` on the W&B backend, its pure part: which grid points earlier finished runs with the
sweep's tags cover (numbers compared as W&B's grid does), and the plan less those points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas_sweeps.backends.wandb.prior import covered, tags_filter
from atlas_sweeps.config.composite import SweepSpec
from atlas_sweeps.errors import UsageError
from atlas_sweeps.launch.plan import Plan, PlannedSweep, with_prior_runs

CONFIG = {"method": "grid", "program": "main.py",
          "parameters": {"hp1": {"values": [1, 2, 3, 4]}, "seed": {"value": 42}}}


def _run(name: str, hp1: object, *, state: str = "finished", tags: tuple[str, ...] = ("iso", "dev"),
         seed: int = 42) -> dict:
    return {"name": name, "state": state, "tags": list(tags),
            "config": json.dumps({"hp1": {"value": hp1}, "seed": {"value": seed}, "_wandb": {"value": {}}})}


def test_finished_runs_with_every_tag_cover_their_grid_points_once() -> None:
    runs = [_run("a", 1), _run("b", 2.0), _run("b2", 2), _run("c", 3, state="failed"), _run("d", 4, tags=("iso",)),
            _run("e", 4, seed=7), _run("f", True)]
    prior = covered(CONFIG, ("iso", "dev"), runs)
    assert prior.points == 2 and prior.run_ids == ("a", "b", "b2")  # 2.0 is the grid's 2; True is not 1


def test_skip_done_on_a_random_sweep_is_refused_in_one_line() -> None:
    with pytest.raises(UsageError, match="needs grid sweeps; this one is random"):
        covered({**CONFIG, "method": "random", "run_cap": 4}, (), [])


def test_the_filter_asks_for_finished_runs_with_each_tag() -> None:
    assert json.loads(tags_filter(["iso", "it's"])) == {"$and": [{"state": "finished"}, {"tags": {"$in": ["iso"]}},
                                                                  {"tags": {"$in": ["it's"]}}]}


def _plan() -> Plan:
    def sweep(name: str) -> PlannedSweep:
        spec = SweepSpec(name=name, tags=("iso",), config=CONFIG, num_nodes=None, line=1)
        return PlannedSweep(spec=spec, runs=4, jobs=2, hours=8.0)
    return Plan(config_path=Path("x.yml"), backend="wandb", nodes=2, test_time=1.0, gpus_per_job=2,
                sweeps=(sweep("a"), sweep("b"), sweep("c")))


def test_the_plan_counts_only_what_will_run_and_keeps_the_prior_run_ids() -> None:
    plan = with_prior_runs(_plan(), {"a": {"points": 3, "run_ids": ["r1", "r2", "r3"]},
                                     "b": {"points": 4, "run_ids": ["r4"]}})
    assert [(s.name, s.runs, s.jobs, s.hours, s.prior_runs) for s in plan.sweeps] == [
        ("a", 1, 1, 2.0, ("r1", "r2", "r3")), ("c", 4, 2, 8.0, ())]
    assert plan.total_runs == 5 and plan.total_hours == 10.0
