"""What ``launch`` prints: the dry run and the final summary, for people (rich) and for scripts (JSON)."""

from __future__ import annotations

import shlex
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from atlas_sweeps.launch.dry_run import DryRunRoot
from atlas_sweeps.launch.jobs import PreparedSweep
from atlas_sweeps.launch.launcher import LaunchResult, Prepared


def hours_text(hours: float) -> str:
    """``6`` rather than ``6.0``, as the original printed it."""
    return f"{hours:g}"


def totals_lines(runs: int, hours: float) -> list[str]:
    return [f"num runs: {runs}", f"total gpu hours: {hours_text(hours)}"]


SHOWN_RUNS = 20  # a dry run's text lists this many runs of a sweep; --json lists them all


def run_lines(run_argv: tuple[tuple[str, ...], ...], *, runs: int, limit: int = SHOWN_RUNS) -> list[str]:
    """Each run's command line as a shell would take it (``0  python main.py --lr=0.1``), the first ``limit``
    of them; a backend whose agents pick their runs has none to list (pure)."""
    if not run_argv:
        return [f"  {runs} run(s), handed to the agents by the sweep's controller as they ask"]
    lines = [f"  {i:>{len(str(len(run_argv) - 1))}}  {shlex.join(argv)}" for i, argv in enumerate(run_argv[:limit])]
    if len(run_argv) > limit:
        lines.append(f"  ... and {len(run_argv) - limit} more (--json lists every run's arguments)")
    return lines


def dry_run_document(prepared: Prepared, sweeps: tuple[PreparedSweep, ...], *, root: DryRunRoot) -> dict[str, Any]:
    """The dry run as one JSON-ready document."""
    return {
        "config": str(prepared.composite.path),
        "cluster": prepared.profile.name,
        "remote_root": root.path,
        "remote_root_note": root.note,
        "backend": prepared.backend,
        "project": prepared.project,
        "entity": prepared.entity,
        "nodes": prepared.plan.nodes,
        "sweeps": [
            {
                "name": s.name,
                "tags": list(s.planned.spec.tags),
                "runs": s.planned.runs,
                "jobs": s.planned.jobs,
                "array_tasks": sum(sub.chunk.count for sub in s.submissions),
                **s.planned.packing.to_options(),
                "gpu_hours": s.planned.hours,
                "sweep_config": s.planned.spec.config,
                "run_args": [list(argv) for argv in s.planned.run_argv],
                "sbatch_script_path": s.script_path,
                "sbatch_script": s.script_text,
                "sbatch_commands": [sub.command() for sub in s.submissions],
            }
            for s in sweeps
        ],
        "totals": {"runs": prepared.plan.total_runs, "gpu_hours": prepared.plan.total_hours},
    }


def _packing_text(s: PreparedSweep) -> str:
    """``  tasks: 2 (3 runs each, 1 at once)`` for a packed sweep, else nothing."""
    p = s.planned.packing
    if not p.packed:
        return ""
    return f"  tasks: {sum(sub.chunk.count for sub in s.submissions)} ({p.runs_per_job} runs each, {p.parallel} at once)"


def _code(console: Console, text: str, lexer: str) -> None:
    """Highlighted on a terminal; verbatim (never cropped) in a pipe."""
    if console.is_terminal and not console.no_color:
        console.print(Syntax(text, lexer, theme="ansi_dark", word_wrap=True))
    else:
        console.print(text, markup=False, highlight=False)


def print_dry_run(console: Console, prepared: Prepared, sweeps: tuple[PreparedSweep, ...], *, root: DryRunRoot) -> None:
    """Every sweep's config and script, then the totals; nothing was contacted."""
    console.print(f"[bold]dry run[/]: {prepared.composite.path} on cluster [cyan]{prepared.profile.name}[/] "
                  f"with the [cyan]{prepared.backend}[/] backend, {prepared.plan.nodes} job(s) per sweep")
    if root.note:
        console.print(f"[yellow]note:[/] {escape(root.note)}", highlight=False)
    for s in sweeps:
        # A printed heading, not a rule: a rule crops its title to the width, and a pipe is 80 columns.
        console.print(f"[bold]── {escape(s.name)}[/]  tags: {escape(', '.join(s.planned.spec.tags) or '-')}  "
                      f"runs: {s.planned.runs}  jobs: {s.planned.jobs}{_packing_text(s)}  gpu hours: {hours_text(s.planned.hours)}",
                      highlight=False)
        config = yaml.safe_dump(s.planned.spec.config, sort_keys=False).rstrip()
        console.print("[dim]# sweep configuration[/]")
        _code(console, config, "yaml")
        console.print("[dim]# runs[/]")
        for line in run_lines(s.planned.run_argv, runs=s.planned.runs):
            console.print(line, markup=False, highlight=False)
        console.print(f"[dim]# sbatch script {s.script_path}[/]")
        _code(console, s.script_text.rstrip(), "bash")
        console.print("[dim]# submitted with[/]")
        for sub in s.submissions:
            console.print(sub.command(), highlight=False)
    console.rule()
    for line in totals_lines(prepared.plan.total_runs, prepared.plan.total_hours):
        console.print(line)
    console.print("[dim]nothing was contacted or created; drop --dry-run to launch[/]")


def result_document(result: LaunchResult) -> dict[str, Any]:
    """The launch as one JSON-ready document."""
    jobs_by_sweep: dict[str, list[dict[str, Any]]] = {}
    for job in result.jobs:
        jobs_by_sweep.setdefault(job.sweep_name, []).append(
            {"job_id": job.job_id, "job_name": job.job_name, "array": job.array_spec,
             "task_offset": job.task_offset, "output": job.output, "error": job.error, "script": job.script})
    launch = result.launch
    return {
        "launch": launch.id, "cluster": launch.cluster, "backend": launch.backend, "status": launch.status,
        "snapshot": launch.snapshot, "git": {"commit": launch.git_commit, "branch": launch.git_branch,
                                             "dirty": launch.git_dirty},
        "sweeps": [{"name": s.name, "tags": list(s.tags), "sweep_id": s.sweep_id, "url": s.url, "runs": s.runs,
                    "log_dir": s.log_dir, "jobs": jobs_by_sweep.get(s.name, [])} for s in result.sweeps],
        "totals": {"runs": launch.total_runs, "gpu_hours": launch.total_hours,
                   "array_tasks": sum(j.task_count for j in result.jobs)},
        "packing": {k: launch.options.get(k) or 1 for k in ("runs_per_job", "parallel_per_job")},
        "remote_calls": result.remote_calls,
        "snapshot_files_transferred": result.snapshot_files,
    }


def print_result(console: Console, result: LaunchResult) -> None:
    """The table of sweeps, where their logs are, the totals and the next commands to type."""
    launch = result.launch
    table = Table(title=f"launch {launch.id} on {launch.cluster} ({launch.backend} backend)", title_justify="left")
    for col in ("sweep", "tags", "runs", "job ids"):
        table.add_column(col, overflow="fold")
    jobs: dict[str, list[str]] = {}
    for job in result.jobs:
        jobs.setdefault(job.sweep_name, []).append(f"{job.job_id}[{job.array_spec}]")
    urls = [s for s in result.sweeps if s.url]
    if urls:
        table.add_column("sweep page", overflow="fold")
    for s in result.sweeps:
        row = [s.name, ",".join(s.tags), str(s.runs), " ".join(jobs.get(s.name, []))]
        table.add_row(*row, *([s.url or ""] if urls else []))
    console.print(table)
    log_dirs = {s.log_dir.rsplit("/", 1)[0] for s in result.sweeps if s.log_dir}
    for log_dir in sorted(log_dirs):
        console.print(f"logs: {log_dir}/<sweep>/<job>_<task>.out|.err", highlight=False)
    per_task = launch.options.get("runs_per_job") or 1
    if per_task > 1:
        console.print(f"packed: {sum(j.task_count for j in result.jobs)} array task(s) of {per_task} runs, "
                      f"{launch.options.get('parallel_per_job') or 1} at once; each run's own log: "
                      "<job>_<task>.r<run>.out|.err (atlas-sweeps tail JOB_TASK --run N)", highlight=False)
    for line in totals_lines(launch.total_runs, launch.total_hours):
        console.print(line)
    first = result.jobs[0].job_id + "_0" if result.jobs else "JOBID"
    console.print(f"next: [bold]atlas-sweeps status --launch {launch.id}[/]   "
                  f"[bold]atlas-sweeps tail {first}[/]", highlight=False)
