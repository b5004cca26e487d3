"""The command line: a thin click group. Subcommands live in sibling modules and are imported only when
used, so ``atlas-sweeps --help`` stays fast (no wandb, no paramiko). Errors become exit codes here."""

from __future__ import annotations

import importlib
import sys

import click

from atlas_sweeps import __version__
from atlas_sweeps.errors import AtlasError

# name -> "module:attribute" of the click command; one line per built command.
_COMMANDS: dict[str, tuple[str, str]] = {
    "launch": ("atlas_sweeps.cli.launch", "Validate a composite sweep file, create its sweeps and submit them."),
    "status": ("atlas_sweeps.cli.status", "Live table of launches, sweeps and jobs (--once, --json, --wait)."),
    "tail": ("atlas_sweeps.cli.tail", "Follow one job's log (JOB is 123 or 123_4) until it ends."),
    "cancel": ("atlas_sweeps.cli.cancel", "Cancel a launch, a sweep or a job (scancel; stops W&B sweeps)."),
    "ls": ("atlas_sweeps.cli.ls", "List launches with their sweeps and job counts per state."),
    "clean": ("atlas_sweeps.cli.clean", "Delete the W&B runs that carry a tag, after listing them."),
    "sync": ("atlas_sweeps.cli.sync", "Upload the offline runs of local-backend launches with wandb sync."),
    "logout": ("atlas_sweeps.cli.logout", "End the SSH master connections (openssh transport): the next command logs in."),
    "sandbox": ("atlas_sweeps.cli.sandbox", "Start, stop or inspect the sandbox Slurm cluster on this machine."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        return getattr(module, cmd_name.replace("-", "_"))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above, so --help imports no subcommand module.
        rows = [(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="atlas-sweeps")
def cli() -> None:
    """Launch W&B hyperparameter sweeps on a Slurm cluster from one composite sweep file.

    \b
    atlas-sweeps launch composite_grid.yml --nodes 8   create sweeps, sync code, submit jobs
    atlas-sweeps status                                live table of every job
    atlas-sweeps tail 123456_3                         follow one job's log
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn our errors into one-line messages and exit codes."""
    try:
        cli.main(args=argv, prog_name="atlas-sweeps", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except AtlasError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)
