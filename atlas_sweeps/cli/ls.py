"""``atlas-sweeps ls``: the recorded launches with their sweeps and job counts per state (from the last
status poll stored locally; ``--refresh`` polls the cluster first, one call per cluster)."""

from __future__ import annotations

import json
from datetime import datetime

import click


@click.command(name="ls")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest launches to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as one JSON document.")
@click.option("--refresh", is_flag=True, help="Poll the cluster(s) for current job states first.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def ls(limit: int, as_json: bool, refresh: bool, accept_new_host_key: bool) -> None:
    """List launches: id, time, config, cluster, backend, git commit, sweeps (with URLs) and job counts."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from atlas_sweeps import console
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.backend_progress import wandb_counts
    from atlas_sweeps.status.document import launch_document
    from atlas_sweeps.status.stored import stored_status

    db = StateDB.open_default()
    launches = db.launches(limit=limit)
    if not launches:
        from atlas_sweeps.cli.status import no_launches_message

        if as_json:
            click.echo(json.dumps({"launches": []}))
        else:
            console.err().print(no_launches_message(db), soft_wrap=True)
        return
    statuses = {}
    if refresh:
        from atlas_sweeps.cli.status import open_poller

        poller, _ = open_poller(db, launches, accept_new_host_key=accept_new_host_key)
        try:
            snapshot = poller.poll(launches)
        finally:
            poller.close()
        statuses = {s.launch.id: s for s in snapshot.launches}
        if snapshot.error:
            console.err().print(f"[red]refresh failed:[/] {snapshot.error} (showing stored states)")
    docs = []
    table = Table(title=f"launches ({db.path})", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("launch", "created", "config", "cluster", "backend", "git", "sweeps", "jobs"):
        table.add_column(col, no_wrap=col in ("launch", "created"))
    for rec in launches:
        status = statuses.get(rec.id) or stored_status(db, rec)
        wandb_runs, wandb_error = (None, None)
        if rec.backend == "wandb" and not refresh:
            wandb_runs, wandb_error = wandb_counts(db.sweeps(rec.id), base_url=_base_url(rec))
        doc = launch_document(status)
        for sweep in doc["sweeps"]:
            sweep.pop("tasks")
            if wandb_runs is not None:
                sweep["wandb_runs"] = wandb_runs.get(sweep["sweep_id"] or "")
        doc.update(status=rec.status, nodes=rec.nodes, total_runs=rec.total_runs, wandb_error=wandb_error)
        docs.append(doc)
        sweeps = Text()
        for i, sweep in enumerate(doc["sweeps"]):
            if i:
                sweeps.append("\n")
            sweeps.append(sweep["name"])
            if sweep["url"]:
                sweeps.append(f" {sweep['url']}", style="blue")
            if sweep.get("wandb_runs"):
                sweeps.append(" W&B: " + ", ".join(f"{n} {s}" for s, n in sorted(sweep["wandb_runs"].items())),
                              style="magenta")
        jobs = Text(_compact(status.counts)) if status.polled else Text(
            f"{status.counts['total']} jobs, not polled yet", style="dim")
        git = (rec.git_commit or "")[:8] + ("+dirty" if rec.git_dirty else "")
        config = rec.options.get("config_name") if rec.options else None
        table.add_row(rec.id, datetime.fromtimestamp(rec.created).strftime("%Y-%m-%d %H:%M"),
                      config or rec.config_path, rec.cluster, rec.backend, git, sweeps, jobs)
    if as_json:
        click.echo(json.dumps({"launches": docs}, indent=2))
    else:
        console.out().print(table)


def _compact(counts: dict[str, int]) -> str:
    """``4 done, 1 running / 6``: zero counts left out, so the column stays narrow."""
    parts = [f"{counts[k]} {k}" for k in ("done", "running", "pending", "failed", "unknown") if counts.get(k)]
    return f"{', '.join(parts) or 'none'} / {counts.get('total', 0)}"


def _base_url(rec) -> str | None:  # type: ignore[no-untyped-def]
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.errors import UsageError
    from atlas_sweeps.status.stored import project_dir_of

    try:
        return load_profile(rec.cluster, project_dir=project_dir_of(rec)).wandb_base_url
    except UsageError:
        return None
