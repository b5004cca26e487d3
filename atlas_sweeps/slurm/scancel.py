"""``scancel`` as data: one command for every id of a cancel."""

from __future__ import annotations

import shlex
from collections.abc import Iterable


def scancel_command(slurm_ids: Iterable[str]) -> str:
    """One ``scancel`` for every id, each quoted (array ids cancel all their tasks)."""
    return f"scancel -- {' '.join(shlex.quote(i) for i in slurm_ids)}"
