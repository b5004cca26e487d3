"""The click group: subcommands live in sibling modules and are imported only when used, so no command's
imports (wandb, paramiko, rich) slow another's start."""

from __future__ import annotations

import importlib

import click

from atlas_sweeps import __version__
from atlas_sweeps.cli._commands import COMMANDS, DESCRIPTION, HELP_OPTIONS, PROG, help_width


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command: click.Command = getattr(importlib.import_module(entry[0]), cmd_name.replace("-", "_"))
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table, so --help imports no subcommand module.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# The width click would take from shutil, which costs its start-up the import of shutil (and bz2, lzma).
_SETTINGS = {"help_option_names": list(HELP_OPTIONS), "terminal_width": help_width()}


@click.group(cls=_LazyGroup, help=DESCRIPTION, context_settings=_SETTINGS)
@click.version_option(__version__, prog_name=PROG)
def cli() -> None:
    """The top-level group (its help is ``DESCRIPTION``)."""
