"""``atlas-sweeps status``: a live table of launches, sweeps and jobs (``--once``, ``--json``, ``--wait``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from atlas_sweeps.errors import UsageError

if TYPE_CHECKING:  # the command loads them when it runs: --help stays fast
    from atlas_sweeps.backends.base import SweepBackend
    from atlas_sweeps.config.profile import Profile
    from atlas_sweeps.remote.base import Remote
    from atlas_sweeps.state.store import LaunchRecord, StateDB
    from atlas_sweeps.status.poller import Poller


def open_poller(db: StateDB, launches: list[LaunchRecord], *, accept_new_host_key: bool,
                reap: bool = False) -> tuple[Poller, Callable[[], float]]:
    """A Poller whose sessions open each launch's cluster from its profile; and the refresh interval.
    ``reap``: its polls cancel the pending agent tasks of sweeps with nothing left to run, unless the
    cluster's profile says ``[wandb] reap = false``."""
    from atlas_sweeps.backends import make_backend
    from atlas_sweeps.cli._session import open_session
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.status.poller import Poller
    from atlas_sweeps.status.refresh import DEFAULT_INTERVAL
    from atlas_sweeps.status.stored import project_dir_of

    where = {rec.cluster: project_dir_of(rec) for rec in launches}
    profiles: dict[str, Profile] = {}

    def profile(cluster: str) -> Profile:
        if cluster not in profiles:
            profiles[cluster] = load_profile(cluster, project_dir=where.get(cluster) or Path.cwd())
        return profiles[cluster]

    def factory(cluster: str) -> Remote:
        return open_session(profile(cluster), accept_new_host_key=accept_new_host_key)

    def backend_for(rec: LaunchRecord) -> SweepBackend:
        try:
            return make_backend(rec.backend, profile=profile(rec.cluster))
        except UsageError:
            return make_backend(rec.backend)

    def reap_for(rec: LaunchRecord) -> bool:
        try:
            return reap and profile(rec.cluster).wandb_reap is not False
        except UsageError:
            return reap

    def interval() -> float:
        values = []
        for cluster in where:
            try:
                values.append(profile(cluster).status_interval)
            except UsageError:
                values.append(DEFAULT_INTERVAL)
        return min(values) if values else DEFAULT_INTERVAL

    return Poller(db=db, remote_factory=factory, backend_for=backend_for, reap_for=reap_for), interval


def select_launches(db: StateDB, launch_ids: tuple[str, ...]) -> list[LaunchRecord]:
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


def no_launches_message(db: StateDB) -> str:
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
@click.option("--no-reap", is_flag=True,
              help="Leave pending the agent tasks of W&B sweeps with nothing left to run (finished, stopped, "
                   "paused, run cap reached); by default each refresh cancels them.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def status(launch_ids: tuple[str, ...], once: bool, as_json: bool, wait: bool, timeout: float | None,
           interval: float | None, no_reap: bool, accept_new_host_key: bool) -> int:
    """Show every job of the chosen launches: state, reason, node, elapsed, exit code and last log line,
    with progress per sweep. One remote call per refresh, whatever the number of jobs.

    \b
    atlas-sweeps status                  live table (Ctrl-C to leave)
    atlas-sweeps status --once --json    one snapshot for scripts
    atlas-sweeps status --wait           block until the jobs finish; exit 0 if all completed
    """
    from atlas_sweeps import console
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status import refresh

    db = StateDB.open_default()
    launches = select_launches(db, launch_ids)
    if not launches:
        if as_json:
            click.echo(json.dumps({"launches": [], "message": no_launches_message(db)}, indent=2))
        else:
            console.err().print(no_launches_message(db), soft_wrap=True)
        return 0
    poller, profile_interval = open_poller(db, launches, accept_new_host_key=accept_new_host_key, reap=not no_reap)
    every = refresh.refresh_interval(interval, profile=profile_interval)
    screens = refresh.Screens(out=console.out(), err=console.err(), echo=click.echo)
    try:
        if wait:
            return refresh.wait(poller, launches, every=every, timeout=timeout, screens=screens, as_json=as_json)
        if once or as_json or not screens.out.is_terminal:
            return refresh.once(poller, launches, screens=screens, as_json=as_json)
        return refresh.live(poller, launches, every=every, screens=screens)
    finally:
        poller.close()
