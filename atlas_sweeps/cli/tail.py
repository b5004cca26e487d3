"""``atlas-sweeps tail JOB``: follow one job's log until it ends, exiting with the job's exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from atlas_sweeps.errors import UsageError

if TYPE_CHECKING:
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.job_target import JobTarget


@click.command()
@click.argument("job")
@click.option("--err", "stderr", is_flag=True, help="Follow the job's stderr instead of its stdout.")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=10, show_default=True,
              help="Lines of history to print first.")
@click.option("--run", "run", type=int, metavar="N",
              help="Of a packed task (launch --runs-per-job), follow run N's own log (the run index status shows).")
@click.option("-c", "--cluster", metavar="NAME",
              help="Cluster of a job the state database does not know (default: the default profile).")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def tail(job: str, stderr: bool, lines: int, run: int | None, cluster: str | None, accept_new_host_key: bool) -> int:
    """Follow JOB's log (a job id or an array task id such as 123_4, as 'launch' and 'status' print them).
    Waits while the job is pending; when it ends, prints its final state and exits with its exit code.

    \b
    atlas-sweeps tail 123_4
    atlas-sweeps tail 123_4 --err -n 100
    atlas-sweeps tail 123_4 --run 13    # one run of a packed task, until it ends
    """
    from atlas_sweeps import console
    from atlas_sweeps.cli._session import open_session
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.job_target import resolve_job
    from atlas_sweeps.status.packed import run_record_of
    from atlas_sweeps.status.refresh import tail_interval
    from atlas_sweeps.status.stored import project_dir_of
    from atlas_sweeps.status.tail import follow, tail_script
    from atlas_sweeps.status.tail_output import TailPrinter, tail_result

    stream = "err" if stderr else "out"
    db = StateDB.open_default()
    target = resolve_job(db, job, stream=stream)
    if run is not None:
        target = _run_target(db, target, run)
    if target.launch is not None:
        profile = load_profile(cluster or target.launch.cluster, project_dir=project_dir_of(target.launch))
    else:
        try:
            profile = load_profile(cluster, project_dir=Path.cwd())
        except UsageError as exc:
            raise UsageError(f"job {job} is not in the state database, so it is looked up on a cluster: "
                             f"{exc.message}", hint=exc.hint) from None
    err = console.err()
    printer = TailPrinter(slurm_id=target.slurm_id, out=sys.stdout, err=err)
    script = tail_script(slurm_id=target.slurm_id, path=target.path, lines=lines, stream=stream,
                         interval=tail_interval(profile.status_interval),
                         run_record=run_record_of(target.path) if run is not None and target.path else None)
    remote = open_session(profile, accept_new_host_key=accept_new_host_key)
    try:
        final = follow(remote, script, on_event=printer)
    except KeyboardInterrupt:
        printer.end_redraw()
        err.print("stopped")
        return 130
    finally:
        remote.close()
    printer.end_redraw()
    seen = None
    if target.launch is not None and run is None:  # a run's end is its own, not its task's
        seen = {s.slurm_id: s for s in db.task_states(target.launch.id)}.get(target.slurm_id)
    return tail_result(final, job=job, slurm_id=target.slurm_id, cluster=profile.name, seen=seen, err=err)


def _run_target(db: StateDB, target: JobTarget, run: int) -> JobTarget:
    """``target`` narrowed to one run's own log (``tail --run``)."""
    from dataclasses import replace

    from atlas_sweeps.status.packed import packed_runs, run_log_path

    job_id, _, task = target.slurm_id.partition("_")
    record = db.job_by_id(job_id)
    if record is None or target.launch is None or target.path is None:
        raise UsageError(f"job {target.slurm_id} is not in the state database: --run needs its launch",
                         hint="tail the task's own log without --run")
    runs = next((s.runs for s in db.sweeps(target.launch.id) if s.name == record.sweep_name), 0)
    path = run_log_path(target.path, task_index=record.task_offset + int(task or 0),
                        runs_per_job=packed_runs(target.launch.options), runs=runs, run=run,
                        slurm_id=target.slurm_id)
    return replace(target, path=path)
