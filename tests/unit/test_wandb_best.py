"""The best run of a W&B sweep as ``report`` picks it from the runs W&B lists: finished runs only, by the
metric's goal, nested metrics, runs without the metric, and its parameters from the run's config."""

from __future__ import annotations

import json

from atlas_sweeps.backends.base import BackendBest
from atlas_sweeps.backends.wandb.best import metric_value, pick_best
from atlas_sweeps.status.best_run import backend_best
from atlas_sweeps.status.report_probe import SweepMetric


def _node(name: str, state: str, lr: float, summary: dict) -> dict:
    return {"name": name, "state": state, "summaryMetrics": json.dumps(summary),
            "config": json.dumps({"lr": {"value": lr}, "seed": {"value": 1}, "_wandb": {"value": {}}})}


NODES = [_node("a", "finished", 0.1, {"valid_loss": 0.5}), _node("b", "failed", 0.2, {"valid_loss": 0.01}),
         _node("c", "finished", 0.3, {"valid_loss": 0.2, "val": {"acc": 0.7}}), _node("d", "finished", 0.4, {}),
         _node("e", "running", 0.5, {"valid_loss": 0.0})]


def test_the_best_finished_run_by_goal_with_its_parameters() -> None:
    best = pick_best(NODES, metric="valid_loss", goal="minimize", names=["lr", "seed"])
    assert best == BackendBest(run_id="c", value=0.2, params={"lr": 0.3, "seed": 1}, logged=2)
    assert pick_best(NODES, metric="valid_loss", goal="maximize", names=["lr"]).run_id == "a"
    assert pick_best(NODES, metric="val.acc", goal="maximize", names=["lr"]).value == 0.7
    assert pick_best(NODES, metric="f1", goal="maximize", names=[]).why == "no finished run logged f1"
    assert pick_best(NODES[1:2], metric="valid_loss", goal="minimize", names=[]).why == "no run finished yet"


def test_metric_values_are_numbers_only() -> None:
    assert metric_value({"a.b": 1}, "a.b") == 1.0 and metric_value({"a": {"b": 2}}, "a.b") == 2.0
    assert metric_value({"a": True}, "a") is None and metric_value({"a": "x"}, "a") is None
    assert metric_value({"a": float("nan")}, "a") is None


def test_the_label_shows_the_parameters_that_take_several_values() -> None:
    config = {"parameters": {"lr": {"values": [0.1, 0.3]}, "seed": {"value": 1}}}
    best = backend_best(SweepMetric("valid_loss"), BackendBest(run_id="c", value=0.2, params={"lr": 0.3, "seed": 1},
                                                              logged=2), config=config)
    assert best.text() == "valid_loss (minimize): 0.2, lr=0.3 [c] (of 2 that logged it)"
    assert backend_best(SweepMetric("x"), BackendBest(why="no run finished yet"), config=config).why == \
        "no run finished yet"
