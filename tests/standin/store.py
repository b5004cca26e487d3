"""In-memory state of the W&B stand-in (test infrastructure): sweeps, agents, runs, and the server's own
grid/random scheduling that hands each agent its next run."""

from __future__ import annotations

import itertools
import math
import random
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_ID_ALPHABET = string.ascii_lowercase + string.digits
DONE_SWEEP_STATES = ("FINISHED", "CANCELED")


def new_id(length: int = 8) -> str:
    """A W&B-style short id (8 lowercase letters/digits, as the service uses for sweeps and runs)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


@dataclass
class SweepRecord:
    """One sweep as the server holds it; `config` is the parsed YAML the client sent."""

    id: str
    entity: str
    project: str
    config: dict[str, Any]
    config_yaml: str
    state: str = "RUNNING"
    created_at: str = field(default_factory=_now_iso)
    pending_grid: list[dict[str, Any]] | None = None  # grid points not handed out yet (grid sweeps only)
    handed_out: int = 0
    requeued: list[str] = field(default_factory=list)  # preempted runs to hand out again, as the same runs
    prior_runs: list[str] = field(default_factory=list)  # runs of other sweeps counted as this one's (priorRunsFilters)

    @property
    def method(self) -> str:
        return str(self.config.get("method", "grid"))

    @property
    def run_cap(self) -> int | None:
        cap = self.config.get("run_cap")
        return int(cap) if cap is not None else None

    @property
    def expected_runs(self) -> int | None:
        """Runs the sweep will hand out in total: the grid size, or `run_cap`."""
        if self.method == "grid":
            return len(expand_grid(self.config.get("parameters", {})))
        return self.run_cap


@dataclass
class AgentRecord:
    """One `wandb agent` process registered through CreateAgent."""

    id: str
    sweep: str
    host: str
    run_ids: list[str] = field(default_factory=list)
    heartbeats: int = 0
    exited: bool = False  # we answered `exit`


@dataclass
class RunRecord:
    """One run: scheduled by a sweep, created by `wandb.init` online, or uploaded by `wandb sync`.

    `state` is what the run itself reported (pending until it talks to us, then running → finished /
    failed / crashed); `agent_state` is what its agent reported through Heartbeat runState (assigned →
    running → ended; the agent does not say how a run ended, only that it is no longer running).
    """

    id: str
    entity: str
    project: str
    storage_id: str = field(default_factory=lambda: "UnVuOj" + new_id(12))
    sweep: str | None = None
    agent: str | None = None
    args: dict[str, Any] = field(default_factory=dict)  # the sweep's {"name": {"value": v}} for this run
    config: dict[str, Any] = field(default_factory=dict)  # user config, plain {"name": v}
    raw_config: dict[str, Any] = field(default_factory=dict)  # as uploaded: {"name": {"value": v}, ...}
    tags: list[str] = field(default_factory=list)
    group: str | None = None
    job_type: str | None = None
    display_name: str | None = None
    notes: str | None = None
    host: str | None = None
    program: str | None = None
    state: str = "pending"
    exitcode: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    agent_state: str | None = None
    preempting: bool = False  # the run said so (`run.mark_preempting()`): if it stops unfinished, it is requeued
    resumes: int = 0  # times it was handed out again after a preemption
    created_at: str = field(default_factory=_now_iso)
    heartbeat_at: str = field(default_factory=_now_iso)


def expand_grid(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """All grid points of a sweep's `parameters`, as agent args `{"name": {"value": v}}`, in W&B's
    order (first parameter varies slowest). Supports `value`, `values` and nested `parameters`."""
    names: list[str] = []
    choices: list[list[Any]] = []
    for name, spec in parameters.items():
        names.append(name)
        choices.append(_grid_values(name, spec))
    points = []
    for combo in itertools.product(*choices):
        points.append({n: {"value": v} for n, v in zip(names, combo, strict=True)})
    return points


def _grid_values(name: str, spec: Any) -> list[Any]:
    if not isinstance(spec, dict):
        raise ValueError(f"parameter {name!r}: expected a mapping, got {spec!r}")
    if "parameters" in spec:
        nested = expand_grid(spec["parameters"])
        return [{k: v["value"] for k, v in point.items()} for point in nested]
    if "values" in spec:
        return list(spec["values"])
    if "value" in spec:
        return [spec["value"]]
    raise ValueError(f"parameter {name!r}: grid search needs `value`, `values` or nested `parameters`")


def sample_random(parameters: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One random draw of a sweep's `parameters`, as agent args `{"name": {"value": v}}`."""
    return {name: {"value": _sample_value(name, spec, rng)} for name, spec in parameters.items()}


def _sample_value(name: str, spec: Any, rng: random.Random) -> Any:
    if not isinstance(spec, dict):
        raise ValueError(f"parameter {name!r}: expected a mapping, got {spec!r}")
    if "parameters" in spec:
        return {k: v["value"] for k, v in sample_random(spec["parameters"], rng).items()}
    if "value" in spec:
        return spec["value"]
    dist = spec.get("distribution", "categorical" if "values" in spec else None)
    if dist == "categorical" or (dist is None and "values" in spec):
        return rng.choice(list(spec["values"]))
    lo, hi = spec.get("min"), spec.get("max")
    if dist == "int_uniform":
        return rng.randint(int(lo), int(hi))
    if dist == "uniform":
        return rng.uniform(float(lo), float(hi))
    if dist == "log_uniform_values":
        return math.exp(rng.uniform(math.log(float(lo)), math.log(float(hi))))
    if dist == "log_uniform":
        return math.exp(rng.uniform(float(lo), float(hi)))
    if dist == "q_uniform":
        q = float(spec.get("q", 1.0))
        return round(rng.uniform(float(lo), float(hi)) / q) * q
    if dist == "normal":
        return rng.gauss(float(spec.get("mu", 0.0)), float(spec.get("sigma", 1.0)))
    raise ValueError(f"parameter {name!r}: unsupported distribution {dist!r}")


class Store:
    """Thread-safe in-memory W&B state. All mutation goes through its methods, under one lock."""

    def __init__(self, *, entity: str, seed: int = 0) -> None:
        self.entity = entity
        self.lock = threading.RLock()
        self.sweeps: dict[str, SweepRecord] = {}
        self.agents: dict[str, AgentRecord] = {}
        self.runs: dict[tuple[str, str, str], RunRecord] = {}  # (entity, project, run id) → run
        self._rng = random.Random(seed)

    # sweeps -----------------------------------------------------------------------------------
    def create_sweep(
        self, *, entity: str, project: str, config: dict[str, Any], config_yaml: str
    ) -> SweepRecord:
        with self.lock:
            sweep_id = new_id()
            pending = None
            if str(config.get("method", "grid")) == "grid":
                pending = expand_grid(config.get("parameters", {}))
            sweep = SweepRecord(
                id=sweep_id,
                entity=entity,
                project=project,
                config=config,
                config_yaml=config_yaml,
                pending_grid=pending,
            )
            self.sweeps[sweep_id] = sweep
            return sweep

    def add_prior_runs(self, sweep_id: str, runs: list[RunRecord]) -> None:
        """Count ``runs`` as the sweep's own, as the service does with an UpsertSweep's priorRunsFilters: a
        grid point one of them ran (same value for every parameter of the point) is not handed out again."""
        with self.lock:
            sweep = self.sweeps[sweep_id]
            sweep.prior_runs += [r.id for r in runs if r.id not in sweep.prior_runs]
            if sweep.pending_grid is not None:
                sweep.pending_grid = [
                    point for point in sweep.pending_grid
                    if not any(all(k in r.config and r.config[k] == v["value"] for k, v in point.items()) for r in runs)
                ]

    def find_sweep(self, key: str | None) -> SweepRecord | None:
        """By name or storage id (we use the name as the storage id too)."""
        if not key:
            return None
        with self.lock:
            return self.sweeps.get(key)

    def set_sweep_state(self, sweep_id: str, state: str) -> SweepRecord | None:
        with self.lock:
            sweep = self.sweeps.get(sweep_id)
            if sweep is not None:
                sweep.state = state
            return sweep

    def runs_of(self, sweep_id: str) -> list[RunRecord]:
        with self.lock:
            return [r for r in self.runs.values() if r.sweep == sweep_id]

    # agents and scheduling ---------------------------------------------------------------------
    def create_agent(self, *, sweep_id: str, host: str) -> AgentRecord:
        with self.lock:
            agent = AgentRecord(id=new_id(), sweep=sweep_id, host=host)
            self.agents[agent.id] = agent
            return agent

    def heartbeat(self, agent_id: str, run_state: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Record what the agent says is running and decide its next commands (None: unknown agent).

        Like the service: a new run only when the agent runs nothing; `exit` once the sweep is done or
        stopped and the agent is idle; `stop` for every running run of a cancelled sweep.
        """
        with self.lock:
            agent = self.agents.get(agent_id)
            if agent is None:
                return None
            agent.heartbeats += 1
            sweep = self.sweeps[agent.sweep]
            running = []
            for run_id in agent.run_ids:
                run = self._run_by_id(sweep.entity, sweep.project, run_id)
                if run is None or run.agent_state == "ended":
                    continue
                if run_state.get(run_id):
                    run.agent_state = "running"
                    running.append(run_id)
                else:
                    run.agent_state = "ended"
                    if run.preempting and run.state in ("running", "preempting", "preempted"):
                        self._requeue(sweep, run)  # the service's sweep controller hands it out again
                    elif run.state == "running":  # talked to us but never sent `complete`: it died
                        run.state = "crashed"
            if sweep.state == "CANCELED" and running:
                return [{"type": "stop", "run_id": r} for r in running]
            if running:
                return []
            if sweep.state not in DONE_SWEEP_STATES and sweep.state != "PAUSED" and sweep.requeued:
                run = self._run_by_id(sweep.entity, sweep.project, sweep.requeued.pop(0))
                if run is not None:  # the preempted run again: same id, same parameters
                    run.agent, run.agent_state, run.state = agent.id, "assigned", "pending"
                    run.resumes, run.preempting = run.resumes + 1, False
                    agent.run_ids.append(run.id)
                    return [{"type": "run", "run_id": run.id, "program": run.program, "args": run.args}]
            if sweep.state not in DONE_SWEEP_STATES and sweep.state != "PAUSED":
                args = self._next_args(sweep)
                if args is not None:
                    run = self._assign_run(sweep, agent, args)
                    program = sweep.config.get("program")
                    return [{"type": "run", "run_id": run.id, "program": program, "args": args}]
            if sweep.state == "PAUSED":
                return []
            if sweep.state == "RUNNING" and self._sweep_exhausted(sweep) and self._all_ended(sweep):
                sweep.state = "FINISHED"
            if sweep.state in DONE_SWEEP_STATES or self._sweep_exhausted(sweep):
                agent.exited = True
                return [{"type": "exit"}]
            return []

    def _requeue(self, sweep: SweepRecord, run: RunRecord) -> None:
        run.state = "preempted"
        if run.id not in sweep.requeued:
            sweep.requeued.append(run.id)

    def requeue_if_preempted(self, run: RunRecord) -> None:
        """A sweep's run that ended preempted (its ``complete`` said so) is handed out again (lock held)."""
        sweep = self.sweeps.get(run.sweep or "")
        if sweep is not None and run.state == "preempted":
            self._requeue(sweep, run)

    def _next_args(self, sweep: SweepRecord) -> dict[str, Any] | None:
        if sweep.pending_grid is not None:
            return sweep.pending_grid.pop(0) if sweep.pending_grid else None
        if sweep.run_cap is not None and sweep.handed_out >= sweep.run_cap:
            return None
        return sample_random(sweep.config.get("parameters", {}), self._rng)

    def _sweep_exhausted(self, sweep: SweepRecord) -> bool:
        if sweep.requeued:
            return False
        if sweep.pending_grid is not None:
            return not sweep.pending_grid
        return sweep.run_cap is not None and sweep.handed_out >= sweep.run_cap

    def _all_ended(self, sweep: SweepRecord) -> bool:
        return all(r.agent_state in (None, "ended") for r in self.runs_of(sweep.id))

    def _assign_run(self, sweep: SweepRecord, agent: AgentRecord, args: dict[str, Any]) -> RunRecord:
        sweep.handed_out += 1
        run = RunRecord(
            id=new_id(),
            entity=sweep.entity,
            project=sweep.project,
            sweep=sweep.id,
            agent=agent.id,
            args=args,
            config={k: v["value"] for k, v in args.items()},
            agent_state="assigned",
            program=sweep.config.get("program"),
        )
        self.runs[(run.entity, run.project, run.id)] = run
        agent.run_ids.append(run.id)
        return run

    # runs --------------------------------------------------------------------------------------
    def _run_by_id(self, entity: str, project: str, run_id: str) -> RunRecord | None:
        return self.runs.get((entity, project, run_id))

    def get_run(self, entity: str, project: str, run_id: str) -> RunRecord | None:
        with self.lock:
            return self._run_by_id(entity, project, run_id)

    def find_run(self, run_id: str) -> RunRecord | None:
        """By run id (name) or storage id, in any project."""
        with self.lock:
            for run in self.runs.values():
                if run_id in (run.id, run.storage_id):
                    return run
            return None

    def upsert_run(self, *, entity: str, project: str, run_id: str) -> tuple[RunRecord, bool]:
        """The run with this id, created if new; returns (run, inserted)."""
        with self.lock:
            run = self._run_by_id(entity, project, run_id)
            if run is not None:
                return run, False
            run = RunRecord(id=run_id, entity=entity, project=project)
            self.runs[(entity, project, run_id)] = run
            return run, True

    def delete_run(self, key: str) -> bool:
        with self.lock:
            run = self.find_run(key)
            if run is None:
                return False
            del self.runs[(run.entity, run.project, run.id)]
            return True

    def project_runs(self, entity: str, project: str) -> list[RunRecord]:
        with self.lock:
            return [r for r in self.runs.values() if r.entity == entity and r.project == project]
