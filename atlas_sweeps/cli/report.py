"""``atlas-sweeps report``: what the recorded launches did, per launch and sweep, from the states status
stored (``--refresh`` polls the cluster first, one call per cluster)."""

from __future__ import annotations

import json
import time

import click


@click.command(name="report")
@click.argument("launch_id", metavar="[LAUNCH]", required=False)
@click.option("--since", default="24h", show_default=True, metavar="DURATION",
              help="Without LAUNCH: the launches created this recently (30m, 24h, 7d, 2w).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option("--markdown", is_flag=True, help="Print the report as Markdown, ready to paste.")
@click.option("--refresh", is_flag=True, help="Poll the cluster(s) for current job states first.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def report(*, launch_id: str | None, since: str, as_json: bool, markdown: bool, refresh: bool,
           accept_new_host_key: bool) -> int:
    """Report per launch and sweep: runs done, failed and running, failures grouped by cause with their
    parameters, GPU-hours used against the estimate, the note, and the commands to type next.

    \b
    atlas-sweeps report                  the launches of the last 24 hours
    atlas-sweeps report k3x9q2 --markdown
    atlas-sweeps report --since 7d --json
    """
    from atlas_sweeps import console
    from atlas_sweeps.backends import backend_of
    from atlas_sweeps.cli.ls import poll_launches
    from atlas_sweeps.cli.status import select_launches
    from atlas_sweeps.errors import UsageError
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.report import build_report, parse_since, report_document, report_markdown
    from atlas_sweeps.status.stored import stored_status

    if as_json and markdown:
        raise UsageError("--json and --markdown exclude each other", hint="pick one")
    db = StateDB.open_default()
    if launch_id:
        launches = select_launches(db, (launch_id,))
    else:
        cutoff = time.time() - parse_since(since)
        launches = [rec for rec in db.launches(limit=1000) if rec.created >= cutoff]
    statuses = poll_launches(db, launches, accept_new_host_key=accept_new_host_key) if refresh and launches else {}
    reports = [build_report(statuses.get(rec.id) or stored_status(db, rec), retryable=backend_of(rec).expands_runs)
               for rec in launches]
    if as_json:
        click.echo(json.dumps({"launches": [report_document(r) for r in reports]}, indent=2))
    elif not reports:
        console.err().print(f"no launches in the last {since} (state database {db.path}); "
                            "'atlas-sweeps ls' lists them all", soft_wrap=True)
    elif markdown:
        click.echo(report_markdown(reports), nl=False)
    else:
        from rich.markdown import Markdown

        console.out().print(Markdown(report_markdown(reports)))
    return 0
