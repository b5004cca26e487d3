"""Grid sweeps expand to exactly the runs of W&B's own engine (PyPI ``sweeps``): the same count, values of
the same types (10 and 10.0 are two runs, as they are two command lines), the same order; and the plan and
the command lines follow. Compared with recorded expansions, and live when ``sweeps`` is installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atlas_sweeps.config.composite import load_composite
from atlas_sweeps.config.params import count_runs, expand_runs
from atlas_sweeps.launch.plan import build_plan
from tests.unit.record_wandb_grids import FIXTURE, GRIDS, wandb_grid_runs

RECORDED = json.loads(FIXTURE.read_text(encoding="utf-8"))


def typed(value: Any) -> str:
    """JSON text that tells 10, 10.0, true and "10" apart and ignores mapping key order."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def ours(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    config = {"program": "train.py", "method": "grid", "parameters": parameters}
    runs = expand_runs(config)
    assert count_runs(config) == len(runs)
    return runs


def test_the_recording_is_of_these_grids_by_sweeps_0_2_0() -> None:
    assert RECORDED["engine"] == "sweeps 0.2.0"
    assert typed({name: grid["parameters"] for name, grid in RECORDED["grids"].items()}) == typed(GRIDS), \
        "GRIDS changed: regenerate the fixture (see tests/unit/record_wandb_grids.py)"


@pytest.mark.parametrize("name", GRIDS)
def test_grid_expands_as_wandbs_engine_recorded(name: str) -> None:
    assert typed(ours(GRIDS[name])) == typed(RECORDED["grids"][name]["runs"])


@pytest.mark.parametrize("name", GRIDS)
def test_grid_expands_as_the_installed_sweeps_package(name: str) -> None:
    pytest.importorskip("sweeps", reason="W&B's engine is not installed (see tests/unit/record_wandb_grids.py)")
    assert typed(ours(GRIDS[name])) == typed(wandb_grid_runs(GRIDS[name]))


def test_plan_counts_and_command_lines_keep_values_of_different_types_apart(tmp_path: Path) -> None:
    sweep_file = tmp_path / "types.yml"
    sweep_file.write_text("program: train.py\nmethod: grid\n_num_trials: 2\nparameters:\n"
                          "  r: [10, 10.0]\n  flag: [1.0, 1, true]\n  lr: [1e-5, 0.00001, 1.0e-5]\n")
    composite = load_composite(sweep_file)
    wandb = build_plan(composite, backend="wandb", expand=False, nodes=4, test_time=1, gpus_per_job=1)
    local = build_plan(composite, backend="local", expand=True, nodes=4, test_time=1, gpus_per_job=1)
    assert [s.runs for s in wandb.sweeps] == [s.runs for s in local.sweeps] == [6, 6]
    assert wandb.total_runs == local.total_runs == 12
    for sweep in local.sweeps:
        assert [argv[-3:] for argv in sweep.run_argv] == [
            ("--flag=1.0", "--lr=1e-05", "--r=10"), ("--flag=1.0", "--lr=1e-05", "--r=10.0"),
            ("--flag=1", "--lr=1e-05", "--r=10"), ("--flag=1", "--lr=1e-05", "--r=10.0"),
            ("--flag=True", "--lr=1e-05", "--r=10"), ("--flag=True", "--lr=1e-05", "--r=10.0"),
        ]
