"""``scancel`` as data: one command for every id of a cancel."""

from __future__ import annotations

import shlex
from collections.abc import Iterable


def scancel_command(slurm_ids: Iterable[str]) -> str:
    """One ``scancel`` for every id, each quoted (array ids cancel all their tasks)."""
    return f"scancel -- {' '.join(shlex.quote(i) for i in slurm_ids)}"


def scancel_pending_command(ids_expr: str) -> str:
    """One ``scancel`` of only the pending tasks of the arrays in ``ids_expr``, a shell expression the caller
    built from digits alone (running tasks are left alone: Slurm filters by state as it cancels)."""
    return f"scancel --state=PENDING -- {ids_expr}"
