"""What ``report`` says of launches (pure): per launch and sweep the runs done, failed and still going, the
failures grouped by cause with the runs' parameters, the GPU-hours used against the estimate, the note,
and the commands to type next; as a JSON document and as Markdown ready to paste."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from atlas_sweeps.errors import UsageError
from atlas_sweeps.slurm.causes import CAUSES, WORDS
from atlas_sweeps.slurm.states import DONE, FAILED, PENDING, RUNNING, UNKNOWN
from atlas_sweeps.state.store import JobRecord, SweepRecord
from atlas_sweeps.status.best_run import BestRun, offline_best
from atlas_sweeps.status.model import LaunchStatus, SweepStatus, TaskRow
from atlas_sweeps.status.report_probe import ReportFacts, sweep_metric

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> float:
    """``--since``'s ``24h``, ``90m``, ``7d``, ``2w`` or ``30s`` in seconds."""
    match = _SINCE.match(text)
    if not match:
        raise UsageError(f"--since {text!r} is not a duration", hint="use a number and a unit: 24h, 90m, 7d, 2w")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class FailedRun:
    """One run that did not complete: its job, parameters and last error line."""

    job: str
    run: int
    params: Mapping[str, Any] | None
    label: str
    error: str


@dataclass(frozen=True)
class FailureGroup:
    """The failed runs of one cause (``cause`` "" when none is known yet)."""

    cause: str
    runs: tuple[FailedRun, ...]

    @property
    def words(self) -> str:
        return WORDS.get(self.cause, "cause not known yet")


@dataclass(frozen=True)
class SweepReport:
    name: str
    tags: tuple[str, ...]
    counts: dict[str, int]
    failures: tuple[FailureGroup, ...]
    job_hours: float  # elapsed hours of the runs' attempts
    gpu_hours: float | None  # sacct's elapsed x allocated GPUs; None: unknown (no accounting, not reached)
    best: BestRun | None = None  # None: the sweep has no metric


@dataclass(frozen=True)
class LaunchReport:
    """One launch: its sweeps, what it used against the estimate, and the commands to type next."""

    id: str
    created: float
    config: str
    cluster: str
    note: str
    counts: dict[str, int]
    sweeps: tuple[SweepReport, ...]
    gpus_per_job: float
    job_hours: float
    gpu_hours: float | None
    estimate: float
    commands: tuple[str, ...]
    usage_why: str = ""  # why gpu_hours is unknown


def gpus_per_job(status: LaunchStatus) -> float:
    """The GPUs one job of the launch was given: recorded at launch, else what its estimate was made with."""
    rec = status.launch
    recorded = rec.options.get("gpus_per_job") if rec.options else None
    if isinstance(recorded, int | float):
        return float(recorded)
    test_time = float(rec.options.get("test_time") or 1.0) if rec.options else 1.0
    return rec.total_hours / (rec.total_runs * test_time) if rec.total_runs and test_time else 1.0


def _job_hours(tasks: Iterable[TaskRow]) -> float:
    """Elapsed hours of the runs' attempts as recorded (sacct's where accounting exists, else squeue's)."""
    return sum(t.spent for t in tasks) / 3600


def _used_gpu_hours(jobs: Iterable[JobRecord], facts: ReportFacts) -> float:
    """GPU-hours sacct says ``jobs`` (every attempt) used: elapsed x GPUs allocated, task by task."""
    return sum(u.gpu_seconds for j in jobs for t in j.tasks if (u := facts.usage.get((j.job_id, t)))) / 3600


def usage_unknown(facts: ReportFacts | None, *, reached: bool, error: str = "") -> str:
    """Why the GPU-hours used are unknown, or "" when sacct told them."""
    if facts is not None and facts.accounting:
        return ""
    if not reached or facts is None:
        return f"the cluster was not reached{': ' + error if error else ''}"
    if facts.accounting is False:
        return "the cluster keeps no accounting (sacct)"
    return "; ".join(facts.errors) or "sacct did not answer"


def _failures(sweep: SweepStatus) -> tuple[FailureGroup, ...]:
    groups: dict[str, list[FailedRun]] = {}
    for row in sweep.tasks:
        if row.category != FAILED and not (row.category == UNKNOWN and row.diagnosis):
            continue
        cause = row.diagnosis.cause if row.diagnosis else ""
        groups.setdefault(cause, []).append(FailedRun(job=row.state.slurm_id, run=row.run, params=row.params,
                                                      label=row.label,
                                                      error=row.diagnosis.error if row.diagnosis else ""))
    order = {c: i for i, c in enumerate(CAUSES)}
    return tuple(FailureGroup(cause=c, runs=tuple(runs))
                 for c, runs in sorted(groups.items(), key=lambda kv: order.get(kv[0], len(order))))


def build_report(status: LaunchStatus, *, retryable: bool = False, facts: ReportFacts | None = None,
                 reached: bool = False, sweeps: Sequence[SweepRecord] = (), jobs: Sequence[JobRecord] = (),
                 best: Mapping[str, BestRun] | None = None, error: str = "") -> LaunchReport:
    """The report of one launch as its statuses stand; ``retryable`` when its backend can resubmit single
    runs (``atlas-sweeps retry``); ``facts`` what the report's remote call said (``reached`` False: it was
    not made or failed, with ``error``); ``best`` the best runs a backend found itself (W&B), by sweep."""
    rec = status.launch
    why = usage_unknown(facts, reached=reached, error=error)
    metrics = {s.name: m for s in sweeps if (m := sweep_metric(s.config)) is not None}
    reports = []
    for s in status.sweeps:
        used = None if why or facts is None else _used_gpu_hours((j for j in jobs if j.sweep_name == s.name), facts)
        found = (best or {}).get(s.name)
        if found is None and s.name in metrics:
            found = offline_best(metrics[s.name], s, facts.best.get(f"{rec.id}/{s.name}") if facts else None,
                                 reached=reached and facts is not None)
        reports.append(SweepReport(name=s.name, tags=s.tags, counts=s.counts, failures=_failures(s),
                                   job_hours=_job_hours(s.tasks), gpu_hours=used, best=found))
    config = (rec.options.get("config_name") if rec.options else None) or rec.config_path
    gpu_hours = None if why else sum(s.gpu_hours or 0.0 for s in reports)
    return LaunchReport(id=rec.id, created=rec.created, config=config, cluster=rec.cluster, note=rec.note,
                        counts=status.counts, sweeps=tuple(reports), gpus_per_job=gpus_per_job(status),
                        job_hours=sum(s.job_hours for s in reports), gpu_hours=gpu_hours,
                        estimate=rec.total_hours, usage_why=why,
                        commands=next_commands(rec.id, reports, counts=status.counts, retryable=retryable))


def next_commands(launch_id: str, sweeps: Iterable[SweepReport], *, counts: Mapping[str, int],
                  retryable: bool = False) -> tuple[str, ...]:
    """What to type next: watch what still runs, resubmit what failed, read a failed run's error log, delete
    the W&B runs of a sweep that failed (to start it over)."""
    out = []
    if counts.get(RUNNING) or counts.get(PENDING):
        out.append(f"atlas-sweeps status --launch {shlex.quote(launch_id)}")
    if retryable and counts.get(FAILED):
        out.append(f"atlas-sweeps retry {shlex.quote(launch_id)} --dry-run")
    for sweep in sweeps:
        if not sweep.failures:
            continue
        out.append(f"atlas-sweeps tail {sweep.failures[0].runs[0].job} --err")
        out += [f"atlas-sweeps clean --tag {shlex.quote(tag)}" for tag in sweep.tags]
    return tuple(dict.fromkeys(out))


def report_document(report: LaunchReport) -> dict[str, Any]:
    """One launch as ``report --json`` prints it."""
    return {
        "id": report.id, "created": report.created, "config": report.config, "cluster": report.cluster,
        "note": report.note, "counts": report.counts, "gpus_per_job": report.gpus_per_job,
        "gpu_hours": _rounded(report.gpu_hours), "gpu_hours_unknown": report.usage_why or None,
        "estimate_gpu_hours": report.estimate, "job_hours": round(report.job_hours, 3),
        "sweeps": [{
            "name": s.name, "tags": list(s.tags), "counts": s.counts, "gpu_hours": _rounded(s.gpu_hours),
            "job_hours": round(s.job_hours, 3), "best": s.best.document() if s.best else None,
            "failures": [{"cause": g.cause or None, "runs": [
                {"job": r.job, "run": r.run, "params": r.params, "error": r.error} for r in g.runs]}
                for g in s.failures],
        } for s in report.sweeps],
        "commands": list(report.commands),
    }


def _rounded(hours: float | None) -> float | None:
    return None if hours is None else round(hours, 3)


def _hours(hours: float | None) -> str:
    return "unknown" if hours is None else f"{hours:.2f}"


def _md(text: str) -> str:
    """Text safe in a Markdown table cell or list item."""
    return re.sub(r"([\\`*_|<>\[\]])", r"\\\1", " ".join(text.split()))


def _counts_text(counts: Mapping[str, int]) -> str:
    parts = [f"{counts[k]} {k}" for k in (DONE, FAILED, RUNNING, PENDING, UNKNOWN) if counts.get(k)]
    return f"{', '.join(parts) or 'no runs'} / {counts.get('total', 0)}"


def report_markdown(reports: Iterable[LaunchReport]) -> str:
    """The reports as Markdown: a section per launch, a line per sweep, a table of failures per cause."""
    lines: list[str] = []
    for r in reports:
        when = datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M")
        lines += [f"## Launch {r.id}: {_md(r.config)} on {_md(r.cluster)} ({when})", ""]
        if r.note:
            lines += [f"> {_md(r.note)}", ""]
        unknown = f" ({_md(r.usage_why)})" if r.usage_why else ""
        lines += [f"- runs: {_counts_text(r.counts)}",
                  f"- GPU-hours: {_hours(r.gpu_hours)} used{unknown} of {r.estimate:g} estimated "
                  f"({r.gpus_per_job:g} per job); {r.job_hours:.2f} job-hours ran",
                  ""]
        for s in r.sweeps:
            tags = f" [{_md(','.join(s.tags))}]" if s.tags else ""
            lines += [f"### {_md(s.name)}{tags}: {_counts_text(s.counts)}, {_hours(s.gpu_hours)} GPU-hours", ""]
            if s.best is not None:
                lines += [f"- best: {_md(s.best.text())}", ""]
            for g in s.failures:
                lines += [f"**{g.words}** ({len(g.runs)})", "", "| job | run | parameters | error |",
                          "|---|---|---|---|"]
                lines += [f"| {_md(r_.job)} | {r_.run} | {_md(r_.label)} | {_md(r_.error)} |" for r_ in g.runs]
                lines.append("")
        if r.commands:
            lines += ["Next:", "", "```console", *(f"$ {c}" for c in r.commands), "```", ""]
    return "\n".join(lines).rstrip() + "\n"
