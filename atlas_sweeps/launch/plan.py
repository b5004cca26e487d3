"""The launch plan (pure): which sweeps, how many runs and jobs each, the estimated compute, and for the
embedded ``local`` backend the exact argument list of every run."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from atlas_sweeps.config.commandline import ARGS_JSON_FILE_TOKEN, DEFERRED_ENVIRON, build_command
from atlas_sweeps.config.composite import CompositeFile, SweepSpec
from atlas_sweeps.config.params import count_runs, expand_runs
from atlas_sweeps.errors import UsageError
from atlas_sweeps.launch.packing import NO_PACKING, Packing


@dataclass(frozen=True)
class PlannedSweep:
    """One sweep to create: its spec, run count, job count and (local backend) each run's parameters and argv
    (``${envvar:X}`` and ``${args_json_file}`` still as tokens the job resolves on the compute node)."""

    spec: SweepSpec
    runs: int
    jobs: int
    hours: float
    run_argv: tuple[tuple[str, ...], ...] = ()
    run_params: tuple[dict[str, Any], ...] = ()
    prior_runs: tuple[str, ...] = ()  # W&B runs the new sweep counts as done (--skip-done on the W&B backend)
    packing: Packing = NO_PACKING

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def tasks(self) -> int:
        """Array tasks of the local backend: one per run, or one per ``packing.runs_per_job`` runs."""
        return self.packing.tasks(self.runs)


@dataclass(frozen=True)
class Plan:
    """Everything ``launch`` would create, before anything is contacted."""

    config_path: Path
    backend: str
    nodes: int
    test_time: float
    gpus_per_job: int
    sweeps: tuple[PlannedSweep, ...]

    @property
    def total_runs(self) -> int:
        return sum(s.runs for s in self.sweeps)

    @property
    def total_hours(self) -> float:
        return sum(s.hours for s in self.sweeps)


def build_plan(composite: CompositeFile, *, backend: str, expand: bool, nodes: int, test_time: float,
               gpus_per_job: int, count: int | None = None, interpreter: str = "python", seed: int = 0,
               packing: Packing = NO_PACKING) -> Plan:
    """Count every sweep and, when the backend runs one array task per run (``expand``), expand it; ``nodes`` is jobs per sweep unless the subtest says
    ``_num_nodes``. The estimate is runs x test_time x GPUs per job, as the original printed it."""
    if nodes < 1:
        raise UsageError(f"--nodes must be at least 1, not {nodes}")
    if not 0 < test_time < float("inf"):  # also refuses nan, which compares false to everything
        raise UsageError(f"--test-time must be a positive, finite number of hours, not {test_time}")
    planned = []
    for spec in composite.sweeps:
        runs = count_runs(spec.config, count=count)
        argv: tuple[tuple[str, ...], ...] = ()
        expanded: tuple[dict[str, object], ...] = ()
        if expand:
            expanded = tuple(expand_runs(spec.config, count=count, seed=seed))
            argv = tuple(tuple(build_command(spec.config, run, interpreter=interpreter, environ=DEFERRED_ENVIRON,
                                             args_json_file=ARGS_JSON_FILE_TOKEN)) for run in expanded)
            runs = len(argv)
        planned.append(PlannedSweep(spec=spec, runs=runs, jobs=_jobs(spec, nodes, runs, packing),
                                    hours=_hours(runs, packing, test_time, gpus_per_job),
                                    run_argv=argv, run_params=expanded, packing=packing))
    return Plan(config_path=composite.path, backend=backend, nodes=nodes, test_time=test_time,
                gpus_per_job=gpus_per_job, sweeps=tuple(planned))


def _jobs(spec: SweepSpec, nodes: int, runs: int, packing: Packing) -> int:
    """Jobs of a sweep at once: ``nodes`` (or the subtest's ``_num_nodes``), at most one per (packed) task."""
    return min(spec.num_nodes or nodes, packing.tasks(runs)) if runs else 0


def _hours(runs: int, packing: Packing, test_time: float, gpus_per_job: int) -> float:
    """GPU-hours: each task holds its GPUs for as many run times as its lanes run one after another (P runs
    at once share the job's GPUs); unpacked, runs x test_time x GPUs per job."""
    return packing.tasks(runs) * packing.waves * test_time * gpus_per_job if packing.packed else \
        runs * test_time * gpus_per_job


def run_key(params: Mapping[str, Any]) -> str:
    """A run's parameters as one comparable text (what ``--skip-done`` matches earlier runs by)."""
    return json.dumps(params, sort_keys=True, default=str)


def without_runs(plan: Plan, skip: Mapping[str, Collection[str]]) -> Plan:
    """``plan`` less the runs whose ``run_key`` ``skip`` lists for their sweep (by name): counts, jobs and
    hours follow; a sweep left with no run is dropped (pure)."""
    if not skip:
        return plan
    sweeps = []
    for s in plan.sweeps:
        drop = skip.get(s.name) or ()
        if not drop:
            sweeps.append(s)
            continue
        kept = [(argv, params) for argv, params in zip(s.run_argv, s.run_params, strict=True)
                if run_key(params) not in drop]
        if not kept:
            continue
        runs = len(kept)
        sweeps.append(replace(s, runs=runs, jobs=_jobs(s.spec, plan.nodes, runs, s.packing),
                              hours=_hours(runs, s.packing, plan.test_time, plan.gpus_per_job),
                              run_argv=tuple(a for a, _ in kept), run_params=tuple(p for _, p in kept)))
    return replace(plan, sweeps=tuple(sweeps))


def with_prior_runs(plan: Plan, prior: Mapping[str, Mapping[str, Any]]) -> Plan:
    """``plan`` less the grid points that earlier runs cover, by sweep name: ``{"points": n, "run_ids": [...]}``
    (``--skip-done`` on a backend whose agents pick the runs); the sweep keeps the run ids to create itself
    with, and one left with no run is dropped (pure)."""
    if not prior:
        return plan
    sweeps = []
    for s in plan.sweeps:
        got = prior.get(s.name)
        if not got or not got.get("points"):
            sweeps.append(s)
            continue
        runs = s.runs - int(got["points"])
        if runs <= 0:
            continue
        sweeps.append(replace(s, runs=runs, jobs=min(s.spec.num_nodes or plan.nodes, runs),
                              hours=runs * plan.test_time * plan.gpus_per_job,
                              prior_runs=tuple(str(r) for r in got.get("run_ids") or ())))
    return replace(plan, sweeps=tuple(sweeps))
