"""``atlas-sweeps retry``: submit again the runs of a launch that did not complete, as a new retry round."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from atlas_sweeps.backends.base import SweepBackend
    from atlas_sweeps.launch.retry import RetryPlan
    from atlas_sweeps.state.store import LaunchRecord, StateDB


@click.command(name="retry")
@click.argument("launch_id", metavar="LAUNCH")
@click.option("--sweep", metavar="NAME", help="Only this sweep's runs.")
@click.option("--dry-run", is_flag=True, help="List what would be resubmitted; submit nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the round as one JSON document.")
@click.option("-y", "--yes", is_flag=True, help="Submit without asking.")
@click.option("--resync", is_flag=True,
              help="Run the current code (a new snapshot of the launch's code directory), not the launch's snapshot.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def retry(*, launch_id: str, sweep: str | None, dry_run: bool, as_json: bool, yes: bool, resync: bool,
          accept_new_host_key: bool) -> int:
    """Resubmit the runs of LAUNCH whose latest attempt did not complete (failed, out of memory, time limit,
    node failure, preempted, cancelled), each with its own parameters and tags, in the launch's code
    snapshot, as one new array per sweep chunk; status shows each run's latest attempt. The cluster is asked
    first (one poll), then one call submits. W&B launches: the sweeps' runs W&B says failed (and no other
    run redid) run again as runs of the same sweep (WANDB_SWEEP_ID), with their parameters and tags.
    --resync snapshots the code as it is now (snapshots/LAUNCH-rN) and runs the round there.

    \b
    atlas-sweeps retry k3x9q2 --dry-run
    atlas-sweeps retry k3x9q2 --resync --yes
    atlas-sweeps retry k3x9q2 --sweep composite_grid_iso_tests-hp1_iso --yes
    """
    from atlas_sweeps import console
    from atlas_sweeps.backends import backend_of
    from atlas_sweeps.cli._ask import confirm_or_refuse
    from atlas_sweeps.cli._session import open_session
    from atlas_sweeps.cli.ls import poll_launches
    from atlas_sweeps.cli.status import select_launches
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.launch.retry import plan_retry, retry_document, submit_retry
    from atlas_sweeps.state.lock import launch_lock
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.stored import project_dir_of

    db = StateDB.open_default()
    (rec,) = select_launches(db, (launch_id,))
    backend = backend_of(rec)
    if resync:
        from atlas_sweeps.launch.resync import code_dir_of

        code_dir_of(rec)  # a code directory that is gone is said before anything is asked of anyone
    if not backend.expands_runs:
        return _retry_at_backend(db, rec, backend, sweep=sweep, dry_run=dry_run, as_json=as_json, yes=yes,
                                 resync=resync, accept_new_host_key=accept_new_host_key)
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
            if resync and not as_json:
                console.out().print(_resync_line(rec, plan.attempt, dry_run=dry_run), highlight=False, soft_wrap=True)
        if dry_run:
            return 0
        if not yes:
            confirm_or_refuse(f"Resubmit {plan.runs} runs as attempt {plan.attempt}?",
                              refusal=f"this would resubmit {plan.runs} runs of launch {rec.id}",
                              hint="pass --yes to confirm, or --dry-run to list them")
        profile = load_profile(rec.cluster, project_dir=project_dir_of(rec))
        remote = open_session(profile, accept_new_host_key=accept_new_host_key)
        try:
            if resync:
                from atlas_sweeps.launch.resync import code_dir_of, resynced, sync_current_code

                code = sync_current_code(remote, rec, code_dir=code_dir_of(rec), attempt=plan.attempt,
                                         excludes=list(profile.excludes))
                plan = resynced(plan, rec, db.sweeps(rec.id), code=code, cwd=code_dir_of(rec))
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


def _resync_line(rec: LaunchRecord, attempt: int, *, dry_run: bool) -> str:
    """What --resync does, for the round's listing (UsageError when the code directory is gone)."""
    from atlas_sweeps.launch.resync import code_dir_of, launch_root, snapshot_name

    verb = "would snapshot" if dry_run else "snapshotting"
    return (f"  --resync: {verb} the current code of {code_dir_of(rec)} as "
            f"{launch_root(rec)}/snapshots/{snapshot_name(rec.id, attempt)} and run the round there")


def _retry_at_backend(db: StateDB, rec: LaunchRecord, backend: SweepBackend, *, sweep: str | None, dry_run: bool,
                      as_json: bool, yes: bool, resync: bool, accept_new_host_key: bool) -> int:
    """A launch whose agents picked the runs (W&B): the backend lists the failed runs and plans them as runs
    of the same sweeps; one remote call writes the job files and submits."""
    from atlas_sweeps import console
    from atlas_sweeps.backends.wandb.retry import submit
    from atlas_sweeps.cli._ask import confirm_or_refuse
    from atlas_sweeps.cli._session import open_session
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.config.templates import load_template
    from atlas_sweeps.errors import UsageError
    from atlas_sweeps.state.lock import launch_lock
    from atlas_sweeps.status.stored import project_dir_of

    sweeps = db.sweeps(rec.id)
    if sweep is not None and sweep not in {s.name for s in sweeps}:
        raise UsageError(f"launch {rec.id} has no sweep '{sweep}'", hint=f"its sweeps: {', '.join(s.name for s in sweeps)}")
    if not rec.snapshot:
        raise UsageError(f"launch {rec.id} never finished its code snapshot: there is nothing to retry in",
                         hint=f"atlas-sweeps launch --resume {rec.id}")
    profile = load_profile(rec.cluster, project_dir=project_dir_of(rec))
    template = load_template(profile.template, base_dir=project_dir_of(rec))
    err = console.err()
    with launch_lock(db.path.parent / "locks", rec.id):
        plan = backend.retry_round(rec, sweeps, db.jobs(rec.id), profile=profile, template=template,  # type: ignore[attr-defined]
                                   only=sweep)
        if not plan.runs:
            if as_json:
                click.echo(json.dumps(plan.document(), indent=2))
            else:
                err.print(f"nothing to retry: W&B lists no failed run of launch {rec.id}"
                          f"{f' sweep {sweep}' if sweep else ''} that no other run redid")
            return 0
        if as_json and dry_run:
            click.echo(json.dumps(plan.document(), indent=2))
            return 0
        if not as_json:
            out = console.out()
            verb = "would resubmit" if dry_run else "resubmitting"
            out.print(f"{verb} {len(plan.runs)} runs of launch {rec.id} as attempt {plan.attempt}, as runs of "
                      "their W&B sweeps:", highlight=False)
            for run in plan.runs:
                label = " ".join(f"{k}={v}" for k, v in run.params.items())
                out.print(f"  {run.sweep} run {run.run_id} ({run.state}) {label}".rstrip(), highlight=False,
                          soft_wrap=True)
            for prepared in plan.prepared:
                for sub in prepared.submissions:
                    out.print(f"  {sub.command()}", highlight=False, soft_wrap=True)
            if resync:
                out.print(_resync_line(rec, plan.attempt, dry_run=dry_run), highlight=False, soft_wrap=True)
        if dry_run:
            return 0
        if not yes:
            confirm_or_refuse(f"Resubmit {len(plan.runs)} runs as attempt {plan.attempt}?",
                              refusal=f"this would resubmit {len(plan.runs)} runs of launch {rec.id}",
                              hint="pass --yes to confirm, or --dry-run to list them")
        remote = open_session(profile, accept_new_host_key=accept_new_host_key)
        try:
            if resync:
                from atlas_sweeps.launch.resync import code_dir_of, sync_current_code

                code = sync_current_code(remote, rec, code_dir=code_dir_of(rec), attempt=plan.attempt,
                                         excludes=list(profile.excludes))
                plan = backend.retry_round(rec, sweeps, db.jobs(rec.id), profile=profile,  # type: ignore[attr-defined]
                                           template=template, only=sweep, code=code)
            submitted = submit(db, remote, plan, launch=rec)
        finally:
            remote.close()
    if as_json:
        click.echo(json.dumps(plan.document(submitted=submitted), indent=2))
    else:
        err.print(f"submitted attempt {plan.attempt} of {len(plan.runs)} runs: job {', '.join(submitted.values())}; "
                  f"watch them with: atlas-sweeps status --launch {rec.id}", highlight=False)
    return 0
