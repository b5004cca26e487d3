"""The command table and the top-level help, kept free of click: ``atlas-sweeps --help`` and ``--version``
answer from here, because importing click (inspect, typing, uuid, datetime...) would double the start-up.
The click group (``_group.py``) is built from the same table and text; a test holds the two renderings equal."""

from __future__ import annotations

import os
import sys

PROG = "atlas-sweeps"
HELP_OPTIONS = ("-h", "--help")

# name -> (module of the click command, its one-line help); one line per built command.
COMMANDS: dict[str, tuple[str, str]] = {
    "launch": ("atlas_sweeps.cli.launch", "Validate a composite sweep file, create its sweeps and submit them."),
    "status": ("atlas_sweeps.cli.status", "Live table of launches, sweeps and jobs (--once, --json, --wait)."),
    "tail": ("atlas_sweeps.cli.tail", "Follow one job's log (JOB is 123 or 123_4) until it ends."),
    "cancel": ("atlas_sweeps.cli.cancel", "Cancel a launch, a sweep or a job (scancel; stops W&B sweeps)."),
    "ls": ("atlas_sweeps.cli.ls", "List launches with their sweeps and job counts per state."),
    "retry": ("atlas_sweeps.cli.retry", "Resubmit the runs of a launch that did not complete (W&B: in the same sweep)."),
    "report": ("atlas_sweeps.cli.report", "What launches did: counts, failures by cause, GPU-hours, best runs, next commands."),
    "clean": ("atlas_sweeps.cli.clean", "Delete the W&B runs that carry a tag, after listing them."),
    "sync": ("atlas_sweeps.cli.sync", "Upload the offline runs of local-backend launches with wandb sync."),
    "cluster": ("atlas_sweeps.cli.cluster", "Add a cluster by probing it (one login); list and show profiles."),
    "doctor": ("atlas_sweeps.cli.doctor", "Check a cluster profile end to end, naming the fix for each problem."),
    "logout": ("atlas_sweeps.cli.logout", "End the SSH master connections of the openssh transport."),
    "sandbox": ("atlas_sweeps.cli.sandbox", "Start, stop or inspect the sandbox Slurm cluster on this machine."),
}

DESCRIPTION = """Launch W&B hyperparameter sweeps on a Slurm cluster from one composite sweep file.

\b
atlas-sweeps launch composite_grid.yml --nodes 8   create sweeps, sync code, submit jobs
atlas-sweeps status                                live table of every job
atlas-sweeps tail 123456_3                         follow one job's log"""

# click's own texts for the group's two options (``--version`` from click.version_option)
OPTIONS = (("--version", "Show the version and exit."), (", ".join(HELP_OPTIONS), "Show this message and exit."))


def version_line(version: str) -> str:
    """What ``--version`` prints (click.version_option's message)."""
    return f"{PROG}, version {version}"


def help_width() -> int:
    """The width click's help formatter takes: the terminal's (``COLUMNS`` first), at most 80, less 2, at least 50."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (ValueError, OSError):
            columns = 0
    return max(min(columns or 80, 80) - 2, 50)


def render_help(*, width: int) -> str:
    """The top-level help as click formats it at ``width``, ending with a newline."""
    import textwrap

    lines = [f"Usage: {PROG} [OPTIONS] COMMAND [ARGS]...", ""]
    for paragraph in DESCRIPTION.split("\n\n"):
        if paragraph.startswith("\b\n"):  # click's mark for a paragraph kept as written
            lines += [f"  {line}" for line in paragraph.splitlines()[1:]]
        else:
            lines += textwrap.wrap(" ".join(paragraph.split()), width, initial_indent="  ", subsequent_indent="  ",
                                   replace_whitespace=False)
        lines.append("")
    lines += ["Options:", *_definitions(OPTIONS, width=width), "", "Commands:",
              *_definitions([(name, COMMANDS[name][1]) for name in sorted(COMMANDS)], width=width)]
    return "\n".join(lines) + "\n"


def _definitions(rows: list[tuple[str, str]] | tuple[tuple[str, str], ...], *, width: int) -> list[str]:
    """click's definition list, indented by 2: terms padded to one column, texts wrapped beside them."""
    import textwrap

    first = min(max(len(term) for term, _ in rows), 30) + 2
    out = []
    for term, text in rows:
        wrapped = textwrap.wrap(text, max(width - first - 2, 10), replace_whitespace=False) or [""]
        head = f"  {term}" + (" " * (first - len(term)) if len(term) <= first - 2 else "\n" + " " * (first + 2))
        out.append(head + wrapped[0])
        out += [" " * (first + 2) + line for line in wrapped[1:]]
    return out
