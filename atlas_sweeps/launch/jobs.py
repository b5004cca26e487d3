"""Turning a plan into job scripts and ``sbatch`` calls (pure): one rendered script per sweep, the files
its tasks read, and one submission per array chunk."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from atlas_sweeps.backends.base import CreatedSweep, SweepBackend
from atlas_sweeps.config.profile import Profile
from atlas_sweeps.config.templates import ScriptContext, Template, render_script
from atlas_sweeps.launch import preemption
from atlas_sweeps.launch.layout import EXIT_STREAM, LaunchLayout
from atlas_sweeps.launch.plan import PlannedSweep
from atlas_sweeps.slurm.sbatch import Submission, split_array


@dataclass(frozen=True)
class PreparedSweep:
    """A sweep ready to submit: its script, the files to write, and its ``sbatch`` calls."""

    planned: PlannedSweep
    created: CreatedSweep
    script_path: str
    script_text: str
    files: dict[str, bytes]
    submissions: tuple[Submission, ...]
    log_dir: str

    @property
    def name(self) -> str:
        return self.planned.name


def job_name(launch_id: str, sweep: str, chunk: int, chunks: int) -> str:
    """``atlas-<launch>-<sweep>``; squeue and sacct find a launch's jobs by it."""
    base = f"atlas-{launch_id}-{sweep}"
    return base if chunks == 1 else f"{base}-c{chunk}"


def job_env(sweep: PlannedSweep, *, layout: LaunchLayout, profile: Profile, launch_id: str,
            project: str, entity: str | None) -> dict[str, str]:
    """The environment every task of ``sweep`` gets: tags and group reach runs without program changes."""
    env = {
        "ATLAS_LAUNCH": launch_id,
        "ATLAS_SWEEP": sweep.name,
        "WANDB_RUN_GROUP": sweep.name,
        "WANDB_PROJECT": project,
        "WANDB_DIR": layout.wandb_dir(sweep.name),
    }
    if sweep.spec.tags:  # wandb refuses an empty WANDB_TAGS ("Tag at index 0 is empty")
        env["WANDB_TAGS"] = ",".join(sweep.spec.tags)
    if entity:
        env["WANDB_ENTITY"] = entity
    if profile.wandb_base_url:
        env["WANDB_BASE_URL"] = profile.wandb_base_url
    return env


def exit_record(log_dir: str, *, finish: str = "") -> tuple[str, ...]:
    """Bash lines that write the task's exit code to ``<log_dir>/<array id>_<task>.exit`` as its script exits
    (after the backend's ``atlas_finish``, which may change it), for clusters where sacct cannot tell; a task
    that requeued itself writes none (``preemption.exit_guard``)."""
    target = f'{shlex.quote(log_dir)}/"${{SLURM_ARRAY_JOB_ID:-0}}_${{SLURM_ARRAY_TASK_ID:-0}}.{EXIT_STREAM}"'
    call = preemption.exit_guard(finish=bool(finish)) + ('atlas_finish "$code"; code=$?; ' if finish else "")
    return (
        f"atlas_exit_file={target}",
        'rm -f -- "$atlas_exit_file"  # a requeued task starts without its last exit code',
        *([finish] if finish else []),
        f'atlas_exit() {{ local code=$?; set +e; {call}printf \'%s\\n\' "$code" > "$atlas_exit_file" 2>/dev/null; '
        'exit "$code"; }',
        "trap atlas_exit EXIT",
    )


def prepare_sweep(sweep: PlannedSweep, created: CreatedSweep, *, backend: SweepBackend, profile: Profile,
                  layout: LaunchLayout, template: Template, launch_id: str, project: str,
                  entity: str | None, max_array_size: int) -> PreparedSweep:
    """Render ``sweep``'s script and cut its job array into submissions."""
    job = backend.job(sweep, created, layout=layout, wrap=profile.wrap)
    policy = preemption.Preemption.of(profile.slurm)
    env = job_env(sweep, layout=layout, profile=profile, launch_id=launch_id, project=project,
                  entity=entity) | job.env
    context = ScriptContext(
        launch_id=launch_id, sweep_name=sweep.name, backend=backend.name,
        directives=(*profile.slurm.directives(), *policy.directives()), setup=profile.setup, env=env,
        snapshot=layout.snapshot,
        run_preamble=(exit_record(layout.log_dir(sweep.name), finish=job.finish)
                      + preemption.trap_lines(policy, run_pid=job.run_pid) + job.preamble),
        run_command=preemption.run_lines(policy, job.command),
    )
    script_path = layout.script(sweep.name)
    chunks = split_array(job.tasks, max_array_size=max_array_size, throttle=job.throttle)
    submissions = tuple(
        Submission(key=f"{sweep.name}#{c.index}", job_name=job_name(launch_id, sweep.name, c.index, len(chunks)),
                   script_path=script_path, chunk=c, output=layout.log_pattern(sweep.name, "out"),
                   error=layout.log_pattern(sweep.name, "err"), chdir=layout.snapshot)
        for c in chunks
    )
    return PreparedSweep(planned=sweep, created=created, script_path=script_path,
                         script_text=render_script(template, context), files=dict(job.files),
                         submissions=submissions, log_dir=layout.log_dir(sweep.name))
