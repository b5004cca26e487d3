"""``retry`` on the W&B backend: the sweep's runs that W&B says failed (failed, crashed, killed), whose grid
point no other run of the sweep finished or is running, run again as runs of that SAME sweep. A grid sweep
counts a failed run as done, so no agent would ever run its point again: each retried run is one array task
that runs the program as ``wandb agent`` would (the sweep's command line for the run's parameters) with what
the agent gives its children: ``WANDB_SWEEP_ID`` (the client then creates the run in that sweep) and
``WANDB_SWEEP_PARAM_PATH`` (the parameters, as the run's config), plus the sweep's tags and group. The job
files live under ``retry<N>/`` beside the launch's own; planning is pure, ``submit`` makes one remote call."""

from __future__ import annotations

import json
import posixpath
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from atlas_sweeps.backends.base import CreatedSweep, JobCommand
from atlas_sweeps.backends.local import LocalBackend
from atlas_sweeps.backends.wandb.progress import SweepPath
from atlas_sweeps.config.commandline import ARGS_JSON_FILE_TOKEN, DEFERRED_ENVIRON, build_command
from atlas_sweeps.config.composite import SweepSpec
from atlas_sweeps.launch.jobs import PreparedSweep
from atlas_sweeps.launch.layout import LaunchLayout, RetryLayout
from atlas_sweeps.launch.plan import PlannedSweep
from atlas_sweeps.remote.base import Remote
from atlas_sweeps.state.store import JobRecord, LaunchRecord, StateDB, SweepRecord

if TYPE_CHECKING:
    from atlas_sweeps.config.profile import Profile
    from atlas_sweeps.config.templates import Template

RETRY_STATES = ("failed", "crashed", "killed")
_BUSY_OR_DONE = ("finished", "running", "pending", "preempting")


@dataclass(frozen=True)
class RetryRun:
    """One W&B run to run again: its sweep, id, how it ended, and its sweep parameters."""

    sweep: str
    run_id: str
    state: str
    params: dict[str, Any]


def _plain(config: Any, names: Sequence[str]) -> dict[str, Any]:
    """The sweep parameters ``names`` of a run's W&B config (``{"lr": {"value": 0.1}}``, JSON or dict)."""
    if isinstance(config, str):
        try:
            config = json.loads(config or "{}")
        except ValueError:
            config = {}
    if not isinstance(config, dict):
        return {}
    out = {}
    for name in names:
        item = config.get(name)
        if isinstance(item, dict) and "value" in item:
            out[name] = item["value"]
    return out


def failed_runs(sweep: SweepRecord, nodes: Sequence[Mapping[str, Any]]) -> list[RetryRun]:
    """The runs of ``sweep`` (W&B's run nodes) to run again: failed ones whose parameters no finished, running
    or pending run of the sweep has, each parameter set once (pure)."""
    names = list((sweep.config.get("parameters") or {}).keys())
    taken = [_plain(n.get("config"), names) for n in nodes if str(n.get("state") or "").lower() in _BUSY_OR_DONE]
    out: list[RetryRun] = []
    for node in nodes:
        state = str(node.get("state") or "").lower()
        if state not in RETRY_STATES:
            continue
        params = _plain(node.get("config"), names)
        if not params or params in taken:
            continue
        taken.append(params)
        out.append(RetryRun(sweep=sweep.name, run_id=str(node.get("name") or ""), state=state, params=params))
    return out


class SweepRunJob:
    """A retry round's job: the local backend's one task per run (argument files, no shell re-parsing), online,
    each task's run attached to the W&B sweep ``sweep_id`` (``entity/project/id``) with its parameters."""

    name = "wandb"

    def __init__(self, *, sweep_id: str, base_url: str) -> None:
        self.path = SweepPath.parse(sweep_id)
        self.base_url = base_url

    def job(self, sweep: PlannedSweep, created: CreatedSweep, *, layout: LaunchLayout,
            wrap: str | None) -> JobCommand:
        base = LocalBackend(online=True).job(sweep, created, layout=layout, wrap=wrap)
        args_dir = layout.args_dir(sweep.name)
        params = {f"{args_dir}/{i}.sweep.json": json.dumps({"wandb_version": 1, **{
            k: {"value": v} for k, v in run.items()}}).encode() for i, run in enumerate(sweep.run_params)}
        preamble = (*base.preamble, f'export WANDB_SWEEP_PARAM_PATH={shlex.quote(args_dir)}/"$task".sweep.json')
        env = {**base.env, "WANDB_SWEEP_ID": self.path.sweep, "WANDB_ENTITY": self.path.entity,
               "WANDB_PROJECT": self.path.project, "WANDB_BASE_URL": self.base_url}
        return replace(base, preamble=preamble, env=env, files={**base.files, **params})


def planned_sweep(record: SweepRecord, runs: Sequence[RetryRun], *, interpreter: str) -> PlannedSweep:
    """The retried runs of one sweep as a plan of one task per run, with the command lines W&B's agent builds."""
    spec = SweepSpec(name=record.name, tags=record.tags, config=record.config, num_nodes=None, line=0)
    argv = tuple(tuple(build_command(record.config, r.params, interpreter=interpreter, environ=DEFERRED_ENVIRON,
                                     args_json_file=ARGS_JSON_FILE_TOKEN)) for r in runs)
    return PlannedSweep(spec=spec, runs=len(runs), jobs=len(runs), hours=0.0, run_argv=argv,
                        run_params=tuple(r.params for r in runs))


@dataclass(frozen=True)
class WandbRetryPlan:
    """A W&B retry round: the runs and, per sweep, what its array writes and submits."""

    launch_id: str
    attempt: int
    runs: tuple[RetryRun, ...]
    prepared: tuple[PreparedSweep, ...] = ()
    root: str = ""
    offsets: dict[str, int] | None = None  # sweep -> the status row its first retried run gets
    dirs: tuple[str, ...] = ()  # the W&B directories the round's runs write in
    code: str = ""  # the snapshot the round runs in when it is not the launch's (retry --resync)

    def document(self, *, submitted: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The round as ``retry --json`` prints it (``submitted``: submission key -> job id)."""
        done = submitted or {}
        arrays = []
        for p in self.prepared:
            for sub in p.submissions:
                arrays.append({"sweep": p.name, "chunk": sub.chunk.index, "array": sub.chunk.array_spec,
                               "job_id": done.get(sub.key), "sbatch": sub.command(), "sweep_id": p.created.sweep_id,
                               "runs": [{"run_id": r.run_id, "state": r.state, "params": r.params}
                                        for r in self.runs if r.sweep == p.name][sub.chunk.offset:
                                                                                 sub.chunk.offset + sub.chunk.count]})
        return {"launch": self.launch_id, "attempt": self.attempt, "runs": len(self.runs), "code": self.code or None,
                "arrays": arrays}


def next_row(jobs: Sequence[JobRecord], sweep: str) -> int:
    """The first status row after every array task the sweep has had (its agents, earlier retry rounds)."""
    return max((j.task_offset + j.task_count for j in jobs if j.sweep_name == sweep), default=0)


def submit(db: StateDB, remote: Remote, plan: WandbRetryPlan, *, launch: LaunchRecord) -> dict[str, str]:
    """Write the round's job files and submit its arrays in one remote call, recording each array as sbatch
    prints its id; what was submitted (key -> job id)."""
    from atlas_sweeps.launch.retry import submit_round
    from atlas_sweeps.launch.submit import submit_script

    subs = {s.key: (p, s) for p in plan.prepared for s in p.submissions}
    offsets = plan.offsets or {}

    def record(key: str, job_id: str) -> None:
        prepared, sub = subs[key]
        db.add_job(JobRecord(launch_id=launch.id, sweep_name=prepared.name, chunk=sub.chunk.index,
                             job_id=job_id, job_name=sub.job_name, array_spec=sub.chunk.array_spec,
                             task_offset=offsets.get(prepared.name, 0) + sub.chunk.offset, task_count=sub.chunk.count,
                             output=sub.output, error=sub.error, script=sub.script_path, submitted=time.time(),
                             attempt=plan.attempt))

    return submit_round(remote, submit_script(list(plan.prepared), root=plan.root, extra_dirs=plan.dirs),
                        launch_id=launch.id, keys=subs, record=record)


def plan_retry(launch: LaunchRecord, sweeps: Sequence[SweepRecord], jobs: Sequence[JobRecord],
               runs: Mapping[str, Sequence[Mapping[str, Any]]], *, profile: Profile, template: Template,
               base_url: str, only: str | None = None, code: str = "") -> WandbRetryPlan:
    """The round that runs again the failed runs W&B lists (``runs``: sweep name -> run nodes), in ``code``
    (default: the launch's snapshot), pure."""
    from atlas_sweeps.launch.jobs import prepare_sweep

    attempt = max((j.attempt for j in jobs), default=1) + 1
    root = posixpath.dirname(posixpath.dirname(launch.snapshot))
    layout = RetryLayout(root=root, launch_id=launch.id, attempt=attempt, code=code or launch.snapshot)
    chosen: list[RetryRun] = []
    prepared = []
    for record in sweeps:
        if (only is not None and record.name != only) or not record.sweep_id:
            continue
        again = failed_runs(record, runs.get(record.name, ()))
        if not again:
            continue
        chosen += again
        path = SweepPath.parse(record.sweep_id)
        done = prepare_sweep(planned_sweep(record, again, interpreter=profile.interpreter),
                             CreatedSweep(sweep_id=record.sweep_id, url=record.url),
                             backend=SweepRunJob(sweep_id=record.sweep_id, base_url=base_url),  # type: ignore[arg-type]
                             profile=profile, layout=layout, template=template, launch_id=launch.id,
                             project=path.project, entity=path.entity,
                             max_array_size=launch.max_array_size or 1001)
        subs = tuple(replace(s, job_name=f"{s.job_name}-r{attempt - 1}") for s in done.submissions)
        prepared.append(replace(done, submissions=subs))
    return WandbRetryPlan(launch_id=launch.id, attempt=attempt, runs=tuple(chosen), prepared=tuple(prepared),
                          root=root, offsets={p.name: next_row(jobs, p.name) for p in prepared},
                          dirs=tuple(layout.wandb_dir(p.name) for p in prepared), code=code)
