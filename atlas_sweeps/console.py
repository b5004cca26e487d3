"""The two rich consoles: results on stdout, progress and messages on stderr. rich honours ``NO_COLOR``
and drops color and live displays when the stream is not a terminal."""

from __future__ import annotations

from functools import cache

from rich.console import Console


@cache
def out() -> Console:
    """stdout: tables, results, JSON."""
    return Console(soft_wrap=True)


@cache
def err() -> Console:
    """stderr: progress, notices, errors."""
    return Console(stderr=True)
