"""``atlas-sweeps tail JOB``: follow one job's log until it ends, exiting with the job's exit code."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from atlas_sweeps.errors import UsageError


def resolve_job(db, job: str, *, stream: str):  # type: ignore[no-untyped-def]
    """``(slurm id, log path or None, cluster or None)`` for JOB as the state database knows it."""
    from atlas_sweeps.launch.layout import log_path
    from atlas_sweeps.slurm.array_ids import parse_array_id

    try:
        parsed = parse_array_id(job)
    except ValueError:
        raise UsageError(f"'{job}' is not a job id", hint="use 123 or 123_4, as 'atlas-sweeps status' prints them") from None
    if parsed.tasks is not None and len(parsed.tasks) != 1:
        raise UsageError(f"'{job}' names several tasks: tail follows one", hint=f"e.g. {parsed.job_id}_{parsed.tasks[0]}")
    record = db.job_by_id(parsed.job_id)
    if record is None:
        return job, None, None
    task = parsed.task
    if task is None:
        if record.task_count != 1:
            raise UsageError(f"job {parsed.job_id} is an array of {record.task_count} tasks: pick one",
                             hint=f"atlas-sweeps tail {parsed.job_id}_0 (tasks 0..{record.task_count - 1})")
        task = 0
    if not 0 <= task < record.task_count:
        raise UsageError(f"job {parsed.job_id} has tasks 0..{record.task_count - 1}, not {task}",
                         hint="'atlas-sweeps status' lists them")
    launch = db.launch(record.launch_id)
    pattern = record.error if stream == "err" else record.output
    return f"{parsed.job_id}_{task}", log_path(pattern, job_id=parsed.job_id, task=task), launch


@click.command()
@click.argument("job")
@click.option("--err", "stderr", is_flag=True, help="Follow the job's stderr instead of its stdout.")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=10, show_default=True,
              help="Lines of history to print first.")
@click.option("-c", "--cluster", metavar="NAME",
              help="Cluster of a job the state database does not know (default: the default profile).")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def tail(job: str, stderr: bool, lines: int, cluster: str | None, accept_new_host_key: bool) -> None:
    """Follow JOB's log (a job id or an array task id such as 123_4, as 'launch' and 'status' print them).
    Waits while the job is pending; when it ends, prints its final state and exits with its exit code.

    \b
    atlas-sweeps tail 123_4
    atlas-sweeps tail 123_4 --err -n 100
    """
    from atlas_sweeps import console
    from atlas_sweeps.cli.launch import password_prompt
    from atlas_sweeps.config.profile import STATUS_INTERVAL_FLOOR, load_profile
    from atlas_sweeps.remote import open_remote
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.stored import project_dir_of
    from atlas_sweeps.status.tail import cancelled_note, exit_status, follow, tail_script

    stream = "err" if stderr else "out"
    db = StateDB.open_default()
    slurm_id, path, launch = resolve_job(db, job, stream=stream)
    if launch is not None:
        profile = load_profile(cluster or launch.cluster, project_dir=project_dir_of(launch))
    else:
        try:
            profile = load_profile(cluster, project_dir=Path.cwd())
        except UsageError as exc:
            raise UsageError(f"job {job} is not in the state database, so it is looked up on a cluster: "
                             f"{exc.message}", hint=exc.hint) from None
    err = console.err()
    redrawing = False  # the last log line ended with \r (a progress bar): end it before printing anything else

    def end_redraw() -> None:
        nonlocal redrawing
        if redrawing:
            sys.stdout.write("\n")
            sys.stdout.flush()
            redrawing = False

    def on_event(event) -> None:  # type: ignore[no-untyped-def]
        nonlocal redrawing
        if event.kind == "line":
            # A redraw ends with \r, as the program wrote it: a terminal shows the bar's latest state.
            sys.stdout.write(event.text + event.end)
            sys.stdout.flush()
            redrawing = event.end == "\r"
            return
        end_redraw()
        if event.kind == "state":
            why = f" ({event.reason})" if event.reason else ""
            waiting = "; waiting for it to start" if event.state == "PENDING" else ""
            err.print(f"[dim]job {slurm_id} is {event.state}{why}{waiting}[/]", highlight=False)

    remote = open_remote(profile, accept_new_host_key=accept_new_host_key, password_prompt=password_prompt)
    try:
        final = follow(remote, tail_script(slurm_id=slurm_id, path=path, lines=lines, stream=stream,
                                           interval=max(STATUS_INTERVAL_FLOOR, min(profile.status_interval, 5.0))),
                       on_event=on_event)
    except KeyboardInterrupt:
        end_redraw()
        err.print("stopped")
        sys.exit(130)
    finally:
        remote.close()
    end_redraw()
    if final is None:
        from atlas_sweeps.errors import RemoteError

        raise RemoteError(f"lost the log stream of job {slurm_id} on {profile.name}", hint="run tail again")
    if launch is not None and (final.kind == "missing" or final.state == "UNKNOWN"):
        seen = {f"{s.job_id}_{s.task}": s for s in db.task_states(launch.id)}.get(slurm_id)
        note = cancelled_note(slurm_id, state=seen.state, start=seen.start) if seen else None
        if note:
            err.print(note, highlight=False)
            sys.exit(1)
    if final.kind == "missing":
        raise UsageError(f"no job {job} on cluster '{profile.name}' (neither slurmctld nor sacct knows it)",
                         hint="'atlas-sweeps status' lists the jobs of your launches")
    code = exit_status(final)
    style = "green" if final.state == "COMPLETED" else "red"
    shown = "" if final.exit_code is None else f", exit code {final.exit_code}"
    err.print(f"job {slurm_id} [{style}]{final.state}[/]{shown}", highlight=False)
    sys.exit(code)
