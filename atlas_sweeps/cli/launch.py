"""``atlas-sweeps launch``: the thin command around atlas_sweeps.launch.launcher."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from atlas_sweeps.backends import NAMES as BACKEND_NAMES
from atlas_sweeps.cli._session import remote_factory
from atlas_sweeps.errors import UsageError

if TYPE_CHECKING:
    from atlas_sweeps.launch.launcher import Launcher, LaunchResult, Prepared


@click.command()
@click.argument("config", required=False)
@click.option("-c", "--cluster", metavar="NAME", help="Cluster profile to use (default: the only one, or default_cluster).")
@click.option("-n", "--nodes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Jobs per sweep: array tasks running at once (local) or agents (wandb). Never sbatch --nodes.")
@click.option("--backend", type=click.Choice(BACKEND_NAMES),
              help="Sweep backend (default: the profile's, else wandb when credentials are found, else local).")
@click.option("--test-time", type=float, default=1.0, show_default=True, metavar="HOURS",
              help="Hours one run takes, for the compute estimate.")
@click.option("--count", type=click.IntRange(min=1), help="Runs of a random sweep without run_cap.")
@click.option("--tags-param", metavar="NAME",
              help="Also pass the tags to the program as a parameter, e.g. --tags-param _tags (the original's --_tags).")
@click.option("--project", help="W&B project (default: the sweep file's, the profile's, or this directory's name).")
@click.option("--entity", help="W&B entity (default: the sweep file's, the profile's, or $WANDB_ENTITY).")
@click.option("--partition", help="Override the profile's Slurm partition.")
@click.option("--time", "time_limit", metavar="D-HH:MM:SS", help="Override the profile's job time limit.")
@click.option("--gpus", type=click.IntRange(min=0), help="Override the profile's GPUs per job.")
@click.option("--runs-per-job", type=int, metavar="K",
              help="Runs per array task, one after another (local backend; default 1, or P).")
@click.option("--parallel-per-job", type=int, metavar="P",
              help="Of a task's runs, how many at once, each on its share of the job's GPUs (wandb: agents per job).")
@click.option("--template", type=click.Path(dir_okay=False), help="sbatch template to use instead of the profile's.")
@click.option("--signal-grace", type=int, metavar="SECONDS",
              help="Signal the job this long before its time limit, so the run checkpoints and the task requeues "
                   "(default: the profile's [slurm] signal_grace, else 60).")
@click.option("--no-requeue", is_flag=True, help="No checkpoint signal and no requeue: a run at its time limit or "
                                                   "preempted just ends.")
@click.option("-m", "--note", metavar="TEXT", default="",
              help="The hypothesis this launch tests: recorded, shown by ls and status, W&B's sweep description.")
@click.option("--skip-done", is_flag=True,
              help="Leave out the runs that already completed under the same tags and project (as status last "
                   "recorded them; local backend).")
@click.option("--dry-run", is_flag=True, help="Show the sweeps, scripts and sbatch calls; contact nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.option("--resume", metavar="LAUNCH", help="Finish a launch that was cut short; submits nothing twice.")
@click.option("--force-resubmit-unknown", is_flag=True,
              help="With --resume: submit the arrays the database lacks even when the cluster cannot tell "
                   "whether they exist (no accounting); check their logs first.")
@click.option("--accept-new-host-key", is_flag=True,
              help="Trust and record the login node's host key if it is unknown (never a changed one).")
def launch(*, config: str | None, cluster: str | None, nodes: int, backend: str | None, test_time: float,
           count: int | None, tags_param: str | None, project: str | None, entity: str | None,
           partition: str | None, time_limit: str | None, gpus: int | None, template: str | None,
           signal_grace: int | None, no_requeue: bool, runs_per_job: int | None, parallel_per_job: int | None,
           note: str, skip_done: bool, dry_run: bool, as_json: bool, resume: str | None, force_resubmit_unknown: bool,
           accept_new_host_key: bool) -> int:
    """Validate CONFIG (a composite sweep file; .yml may be left off), create its sweeps, sync the code to
    the cluster and submit the jobs, recording everything locally.

    \b
    atlas-sweeps launch composite_grid.yml --nodes 8 --cluster mycluster
    atlas-sweeps launch composite_grid -m "warmup fixes the lr=3e-4 divergence"
    atlas-sweeps launch composite_grid --dry-run
    atlas-sweeps launch --resume k3x9q2
    """
    from atlas_sweeps import console
    from atlas_sweeps.launch.launcher import LaunchOptions, prepare

    cwd = Path.cwd()
    if resume:
        if config or dry_run or note or skip_done:
            raise UsageError("--resume takes no sweep file, no --note, no --skip-done and no --dry-run",
                             hint="the recorded file and options are reused")
        return _run(lambda launcher: launcher.resume(resume, cwd=cwd, force_resubmit_unknown=force_resubmit_unknown),
                    accept_new_host_key=accept_new_host_key, as_json=as_json)
    if force_resubmit_unknown:
        raise UsageError("--force-resubmit-unknown goes with --resume", hint="atlas-sweeps launch --resume ID "
                         "--force-resubmit-unknown")
    if not config:
        raise UsageError("missing the sweep file", hint="atlas-sweeps launch CONFIG.yml (see --help)")
    overrides = {"slurm_partition": partition, "slurm_time": time_limit, "slurm_gpus": gpus, "template": template,
                 "slurm_signal_grace": signal_grace, "slurm_requeue": False if no_requeue else None}
    options = LaunchOptions(config=config, cluster=cluster, nodes=nodes, backend=backend, test_time=test_time,
                            count=count, tags_param=tags_param, project=project, entity=entity,
                            overrides={k: v for k, v in overrides.items() if v is not None}, note=note.strip(),
                            runs_per_job=runs_per_job, parallel_per_job=parallel_per_job)
    prepared = prepare(options, cwd=cwd, dry_run=dry_run)
    if skip_done:
        prepared = _skip_done(prepared, cwd=cwd, dry_run=dry_run)
        if not prepared.plan.sweeps:
            console.err().print(f"nothing to launch: every run of {config} completed already (--skip-done)")
            return 0
    if prepared.backend_notice and not as_json:
        console.err().print(f"[yellow]note:[/] {prepared.backend_notice}")
    if prepared.profile.project_note:  # a cloned repository's options: always said, even with --json
        from rich.markup import escape

        console.err().print(f"[yellow]note:[/] {escape(prepared.profile.project_note)}")
    if dry_run:
        import json

        from atlas_sweeps.launch.dry_run import dry_run as render_dry_run
        from atlas_sweeps.launch.view import dry_run_document, print_dry_run

        shown = render_dry_run(prepared)
        if as_json:
            click.echo(json.dumps(dry_run_document(prepared, shown.sweeps, root=shown.root), indent=2))
        else:
            print_dry_run(console.out(), prepared, shown.sweeps, root=shown.root)
        return 0
    return _run(lambda launcher: launcher.launch(prepared), accept_new_host_key=accept_new_host_key, as_json=as_json)


def _skip_done(prepared: Prepared, *, cwd: Path, dry_run: bool) -> Prepared:
    """``prepared`` again without the runs that completed under the same tags and project."""
    from dataclasses import replace

    from atlas_sweeps import console
    from atlas_sweeps.backends import make_backend
    from atlas_sweeps.launch.done_runs import completed_runs, earlier_launches, skip_map
    from atlas_sweeps.launch.launcher import prepare
    from atlas_sweeps.state.store import StateDB
    from atlas_sweeps.status.stored import stored_status

    if not make_backend(prepared.backend, dry_run=True).expands_runs:
        return _skip_done_at_backend(prepared, cwd=cwd, dry_run=dry_run)
    db = StateDB.open_default()
    done = completed_runs(stored_status(db, rec) for rec in earlier_launches(db, project=prepared.project))
    skip = skip_map(prepared.plan, done)
    if skip:
        console.err().print(f"[yellow]note:[/] --skip-done leaves out {sum(map(len, skip.values()))} completed "
                            "run(s)", highlight=False)
    return prepare(replace(prepared.options, skip=skip), cwd=cwd, dry_run=dry_run) if skip else prepared


def _skip_done_at_backend(prepared: Prepared, *, cwd: Path, dry_run: bool) -> Prepared:
    """``prepared`` again with each sweep's grid points that earlier finished runs at the backend (W&B) cover
    counted done: the new sweeps get those runs as prior runs, and the run counts and hours leave them out.
    The backend is asked even in a dry run (one query per tag set), so the dry run says what would run."""
    from dataclasses import replace

    from atlas_sweeps import console
    from atlas_sweeps.backends import make_backend
    from atlas_sweeps.launch.launcher import prepare

    backend = make_backend(prepared.backend, profile=prepared.profile)
    prior = backend.done_runs(prepared.plan.sweeps, entity=prepared.entity, project=prepared.project)
    if prior:
        points = sum(int(p["points"]) for p in prior.values())
        runs = sum(len(p["run_ids"]) for p in prior.values())
        console.err().print(f"[yellow]note:[/] --skip-done leaves out {points} completed run(s) (W&B's {runs} finished "
                            f"run(s) with the same tags in {prepared.project} become the new sweeps' prior runs)",
                            highlight=False)
    return prepare(replace(prepared.options, prior=prior), cwd=cwd, dry_run=dry_run) if prior else prepared


def _run(action: Callable[[Launcher], LaunchResult], *, accept_new_host_key: bool, as_json: bool) -> int:
    """Run ``action(launcher)`` with progress on stderr, then print its result."""
    import json

    from atlas_sweeps import console
    from atlas_sweeps.launch.launcher import Launcher
    from atlas_sweeps.launch.view import print_result, result_document
    from atlas_sweeps.state.store import StateDB

    with console.Steps() as steps:
        launcher = Launcher(db=StateDB.open_default(),
                            remote_factory=remote_factory(accept_new_host_key=accept_new_host_key),
                            on_step=steps.step, on_rsync=steps.detail)
        result = action(launcher)
    if as_json:
        click.echo(json.dumps(result_document(result), indent=2))
    else:
        print_result(console.out(), result)
    return 0
