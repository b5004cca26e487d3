"""Asking before a command does something that cannot be undone: on a terminal it asks, without one it
refuses in one line that names the flag to pass (a script must say --yes)."""

from __future__ import annotations

import sys

import click

from atlas_sweeps.errors import UsageError


def confirm_or_refuse(question: str, *, refusal: str, hint: str) -> None:
    """Ask ``question`` on the terminal (no: click's Abort); without a terminal, UsageError ``refusal``."""
    if not sys.stdin.isatty():
        raise UsageError(refusal, hint=hint)
    click.confirm(question, abort=True, err=True)
