"""The W&B run each agent task is on, as ``status`` shows it (pure). The wrapper the W&B backend puts first on
an agent job's PATH writes ``<array>_<task>.run`` beside the logs as each run starts: the run's id, a space,
and its parameters as one JSON object (what the agent passed as ``--name=value`` arguments)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atlas_sweeps.launch.layout import RUN_STREAM, task_file_lines
from atlas_sweeps.status.run_params import params_label


@dataclass(frozen=True)
class AgentRun:
    """The run an agent task started last."""

    run_id: str
    params: Mapping[str, Any]

    @property
    def line(self) -> str:
        """The form the wrapper writes and the state database keeps: ``<run id> <parameters as JSON>``."""
        return f"{self.run_id} {json.dumps(self.params)}"

    def label(self, keys: tuple[str, ...] = ()) -> str:
        """``abc123: lr=0.1 bs=64``: the run's id, then its parameters named in ``keys`` (all when empty)."""
        words = params_label(self.params, keys or tuple(self.params))
        return f"{self.run_id}: {words}" if words else self.run_id


def parse_agent_runs(text: str, *, job_id: str) -> dict[tuple[str, int], AgentRun]:
    """``grep``'s ``<dir>/<array>_<task>.run:<run id> <json>`` lines of one array; other lines are ignored."""
    runs: dict[tuple[str, int], AgentRun] = {}
    for task, body in task_file_lines(text, job_id=job_id, stream=RUN_STREAM):
        run = parse_agent_run(body)
        if task.isdigit() and run is not None:
            runs[(job_id, int(task))] = run
    return runs


def parse_agent_run(line: str) -> AgentRun | None:
    """One ``<run id> <parameters as JSON>`` line (parameters that are not a JSON object are left out)."""
    run_id, _, raw = line.strip().partition(" ")
    if not run_id:
        return None
    try:
        params = json.loads(raw) if raw else {}
    except ValueError:
        params = {}
    return AgentRun(run_id=run_id, params=params if isinstance(params, dict) else {})
