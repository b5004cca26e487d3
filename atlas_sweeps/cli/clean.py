"""``atlas-sweeps clean``: delete the W&B runs that carry a tag, after showing them and asking."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from atlas_sweeps.backends.wandb.clean import CleanPlan


@click.command()
@click.option("--tag", required=True, help="Delete the runs carrying this tag (e.g. dev_tests).")
@click.option("--project", help="W&B project (default: the profile's, or this directory's name).")
@click.option("--entity", help="W&B entity (default: the profile's, $WANDB_ENTITY, or your default entity).")
@click.option("-c", "--cluster", metavar="NAME",
              help="Take the W&B server, entity and project defaults from this cluster profile's [wandb].")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
@click.option("--dry-run", is_flag=True, help="Only list the runs that would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs (and what was deleted) as JSON.")
def clean(*, tag: str, project: str | None, entity: str | None, cluster: str | None, yes: bool, dry_run: bool,
          as_json: bool) -> int:
    """Delete the W&B runs tagged TAG in one project: lists them first, asks unless --yes.

    \b
    atlas-sweeps clean --tag dev_tests --dry-run
    atlas-sweeps clean --tag dev_tests --project myproj --yes
    """
    import os

    from atlas_sweeps import console
    from atlas_sweeps.backends.wandb.clean import delete_runs, find_tagged_runs
    from atlas_sweeps.cli._ask import confirm_or_refuse

    cwd = Path.cwd()
    base_url = None
    if cluster:
        from atlas_sweeps.config.profile import load_profile

        profile = load_profile(cluster, project_dir=cwd)
        base_url = profile.wandb_base_url
        project = project or profile.wandb_project
        entity = entity or profile.wandb_entity
    project = project or cwd.name
    entity = entity or os.environ.get("WANDB_ENTITY")
    plan = find_tagged_runs(tag=tag, project=project, entity=entity, base_url=base_url)
    document = {"entity": plan.entity, "project": plan.project, "tag": tag, "base_url": plan.base_url,
                "runs": [asdict(r) for r in plan.runs], "deleted": 0, "dry_run": dry_run}
    if not as_json:
        _print_runs(plan)
    if not plan.runs or dry_run:
        if as_json:
            click.echo(json.dumps(document, indent=2))
        elif plan.runs:
            console.err().print("dry run: nothing deleted")
        return 0
    if not yes:
        confirm_or_refuse(f"Delete these {len(plan.runs)} run(s) from {plan.path}?",
                          refusal=f"{len(plan.runs)} run(s) would be deleted, but there is no terminal to ask on",
                          hint="pass --yes to delete them, or --dry-run to only list them")
    document["deleted"] = delete_runs(plan)
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        console.err().print(f"deleted {document['deleted']} run(s) tagged '{tag}' from {plan.path}")
    return 0


def _print_runs(plan: CleanPlan) -> None:
    from rich.table import Table

    from atlas_sweeps import console

    if not plan.runs:
        console.out().print(f"no runs tagged '{plan.tag}' in {plan.path} on {plan.base_url}")
        return
    table = Table(title=f"{len(plan.runs)} run(s) tagged '{plan.tag}' in {plan.path}")
    for column in ("id", "name", "state", "created", "group", "tags"):
        table.add_column(column)
    for run in plan.runs:
        table.add_row(run.id, run.name, run.state, run.created, run.group or "", ", ".join(run.tags))
    console.out().print(table)
