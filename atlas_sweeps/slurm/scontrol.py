"""``scontrol`` as data: the configuration lines a launch needs (``MaxArraySize``, ``MinJobAge``) and the
one-line job record ``tail`` reads a job's state, reason, exit code and log paths from."""

from __future__ import annotations

import shlex

# What preflight reads off ``scontrol show config`` (parsed by ``parse_max_array_size`` and
# ``parse_min_job_age``).
CONFIG_KEYS = ("MaxArraySize", "MinJobAge")


def show_config_command(keys: tuple[str, ...] = CONFIG_KEYS) -> str:
    """``scontrol show config`` cut to the lines of ``keys`` (errors dropped: a missing scontrol says nothing)."""
    return f"scontrol show config 2>/dev/null | grep -iE {shlex.quote('^(' + '|'.join(keys) + ')')}"


def show_job_command(id_expr: str) -> str:
    """A job's one-line record (``JobId=... JobState=...``). scontrol prints "Job 12_3 not found" on stdout
    for a task that left slurmctld, so only the ``JobId=`` line counts. ``id_expr`` is a bash expression."""
    return f"scontrol -o show job {id_expr} 2>/dev/null | grep -m 1 '^JobId='"
