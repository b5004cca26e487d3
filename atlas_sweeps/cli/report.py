"""``atlas-sweeps report``: what the recorded launches did, per launch and sweep, from the states status
stored, with what one call per cluster tells (sacct's GPU-hours, the best runs of offline sweeps);
``--refresh`` polls the job states in that same call."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import click

from atlas_sweeps.errors import UsageError

if TYPE_CHECKING:
    from atlas_sweeps.backends.base import SweepBackend
    from atlas_sweeps.state.store import LaunchRecord, StateDB
    from atlas_sweeps.status.report_calls import ReportCalls


@click.command(name="report")
@click.argument("launch_id", metavar="[LAUNCH]", required=False)
@click.option("--since", default="24h", show_default=True, metavar="DURATION",
              help="Without LAUNCH: the launches created this recently (30m, 24h, 7d, 2w).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option("--markdown", is_flag=True, help="Print the report as Markdown, ready to paste.")
@click.option("--refresh", is_flag=True, help="Poll the cluster(s) for current job states too (in the same call).")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def report(*, launch_id: str | None, since: str, as_json: bool, markdown: bool, refresh: bool,
           accept_new_host_key: bool) -> int:
    """Report per launch and sweep: runs done, failed and running, failures grouped by cause with their
    parameters, GPU-hours used (sacct: elapsed x GPUs allocated) against the estimate, the best run by
    the sweep's metric, the note, and the commands to type next.

    \b
    atlas-sweeps report                  the launches of the last 24 hours
    atlas-sweeps report k3x9q2 --markdown
    atlas-sweeps report --since 7d --json
    """
    from atlas_sweeps import console
    from atlas_sweeps.backends import backend_of
    from atlas_sweeps.cli.status import select_launches
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.best_run import backend_bests
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
    backends = {rec.id: backend_of(rec) for rec in launches}
    calls = _calls(db, launches, backends=backends, refresh=refresh, accept_new_host_key=accept_new_host_key)
    reports = []
    for rec in launches:
        answer = calls.answer(rec.cluster)
        if answer.error:
            console.err().print(f"[yellow]{rec.cluster} not reached:[/] {answer.error} (GPU-hours used and best "
                                "runs unknown)", soft_wrap=True)
        sweeps = db.sweeps(rec.id)
        reports.append(build_report(calls.statuses.get(rec.id) or stored_status(db, rec),
                                    retryable=True, facts=answer.facts,  # both backends retry (W&B: in the sweep)
                                    reached=answer.reached, error=answer.error, sweeps=sweeps,
                                    jobs=db.jobs(rec.id), best=backend_bests(backends[rec.id], sweeps)))
    if as_json:
        click.echo(json.dumps({"launches": [report_document(r) for r in reports], "remote_calls": calls.calls},
                              indent=2))
    elif not reports:
        console.err().print(f"no launches in the last {since} (state database {db.path}); "
                            "'atlas-sweeps ls' lists them all", soft_wrap=True)
    elif markdown:
        click.echo(report_markdown(reports), nl=False)
    else:
        from rich.markdown import Markdown

        console.out().print(Markdown(report_markdown(reports)))
    return 0


def _calls(db: StateDB, launches: list[LaunchRecord], *, backends: dict[str, SweepBackend], refresh: bool,
           accept_new_host_key: bool) -> ReportCalls:
    """The report's one call per cluster (with the status poll when ``refresh``), made."""
    from atlas_sweeps.cli.status import open_poller
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.status.report_calls import ReportCalls
    from atlas_sweeps.status.stored import project_dir_of

    where = {rec.cluster: project_dir_of(rec) for rec in launches}

    def environment(cluster: str) -> tuple[tuple[str, ...], str]:
        try:
            profile = load_profile(cluster, project_dir=where[cluster])
        except UsageError:
            return (), "python3"
        return profile.setup, profile.interpreter

    calls = ReportCalls(db=db, environment=environment, offline=lambda rec: backends[rec.id].offline_runs)
    if not launches:
        return calls
    poller, _ = open_poller(db, launches, accept_new_host_key=accept_new_host_key)
    try:
        if refresh:
            calls.statuses = calls.with_poll(poller, launches)
        else:
            calls.run(launches, poller.remote_factory)
    finally:
        poller.close()
    return calls
