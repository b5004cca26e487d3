"""``atlas-sweeps logout``: end the OpenSSH master connections (the one login that serves many commands)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.option("-c", "--cluster", metavar="NAME", help="Only this cluster profile (default: every one).")
@click.option("--json", "as_json", is_flag=True, help="Print what was closed as one JSON document.")
def logout(cluster: str | None, as_json: bool) -> int:
    """End the SSH master connection of CLUSTER (default: of every cluster profile) with `ssh -O exit`.
    The next command logs in again (asking for a password or second factor if the cluster wants one).

    \b
    atlas-sweeps logout
    atlas-sweeps logout --cluster mycluster
    """
    from atlas_sweeps import console
    from atlas_sweeps.config.profile import available_profiles, load_profile
    from atlas_sweeps.remote import RemoteTarget, transport_of
    from atlas_sweeps.remote.openssh import master_for

    profiles = ([load_profile(cluster, project_dir=Path.cwd())] if cluster
                else list(available_profiles(project_dir=Path.cwd()).values()))
    closed: dict[str, bool] = {}
    for profile in profiles:
        target = RemoteTarget.from_profile(profile)
        if target.is_local or (not cluster and transport_of(target) != "openssh"):
            continue
        closed[profile.name] = master_for(target).logout()
    if as_json:
        click.echo(json.dumps({"closed": sorted(n for n, c in closed.items() if c),
                               "not_open": sorted(n for n, c in closed.items() if not c)}, indent=2))
        return 0
    err = console.err()
    for name, was_open in closed.items():
        err.print(f"{name}: {'closed the SSH master connection' if was_open else 'no SSH master connection open'}",
                  highlight=False)
    if not closed:
        err.print("no cluster profile uses the openssh transport: nothing to close", highlight=False)
    return 0
