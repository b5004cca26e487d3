"""``atlas-sweeps status``: a live table of launches, sweeps and jobs (``--once``, ``--json``, ``--wait``)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import click

from atlas_sweeps.errors import UsageError


def open_poller(db, launches, *, accept_new_host_key: bool):  # type: ignore[no-untyped-def]
    """A Poller whose sessions open each launch's cluster from its profile; and the refresh interval."""
    from atlas_sweeps.cli.launch import password_prompt
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.status.poller import Poller, project_dir_of

    where = {rec.cluster: project_dir_of(rec) for rec in launches}
    profiles = {}

    def profile(cluster: str):  # type: ignore[no-untyped-def]
        if cluster not in profiles:
            profiles[cluster] = load_profile(cluster, project_dir=where.get(cluster) or __import__("pathlib").Path.cwd())
        return profiles[cluster]

    def factory(cluster: str):  # type: ignore[no-untyped-def]
        from atlas_sweeps.remote import open_remote

        return open_remote(profile(cluster), accept_new_host_key=accept_new_host_key, password_prompt=password_prompt)

    def base_url(cluster: str) -> str | None:
        try:
            return profile(cluster).wandb_base_url
        except UsageError:
            return None

    def interval() -> float:
        values = []
        for cluster in where:
            try:
                values.append(profile(cluster).status_interval)
            except UsageError:
                values.append(15.0)
        return min(values) if values else 15.0

    return Poller(db=db, remote_factory=factory, wandb_base_url=base_url), interval


def select_launches(db, launch_ids: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """The launches named, or by default those with unfinished jobs plus the most recent one."""
    from atlas_sweeps.status.stored import default_launches

    if launch_ids:
        chosen = []
        for launch_id in launch_ids:
            rec = db.launch(launch_id)
            if rec is None:
                raise UsageError(f"no launch '{launch_id}' in the state database ({db.path})",
                                 hint="'atlas-sweeps ls' lists launches")
            chosen.append(rec)
        return chosen
    return default_launches(db, now=time.time())


def no_launches_message(db) -> str:  # type: ignore[no-untyped-def]
    return (f"no launches recorded yet (state database {db.path}); start one with "
            "'atlas-sweeps launch CONFIG.yml --cluster NAME' (or 'atlas-sweeps sandbox up' to try the sandbox)")


@click.command()
@click.option("-l", "--launch", "launch_ids", multiple=True, metavar="ID",
              help="Show this launch (repeatable). Default: launches with unfinished jobs plus the most recent.")
@click.option("--once", is_flag=True, help="Print one table and exit (no live display; fits a pipe).")
@click.option("--json", "as_json", is_flag=True, help="Print the data as one JSON document and exit.")
@click.option("--wait", is_flag=True,
              help="Poll until every job has finished, print the final table; exit 0 only if all completed.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS", help="Give up --wait after this long (exit 1).")
@click.option("--interval", type=float, metavar="SECONDS",
              help="Seconds between refreshes (default: the profile's status_interval, 15 s; floor 2 s).")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def status(launch_ids: tuple[str, ...], once: bool, as_json: bool, wait: bool, timeout: float | None,
           interval: float | None, accept_new_host_key: bool) -> None:
    """Show every job of the chosen launches: state, reason, node, elapsed, exit code and last log line,
    with progress per sweep. One remote call per refresh, whatever the number of jobs.

    \b
    atlas-sweeps status                  live table (Ctrl-C to leave)
    atlas-sweeps status --once --json    one snapshot for scripts
    atlas-sweeps status --wait           block until the jobs finish; exit 0 if all completed
    """
    from atlas_sweeps import console
    from atlas_sweeps.config.profile import STATUS_INTERVAL_FLOOR
    from atlas_sweeps.state.store import StateDB

    db = StateDB.open_default()
    launches = select_launches(db, launch_ids)
    if not launches:
        if as_json:
            click.echo(json.dumps({"launches": [], "message": no_launches_message(db)}, indent=2))
        else:
            console.err().print(no_launches_message(db), soft_wrap=True)
        return
    poller, profile_interval = open_poller(db, launches, accept_new_host_key=accept_new_host_key)
    every = max(STATUS_INTERVAL_FLOOR, interval if interval is not None else profile_interval())
    try:
        if wait:
            code = _wait(poller, launches, every=every, timeout=timeout, as_json=as_json)
        elif once or as_json or not console.out().is_terminal:
            code = _once(poller, launches, as_json=as_json)
        else:
            code = _live(poller, launches, every=every)
    finally:
        poller.close()
    sys.exit(code)


def _print(snapshot, *, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    from atlas_sweeps import console
    from atlas_sweeps.status.document import status_document
    from atlas_sweeps.status.view import render_status

    if as_json:
        click.echo(json.dumps(status_document(snapshot), indent=2))
    else:
        # Uncropped: a narrow terminal or pipe wraps a large launch's plain rows rather than losing columns.
        console.out().print(render_status(snapshot, live=False), crop=False)


def _stop_if_fatal(snapshot) -> None:  # type: ignore[no-untyped-def]
    """Raise the poll's error when retrying cannot fix it (changed host key, refused login): the CLI prints
    it and exits with its code. Connection failures that may pass are retried instead."""
    if snapshot.fatal is not None:
        raise snapshot.fatal


def _once(poller, launches, *, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    snapshot = poller.poll(launches)
    _print(snapshot, as_json=as_json)
    _stop_if_fatal(snapshot)
    return 1 if snapshot.error else 0


def _wait(poller, launches, *, every: float, timeout: float | None, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    from atlas_sweeps import console
    from atlas_sweeps.status.refresh import backoff_delay
    from atlas_sweeps.status.view import progress_text

    deadline = None if timeout is None else time.monotonic() + timeout
    failures = 0
    last_line = None
    while True:
        snapshot = poller.poll(launches)
        _stop_if_fatal(snapshot)
        failures = failures + 1 if snapshot.error else 0
        line = progress_text(snapshot.counts).plain + (f"  ({snapshot.error}; retrying)" if snapshot.error else "")
        if line != last_line:
            console.err().print(f"[dim]{time.strftime('%H:%M:%S')}[/] {line}", highlight=False)
            last_line = line
        if not snapshot.error and all(s.finished for s in snapshot.launches):
            _print(snapshot, as_json=as_json)
            counts = snapshot.counts
            return 0 if counts["done"] == counts["total"] else 1
        delay = backoff_delay(failures, interval=every)
        if deadline is not None and time.monotonic() + delay > deadline:
            _print(snapshot, as_json=as_json)
            console.err().print(f"[red]timed out[/] after {timeout:g} s with jobs unfinished: "
                                f"{progress_text(snapshot.counts).plain}")
            return 1
        time.sleep(delay)


def _live(poller, launches, *, every: float) -> int:  # type: ignore[no-untyped-def]
    from rich.live import Live

    from atlas_sweeps import console
    from atlas_sweeps.status.refresh import backoff_delay
    from atlas_sweeps.status.view import render_status

    out = console.out()
    failures = 0
    snapshot = poller.poll(launches)  # before the live display: a password prompt must not fight it
    _stop_if_fatal(snapshot)

    def view(snap):  # type: ignore[no-untyped-def]
        rows = max(5, out.size.height - 6 * len(snap.launches) - 4)
        return render_status(snap, live=True, max_rows=rows)

    try:
        with Live(console=out, auto_refresh=False, transient=False, redirect_stdout=False,
                  redirect_stderr=False) as live:
            while True:
                failures = failures + 1 if snapshot.error else 0
                snapshot = replace(snapshot, failures=failures,
                                   next_refresh=time.time() + backoff_delay(failures, interval=every))
                while time.time() < snapshot.next_refresh:
                    live.update(view(snapshot), refresh=True)
                    time.sleep(min(1.0, max(0.05, snapshot.next_refresh - time.time())))
                snapshot = poller.poll(launches)
                live.update(view(snapshot), refresh=True)
                _stop_if_fatal(snapshot)
    except KeyboardInterrupt:
        console.err().print("stopped")
        return 0
