"""A sweep's best run by its ``metric`` as ``report`` shows it (pure): from the offline summaries read on the
cluster (local backend) or from W&B (W&B backend), with the run's parameters where they are known."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atlas_sweeps.backends.base import BackendBest
from atlas_sweeps.status.model import SweepStatus
from atlas_sweeps.status.report_probe import SweepMetric, sweep_metric
from atlas_sweeps.status.run_params import params_label

if TYPE_CHECKING:
    from atlas_sweeps.backends.base import SweepBackend
    from atlas_sweeps.state.store import SweepRecord


@dataclass(frozen=True)
class BestRun:
    """The best run of a sweep (``value`` None: none known, ``why`` says so)."""

    metric: str
    goal: str
    value: float | None = None
    run: int | None = None  # run index (local backend)
    run_id: str = ""  # the W&B run id
    params: Mapping[str, Any] | None = None
    label: str = ""
    logged: int = 0  # runs that logged the metric
    why: str = ""
    unread: int = 0  # completed runs whose files the report's byte budget left unread

    def text(self) -> str:
        """``val_loss 0.12 (minimize): run 3 lr=0.1 [abc123]``, or why none is known."""
        head = f"{self.metric} ({self.goal})"
        if self.value is None:
            return f"{head}: {self.why or 'unknown'}"
        who = " ".join(p for p in (f"run {self.run}" if self.run is not None else "", self.label,
                                   f"[{self.run_id}]" if self.run_id else "") if p)
        cut = f"; {self.unread} runs not read (the byte budget of one call)" if self.unread else ""
        return f"{head}: {self.value:.6g}, {who} (of {self.logged} that logged it{cut})"

    def document(self) -> dict[str, Any]:
        return {"metric": self.metric, "goal": self.goal, "value": self.value, "run": self.run,
                "run_id": self.run_id or None, "params": dict(self.params) if self.params else self.params,
                "logged": self.logged, "why": self.why or None, "unread": self.unread}


def offline_best(metric: SweepMetric, sweep: SweepStatus, answer: Mapping[str, Any] | None, *,
                 reached: bool) -> BestRun:
    """The best run the cluster's ``offline_best`` answer names for one sweep; ``reached`` False when the
    report's call did not happen or failed."""
    base = BestRun(metric=metric.name, goal=metric.goal)
    done = [t for t in sweep.tasks if t.category == "done"]
    if not done:
        return _with(base, why="no run completed yet")
    if not reached or answer is None:
        return _with(base, why="unknown: the cluster was not reached")
    best = answer.get("best")
    logged = int(answer.get("logged") or 0)
    if not isinstance(best, Mapping):
        if answer.get("unread"):
            return _with(base, why=f"unknown: the byte budget of one call left {answer['unread']} runs unread")
        if not answer.get("named"):
            return _with(base, why=f"no offline W&B run found in the logs of the {len(done)} completed runs")
        return _with(base, why=f"no completed run logged {metric.name}")
    run = best.get("run")
    row = next((t for t in sweep.tasks if t.run == run), None)
    return BestRun(metric=metric.name, goal=metric.goal, value=float(best["value"]), run=run,
                   run_id=str(best.get("run_id") or ""), params=row.params if row else None,
                   label=row.label if row else "", logged=logged, unread=int(answer.get("unread") or 0))


def _with(base: BestRun, *, why: str) -> BestRun:
    return BestRun(metric=base.metric, goal=base.goal, why=why)


def backend_best(metric: SweepMetric, answer: BackendBest, *, config: Mapping[str, Any]) -> BestRun:
    """The best run a backend found (W&B), labelled by the sweep parameters that take several values."""
    if answer.value is None:
        return BestRun(metric=metric.name, goal=metric.goal, why=answer.why or "unknown")
    spec = config.get("parameters") or {}
    varying = [k for k, v in spec.items() if isinstance(v, Mapping) and "value" not in v]
    return BestRun(metric=metric.name, goal=metric.goal, value=answer.value, run_id=answer.run_id,
                   params=answer.params, label=params_label(answer.params or {}, varying), logged=answer.logged)


def backend_bests(backend: SweepBackend, sweeps: Sequence[SweepRecord]) -> dict[str, BestRun]:
    """The best runs ``backend`` knows of ``sweeps`` that have a metric, by sweep name (I/O: the backend)."""
    metrics = {s.name: m for s in sweeps if (m := sweep_metric(s.config)) is not None}
    if not metrics:
        return {}
    answers = backend.best_runs(sweeps, metrics={n: (m.name, m.goal) for n, m in metrics.items()})
    configs = {s.name: s.config for s in sweeps}
    return {name: backend_best(metrics[name], a, config=configs[name]) for name, a in answers.items()}
