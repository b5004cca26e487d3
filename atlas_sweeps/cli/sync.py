"""``atlas-sweeps sync``: upload the offline runs of local-backend launches from the login node."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from atlas_sweeps.errors import BackendError


@click.command()
@click.argument("launch", required=False)
@click.option("--dry-run", is_flag=True, help="Only count the offline runs waiting to be uploaded.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.option("--accept-new-host-key", is_flag=True,
              help="Trust and record the login node's host key if it is unknown (never a changed one).")
def sync(*, launch: str | None, dry_run: bool, as_json: bool, accept_new_host_key: bool) -> int:
    """Upload the offline W&B runs of LAUNCH (default: every local-backend launch) with `wandb sync`,
    run on the cluster's login node with your W&B login there. Runs already uploaded are skipped.

    \b
    atlas-sweeps sync k3x9q2
    atlas-sweeps sync --dry-run
    """
    from atlas_sweeps import console
    from atlas_sweeps.backends.wandb.sync import sync_offline_runs
    from atlas_sweeps.cli._session import remote_factory
    from atlas_sweeps.state.store import StateDB

    results = sync_offline_runs(
        StateDB.open_default(), launch_id=launch, dry_run=dry_run, cwd=Path.cwd(),
        remote_factory=remote_factory(accept_new_host_key=accept_new_host_key),
        on_output=(lambda _line: None) if as_json else _print_line)
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "clusters": [asdict(r) for r in results]}, indent=2))
    else:
        out = console.out()
        if not results:
            out.print("no local-backend launches to sync")
        for result in results:
            for item in result.launches:
                verb = "would upload" if dry_run else ("uploaded" if item.ok else "FAILED to upload")
                count = item.pending
                out.print(f"{result.cluster} {item.launch_id}: {verb} {count} offline run(s)"
                          f"{f', {item.already_synced} already synced' if item.already_synced else ''}")
    failed = [f"{r.cluster}/{i.launch_id} (wandb sync exit {i.exit_code})" for r in results for i in r.launches
              if not i.ok]
    if failed:
        raise BackendError(f"wandb sync failed for {', '.join(failed)}",
                           hint="its output is above; run 'atlas-sweeps sync' again once fixed")
    return 0


def _print_line(line: str) -> None:
    """A line of ``wandb sync``'s output, as it printed it."""
    from atlas_sweeps import console

    console.err().print(line, markup=False, soft_wrap=True, highlight=False)
