"""``atlas-sweeps doctor``: check a cluster profile end to end, one line per check with what to change."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click


@click.command()
@click.option("-c", "--cluster", metavar="NAME", help="Cluster profile to check (default: the only one, or default_cluster).")
@click.option("--probe-compute", is_flag=True, help="Also run a one-minute job that tries the W&B server from a compute node.")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as one JSON document.")
def doctor(*, cluster: str | None, probe_compute: bool, accept_new_host_key: bool, as_json: bool) -> int:
    """Check what a launch on CLUSTER needs, in one remote call: login, set-up lines one by one, the
    interpreter, the partition, the job options (sbatch --test-only), accounting, rsync and the W&B login.
    Exits 1 when something would stop a launch.

    \b
    atlas-sweeps doctor --cluster mycluster
    """
    from atlas_sweeps import console
    from atlas_sweeps.backends import choose_backend
    from atlas_sweeps.backends.wandb.backend import cluster_credential_checks
    from atlas_sweeps.backends.wandb.credentials import resolve_base_url
    from atlas_sweeps.cli._session import open_session
    from atlas_sweeps.clusters.doctor import FAIL, OK, Check, checks, job_test_script, would_stop_a_launch
    from atlas_sweeps.clusters.probe import parse_probe, probe_script
    from atlas_sweeps.config.profile import load_profile
    from atlas_sweeps.errors import AtlasError
    from atlas_sweeps.remote.rsync_version import require_local_rsync

    profile = load_profile(cluster, project_dir=Path.cwd())
    results: list[Check] = []
    try:
        results.append(Check("local rsync", OK, require_local_rsync().label))
    except AtlasError as exc:
        results.append(Check("local rsync", FAIL, exc.message, exc.hint or ""))
    backend, _notice = choose_backend(None, profile)
    needs_wandb = backend == "wandb"
    base_url = resolve_base_url(profile.wandb_base_url)
    script = probe_script(setup=profile.setup, interpreter=profile.interpreter, test_script=job_test_script(profile),
                          wandb_checks=cluster_credential_checks(base_url) if needs_wandb else (),
                          compute_url=base_url if probe_compute else None, compute_partition=profile.slurm.partition)
    try:
        remote = open_session(profile, accept_new_host_key=accept_new_host_key)
    except AtlasError as exc:
        results.append(Check("login", FAIL, exc.message, exc.hint or ""))
    else:
        try:
            answer = remote.run_script(script, timeout=300)
        finally:
            remote.close()
        login = remote.describe()
        results += checks(profile, parse_probe(answer.stdout), login=login, needs_wandb=needs_wandb)
    failed = would_stop_a_launch(results)
    if as_json:
        click.echo(json.dumps({"cluster": profile.name, "backend": backend, "ok": not failed,
                               "checks": [asdict(c) for c in results]}, indent=2))
        return 1 if failed else 0
    out = console.out()
    marks = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    out.print(f"cluster {profile.name} ({profile.source or 'no file'}), {backend} backend", highlight=False)
    for check in results:
        line = f"{marks[check.status]} {check.name:<18} {_escape(check.detail)}"
        if check.fix and check.status != "ok":
            line += f"\n     [dim]→ {_escape(check.fix)}[/]"
        out.print(line, highlight=False, soft_wrap=True)
    out.print("something here would stop a launch: fix the FAIL lines above" if failed else
              f"ready: atlas-sweeps launch FILE --cluster {profile.name}", highlight=False)
    return 1 if failed else 0


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
