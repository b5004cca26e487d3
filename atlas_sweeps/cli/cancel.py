"""``atlas-sweeps cancel``: cancel a launch, a sweep or a job with one ``scancel``; stop W&B sweeps too."""

from __future__ import annotations

import time

import click


@click.command()
@click.argument("target")
@click.option("-y", "--yes", is_flag=True, help="Do not ask, even when more than one job would be cancelled.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def cancel(*, target: str, yes: bool, accept_new_host_key: bool) -> int:
    """Cancel TARGET: a launch id, a sweep (LAUNCH/SWEEP, or a sweep name found in one launch) or a job
    (123 or 123_4). One scancel call; W&B launches' sweeps are stopped too (a job alone is not).

    \b
    atlas-sweeps cancel k3x9q2 --yes
    atlas-sweeps cancel k3x9q2/composite_grid_iso_tests-hp1_iso
    atlas-sweeps cancel 123_4
    """
    from atlas_sweeps import console
    from atlas_sweeps.cli._ask import confirm_or_refuse
    from atlas_sweeps.cli._session import open_session
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.launch.cancel import cancelled_states, plan_cancel, run_scancel, stop_sweeps
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.stored import project_dir_of

    db = StateDB.open_default()
    plan = plan_cancel(db, target)
    launch = db.launch(plan.launch_id)
    assert launch is not None  # plan_cancel found it
    err = console.err()
    if not plan.slurm_ids and not plan.sweep_ids:
        err.print(f"{plan.what} has no jobs recorded: nothing to cancel")
        return 0
    if plan.jobs > 1 and not yes:
        confirm_or_refuse(f"Cancel {plan.jobs} unfinished jobs of {plan.what}?",
                          refusal=f"this would cancel {plan.jobs} jobs of {plan.what}", hint="pass --yes to confirm")
    profile = load_profile(plan.cluster, project_dir=project_dir_of(launch))
    if plan.slurm_ids:
        remote = open_session(profile, accept_new_host_key=accept_new_host_key)
        try:
            run_scancel(remote, plan, cluster=profile.name)
        finally:
            remote.close()
        db.record_task_states(cancelled_states(db.task_states(plan.launch_id), plan, now=time.time()))
        err.print(f"cancelled {plan.what}: scancel {' '.join(plan.slurm_ids)} "
                  f"({plan.jobs} unfinished job{'s' if plan.jobs != 1 else ''})", highlight=False)
    if plan.sweep_ids:
        from atlas_sweeps.backends import make_backend

        backend = make_backend(launch.backend, profile=profile)
        stopped = stop_sweeps(backend, plan, target=target, on_stopped=lambda done: err.print(done, highlight=False))
        if not stopped and not plan.slurm_ids:
            err.print(f"{plan.what} has no jobs recorded: nothing to cancel")
    return 0
