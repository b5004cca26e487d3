"""Progress of W&B sweeps (runs per state) for ``ls`` and ``status``: one GraphQL query per sweep per call at
most, answers cached for a few seconds, sweeps queried concurrently with a hard timeout. No wandb import, so
``status`` stays fast."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from atlas_sweeps.backends.base import SweepProgress
from atlas_sweeps.backends.wandb.agent_gate import idle_reason
from atlas_sweeps.errors import BackendError
from atlas_sweeps.state.store import SweepRecord

CACHE_SECONDS = 10.0
_TIMEOUT = 5.0

# The shape of the query `wandb agent` itself sends (operation SweepWithRuns), trimmed to what we read.
SWEEP_QUERY = """
query SweepWithRuns($entity: String, $project: String, $sweep: String!) {
    project(name: $project, entityName: $entity) {
        sweep(sweepName: $sweep) {
            id name state runCount runCountExpected
            runs { edges { node { name state } } }
        }
    }
}
"""


@dataclass(frozen=True)
class SweepPath:
    """``entity/project/id``: how a W&B sweep is recorded as ``sweep_id`` by the wandb backend."""

    entity: str
    project: str
    sweep: str

    @classmethod
    def parse(cls, text: str) -> SweepPath:
        parts = text.split("/")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"not a W&B sweep path entity/project/id: {text!r}")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.entity}/{self.project}/{self.sweep}"


def query_sweep(client: Any, path: SweepPath) -> dict[str, Any] | None:
    """The sweep node (id, state, counts, runs' states) or None when the server has no such sweep."""
    data = client.execute(SWEEP_QUERY, {"entity": path.entity, "project": path.project, "sweep": path.sweep},
                          operation="SweepWithRuns")
    return ((data.get("project") or {}).get("sweep")) or None


def progress_from_node(node: dict[str, Any]) -> SweepProgress:
    """Runs per (lower-case) state, from a sweep node, and whether it has anything left for an agent."""
    edges = ((node.get("runs") or {}).get("edges")) or []
    states = Counter(str((e.get("node") or {}).get("state") or "unknown").lower() for e in edges)
    return SweepProgress(runs_by_state=dict(states),
                         nothing_left=idle_reason(node.get("state"), node.get("runCount"), node.get("runCountExpected")))


_cache: dict[tuple[str, str], tuple[float, SweepProgress | None]] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget cached answers (tests; a user pressing refresh)."""
    with _cache_lock:
        _cache.clear()


def fetch_progress(sweeps: list[SweepRecord], *, base_url: str | None) -> dict[str, SweepProgress]:
    """Progress of each W&B sweep in ``sweeps``, keyed by ``sweep_id``. Sweeps without a W&B path, and
    sweeps whose query failed (no key, server down, sweep gone), are left out: callers show them as
    unknown. Failures are cached too, so a dead server costs one timeout per cache period, not per call."""
    from atlas_sweeps.backends.wandb.credentials import client_for

    wanted = sorted({s.sweep_id for s in sweeps if s.sweep_id and s.sweep_id.count("/") == 2})
    if not wanted:
        return {}
    now = time.monotonic()
    result: dict[str, SweepProgress] = {}
    try:
        client = client_for(base_url, timeout=_TIMEOUT)
    except BackendError:
        return {}
    missing = []
    with _cache_lock:
        for sweep_id in wanted:
            hit = _cache.get((client.base_url, sweep_id))
            if hit is not None and now - hit[0] < CACHE_SECONDS:
                if hit[1] is not None:
                    result[sweep_id] = hit[1]
            else:
                missing.append(sweep_id)

    def one(sweep_id: str) -> SweepProgress | None:
        try:
            node = query_sweep(client, SweepPath.parse(sweep_id))
        except (BackendError, ValueError):
            return None
        return progress_from_node(node) if node else None

    if missing:
        with ThreadPoolExecutor(max_workers=min(8, len(missing))) as pool:
            answers = dict(zip(missing, pool.map(one, missing), strict=True))
        with _cache_lock:
            for sweep_id, progress in answers.items():
                _cache[(client.base_url, sweep_id)] = (time.monotonic(), progress)
                if progress is not None:
                    result[sweep_id] = progress
    return result
