"""``atlas-sweeps cluster add|ls|show``: onboard a real cluster in one command (one login, one probe call, a
proposed profile written after you confirm), and see the profiles you have."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from atlas_sweeps.errors import UsageError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@click.group()
def cluster() -> None:
    """Add a cluster profile from an ssh config alias (probing the cluster), list and show profiles.

    \b
    atlas-sweeps cluster add mycluster --host mycluster-login
    atlas-sweeps cluster ls
    atlas-sweeps cluster show mycluster
    """


@cluster.command("add")
@click.argument("name")
@click.option("--host", required=True, metavar="ALIAS", help="The login node: an ~/.ssh/config alias or a host name.")
@click.option("--user", metavar="USER", help="Login name (default: the ssh config's, else yours).")
@click.option("--port", type=click.IntRange(1, 65535), help="SSH port (default: the ssh config's, else 22).")
@click.option("--identity-file", metavar="FILE", help="Private key (default: ssh-agent and the ssh config's).")
@click.option("--known-hosts", metavar="FILE", help="known_hosts file (default: the ssh config's).")
@click.option("--transport", type=click.Choice(["openssh", "paramiko"]),
              help="openssh: one login serves many commands (2FA clusters); default: paramiko, or openssh when "
                   "your ssh config sets ControlMaster for the host.")
@click.option("--probe-compute", is_flag=True,
              help="Also run a one-minute job that says whether compute nodes reach W&B (decides the backend).")
@click.option("--wandb-url", metavar="URL", help="The W&B server --probe-compute tries (default: your W&B login's).")
@click.option("--accept-new-host-key", is_flag=True, help="Trust and record the login node's host key if unknown.")
@click.option("-y", "--yes", is_flag=True, help="Write the proposed profile without asking.")
@click.option("--force", is_flag=True, help="Replace an existing profile of that name.")
@click.option("--json", "as_json", is_flag=True, help="Print the proposal as one JSON document; written only with --yes.")
def add(*, name: str, host: str, user: str | None, port: int | None, identity_file: str | None,
        known_hosts: str | None, transport: str | None, probe_compute: bool, wandb_url: str | None,
        accept_new_host_key: bool, yes: bool, force: bool, as_json: bool) -> int:
    """Probe the cluster behind HOST in one remote call and write a profile NAME for it after you confirm."""
    from atlas_sweeps import console
    from atlas_sweeps.cli._session import open_session
    from atlas_sweeps.clusters.probe import parse_probe, probe_script
    from atlas_sweeps.clusters.proposal import propose
    from atlas_sweeps.config import profile_values
    from atlas_sweeps.config.profile import Profile, config_home, load_profile, profile_toml
    from atlas_sweeps.errors import RemoteError

    if not _NAME.match(name):
        raise UsageError(f"cluster name {name!r} is not a plain name",
                         hint="use letters, digits, '.', '_' or '-', starting with a letter or digit")
    try:
        profile_values.host_name(host)
    except profile_values.Invalid as exc:
        raise UsageError(f"--host {host!r} {exc}") from None
    path = config_home() / "clusters" / f"{name}.toml"
    if path.exists() and not force:
        raise UsageError(f"a profile named '{name}' exists already ({path})",
                         hint=f"see it with 'atlas-sweeps cluster show {name}', or pass --force to replace it")
    target = Profile(name=name, host=host, user=user, port=port, identity_file=identity_file,
                     known_hosts=known_hosts, transport=transport)
    compute_url = _wandb_url(wandb_url) if probe_compute else None
    err = console.err()
    remote = open_session(target, accept_new_host_key=accept_new_host_key)
    try:
        err.print(f"probing {host} (one remote call{', with a one-minute job' if probe_compute else ''})...",
                  highlight=False, soft_wrap=True)
        result = remote.run_script(probe_script(compute_url=compute_url), timeout=300)
    finally:
        remote.close()
    facts = parse_probe(result.stdout)
    if not facts.complete:
        raise RemoteError(f"the probe on {host} stopped before its end (exit {result.exit_code})",
                          hint="the connection may have dropped; try again")
    if not facts.partitions:
        raise RemoteError(f"{host} answered, but sinfo listed no partitions there",
                          hint="is this a Slurm login node? `ssh HOST sinfo` shows what it says")
    proposal = propose(name, host=host, facts=facts, user=user, port=port, identity_file=identity_file,
                       known_hosts=known_hosts, transport=transport)
    text = profile_toml(proposal.profile, header=f"# Written by `atlas-sweeps cluster add {name}`; edit freely.")
    if as_json:
        click.echo(json.dumps({"profile": str(path), "written": yes, "toml": text, "reasons": list(proposal.reasons),
                               "partitions": [p.name for p in facts.partitions], "accounting": facts.accounting,
                               "slurm_version": facts.slurm_version, "rsync": facts.rsync,
                               "compute_reaches_wandb": facts.compute_wandb}, indent=2))
    else:
        out = console.out()
        out.print(f"Slurm {facts.slurm_version or '?'} · partitions: "
                  + ", ".join(p.name + ("*" if p.default else "") for p in facts.partitions)
                  + f" · accounting: {'yes' if facts.accounting else 'no'} · {' '.join(facts.rsync.split()) or 'no rsync'}",
                  highlight=False, soft_wrap=True)
        for reason in proposal.reasons:
            out.print(f"  - {reason}", highlight=False, soft_wrap=True)
        out.print(f"\nproposed {path}:\n", highlight=False)
        out.print(text, markup=False, highlight=False)
    if not yes:
        if as_json:
            return 0  # the proposal was the answer; --yes writes it
        if not sys.stdin.isatty():
            raise UsageError("the profile was not written", hint="pass --yes to write it without asking")
        if not click.confirm(f"Write {path}?", default=True, err=True):
            err.print("not written")
            return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    load_profile(name, project_dir=Path.cwd())  # what it wrote reads back (a broken file fails here, not at launch)
    err.print(f"wrote {path}\nnext: atlas-sweeps doctor --cluster {name}, then "
              f"atlas-sweeps launch FILE --cluster {name}", highlight=False, soft_wrap=True)
    return 0


@cluster.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as one JSON document.")
def ls(*, as_json: bool) -> int:
    """List your cluster profiles: host, transport, partition and backend."""
    from atlas_sweeps import console
    from atlas_sweeps.config.profile import available_profiles

    profiles = available_profiles(project_dir=Path.cwd())
    rows = [{"name": p.name, "host": p.host, "user": p.user, "transport": p.transport or "auto",
             "partition": p.slurm.partition, "backend": p.backend or "auto", "source": p.source}
            for p in profiles.values()]
    if as_json:
        click.echo(json.dumps({"clusters": rows}, indent=2))
        return 0
    if not rows:
        console.err().print("no cluster profiles yet: add one with 'atlas-sweeps cluster add NAME --host ALIAS' "
                            "(or try 'atlas-sweeps sandbox up')")
        return 0
    out = console.out()
    wheres = [f"{row['user']}@{row['host']}" if row["user"] else str(row["host"]) for row in rows]
    width, host_width = max(len(str(r["name"])) for r in rows), max(len(w) for w in wheres)
    for row, where in zip(rows, wheres, strict=True):
        out.print(f"{row['name']:<{width}}  {where:<{host_width}}  transport {row['transport']:<8}  "
                  f"partition {row['partition'] or '-'}  backend {row['backend']}", highlight=False)
    return 0


@cluster.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as one JSON document.")
def show(*, name: str, as_json: bool) -> int:
    """Show the profile NAME as it is read (your file plus any job options the project file adds)."""
    from dataclasses import asdict

    from atlas_sweeps import console
    from atlas_sweeps.config.profile import load_profile, profile_toml

    profile = load_profile(name, project_dir=Path.cwd())
    if as_json:
        click.echo(json.dumps(asdict(profile), indent=2))
        return 0
    out = console.out()
    out.print(f"# {profile.source}" + (f" (+ job options from {profile.project_file})" if profile.project_file else ""),
              highlight=False)
    out.print(profile_toml(profile), markup=False, highlight=False)
    return 0


def _wandb_url(given: str | None) -> str:
    """The W&B server the compute probe tries: the one given, else the W&B login's."""
    from atlas_sweeps.backends.wandb.credentials import resolve_base_url

    return resolve_base_url(given)
