"""``atlas-sweeps cancel``: cancel a launch, a sweep or a job with one ``scancel``; stop W&B sweeps too."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import click

from atlas_sweeps.errors import RemoteError, UsageError


@dataclass(frozen=True)
class CancelPlan:
    """What a cancel targets: Slurm ids for one ``scancel``, how many tasks that may stop, sweeps to stop."""

    what: str
    launch_id: str
    cluster: str
    slurm_ids: tuple[str, ...]
    jobs: int
    sweep_ids: tuple[str, ...]  # W&B sweeps to stop (empty for a job or the local backend)
    tasks: tuple[tuple[str, int], ...] = ()  # (array job id, task) of every task the scancel targets


def _targets(jobs, tasks=None) -> tuple[tuple[str, int], ...]:  # type: ignore[no-untyped-def]
    """Every (array job id, task) of ``jobs``, or only ``tasks`` of the one job."""
    return tuple((j.job_id, t) for j in jobs for t in (range(j.task_count) if tasks is None else tasks))


def _unfinished(db, launch_id: str, targets: tuple[tuple[str, int], ...]) -> int:  # type: ignore[no-untyped-def]
    from atlas_sweeps.slurm.states import is_terminal

    seen = {(s.job_id, s.task): s.state for s in db.task_states(launch_id)}
    return sum(1 for key in targets if not is_terminal(seen.get(key, "PENDING")))


def cancelled_states(seen, plan: CancelPlan, *, now: float):  # type: ignore[no-untyped-def]
    """What a successful scancel did, as last-seen states: each targeted task not known to be final is
    CANCELLED (source ``scancel``), keeping what was known of it. A task that never started leaves squeue
    at once and may have no sacct record, so without this it would stay pending for good."""
    from dataclasses import replace

    from atlas_sweeps.slurm.states import is_terminal
    from atlas_sweeps.slurm.task import CANCEL_SOURCE
    from atlas_sweeps.state.store import TaskSeen

    known = {(s.job_id, s.task): s for s in seen}
    out = []
    for job_id, task in plan.tasks:
        prev = known.get((job_id, task)) or TaskSeen(launch_id=plan.launch_id, job_id=job_id, task=task, state="PENDING")
        if not is_terminal(prev.state):
            out.append(replace(prev, state="CANCELLED", reason="", end="", exit_code=None, source=CANCEL_SOURCE,
                               seen=now))
    return out


def plan_cancel(db, target: str) -> CancelPlan:  # type: ignore[no-untyped-def]
    """Resolve TARGET (launch id, LAUNCH/SWEEP, sweep name or job id) against the state database."""
    from atlas_sweeps.slurm.array_ids import parse_array_id

    launch = db.launch(target)
    if launch is not None:
        jobs = db.jobs(launch.id)
        sweeps = db.sweeps(launch.id)
        targets = _targets(jobs)
        return CancelPlan(what=f"launch {launch.id}", launch_id=launch.id, cluster=launch.cluster,
                          slurm_ids=tuple(j.job_id for j in jobs), jobs=_unfinished(db, launch.id, targets),
                          sweep_ids=tuple(s.sweep_id for s in sweeps if s.sweep_id and launch.backend == "wandb"),
                          tasks=targets)
    if target[:1].isdigit():
        try:
            parsed = parse_array_id(target)
        except ValueError as exc:
            message = str(exc) if "_" in target else f"'{target}' is not a launch, sweep or job id"
            raise UsageError(message, hint="use 123, 123_4 or 123_[5-9] as 'atlas-sweeps status' prints them; "
                                           "'atlas-sweeps ls' lists launches") from None
        job = db.job_by_id(parsed.job_id)
        if job is None:
            raise UsageError(f"job {parsed.job_id} is not part of any recorded launch",
                             hint="cancel only touches jobs atlas-sweeps submitted; use scancel for others")
        launch = db.launch(job.launch_id)
        if parsed.spans is not None and (parsed.max_task is None or parsed.max_task >= job.task_count):
            raise UsageError(f"job {parsed.job_id} has tasks 0..{job.task_count - 1}", hint="see 'atlas-sweeps status'")
        tasks = parsed.tasks  # bounded by the job's own task count now
        ids = (job.job_id,) if tasks is None else tuple(f"{job.job_id}_{t}" for t in tasks)
        targets = _targets([job], tasks)
        return CancelPlan(what=f"job {target}", launch_id=job.launch_id, cluster=launch.cluster, slurm_ids=ids,
                          jobs=_unfinished(db, job.launch_id, targets), sweep_ids=(), tasks=targets)
    launch_part, _, sweep_name = target.rpartition("/")
    candidates = []
    for rec in ([db.launch(launch_part)] if launch_part else db.launches(limit=500)):
        if rec is None:
            continue
        for sweep in db.sweeps(rec.id):
            if sweep.name == sweep_name:
                candidates.append((rec, sweep))
    if not candidates:
        raise UsageError(f"no launch, sweep or job called '{target}' in the state database",
                         hint="'atlas-sweeps ls' lists launches and sweeps")
    if len(candidates) > 1:
        ids = ", ".join(f"{rec.id}/{sweep_name}" for rec, _ in candidates[:5])
        raise UsageError(f"sweep '{sweep_name}' is in {len(candidates)} launches", hint=f"name one: {ids}")
    rec, sweep = candidates[0]
    jobs = [j for j in db.jobs(rec.id) if j.sweep_name == sweep.name]
    targets = _targets(jobs)
    return CancelPlan(what=f"sweep {rec.id}/{sweep.name}", launch_id=rec.id, cluster=rec.cluster,
                      slurm_ids=tuple(j.job_id for j in jobs), jobs=_unfinished(db, rec.id, targets),
                      sweep_ids=(sweep.sweep_id,) if sweep.sweep_id and rec.backend == "wandb" else (), tasks=targets)


def scancel_script(slurm_ids: tuple[str, ...]) -> str:
    """One ``scancel`` for every id (array ids cancel all their tasks)."""
    from atlas_sweeps.remote.protocol import EMIT_FUNCTION
    from atlas_sweeps.slurm.scancel import scancel_command

    return "\n".join([
        EMIT_FUNCTION,
        f"out=$({scancel_command(slurm_ids)} 2>&1); rc=$?",
        'emit scancel "$rc|$out"',
    ]) + "\n"


@click.command()
@click.argument("target")
@click.option("-y", "--yes", is_flag=True, help="Do not ask, even when more than one job would be cancelled.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
def cancel(target: str, yes: bool, accept_new_host_key: bool) -> None:
    """Cancel TARGET: a launch id, a sweep (LAUNCH/SWEEP, or a sweep name found in one launch) or a job
    (123 or 123_4). One scancel call; W&B launches' sweeps are stopped too (a job alone is not).

    \b
    atlas-sweeps cancel k3x9q2 --yes
    atlas-sweeps cancel k3x9q2/composite_grid_iso_tests-hp1_iso
    atlas-sweeps cancel 123_4
    """
    from atlas_sweeps import console
    from atlas_sweeps.cli.launch import password_prompt
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.remote import open_remote
    from atlas_sweeps.remote.protocol import parse_facts
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.poller import project_dir_of

    db = StateDB.open_default()
    plan = plan_cancel(db, target)
    launch = db.launch(plan.launch_id)
    err = console.err()
    if not plan.slurm_ids and not plan.sweep_ids:
        err.print(f"{plan.what} has no jobs recorded: nothing to cancel")
        return
    if plan.jobs > 1 and not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"this would cancel {plan.jobs} jobs of {plan.what}", hint="pass --yes to confirm")
        click.confirm(f"Cancel {plan.jobs} unfinished jobs of {plan.what}?", abort=True, err=True)
    profile = load_profile(plan.cluster, project_dir=project_dir_of(launch))
    if plan.slurm_ids:
        remote = open_remote(profile, accept_new_host_key=accept_new_host_key, password_prompt=password_prompt)
        try:
            result = remote.run_script(scancel_script(plan.slurm_ids), timeout=60)
        finally:
            remote.close()
        facts = dict(parse_facts(result.stdout))
        rc, _, message = facts.get("scancel", "255|no answer from the cluster").partition("|")
        if rc != "0":
            raise RemoteError(f"scancel failed on {profile.name} (exit {rc}): {' '.join(message.split())}",
                              hint="'atlas-sweeps status' shows what is still running")
        db.record_task_states(cancelled_states(db.task_states(plan.launch_id), plan, now=time.time()))
        err.print(f"cancelled {plan.what}: scancel {' '.join(plan.slurm_ids)} "
                  f"({plan.jobs} unfinished job{'s' if plan.jobs != 1 else ''})", highlight=False)
    if plan.sweep_ids:
        from atlas_sweeps.backends import make_backend
        from atlas_sweeps.errors import BackendError

        backend = make_backend("wandb", base_url=profile.wandb_base_url)
        for sweep_id in plan.sweep_ids:
            try:
                backend.stop(sweep_id)
            except BackendError:
                raise
            except Exception as exc:  # noqa: BLE001 - say which sweep and keep the cause
                raise BackendError(f"could not stop W&B sweep {sweep_id}: {exc}",
                                   hint=f"the Slurm jobs are cancelled; retry 'atlas-sweeps cancel {target}'") from exc
            err.print(f"stopped W&B sweep {sweep_id}", highlight=False)
