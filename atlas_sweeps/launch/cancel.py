"""What ``cancel`` does, apart from asking: resolve a target (a launch, a sweep, a job) against the state
database, cancel its Slurm ids with one ``scancel``, record the cancelled tasks, stop W&B sweeps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from atlas_sweeps.backends.base import SweepBackend
from atlas_sweeps.errors import BackendError, RemoteError, UsageError
from atlas_sweeps.remote import Remote
from atlas_sweeps.remote.protocol import EMIT_FUNCTION, parse_facts
from atlas_sweeps.slurm.array_ids import parse_array_id
from atlas_sweeps.slurm.scancel import scancel_command
from atlas_sweeps.slurm.states import is_terminal
from atlas_sweeps.slurm.task import CANCEL_SOURCE
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord, TaskSeen


@dataclass(frozen=True)
class CancelPlan:
    """What a cancel targets: Slurm ids for one ``scancel``, how many tasks that may stop, sweeps to stop."""

    what: str
    launch_id: str
    cluster: str
    slurm_ids: tuple[str, ...]
    jobs: int
    sweep_ids: tuple[str, ...]  # sweeps to stop at their backend (none for a job alone)
    tasks: tuple[tuple[str, int], ...] = ()  # (array job id, task) of every task the scancel targets


def _targets(jobs: Iterable[JobRecord], tasks: Iterable[int] | None = None) -> tuple[tuple[str, int], ...]:
    """Every (array job id, task) of ``jobs``, or only ``tasks`` of the one job."""
    return tuple((j.job_id, t) for j in jobs for t in (j.tasks if tasks is None else tasks))


def _unfinished(db: StateDB, launch_id: str, targets: tuple[tuple[str, int], ...]) -> int:
    seen = {(s.job_id, s.task): s.state for s in db.task_states(launch_id)}
    return sum(1 for key in targets if not is_terminal(seen.get(key, "PENDING")))


def cancelled_states(seen: Iterable[TaskSeen], plan: CancelPlan, *, now: float) -> list[TaskSeen]:
    """What a successful scancel did, as last-seen states: each targeted task not known to be final is
    CANCELLED (source ``scancel``), keeping what was known of it. A task that never started leaves squeue
    at once and may have no sacct record, so without this it would stay pending for good."""
    known = {(s.job_id, s.task): s for s in seen}
    out: list[TaskSeen] = []
    for job_id, task in plan.tasks:
        prev = known.get((job_id, task)) or TaskSeen(launch_id=plan.launch_id, job_id=job_id, task=task, state="PENDING")
        if not is_terminal(prev.state):
            out.append(replace(prev, state="CANCELLED", reason="", end="", exit_code=None, source=CANCEL_SOURCE,
                               seen=now))
    return out


def plan_cancel(db: StateDB, target: str) -> CancelPlan:
    """Resolve TARGET (launch id, LAUNCH/SWEEP, sweep name or job id) against the state database."""
    launch = db.launch(target)
    if launch is not None:
        jobs = db.jobs(launch.id)
        sweeps = db.sweeps(launch.id)
        targets = _targets(jobs)
        return CancelPlan(what=f"launch {launch.id}", launch_id=launch.id, cluster=launch.cluster,
                          slurm_ids=tuple(j.job_id for j in jobs), jobs=_unfinished(db, launch.id, targets),
                          sweep_ids=tuple(s.sweep_id for s in sweeps if s.sweep_id),
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
        assert launch is not None  # a job's launch outlives it (delete_launch removes both)
        if parsed.spans is not None and (parsed.max_task is None or parsed.max_task > job.tasks[-1]):
            raise UsageError(f"job {parsed.job_id} has tasks {job.tasks[0]}..{job.tasks[-1]}",
                             hint="see 'atlas-sweeps status'")
        tasks = parsed.tasks  # bounded by the job's own task count now
        ids = (job.job_id,) if tasks is None else tuple(f"{job.job_id}_{t}" for t in tasks)
        targets = _targets([job], tasks)
        return CancelPlan(what=f"job {target}", launch_id=job.launch_id, cluster=launch.cluster, slurm_ids=ids,
                          jobs=_unfinished(db, job.launch_id, targets), sweep_ids=(), tasks=targets)
    launch_part, _, sweep_name = target.rpartition("/")
    candidates: list[tuple[LaunchRecord, SweepRecord]] = []
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
        names = ", ".join(f"{rec.id}/{sweep_name}" for rec, _ in candidates[:5])
        raise UsageError(f"sweep '{sweep_name}' is in {len(candidates)} launches", hint=f"name one: {names}")
    rec, sweep = candidates[0]
    jobs = [j for j in db.jobs(rec.id) if j.sweep_name == sweep.name]
    targets = _targets(jobs)
    return CancelPlan(what=f"sweep {rec.id}/{sweep.name}", launch_id=rec.id, cluster=rec.cluster,
                      slurm_ids=tuple(j.job_id for j in jobs), jobs=_unfinished(db, rec.id, targets),
                      sweep_ids=(sweep.sweep_id,) if sweep.sweep_id else (), tasks=targets)


def scancel_script(slurm_ids: tuple[str, ...]) -> str:
    """One ``scancel`` for every id (array ids cancel all their tasks)."""
    return "\n".join([
        EMIT_FUNCTION,
        f"out=$({scancel_command(slurm_ids)} 2>&1); rc=$?",
        'emit scancel "$rc|$out"',
    ]) + "\n"


def run_scancel(remote: Remote, plan: CancelPlan, *, cluster: str) -> None:
    """Cancel ``plan``'s Slurm ids in one remote call; RemoteError with scancel's own words if it fails."""
    result = remote.run_script(scancel_script(plan.slurm_ids), timeout=60)
    facts = dict(parse_facts(result.stdout))
    rc, _, message = facts.get("scancel", "255|no answer from the cluster").partition("|")
    if rc != "0":
        raise RemoteError(f"scancel failed on {cluster} (exit {rc}): {' '.join(message.split())}",
                          hint="'atlas-sweeps status' shows what is still running")


def stop_sweeps(backend: SweepBackend, plan: CancelPlan, *, target: str,
                on_stopped: Callable[[str], None]) -> bool:
    """Stop ``plan``'s sweeps at their backend one by one, saying which one failed (its Slurm jobs are
    cancelled already) and passing on what the backend did; False when it had nothing to stop (local)."""
    stopped = False
    for sweep_id in plan.sweep_ids:
        try:
            done = backend.stop(sweep_id)
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - say which sweep and keep the cause
            raise BackendError(f"could not stop {backend.name} sweep {sweep_id}: {exc}",
                               hint=f"the Slurm jobs are cancelled; retry 'atlas-sweeps cancel {target}'") from exc
        if done:
            on_stopped(done)
            stopped = True
    return stopped
