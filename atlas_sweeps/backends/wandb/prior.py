"""``launch --skip-done`` on the W&B backend: the finished W&B runs of the project that carry every tag of a
sweep and ran one of its grid points. The new grid sweep is created with them as ``prior_runs`` (what
``wandb.sweep(..., prior_runs=[ids])`` sends as ``priorRunsFilters``), so W&B counts those points done and
hands the agents only the rest. One paged GraphQL query per tag set; no wandb import."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atlas_sweeps.config.params import expand_runs
from atlas_sweeps.errors import UsageError

PAGE = 500
MAX_RUNS = 20000  # runs read per tag set at most: a larger project's history is cut (and said so)

RUNS_QUERY = """
query Runs($project: String!, $entity: String, $cursor: String, $perPage: Int = 500, $filters: JSONString) {
    project(name: $project, entityName: $entity) {
        runs(filters: $filters, after: $cursor, first: $perPage) {
            edges { node { name state tags config } cursor }
            pageInfo { endCursor hasNextPage }
        }
    }
}
"""


@dataclass(frozen=True)
class PriorRuns:
    """What a sweep's earlier finished runs cover: ``points`` of its grid (each counted once), run by
    ``run_ids`` (all of them go to W&B: several runs of one point are all prior runs)."""

    points: int
    run_ids: tuple[str, ...]


def tags_filter(tags: Sequence[str]) -> str:
    """The runs filter of finished runs carrying every one of ``tags``."""
    return json.dumps({"$and": [{"state": "finished"}, *({"tags": {"$in": [t]}} for t in tags)]})


def fetch_finished_runs(client: Any, *, entity: str | None, project: str, tags: Sequence[str]) -> list[dict[str, Any]]:
    """The finished runs of ``entity/project`` with every tag of ``tags``: their names, tags and configs."""
    nodes: list[dict[str, Any]] = []
    cursor = None
    while len(nodes) < MAX_RUNS:
        data = client.execute(RUNS_QUERY, {"project": project, "entity": entity, "cursor": cursor, "perPage": PAGE,
                                           "filters": tags_filter(tags)}, operation="Runs")
        runs = ((data.get("project") or {}).get("runs")) or {}
        nodes += [e["node"] for e in runs.get("edges") or [] if isinstance(e.get("node"), dict)]
        info = runs.get("pageInfo") or {}
        if not info.get("hasNextPage") or not info.get("endCursor"):
            break
        cursor = info["endCursor"]
    return nodes


def _plain(config: Any) -> dict[str, Any]:
    """A run's W&B config (``{"lr": {"value": 0.1}}``, as a JSON string or a dict) as ``{"lr": 0.1}``."""
    if isinstance(config, str):
        try:
            config = json.loads(config or "{}")
        except ValueError:
            return {}
    if not isinstance(config, dict):
        return {}
    return {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in config.items()}


def _same(a: Any, b: Any) -> bool:
    """Equal as W&B's grid compares a run's value with a grid value (1 and 1.0 alike; True is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def covered(config: Mapping[str, Any], tags: Sequence[str], runs: Iterable[Mapping[str, Any]]) -> PriorRuns:
    """The grid points of a sweep ``config`` that finished ``runs`` with all of ``tags`` ran (pure)."""
    if str(config.get("method", "grid")) != "grid":
        raise UsageError(f"--skip-done on the W&B backend needs grid sweeps; this one is {config.get('method')}",
                         hint="W&B cannot tell which random or bayes runs are done: leave --skip-done out")
    points = expand_runs(dict(config))
    hit: set[int] = set()
    ids: list[str] = []
    for run in runs:
        if str(run.get("state") or "").lower() != "finished" or not set(tags) <= set(run.get("tags") or ()):
            continue
        values = _plain(run.get("config"))
        matched = [i for i, p in enumerate(points) if all(k in values and _same(values[k], v) for k, v in p.items())]
        if matched:
            hit.update(matched)
            ids.append(str(run.get("name")))
    return PriorRuns(points=len(hit), run_ids=tuple(dict.fromkeys(ids)))
