"""The best run of each W&B sweep by its ``metric``, from W&B: one GraphQL query per sweep (the runs' states,
configs and summaries, the fields ``wandb agent`` itself asks for), the best finished run picked here.
No wandb import."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from atlas_sweeps.backends.base import BackendBest
from atlas_sweeps.backends.wandb.progress import SweepPath
from atlas_sweeps.errors import BackendError
from atlas_sweeps.state.store import SweepRecord

RUNS_QUERY = """
query SweepWithRuns($entity: String, $project: String, $sweep: String!) {
    project(name: $project, entityName: $entity) {
        sweep(sweepName: $sweep) {
            id name state
            runs { edges { node { name state config summaryMetrics } } }
        }
    }
}
"""


def metric_value(summary: Mapping[str, Any], metric: str) -> float | None:
    """``metric`` of a run summary (``a.b`` for a nested key, or a flat key with a dot), if numeric."""
    value: Any = summary.get(metric)
    if value is None:
        value = summary
        for part in metric.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def run_params(config: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The sweep parameters ``names`` of a run's W&B config (``{"lr": {"value": 0.1}}``)."""
    out = {}
    for name in names:
        item = config.get(name)
        if isinstance(item, Mapping) and "value" in item:
            out[name] = item["value"]
        elif item is not None and not isinstance(item, Mapping):
            out[name] = item
    return out


def _json(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def pick_best(nodes: Sequence[Mapping[str, Any]], *, metric: str, goal: str,
              names: Sequence[str]) -> BackendBest:
    """The best finished run of a sweep's run nodes (pure)."""
    finished = [n for n in nodes if str(n.get("state") or "").lower() == "finished"]
    scored = [(v, n) for n in finished if (v := metric_value(_json(n.get("summaryMetrics")), metric)) is not None]
    if not scored:
        why = "no run finished yet" if not finished else f"no finished run logged {metric}"
        return BackendBest(why=why)
    value, node = (max if goal == "maximize" else min)(scored, key=lambda vn: vn[0])
    return BackendBest(run_id=str(node.get("name") or ""), value=value, logged=len(scored),
                       params=run_params(_json(node.get("config")), names))


def fetch_best(client: Any, sweeps: Sequence[SweepRecord], *, metrics: Mapping[str, tuple[str, str]]) -> dict[str, BackendBest]:
    """The best run of each sweep named in ``metrics`` (sweep name -> (metric, goal)), by sweep name; a sweep
    whose query failed says why."""
    out = {}
    for sweep in sweeps:
        if sweep.name not in metrics or not sweep.sweep_id:
            continue
        metric, goal = metrics[sweep.name]
        try:
            nodes = sweep_runs(client, sweep.sweep_id)
        except (BackendError, ValueError) as exc:
            out[sweep.name] = BackendBest(why=f"unknown: {exc}")
            continue
        names = list((sweep.config.get("parameters") or {}).keys())
        out[sweep.name] = pick_best(nodes, metric=metric, goal=goal, names=names)
    return out


def sweep_runs(client: Any, sweep_id: str) -> list[dict[str, Any]]:
    """The run nodes (name, state, config, summaryMetrics) of the W&B sweep ``entity/project/id``;
    BackendError when W&B has no such sweep, ValueError for a malformed id."""
    path = SweepPath.parse(sweep_id)
    data = client.execute(RUNS_QUERY, {"entity": path.entity, "project": path.project, "sweep": path.sweep},
                          operation="SweepWithRuns")
    node = (data.get("project") or {}).get("sweep")
    if not node:
        raise BackendError(f"W&B has no sweep {sweep_id}")
    return [e.get("node") or {} for e in ((node.get("runs") or {}).get("edges")) or []]
