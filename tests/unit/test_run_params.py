"""The parameters a status row shows: only those that vary within the sweep."""

from __future__ import annotations

from atlas_sweeps.status.run_params import params_label, varying_keys


def test_only_varying_parameters_are_shown_in_order() -> None:
    runs = [{"seed": 1, "bs": 64, "lr": 0.1}, {"seed": 1, "bs": 64, "lr": 0.01}, {"seed": 1, "bs": 128, "lr": 0.1}]
    keys = varying_keys(runs)
    assert keys == ("bs", "lr")
    assert params_label(runs[0], keys) == "bs=64 lr=0.1"


def test_nested_and_missing_values_and_a_single_run() -> None:
    runs = [{"opt": {"name": "adam"}, "x": "a"}, {"opt": {"name": "sgd"}}]
    assert varying_keys(runs) == ("opt", "x")
    assert params_label(runs[1], varying_keys(runs)) == 'opt={"name": "sgd"}'
    assert varying_keys([{"a": 1}]) == () and varying_keys([]) == ()
