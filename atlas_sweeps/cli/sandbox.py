"""``atlas-sweeps sandbox up|down|status``: the sandbox Slurm cluster on this machine (root only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from atlas_sweeps.errors import UsageError
from atlas_sweeps.sandbox.components import COMPONENTS
from atlas_sweeps.sandbox.releases import RELEASES

if TYPE_CHECKING:
    from rich.console import Console


def _err() -> Console:
    """stderr, where every sandbox command reports (rich is imported only when one runs, not for --help)."""
    from atlas_sweeps import console

    return console.err()


def _log(message: str) -> None:
    _err().print(f"[dim]sandbox:[/] {message}", soft_wrap=True)


_root_option = click.option("--dir", "root", type=click.Path(path_type=Path), default=None,
                            help="Sandbox directory [default: $ATLAS_SANDBOX_DIR or /var/lib/atlas-sweeps/sandbox].")


_release_option = click.option(
    "--release", type=click.Choice(sorted(RELEASES)), default=None,
    help="The second sandbox, in a chroot of this release (trixie: Debian 13, Slurm 24.11 without accounting, "
         "OpenSSH 10, python3 only) [default: the host's own sandbox].")


@click.group()
def sandbox() -> None:
    """Start, stop or inspect the sandbox Slurm cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd and an
    SSH login node on 127.0.0.1). Needs root; installs Debian packages it lacks."""


@sandbox.command()
@_root_option
@_release_option
@click.option("--ssh-port", type=int, default=None, help="Login node port [default: 2222; trixie 2223].")
@click.option("--slurmctld-port", type=int, default=None, help="[default: 16817; trixie 16827]")
@click.option("--slurmd-port", type=int, default=None, help="[default: 16818; trixie 16828]")
@click.option("--slurmdbd-port", type=int, default=None, help="[default: 16819]")
@click.option("--mariadb-port", "mysql_port", type=int, default=None, help="[default: 13306]")
@click.option("--min-job-age", type=int, default=None,
              help="Seconds a finished job stays in squeue (Slurm's MinJobAge) [default: 10].")
@click.option("--no-profile", is_flag=True, help="Don't copy the cluster profiles to ~/.config/atlas-sweeps.")
@click.option("--no-venv", is_flag=True, help="Skip the cluster user's venv with wandb.")
@click.option("--mirror", default=None, metavar="URL",
              help="With --release: the mirror debootstrap fetches from [default: the one apt uses here].")
def up(*, root: Path | None, release: str | None, ssh_port: int | None, slurmctld_port: int | None,
       slurmd_port: int | None, slurmdbd_port: int | None, mysql_port: int | None, min_job_age: int | None,
       no_profile: bool, no_venv: bool, mirror: str | None) -> int:
    """Install what is missing and start every component (idempotent)."""
    from atlas_sweeps import sandbox as api

    if release is not None:
        host_only = {"--slurmdbd-port": slurmdbd_port, "--mariadb-port": mysql_port, "--no-venv": no_venv or None}
        given = [flag for flag, value in host_only.items() if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} concern the host's sandbox, not --release {release} "
                             "(it has no accounting and no venv)", hint="leave them out")
        _up_release(release, root=root, ssh_port=ssh_port, slurmctld_port=slurmctld_port,
                    slurmd_port=slurmd_port, min_job_age=min_job_age, mirror=mirror, no_profile=no_profile)
        return 0
    if mirror is not None:
        raise UsageError("--mirror is for --release only (the host's sandbox installs with the host's apt)",
                         hint="add --release NAME, or leave --mirror out")

    info = api.up(root=root, ssh_port=ssh_port, slurmctld_port=slurmctld_port, slurmd_port=slurmd_port,
                  slurmdbd_port=slurmdbd_port, mysql_port=mysql_port, min_job_age=min_job_age,
                  write_profiles=not no_profile, install_venv=not no_venv, log=_log)
    s = info.settings
    _err().print(f"[green]sandbox up[/] in {info.seconds:.1f}s: ssh -p {s.ssh_port} "
               f"-i {info.paths.user_key(s.user)} -o UserKnownHostsFile={info.paths.known_hosts} "
               f"{s.user}@127.0.0.1", soft_wrap=True)
    _print_profiles(info.profiles)
    return 0


def _print_profiles(profiles: dict[str, Path]) -> None:
    for name, path in profiles.items():
        _err().print(f"  profile [bold]{name}[/]: {path}", soft_wrap=True)


def _up_release(name: str, *, root: Path | None, ssh_port: int | None, slurmctld_port: int | None,
                slurmd_port: int | None, min_job_age: int | None, mirror: str | None, no_profile: bool) -> None:
    from atlas_sweeps.sandbox import release_lifecycle

    info = release_lifecycle.up(name, root=root, ssh_port=ssh_port, slurmctld_port=slurmctld_port,
                                slurmd_port=slurmd_port, min_job_age=min_job_age, mirror=mirror,
                                write_profiles=not no_profile, log=_log)
    s = info.settings
    _err().print(f"[green]sandbox {name} up[/] in {info.seconds:.1f}s ({info.release.stands_for}): "
               f"ssh -p {s.ssh_port} -i {info.paths.user_key(s.user)} "
               f"-o UserKnownHostsFile={info.paths.known_hosts} {s.user}@127.0.0.1", soft_wrap=True)
    _print_profiles(info.profiles)


@sandbox.command()
@_root_option
@_release_option
@click.option("--only", type=click.Choice(COMPONENTS), default=None, help="Stop just this component.")
def down(*, root: Path | None, release: str | None, only: str | None) -> int:
    """Stop the sandbox's own processes (by pid: TERM, then KILL); with --release also unmount its chroot's
    /proc, /sys and /dev."""
    from atlas_sweeps import sandbox as api

    if release is not None:
        if only is not None:
            raise UsageError("--only is for the host's sandbox", hint=f"stop all of {release}: leave --only out")
        from atlas_sweeps.sandbox import release_lifecycle

        stopped = release_lifecycle.down(release, root=root, log=_log)
    else:
        stopped = api.down(root=root, only=only, log=_log)
    _err().print("nothing was running" if not stopped else f"[green]stopped[/] {', '.join(stopped)}")
    return 0


@sandbox.command()
@_root_option
@_release_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def status(*, root: Path | None, release: str | None, as_json: bool) -> int:
    """Show each component's pid, liveness and port; exit 1 when any is down."""
    from atlas_sweeps import sandbox as api

    if release is not None:
        from atlas_sweeps.sandbox import release_lifecycle

        st = release_lifecycle.status(release, root=root)
    else:
        st = api.status(root=root)
    if as_json:
        click.echo(json.dumps(st.to_dict(), indent=2))
    elif not st.configured:
        up_command = "atlas-sweeps sandbox up" + (f" --release {release}" if release else "")
        _err().print(f"no sandbox at {st.root}: run `{up_command}`")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"sandbox {st.root}")
        for col in ("component", "pid", "alive", "answering"):
            table.add_column(col)
        table.add_column("endpoint", overflow="fold")
        for c in st.components:
            table.add_row(c.name, str(c.pid or "-"), _mark(c.alive), _mark(c.answering), c.endpoint)
        Console().print(table)
    return 0 if st.ok else 1


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"
