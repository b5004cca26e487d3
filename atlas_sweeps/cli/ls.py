"""``atlas-sweeps ls``: the recorded launches with their sweeps and job counts per state (from the last
status poll stored locally; ``--refresh`` polls the cluster first, one call per cluster)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from atlas_sweeps.state.store import LaunchRecord, StateDB
    from atlas_sweeps.status.model import LaunchStatus


def poll_launches(db: StateDB, launches: list[LaunchRecord], *, accept_new_host_key: bool) -> dict[str, LaunchStatus]:
    """One poll of ``launches`` (one call per cluster), by launch id; a failed poll is said on stderr and
    its launches keep their stored states."""
    from atlas_sweeps import console
    from atlas_sweeps.cli.status import open_poller

    poller, _ = open_poller(db, launches, accept_new_host_key=accept_new_host_key)  # never reaps: ls only reads
    try:
        snapshot = poller.poll(launches)
    finally:
        poller.close()
    if snapshot.error:
        console.err().print(f"[red]refresh failed:[/] {snapshot.error} (showing stored states)")
    return {s.launch.id: s for s in snapshot.launches}


@click.command(name="ls")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest launches to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as one JSON document.")
@click.option("--refresh", is_flag=True, help="Poll the cluster(s) for current job states first.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def ls(limit: int, as_json: bool, refresh: bool, accept_new_host_key: bool) -> int:
    """List launches: id, time, config, cluster, backend, git commit, sweeps (with URLs) and job counts."""
    from atlas_sweeps import console
    from atlas_sweeps.backends import backend_of
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.backend_progress import sweep_progress
    from atlas_sweeps.status.listing import launches_view, list_launches
    from atlas_sweeps.status.stored import stored_status

    db = StateDB.open_default()
    launches = db.launches(limit=limit)
    if not launches:
        from atlas_sweeps.cli.status import no_launches_message

        if as_json:
            click.echo(json.dumps({"launches": []}))
        else:
            console.err().print(no_launches_message(db), soft_wrap=True)
        return 0
    statuses = poll_launches(db, launches, accept_new_host_key=accept_new_host_key) if refresh else {}

    def progress(rec: LaunchRecord) -> tuple[dict[str, dict[str, int]] | None, str | None]:
        if refresh:  # the poll asked W&B already
            return None, None
        return sweep_progress(backend_of(rec), db.sweeps(rec.id))

    docs, entries = list_launches([statuses.get(rec.id) or stored_status(db, rec) for rec in launches],
                                  progress=progress)
    if as_json:
        click.echo(json.dumps({"launches": docs}, indent=2))
    else:
        out = console.out()
        out.print(launches_view(entries, title=f"launches ({db.path})", console=out), crop=False)
    return 0
