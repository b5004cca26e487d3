"""What ``report`` says of launches (pure): per launch and sweep the runs done, failed and still going, the
failures grouped by cause with the runs' parameters, the GPU-hours used against the estimate, the note,
and the commands to type next; as a JSON document and as Markdown ready to paste."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from atlas_sweeps.errors import UsageError
from atlas_sweeps.slurm.causes import CAUSES, WORDS
from atlas_sweeps.slurm.states import DONE, FAILED, PENDING, RUNNING, UNKNOWN
from atlas_sweeps.status.model import LaunchStatus, SweepStatus, TaskRow

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
    gpu_hours: float


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
    gpu_hours: float
    estimate: float
    commands: tuple[str, ...]


def gpus_per_job(status: LaunchStatus) -> float:
    """The GPUs one job of the launch was given: recorded at launch, else what its estimate was made with."""
    rec = status.launch
    recorded = rec.options.get("gpus_per_job") if rec.options else None
    if isinstance(recorded, int | float):
        return float(recorded)
    test_time = float(rec.options.get("test_time") or 1.0) if rec.options else 1.0
    return rec.total_hours / (rec.total_runs * test_time) if rec.total_runs and test_time else 1.0


def _gpu_hours(tasks: Iterable[TaskRow], gpus: float) -> float:
    """Elapsed time of the runs' attempts as recorded (sacct's where accounting exists, else squeue's) x GPUs
    per job."""
    return sum(t.spent for t in tasks) * gpus / 3600


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


def build_report(status: LaunchStatus, *, retryable: bool = False) -> LaunchReport:
    """The report of one launch as its statuses stand; ``retryable`` when its backend can resubmit single
    runs (``atlas-sweeps retry``)."""
    rec = status.launch
    gpus = gpus_per_job(status)
    sweeps = tuple(SweepReport(name=s.name, tags=s.tags, counts=s.counts, failures=_failures(s),
                               gpu_hours=_gpu_hours(s.tasks, gpus)) for s in status.sweeps)
    config = (rec.options.get("config_name") if rec.options else None) or rec.config_path
    return LaunchReport(id=rec.id, created=rec.created, config=config, cluster=rec.cluster, note=rec.note,
                        counts=status.counts, sweeps=sweeps, gpus_per_job=gpus,
                        gpu_hours=sum(s.gpu_hours for s in sweeps), estimate=rec.total_hours,
                        commands=next_commands(rec.id, sweeps, counts=status.counts, retryable=retryable))


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
        "gpu_hours": round(report.gpu_hours, 3), "estimate_gpu_hours": report.estimate,
        "sweeps": [{
            "name": s.name, "tags": list(s.tags), "counts": s.counts, "gpu_hours": round(s.gpu_hours, 3),
            "failures": [{"cause": g.cause or None, "runs": [
                {"job": r.job, "run": r.run, "params": r.params, "error": r.error} for r in g.runs]}
                for g in s.failures],
        } for s in report.sweeps],
        "commands": list(report.commands),
    }


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
        lines += [f"- runs: {_counts_text(r.counts)}",
                  f"- GPU-hours: {r.gpu_hours:.2f} used of {r.estimate:g} estimated ({r.gpus_per_job:g} per job)",
                  ""]
        for s in r.sweeps:
            tags = f" [{_md(','.join(s.tags))}]" if s.tags else ""
            lines += [f"### {_md(s.name)}{tags}: {_counts_text(s.counts)}, {s.gpu_hours:.2f} GPU-hours", ""]
            for g in s.failures:
                lines += [f"**{g.words}** ({len(g.runs)})", "", "| job | run | parameters | error |",
                          "|---|---|---|---|"]
                lines += [f"| {_md(r_.job)} | {r_.run} | {_md(r_.label)} | {_md(r_.error)} |" for r_ in g.runs]
                lines.append("")
        if r.commands:
            lines += ["Next:", "", "```console", *(f"$ {c}" for c in r.commands), "```", ""]
    return "\n".join(lines).rstrip() + "\n"
