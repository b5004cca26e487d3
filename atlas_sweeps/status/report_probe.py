"""The ONE remote script ``report`` runs per cluster, and its parser (pure): ``sacct``'s elapsed time and
allocated GPUs of every array of the launches (all attempts), and, for sweeps whose runs log to W&B offline
on the cluster, the best run by the sweep's ``metric`` (``offline_best``, run there by the profile's
interpreter). Bounded in bytes: one sacct line per task, one JSON line per sweep. ``report --refresh`` runs
it in the same call as the status poll (``Poller.extra``)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas_sweeps.launch.layout import log_path
from atlas_sweeps.remote.protocol import EMIT_FUNCTION, parse_facts
from atlas_sweeps.slurm.sacct import accounting_answer
from atlas_sweeps.slurm.states import DONE
from atlas_sweeps.slurm.usage import TaskUsage, parse_usage, usage_command
from atlas_sweeps.state.store import JobRecord, SweepRecord
from atlas_sweeps.status.model import LaunchStatus

_OFFLINE_BEST = Path(__file__).with_name("offline_best.py")
_PREFIX = "report_"  # the facts' keys: never those of the poll it may share a call with


@dataclass(frozen=True)
class SweepMetric:
    """A sweep's ``metric``: its name and goal (W&B's default goal is ``minimize``)."""

    name: str
    goal: str = "minimize"


def sweep_metric(config: Mapping[str, Any]) -> SweepMetric | None:
    """The ``metric`` of a sweep config, None when it has none."""
    metric = config.get("metric")
    if not isinstance(metric, Mapping) or not metric.get("name"):
        return None
    goal = str(metric.get("goal") or "minimize").lower()
    return SweepMetric(name=str(metric["name"]), goal="maximize" if goal == "maximize" else "minimize")


@dataclass(frozen=True)
class BestQuery:
    """One sweep whose best run is read on the cluster: its completed runs' ``.err`` logs."""

    key: str  # "<launch>/<sweep>"
    metric: SweepMetric
    runs: tuple[tuple[int, str], ...]  # (run index, its latest attempt's .err log)


@dataclass(frozen=True)
class ReportQuery:
    """What one cluster is asked: the arrays of its launches and the sweeps to find a best run of."""

    job_ids: tuple[str, ...]
    since: float  # the earliest submission (sacct's --starttime, less a margin)
    best: tuple[BestQuery, ...] = ()
    setup: tuple[str, ...] = ()
    interpreter: str = "python3"


@dataclass(frozen=True)
class ReportFacts:
    """What the report script said; ``accounting`` None when sacct was not asked (or the call failed)."""

    accounting: bool | None = None
    usage: dict[tuple[str, int], TaskUsage] = field(default_factory=dict)
    best: dict[str, dict[str, Any]] = field(default_factory=dict)  # by BestQuery.key
    errors: tuple[str, ...] = ()


def best_queries(status: LaunchStatus, sweeps: Sequence[SweepRecord], jobs: Sequence[JobRecord]) -> list[BestQuery]:
    """The sweeps of a launch that have a ``metric``, with the ``.err`` logs of their completed runs."""
    by_id = {j.job_id: j for j in jobs}
    out = []
    shown = {s.name: s for s in status.sweeps}
    for rec in sweeps:
        metric = sweep_metric(rec.config)
        sweep = shown.get(rec.name)
        if metric is None or sweep is None:
            continue
        runs = tuple((row.run, log_path(by_id[row.state.job_id].error, job_id=row.state.job_id, task=row.state.task))
                     for row in sweep.tasks if row.category == DONE and row.state.job_id in by_id)
        out.append(BestQuery(key=f"{status.launch.id}/{rec.name}", metric=metric, runs=runs))
    return out


def report_script(query: ReportQuery) -> str:
    """The bash the report runs once per cluster (prepended to the poll's with ``--refresh``)."""
    start = int(query.since - 300)
    lines = [EMIT_FUNCTION, "export LC_ALL=C", "rerrf=$(mktemp)"]
    ids = ",".join(j for j in query.job_ids if j.isdigit())
    if ids:
        lines += [
            f"rids={shlex.quote(ids)}",
            f"rstart=$(date -d @{start} +%Y-%m-%dT%H:%M:%S 2>/dev/null || echo now-30days)",
            f"if ! command -v sacct >/dev/null 2>&1; then emit {_PREFIX}accounting no",
            f'elif rac=$({usage_command(ids_expr=chr(34) + "$rids" + chr(34), start_expr=chr(34) + "$rstart" + chr(34))}'
            ' 2>"$rerrf"); then',
            f'  emit {_PREFIX}accounting yes; emit {_PREFIX}usage "$rac"',
            f'else emit {_PREFIX}sacct_error "$(head -c 2000 "$rerrf")"; fi',
        ]
    wanted = [b for b in query.best if b.runs]
    if wanted:
        spec = json.dumps({"sweeps": [{"key": b.key, "metric": b.metric.name, "goal": b.metric.goal,
                                       "runs": [list(r) for r in b.runs]} for b in wanted]})
        # A subshell: the set-up lines (a venv, modules) change nothing the poll after it runs with.
        lines += [
            "(",
            "exec 3>&1 1>&2",
            *query.setup,
            EMIT_FUNCTION.replace("printf 'ATLAS", "printf >&3 'ATLAS"),
            f"if out=$({shlex.quote(query.interpreter)} - {shlex.quote(spec)} 2>\"$rerrf\" <<'ATLAS_OFFLINE_BEST'",
            _OFFLINE_BEST.read_text(),
            "ATLAS_OFFLINE_BEST",
            f'); then emit {_PREFIX}best "$out"; else emit {_PREFIX}best_error "$(tail -c 1000 "$rerrf")"; fi',
            ")",
        ]
    lines += ['rm -f "$rerrf"', f"emit {_PREFIX}done ok"]
    return "\n".join(lines) + "\n"


def parse_report(stdout: str, *, job_ids: Iterable[str]) -> ReportFacts:
    """The facts of ``report_script``'s output (a poll's facts in the same output are ignored)."""
    values = {k[len(_PREFIX):]: v for k, v in parse_facts(stdout) if k.startswith(_PREFIX)}
    errors = []
    if "done" not in values:
        errors.append("the report script stopped before its end")
    accounting, sacct_error = accounting_answer(values)
    usage = parse_usage(values.get("usage", ""), job_ids=set(job_ids)) if accounting else {}
    if sacct_error:
        errors.append(f"sacct failed: {sacct_error}")
    best: dict[str, dict[str, Any]] = {}
    for line in values.get("best", "").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("key"), str):
            best[doc["key"]] = doc
    if "best_error" in values:
        last = (values["best_error"].strip().splitlines() or ["no message"])[-1]
        errors.append(f"reading the runs' offline summaries failed: {last}")
    return ReportFacts(accounting=accounting, usage=usage, best=best, errors=tuple(errors))


def report_query(statuses: Sequence[LaunchStatus], *, sweeps: Mapping[str, Sequence[SweepRecord]],
                 jobs: Mapping[str, Sequence[JobRecord]], offline: Mapping[str, bool], setup: Sequence[str] = (),
                 interpreter: str = "python3") -> ReportQuery:
    """What to ask one cluster of its ``statuses``' launches (by id in ``sweeps``, ``jobs``; ``offline``:
    whether the launch's runs log to W&B offline on the cluster, so its best runs are read there)."""
    ids = tuple(dict.fromkeys(j.job_id for s in statuses for j in jobs.get(s.launch.id, ())))
    submitted = [j.submitted for s in statuses for j in jobs.get(s.launch.id, ())]
    best = tuple(q for s in statuses if offline.get(s.launch.id)
                 for q in best_queries(s, sweeps.get(s.launch.id, ()), jobs.get(s.launch.id, ())))
    return ReportQuery(job_ids=ids, since=min(submitted, default=0.0), best=best, setup=tuple(setup),
                       interpreter=interpreter)


def is_empty(query: ReportQuery) -> bool:
    """Nothing to ask: no array was submitted and no sweep has a best run to read."""
    return not query.job_ids and not any(b.runs for b in query.best)
