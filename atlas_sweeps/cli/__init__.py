"""The command line: ``main`` runs it and turns every error into a one-line message and an exit code, in
this one place. ``--help`` and ``--version`` answer without importing click (``_commands.py``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: the process's arguments) and return its exit code: the command's
    own, 2 for bad input, 1 for failures elsewhere, 130 when interrupted."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) == 1 and args[0] in ("--help", "-h", "--version"):
        from atlas_sweeps import __version__
        from atlas_sweeps.cli._commands import help_width, render_help, version_line

        sys.stdout.write(version_line(__version__) + "\n" if args[0] == "--version" else render_help(width=help_width()))
        return 0
    import click

    from atlas_sweeps.cli._group import cli
    from atlas_sweeps.errors import AtlasError

    try:
        code = cli.main(args=args, prog_name="atlas-sweeps", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except AtlasError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except SystemExit as exc:  # a command that still exits itself rather than returning its code
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        click.echo(str(exc.code), err=True)
        return 1
    return code if isinstance(code, int) else 0
