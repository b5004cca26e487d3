"""``atlas-sweeps retry``: submit again the runs of a launch that did not complete, as a new retry round."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from atlas_sweeps.launch.retry import RetryPlan


@click.command(name="retry")
@click.argument("launch_id", metavar="LAUNCH")
@click.option("--sweep", metavar="NAME", help="Only this sweep's runs.")
@click.option("--dry-run", is_flag=True, help="List what would be resubmitted; submit nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the round as one JSON document.")
@click.option("-y", "--yes", is_flag=True, help="Submit without asking.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def retry(*, launch_id: str, sweep: str | None, dry_run: bool, as_json: bool, yes: bool,
          accept_new_host_key: bool) -> int:
    """Resubmit the runs of LAUNCH whose latest attempt did not complete (failed, out of memory, time limit,
    node failure, preempted, cancelled), each with its own parameters and tags, in the launch's code
    snapshot, as one new array per sweep chunk; status shows each run's latest attempt. The cluster is asked
    first (one poll), then one call submits. Local-backend launches only.

    \b
    atlas-sweeps retry k3x9q2 --dry-run
    atlas-sweeps retry k3x9q2 --sweep composite_grid_iso_tests-hp1_iso --yes
    """
    from atlas_sweeps import console
    from atlas_sweeps.backends import backend_of
    from atlas_sweeps.cli._ask import confirm_or_refuse
    from atlas_sweeps.cli._session import open_session
    from atlas_sweeps.cli.ls import poll_launches
    from atlas_sweeps.cli.status import select_launches
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.errors import UsageError
    from atlas_sweeps.launch.retry import plan_retry, retry_document, submit_retry
    from atlas_sweeps.state.lock import launch_lock
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.stored import project_dir_of

    db = StateDB.open_default()
    (rec,) = select_launches(db, (launch_id,))
    if not backend_of(rec).expands_runs:
        raise UsageError(f"retry resubmits the runs of local-backend launches only; launch {rec.id} uses the "
                         f"{rec.backend} backend, whose agents pick the runs",
                         hint=f"relaunch it: atlas-sweeps launch {rec.options.get('config_name') or rec.config_path}")
    err = console.err()
    with launch_lock(db.path.parent / "locks", rec.id):
        status = poll_launches(db, [rec], accept_new_host_key=accept_new_host_key)[rec.id]
        plan = plan_retry(status, jobs=db.jobs(rec.id), sweep=sweep)
        if not plan.arrays:
            if as_json:
                click.echo(json.dumps(retry_document(plan), indent=2))
            else:
                err.print(f"nothing to retry: every run of launch {rec.id}"
                          f"{f' sweep {sweep}' if sweep else ''} completed or is still going")
            return 0
        if not as_json or dry_run:
            _show(plan, as_json=as_json, dry_run=dry_run)
        if dry_run:
            return 0
        if not yes:
            confirm_or_refuse(f"Resubmit {plan.runs} runs as attempt {plan.attempt}?",
                              refusal=f"this would resubmit {plan.runs} runs of launch {rec.id}",
                              hint="pass --yes to confirm, or --dry-run to list them")
        profile = load_profile(rec.cluster, project_dir=project_dir_of(rec))
        remote = open_session(profile, accept_new_host_key=accept_new_host_key)
        try:
            submitted = submit_retry(db, remote, plan)
        finally:
            remote.close()
    if as_json:
        click.echo(json.dumps(retry_document(plan, submitted=submitted), indent=2))
    else:
        err.print(f"submitted attempt {plan.attempt} of {plan.runs} runs: job "
                  f"{', '.join(submitted.values())}; watch them with: atlas-sweeps status --launch {rec.id}",
                  highlight=False)
    return 0


def _show(plan: RetryPlan, *, as_json: bool, dry_run: bool) -> None:
    """The runs of the round, one line each (or the JSON document of a dry run)."""
    from atlas_sweeps import console
    from atlas_sweeps.launch.retry import retry_document

    if as_json:
        click.echo(json.dumps(retry_document(plan), indent=2))
        return
    out = console.out()
    verb = "would resubmit" if dry_run else "resubmitting"
    out.print(f"{verb} {plan.runs} runs of launch {plan.launch_id} as attempt {plan.attempt}:", highlight=False)
    for array in plan.arrays:
        for row in array.runs:
            why = row.diagnosis.words if row.diagnosis else row.state.state
            out.print(f"  {array.sweep} run {row.run} ({row.state.slurm_id}, {why}) {row.label}".rstrip(),
                      highlight=False, soft_wrap=True)
        out.print(f"  {array.submission.command()}", highlight=False, soft_wrap=True)
