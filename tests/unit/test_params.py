"""Run counting and expansion: grid order and completeness, random determinism, W&B's rules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from atlas_sweeps.config.composite import load_composite
from atlas_sweeps.config.params import count_runs, expand_runs
from atlas_sweeps.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def grid(**parameters: object) -> dict:
    return {"program": "main.py", "method": "grid", "parameters": parameters}


@pytest.mark.parametrize("name, runs", [
    ("simple_grid", [9]), ("simple_grid_plus", [9]), ("composite_grid", [3, 3]), ("composite_continued", [3]),
])
def test_tutorial_examples_count_as_the_tutorial_says(name: str, runs: list[int]) -> None:
    sweeps = load_composite(CONFIGS / f"{name}.yml").sweeps
    assert [count_runs(s.config) for s in sweeps] == runs
    assert [len(expand_runs(s.config)) for s in sweeps] == runs


def test_grid_order_is_wandb_order_sorted_names_last_varies_fastest() -> None:
    config = grid(b={"values": [1, 2]}, a={"values": ["x", "y", "z"]}, c={"value": 0})
    runs = expand_runs(config)
    assert runs == [
        {"a": "x", "b": 1, "c": 0}, {"a": "x", "b": 2, "c": 0},
        {"a": "y", "b": 1, "c": 0}, {"a": "y", "b": 2, "c": 0},
        {"a": "z", "b": 1, "c": 0}, {"a": "z", "b": 2, "c": 0},
    ]
    assert expand_runs(config) == runs  # deterministic


def test_grid_collapses_only_values_of_the_same_type_like_wandb() -> None:
    config = grid(a={"values": [1, 1.0, True, 2, "2", [1, 2], [1, 2], {"k": 1}, 1]})
    assert count_runs(config) == 7
    values = [r["a"] for r in expand_runs(config)]
    assert json.dumps(values) == '[1, 1.0, true, 2, "2", [1, 2], {"k": 1}]'  # JSON keeps 1 and 1.0 apart


def test_nested_parameters_count_and_expand_as_nested_dicts() -> None:
    config = grid(
        lr={"values": [0.1, 0.01]},
        optimizer={"parameters": {"name": {"values": ["adam", "sgd"]}, "momentum": {"value": 0.9}}},
    )
    assert count_runs(config) == 4
    runs = expand_runs(config)
    assert runs[0] == {"lr": 0.1, "optimizer": {"momentum": 0.9, "name": "adam"}}
    assert {(r["lr"], r["optimizer"]["name"]) for r in runs} == {
        (0.1, "adam"), (0.1, "sgd"), (0.01, "adam"), (0.01, "sgd")}


def test_grid_enumerates_int_uniform_and_q_uniform() -> None:
    config = grid(n={"min": 1, "max": 3}, x={"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25})
    assert count_runs(config) == 3 * 4  # numpy.arange(0, 1, 0.25) has 4 points, max excluded
    assert sorted({r["x"] for r in expand_runs(config)}) == [0, 0.25, 0.5, 0.75]


def test_grid_refuses_continuous_distributions() -> None:
    with pytest.raises(ConfigError, match="lr uses log_uniform_values, which a grid search cannot enumerate"):
        count_runs(grid(lr={"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}))


def test_run_cap_and_count_cap_a_grid() -> None:
    config = {**grid(a={"values": [1, 2, 3]}, b={"values": [1, 2]}), "run_cap": 4}
    assert count_runs(config) == 4
    assert count_runs(config, count=2) == 2
    assert len(expand_runs(config)) == 4


def test_random_needs_run_cap_or_count() -> None:
    config = {"program": "p.py", "method": "random", "parameters": {"a": {"values": [1, 2]}}}
    with pytest.raises(ConfigError, match="add run_cap: N to the sweep file or pass --count N"):
        count_runs(config)
    assert count_runs(config, count=7) == 7
    assert count_runs({**config, "run_cap": 5}) == 5
    assert count_runs({**config, "run_cap": 5}, count=3) == 3


RANDOM = {
    "program": "p.py", "method": "random", "run_cap": 50,
    "parameters": {
        "c": {"values": ["a", "b", "c"]},
        "w": {"values": ["x", "y"], "probabilities": [1.0, 0.0]},
        "n": {"min": 2, "max": 5},
        "u": {"min": 0.0, "max": 1.0},
        "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
        "e": {"distribution": "log_uniform", "min": -2, "max": 0},
        "q": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 2},
        "g": {"distribution": "normal", "mu": 5, "sigma": 0.1},
        "ln": {"distribution": "log_normal"},
        "bt": {"distribution": "beta", "a": 2, "b": 2},
        "k": {"value": "const"},
        "nest": {"parameters": {"d": {"values": [1, 2]}}},
    },
}


def test_random_is_deterministic_per_seed_and_respects_ranges() -> None:
    runs = expand_runs(RANDOM, seed=3)
    assert runs == expand_runs(RANDOM, seed=3)
    assert runs != expand_runs(RANDOM, seed=4)
    assert len(runs) == 50
    for r in runs:
        assert r["c"] in "abc" and r["w"] == "x" and r["k"] == "const"
        assert isinstance(r["n"], int) and 2 <= r["n"] <= 5
        assert 0.0 <= r["u"] <= 1.0
        assert 1e-5 <= r["lr"] <= 1e-1
        assert math.exp(-2) <= r["e"] <= 1.0
        assert isinstance(r["q"], int) and r["q"] % 2 == 0 and 0 <= r["q"] <= 10
        assert 4 < r["g"] < 6 and r["ln"] > 0 and 0 <= r["bt"] <= 1
        assert r["nest"]["d"] in (1, 2)
    assert {r["n"] for r in runs} == {2, 3, 4, 5}
    assert len({r["c"] for r in runs}) == 3


def test_random_count_overrides_and_bayes_needs_wandb() -> None:
    assert len(expand_runs(RANDOM, count=5)) == 5
    bayes = {**RANDOM, "method": "bayes", "metric": {"name": "loss"}}
    assert count_runs(bayes) == 50
    with pytest.raises(ConfigError, match=r"bayes needs the W&B backend \(--backend wandb\)"):
        expand_runs(bayes)


def test_bad_bounds_and_methods_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="min 5 is greater than max 1"):
        count_runs(grid(n={"min": 5, "max": 1}))
    for one_point in ({"min": 2, "max": 2}, {"distribution": "q_uniform", "min": 0.5, "max": 0.5}):
        with pytest.raises(ConfigError, match=r"min and max are both .*W&B needs min < max"):
            count_runs(grid(n=one_point))  # W&B's engine refuses them ("min 2 is not less than max 2")
    with pytest.raises(ConfigError, match="unknown sweep method 'custom'"):
        count_runs({"method": "custom", "parameters": {"a": {"value": 1}}})
    with pytest.raises(ConfigError, match="needs min > 0"):
        expand_runs({"method": "random", "run_cap": 1,
                     "parameters": {"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}}})
