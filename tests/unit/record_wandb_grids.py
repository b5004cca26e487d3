"""Record how W&B's open-source sweep engine (PyPI ``sweeps``) expands a set of grids, into
``data/wandb_grids.json``, which test_grid_like_wandb.py compares atlas-sweeps' expansion with.

``sweeps`` pulls numpy, scipy and scikit-learn, so it is not a dev dependency; regenerate in a throwaway venv:
    python3 -m venv /tmp/sweeps-venv && /tmp/sweeps-venv/bin/pip install sweeps==0.2.0
    /tmp/sweeps-venv/bin/python tests/unit/record_wandb_grids.py
The fixture is JSON as Python writes it: 10 and 10.0 stay apart, and NaN/Infinity are allowed."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parent / "data" / "wandb_grids.json"

# name -> the `parameters` of a grid sweep (values as a YAML sweep file gives them: no tuples).
GRIDS: dict[str, dict[str, Any]] = {
    "int and float": {"r": {"values": [10, 10.0]}},
    "float, int and bool": {"r": {"values": [1.0, 1, True]}},
    "zero and false": {"r": {"values": [0, False]}},
    "string and int": {"r": {"values": ["1", 1]}},
    "repeated value": {"r": {"values": [1, 1, 2, 1]}},
    "null, zero and the string null": {"r": {"values": [None, 0, "null", None]}},
    "lists": {"r": {"values": [[1, 2], [1, 2], [1.0, 2], [2, 1], []]}},
    "mappings, key order aside": {"r": {"values": [{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 1.0, "b": 2}]}},
    "small and special floats": {"r": {"values": [1e-5, 0.00001, 1e-05, 3e-4, -0.0, 0.0, 1e16, 1e20,
                                                  float("inf"), float("nan"), float("nan")]}},
    "strings": {"s": {"values": ["é", "\u00e9", "e", "", " ", "yes", "true", "1.0"]}},
    "constants beside": {"b": {"value": 1.0}, "a": {"values": [2, 2.0]}, "c": {"value": [1, 1]}},
    "product order": {"z": {"values": [1, 2]}, "a": {"values": ["x", "y", "x"]}, "m": {"values": [True, False]}},
    "nested": {"b": {"values": [1, 1.0]},
               "a": {"parameters": {"y": {"values": [True, 1]}, "x": {"value": 3}}},
               "c": {"parameters": {"d": {"parameters": {"e": {"values": [0.5, 0.5, "0.5"]}}}}}},
    "int_uniform": {"n": {"min": 1, "max": 3}, "m": {"distribution": "int_uniform", "min": -1, "max": 0}},
    "q_uniform floats": {"x": {"distribution": "q_uniform", "min": 0.1, "max": 1, "q": 0.2},
                         "y": {"distribution": "q_uniform", "min": 0, "max": 1.0, "q": 1}},
    "q_uniform ints and default q": {"x": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 3},
                                     "y": {"distribution": "q_uniform", "min": 0, "max": 3}},
}


def wandb_grid_runs(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run W&B's engine makes of a grid, in its order: ``{name: value}``, nested as nested dicts."""
    from sweeps.grid_search import grid_search_next_runs

    runs = grid_search_next_runs([], {"method": "grid", "parameters": parameters}, n=100_000)
    return [{name: item["value"] for name, item in run.config.items()} for run in runs if run is not None]


def main() -> None:
    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    grids = [f' {dump(name)}: {{"parameters": {dump(params)}, "runs": [\n  '
             + ",\n  ".join(dump(run) for run in wandb_grid_runs(params)) + "]}"
             for name, params in GRIDS.items()]
    engine = f"sweeps {version('sweeps')}"
    FIXTURE.write_text(
        f'{{"engine": {dump(engine)},\n'
        ' "recorded_by": "tests/unit/record_wandb_grids.py (sweeps.grid_search.grid_search_next_runs)",\n'
        ' "grids": {\n' + ",\n".join(grids) + "\n}}\n", encoding="utf-8")
    print(f"wrote {FIXTURE}: {len(GRIDS)} grids")


if __name__ == "__main__":
    main()
